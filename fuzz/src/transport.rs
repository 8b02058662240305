//! Checks of the two receive layers of the NRI socket, [`MuxDecoder`] and [`Reassembler`] (and
//! [`Demux`], both together), and of the encoder that cuts messages into frames.
//!
//! Inputs are read by [`super::chunks::Input`]: the stream is decoded in one push and in the
//! input's chunks, and both runs must return the same frames, messages and errors.

use bytes::BytesMut;
use nodeguard::nri::transport::demux::{Demux, DemuxError};
use nodeguard::nri::transport::mux::{
    self, ConnId, DEFAULT_MAX_FRAME_PAYLOAD, FRAME_HEADER_LEN, Frame, MuxDecoder, MuxError,
    PLUGIN_SERVICE_CONN, RUNTIME_SERVICE_CONN,
};
use nodeguard::nri::transport::ttrpc::{
    HEADER_LEN, Header, MAX_MESSAGE_LEN, MAX_SEND_FRAME_LEN, Message, MessageType, Reassembler,
    TtrpcError,
};

use super::chunks::Input;

/// Decoder limits a control byte chooses from: tiny ones so that oversized frames and
/// messages are easy to reach, and the defaults.
const MUX_LIMITS: [u32; 6] = [0, 1, 10, 64, 4096, DEFAULT_MAX_FRAME_PAYLOAD];
const TTRPC_LIMITS: [u32; 6] = [0, 1, 10, 64, 4096, MAX_MESSAGE_LEN];

/// Largest total payload of the messages the round trip builds from one input.
const ROUND_TRIP_BUDGET: usize = 24 << 10;

/// Everything a [`MuxDecoder`] returned for a stream.
#[derive(Debug, PartialEq, Eq)]
struct MuxRun {
    frames: Vec<Frame>,
    error: Option<MuxError>,
    buffered: usize,
    finish: Result<(), MuxError>,
}

fn run_mux(limit: u32, chunks: &[&[u8]]) -> MuxRun {
    let mut decoder = MuxDecoder::with_max_payload(limit);
    let (mut frames, mut error) = (Vec::new(), None);
    let (mut pushed, mut taken) = (0usize, 0usize);
    'chunks: for chunk in chunks {
        decoder.push(chunk);
        pushed += chunk.len();
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => {
                    assert!(
                        frame.payload.len() <= limit as usize,
                        "a {}-byte frame passed a {limit}-byte limit",
                        frame.payload.len()
                    );
                    taken += FRAME_HEADER_LEN + frame.payload.len();
                    frames.push(frame);
                }
                Ok(None) => break,
                Err(err) => {
                    let MuxError::FrameTooLarge {
                        declared,
                        limit: reported,
                        ..
                    } = err
                    else {
                        panic!("next_frame returned {err:?}");
                    };
                    assert!(declared > limit && reported == limit, "{err:?}");
                    // Poisoned: the same error again, nothing buffered, input ignored.
                    assert_eq!(decoder.next_frame(), Err(err.clone()));
                    assert_eq!(decoder.buffered(), 0);
                    decoder.push(b"more");
                    assert_eq!(decoder.buffered(), 0);
                    error = Some(err);
                    break 'chunks;
                }
            }
        }
        // No byte is lost or invented: frames out plus bytes buffered are the bytes in.
        assert_eq!(taken + decoder.buffered(), pushed);
    }
    MuxRun {
        frames,
        error,
        buffered: decoder.buffered(),
        finish: decoder.finish(),
    }
}

/// `mux_frames`: arbitrary bytes in arbitrary chunks to [`MuxDecoder`]. Never panics; no frame
/// exceeds the limit; one push and many pushes give the same frames and errors; the frames
/// re-encode to the bytes they came from.
pub fn mux_frames(data: &[u8]) {
    let input = Input::parse(data);
    let limit = MUX_LIMITS[usize::from(input.control) % MUX_LIMITS.len()];
    let whole = run_mux(limit, &[input.stream]);
    let pieces = run_mux(limit, &input.chunks(input.stream));
    assert_eq!(whole, pieces, "split-invariance");

    let mut wire = BytesMut::new();
    for frame in &whole.frames {
        mux::encode_frame(frame.conn_id, &frame.payload, &mut wire).unwrap();
    }
    assert_eq!(&wire[..], &input.stream[..wire.len()], "frames re-encode");
    if whole.error.is_none() {
        assert_eq!(wire.len() + whole.buffered, input.stream.len());
        assert_eq!(whole.finish.is_ok(), whole.buffered == 0);
    }
}

/// Everything a [`Reassembler`] returned for a stream.
#[derive(Debug, PartialEq, Eq)]
struct ReassemblerRun {
    items: Vec<Result<Message, TtrpcError>>,
    buffered: usize,
    finish: Result<(), TtrpcError>,
}

fn run_reassembler(limit: u32, chunks: &[&[u8]]) -> ReassemblerRun {
    let mut reassembler = Reassembler::with_max_message_len(limit);
    let mut items = Vec::new();
    for chunk in chunks {
        reassembler.push(chunk);
        loop {
            let before = reassembler.buffered();
            match reassembler.next_message() {
                Ok(Some(message)) => {
                    assert!(message.payload.len() <= limit as usize);
                    items.push(Ok(message));
                }
                Ok(None) => break,
                Err(err) => {
                    let TtrpcError::MessageTooLarge {
                        declared,
                        limit: reported,
                        ..
                    } = err
                    else {
                        panic!("next_message returned {err:?}");
                    };
                    assert!(declared > limit && reported == limit, "{err:?}");
                    assert!(reassembler.buffered() < before, "no progress after {err:?}");
                    items.push(Err(err));
                }
            }
        }
    }
    ReassemblerRun {
        items,
        buffered: reassembler.buffered(),
        finish: reassembler.finish(),
    }
}

/// Everything a [`Demux`] returned for a stream.
#[derive(Debug, PartialEq, Eq)]
struct DemuxRun {
    items: Vec<Result<(ConnId, Message), DemuxError>>,
    finish: Result<(), DemuxError>,
}

fn run_demux(chunks: &[&[u8]]) -> DemuxRun {
    let mut demux = Demux::nri();
    let mut items = Vec::new();
    'chunks: for chunk in chunks {
        demux.push(chunk);
        loop {
            match demux.next_message() {
                Ok(Some((conn_id, message))) => {
                    assert!(
                        conn_id == PLUGIN_SERVICE_CONN || conn_id == RUNTIME_SERVICE_CONN,
                        "message for unknown connection {conn_id}"
                    );
                    assert!(message.payload.len() <= MAX_MESSAGE_LEN as usize);
                    items.push(Ok((conn_id, message)));
                }
                Ok(None) => break,
                Err(err @ DemuxError::Mux(_)) => {
                    // Fatal: the socket would be closed.
                    items.push(Err(err));
                    break 'chunks;
                }
                Err(
                    err @ DemuxError::Ttrpc {
                        source: TtrpcError::MessageTooLarge { .. },
                        ..
                    },
                ) => items.push(Err(err)),
                Err(err) => panic!("next_message returned {err:?}"),
            }
        }
    }
    DemuxRun {
        items,
        finish: demux.finish(),
    }
}

/// Messages described by `bytes`: per message `[stream id: 4][type][flags][len: u16 LE]` and
/// then a seed of up to `len` bytes, repeated to fill `len` (so that messages span frames).
fn messages_from(mut bytes: &[u8]) -> Vec<Message> {
    let mut messages = Vec::new();
    let mut budget = ROUND_TRIP_BUDGET;
    while let Some((head, rest)) = bytes.split_first_chunk::<8>() {
        let stream_id = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let len = usize::from(u16::from_le_bytes([head[6], head[7]])).min(budget);
        budget -= len;
        let (seed, rest) = rest.split_at(len.min(rest.len()));
        let payload: Vec<u8> = if seed.is_empty() {
            vec![0; len]
        } else {
            seed.iter().copied().cycle().take(len).collect()
        };
        messages.push(Message::new(
            stream_id,
            MessageType::from(head[4]),
            head[5],
            payload,
        ));
        bytes = rest;
    }
    messages
}

/// The round trip: messages we encode come back whole, in frames Go's reader accepts.
fn round_trip(input: &Input<'_>) {
    let conn_id = if input.control & 0x80 == 0 {
        PLUGIN_SERVICE_CONN
    } else {
        RUNTIME_SERVICE_CONN
    };
    let messages = messages_from(input.stream);
    let mut wire = BytesMut::new();
    for message in &messages {
        message.encode_mux_frames(conn_id, &mut wire).unwrap();
    }

    // Frame by frame: at most 4096 payload bytes, never spanning two messages.
    let mut decoder = MuxDecoder::new();
    decoder.push(&wire);
    let mut remaining_in_message = 0usize;
    while let Some(frame) = decoder.next_frame().unwrap() {
        assert_eq!(frame.conn_id, conn_id);
        assert!(
            frame.payload.len() <= MAX_SEND_FRAME_LEN,
            "a {}-byte frame",
            frame.payload.len()
        );
        if remaining_in_message == 0 {
            let header: &[u8; HEADER_LEN] = frame
                .payload
                .first_chunk()
                .expect("a message's first frame holds its whole header");
            remaining_in_message = HEADER_LEN + Header::decode(header).length as usize;
        }
        assert!(
            frame.payload.len() <= remaining_in_message,
            "frame spans two messages"
        );
        remaining_in_message -= frame.payload.len();
    }
    assert_eq!(remaining_in_message, 0);
    decoder.finish().unwrap();

    // Decoded back in the input's chunks, through both layers.
    let run = run_demux(&input.chunks(&wire));
    let expected: Vec<_> = messages.into_iter().map(|m| Ok((conn_id, m))).collect();
    assert_eq!(run.items, expected, "round trip");
    assert_eq!(run.finish, Ok(()));
}

/// `ttrpc_stream`: arbitrary bytes in arbitrary chunks to [`Reassembler`] and [`Demux`]. Never
/// panics; messages respect the limit; one push and many pushes agree; and messages built from
/// the input and encoded with [`Message::encode_mux_frames`] decode back unchanged from frames
/// of at most 4096 payload bytes.
pub fn ttrpc_stream(data: &[u8]) {
    let input = Input::parse(data);
    let chunks = input.chunks(input.stream);

    let limit = TTRPC_LIMITS[usize::from(input.control) % TTRPC_LIMITS.len()];
    let whole = run_reassembler(limit, &[input.stream]);
    let pieces = run_reassembler(limit, &chunks);
    assert_eq!(whole, pieces, "reassembler split-invariance");
    if whole.items.iter().all(Result::is_ok) {
        // Without oversized messages, the messages re-encode to the bytes they came from.
        let mut wire = BytesMut::new();
        for message in whole.items.iter().flatten() {
            message.encode(&mut wire).unwrap();
        }
        assert_eq!(&wire[..], &input.stream[..wire.len()], "messages re-encode");
        assert_eq!(wire.len() + whole.buffered, input.stream.len());
    }

    let whole = run_demux(&[input.stream]);
    let pieces = run_demux(&chunks);
    assert_eq!(whole, pieces, "demux split-invariance");

    round_trip(&input);
}
