//! Streaming Parquet writers for the generated tables: rows are buffered into Arrow
//! builders, flushed as one row group every [`ROW_GROUP_ROWS`] rows, and part files
//! rotate every [`ROWS_PER_PART`] rows, so memory stays bounded at any scale.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{Float64Builder, Int32Builder, Int64Builder, StringBuilder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use super::DatagenError;

/// Rows per row group (and per buffered batch).
pub(crate) const ROW_GROUP_ROWS: usize = 65_536;
/// Rows per part file before the writer starts the next one.
pub(crate) const ROWS_PER_PART: u64 = 1_000_000;

/// Writes one table folder (`company/`, `conversation/`, ...) as numbered part files.
pub(crate) struct PartWriter {
    dir: PathBuf,
    schema: SchemaRef,
    writer: Option<ArrowWriter<File>>,
    rows_in_part: u64,
    parts: usize,
    pub(crate) bytes: u64,
}

impl PartWriter {
    pub(crate) fn create(dir: PathBuf, schema: SchemaRef) -> Result<Self, DatagenError> {
        std::fs::create_dir_all(&dir).map_err(|source| DatagenError::io(&dir, source))?;
        Ok(Self {
            dir,
            schema,
            writer: None,
            rows_in_part: 0,
            parts: 0,
            bytes: 0,
        })
    }

    pub(crate) fn parts(&self) -> usize {
        self.parts
    }

    /// Writes one batch as a row group, rotating the part file when it is full.
    pub(crate) fn write(&mut self, columns: Vec<ArrayRef>) -> Result<(), DatagenError> {
        let batch =
            RecordBatch::try_new(self.schema.clone(), columns).map_err(DatagenError::Arrow)?;
        if self.rows_in_part >= ROWS_PER_PART {
            self.close_part()?;
        }
        let path = self.current_path();
        let writer = match self.writer.as_mut() {
            Some(writer) => writer,
            None => self.open_part()?,
        };
        writer
            .write(&batch)
            .map_err(|source| DatagenError::parquet(&path, source))?;
        writer
            .flush()
            .map_err(|source| DatagenError::parquet(&path, source))?;
        self.rows_in_part += batch.num_rows() as u64;
        Ok(())
    }

    fn current_path(&self) -> PathBuf {
        self.dir
            .join(format!("part-{:05}-confab-c000.snappy.parquet", self.parts))
    }

    fn open_part(&mut self) -> Result<&mut ArrowWriter<File>, DatagenError> {
        let path = self.current_path();
        let file = File::create(&path).map_err(|source| DatagenError::io(&path, source))?;
        let properties = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .build();
        let writer = ArrowWriter::try_new(file, self.schema.clone(), Some(properties))
            .map_err(|source| DatagenError::parquet(&path, source))?;
        Ok(self.writer.insert(writer))
    }

    fn close_part(&mut self) -> Result<(), DatagenError> {
        let path = self.current_path();
        if let Some(writer) = self.writer.take() {
            let file = writer
                .into_inner()
                .map_err(|source| DatagenError::parquet(&path, source))?;
            self.bytes += file
                .metadata()
                .map_err(|source| DatagenError::io(&path, source))?
                .len();
            self.parts += 1;
            tracing::debug!(file = %path.display(), rows = self.rows_in_part, "wrote part file");
        }
        self.rows_in_part = 0;
        Ok(())
    }

    /// Closes the last part file and writes the `_SUCCESS` marker Spark writes.
    pub(crate) fn finish(&mut self) -> Result<(), DatagenError> {
        self.close_part()?;
        let marker = self.dir.join("_SUCCESS");
        File::create(&marker).map_err(|source| DatagenError::io(&marker, source))?;
        Ok(())
    }
}

fn field(name: &str, data_type: DataType) -> Field {
    Field::new(name, data_type, true)
}

pub(crate) fn company_schema() -> SchemaRef {
    let fields = ["id_company", "company_name", "logo"].map(|name| field(name, DataType::Utf8));
    Arc::new(Schema::new(fields.to_vec()))
}

pub(crate) fn tag_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        field("tag_value", DataType::Utf8),
        field("id_tag", DataType::Int64),
    ]))
}

pub(crate) fn transcript_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        field("id_transcript", DataType::Utf8),
        field("title", DataType::Utf8),
        field("transcript_type", DataType::Utf8),
        field("length", DataType::Float64),
        field("publish_date", DataType::Utf8),
        field("id_company", DataType::Utf8),
    ]))
}

pub(crate) fn conversation_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        field("id_conversation", DataType::Utf8),
        field("question", DataType::Utf8),
        field("answer", DataType::Utf8),
        field("sequence_conversation", DataType::Float64),
        Field::new("id_tag", DataType::Int32, false),
        field("id_transcript", DataType::Utf8),
    ]))
}

/// Buffered transcript rows.
#[derive(Default)]
pub(crate) struct TranscriptRows {
    pub(crate) ids: StringBuilder,
    pub(crate) titles: StringBuilder,
    pub(crate) kinds: StringBuilder,
    pub(crate) lengths: Float64Builder,
    pub(crate) dates: StringBuilder,
    pub(crate) companies: StringBuilder,
    pub(crate) len: usize,
}

impl TranscriptRows {
    pub(crate) fn take_columns(&mut self) -> Vec<ArrayRef> {
        self.len = 0;
        vec![
            Arc::new(self.ids.finish()),
            Arc::new(self.titles.finish()),
            Arc::new(self.kinds.finish()),
            Arc::new(self.lengths.finish()),
            Arc::new(self.dates.finish()),
            Arc::new(self.companies.finish()),
        ]
    }
}

/// Buffered conversation rows.
#[derive(Default)]
pub(crate) struct ConversationRows {
    pub(crate) ids: StringBuilder,
    pub(crate) questions: StringBuilder,
    pub(crate) answers: StringBuilder,
    pub(crate) sequences: Float64Builder,
    pub(crate) tags: Int32Builder,
    pub(crate) transcripts: StringBuilder,
    pub(crate) len: usize,
}

impl ConversationRows {
    pub(crate) fn take_columns(&mut self) -> Vec<ArrayRef> {
        self.len = 0;
        vec![
            Arc::new(self.ids.finish()),
            Arc::new(self.questions.finish()),
            Arc::new(self.answers.finish()),
            Arc::new(self.sequences.finish()),
            Arc::new(self.tags.finish()),
            Arc::new(self.transcripts.finish()),
        ]
    }
}

/// Writes a whole small table (companies, tags) in one go.
pub(crate) fn write_small_table(
    dir: &Path,
    schema: SchemaRef,
    columns: Vec<ArrayRef>,
) -> Result<u64, DatagenError> {
    let mut writer = PartWriter::create(dir.to_path_buf(), schema)?;
    writer.write(columns)?;
    writer.finish()?;
    Ok(writer.bytes)
}

pub(crate) fn tag_columns(names: &[&str]) -> Vec<ArrayRef> {
    let mut values = StringBuilder::new();
    let mut ids = Int64Builder::new();
    for (index, name) in names.iter().enumerate() {
        values.append_value(name);
        ids.append_value(index as i64 + 1);
    }
    vec![Arc::new(values.finish()), Arc::new(ids.finish())]
}
