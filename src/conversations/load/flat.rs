//! The flat layout: one Parquet file, or a folder of part files, with one row per
//! conversation: `conversation_id` (or `id_conversation`), `company` (a name; null
//! means none), `tags` (a list of strings or one comma-separated string; null means
//! none) and, optionally, `question` and `answer`.
//!
//! Companies are identified by their exact name (the name is also their id).

use std::path::{Path, PathBuf};

use super::{fraction_read, table_files, too_large, Reading};
use crate::conversations::columns::{ColumnBatch, ColumnKind, ColumnSpec};
use crate::conversations::error::LoadError;
use crate::conversations::index::{IndexBuilder, NewConversation};

const ID: usize = 0;
const COMPANY: usize = 1;
const TAGS: usize = 2;
const QUESTION: usize = 3;
const ANSWER: usize = 4;
const COLUMNS: [ColumnSpec; 5] = [
    ColumnSpec::required(&["conversation_id", "id_conversation"], ColumnKind::Id),
    ColumnSpec::required(&["company"], ColumnKind::Text),
    ColumnSpec::required(&["tags"], ColumnKind::Tags),
    ColumnSpec::optional(&["question"], ColumnKind::Text),
    ColumnSpec::optional(&["answer"], ColumnKind::Text),
];

/// Reads a flat table from a file, or from the part files of a folder, into `builder`.
pub(super) fn load_into(
    path: &Path,
    is_dir: bool,
    builder: &mut IndexBuilder,
    reading: &mut Reading<'_>,
) -> Result<(), LoadError> {
    let files: Vec<PathBuf> = match is_dir {
        true => table_files(path)?,
        false => vec![path.to_path_buf()],
    };
    for (position, file) in files.iter().enumerate() {
        let reader = reading.open(file, &COLUMNS)?;
        let rows = reader.row_count();
        tracing::info!(file = %file.display(), rows, "reading conversations");
        let mut rows_read = 0;
        reader.for_each_batch(|batch| {
            read_batch(batch, builder)?;
            rows_read += batch.num_rows() as u64;
            reading.after_batch(
                builder,
                fraction_read(position, files.len(), rows_read, rows),
            )
        })?;
    }
    Ok(())
}

fn read_batch(batch: &ColumnBatch<'_>, builder: &mut IndexBuilder) -> Result<(), LoadError> {
    let ids = batch.id(ID)?.ok_or_else(|| batch.missing(ID))?;
    let companies = batch.text(COMPANY)?.ok_or_else(|| batch.missing(COMPANY))?;
    let tags = batch.tags(TAGS)?.ok_or_else(|| batch.missing(TAGS))?;
    let questions = batch.text(QUESTION)?;
    let answers = batch.text(ANSWER)?;
    for row in 0..batch.num_rows() {
        let id = ids
            .get(row)
            .ok_or_else(|| batch.bad_value(ID, row, "null conversation id".into()))?;
        let conversation = NewConversation {
            id,
            company: companies.get(row).map(|name| builder.company_named(name)),
            transcript: None,
            question: questions.as_ref().and_then(|q| q.get(row)),
            answer: answers.as_ref().and_then(|a| a.get(row)),
        };
        let number = builder
            .push_conversation(conversation)
            .map_err(|e| too_large(batch.path(), e))?;
        tags.for_each(row, |tag| {
            let tag = builder.tag(tag);
            builder.tag_row(number, tag);
        });
    }
    Ok(())
}
