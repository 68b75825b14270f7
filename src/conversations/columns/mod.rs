//! Reading Parquet part files and viewing their columns through the few shapes confab
//! uses: text, ids (text or integer), numbers and tag lists.
//!
//! Each shape accepts several physical Arrow types (plain, large and view strings,
//! dictionary-encoded strings, any integer width, ...), so loaders never look at
//! Arrow types themselves. Types are checked once per file against the schema, so a
//! wrong type is reported with the file and column before any row is read.

mod values;

pub(crate) use values::{IdColumn, IdValue, NumberColumn, TagsColumn, TextColumn};

use std::fs::File;
use std::path::{Path, PathBuf};

use arrow_array::RecordBatch;
use arrow_schema::{DataType, Schema};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ProjectionMask;

use super::error::LoadError;

/// Rows per decoded record batch: large enough to amortise per-batch work, small
/// enough to keep memory flat whatever the row-group size.
pub(crate) const READ_BATCH_ROWS: usize = 8192;

/// The shape a loader wants a column in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ColumnKind {
    /// A string column (plain, large, view or dictionary-encoded).
    Text,
    /// A string or integer column used as an identifier.
    Id,
    /// An integer or floating-point column.
    Number,
    /// A list of strings, or one comma-separated string.
    Tags,
}

impl ColumnKind {
    fn expected(self) -> &'static str {
        match self {
            Self::Text => "a string column",
            Self::Id => "a string or integer column",
            Self::Number => "an integer or floating-point column",
            Self::Tags => "a list of strings or a comma-separated string column",
        }
    }

    fn accepts(self, data_type: &DataType) -> bool {
        match self {
            Self::Text => is_text(data_type),
            Self::Id => is_text(data_type) || data_type.is_integer(),
            Self::Number => data_type.is_integer() || data_type.is_floating(),
            Self::Tags => is_text(data_type) || is_text_list(data_type),
        }
    }
}

fn is_text(data_type: &DataType) -> bool {
    match data_type {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(_, values) => is_text(values),
        _ => false,
    }
}

fn is_text_list(data_type: &DataType) -> bool {
    match data_type {
        DataType::List(item) | DataType::LargeList(item) => is_text(item.data_type()),
        _ => false,
    }
}

/// One column a loader asks for.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ColumnSpec {
    /// Accepted names, in order of preference (the first present one is used).
    pub names: &'static [&'static str],
    pub kind: ColumnKind,
    pub required: bool,
}

impl ColumnSpec {
    pub(crate) const fn required(name: &'static [&'static str], kind: ColumnKind) -> Self {
        Self {
            names: name,
            kind,
            required: true,
        }
    }

    pub(crate) const fn optional(name: &'static [&'static str], kind: ColumnKind) -> Self {
        Self {
            names: name,
            kind,
            required: false,
        }
    }
}

/// The Parquet part files of a folder, in file-name order. Skips hidden and
/// bookkeeping files (names starting with `.` or `_`, such as `_SUCCESS`), `.crc`
/// checksums, sub-folders and special files; follows symbolic links to files.
pub(crate) fn part_files(dir: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let io_error = |source| LoadError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_error)? {
        let entry = entry.map_err(io_error)?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let hidden = name.starts_with('.') || name.starts_with('_') || name.ends_with(".crc");
        if !hidden
            && is_part_file(&entry).map_err(|source| LoadError::Io {
                path: entry.path(),
                source,
            })?
        {
            files.push(entry.path());
        }
    }
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(files)
}

/// Whether a folder entry is a part file: a regular file, or a symbolic link to one (a link
/// that leads nowhere is an error naming it, not a silently missing part).
fn is_part_file(entry: &std::fs::DirEntry) -> std::io::Result<bool> {
    let file_type = entry.file_type()?;
    match file_type.is_symlink() {
        true => std::fs::metadata(entry.path()).map(|target| target.is_file()),
        false => Ok(file_type.is_file()),
    }
}

/// An open part file whose schema has been checked against the wanted columns.
pub(crate) struct PartReader {
    path: PathBuf,
    builder: ParquetRecordBatchReaderBuilder<File>,
    resolved: Vec<Option<&'static str>>,
}

impl PartReader {
    /// Reads the footer of `file`, opened from `path`, and resolves `specs` against its schema.
    pub(crate) fn from_file(
        path: &Path,
        file: File,
        specs: &[ColumnSpec],
    ) -> Result<Self, LoadError> {
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|source| {
            LoadError::NotParquet {
                path: path.to_path_buf(),
                source,
            }
        })?;
        let resolved = specs
            .iter()
            .map(|spec| resolve_column(path, builder.schema(), spec))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            path: path.to_path_buf(),
            builder,
            resolved,
        })
    }

    /// Whether the spec at `spec_index` was found in this file.
    pub(crate) fn has(&self, spec_index: usize) -> bool {
        self.resolved[spec_index].is_some()
    }

    /// Row count from the footer, without reading data.
    pub(crate) fn row_count(&self) -> u64 {
        u64::try_from(self.builder.metadata().file_metadata().num_rows()).unwrap_or(0)
    }

    /// Reads the file batch by batch, handing each to `on_batch`.
    pub(crate) fn for_each_batch(
        self,
        mut on_batch: impl FnMut(&ColumnBatch<'_>) -> Result<(), LoadError>,
    ) -> Result<(), LoadError> {
        let mask = self.projection();
        let reader = self
            .builder
            .with_projection(mask)
            .with_batch_size(READ_BATCH_ROWS)
            .build()
            .map_err(|source| LoadError::NotParquet {
                path: self.path.clone(),
                source,
            })?;
        let mut first_row = 0u64;
        for batch in reader {
            let batch = batch.map_err(|source| LoadError::Decode {
                path: self.path.clone(),
                source,
            })?;
            let view = ColumnBatch::new(&self.path, &batch, &self.resolved, first_row);
            on_batch(&view)?;
            first_row += batch.num_rows() as u64;
        }
        Ok(())
    }

    fn projection(&self) -> ProjectionMask {
        let schema = self.builder.schema();
        let roots = self
            .resolved
            .iter()
            .flatten()
            .filter_map(|name| schema.index_of(name).ok());
        ProjectionMask::roots(self.builder.parquet_schema(), roots)
    }
}

fn resolve_column(
    path: &Path,
    schema: &Schema,
    spec: &ColumnSpec,
) -> Result<Option<&'static str>, LoadError> {
    let Some(name) = spec
        .names
        .iter()
        .find(|n| schema.field_with_name(n).is_ok())
    else {
        return match spec.required {
            true => Err(LoadError::MissingColumn {
                path: path.to_path_buf(),
                column: spec.names.join("` or `"),
            }),
            false => Ok(None),
        };
    };
    let data_type = schema.field_with_name(name).map(|f| f.data_type().clone());
    match data_type {
        Ok(data_type) if spec.kind.accepts(&data_type) => Ok(Some(name)),
        Ok(data_type) => Err(LoadError::ColumnType {
            path: path.to_path_buf(),
            column: (*name).to_string(),
            found: data_type.to_string(),
            expected: spec.kind.expected(),
        }),
        Err(_) => Ok(None),
    }
}

/// One decoded batch, with typed access to the wanted columns by spec index.
pub(crate) struct ColumnBatch<'a> {
    path: &'a Path,
    batch: &'a RecordBatch,
    resolved: &'a [Option<&'static str>],
    first_row: u64,
}

impl<'a> ColumnBatch<'a> {
    fn new(
        path: &'a Path,
        batch: &'a RecordBatch,
        resolved: &'a [Option<&'static str>],
        first_row: u64,
    ) -> Self {
        Self {
            path,
            batch,
            resolved,
            first_row,
        }
    }

    pub(crate) fn num_rows(&self) -> usize {
        self.batch.num_rows()
    }

    pub(crate) fn path(&self) -> &'a Path {
        self.path
    }

    /// The column name resolved for a spec ("?" if it was absent).
    pub(crate) fn column_name(&self, spec_index: usize) -> &'static str {
        self.resolved[spec_index].unwrap_or("?")
    }

    /// An error about the value at `row` (batch-relative) of a column.
    pub(crate) fn bad_value(&self, spec_index: usize, row: usize, detail: String) -> LoadError {
        LoadError::BadValue {
            path: self.path.to_path_buf(),
            column: self.column_name(spec_index).to_string(),
            row: self.first_row + row as u64,
            detail,
        }
    }

    /// The error for a required column that a batch lacks.
    pub(crate) fn missing(&self, spec_index: usize) -> LoadError {
        LoadError::MissingColumn {
            path: self.path.to_path_buf(),
            column: self.column_name(spec_index).to_string(),
        }
    }

    fn array(&self, spec_index: usize) -> Option<(&'static str, &'a dyn arrow_array::Array)> {
        let name = self.resolved[spec_index]?;
        let array = self.batch.column_by_name(name)?;
        Some((name, array.as_ref()))
    }

    fn type_error(
        &self,
        name: &str,
        kind: ColumnKind,
        array: &dyn arrow_array::Array,
    ) -> LoadError {
        LoadError::ColumnType {
            path: self.path.to_path_buf(),
            column: name.to_string(),
            found: array.data_type().to_string(),
            expected: kind.expected(),
        }
    }

    /// A text column; `Ok(None)` if the optional column is absent.
    pub(crate) fn text(&self, spec_index: usize) -> Result<Option<TextColumn<'a>>, LoadError> {
        let Some((name, array)) = self.array(spec_index) else {
            return Ok(None);
        };
        TextColumn::try_new(array)
            .map(Some)
            .ok_or_else(|| self.type_error(name, ColumnKind::Text, array))
    }

    /// An id column; `Ok(None)` if the optional column is absent.
    pub(crate) fn id(&self, spec_index: usize) -> Result<Option<IdColumn<'a>>, LoadError> {
        let Some((name, array)) = self.array(spec_index) else {
            return Ok(None);
        };
        match IdColumn::try_new(array) {
            Ok(Some(column)) => Ok(Some(column)),
            Ok(None) => Err(self.type_error(name, ColumnKind::Id, array)),
            Err(row) => Err(self.bad_value(spec_index, row, "integer id exceeds i64".into())),
        }
    }

    /// A number column; `Ok(None)` if the optional column is absent.
    pub(crate) fn number(&self, spec_index: usize) -> Result<Option<NumberColumn>, LoadError> {
        let Some((name, array)) = self.array(spec_index) else {
            return Ok(None);
        };
        NumberColumn::try_new(array)
            .map(Some)
            .ok_or_else(|| self.type_error(name, ColumnKind::Number, array))
    }

    /// A tags column; `Ok(None)` if the optional column is absent.
    pub(crate) fn tags(&self, spec_index: usize) -> Result<Option<TagsColumn<'a>>, LoadError> {
        let Some((name, array)) = self.array(spec_index) else {
            return Ok(None);
        };
        TagsColumn::try_new(array)
            .map(Some)
            .ok_or_else(|| self.type_error(name, ColumnKind::Tags, array))
    }
}

#[cfg(test)]
mod tests;
