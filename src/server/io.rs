//! Buffered reads and writes over monoio's owned-buffer IO.
//!
//! monoio's IO traits take buffers by value (io_uring owns them while an operation runs), so a
//! [`ReadBuf`] lends its storage to each read or write and takes it back afterwards. When an
//! operation is cancelled (a timeout fired) the storage is lost; every caller closes the
//! connection in that case, and the buffer reads as empty rather than panicking.

use std::io;

use monoio::buf::{IoBuf, IoBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};

/// The smallest free space worth a read; below it the buffer is compacted or grown first.
const MIN_READ_SPACE: usize = 4 * 1024;

/// A read buffer whose unconsumed bytes are `bytes[start..]`.
#[derive(Debug)]
pub struct ReadBuf {
    bytes: Vec<u8>,
    start: usize,
}

impl ReadBuf {
    pub fn with_capacity(capacity: usize) -> ReadBuf {
        ReadBuf {
            bytes: Vec::with_capacity(capacity),
            start: 0,
        }
    }

    /// The bytes read but not yet consumed.
    pub fn data(&self) -> &[u8] {
        self.bytes.get(self.start..).unwrap_or_default()
    }

    pub fn len(&self) -> usize {
        self.data().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Marks the first `n` unconsumed bytes as used.
    pub fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start >= self.bytes.len() {
            self.bytes.clear();
            self.start = 0;
        }
    }

    /// Reads more bytes from `stream`, returning how many arrived (0 at end of stream).
    pub async fn fill<S: AsyncReadRent>(&mut self, stream: &mut S) -> io::Result<usize> {
        self.fill_within(stream, usize::MAX).await
    }

    /// Reads more bytes from `stream`, but no more than `limit` unconsumed bytes in all (one
    /// byte is always asked for), and grows the buffer no further than that: a head reader
    /// passes its head size limit, so that no head, however it arrives, makes the buffer grow
    /// past the limit.
    pub async fn fill_within<S: AsyncReadRent>(
        &mut self,
        stream: &mut S,
        limit: usize,
    ) -> io::Result<usize> {
        let wanted = limit.saturating_sub(self.len()).max(1);
        self.make_room(wanted);
        let bytes = std::mem::take(&mut self.bytes);
        let filled = bytes.len();
        let end = filled + wanted.min(bytes.capacity() - filled);
        let (result, slice) = stream.read(bytes.slice_mut(filled..end)).await;
        self.bytes = slice.into_inner();
        result
    }

    /// Writes the first `n` unconsumed bytes to `stream` straight from this buffer, then
    /// consumes them.
    pub async fn write_to<S: AsyncWriteRent>(
        &mut self,
        n: usize,
        stream: &mut S,
    ) -> io::Result<()> {
        let start = self.start;
        let bytes = std::mem::take(&mut self.bytes);
        self.start = 0;
        let (result, slice) = stream.write_all(bytes.slice(start..start + n)).await;
        self.bytes = slice.into_inner();
        self.start = start;
        result?;
        self.consume(n);
        Ok(())
    }

    /// Ensures at least [`MIN_READ_SPACE`] free bytes after the data (or `wanted`, when that is
    /// less), moving the data to the front or growing the buffer: by its size (so that growth
    /// stays amortised), but never by more than `wanted`.
    fn make_room(&mut self, wanted: usize) {
        let room = MIN_READ_SPACE.min(wanted);
        if self.bytes.capacity() - self.bytes.len() >= room {
            return;
        }
        if self.start > 0 {
            self.bytes.drain(..self.start);
            self.start = 0;
        }
        if self.bytes.capacity() - self.bytes.len() < room {
            let growth = self.bytes.capacity().max(MIN_READ_SPACE).min(wanted);
            self.bytes.reserve_exact(growth);
        }
    }
}

/// Writes all of `out` to `stream` and clears it, keeping its storage for reuse.
pub async fn write_all_from<S: AsyncWriteRent>(
    stream: &mut S,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    let bytes = std::mem::take(out);
    let (result, mut bytes) = stream.write_all(bytes).await;
    bytes.clear();
    *out = bytes;
    result.map(|_| ())
}

/// Writes all of `out` to `stream`, leaving `out` as it was so it can be sent again.
pub async fn write_all_retaining<S: AsyncWriteRent>(
    stream: &mut S,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    let bytes = std::mem::take(out);
    let (result, bytes) = stream.write_all(bytes).await;
    *out = bytes;
    result.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_is_made_without_growing_past_what_is_wanted() {
        let mut buf = ReadBuf::with_capacity(16 * 1024);
        buf.bytes.resize(15 * 1024, b'h');
        let limit = 20 * 1024;
        buf.make_room(limit - buf.len());
        assert!(buf.bytes.capacity() - buf.len() >= MIN_READ_SPACE);
        assert!(
            buf.bytes.capacity() <= limit,
            "grew to {}",
            buf.bytes.capacity()
        );
        // Near the limit, less than the usual room is enough.
        buf.bytes.resize(limit - 10, b'h');
        buf.make_room(10);
        assert!(buf.bytes.capacity() - buf.len() >= 10);
        assert!(buf.bytes.capacity() <= limit + MIN_READ_SPACE);
    }

    #[test]
    fn room_comes_from_consumed_bytes_first() {
        let mut buf = ReadBuf::with_capacity(16 * 1024);
        buf.bytes.resize(16 * 1024, b'h');
        buf.consume(8 * 1024);
        buf.make_room(usize::MAX);
        assert_eq!(buf.bytes.capacity(), 16 * 1024, "compacted, not grown");
        assert_eq!(buf.len(), 8 * 1024);
    }
}
