//! Both receive layers together: socket bytes in, `(conn id, ttrpc message)` out.
//!
//! [`Demux`] runs a [`MuxDecoder`] over the socket's bytes and one [`Reassembler`] per known
//! logical connection over the frames; frames for other connections are dropped, as NRI
//! requires. It is sans-I/O, so the connection layer, the fake runtime of the tests and fuzz
//! targets share it.
//!
//! ```
//! use bytes::BytesMut;
//! use nodeguard::nri::transport::demux::Demux;
//! use nodeguard::nri::transport::mux::RUNTIME_SERVICE_CONN;
//! use nodeguard::nri::transport::ttrpc::{Message, MessageType};
//!
//! let reply = Message::new(1, MessageType::Response, 0, vec![0u8; 6000]);
//! let mut wire = BytesMut::new();
//! reply.encode_mux_frames(RUNTIME_SERVICE_CONN, &mut wire).unwrap();
//!
//! let mut demux = Demux::nri();
//! demux.push(&wire);
//! assert_eq!(demux.next_message().unwrap(), Some((RUNTIME_SERVICE_CONN, reply)));
//! assert_eq!(demux.next_message().unwrap(), None);
//! ```

use super::mux::{ConnId, MuxDecoder, MuxError, PLUGIN_SERVICE_CONN, RUNTIME_SERVICE_CONN};
use super::ttrpc::{Message, Reassembler, TtrpcError};

/// Errors of the combined receive path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DemuxError {
    /// The multiplexer stream is broken; the socket must be closed.
    #[error(transparent)]
    Mux(#[from] MuxError),
    /// A logical connection's ttrpc stream reported an error.
    /// [`TtrpcError::MessageTooLarge`] is recoverable (see there); a truncation is not.
    #[error("connection {conn_id}: {source}")]
    Ttrpc {
        /// The logical connection.
        conn_id: ConnId,
        /// What went wrong.
        source: TtrpcError,
    },
}

/// Demultiplexes a socket's byte stream into the ttrpc messages of known connections.
#[derive(Debug)]
pub struct Demux {
    mux: MuxDecoder,
    conns: Vec<(ConnId, Reassembler)>,
    /// Index in `conns` of the reassembler fed last, while it may still hold messages.
    pending: Option<usize>,
}

impl Demux {
    /// A demultiplexer for `conn_ids` (duplicates are ignored) using `mux` to decode frames.
    pub fn new(mux: MuxDecoder, conn_ids: &[ConnId]) -> Self {
        let mut conns: Vec<(ConnId, Reassembler)> = Vec::with_capacity(conn_ids.len());
        for &conn_id in conn_ids {
            if !conns.iter().any(|(id, _)| *id == conn_id) {
                conns.push((conn_id, Reassembler::new()));
            }
        }
        Self {
            mux,
            conns,
            pending: None,
        }
    }

    /// The NRI plugin's view: connections [`PLUGIN_SERVICE_CONN`] and [`RUNTIME_SERVICE_CONN`]
    /// with default limits.
    pub fn nri() -> Self {
        Self::new(
            MuxDecoder::new(),
            &[PLUGIN_SERVICE_CONN, RUNTIME_SERVICE_CONN],
        )
    }

    /// Appends bytes read from the socket. Call [`next_message`](Self::next_message) until it
    /// returns `None` before pushing more.
    pub fn push(&mut self, bytes: &[u8]) {
        self.mux.push(bytes);
    }

    /// The next complete message and its connection, `Ok(None)` if more bytes are needed.
    pub fn next_message(&mut self) -> Result<Option<(ConnId, Message)>, DemuxError> {
        loop {
            if let Some(index) = self.pending {
                let (conn_id, reassembler) = &mut self.conns[index];
                match reassembler.next_message() {
                    Ok(Some(message)) => return Ok(Some((*conn_id, message))),
                    Ok(None) => self.pending = None,
                    Err(source) => {
                        return Err(DemuxError::Ttrpc {
                            conn_id: *conn_id,
                            source,
                        });
                    }
                }
            }
            let Some(frame) = self.mux.next_frame()? else {
                return Ok(None);
            };
            if let Some(index) = self.conns.iter().position(|(id, _)| *id == frame.conn_id) {
                self.conns[index].1.push(&frame.payload);
                self.pending = Some(index);
            }
        }
    }

    /// Call at end of input: `Ok` if both layers ended on a boundary.
    pub fn finish(&self) -> Result<(), DemuxError> {
        self.mux.finish()?;
        for (conn_id, reassembler) in &self.conns {
            reassembler.finish().map_err(|source| DemuxError::Ttrpc {
                conn_id: *conn_id,
                source,
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nri::transport::mux::{encode_frame, frame_header};
    use crate::nri::transport::ttrpc::{HEADER_LEN, Header, MessageType};
    use bytes::BytesMut;
    use proptest::prelude::*;

    fn drain(demux: &mut Demux) -> Vec<(ConnId, Message)> {
        let mut out = Vec::new();
        while let Some(item) = demux.next_message().unwrap() {
            out.push(item);
        }
        out
    }

    #[test]
    fn interleaved_connections_are_reassembled_separately() {
        let a = Message::new(1, MessageType::Request, 0, vec![0xaa; 9000]);
        let b = Message::new(1, MessageType::Response, 0, vec![0xbb; 5000]);
        let (mut wire_a, mut wire_b) = (BytesMut::new(), BytesMut::new());
        a.encode_mux_frames(PLUGIN_SERVICE_CONN, &mut wire_a)
            .unwrap();
        b.encode_mux_frames(RUNTIME_SERVICE_CONN, &mut wire_b)
            .unwrap();

        // Re-frame both streams and interleave them frame by frame.
        let mut frames_a = MuxDecoder::new();
        frames_a.push(&wire_a);
        let mut frames_b = MuxDecoder::new();
        frames_b.push(&wire_b);
        let mut wire = BytesMut::new();
        loop {
            let fa = frames_a.next_frame().unwrap();
            let fb = frames_b.next_frame().unwrap();
            if fa.is_none() && fb.is_none() {
                break;
            }
            for frame in [fa, fb].into_iter().flatten() {
                encode_frame(frame.conn_id, &frame.payload, &mut wire).unwrap();
            }
        }

        let mut demux = Demux::nri();
        demux.push(&wire);
        let mut got = drain(&mut demux);
        got.sort_by_key(|(conn, _)| *conn);
        assert_eq!(
            got,
            vec![(PLUGIN_SERVICE_CONN, a), (RUNTIME_SERVICE_CONN, b)]
        );
        demux.finish().unwrap();
    }

    #[test]
    fn one_frame_may_hold_several_messages_and_unknown_conns_are_dropped() {
        let mut stream = BytesMut::new();
        let m1 = Message::new(1, MessageType::Request, 0, &b"one"[..]);
        let m2 = Message::new(3, MessageType::Request, 0, &b"two"[..]);
        m1.encode(&mut stream).unwrap();
        m2.encode(&mut stream).unwrap();

        let mut wire = BytesMut::new();
        encode_frame(9, b"garbage for an unknown connection", &mut wire).unwrap();
        encode_frame(PLUGIN_SERVICE_CONN, &stream, &mut wire).unwrap();
        encode_frame(0, b"", &mut wire).unwrap();

        let mut demux = Demux::nri();
        demux.push(&wire);
        assert_eq!(
            drain(&mut demux),
            vec![(PLUGIN_SERVICE_CONN, m1), (PLUGIN_SERVICE_CONN, m2)]
        );
        demux.finish().unwrap();
    }

    #[test]
    fn errors_name_their_layer_and_connection() {
        let mut demux = Demux::new(MuxDecoder::with_max_payload(100), &[1, 1, 2]);
        let header = Header {
            length: u32::MAX,
            stream_id: 5,
            message_type: MessageType::Request,
            flags: 0,
        };
        let mut wire = BytesMut::new();
        encode_frame(2, &header.encode(), &mut wire).unwrap();
        demux.push(&wire);
        let err = demux.next_message().unwrap_err();
        assert!(matches!(
            err,
            DemuxError::Ttrpc {
                conn_id: 2,
                source: TtrpcError::MessageTooLarge { stream_id: 5, .. }
            }
        ));
        assert!(err.to_string().starts_with("connection 2: "), "{err}");
        assert!(matches!(
            demux.finish(),
            Err(DemuxError::Ttrpc {
                conn_id: 2,
                source: TtrpcError::Truncated { .. }
            })
        ));

        demux.push(&frame_header(1, 101));
        assert_eq!(
            demux.next_message(),
            Err(DemuxError::Mux(MuxError::FrameTooLarge {
                conn_id: 1,
                declared: 101,
                limit: 100
            }))
        );
    }

    #[test]
    fn truncated_ttrpc_message_inside_complete_frames() {
        let mut demux = Demux::nri();
        let mut wire = BytesMut::new();
        encode_frame(
            PLUGIN_SERVICE_CONN,
            &[0, 0, 0, 5, 0, 0, 0, 1, 1, 0, 1],
            &mut wire,
        )
        .unwrap();
        demux.push(&wire);
        assert_eq!(demux.next_message(), Ok(None));
        assert_eq!(
            demux.finish(),
            Err(DemuxError::Ttrpc {
                conn_id: PLUGIN_SERVICE_CONN,
                source: TtrpcError::Truncated {
                    buffered: HEADER_LEN + 1,
                    missing: 4
                }
            })
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(
            chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..128), 0..16),
        ) {
            let mut demux = Demux::new(MuxDecoder::with_max_payload(64), &[0, 1, 2]);
            'chunks: for chunk in &chunks {
                demux.push(chunk);
                loop {
                    match demux.next_message() {
                        Ok(Some(_)) => {}
                        Ok(None) => break,
                        Err(DemuxError::Mux(_)) => break 'chunks,
                        Err(DemuxError::Ttrpc { .. }) => {}
                    }
                }
            }
            let _ = demux.finish();
        }

        #[test]
        fn structured_frames_never_panic(
            frames in prop::collection::vec(
                (0u32..4, prop::collection::vec(any::<u8>(), 0..40)), 0..40),
        ) {
            // Valid mux framing around arbitrary ttrpc bytes reaches the reassemblers.
            let mut wire = BytesMut::new();
            for (conn, payload) in &frames {
                encode_frame(*conn, payload, &mut wire).unwrap();
            }
            let mut demux = Demux::new(MuxDecoder::new(), &[1, 2]);
            demux.push(&wire);
            while let Ok(Some(_)) | Err(DemuxError::Ttrpc { .. }) = demux.next_message() {}
            let _ = demux.finish();
        }
    }
}
