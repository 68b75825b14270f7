//! A strict, incremental decoder for `Transfer-Encoding: chunked` bodies (RFC 9112 §7.1).
//!
//! The proxy never forwards chunk framing as received: it decodes each body and writes the
//! data out with framing of its own ([`write_chunk_header`], [`LAST_CHUNK`]), so chunk
//! extensions and trailers never cross it and a smuggled request hidden in odd framing is
//! refused here instead of being relayed.

use std::ops::Range;

/// Most hex digits accepted in a chunk size: 16 hex digits fill a `u64`.
pub const MAX_CHUNK_SIZE_DIGITS: usize = 16;
/// Longest chunk extension accepted (it is read and discarded).
pub const MAX_CHUNK_EXTENSION_BYTES: usize = 16 * 1024;
/// Largest trailer section accepted (it is read and discarded).
pub const MAX_TRAILER_BYTES: usize = 16 * 1024;

/// The framing that ends every chunked body the proxy writes.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// Why a chunked body was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    #[error("invalid chunk size")]
    InvalidSize,
    #[error("chunk size has more than {MAX_CHUNK_SIZE_DIGITS} digits")]
    SizeTooLong,
    #[error("chunk extension longer than {MAX_CHUNK_EXTENSION_BYTES} bytes")]
    ExtensionTooLong,
    #[error("chunk framing lacks a CRLF")]
    MissingCrlf,
    #[error("trailer section longer than {MAX_TRAILER_BYTES} bytes")]
    TrailerTooLong,
}

/// What one call to [`ChunkedDecoder::decode`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// Framing was consumed; give the decoder more input.
    NeedMore,
    /// These bytes of the input are body data.
    Data(Range<usize>),
    /// The body is complete (last chunk and trailers consumed).
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading hex digits; the value so far and the digit count.
    Size {
        size: u64,
        digits: usize,
    },
    /// After the size: blanks, then (once `opened` by `;`) extensions, until CR.
    Extension {
        seen: usize,
        opened: bool,
    },
    /// Expecting the LF after the size line's CR.
    SizeLf {
        size: u64,
    },
    /// Reading this many more data bytes.
    Data {
        remaining: u64,
    },
    /// Expecting CR then LF after data.
    DataCr,
    DataLf,
    /// Reading trailer lines; `line_start` tells whether nothing has been read on this line.
    Trailer {
        seen: usize,
        line_start: bool,
    },
    /// Expecting the LF that ends a trailer line (or the section, when `last`).
    TrailerLf {
        seen: usize,
        last: bool,
    },
    Done,
}

/// An incremental chunked-body decoder. Feed it input with [`decode`](Self::decode) until it
/// answers [`Decoded::Done`].
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
    pending_size: u64,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        ChunkedDecoder {
            state: State::Size { size: 0, digits: 0 },
            pending_size: 0,
        }
    }
}

impl ChunkedDecoder {
    /// Consumes framing from `input` until it finds data, the end, or runs out of input.
    ///
    /// Returns how many bytes of `input` were consumed and what was found. Data ranges are
    /// counted in the consumed bytes.
    pub fn decode(&mut self, input: &[u8]) -> Result<(usize, Decoded), ChunkError> {
        let mut at = 0;
        while at < input.len() {
            if let State::Data { remaining } = self.state {
                let take = remaining.min((input.len() - at) as u64) as usize;
                let left = remaining - take as u64;
                self.state = if left == 0 {
                    State::DataCr
                } else {
                    State::Data { remaining: left }
                };
                return Ok((at + take, Decoded::Data(at..at + take)));
            }
            self.state = self.step(input[at])?;
            at += 1;
            if self.state == State::Done {
                return Ok((at, Decoded::Done));
            }
        }
        Ok((at, Decoded::NeedMore))
    }

    /// Whether the whole body has been decoded.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    fn step(&mut self, byte: u8) -> Result<State, ChunkError> {
        Ok(match self.state {
            State::Size { size, digits } => self.size_byte(size, digits, byte)?,
            State::Extension { seen, opened } => {
                extension_byte(seen, opened, byte, self.pending_size)?
            }
            State::SizeLf { size } => expect_lf(byte, after_size_line(size))?,
            State::DataCr => expect(byte, b'\r', State::DataLf)?,
            State::DataLf => expect_lf(byte, State::Size { size: 0, digits: 0 })?,
            State::Trailer { seen, line_start } => trailer_byte(seen, line_start, byte)?,
            State::TrailerLf { seen, last } => expect_lf(byte, after_trailer_line(seen, last))?,
            State::Data { .. } | State::Done => self.state,
        })
    }

    fn size_byte(&mut self, size: u64, digits: usize, byte: u8) -> Result<State, ChunkError> {
        if let Some(value) = hex_value(byte) {
            if digits == MAX_CHUNK_SIZE_DIGITS {
                return Err(ChunkError::SizeTooLong);
            }
            return Ok(State::Size {
                size: size << 4 | u64::from(value),
                digits: digits + 1,
            });
        }
        if digits == 0 {
            return Err(ChunkError::InvalidSize);
        }
        self.pending_size = size;
        match byte {
            b'\r' => Ok(State::SizeLf { size }),
            b' ' | b'\t' => Ok(State::Extension {
                seen: 1,
                opened: false,
            }),
            b';' => Ok(State::Extension {
                seen: 1,
                opened: true,
            }),
            _ => Err(ChunkError::InvalidSize),
        }
    }
}

fn extension_byte(seen: usize, opened: bool, byte: u8, size: u64) -> Result<State, ChunkError> {
    match byte {
        b'\r' => Ok(State::SizeLf { size }),
        b'\n' => Err(ChunkError::MissingCrlf),
        _ if seen >= MAX_CHUNK_EXTENSION_BYTES => Err(ChunkError::ExtensionTooLong),
        b' ' | b'\t' | b';' => Ok(State::Extension {
            seen: seen + 1,
            opened: opened || byte == b';',
        }),
        _ if opened => Ok(State::Extension {
            seen: seen + 1,
            opened,
        }),
        _ => Err(ChunkError::InvalidSize),
    }
}

fn after_size_line(size: u64) -> State {
    if size == 0 {
        State::Trailer {
            seen: 0,
            line_start: true,
        }
    } else {
        State::Data { remaining: size }
    }
}

fn trailer_byte(seen: usize, line_start: bool, byte: u8) -> Result<State, ChunkError> {
    if seen >= MAX_TRAILER_BYTES {
        return Err(ChunkError::TrailerTooLong);
    }
    match byte {
        b'\r' => Ok(State::TrailerLf {
            seen: seen + 1,
            last: line_start,
        }),
        b'\n' => Err(ChunkError::MissingCrlf),
        _ => Ok(State::Trailer {
            seen: seen + 1,
            line_start: false,
        }),
    }
}

fn after_trailer_line(seen: usize, last: bool) -> State {
    if last {
        State::Done
    } else {
        State::Trailer {
            seen,
            line_start: true,
        }
    }
}

fn expect(byte: u8, wanted: u8, next: State) -> Result<State, ChunkError> {
    if byte == wanted {
        Ok(next)
    } else {
        Err(ChunkError::MissingCrlf)
    }
}

fn expect_lf(byte: u8, next: State) -> Result<State, ChunkError> {
    expect(byte, b'\n', next)
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// Appends the framing that precedes a chunk of `len` data bytes (`len` must not be 0: a
/// zero-sized chunk would end the body).
pub fn write_chunk_header(len: usize, out: &mut Vec<u8>) {
    debug_assert!(len > 0, "a zero-sized chunk ends the body");
    let digits = (usize::BITS - len.leading_zeros()).div_ceil(4) as usize;
    for shift in (0..digits).rev() {
        let nibble = (len >> (shift * 4)) & 0xf;
        out.push(b"0123456789abcdef"[nibble]);
    }
    out.extend_from_slice(b"\r\n");
}

/// Appends the CRLF that follows a chunk's data.
pub fn write_chunk_trailer(out: &mut Vec<u8>) {
    out.extend_from_slice(b"\r\n");
}
