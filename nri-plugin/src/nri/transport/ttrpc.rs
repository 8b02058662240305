//! ttrpc messages: framing, reassembly from a byte stream, and encoding into mux frames.
//!
//! A ttrpc message is a 10-byte header, `[u32 BE payload length][u32 BE stream id][u8 type]
//! [u8 flags]`, followed by the payload; payloads are limited to [`MAX_MESSAGE_LEN`] (4 MiB).
//! A unary call is one [`MessageType::Request`] message whose payload is a `ttrpc.Request`
//! envelope, answered by one [`MessageType::Response`] message with the same stream id whose
//! payload is a `ttrpc.Response`. Clients number streams 1, 3, 5, ... ([`StreamIds`]).
//!
//! Over NRI the messages of one logical connection arrive as a byte stream in mux frames that do
//! not respect message boundaries: [`Reassembler`] rebuilds them. Going the other way,
//! [`Message::encode_mux_frames`] cuts a message into frames that Go's reader accepts.
//!
//! ```
//! use bytes::BytesMut;
//! use nodeguard::nri::transport::mux::{MuxDecoder, PLUGIN_SERVICE_CONN};
//! use nodeguard::nri::transport::ttrpc::{Message, MessageType, Reassembler};
//!
//! let message = Message::new(1, MessageType::Request, 0, vec![7u8; 10_000]);
//! let mut wire = BytesMut::new();
//! message.encode_mux_frames(PLUGIN_SERVICE_CONN, &mut wire).unwrap();
//!
//! let (mut mux, mut reassembler) = (MuxDecoder::new(), Reassembler::new());
//! mux.push(&wire);
//! while let Some(frame) = mux.next_frame().unwrap() {
//!     assert!(frame.payload.len() <= 4096);
//!     reassembler.push(&frame.payload);
//! }
//! assert_eq!(reassembler.next_message().unwrap(), Some(message));
//! ```

use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use nodeguard_proto::ttrpc as envelope;
use prost::Message as _;

use super::mux::{ConnId, FRAME_HEADER_LEN, frame_header};

/// Size of a ttrpc message header.
pub const HEADER_LEN: usize = 10;

/// Largest payload ttrpc accepts in one message (4 MiB), both ways.
pub const MAX_MESSAGE_LEN: u32 = 4 << 20;

/// Largest mux frame payload we send.
///
/// Go's ttrpc reads its connection through a 4096-byte `bufio.Reader`, and NRI's mux connection
/// fails the read (`ENOMEM`) when a frame does not fit the buffer it is read into; the Go peer
/// then drops the whole NRI connection. Frames of at most 4096 bytes that never span two
/// messages always fit.
///
/// Caveat for very large messages: Go's mux queues at most 256 unread frames per connection and
/// drops the connection when the queue overflows, so a message of more than 256 frames (about
/// 1 MiB) can be lost if the peer's reader lags. Go's own writer avoids this by sending
/// `[header + 4086 bytes][all the rest]`, which its reader accepts because it reads a remainder
/// of 4096 bytes or more straight into the message buffer. nodeguard's replies are far smaller.
pub const MAX_SEND_FRAME_LEN: usize = 4096;

/// Payload bytes that fit in the first frame of a message, after the ttrpc header.
pub const FIRST_FRAME_PAYLOAD_LEN: usize = MAX_SEND_FRAME_LEN - HEADER_LEN;

/// Message flag bits, meaningful for streaming calls only; unary calls use 0.
pub mod flags {
    /// The sender will send no more data on this stream.
    pub const REMOTE_CLOSED: u8 = 0x1;
    /// A streaming request: data messages from the client follow.
    pub const REMOTE_OPEN: u8 = 0x2;
    /// The data message carries no payload.
    pub const NO_DATA: u8 = 0x4;
}

/// Errors of the ttrpc layer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TtrpcError {
    /// A received header declares a payload over the limit. Unlike a mux error this is
    /// recoverable: the [`Reassembler`] skips the payload and goes on with the next message, so
    /// the caller may answer `stream_id` with `ResourceExhausted` (as Go's ttrpc server does) or
    /// close the connection.
    #[error(
        "ttrpc message on stream {stream_id} declares a {declared}-byte payload, \
         over the limit of {limit} bytes"
    )]
    MessageTooLarge {
        /// Stream the message belongs to.
        stream_id: u32,
        /// Payload length the header declared.
        declared: u32,
        /// The reassembler's limit.
        limit: u32,
    },
    /// A message to send has a payload over [`MAX_MESSAGE_LEN`]; nothing was written.
    #[error(
        "cannot send a {len}-byte ttrpc message on stream {stream_id}: \
         the limit is {MAX_MESSAGE_LEN} bytes"
    )]
    PayloadTooLarge {
        /// Stream the message was for.
        stream_id: u32,
        /// Its payload length.
        len: usize,
    },
    /// The byte stream ended inside a message.
    #[error(
        "ttrpc stream ended inside a message: {buffered} bytes buffered, {missing} bytes missing"
    )]
    Truncated {
        /// Bytes of the incomplete message (header included) received.
        buffered: usize,
        /// Bytes still missing to complete it (for an incomplete header: of the header).
        missing: usize,
    },
    /// A message payload is not the protobuf envelope it should be.
    #[error("ttrpc message on stream {stream_id} is not a valid {what}: {source}")]
    Envelope {
        /// Stream the message belongs to.
        stream_id: u32,
        /// The expected envelope, `ttrpc.Request` or `ttrpc.Response`.
        what: &'static str,
        /// prost's description of the problem.
        source: prost::DecodeError,
    },
    /// All client stream ids up to `u32::MAX` have been used on this connection.
    #[error("ttrpc client stream ids exhausted on this connection")]
    StreamIdsExhausted,
}

/// The type byte of a ttrpc message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// 1: a call; the payload is a `ttrpc.Request`.
    Request,
    /// 2: a reply; the payload is a `ttrpc.Response`.
    Response,
    /// 3: a data message of a streaming call.
    Data,
    /// Any other value. Go's ttrpc server ignores such messages; so should callers.
    Unknown(u8),
}

impl From<u8> for MessageType {
    fn from(byte: u8) -> Self {
        match byte {
            1 => Self::Request,
            2 => Self::Response,
            3 => Self::Data,
            other => Self::Unknown(other),
        }
    }
}

impl From<MessageType> for u8 {
    fn from(message_type: MessageType) -> Self {
        match message_type {
            MessageType::Request => 1,
            MessageType::Response => 2,
            MessageType::Data => 3,
            MessageType::Unknown(other) => other,
        }
    }
}

/// A decoded ttrpc message header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Payload length (the header excluded).
    pub length: u32,
    /// Stream the message belongs to.
    pub stream_id: u32,
    /// Message type.
    pub message_type: MessageType,
    /// Flag bits, see [`flags`].
    pub flags: u8,
}

impl Header {
    /// The header's 10 wire bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut bytes = [0; HEADER_LEN];
        bytes[..4].copy_from_slice(&self.length.to_be_bytes());
        bytes[4..8].copy_from_slice(&self.stream_id.to_be_bytes());
        bytes[8] = self.message_type.into();
        bytes[9] = self.flags;
        bytes
    }

    /// Parses 10 wire bytes. Every byte pattern is a header; limits are checked by the caller.
    pub fn decode(bytes: &[u8; HEADER_LEN]) -> Self {
        Self {
            length: u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
            stream_id: u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]),
            message_type: bytes[8].into(),
            flags: bytes[9],
        }
    }
}

/// One ttrpc message: header fields and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Stream the message belongs to.
    pub stream_id: u32,
    /// Message type.
    pub message_type: MessageType,
    /// Flag bits, see [`flags`]; 0 for unary calls and their replies.
    pub flags: u8,
    /// The payload, usually a protobuf-encoded envelope.
    pub payload: Bytes,
}

impl Message {
    /// A message with the given fields.
    pub fn new(
        stream_id: u32,
        message_type: MessageType,
        flags: u8,
        payload: impl Into<Bytes>,
    ) -> Self {
        Self {
            stream_id,
            message_type,
            flags,
            payload: payload.into(),
        }
    }

    /// A unary call: a [`MessageType::Request`] message with flags 0 carrying `request`.
    pub fn request(stream_id: u32, request: &envelope::Request) -> Self {
        Self::new(stream_id, MessageType::Request, 0, request.encode_to_vec())
    }

    /// The reply to a unary call: a [`MessageType::Response`] message with flags 0 carrying
    /// `response`.
    pub fn response(stream_id: u32, response: &envelope::Response) -> Self {
        Self::new(
            stream_id,
            MessageType::Response,
            0,
            response.encode_to_vec(),
        )
    }

    /// Decodes the payload as a `ttrpc.Request` (without copying the inner payload).
    pub fn decode_request(&self) -> Result<envelope::Request, TtrpcError> {
        envelope::Request::decode(self.payload.clone()).map_err(|source| TtrpcError::Envelope {
            stream_id: self.stream_id,
            what: "ttrpc.Request",
            source,
        })
    }

    /// Decodes the payload as a `ttrpc.Response` (without copying the inner payload).
    pub fn decode_response(&self) -> Result<envelope::Response, TtrpcError> {
        envelope::Response::decode(self.payload.clone()).map_err(|source| TtrpcError::Envelope {
            stream_id: self.stream_id,
            what: "ttrpc.Response",
            source,
        })
    }

    /// The message's header; fails if the payload exceeds [`MAX_MESSAGE_LEN`].
    pub fn header(&self) -> Result<Header, TtrpcError> {
        let length = u32::try_from(self.payload.len())
            .ok()
            .filter(|len| *len <= MAX_MESSAGE_LEN)
            .ok_or(TtrpcError::PayloadTooLarge {
                stream_id: self.stream_id,
                len: self.payload.len(),
            })?;
        Ok(Header {
            length,
            stream_id: self.stream_id,
            message_type: self.message_type,
            flags: self.flags,
        })
    }

    /// Appends header and payload, contiguous and without mux framing, to `out`.
    pub fn encode(&self, out: &mut BytesMut) -> Result<(), TtrpcError> {
        let header = self.header()?;
        out.reserve(HEADER_LEN + self.payload.len());
        out.put_slice(&header.encode());
        out.put_slice(&self.payload);
        Ok(())
    }

    /// Appends the message to `out` as mux frames for `conn_id` that Go's reader accepts: the
    /// first frame holds the header and up to [`FIRST_FRAME_PAYLOAD_LEN`] payload bytes, each
    /// following frame up to [`MAX_SEND_FRAME_LEN`] bytes. No frame spans two messages.
    ///
    /// Writing everything this appends in one `write_all` keeps the frames of concurrent
    /// messages from interleaving (interleaving would be harmless for the mux, fatal for ttrpc).
    pub fn encode_mux_frames(&self, conn_id: ConnId, out: &mut BytesMut) -> Result<(), TtrpcError> {
        let header = self.header()?;
        let payload = &self.payload[..];
        let first_len = payload.len().min(FIRST_FRAME_PAYLOAD_LEN);
        let (first, rest) = payload.split_at(first_len);
        let frames = 1 + rest.len().div_ceil(MAX_SEND_FRAME_LEN);
        out.reserve(frames * FRAME_HEADER_LEN + HEADER_LEN + payload.len());

        // Frame lengths are at most 4096, so the casts are lossless.
        out.put_slice(&frame_header(conn_id, (HEADER_LEN + first.len()) as u32));
        out.put_slice(&header.encode());
        out.put_slice(first);
        for chunk in rest.chunks(MAX_SEND_FRAME_LEN) {
            out.put_slice(&frame_header(conn_id, chunk.len() as u32));
            out.put_slice(chunk);
        }
        Ok(())
    }
}

/// Builds a `ttrpc.Request` envelope for `service`/`method`. `timeout` becomes `timeout_nano`
/// (saturating at `i64::MAX`); `None` means no deadline.
pub fn request_envelope(
    service: &str,
    method: &str,
    payload: impl Into<Bytes>,
    timeout: Option<Duration>,
) -> envelope::Request {
    envelope::Request {
        service: service.to_owned(),
        method: method.to_owned(),
        payload: payload.into(),
        timeout_nano: timeout.map_or(0, |t| i64::try_from(t.as_nanos()).unwrap_or(i64::MAX)),
        metadata: Vec::new(),
    }
}

/// Rebuilds the ttrpc messages of one logical connection from its byte stream.
///
/// Feed it the payloads of that connection's mux frames in order, in pieces of any size.
/// Memory stays bounded: a declared length is checked against the limit before any payload is
/// buffered, and the payload of an oversized message is discarded as it arrives.
#[derive(Debug)]
pub struct Reassembler {
    buf: BytesMut,
    max_message_len: u32,
    /// Bytes of an oversized message's payload still to be discarded.
    skip: usize,
}

impl Default for Reassembler {
    fn default() -> Self {
        Self::new()
    }
}

impl Reassembler {
    /// A reassembler accepting payloads up to [`MAX_MESSAGE_LEN`].
    pub fn new() -> Self {
        Self::with_max_message_len(MAX_MESSAGE_LEN)
    }

    /// A reassembler accepting payloads up to `max_message_len` bytes.
    pub fn with_max_message_len(max_message_len: u32) -> Self {
        Self {
            buf: BytesMut::new(),
            max_message_len,
            skip: 0,
        }
    }

    /// Appends the next bytes of the connection's stream. Call
    /// [`next_message`](Self::next_message) until it returns `None` before pushing more.
    pub fn push(&mut self, mut bytes: &[u8]) {
        if self.skip > 0 {
            let dropped = self.skip.min(bytes.len());
            self.skip -= dropped;
            bytes = &bytes[dropped..];
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Number of buffered bytes not yet returned as messages.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next complete message, `Ok(None)` if more bytes are needed.
    ///
    /// [`TtrpcError::MessageTooLarge`] is returned once per oversized message; the reassembler
    /// stays usable.
    pub fn next_message(&mut self) -> Result<Option<Message>, TtrpcError> {
        let Some(header_bytes) = self.buf.first_chunk::<HEADER_LEN>() else {
            return Ok(None);
        };
        let header = Header::decode(header_bytes);
        if header.length > self.max_message_len {
            self.buf.advance(HEADER_LEN);
            let declared = header.length as usize;
            let dropped = declared.min(self.buf.len());
            self.buf.advance(dropped);
            self.skip = declared - dropped;
            return Err(TtrpcError::MessageTooLarge {
                stream_id: header.stream_id,
                declared: header.length,
                limit: self.max_message_len,
            });
        }
        let message_len = HEADER_LEN + header.length as usize;
        if self.buf.len() < message_len {
            return Ok(None);
        }
        let mut message = self.buf.split_to(message_len);
        message.advance(HEADER_LEN);
        Ok(Some(Message {
            stream_id: header.stream_id,
            message_type: header.message_type,
            flags: header.flags,
            payload: message.freeze(),
        }))
    }

    /// Call at end of stream: `Ok` if it ended on a message boundary, otherwise
    /// [`TtrpcError::Truncated`].
    pub fn finish(&self) -> Result<(), TtrpcError> {
        let buffered = self.buf.len();
        let missing = match self.buf.first_chunk::<HEADER_LEN>() {
            _ if self.skip > 0 => self.skip,
            None if buffered == 0 => 0,
            Some(header) => {
                (HEADER_LEN + Header::decode(header).length as usize).saturating_sub(buffered)
            }
            None => HEADER_LEN - buffered,
        };
        if missing == 0 {
            Ok(())
        } else {
            Err(TtrpcError::Truncated { buffered, missing })
        }
    }
}

/// Allocates client stream ids: 1, 3, 5, ... (ttrpc requires odd, strictly increasing ids).
#[derive(Debug, Clone)]
pub struct StreamIds {
    next: Option<u32>,
}

impl Default for StreamIds {
    fn default() -> Self {
        Self::new()
    }
}

impl StreamIds {
    /// Starts at 1.
    pub fn new() -> Self {
        Self { next: Some(1) }
    }

    /// The next unused id, or [`TtrpcError::StreamIdsExhausted`] after 2³¹ calls.
    pub fn next_id(&mut self) -> Result<u32, TtrpcError> {
        let id = self.next.ok_or(TtrpcError::StreamIdsExhausted)?;
        self.next = id.checked_add(2);
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nri::transport::mux::{MuxDecoder, PLUGIN_SERVICE_CONN, RUNTIME_SERVICE_CONN};
    use proptest::prelude::*;
    use std::collections::VecDeque;

    fn frames_of(wire: &[u8]) -> Vec<(ConnId, Bytes)> {
        let mut decoder = MuxDecoder::new();
        decoder.push(wire);
        let mut frames = Vec::new();
        while let Some(frame) = decoder.next_frame().unwrap() {
            frames.push((frame.conn_id, frame.payload));
        }
        decoder.finish().unwrap();
        frames
    }

    fn drain(reassembler: &mut Reassembler) -> Vec<Message> {
        let mut messages = Vec::new();
        while let Some(message) = reassembler.next_message().unwrap() {
            messages.push(message);
        }
        messages
    }

    #[test]
    fn header_layout() {
        let header = Header {
            length: 0x0102_0304,
            stream_id: 0x0a0b_0c0d,
            message_type: MessageType::Response,
            flags: flags::REMOTE_CLOSED | flags::NO_DATA,
        };
        let bytes = header.encode();
        assert_eq!(bytes, [1, 2, 3, 4, 0x0a, 0x0b, 0x0c, 0x0d, 2, 5]);
        assert_eq!(Header::decode(&bytes), header);
    }

    #[test]
    fn message_type_bytes() {
        for byte in 0..=u8::MAX {
            assert_eq!(u8::from(MessageType::from(byte)), byte);
        }
        assert_eq!(MessageType::from(1), MessageType::Request);
        assert_eq!(MessageType::from(2), MessageType::Response);
        assert_eq!(MessageType::from(3), MessageType::Data);
        assert_eq!(MessageType::from(0), MessageType::Unknown(0));
    }

    #[test]
    fn twenty_kib_message_is_split_into_4096_byte_frames() {
        let payload: Vec<u8> = (0..20 * 1024).map(|i| (i % 251) as u8).collect();
        let message = Message::new(3, MessageType::Response, 0, payload.clone());
        let mut wire = BytesMut::new();
        message
            .encode_mux_frames(PLUGIN_SERVICE_CONN, &mut wire)
            .unwrap();

        let frames = frames_of(&wire);
        let lens: Vec<usize> = frames.iter().map(|(_, p)| p.len()).collect();
        // 10 + 4086, then 4096 x 4 = 16384, then 20480 - 4086 - 16384 = 10.
        assert_eq!(lens, vec![4096, 4096, 4096, 4096, 4096, 10]);
        assert!(frames.iter().all(|(c, _)| *c == PLUGIN_SERVICE_CONN));
        assert_eq!(
            &frames[0].1[..HEADER_LEN],
            &[0, 0, 0x50, 0, 0, 0, 0, 3, 2, 0],
            "header: length 20480, stream 3, response, no flags"
        );
        assert_eq!(
            wire.len(),
            6 * FRAME_HEADER_LEN + HEADER_LEN + payload.len()
        );

        let mut reassembler = Reassembler::new();
        for (_, chunk) in &frames {
            reassembler.push(chunk);
        }
        assert_eq!(drain(&mut reassembler), vec![message]);
        reassembler.finish().unwrap();
    }

    #[test]
    fn frame_boundaries_at_the_edges() {
        for (len, want) in [
            (0, vec![10]),
            (1, vec![11]),
            (4086, vec![4096]),
            (4087, vec![4096, 1]),
            (4086 + 4096, vec![4096, 4096]),
            (4086 + 4096 + 1, vec![4096, 4096, 1]),
        ] {
            let message = Message::new(1, MessageType::Request, 0, vec![0xee; len]);
            let mut wire = BytesMut::new();
            message
                .encode_mux_frames(RUNTIME_SERVICE_CONN, &mut wire)
                .unwrap();
            let lens: Vec<usize> = frames_of(&wire).iter().map(|(_, p)| p.len()).collect();
            assert_eq!(lens, want, "payload of {len} bytes");
        }
    }

    #[test]
    fn largest_message_is_accepted_and_one_more_byte_is_not() {
        let max = MAX_MESSAGE_LEN as usize;
        let message = Message::new(1, MessageType::Response, 0, vec![1; max]);
        let mut wire = BytesMut::new();
        message
            .encode_mux_frames(PLUGIN_SERVICE_CONN, &mut wire)
            .unwrap();
        let mut reassembler = Reassembler::new();
        for (_, chunk) in frames_of(&wire) {
            reassembler.push(&chunk);
        }
        assert_eq!(drain(&mut reassembler).len(), 1);

        let too_big = Message::new(5, MessageType::Response, 0, vec![1; max + 1]);
        let mut out = BytesMut::new();
        let err = too_big
            .encode_mux_frames(PLUGIN_SERVICE_CONN, &mut out)
            .unwrap_err();
        assert_eq!(
            err,
            TtrpcError::PayloadTooLarge {
                stream_id: 5,
                len: max + 1
            }
        );
        assert!(out.is_empty(), "nothing written on error");
        assert!(too_big.encode(&mut out).is_err());
        assert!(out.is_empty());
    }

    /// A model of how Go reads what we send: NRI's mux `conn.Read` fails with `ENOMEM` when the
    /// next frame does not fit the caller's buffer; ttrpc reads the conn through a 4096-byte
    /// `bufio.Reader`, which passes large reads straight to the conn only when it is empty.
    struct GoReader {
        frames: VecDeque<Bytes>,
        buf: Vec<u8>,
        r: usize,
    }

    impl GoReader {
        fn conn_read(&mut self, cap: usize) -> Result<Bytes, String> {
            let frame = self.frames.pop_front().ok_or("EOF")?;
            if cap < frame.len() {
                return Err(format!(
                    "ENOMEM: {}-byte frame, {cap}-byte buffer",
                    frame.len()
                ));
            }
            Ok(frame)
        }

        fn read(&mut self, p: &mut [u8]) -> Result<usize, String> {
            if self.r == self.buf.len() {
                if p.len() >= 4096 {
                    let frame = self.conn_read(p.len())?;
                    p[..frame.len()].copy_from_slice(&frame);
                    return Ok(frame.len());
                }
                self.buf = self.conn_read(4096)?.to_vec();
                self.r = 0;
            }
            let n = p.len().min(self.buf.len() - self.r);
            p[..n].copy_from_slice(&self.buf[self.r..self.r + n]);
            self.r += n;
            Ok(n)
        }

        fn read_full(&mut self, p: &mut [u8]) -> Result<(), String> {
            let mut done = 0;
            while done < p.len() {
                done += self.read(&mut p[done..])?;
            }
            Ok(())
        }

        fn recv(&mut self) -> Result<Vec<u8>, String> {
            let mut header = [0; HEADER_LEN];
            self.read_full(&mut header)?;
            let mut payload = vec![0; Header::decode(&header).length as usize];
            self.read_full(&mut payload)?;
            Ok(payload)
        }
    }

    #[test]
    fn go_reader_model_accepts_our_frames() {
        let sizes = [0, 5, 4086, 4087, 5000, 8192, 20 * 1024, 100_000, 3];
        let mut wire = BytesMut::new();
        for (i, size) in sizes.iter().enumerate() {
            let message = Message::new(
                2 * i as u32 + 1,
                MessageType::Response,
                0,
                vec![i as u8; *size],
            );
            message
                .encode_mux_frames(PLUGIN_SERVICE_CONN, &mut wire)
                .unwrap();
        }
        let mut go = GoReader {
            frames: frames_of(&wire).into_iter().map(|(_, p)| p).collect(),
            buf: Vec::new(),
            r: 0,
        };
        for (i, size) in sizes.iter().enumerate() {
            assert_eq!(go.recv().unwrap(), vec![i as u8; *size]);
        }
        assert!(go.frames.is_empty());
    }

    #[test]
    fn go_reader_model_rejects_one_big_frame() {
        // The reason for splitting: one frame holding a whole 5000-byte message fails.
        let message = Message::new(1, MessageType::Response, 0, vec![0; 5000]);
        let mut contiguous = BytesMut::new();
        message.encode(&mut contiguous).unwrap();
        let mut go = GoReader {
            frames: VecDeque::from([contiguous.freeze()]),
            buf: Vec::new(),
            r: 0,
        };
        assert!(go.recv().unwrap_err().starts_with("ENOMEM"));
    }

    #[test]
    fn messages_split_across_pushes_byte_by_byte() {
        let messages = vec![
            Message::new(1, MessageType::Request, 0, &b"first"[..]),
            Message::new(3, MessageType::Request, 0, Bytes::new()),
            Message::new(5, MessageType::Data, flags::REMOTE_CLOSED, &b"third"[..]),
        ];
        let mut wire = BytesMut::new();
        for m in &messages {
            m.encode(&mut wire).unwrap();
        }
        let mut reassembler = Reassembler::new();
        let mut out = Vec::new();
        for byte in wire.iter() {
            reassembler.push(&[*byte]);
            out.extend(drain(&mut reassembler));
        }
        assert_eq!(out, messages);
        reassembler.finish().unwrap();
    }

    #[test]
    fn many_messages_in_one_push() {
        let messages: Vec<Message> = (0..50u32)
            .map(|i| {
                Message::new(
                    2 * i + 1,
                    MessageType::Request,
                    0,
                    vec![i as u8; i as usize * 7],
                )
            })
            .collect();
        let mut wire = BytesMut::new();
        for m in &messages {
            m.encode(&mut wire).unwrap();
        }
        let mut reassembler = Reassembler::new();
        reassembler.push(&wire);
        assert_eq!(drain(&mut reassembler), messages);
        assert_eq!(reassembler.buffered(), 0);
    }

    #[test]
    fn zero_length_message() {
        let message = Message::new(7, MessageType::Response, 0, Bytes::new());
        let mut wire = BytesMut::new();
        message.encode(&mut wire).unwrap();
        assert_eq!(&wire[..], &[0, 0, 0, 0, 0, 0, 0, 7, 2, 0]);
        let mut reassembler = Reassembler::new();
        reassembler.push(&wire);
        assert_eq!(reassembler.next_message(), Ok(Some(message)));
        assert_eq!(reassembler.next_message(), Ok(None));
    }

    #[test]
    fn oversized_message_is_reported_skipped_and_followed() {
        let mut reassembler = Reassembler::with_max_message_len(8);
        let big = Header {
            length: 20,
            stream_id: 9,
            message_type: MessageType::Request,
            flags: 0,
        };
        let next = Message::new(11, MessageType::Request, 0, &b"ok"[..]);
        let mut wire = BytesMut::new();
        wire.put_slice(&big.encode());
        wire.put_slice(&[0xaa; 20]);
        next.encode(&mut wire).unwrap();

        // Header and 5 payload bytes first: the error comes before the payload is complete.
        reassembler.push(&wire[..HEADER_LEN + 5]);
        assert_eq!(
            reassembler.next_message(),
            Err(TtrpcError::MessageTooLarge {
                stream_id: 9,
                declared: 20,
                limit: 8
            })
        );
        assert_eq!(reassembler.buffered(), 0);
        assert!(matches!(
            reassembler.finish(),
            Err(TtrpcError::Truncated { missing: 15, .. })
        ));
        // The rest of the oversized payload is discarded without being buffered.
        reassembler.push(&wire[HEADER_LEN + 5..HEADER_LEN + 19]);
        assert_eq!(reassembler.buffered(), 0);
        reassembler.push(&wire[HEADER_LEN + 19..]);
        assert_eq!(reassembler.next_message(), Ok(Some(next)));
        reassembler.finish().unwrap();
    }

    #[test]
    fn huge_declared_length_allocates_nothing() {
        let mut reassembler = Reassembler::new();
        let header = Header {
            length: u32::MAX,
            stream_id: 1,
            message_type: MessageType::Request,
            flags: 0,
        };
        reassembler.push(&header.encode());
        assert!(matches!(
            reassembler.next_message(),
            Err(TtrpcError::MessageTooLarge {
                declared: u32::MAX,
                ..
            })
        ));
        reassembler.push(&[0; 1000]);
        assert_eq!(reassembler.buffered(), 0);
        assert_eq!(reassembler.next_message(), Ok(None));
    }

    #[test]
    fn truncated_stream() {
        let message = Message::new(1, MessageType::Request, 0, vec![1; 30]);
        let mut wire = BytesMut::new();
        message.encode(&mut wire).unwrap();

        let mut reassembler = Reassembler::new();
        reassembler.push(&wire[..4]);
        assert_eq!(
            reassembler.finish(),
            Err(TtrpcError::Truncated {
                buffered: 4,
                missing: 6
            })
        );
        reassembler.push(&wire[4..25]);
        assert_eq!(reassembler.next_message(), Ok(None));
        assert_eq!(
            reassembler.finish(),
            Err(TtrpcError::Truncated {
                buffered: 25,
                missing: 15
            })
        );
        assert_eq!(Reassembler::default().finish(), Ok(()));
    }

    #[test]
    fn envelopes() {
        let request = request_envelope(
            "nri.pkg.api.v1alpha1.Runtime",
            "RegisterPlugin",
            vec![1, 2, 3],
            Some(Duration::from_secs(2)),
        );
        assert_eq!(request.timeout_nano, 2_000_000_000);
        let message = Message::request(1, &request);
        assert_eq!(
            (message.message_type, message.flags),
            (MessageType::Request, 0)
        );
        assert_eq!(message.decode_request().unwrap(), request);

        let garbage = Message::new(3, MessageType::Request, 0, vec![0xff, 0xff]);
        let err = garbage.decode_request().unwrap_err();
        assert!(matches!(
            err,
            TtrpcError::Envelope {
                stream_id: 3,
                what: "ttrpc.Request",
                ..
            }
        ));
        assert!(garbage.decode_response().is_err());

        let no_deadline = request_envelope("s", "m", Bytes::new(), None);
        assert_eq!(no_deadline.timeout_nano, 0);
        let forever = request_envelope("s", "m", Bytes::new(), Some(Duration::MAX));
        assert_eq!(forever.timeout_nano, i64::MAX);
    }

    #[test]
    fn stream_ids_are_odd_and_increasing() {
        let mut ids = StreamIds::new();
        assert_eq!(
            (0..4).map(|_| ids.next_id().unwrap()).collect::<Vec<_>>(),
            vec![1, 3, 5, 7]
        );
        let mut nearly_done = StreamIds {
            next: Some(u32::MAX),
        };
        assert_eq!(nearly_done.next_id(), Ok(u32::MAX));
        assert_eq!(nearly_done.next_id(), Err(TtrpcError::StreamIdsExhausted));
    }

    fn message_strategy() -> impl Strategy<Value = Message> {
        (
            any::<u32>(),
            any::<u8>(),
            any::<u8>(),
            prop::collection::vec(any::<u8>(), 0..10_000),
        )
            .prop_map(|(stream_id, t, flags, payload)| {
                Message::new(stream_id, MessageType::from(t), flags, payload)
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn mux_framed_round_trip(
            messages in prop::collection::vec(message_strategy(), 0..6),
            conn_id in 1u32..4,
        ) {
            let mut wire = BytesMut::new();
            for m in &messages {
                m.encode_mux_frames(conn_id, &mut wire).unwrap();
            }
            let mut reassembler = Reassembler::new();
            let mut out = Vec::new();
            let mut frames = 0usize;
            let mut remaining_in_message = 0usize;
            for (frame_conn, payload) in frames_of(&wire) {
                prop_assert_eq!(frame_conn, conn_id);
                prop_assert!(payload.len() <= MAX_SEND_FRAME_LEN);
                // Frames never span two messages: each starts a message or continues one.
                if remaining_in_message == 0 {
                    prop_assert!(payload.len() >= HEADER_LEN);
                    let header = Header::decode(payload[..HEADER_LEN].try_into().unwrap());
                    remaining_in_message = HEADER_LEN + header.length as usize;
                }
                frames += 1;
                prop_assert!(payload.len() <= remaining_in_message);
                remaining_in_message -= payload.len();
                reassembler.push(&payload);
                out.extend(drain(&mut reassembler));
            }
            let payload_bytes: usize = messages.iter().map(|m| m.payload.len()).sum();
            prop_assert!(frames >= messages.len());
            // Each message: one frame, plus ceil((len - 4086) / 4096) <= (len + 9) / 4096 more.
            prop_assert!(
                frames <= messages.len() + (payload_bytes + 9 * messages.len()) / MAX_SEND_FRAME_LEN
            );
            prop_assert_eq!(out, messages);
            prop_assert_eq!(reassembler.finish(), Ok(()));
        }

        #[test]
        fn arbitrary_bytes_never_panic(
            chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..16),
            limit in 0u32..256,
        ) {
            let mut reassembler = Reassembler::with_max_message_len(limit);
            for chunk in &chunks {
                reassembler.push(chunk);
                loop {
                    match reassembler.next_message() {
                        Ok(Some(message)) => prop_assert!(message.payload.len() <= limit as usize),
                        Ok(None) => break,
                        Err(TtrpcError::MessageTooLarge { declared, .. }) => {
                            prop_assert!(declared > limit)
                        }
                        Err(other) => prop_assert!(false, "unexpected {other:?}"),
                    }
                }
            }
            let _ = reassembler.finish();
        }

        #[test]
        fn arbitrary_payloads_never_panic_envelope_decoding(
            payload in prop::collection::vec(any::<u8>(), 0..256),
        ) {
            let message = Message::new(1, MessageType::Request, 0, payload);
            let _ = message.decode_request();
            let _ = message.decode_response();
        }
    }
}
