//! The served datasets and the index built from them, published as whole snapshots.
//!
//! Every query takes the current snapshot once and answers from it alone, so it sees the
//! data before an ingest or after it, never a mix. A new index is built beside the served one
//! (on the serial queue's thread) and swapped in with one atomic pointer store; queries never
//! wait for a build. While both exist, the process holds two indexes in memory.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arc_swap::{ArcSwap, Guard};

use crate::conversations::{ConversationIndex, LoadError};

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
        let index = ConversationIndex::load_many(&paths, &mut |_| true)?;
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

    /// Builds an index of every served dataset plus `extra`; nothing is published.
    /// `before_each` sees the position of each dataset and then the dataset count, as in
    /// [`ConversationIndex::load_many`]; returning `false` stops the build.
    pub fn build(
        &self,
        extra: Option<&Path>,
        before_each: &mut dyn FnMut(usize, usize) -> bool,
    ) -> Result<(ConversationIndex, Vec<PathBuf>), LoadError> {
        let mut paths = self.datasets();
        paths.extend(extra.map(Path::to_path_buf));
        let count = paths.len();
        let index = ConversationIndex::load_many(&paths, &mut |done| before_each(done, count))?;
        Ok((index, paths))
    }

    /// Makes `index` (built from `datasets`, the base first) the one every query sees.
    pub fn publish(&self, index: ConversationIndex, datasets: Vec<PathBuf>) {
        let ingested: Vec<PathBuf> = datasets.into_iter().skip(1).collect();
        self.current.store(Arc::new(index));
        *self.ingested() = ingested;
    }
}
