//! Thin tokio glue: read ttrpc messages from, and write them to, the multiplexed NRI socket.
//!
//! All parsing happens in the sans-I/O [`Demux`]; this module only moves bytes.
//!
//! ```
//! # async fn demo() -> Result<(), nodeguard::nri::transport::io::IoError> {
//! use nodeguard::nri::transport::io::{MessageReader, write_message};
//! use nodeguard::nri::transport::mux::PLUGIN_SERVICE_CONN;
//! use nodeguard::nri::transport::ttrpc::{Message, MessageType};
//!
//! let (mut ours, theirs) = tokio::io::duplex(64 * 1024);
//! let message = Message::new(1, MessageType::Request, 0, vec![1u8; 10_000]);
//! write_message(&mut ours, PLUGIN_SERVICE_CONN, &message).await?;
//! drop(ours);
//!
//! let mut reader = MessageReader::new(theirs);
//! assert_eq!(reader.next_message().await?, Some((PLUGIN_SERVICE_CONN, message)));
//! assert_eq!(reader.next_message().await?, None);
//! # Ok(())
//! # }
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
//! ```

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::demux::{Demux, DemuxError};
use super::mux::ConnId;
use super::ttrpc::{Message, TtrpcError};

/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 16 * 1024;

/// Errors of reading or writing the NRI socket.
#[derive(Debug, thiserror::Error)]
pub enum IoError {
    /// The socket failed.
    #[error("NRI socket I/O failed: {0}")]
    Io(#[from] std::io::Error),
    /// The received bytes are not a valid mux/ttrpc stream (or ended inside a message).
    #[error("invalid data from the NRI socket: {0}")]
    Demux(#[from] DemuxError),
    /// A message to send could not be encoded.
    #[error("cannot send ttrpc message: {0}")]
    Encode(#[from] TtrpcError),
}

/// Reads `(conn id, message)` pairs from the read half of the NRI socket.
#[derive(Debug)]
pub struct MessageReader<R> {
    reader: R,
    demux: Demux,
    chunk: Box<[u8]>,
}

impl<R: AsyncRead + Unpin> MessageReader<R> {
    /// A reader for NRI's two connections with default limits ([`Demux::nri`]).
    pub fn new(reader: R) -> Self {
        Self::with_demux(reader, Demux::nri())
    }

    /// A reader using `demux` (e.g. other connections or limits).
    pub fn with_demux(reader: R, demux: Demux) -> Self {
        Self {
            reader,
            demux,
            chunk: vec![0; READ_CHUNK].into_boxed_slice(),
        }
    }

    /// The next message, `Ok(None)` when the peer closed the socket on a message boundary.
    ///
    /// Cancel-safe: dropping the future loses no received bytes. After
    /// [`TtrpcError::MessageTooLarge`] (inside [`IoError::Demux`]) reading may continue; after
    /// any other error the connection is unusable.
    pub async fn next_message(&mut self) -> Result<Option<(ConnId, Message)>, IoError> {
        loop {
            if let Some(item) = self.demux.next_message()? {
                return Ok(Some(item));
            }
            let n = self.reader.read(&mut self.chunk).await?;
            if n == 0 {
                self.demux.finish()?;
                return Ok(None);
            }
            self.demux.push(&self.chunk[..n]);
        }
    }

    /// Gives the underlying reader back (buffered, undecoded bytes are lost).
    pub fn into_inner(self) -> R {
        self.reader
    }
}

/// Writes `message` to `writer` as mux frames for `conn_id` (see
/// [`Message::encode_mux_frames`]) with a single `write_all`, then flushes.
///
/// Not cancel-safe: a dropped future may leave a partial message on the socket, which breaks
/// the connection. Serialize writers (one task or a lock) so messages do not interleave.
pub async fn write_message<W: AsyncWrite + Unpin>(
    writer: &mut W,
    conn_id: ConnId,
    message: &Message,
) -> Result<(), IoError> {
    let mut out = BytesMut::new();
    message.encode_mux_frames(conn_id, &mut out)?;
    writer.write_all(&out).await?;
    writer.flush().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nri::transport::mux::{PLUGIN_SERVICE_CONN, RUNTIME_SERVICE_CONN, frame_header};
    use crate::nri::transport::ttrpc::{MAX_MESSAGE_LEN, MessageType};

    #[tokio::test]
    async fn messages_cross_a_small_pipe() {
        // A 1 KiB pipe forces many partial reads and writes.
        let (mut ours, theirs) = tokio::io::duplex(1024);
        let messages: Vec<(ConnId, Message)> = (0..20u32)
            .map(|i| {
                let conn = if i % 2 == 0 {
                    PLUGIN_SERVICE_CONN
                } else {
                    RUNTIME_SERVICE_CONN
                };
                let payload = vec![i as u8; (i as usize * 1777) % 12_000];
                (
                    conn,
                    Message::new(2 * i + 1, MessageType::Request, 0, payload),
                )
            })
            .collect();
        let sent = messages.clone();
        let writer = tokio::spawn(async move {
            for (conn, message) in &sent {
                write_message(&mut ours, *conn, message).await.unwrap();
            }
        });
        let mut reader = MessageReader::new(theirs);
        let mut got = Vec::new();
        while let Some(item) = reader.next_message().await.unwrap() {
            got.push(item);
        }
        writer.await.unwrap();
        assert_eq!(got, messages);
    }

    #[tokio::test]
    async fn eof_inside_a_frame_is_an_error() {
        let (mut ours, theirs) = tokio::io::duplex(1024);
        ours.write_all(&frame_header(1, 10)).await.unwrap();
        ours.write_all(b"abc").await.unwrap();
        drop(ours);
        let mut reader = MessageReader::new(theirs);
        let err = reader.next_message().await.unwrap_err();
        assert!(matches!(err, IoError::Demux(DemuxError::Mux(_))), "{err:?}");
    }

    #[tokio::test]
    async fn oversized_message_is_refused_before_writing() {
        let (mut ours, _theirs) = tokio::io::duplex(1024);
        let message = Message::new(
            1,
            MessageType::Response,
            0,
            vec![0; MAX_MESSAGE_LEN as usize + 1],
        );
        let err = write_message(&mut ours, PLUGIN_SERVICE_CONN, &message)
            .await
            .unwrap_err();
        assert!(matches!(
            err,
            IoError::Encode(TtrpcError::PayloadTooLarge { .. })
        ));
    }
}
