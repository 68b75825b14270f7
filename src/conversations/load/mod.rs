//! Loading a dataset from disk: detects the layout, reads part files in order and
//! feeds rows to the index builder, logging progress. A [`LoadWatch`] sees every file as it
//! is opened (and may refuse it) and the progress within each dataset (and may stop the load).
//!
//! - A folder with a `conversation/` sub-folder is a normalized export
//!   (see [`normalized`]).
//! - Any other folder, or a single file, is a flat table (see [`flat`]).

mod flat;
mod keys;
mod normalized;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::arena::ArenaFull;
use super::columns::{ColumnSpec, PartReader};
use super::error::LoadError;
use super::index::{ConversationIndex, IndexBuilder, SourceLayout};

/// Rows between two progress log lines while reading a large part file.
pub(crate) const PROGRESS_INTERVAL_ROWS: usize = 1_000_000;

/// What a caller of [`load_many`] learns while datasets load, and how it refuses a file or
/// stops the load. Every method has a default that lets the load go on.
pub trait LoadWatch {
    /// Dataset `position` of `count` is about to be read (`position == count`: the index is
    /// about to be frozen). `false` stops the load with [`LoadError::Stopped`].
    fn before_dataset(&mut self, _position: usize, _count: usize) -> bool {
        true
    }

    /// `file`, found at `path`, was just opened; nothing was read from it yet. An error ends
    /// the load with it.
    fn opened(&mut self, _path: &Path, _file: &File) -> Result<(), LoadError> {
        Ok(())
    }

    /// `fraction` (0 to 1) of the current dataset's conversations are read. `false` stops the
    /// load with [`LoadError::Stopped`].
    fn progress(&mut self, _fraction: f64) -> bool {
        true
    }
}

/// A watch that lets every load run to its end.
pub struct Unwatched;

impl LoadWatch for Unwatched {}

/// Loads the dataset at `path` (either layout).
pub(crate) fn load(path: &Path) -> Result<ConversationIndex, LoadError> {
    load_many(std::slice::from_ref(&path.to_path_buf()), &mut Unwatched)
}

/// Loads several datasets (each in either layout) into one index, in order: their rows are
/// numbered one after the other, companies and tags with the same key are one filter.
/// `watch` sees each dataset, each file and the progress (see [`LoadWatch`]).
pub(crate) fn load_many(
    paths: &[PathBuf],
    watch: &mut dyn LoadWatch,
) -> Result<ConversationIndex, LoadError> {
    let started = Instant::now();
    let mut builder = IndexBuilder::new();
    let mut provenance = None;
    let mut reading = Reading::new(watch);
    for (position, path) in paths.iter().enumerate() {
        if !reading.watch.before_dataset(position, paths.len()) {
            return Err(LoadError::Stopped);
        }
        let (layout, inferred) = load_into(path, &mut builder, &mut reading)?;
        let (first_layout, any_inferred) = provenance.get_or_insert((layout, false));
        *any_inferred |= inferred;
        tracing::info!(
            path = %path.display(),
            layout = ?*first_layout,
            conversations_so_far = builder.row_count(),
            "dataset read"
        );
    }
    if !reading.watch.before_dataset(paths.len(), paths.len()) {
        return Err(LoadError::Stopped);
    }
    let (layout, links_inferred) = provenance.unwrap_or((SourceLayout::Flat, false));
    let mut index = builder.finish(layout, links_inferred);
    index.set_build_time(started.elapsed());
    let stats = index.stats();
    tracing::info!(
        datasets = paths.len(),
        conversations = stats.rows,
        companies = stats.companies,
        tags = stats.tags,
        heap_mib = stats.heap_bytes / (1 << 20),
        elapsed_ms = stats.build_time.as_millis() as u64,
        "conversation index built"
    );
    Ok(index)
}

/// Reads one dataset into `builder`; returns its layout and whether links were inferred.
fn load_into(
    path: &Path,
    builder: &mut IndexBuilder,
    reading: &mut Reading<'_>,
) -> Result<(SourceLayout, bool), LoadError> {
    let metadata = std::fs::metadata(path).map_err(|source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    match metadata.is_dir() && path.join("conversation").is_dir() {
        true => normalized::load_into(path, builder, reading)
            .map(|inferred| (SourceLayout::Normalized, inferred)),
        false => flat::load_into(path, metadata.is_dir(), builder, reading)
            .map(|()| (SourceLayout::Flat, false)),
    }
}

/// The part files of a table folder, refusing an empty one.
fn table_files(dir: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let files = super::columns::part_files(dir)?;
    match files.is_empty() {
        true => Err(LoadError::NoData {
            path: dir.to_path_buf(),
        }),
        false => Ok(files),
    }
}

fn too_large(path: &Path, _: ArenaFull) -> LoadError {
    LoadError::TooLarge {
        path: path.to_path_buf(),
        detail: format!(
            "the dataset exceeds what one index can hold ({} conversations, 4 GiB of ids)",
            u32::MAX
        ),
    }
}

/// The watch of a load and its progress log: every part file is opened through it, and
/// every batch of conversations is reported to it.
struct Reading<'w> {
    watch: &'w mut dyn LoadWatch,
    /// Rows after which the next progress line is logged.
    next_report: usize,
}

impl<'w> Reading<'w> {
    fn new(watch: &'w mut dyn LoadWatch) -> Self {
        Self {
            watch,
            next_report: PROGRESS_INTERVAL_ROWS,
        }
    }

    /// Opens the part file at `path`, shows it to the watch, and checks its schema.
    fn open(&mut self, path: &Path, specs: &[ColumnSpec]) -> Result<PartReader, LoadError> {
        let file = File::open(path).map_err(|source| LoadError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        self.watch.opened(path, &file)?;
        PartReader::from_file(path, file, specs)
    }

    /// After a batch of conversations: logs every [`PROGRESS_INTERVAL_ROWS`] rows pushed to
    /// `builder`, and tells the watch that `fraction` of the dataset is read.
    fn after_batch(&mut self, builder: &IndexBuilder, fraction: f64) -> Result<(), LoadError> {
        if builder.row_count() >= self.next_report {
            tracing::info!(conversations = builder.row_count(), "loading conversations");
            self.next_report += PROGRESS_INTERVAL_ROWS;
        }
        match self.watch.progress(fraction.clamp(0.0, 1.0)) {
            true => Ok(()),
            false => Err(LoadError::Stopped),
        }
    }
}

/// The fraction of a dataset's conversations read after `rows_read` of the `rows` rows of
/// part file `file` (from 0) of `files`.
fn fraction_read(file: usize, files: usize, rows_read: u64, rows: u64) -> f64 {
    let within = match rows {
        0 => 1.0,
        rows => rows_read as f64 / rows as f64,
    };
    (file as f64 + within.min(1.0)) / files.max(1) as f64
}

#[cfg(test)]
mod tests;
