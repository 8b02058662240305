//! A tap on the NRI socket: a plugin connects to the tap's socket, the tap connects to
//! containerd's and forwards every byte both ways, and times each call of the `Plugin`
//! service (multiplexer conn 1) from the read that completed containerd's request to the read
//! that completed the plugin's reply (both taken before the bytes are passed on).
//!
//! The same tap stands between containerd and every plugin the bench runs, so each plugin's
//! per-event cost is measured the same way, outside the plugin: its decoding, its handler, its
//! encoding and its scheduling, plus one hop through the tap each way (the same for all).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{UnixListener, UnixStream};

/// The multiplexer connection carrying the `Plugin` service (containerd calls the plugin).
const PLUGIN_SERVICE_CONN: u32 = 1;
const TTRPC_REQUEST: u8 = 1;
const TTRPC_RESPONSE: u8 = 2;

/// One call of the `Plugin` service, as seen on the wire.
#[derive(Debug, Clone)]
pub struct Call {
    /// The method, with the event for `StateChange` (`StateChange(START_CONTAINER)`).
    pub call: String,
    /// From containerd's request to the plugin's reply.
    pub took: Duration,
}

type Calls = Arc<Mutex<Vec<Call>>>;
type Pending = Arc<Mutex<HashMap<u32, (String, Instant)>>>;

/// A listening tap; stops listening when dropped.
#[derive(Debug)]
pub struct Tap {
    path: PathBuf,
    calls: Calls,
    accept: tokio::task::JoinHandle<()>,
}

impl Tap {
    /// Listens on `path` and forwards each connection to `upstream` (containerd's NRI socket).
    ///
    /// # Errors
    /// When `path` cannot be bound.
    pub fn start(path: PathBuf, upstream: PathBuf) -> Result<Tap> {
        let _ = std::fs::remove_file(&path);
        let listener =
            UnixListener::bind(&path).with_context(|| format!("binding {}", path.display()))?;
        let calls = Calls::default();
        let seen = Arc::clone(&calls);
        let accept = tokio::spawn(async move {
            while let Ok((plugin, _)) = listener.accept().await {
                let Ok(runtime) = UnixStream::connect(&upstream).await else {
                    continue;
                };
                let pending = Pending::default();
                let (from_runtime, to_runtime) = runtime.into_split();
                let (from_plugin, to_plugin) = plugin.into_split();
                tokio::spawn(pump(
                    from_runtime,
                    to_plugin,
                    true,
                    Arc::clone(&pending),
                    Arc::clone(&seen),
                ));
                tokio::spawn(pump(
                    from_plugin,
                    to_runtime,
                    false,
                    pending,
                    Arc::clone(&seen),
                ));
            }
        });
        Ok(Tap {
            path,
            calls,
            accept,
        })
    }

    /// The socket plugins connect to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The calls answered since the last `take`.
    pub fn take(&self) -> Vec<Call> {
        std::mem::take(&mut *self.calls.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        self.accept.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Forwards `from` to `to`; `to_plugin` tells the direction. Requests are remembered by
/// stream id when they go to the plugin, and timed when the reply comes back.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    to_plugin: bool,
    pending: Pending,
    calls: Calls,
) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut demux = Demux::default();
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let at = Instant::now();
        // Bookkeeping first (a few header reads, microseconds): a reply is on the list before
        // containerd can see it, and a request is pending before the plugin can answer it.
        for (kind, stream, payload) in demux.feed(&buf[..n]) {
            let mut pending = pending.lock().unwrap_or_else(PoisonError::into_inner);
            if to_plugin && kind == TTRPC_REQUEST {
                pending.insert(stream, (describe(&payload), at));
            } else if !to_plugin
                && kind == TTRPC_RESPONSE
                && let Some((call, since)) = pending.remove(&stream)
            {
                calls
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(Call {
                        call,
                        took: at - since,
                    });
            }
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// Reassembles the multiplexer's frames (`[u32 conn][u32 length][payload]`) and, on the
/// `Plugin` service's connection, ttrpc messages (`[u32 length][u32 stream][u8 type][u8
/// flags][payload]`).
#[derive(Debug, Default)]
struct Demux {
    frames: Vec<u8>,
    ttrpc: Vec<u8>,
}

impl Demux {
    /// The ttrpc messages `bytes` completes: (type, stream id, payload).
    fn feed(&mut self, bytes: &[u8]) -> Vec<(u8, u32, Vec<u8>)> {
        self.frames.extend_from_slice(bytes);
        let mut used = 0;
        while self.frames.len() - used >= 8 {
            let head = &self.frames[used..];
            let conn = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
            let len = u32::from_be_bytes([head[4], head[5], head[6], head[7]]) as usize;
            if head.len() < 8 + len {
                break;
            }
            if conn == PLUGIN_SERVICE_CONN {
                self.ttrpc.extend_from_slice(&head[8..8 + len]);
            }
            used += 8 + len;
        }
        self.frames.drain(..used);
        let mut messages = Vec::new();
        let mut used = 0;
        while self.ttrpc.len() - used >= 10 {
            let head = &self.ttrpc[used..];
            let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
            let stream = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
            if head.len() < 10 + len {
                break;
            }
            messages.push((head[8], stream, head[10..10 + len].to_vec()));
            used += 10 + len;
        }
        self.ttrpc.drain(..used);
        messages
    }
}

/// `Request{service=1, method=2, payload=3}`: the method, and for `StateChange` its event.
fn describe(request: &[u8]) -> String {
    let method = match field(request, 2) {
        Some(Value::Bytes(b)) => String::from_utf8_lossy(b).into_owned(),
        _ => "?".to_string(),
    };
    if method != "StateChange" {
        return method;
    }
    let event = match field(request, 3) {
        Some(Value::Bytes(payload)) => match field(payload, 1) {
            Some(Value::Varint(e)) => event_name(e),
            _ => "?",
        },
        _ => "?",
    };
    format!("StateChange({event})")
}

/// NRI's `Event` enum.
fn event_name(event: u64) -> &'static str {
    match event {
        1 => "RUN_POD_SANDBOX",
        2 => "STOP_POD_SANDBOX",
        3 => "REMOVE_POD_SANDBOX",
        4 => "CREATE_CONTAINER",
        5 => "POST_CREATE_CONTAINER",
        6 => "START_CONTAINER",
        7 => "POST_START_CONTAINER",
        8 => "UPDATE_CONTAINER",
        9 => "POST_UPDATE_CONTAINER",
        10 => "STOP_CONTAINER",
        11 => "REMOVE_CONTAINER",
        _ => "?",
    }
}

enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

fn varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = bytes.split_first()?;
        *bytes = rest;
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// The first field `number` of a protobuf message (varint or length-delimited).
fn field(mut msg: &[u8], number: u64) -> Option<Value<'_>> {
    while !msg.is_empty() {
        let key = varint(&mut msg)?;
        let value = match key & 7 {
            0 => Value::Varint(varint(&mut msg)?),
            1 => {
                msg = msg.get(8..)?;
                continue;
            }
            2 => {
                let len = usize::try_from(varint(&mut msg)?).ok()?;
                let bytes = msg.get(..len)?;
                msg = &msg[len..];
                Value::Bytes(bytes)
            }
            5 => {
                msg = msg.get(4..)?;
                continue;
            }
            _ => return None,
        };
        if key >> 3 == number {
            return Some(value);
        }
    }
    None
}
