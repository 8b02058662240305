//! NRI's connection multiplexer: several logical byte streams over one socket.
//!
//! Every write on a logical connection travels as one frame: `[u32 BE conn id][u32 BE payload
//! length][payload]`. There are no open or close frames; a receiver drops frames for connections
//! it does not know. Frames carry stream bytes, not messages: a ttrpc message may span several
//! frames (see [`super::ttrpc`]).
//!
//! [`MuxDecoder`] turns arbitrary chunks of socket bytes into [`Frame`]s; [`encode_frame`] writes
//! one frame.
//!
//! ```
//! use bytes::BytesMut;
//! use nodeguard::nri::transport::mux::{encode_frame, MuxDecoder, PLUGIN_SERVICE_CONN};
//!
//! let mut wire = BytesMut::new();
//! encode_frame(PLUGIN_SERVICE_CONN, b"hello", &mut wire).unwrap();
//!
//! let mut decoder = MuxDecoder::new();
//! decoder.push(&wire[..3]); // partial header: nothing yet
//! assert_eq!(decoder.next_frame().unwrap(), None);
//! decoder.push(&wire[3..]);
//! let frame = decoder.next_frame().unwrap().unwrap();
//! assert_eq!((frame.conn_id, &frame.payload[..]), (PLUGIN_SERVICE_CONN, &b"hello"[..]));
//! ```

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Identifies a logical connection inside the multiplexed socket. 0 is reserved.
pub type ConnId = u32;

/// The connection carrying the runtime's calls to the plugin's `Plugin` service (we serve).
pub const PLUGIN_SERVICE_CONN: ConnId = 1;

/// The connection carrying the plugin's calls to the runtime's `Runtime` service (we call).
pub const RUNTIME_SERVICE_CONN: ConnId = 2;

/// Size of a frame header: conn id and payload length, both `u32` big-endian.
pub const FRAME_HEADER_LEN: usize = 8;

/// Default limit on a received frame's payload: 4 MiB plus 64 KiB of headroom.
///
/// Go's NRI multiplexer writes at most a ttrpc header plus a maximal (4 MiB) ttrpc message in
/// one frame, so a larger declared length means a broken or hostile peer.
pub const DEFAULT_MAX_FRAME_PAYLOAD: u32 = (4 << 20) + (64 << 10);

/// Errors of the multiplexer layer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MuxError {
    /// A received frame header declares a payload longer than the decoder's limit. The stream
    /// cannot be resynchronised after this: the decoder keeps returning this error.
    #[error(
        "mux frame for connection {conn_id} declares a {declared}-byte payload, \
         over the limit of {limit} bytes"
    )]
    FrameTooLarge {
        /// Connection the frame was addressed to.
        conn_id: ConnId,
        /// Payload length the header declared.
        declared: u32,
        /// The decoder's limit.
        limit: u32,
    },
    /// The input ended inside a frame.
    #[error(
        "mux stream ended inside a frame: {buffered} bytes buffered, {needed} bytes \
         needed to complete it"
    )]
    Truncated {
        /// Bytes of the incomplete frame (header included) that were received.
        buffered: usize,
        /// Total length of the incomplete frame, or of its header if that was incomplete.
        needed: usize,
    },
    /// A payload to send does not fit the frame's 32-bit length field.
    #[error("cannot send {len} bytes on connection {conn_id} in one mux frame (at most 4 GiB - 1)")]
    PayloadTooLong {
        /// Connection the payload was for.
        conn_id: ConnId,
        /// Its length.
        len: usize,
    },
}

/// One received multiplexer frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The logical connection the payload belongs to.
    pub conn_id: ConnId,
    /// The payload: the next bytes of that connection's stream (possibly empty).
    pub payload: Bytes,
}

/// The header of a frame with `payload_len` bytes for `conn_id`.
pub fn frame_header(conn_id: ConnId, payload_len: u32) -> [u8; FRAME_HEADER_LEN] {
    let mut header = [0; FRAME_HEADER_LEN];
    header[..4].copy_from_slice(&conn_id.to_be_bytes());
    header[4..].copy_from_slice(&payload_len.to_be_bytes());
    header
}

/// Appends one frame carrying `payload` for `conn_id` to `out`.
///
/// This does not split: callers sending to Go must keep frames small (see
/// [`super::ttrpc::Message::encode_mux_frames`]). Fails only if `payload` exceeds `u32::MAX`
/// bytes, in which case nothing is written.
pub fn encode_frame(conn_id: ConnId, payload: &[u8], out: &mut BytesMut) -> Result<(), MuxError> {
    let len = u32::try_from(payload.len()).map_err(|_| MuxError::PayloadTooLong {
        conn_id,
        len: payload.len(),
    })?;
    out.reserve(FRAME_HEADER_LEN + payload.len());
    out.put_slice(&frame_header(conn_id, len));
    out.put_slice(payload);
    Ok(())
}

/// Incremental frame decoder: feed it socket bytes in chunks of any size, take frames out.
///
/// Memory stays bounded by the limit: a declared length is checked before any of the payload is
/// buffered, and the buffer only ever holds bytes that were actually received. After
/// [`MuxError::FrameTooLarge`] the decoder is poisoned: it ignores further input and returns the
/// same error again.
#[derive(Debug)]
pub struct MuxDecoder {
    buf: BytesMut,
    max_payload: u32,
    poisoned: Option<MuxError>,
}

impl Default for MuxDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl MuxDecoder {
    /// A decoder accepting payloads up to [`DEFAULT_MAX_FRAME_PAYLOAD`].
    pub fn new() -> Self {
        Self::with_max_payload(DEFAULT_MAX_FRAME_PAYLOAD)
    }

    /// A decoder accepting payloads up to `max_payload` bytes.
    pub fn with_max_payload(max_payload: u32) -> Self {
        Self {
            buf: BytesMut::new(),
            max_payload,
            poisoned: None,
        }
    }

    /// The largest payload this decoder accepts.
    pub fn max_payload(&self) -> u32 {
        self.max_payload
    }

    /// Appends received bytes. Call [`next_frame`](Self::next_frame) until it returns `None`
    /// before pushing more, to keep the buffer small.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.poisoned.is_none() {
            self.buf.extend_from_slice(bytes);
        }
    }

    /// Number of buffered bytes not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next complete frame, `Ok(None)` if more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, MuxError> {
        if let Some(err) = &self.poisoned {
            return Err(err.clone());
        }
        let Some(header) = self.buf.get(..FRAME_HEADER_LEN) else {
            return Ok(None);
        };
        let conn_id = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
        let declared = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
        if declared > self.max_payload {
            let err = MuxError::FrameTooLarge {
                conn_id,
                declared,
                limit: self.max_payload,
            };
            self.poisoned = Some(err.clone());
            self.buf = BytesMut::new();
            return Err(err);
        }
        let frame_len = FRAME_HEADER_LEN.saturating_add(declared as usize);
        if self.buf.len() < frame_len {
            return Ok(None);
        }
        let mut frame = self.buf.split_to(frame_len);
        frame.advance(FRAME_HEADER_LEN);
        Ok(Some(Frame {
            conn_id,
            payload: frame.freeze(),
        }))
    }

    /// Call at end of input: `Ok` if the input ended on a frame boundary, otherwise
    /// [`MuxError::Truncated`] (or the error that poisoned the decoder).
    pub fn finish(&self) -> Result<(), MuxError> {
        if let Some(err) = &self.poisoned {
            return Err(err.clone());
        }
        let buffered = self.buf.len();
        if buffered == 0 {
            return Ok(());
        }
        let needed = match self.buf.get(4..FRAME_HEADER_LEN) {
            Some(len) => {
                let declared = u32::from_be_bytes([len[0], len[1], len[2], len[3]]);
                FRAME_HEADER_LEN.saturating_add(declared as usize)
            }
            None => FRAME_HEADER_LEN,
        };
        Err(MuxError::Truncated { buffered, needed })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encode(frames: &[(ConnId, &[u8])]) -> BytesMut {
        let mut out = BytesMut::new();
        for (conn_id, payload) in frames {
            encode_frame(*conn_id, payload, &mut out).unwrap();
        }
        out
    }

    fn drain(decoder: &mut MuxDecoder) -> Vec<(ConnId, Vec<u8>)> {
        let mut frames = Vec::new();
        while let Some(frame) = decoder.next_frame().unwrap() {
            frames.push((frame.conn_id, frame.payload.to_vec()));
        }
        frames
    }

    #[test]
    fn header_layout_is_big_endian_conn_then_length() {
        let wire = encode(&[(0x0102_0304, b"xy")]);
        assert_eq!(&wire[..], b"\x01\x02\x03\x04\x00\x00\x00\x02xy");
    }

    #[test]
    fn one_frame_fed_byte_by_byte() {
        let wire = encode(&[(PLUGIN_SERVICE_CONN, b"payload bytes")]);
        let mut decoder = MuxDecoder::new();
        for (i, byte) in wire.iter().enumerate() {
            decoder.push(&[*byte]);
            let frame = decoder.next_frame().unwrap();
            if i + 1 < wire.len() {
                assert_eq!(
                    frame,
                    None,
                    "complete after {} of {} bytes",
                    i + 1,
                    wire.len()
                );
            } else {
                let frame = frame.unwrap();
                assert_eq!(frame.conn_id, PLUGIN_SERVICE_CONN);
                assert_eq!(&frame.payload[..], b"payload bytes");
            }
        }
        assert_eq!(decoder.buffered(), 0);
        decoder.finish().unwrap();
    }

    #[test]
    fn many_frames_in_one_chunk() {
        let payloads: Vec<Vec<u8>> = (0..100u8).map(|i| vec![i; usize::from(i)]).collect();
        let frames: Vec<(ConnId, &[u8])> = payloads
            .iter()
            .enumerate()
            .map(|(i, p)| (i as ConnId % 3 + 1, p.as_slice()))
            .collect();
        let mut decoder = MuxDecoder::new();
        decoder.push(&encode(&frames));
        let decoded = drain(&mut decoder);
        assert_eq!(decoded.len(), 100);
        for ((conn_id, payload), (want_conn, want_payload)) in decoded.iter().zip(&frames) {
            assert_eq!(conn_id, want_conn);
            assert_eq!(payload.as_slice(), *want_payload);
        }
        decoder.finish().unwrap();
    }

    #[test]
    fn chunk_ending_inside_the_second_frame() {
        let wire = encode(&[(1, b"first"), (2, b"second")]);
        let mut decoder = MuxDecoder::new();
        decoder.push(&wire[..FRAME_HEADER_LEN + 5 + 3]);
        assert_eq!(drain(&mut decoder), vec![(1, b"first".to_vec())]);
        decoder.push(&wire[FRAME_HEADER_LEN + 5 + 3..]);
        assert_eq!(drain(&mut decoder), vec![(2, b"second".to_vec())]);
    }

    #[test]
    fn zero_length_payloads() {
        let wire = encode(&[(1, b""), (2, b""), (1, b"x"), (1, b"")]);
        assert_eq!(wire.len(), 4 * FRAME_HEADER_LEN + 1);
        let mut decoder = MuxDecoder::new();
        decoder.push(&wire);
        assert_eq!(
            drain(&mut decoder),
            vec![(1, vec![]), (2, vec![]), (1, b"x".to_vec()), (1, vec![])]
        );
    }

    #[test]
    fn interleaved_conn_ids_keep_their_order() {
        let frames: &[(ConnId, &[u8])] =
            &[(1, b"a1"), (2, b"b1"), (7, b"c1"), (1, b"a2"), (2, b"b2")];
        let mut decoder = MuxDecoder::new();
        decoder.push(&encode(frames));
        let decoded = drain(&mut decoder);
        let ones: Vec<_> = decoded.iter().filter(|(c, _)| *c == 1).collect();
        assert_eq!(
            ones,
            vec![&(1, b"a1".to_vec()), &(1, b"a2".to_vec())],
            "per-connection order"
        );
        assert_eq!(decoded.len(), 5);
        assert_eq!(
            decoded[2],
            (7, b"c1".to_vec()),
            "unknown ids are returned, not judged"
        );
    }

    #[test]
    fn oversized_declared_length_is_rejected_before_buffering() {
        let mut decoder = MuxDecoder::with_max_payload(16);
        decoder.push(&frame_header(2, 17));
        let err = decoder.next_frame().unwrap_err();
        assert_eq!(
            err,
            MuxError::FrameTooLarge {
                conn_id: 2,
                declared: 17,
                limit: 16
            }
        );
        assert!(err.to_string().contains("17-byte payload"), "{err}");
        // Poisoned: further input is ignored, the error repeats.
        decoder.push(&[0; 64]);
        assert_eq!(decoder.buffered(), 0);
        assert_eq!(decoder.next_frame().unwrap_err(), err);
        assert_eq!(decoder.finish().unwrap_err(), err);
    }

    #[test]
    fn huge_declared_length_with_default_limit() {
        let mut decoder = MuxDecoder::new();
        decoder.push(&frame_header(1, u32::MAX));
        assert!(matches!(
            decoder.next_frame(),
            Err(MuxError::FrameTooLarge {
                declared: u32::MAX,
                limit: DEFAULT_MAX_FRAME_PAYLOAD,
                ..
            })
        ));
    }

    #[test]
    fn limit_is_inclusive() {
        let mut decoder = MuxDecoder::with_max_payload(4);
        decoder.push(&encode(&[(1, b"four")]));
        assert_eq!(drain(&mut decoder), vec![(1, b"four".to_vec())]);
    }

    #[test]
    fn truncated_input() {
        let wire = encode(&[(1, b"complete"), (2, b"cut short")]);
        let mut decoder = MuxDecoder::new();
        decoder.push(&wire[..wire.len() - 2]);
        assert_eq!(drain(&mut decoder), vec![(1, b"complete".to_vec())]);
        assert_eq!(
            decoder.finish(),
            Err(MuxError::Truncated {
                buffered: FRAME_HEADER_LEN + 7,
                needed: FRAME_HEADER_LEN + 9
            })
        );

        let mut header_only = MuxDecoder::new();
        header_only.push(&[0, 0, 0]);
        assert_eq!(header_only.next_frame(), Ok(None));
        assert_eq!(
            header_only.finish(),
            Err(MuxError::Truncated {
                buffered: 3,
                needed: FRAME_HEADER_LEN
            })
        );
    }

    #[test]
    fn empty_input_finishes_cleanly() {
        let decoder = MuxDecoder::default();
        assert_eq!(decoder.finish(), Ok(()));
    }

    prop_compose! {
        fn frames()(frames in prop::collection::vec(
            (0u32..5, prop::collection::vec(any::<u8>(), 0..300)), 0..20)
        ) -> Vec<(ConnId, Vec<u8>)> {
            frames
        }
    }

    proptest! {
        #[test]
        fn round_trip_with_arbitrary_chunking(
            frames in frames(),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..10),
        ) {
            let borrowed: Vec<(ConnId, &[u8])> =
                frames.iter().map(|(c, p)| (*c, p.as_slice())).collect();
            let wire = encode(&borrowed);
            let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
            cuts.push(0);
            cuts.push(wire.len());
            cuts.sort_unstable();

            let mut decoder = MuxDecoder::new();
            let mut decoded = Vec::new();
            for pair in cuts.windows(2) {
                decoder.push(&wire[pair[0]..pair[1]]);
                decoded.extend(drain(&mut decoder));
            }
            prop_assert_eq!(decoded, frames);
            prop_assert_eq!(decoder.finish(), Ok(()));
        }

        #[test]
        fn arbitrary_bytes_never_panic(
            chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..16),
            limit in 0u32..128,
        ) {
            let mut decoder = MuxDecoder::with_max_payload(limit);
            let mut total_out = 0;
            for chunk in &chunks {
                decoder.push(chunk);
                loop {
                    match decoder.next_frame() {
                        Ok(Some(frame)) => {
                            prop_assert!(frame.payload.len() <= limit as usize);
                            total_out += FRAME_HEADER_LEN + frame.payload.len();
                        }
                        Ok(None) => break,
                        Err(MuxError::FrameTooLarge { declared, .. }) => {
                            prop_assert!(declared > limit);
                            break;
                        }
                        Err(other) => prop_assert!(false, "unexpected {other:?}"),
                    }
                }
            }
            let total_in: usize = chunks.iter().map(Vec::len).sum();
            prop_assert!(total_out + decoder.buffered() <= total_in);
            let _ = decoder.finish();
        }
    }
}
