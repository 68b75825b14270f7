//! The normalized layout: `company/`, `transcript/`, `conversation/` and `tag/`
//! folders of part files (`monologue/` and anything else is ignored).
//!
//! Conversations reach companies through transcripts. With explicit keys
//! (`id_transcript` on conversation rows and `id_company` on transcript rows) those
//! are used. Without them the links are inferred from row order, as a Spark export
//! like the sample needs:
//! - conversation rows form runs that restart where `sequence_conversation` is 1;
//!   the k-th run belongs to the k-th transcript (row order) of type `conversation`;
//! - a transcript belongs to the company whose name begins its title (the longest
//!   such name, compared case-insensitively, ending at a word boundary); one with
//!   none takes the company of the next transcript in row order that has one.
//!
//! Runs and transcripts that do not line up are an error, never a guess.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::keys::{key_text, KeyMap};
use super::{fraction_read, table_files, too_large, Reading};
use crate::conversations::columns::{ColumnBatch, ColumnKind, ColumnSpec, IdValue};
use crate::conversations::error::LoadError;
use crate::conversations::index::{IndexBuilder, NewConversation};

const COMPANY_ID: usize = 0;
const COMPANY_NAME: usize = 1;
const COMPANY_COLUMNS: [ColumnSpec; 2] = [
    ColumnSpec::required(&["id_company"], ColumnKind::Id),
    ColumnSpec::required(&["company_name"], ColumnKind::Text),
];

const TAG_ID: usize = 0;
const TAG_VALUE: usize = 1;
const TAG_COLUMNS: [ColumnSpec; 2] = [
    ColumnSpec::required(&["id_tag"], ColumnKind::Id),
    ColumnSpec::required(&["tag_value"], ColumnKind::Text),
];

const TRANSCRIPT_ID: usize = 0;
const TRANSCRIPT_TITLE: usize = 1;
const TRANSCRIPT_TYPE: usize = 2;
const TRANSCRIPT_COMPANY: usize = 3;

const CONVERSATION_ID: usize = 0;
const CONVERSATION_QUESTION: usize = 1;
const CONVERSATION_ANSWER: usize = 2;
const CONVERSATION_TAG: usize = 3;
const CONVERSATION_SEQUENCE: usize = 4;
const CONVERSATION_TRANSCRIPT: usize = 5;

/// The `transcript_type` of transcripts that own conversation rows.
const CONVERSATION_TRANSCRIPT_TYPE: &str = "conversation";

/// Reads a normalized export rooted at `root` into `builder`; returns whether the links of
/// conversations to transcripts and companies were inferred from row order.
pub(super) fn load_into(
    root: &Path,
    builder: &mut IndexBuilder,
    reading: &mut Reading<'_>,
) -> Result<bool, LoadError> {
    let companies = read_companies(&root.join("company"), builder, reading)?;
    let tags = read_tags(&root.join("tag"), builder, reading)?;
    let transcript_files = table_files(&root.join("transcript"))?;
    let conversation_files = table_files(&root.join("conversation"))?;
    let explicit = has_column(&conversation_files[0], &["id_transcript"], reading)?
        && has_column(&transcript_files[0], &["id_company"], reading)?;
    if !explicit {
        tracing::warn!(path = %root.display(), "no id_transcript/id_company keys: inferring conversation links from row order");
    }
    let transcripts = read_transcripts(&transcript_files, explicit, &companies, builder, reading)?;
    let mut linker = Linker::new(explicit, &transcripts, root.join("conversation"));
    read_conversations(&conversation_files, &tags, &mut linker, builder, reading)?;
    linker.check_all_runs_used()?;
    Ok(!explicit)
}

fn has_column(
    file: &Path,
    names: &'static [&'static str],
    reading: &mut Reading<'_>,
) -> Result<bool, LoadError> {
    let reader = reading.open(file, &[ColumnSpec::optional(names, ColumnKind::Id)])?;
    Ok(reader.has(0))
}

/// Companies by key, and by lower-cased name for title matching.
struct Companies {
    by_key: KeyMap,
    by_lowercase_name: HashMap<String, u32>,
}

fn read_companies(
    dir: &Path,
    builder: &mut IndexBuilder,
    reading: &mut Reading<'_>,
) -> Result<Companies, LoadError> {
    let mut companies = Companies {
        by_key: KeyMap::default(),
        by_lowercase_name: HashMap::new(),
    };
    for file in table_files(dir)? {
        let reader = reading.open(&file, &COMPANY_COLUMNS)?;
        reader.for_each_batch(|batch| {
            let ids = batch
                .id(COMPANY_ID)?
                .ok_or_else(|| batch.missing(COMPANY_ID))?;
            let names = batch
                .text(COMPANY_NAME)?
                .ok_or_else(|| batch.missing(COMPANY_NAME))?;
            for row in 0..batch.num_rows() {
                let id = ids
                    .get(row)
                    .ok_or_else(|| batch.bad_value(COMPANY_ID, row, "null company id".into()))?;
                let id_text = key_text(id);
                let name = names.get(row).unwrap_or(&id_text);
                let index = builder.add_company(&id_text, name);
                companies.by_key.insert(id, index);
                companies
                    .by_lowercase_name
                    .entry(name.to_lowercase())
                    .or_insert(index);
            }
            Ok(())
        })?;
    }
    Ok(companies)
}

fn read_tags(
    dir: &Path,
    builder: &mut IndexBuilder,
    reading: &mut Reading<'_>,
) -> Result<KeyMap, LoadError> {
    let mut tags = KeyMap::default();
    for file in table_files(dir)? {
        let reader = reading.open(&file, &TAG_COLUMNS)?;
        reader.for_each_batch(|batch| {
            let ids = batch.id(TAG_ID)?.ok_or_else(|| batch.missing(TAG_ID))?;
            let values = batch
                .text(TAG_VALUE)?
                .ok_or_else(|| batch.missing(TAG_VALUE))?;
            for row in 0..batch.num_rows() {
                let id = ids
                    .get(row)
                    .ok_or_else(|| batch.bad_value(TAG_ID, row, "null tag id".into()))?;
                let value = values
                    .get(row)
                    .ok_or_else(|| batch.bad_value(TAG_VALUE, row, "null tag value".into()))?;
                tags.insert(id, builder.tag(value));
            }
            Ok(())
        })?;
    }
    Ok(tags)
}

/// Transcripts in row order with their resolved companies. Indices are the builder's, which
/// count the transcripts of datasets read before this one too.
struct Transcripts {
    /// The builder's index of this dataset's first transcript.
    first: u32,
    by_key: KeyMap,
    /// Company of each of this dataset's transcripts, from `first` on.
    company: Vec<Option<u32>>,
    /// Transcripts of type `conversation`, in row order (for inferred links).
    of_conversation_type: Vec<u32>,
}

fn transcript_columns(explicit: bool) -> [ColumnSpec; 4] {
    let needed_when = |required: bool, names, kind| match required {
        true => ColumnSpec::required(names, kind),
        false => ColumnSpec::optional(names, kind),
    };
    [
        ColumnSpec::required(&["id_transcript"], ColumnKind::Id),
        needed_when(!explicit, &["title"], ColumnKind::Text),
        needed_when(!explicit, &["transcript_type"], ColumnKind::Text),
        needed_when(explicit, &["id_company"], ColumnKind::Id),
    ]
}

impl Transcripts {
    fn company_of(&self, transcript: u32) -> Option<u32> {
        self.company[(transcript - self.first) as usize]
    }
}

fn read_transcripts(
    files: &[PathBuf],
    explicit: bool,
    companies: &Companies,
    builder: &mut IndexBuilder,
    reading: &mut Reading<'_>,
) -> Result<Transcripts, LoadError> {
    let mut transcripts = Transcripts {
        first: builder.transcript_count() as u32,
        by_key: KeyMap::default(),
        company: Vec::new(),
        of_conversation_type: Vec::new(),
    };
    let columns = transcript_columns(explicit);
    for file in files {
        let reader = reading.open(file, &columns)?;
        reader.for_each_batch(|batch| {
            read_transcript_batch(batch, explicit, companies, &mut transcripts, builder)
        })?;
    }
    if !explicit {
        fill_companies_from_next(&mut transcripts.company);
    }
    Ok(transcripts)
}

fn read_transcript_batch(
    batch: &ColumnBatch<'_>,
    explicit: bool,
    companies: &Companies,
    transcripts: &mut Transcripts,
    builder: &mut IndexBuilder,
) -> Result<(), LoadError> {
    let ids = batch
        .id(TRANSCRIPT_ID)?
        .ok_or_else(|| batch.missing(TRANSCRIPT_ID))?;
    let titles = batch.text(TRANSCRIPT_TITLE)?;
    let kinds = batch.text(TRANSCRIPT_TYPE)?;
    let company_keys = batch.id(TRANSCRIPT_COMPANY)?;
    for row in 0..batch.num_rows() {
        let id = ids
            .get(row)
            .ok_or_else(|| batch.bad_value(TRANSCRIPT_ID, row, "null transcript id".into()))?;
        let title = titles.as_ref().and_then(|t| t.get(row));
        let index = builder
            .add_transcript(&key_text(id), title)
            .map_err(|e| too_large(batch.path(), e))?;
        transcripts.by_key.insert(id, index);
        let company = match (explicit, &company_keys) {
            (true, Some(keys)) => explicit_company(batch, row, keys.get(row), companies)?,
            _ => title.and_then(|t| company_beginning(t, &companies.by_lowercase_name)),
        };
        transcripts.company.push(company);
        if kinds
            .as_ref()
            .and_then(|k| k.get(row))
            .is_some_and(|k| k.trim().eq_ignore_ascii_case(CONVERSATION_TRANSCRIPT_TYPE))
        {
            transcripts.of_conversation_type.push(index);
        }
    }
    Ok(())
}

fn explicit_company(
    batch: &ColumnBatch<'_>,
    row: usize,
    key: Option<IdValue<'_>>,
    companies: &Companies,
) -> Result<Option<u32>, LoadError> {
    let Some(key) = key else {
        return Ok(None);
    };
    match companies.by_key.get(key) {
        Some(company) => Ok(Some(company)),
        None => Err(batch.bad_value(
            TRANSCRIPT_COMPANY,
            row,
            format!("unknown company id `{}`", key_text(key)),
        )),
    }
}

/// The company with the longest name that begins `title` at a word boundary.
pub(crate) fn company_beginning(
    title: &str,
    by_lowercase_name: &HashMap<String, u32>,
) -> Option<u32> {
    let title = title.to_lowercase();
    let mut ends: Vec<usize> = title
        .char_indices()
        .map(|(i, _)| i)
        .filter(|&i| i > 0)
        .collect();
    ends.push(title.len());
    ends.into_iter()
        .rev()
        .filter(|&end| is_word_boundary(&title, end))
        .find_map(|end| by_lowercase_name.get(&title[..end]).copied())
}

fn is_word_boundary(text: &str, at: usize) -> bool {
    let before = text[..at]
        .chars()
        .next_back()
        .is_some_and(char::is_alphanumeric);
    let after = text[at..].chars().next().is_some_and(char::is_alphanumeric);
    !(before && after)
}

/// Gives each transcript without a company the company of the next one that has one.
pub(super) fn fill_companies_from_next(companies: &mut [Option<u32>]) {
    let mut next = None;
    for company in companies.iter_mut().rev() {
        match company {
            Some(found) => next = Some(*found),
            None => *company = next,
        }
    }
}

/// Finds each conversation row's transcript, explicitly or by run position.
struct Linker<'a> {
    explicit: bool,
    transcripts: &'a Transcripts,
    conversation_dir: PathBuf,
    runs_seen: usize,
}

impl<'a> Linker<'a> {
    fn new(explicit: bool, transcripts: &'a Transcripts, conversation_dir: PathBuf) -> Self {
        Self {
            explicit,
            transcripts,
            conversation_dir,
            runs_seen: 0,
        }
    }

    fn columns(&self) -> [ColumnSpec; 6] {
        let sequence = match self.explicit {
            true => ColumnSpec::optional(&["sequence_conversation"], ColumnKind::Number),
            false => ColumnSpec::required(&["sequence_conversation"], ColumnKind::Number),
        };
        let transcript = match self.explicit {
            true => ColumnSpec::required(&["id_transcript"], ColumnKind::Id),
            false => ColumnSpec::optional(&["id_transcript"], ColumnKind::Id),
        };
        [
            ColumnSpec::required(&["id_conversation"], ColumnKind::Id),
            ColumnSpec::required(&["question"], ColumnKind::Text),
            ColumnSpec::required(&["answer"], ColumnKind::Text),
            ColumnSpec::required(&["id_tag"], ColumnKind::Id),
            sequence,
            transcript,
        ]
    }

    fn transcript_of(
        &mut self,
        batch: &ColumnBatch<'_>,
        row: usize,
        link: &LinkColumns<'_>,
    ) -> Result<Option<u32>, LoadError> {
        match link {
            LinkColumns::Explicit(keys) => {
                let Some(key) = keys.get(row) else {
                    return Ok(None);
                };
                let transcript = self.transcripts.by_key.get(key);
                let unknown = || {
                    batch.bad_value(
                        CONVERSATION_TRANSCRIPT,
                        row,
                        format!("unknown transcript id `{}`", key_text(key)),
                    )
                };
                transcript.map(Some).ok_or_else(unknown)
            }
            LinkColumns::Inferred(sequence) => {
                self.transcript_by_run(batch, row, sequence.get(row))
            }
        }
    }

    fn transcript_by_run(
        &mut self,
        batch: &ColumnBatch<'_>,
        row: usize,
        sequence: Option<f64>,
    ) -> Result<Option<u32>, LoadError> {
        let Some(sequence) = sequence else {
            return Err(batch.bad_value(
                CONVERSATION_SEQUENCE,
                row,
                "null sequence_conversation: cannot tell where runs restart".into(),
            ));
        };
        if self.runs_seen == 0 && sequence != 1.0 {
            return Err(self.unlinkable(format!(
                "the first conversation row has sequence_conversation {sequence}, not 1"
            )));
        }
        if sequence == 1.0 {
            self.runs_seen += 1;
        }
        match self
            .transcripts
            .of_conversation_type
            .get(self.runs_seen - 1)
        {
            Some(&transcript) => Ok(Some(transcript)),
            None => Err(self.unlinkable(self.mismatch_detail("more than"))),
        }
    }

    fn check_all_runs_used(&self) -> Result<(), LoadError> {
        match self.explicit || self.runs_seen == self.transcripts.of_conversation_type.len() {
            true => Ok(()),
            false => Err(self.unlinkable(self.mismatch_detail("only"))),
        }
    }

    fn mismatch_detail(&self, quantity: &str) -> String {
        format!(
            "conversation rows form {quantity} {} runs (restarting where sequence_conversation is 1) but the transcript table has {} transcripts of type `{CONVERSATION_TRANSCRIPT_TYPE}`; they must line up one to one",
            self.runs_seen,
            self.transcripts.of_conversation_type.len()
        )
    }

    fn unlinkable(&self, detail: String) -> LoadError {
        LoadError::Unlinkable {
            path: self.conversation_dir.clone(),
            detail,
        }
    }
}

/// The columns a batch links conversations with.
enum LinkColumns<'a> {
    Explicit(crate::conversations::columns::IdColumn<'a>),
    Inferred(crate::conversations::columns::NumberColumn),
}

fn link_columns<'a>(batch: &ColumnBatch<'a>, explicit: bool) -> Result<LinkColumns<'a>, LoadError> {
    match explicit {
        true => Ok(LinkColumns::Explicit(
            batch
                .id(CONVERSATION_TRANSCRIPT)?
                .ok_or_else(|| batch.missing(CONVERSATION_TRANSCRIPT))?,
        )),
        false => Ok(LinkColumns::Inferred(
            batch
                .number(CONVERSATION_SEQUENCE)?
                .ok_or_else(|| batch.missing(CONVERSATION_SEQUENCE))?,
        )),
    }
}

fn read_conversations(
    files: &[PathBuf],
    tags: &KeyMap,
    linker: &mut Linker<'_>,
    builder: &mut IndexBuilder,
    reading: &mut Reading<'_>,
) -> Result<(), LoadError> {
    let columns = linker.columns();
    for (position, file) in files.iter().enumerate() {
        let reader = reading.open(file, &columns)?;
        let rows = reader.row_count();
        tracing::info!(file = %file.display(), rows, "reading conversations");
        let mut rows_read = 0;
        reader.for_each_batch(|batch| {
            read_conversation_batch(batch, tags, linker, builder)?;
            rows_read += batch.num_rows() as u64;
            reading.after_batch(
                builder,
                fraction_read(position, files.len(), rows_read, rows),
            )
        })?;
    }
    Ok(())
}

fn read_conversation_batch(
    batch: &ColumnBatch<'_>,
    tags: &KeyMap,
    linker: &mut Linker<'_>,
    builder: &mut IndexBuilder,
) -> Result<(), LoadError> {
    let ids = batch
        .id(CONVERSATION_ID)?
        .ok_or_else(|| batch.missing(CONVERSATION_ID))?;
    let questions = batch
        .text(CONVERSATION_QUESTION)?
        .ok_or_else(|| batch.missing(CONVERSATION_QUESTION))?;
    let answers = batch
        .text(CONVERSATION_ANSWER)?
        .ok_or_else(|| batch.missing(CONVERSATION_ANSWER))?;
    let tag_keys = batch
        .id(CONVERSATION_TAG)?
        .ok_or_else(|| batch.missing(CONVERSATION_TAG))?;
    let link = link_columns(batch, linker.explicit)?;
    for row in 0..batch.num_rows() {
        let id = ids
            .get(row)
            .ok_or_else(|| batch.bad_value(CONVERSATION_ID, row, "null conversation id".into()))?;
        let transcript = linker.transcript_of(batch, row, &link)?;
        let conversation = NewConversation {
            id,
            company: transcript.and_then(|t| linker.transcripts.company_of(t)),
            transcript,
            question: questions.get(row),
            answer: answers.get(row),
        };
        let number = builder
            .push_conversation(conversation)
            .map_err(|e| too_large(batch.path(), e))?;
        if let Some(key) = tag_keys.get(row) {
            let tag = tags.get(key).ok_or_else(|| {
                batch.bad_value(
                    CONVERSATION_TAG,
                    row,
                    format!("unknown tag id `{}`", key_text(key)),
                )
            })?;
            builder.tag_row(number, tag);
        }
    }
    Ok(())
}
