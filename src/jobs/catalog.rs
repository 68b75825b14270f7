//! The served datasets and the index built from them, published as whole snapshots.
//!
//! Every query takes the current snapshot once and answers from it alone, so it sees the
//! data before an ingest or after it, never a mix. A new index is built beside the served one
//! (on the serial queue's thread) and swapped in with one atomic pointer store; queries never
//! wait for a build. While both exist, the process holds two indexes in memory.
//!
//! Every file of an ingested dataset is checked as it is opened: the file actually opened
//! must lie inside the data root, so a part file (or a table folder) that is a symbolic link
//! leading out of it fails the load with its name, even if it was swapped in after the
//! submission was checked.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arc_swap::{ArcSwap, Guard};

use super::JobControl;
use crate::conversations::{ConversationIndex, LoadError, LoadWatch};

/// The datasets being served and their index.
pub struct Catalog {
    current: ArcSwap<ConversationIndex>,
    /// The dataset of `--data` (or the generated default).
    base: PathBuf,
    /// Canonical folder that ingest paths are relative to.
    data_root: PathBuf,
    /// Ingested datasets (canonical paths), in the order they were added. Changed only on
    /// the serial queue's thread.
    ingested: Mutex<Vec<PathBuf>>,
}

impl Catalog {
    /// Builds the index of `base` followed by `ingested`. An ingested dataset that no longer
    /// exists is left out with a warning (it can no longer be served); one that exists but
    /// does not load fails the start, naming the file.
    pub fn open(
        base: PathBuf,
        data_root: PathBuf,
        ingested: Vec<PathBuf>,
    ) -> Result<Catalog, LoadError> {
        let (present, missing): (Vec<_>, Vec<_>) =
            ingested.into_iter().partition(|path| path.exists());
        for path in &missing {
            tracing::warn!(path = %path.display(), "an ingested dataset is gone; serving without it");
        }
        let mut paths = vec![base.clone()];
        paths.extend(present.iter().cloned());
        let mut watch = ConfinedBuild::new(&data_root, None);
        let index = ConversationIndex::load_many(&paths, &mut watch)?;
        Ok(Catalog {
            current: ArcSwap::from_pointee(index),
            base,
            data_root,
            ingested: Mutex::new(present),
        })
    }

    /// A catalog serving `index` as if loaded from `base` (for tests and benchmarks).
    pub fn with_index(index: ConversationIndex, base: PathBuf, data_root: PathBuf) -> Catalog {
        Catalog {
            current: ArcSwap::from_pointee(index),
            base,
            data_root,
            ingested: Mutex::new(Vec::new()),
        }
    }

    /// The snapshot a request answers from: a cheap guard, held for one request only.
    pub fn snapshot(&self) -> Guard<Arc<ConversationIndex>> {
        self.current.load()
    }

    /// The current snapshot, owned (for long work such as analysis jobs).
    pub fn current(&self) -> Arc<ConversationIndex> {
        self.current.load_full()
    }

    pub fn data_root(&self) -> &Path {
        &self.data_root
    }

    /// Every served dataset: the base, then the ingested ones.
    pub fn datasets(&self) -> Vec<PathBuf> {
        let mut paths = vec![self.base.clone()];
        paths.extend(self.ingested().iter().cloned());
        paths
    }

    /// Whether `path` (canonical) is already served.
    pub fn serves(&self, path: &Path) -> bool {
        self.base.canonicalize().is_ok_and(|base| base == path)
            || self.ingested().iter().any(|served| served == path)
    }

    fn ingested(&self) -> std::sync::MutexGuard<'_, Vec<PathBuf>> {
        self.ingested
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Builds an index of every served dataset plus `extra`; nothing is published. `control`
    /// gets the progress (within each dataset too) and can stop the build.
    pub fn build(
        &self,
        extra: Option<&Path>,
        control: &JobControl,
    ) -> Result<(ConversationIndex, Vec<PathBuf>), LoadError> {
        let mut paths = self.datasets();
        paths.extend(extra.map(Path::to_path_buf));
        let mut watch = ConfinedBuild::new(&self.data_root, Some(control));
        let index = ConversationIndex::load_many(&paths, &mut watch)?;
        Ok((index, paths))
    }

    /// Makes `index` (built from `datasets`, the base first) the one every query sees.
    pub fn publish(&self, index: ConversationIndex, datasets: Vec<PathBuf>) {
        let ingested: Vec<PathBuf> = datasets.into_iter().skip(1).collect();
        self.current.store(Arc::new(index));
        *self.ingested() = ingested;
    }
}

/// Progress units of one dataset in a build's progress (the build counts one more dataset's
/// worth for freezing the index).
pub const BUILD_PROGRESS_UNITS_PER_DATASET: u64 = 10_000;

/// The watch of a build: confines the files of every dataset but the base (the first) to the
/// data root, and reports progress to a job's control, which can stop the build.
struct ConfinedBuild<'a> {
    data_root: &'a Path,
    control: Option<&'a JobControl>,
    /// The dataset being read: its position, and the dataset count.
    dataset: (usize, usize),
}

impl<'a> ConfinedBuild<'a> {
    fn new(data_root: &'a Path, control: Option<&'a JobControl>) -> Self {
        Self {
            data_root,
            control,
            dataset: (0, 0),
        }
    }

    fn stopped(&self) -> bool {
        self.control.is_some_and(JobControl::should_stop)
    }

    fn report(&self, fraction: f64) {
        if let Some(control) = self.control {
            let (position, count) = self.dataset;
            let units = BUILD_PROGRESS_UNITS_PER_DATASET;
            control.set_total((count as u64 + 1) * units);
            control.set_done(position as u64 * units + (fraction * units as f64) as u64);
        }
    }
}

impl LoadWatch for ConfinedBuild<'_> {
    fn before_dataset(&mut self, position: usize, count: usize) -> bool {
        self.dataset = (position, count);
        self.report(0.0);
        !self.stopped()
    }

    fn opened(&mut self, path: &Path, file: &File) -> Result<(), LoadError> {
        if self.stopped() {
            return Err(LoadError::Stopped);
        }
        let is_base = self.dataset.0 == 0;
        match is_base || opened_path(path, file).starts_with(self.data_root) {
            true => Ok(()),
            false => Err(LoadError::OutsideRoot {
                path: path.to_path_buf(),
            }),
        }
    }

    fn progress(&mut self, fraction: f64) -> bool {
        self.report(fraction);
        !self.stopped()
    }
}

/// The canonical path of the file `file` really is (opened from `path`): what the kernel
/// opened, so a link swapped after a check cannot redirect the read. Without `/proc`, the
/// canonical form of `path`; an empty path (which lies inside no root) if neither is known.
fn opened_path(path: &Path, file: &File) -> PathBuf {
    let descriptor = format!("/proc/self/fd/{}", file.as_raw_fd());
    std::fs::read_link(descriptor)
        .or_else(|_| path.canonicalize())
        .unwrap_or_default()
}
