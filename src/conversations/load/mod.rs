//! Loading a dataset from disk: detects the layout, reads part files in order and
//! feeds rows to the index builder, logging progress.
//!
//! - A folder with a `conversation/` sub-folder is a normalized export
//!   (see [`normalized`]).
//! - Any other folder, or a single file, is a flat table (see [`flat`]).

mod flat;
mod keys;
mod normalized;

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::arena::ArenaFull;
use super::error::LoadError;
use super::index::{ConversationIndex, IndexBuilder, SourceLayout};

/// Rows between two progress log lines while reading a large part file.
pub(crate) const PROGRESS_INTERVAL_ROWS: usize = 1_000_000;

/// Loads the dataset at `path` (either layout).
pub(crate) fn load(path: &Path) -> Result<ConversationIndex, LoadError> {
    load_many(std::slice::from_ref(&path.to_path_buf()), &mut |_| true)
}

/// Loads several datasets (each in either layout) into one index, in order: their rows are
/// numbered one after the other, companies and tags with the same key are one filter.
///
/// `before_each` is called with the position of the dataset about to be read (and with
/// `paths.len()` before the index is frozen); returning `false` stops the load with
/// [`LoadError::Stopped`].
pub(crate) fn load_many(
    paths: &[PathBuf],
    before_each: &mut dyn FnMut(usize) -> bool,
) -> Result<ConversationIndex, LoadError> {
    let started = Instant::now();
    let mut builder = IndexBuilder::new();
    let mut provenance = None;
    for (position, path) in paths.iter().enumerate() {
        if !before_each(position) {
            return Err(LoadError::Stopped);
        }
        let (layout, inferred) = load_into(path, &mut builder)?;
        let (first_layout, any_inferred) = provenance.get_or_insert((layout, false));
        *any_inferred |= inferred;
        tracing::info!(
            path = %path.display(),
            layout = ?*first_layout,
            conversations_so_far = builder.row_count(),
            "dataset read"
        );
    }
    if !before_each(paths.len()) {
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
fn load_into(path: &Path, builder: &mut IndexBuilder) -> Result<(SourceLayout, bool), LoadError> {
    let metadata = std::fs::metadata(path).map_err(|source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    match metadata.is_dir() && path.join("conversation").is_dir() {
        true => normalized::load_into(path, builder)
            .map(|inferred| (SourceLayout::Normalized, inferred)),
        false => {
            flat::load_into(path, metadata.is_dir(), builder).map(|()| (SourceLayout::Flat, false))
        }
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

/// Logs progress every [`PROGRESS_INTERVAL_ROWS`] rows pushed to `builder`.
struct Progress {
    next_report: usize,
}

impl Progress {
    fn new() -> Self {
        Self {
            next_report: PROGRESS_INTERVAL_ROWS,
        }
    }

    fn after_batch(&mut self, builder: &IndexBuilder) {
        if builder.row_count() >= self.next_report {
            tracing::info!(conversations = builder.row_count(), "loading conversations");
            self.next_report += PROGRESS_INTERVAL_ROWS;
        }
    }
}

#[cfg(test)]
mod tests;
