//! Request body buffering. A chunked request body is read and decoded in full before the
//! upstream is contacted, as nginx does with request buffering: so that a body over the limit,
//! badly framed or too slow is refused with nothing sent upstream, and so that the upstream
//! gets the body with a `Content-Length`. The first [`SPOOL_MEMORY_BYTES`] stay in memory; a
//! longer body goes to a temporary file that is unlinked as it is created (in the state
//! folder, or the system's temporary folder when the state folder cannot hold it), so memory
//! stays bounded whatever the body limit.

use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::path::Path;

/// How much of a buffered body is kept in memory; a longer body is spooled to a file, written
/// in pieces of this size.
pub const SPOOL_MEMORY_BYTES: usize = 64 * 1024;
/// The size of the pieces a spooled body is read back from its file in.
pub const SPOOL_READ_BYTES: usize = 64 * 1024;

/// A request body being buffered, then sent.
///
/// TODO: reads and writes of the spool file block the worker thread while they run. They go
/// to the page cache (microseconds for each piece), and only bodies longer than
/// [`SPOOL_MEMORY_BYTES`] use the file; move them to a helper thread if profiles of such
/// uploads show the worker waiting on them.
#[derive(Debug, Default)]
pub struct SpooledBody {
    /// The whole body while it fits in memory; once it is spooled, the part not yet written
    /// to the file.
    memory: Vec<u8>,
    file: Option<File>,
    len: u64,
}

impl SpooledBody {
    /// Bytes buffered so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether no byte is buffered.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the body went to a file.
    pub fn is_spooled(&self) -> bool {
        self.file.is_some()
    }

    /// Appends `data`, moving the body to a file in `spool_dir` once it outgrows
    /// [`SPOOL_MEMORY_BYTES`].
    pub fn push(&mut self, data: &[u8], spool_dir: &Path) -> io::Result<()> {
        if self.file.is_none() && self.memory.len() + data.len() > SPOOL_MEMORY_BYTES {
            self.file = Some(spool_file(spool_dir)?);
        }
        self.memory.extend_from_slice(data);
        self.len += data.len() as u64;
        if self.memory.len() >= SPOOL_MEMORY_BYTES {
            self.write_memory_to_file()?;
        }
        Ok(())
    }

    /// Ends buffering: what is left in memory goes to the file, which is rewound for
    /// [`read_spooled`](Self::read_spooled).
    pub fn finish(&mut self) -> io::Result<()> {
        self.write_memory_to_file()?;
        if let Some(file) = &mut self.file {
            file.rewind()?;
        }
        Ok(())
    }

    /// The body, when it stayed in memory (empty once it is spooled).
    pub fn in_memory(&self) -> &[u8] {
        match self.file {
            Some(_) => &[],
            None => &self.memory,
        }
    }

    /// Reads the next piece of a spooled body (at most [`SPOOL_READ_BYTES`]) into `out`,
    /// replacing what it held; an empty `out` means the whole body has been read.
    pub fn read_spooled(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        out.clear();
        if let Some(file) = &mut self.file {
            file.take(SPOOL_READ_BYTES as u64).read_to_end(out)?;
        }
        Ok(())
    }

    fn write_memory_to_file(&mut self) -> io::Result<()> {
        if let Some(file) = &mut self.file {
            file.write_all(&self.memory)?;
            self.memory.clear();
        }
        Ok(())
    }
}

/// A new temporary file, already unlinked: in `dir`, or in the system's temporary folder when
/// `dir` cannot hold one.
fn spool_file(dir: &Path) -> io::Result<File> {
    tempfile::tempfile_in(dir).or_else(|_| tempfile::tempfile())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_back(body: &mut SpooledBody) -> Vec<u8> {
        let mut all = Vec::new();
        let mut piece = Vec::new();
        loop {
            body.read_spooled(&mut piece).expect("read the spool file");
            if piece.is_empty() {
                return all;
            }
            assert!(piece.len() <= SPOOL_READ_BYTES);
            all.extend_from_slice(&piece);
        }
    }

    #[test]
    fn a_short_body_stays_in_memory() {
        let dir = tempfile::tempdir().expect("a folder");
        let mut body = SpooledBody::default();
        body.push(b"hello ", dir.path()).expect("push");
        body.push(b"world", dir.path()).expect("push");
        body.finish().expect("finish");
        assert!(!body.is_spooled());
        assert_eq!(body.in_memory(), b"hello world");
        assert_eq!(body.len(), 11);
    }

    #[test]
    fn a_long_body_is_spooled_to_an_unlinked_file_and_read_back_whole() {
        let dir = tempfile::tempdir().expect("a folder");
        let data: Vec<u8> = (0..5 * SPOOL_MEMORY_BYTES + 123)
            .map(|i| (i % 251) as u8)
            .collect();
        let mut body = SpooledBody::default();
        for piece in data.chunks(10_000) {
            body.push(piece, dir.path()).expect("push");
            assert!(
                body.memory.len() < SPOOL_MEMORY_BYTES,
                "memory stays bounded"
            );
        }
        body.finish().expect("finish");
        assert!(body.is_spooled());
        assert!(body.in_memory().is_empty());
        assert_eq!(body.len(), data.len() as u64);
        let entries = std::fs::read_dir(dir.path()).expect("list").count();
        assert_eq!(entries, 0, "the spool file has no name");
        assert_eq!(read_back(&mut body), data);
    }

    #[test]
    fn a_spool_folder_that_cannot_hold_files_falls_back_to_the_system_one() {
        let missing = Path::new("/nonexistent/confab-spool");
        let mut body = SpooledBody::default();
        body.push(&vec![b'x'; SPOOL_MEMORY_BYTES + 1], missing)
            .expect("spooled elsewhere");
        body.finish().expect("finish");
        assert!(body.is_spooled());
        assert_eq!(read_back(&mut body).len(), SPOOL_MEMORY_BYTES + 1);
    }
}
