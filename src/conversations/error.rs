//! Errors raised while loading a dataset or parsing a query.

use std::fmt;
use std::path::PathBuf;

/// Why a dataset could not be loaded. Every message names the file (or folder) and,
/// where one is involved, the column.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The path could not be read (missing, permissions, ...).
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not a Parquet file, or its footer is damaged.
    #[error("{path} is not a readable Parquet file: {source}")]
    NotParquet {
        path: PathBuf,
        source: parquet::errors::ParquetError,
    },
    /// The file's data pages could not be decoded.
    #[error("{path}: cannot decode the data: {source}")]
    Decode {
        path: PathBuf,
        source: arrow_schema::ArrowError,
    },
    /// A column confab needs is absent.
    #[error("{path}: missing column `{column}`")]
    MissingColumn { path: PathBuf, column: String },
    /// A column exists but holds a type confab cannot use.
    #[error("{path}: column `{column}` has type {found}; expected {expected}")]
    ColumnType {
        path: PathBuf,
        column: String,
        found: String,
        expected: &'static str,
    },
    /// A value in a column is unusable (a null key, an unknown reference, ...).
    #[error("{path}: column `{column}`, row {row}: {detail}")]
    BadValue {
        path: PathBuf,
        column: String,
        row: u64,
        detail: String,
    },
    /// A folder holds no Parquet part files.
    #[error("{path}: no Parquet part files found")]
    NoData { path: PathBuf },
    /// Conversations cannot be linked to transcripts and companies without guessing.
    #[error("{path}: cannot link conversations to transcripts: {detail}")]
    Unlinkable { path: PathBuf, detail: String },
    /// The dataset exceeds what the index can address.
    #[error("{path}: {detail}")]
    TooLarge { path: PathBuf, detail: String },
    /// A file of an ingested dataset leads outside the data root (through a symbolic link).
    #[error("{path} leads outside the data root (through a symbolic link); it is not read")]
    OutsideRoot { path: PathBuf },
    /// The dataset is served already.
    #[error("{path} is already served; submit a reload to re-read it")]
    AlreadyServed { path: PathBuf },
    /// The caller asked the load to stop before it finished.
    #[error("the load was stopped before it finished")]
    Stopped,
}

/// A query parameter with a bad value. Unknown parameters never cause one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError {
    /// The parameter's name as it appears in the URL (`page`, `per_page`, `match`, ...).
    pub parameter: &'static str,
    /// What is wrong with its value, for a human.
    pub detail: String,
}

impl QueryError {
    pub(crate) fn new(parameter: &'static str, detail: impl Into<String>) -> Self {
        Self {
            parameter,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid parameter `{}`: {}", self.parameter, self.detail)
    }
}

impl std::error::Error for QueryError {}
