//! Synthetic dataset generator: writes the normalized layout (company, transcript,
//! conversation and tag folders of Parquet part files) with explicit keys
//! (`id_transcript` on conversation rows, `id_company` on transcript rows).
//!
//! It streams: rows go out in row groups and part files as they are made, so memory
//! stays bounded at any scale. Companies are Zipf-skewed (a few large, many small),
//! each transcript draws its conversations' tags mostly from a few themes, and the
//! output is a pure function of the seed (own SplitMix64 PRNG, no dependency).

mod names;
mod rng;
mod tables;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::{ArrayRef, StringArray};

use names::{COMPANY_NAMES, LEGAL_FORMS, NAME_ENDINGS, NAME_STEMS, ROLES, TAG_NAMES, TOPICS};
use rng::{permute, SplitMix64, Zipf};
use tables::{ConversationRows, PartWriter, TranscriptRows, ROW_GROUP_ROWS};

/// Most conversations one dataset may hold (what one index can load).
pub const MAX_GENERATED_CONVERSATIONS: u64 = u32::MAX as u64 - 1;
/// Average conversations per company, which sets how many companies there are.
pub const CONVERSATIONS_PER_COMPANY: u64 = 2_000;
/// Most companies a dataset gets, however large.
pub const MAX_COMPANIES: usize = 5_000;
/// Zipf exponent of company sizes.
pub const COMPANY_SKEW: f64 = 1.1;
/// Zipf exponent of tag popularity.
pub const TAG_SKEW: f64 = 0.6;
/// Fewest and most conversations in one transcript.
pub const TRANSCRIPT_CONVERSATIONS: (u64, u64) = (5, 50);
/// Tags each transcript mostly draws from.
pub const THEMES_PER_TRANSCRIPT: usize = 3;
/// Share (percent) of conversations tagged with one of their transcript's themes.
pub const ON_THEME_PERCENT: u64 = 85;
/// One monologue (earnings call) transcript per this many conversation transcripts.
pub const MONOLOGUE_EVERY: u64 = 10;
/// Conversations between two progress log lines.
pub const PROGRESS_INTERVAL: u64 = 1_000_000;
/// Conversations in the dataset [`default_dataset`] makes.
pub const DEFAULT_CONVERSATIONS: u64 = 30_000;
/// Seed of the dataset [`default_dataset`] makes.
pub const DEFAULT_SEED: u64 = 20_240_601;
/// Folder name of the default dataset (versioned: bump when the generator changes).
pub const DEFAULT_DATASET_NAME: &str = "confab-default-conversations-v1";
/// File marking a default dataset as completely written.
const COMPLETE_MARKER: &str = "_CONFAB_COMPLETE";

/// Id-stream keys, so companies, transcripts and conversations get distinct ids.
const COMPANY_ID_SALT: u64 = 0xC0;
const TRANSCRIPT_ID_SALT: u64 = 0x7A;
const CONVERSATION_ID_SALT: u64 = 0x3C;

/// What to generate.
#[derive(Clone, Debug)]
pub struct DatagenOptions {
    /// Output folder; must not exist or be empty.
    pub out: PathBuf,
    pub conversations: u64,
    pub seed: u64,
}

/// What was generated.
#[derive(Clone, Debug, serde::Serialize)]
pub struct DatagenSummary {
    pub out: PathBuf,
    pub conversations: u64,
    pub transcripts: u64,
    pub companies: usize,
    pub tags: usize,
    pub part_files: usize,
    pub bytes: u64,
    pub elapsed: Duration,
}

/// Why generation failed.
#[derive(Debug, thiserror::Error)]
pub enum DatagenError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: cannot write Parquet: {source}")]
    Parquet {
        path: PathBuf,
        source: parquet::errors::ParquetError,
    },
    #[error("cannot build a record batch: {0}")]
    Arrow(arrow_schema::ArrowError),
    #[error("invalid options: {0}")]
    InvalidOptions(String),
}

impl DatagenError {
    fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    fn parquet(path: &Path, source: parquet::errors::ParquetError) -> Self {
        Self::Parquet {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Generates a dataset as `opts` says, logging progress.
pub fn generate(opts: &DatagenOptions) -> Result<DatagenSummary, DatagenError> {
    let started = Instant::now();
    check_options(opts)?;
    let companies = company_names(company_count(opts.conversations), opts.seed);
    let mut bytes = write_companies(&opts.out, &companies, opts.seed)?;
    bytes += tables::write_small_table(
        &opts.out.join("tag"),
        tables::tag_schema(),
        tables::tag_columns(TAG_NAMES),
    )?;
    let mut generator = Generator::new(opts, companies)?;
    generator.run(opts.conversations)?;
    let summary = generator.finish(bytes, started)?;
    tracing::info!(out = %summary.out.display(), conversations = summary.conversations, elapsed_ms = summary.elapsed.as_millis() as u64, "dataset generated");
    Ok(summary)
}

/// A small deterministic dataset under `dir` for serving without `--data`; reused
/// when a complete one is already there. Returns its folder.
pub fn default_dataset(dir: &Path) -> Result<PathBuf, DatagenError> {
    let out = dir.join(DEFAULT_DATASET_NAME);
    let marker = out.join(COMPLETE_MARKER);
    if marker.is_file() {
        return Ok(out);
    }
    if out.exists() {
        std::fs::remove_dir_all(&out).map_err(|source| DatagenError::io(&out, source))?;
    }
    generate(&DatagenOptions {
        out: out.clone(),
        conversations: DEFAULT_CONVERSATIONS,
        seed: DEFAULT_SEED,
    })?;
    std::fs::write(&marker, b"").map_err(|source| DatagenError::io(&marker, source))?;
    Ok(out)
}

fn check_options(opts: &DatagenOptions) -> Result<(), DatagenError> {
    if !(1..=MAX_GENERATED_CONVERSATIONS).contains(&opts.conversations) {
        let detail = format!("conversations must be between 1 and {MAX_GENERATED_CONVERSATIONS}");
        return Err(DatagenError::InvalidOptions(detail));
    }
    let occupied = std::fs::read_dir(&opts.out).map(|mut entries| entries.next().is_some());
    match occupied {
        Ok(true) => Err(DatagenError::InvalidOptions(format!(
            "{} is not empty",
            opts.out.display()
        ))),
        _ => Ok(()),
    }
}

fn company_count(conversations: u64) -> usize {
    let wanted =
        usize::try_from(conversations / CONVERSATIONS_PER_COMPANY).unwrap_or(MAX_COMPANIES);
    wanted.clamp(COMPANY_NAMES.len(), MAX_COMPANIES)
}

/// The well-known names first, then synthetic ones for the long tail.
fn company_names(count: usize, seed: u64) -> Vec<String> {
    let mut rng = SplitMix64::new(seed ^ COMPANY_ID_SALT);
    let mut names: Vec<String> = COMPANY_NAMES.iter().map(|n| n.to_string()).collect();
    while names.len() < count {
        let (stem, ending, form) = (
            rng.pick(NAME_STEMS),
            rng.pick(NAME_ENDINGS),
            rng.pick(LEGAL_FORMS),
        );
        names.push(format!("{stem}{ending} {form} {}", names.len()));
    }
    names.truncate(count);
    names
}

fn hex_id(seed: u64, salt: u64, index: u64) -> String {
    format!(
        "{:08x}",
        permute(seed.wrapping_mul(0x9E37_79B9) ^ salt, index as u32)
    )
}

fn company_short_name(name: &str) -> &str {
    name.split(',').next().unwrap_or(name)
}

fn write_companies(out: &Path, names: &[String], seed: u64) -> Result<u64, DatagenError> {
    let ids: Vec<String> = (0..names.len() as u64)
        .map(|i| hex_id(seed, COMPANY_ID_SALT, i))
        .collect();
    let logos = names.iter().map(|n| {
        format!(
            "https://logo.example/{}.png",
            company_short_name(n).to_lowercase().replace(' ', "-")
        )
    });
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(&ids)),
        Arc::new(StringArray::from_iter_values(names)),
        Arc::new(StringArray::from_iter_values(logos)),
    ];
    tables::write_small_table(&out.join("company"), tables::company_schema(), columns)
}

/// The streaming generator of transcripts and their conversations.
struct Generator {
    rng: SplitMix64,
    seed: u64,
    companies: Vec<String>,
    company_sizes: Zipf,
    tag_popularity: Zipf,
    transcript_files: PartWriter,
    conversation_files: PartWriter,
    transcript_rows: TranscriptRows,
    conversation_rows: ConversationRows,
    transcripts: u64,
    conversations: u64,
    out: PathBuf,
    scratch: String,
}

impl Generator {
    fn new(opts: &DatagenOptions, companies: Vec<String>) -> Result<Self, DatagenError> {
        Ok(Self {
            rng: SplitMix64::new(opts.seed),
            seed: opts.seed,
            company_sizes: Zipf::new(companies.len(), COMPANY_SKEW),
            tag_popularity: Zipf::new(TAG_NAMES.len(), TAG_SKEW),
            companies,
            transcript_files: PartWriter::create(
                opts.out.join("transcript"),
                tables::transcript_schema(),
            )?,
            conversation_files: PartWriter::create(
                opts.out.join("conversation"),
                tables::conversation_schema(),
            )?,
            transcript_rows: TranscriptRows::default(),
            conversation_rows: ConversationRows::default(),
            transcripts: 0,
            conversations: 0,
            out: opts.out.clone(),
            scratch: String::new(),
        })
    }

    fn run(&mut self, total: u64) -> Result<(), DatagenError> {
        let mut next_report = PROGRESS_INTERVAL;
        while self.conversations < total {
            let company = self.company_sizes.sample(&mut self.rng);
            let (fewest, most) = TRANSCRIPT_CONVERSATIONS;
            let count = self
                .rng
                .between(fewest, most)
                .min(total - self.conversations);
            self.write_conversation_transcript(company, count)?;
            if self.transcripts.is_multiple_of(MONOLOGUE_EVERY) {
                self.push_transcript(company, false);
            }
            if self.conversations >= next_report {
                tracing::info!(
                    conversations = self.conversations,
                    "generating conversations"
                );
                next_report += PROGRESS_INTERVAL;
            }
        }
        Ok(())
    }

    fn write_conversation_transcript(
        &mut self,
        company: usize,
        count: u64,
    ) -> Result<(), DatagenError> {
        let transcript = self.push_transcript(company, true);
        let themes: Vec<usize> = (0..THEMES_PER_TRANSCRIPT)
            .map(|_| self.tag_popularity.sample(&mut self.rng))
            .collect();
        for sequence in 1..=count {
            let tag = match self.rng.chance(ON_THEME_PERCENT) {
                true => *self.rng.pick(&themes),
                false => self.rng.below(TAG_NAMES.len() as u64) as usize,
            };
            self.push_conversation(&transcript, company, sequence, tag);
            if self.conversation_rows.len >= ROW_GROUP_ROWS {
                let columns = self.conversation_rows.take_columns();
                self.conversation_files.write(columns)?;
            }
        }
        if self.transcript_rows.len >= ROW_GROUP_ROWS {
            let columns = self.transcript_rows.take_columns();
            self.transcript_files.write(columns)?;
        }
        Ok(())
    }

    /// Appends a transcript row; returns its id.
    fn push_transcript(&mut self, company: usize, conversation_type: bool) -> String {
        let id = hex_id(self.seed, TRANSCRIPT_ID_SALT, self.transcripts);
        self.transcripts += 1;
        let (year, month, day) = (
            self.rng.between(2018, 2024),
            self.rng.between(1, 12),
            self.rng.between(1, 28),
        );
        let name = &self.companies[company];
        self.scratch.clear();
        let _ = match conversation_type {
            true => write!(
                self.scratch,
                "{} at {}",
                self.rng.pick(ROLES),
                company_short_name(name)
            ),
            false => write!(
                self.scratch,
                "{name}, Q{} {year} Earnings Call, {year}-{month:02}-{day:02}",
                self.rng.between(1, 4)
            ),
        };
        let rows = &mut self.transcript_rows;
        rows.ids.append_value(&id);
        rows.titles.append_value(&self.scratch);
        rows.kinds.append_value(if conversation_type {
            "conversation"
        } else {
            "monologue"
        });
        rows.lengths.append_value(10.0 + self.rng.unit() * 30.0);
        rows.dates
            .append_value(format!("{year}-{month:02}-{day:02}"));
        rows.companies
            .append_value(hex_id(self.seed, COMPANY_ID_SALT, company as u64));
        rows.len += 1;
        id
    }

    fn push_conversation(&mut self, transcript: &str, company: usize, sequence: u64, tag: usize) {
        let id = hex_id(self.seed, CONVERSATION_ID_SALT, self.conversations);
        self.conversations += 1;
        let short = company_short_name(&self.companies[company]);
        let (topic, tag_name) = (self.rng.pick(TOPICS), TAG_NAMES[tag].to_lowercase());
        self.scratch.clear();
        let _ = write!(
            self.scratch,
            "How does {short} think about {topic}, in terms of {tag_name}?"
        );
        let rows = &mut self.conversation_rows;
        rows.questions.append_value(&self.scratch);
        self.scratch.clear();
        let _ = write!(self.scratch, "From what I saw, {short} treats {tag_name} as central to {topic}; it shapes most decisions there.");
        rows.answers.append_value(&self.scratch);
        rows.ids.append_value(id);
        rows.sequences.append_value(sequence as f64);
        rows.tags.append_value(tag as i32 + 1);
        rows.transcripts.append_value(transcript);
        rows.len += 1;
    }

    fn finish(
        mut self,
        small_table_bytes: u64,
        started: Instant,
    ) -> Result<DatagenSummary, DatagenError> {
        if self.conversation_rows.len > 0 {
            let columns = self.conversation_rows.take_columns();
            self.conversation_files.write(columns)?;
        }
        if self.transcript_rows.len > 0 {
            let columns = self.transcript_rows.take_columns();
            self.transcript_files.write(columns)?;
        }
        self.conversation_files.finish()?;
        self.transcript_files.finish()?;
        Ok(DatagenSummary {
            out: self.out,
            conversations: self.conversations,
            transcripts: self.transcripts,
            companies: self.companies.len(),
            tags: TAG_NAMES.len(),
            part_files: self.conversation_files.parts() + self.transcript_files.parts() + 2,
            bytes: small_table_bytes + self.conversation_files.bytes + self.transcript_files.bytes,
            elapsed: started.elapsed(),
        })
    }
}

#[cfg(test)]
mod tests;
