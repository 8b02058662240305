// Command go-nri-peer is a do-nothing NRI plugin on the upstream Go stub
// (github.com/containerd/nri/pkg/stub), the yardstick of the create_latency bench: it
// subscribes to the events nodeguard subscribes to (CreateContainer, StartContainer,
// UpdateContainer) and answers each with nothing.
//
// It is ours; the stub, ttrpc and protobuf come from Debian's packaged sources, and
// scripts/testbed/go-nri-peer.sh builds it offline in GOPATH mode. It is never part of CI.
//
//	go-nri-peer -socket /run/nri/nri.sock -name go-peer -idx 10 -timings FILE
//
// With -timings, one line per call of the Plugin service is appended to FILE:
// "<method> <event> <nanoseconds>", the time the stub spent in the call from the ttrpc
// server's dispatch to the reply object (request decoding included, reply encoding and
// writing not), measured by a ttrpc unary interceptor. <event> names a StateChange's
// event, "-" for other methods. Lines are written by a goroutine, off the request path.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/containerd/nri/pkg/api"
	"github.com/containerd/nri/pkg/stub"
	"github.com/containerd/ttrpc"
)

// peer implements the stub's CreateContainerInterface, StartContainerInterface and
// UpdateContainerInterface, from which the stub derives its subscription: 0x8 | 0x20 | 0x80,
// nodeguard's EVENTS on a runtime without ValidateContainerAdjustment.
type peer struct{}

func (peer) CreateContainer(context.Context, *api.PodSandbox, *api.Container) (*api.ContainerAdjustment, []*api.ContainerUpdate, error) {
	return nil, nil, nil
}

func (peer) StartContainer(context.Context, *api.PodSandbox, *api.Container) error {
	return nil
}

func (peer) UpdateContainer(context.Context, *api.PodSandbox, *api.Container, *api.LinuxResources) ([]*api.ContainerUpdate, error) {
	return nil, nil
}

type timing struct {
	method string
	event  string
	took   time.Duration
}

// timed returns an interceptor that sends each call's duration to out.
func timed(out chan<- timing) ttrpc.UnaryServerInterceptor {
	return func(ctx context.Context, unmarshal ttrpc.Unmarshaler, info *ttrpc.UnaryServerInfo, method ttrpc.Method) (interface{}, error) {
		started := time.Now()
		var req interface{}
		reply, err := method(ctx, func(v interface{}) error {
			req = v
			return unmarshal(v)
		})
		took := time.Since(started)
		event := "-"
		if sc, ok := req.(*api.StateChangeEvent); ok {
			event = sc.Event.String()
		}
		select {
		case out <- timing{info.FullMethod, event, took}:
		default: // never block a reply on the log
		}
		return reply, err
	}
}

func main() {
	socket := flag.String("socket", api.DefaultSocketPath, "the runtime's NRI socket")
	name := flag.String("name", "go-peer", "plugin name")
	idx := flag.String("idx", "10", "two-digit plugin index")
	timings := flag.String("timings", "", "append each call's duration to this file")
	flag.Parse()

	calls := make(chan timing, 65536)
	done := make(chan struct{})
	if *timings != "" {
		f, err := os.OpenFile(*timings, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			fmt.Fprintln(os.Stderr, "go-nri-peer:", err)
			os.Exit(1)
		}
		go func() {
			w := bufio.NewWriter(f)
			for c := range calls {
				fmt.Fprintf(w, "%s %s %d\n", c.method, c.event, c.took.Nanoseconds())
				if len(calls) == 0 {
					w.Flush()
				}
			}
			w.Flush()
			f.Close()
			close(done)
		}()
	} else {
		go func() {
			for range calls {
			}
			close(done)
		}()
	}

	s, err := stub.New(peer{},
		stub.WithSocketPath(*socket),
		stub.WithPluginName(*name),
		stub.WithPluginIdx(*idx),
		stub.WithTTRPCOptions(nil, []ttrpc.ServerOpt{ttrpc.WithUnaryServerInterceptor(timed(calls))}),
		stub.WithOnClose(func() {
			fmt.Fprintln(os.Stderr, "go-nri-peer: connection closed")
			os.Exit(0)
		}),
	)
	if err != nil {
		fmt.Fprintln(os.Stderr, "go-nri-peer:", err)
		os.Exit(1)
	}

	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer cancel()
	if err := s.Start(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "go-nri-peer: start:", err)
		os.Exit(1)
	}
	// The bench waits for this line: Start returns once the runtime has configured us.
	fmt.Fprintln(os.Stderr, "go-nri-peer: registered with the runtime")
	<-ctx.Done()
	s.Stop()
	close(calls)
	<-done
}
