//! How a fuzz input for a stream decoder is read: a control byte, the lengths of the chunks the
//! stream is cut into, then the stream itself.
//!
//! Layout: `[control][n][len_1 .. len_(n % 16)][stream ...]`. Missing bytes read as zero, so
//! every input is valid. The chunk lengths are used in turn, over and over, until the stream
//! is used up; a zero length pushes an empty chunk (which a decoder must also survive). Stream
//! decoders are then run on the whole stream in one push and on these chunks, and must agree.

/// A fuzz input for a stream decoder, split into its parts.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// Target-specific choices (a decoder limit, a connection id).
    pub control: u8,
    /// Chunk lengths, used in turn.
    pub lengths: &'a [u8],
    /// The bytes to decode.
    pub stream: &'a [u8],
}

impl<'a> Input<'a> {
    /// Reads `[control][n][n % 16 lengths][stream]`.
    pub fn parse(data: &'a [u8]) -> Self {
        let control = data.first().copied().unwrap_or(0);
        let count = usize::from(data.get(1).copied().unwrap_or(0) % 16);
        let rest = data.get(2..).unwrap_or(&[]);
        let (lengths, stream) = rest.split_at(count.min(rest.len()));
        Input {
            control,
            lengths,
            stream,
        }
    }

    /// `bytes` cut into chunks of this input's lengths, in turn; one chunk if there are no
    /// lengths or all are zero.
    pub fn chunks<'b>(&self, bytes: &'b [u8]) -> Vec<&'b [u8]> {
        if self.lengths.iter().all(|l| *l == 0) {
            return vec![bytes];
        }
        let mut chunks = Vec::new();
        let mut rest = bytes;
        for length in self.lengths.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (chunk, tail) = rest.split_at(usize::from(*length).min(rest.len()));
            chunks.push(chunk);
            rest = tail;
        }
        chunks
    }
}
