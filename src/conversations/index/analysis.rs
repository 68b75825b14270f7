//! Row-range analyses over an index: the kernels of the parallel jobs.
//!
//! Each analysis scans a range of rows into an accumulator of its own; accumulators of
//! disjoint ranges merge into the one of their union, and the final accumulator renders to
//! JSON. The caller decides how ranges are split over threads (see `crate::jobs`), so the
//! kernels here are single-threaded and know nothing of progress or cancellation.

use std::collections::BTreeMap;
use std::ops::Range;

use ahash::AHashMap;
use roaring::RoaringBitmap;
use serde_json::{json, Value};

use super::{linked, ConversationIndex, NO_LINK};

/// One analysis: what it counts per row, and how partial counts combine.
pub trait RowAnalysis: Sync {
    /// Partial counts over some rows.
    type Counts: Default + Send;

    /// Adds the rows of `rows` (a sub-range of `0..index.len()`) to `counts`.
    fn scan(&self, index: &ConversationIndex, rows: Range<u32>, counts: &mut Self::Counts);

    /// Adds `other` (counts of rows disjoint from those of `into`) to `into`.
    fn merge(into: &mut Self::Counts, other: Self::Counts);

    /// The job result.
    fn render(&self, index: &ConversationIndex, counts: Self::Counts) -> Value;
}

/// Rows restricted to one company key, when the job was given one.
#[derive(Debug, Clone, Default)]
pub struct CompanyFilter {
    key: Option<String>,
    rows: Option<RoaringBitmap>,
}

impl CompanyFilter {
    /// Resolves `key` (as the `company` query parameter reads it) against `index`. An unknown
    /// key matches no row, as in queries.
    pub fn resolve(index: &ConversationIndex, key: Option<&str>) -> CompanyFilter {
        let Some(key) = key else {
            return CompanyFilter::default();
        };
        let lowered = key.trim().to_lowercase();
        let rows = index
            .hot
            .company_keys
            .get(lowered.as_str())
            .map(|&set| index.hot.company_sets[set as usize].clone())
            .unwrap_or_default();
        CompanyFilter {
            key: Some(key.to_owned()),
            rows: Some(rows),
        }
    }

    fn admits(&self, row: u32) -> bool {
        self.rows.as_ref().is_none_or(|rows| rows.contains(row))
    }

    fn describe(&self) -> Value {
        self.key.as_deref().map_or(Value::Null, Value::from)
    }
}

/// Calls `visit` with each admitted row of `rows` and its tags (indices into the tag list),
/// in row order. Tags are gathered from the tag bitmaps, one pass per tag over the range.
fn for_each_row_with_tags(
    index: &ConversationIndex,
    rows: Range<u32>,
    filter: &CompanyFilter,
    mut visit: impl FnMut(u32, &[u32]),
) {
    let mut pairs: Vec<(u32, u32)> = Vec::new();
    for (tag, tagged) in index.hot.tag_rows.iter().enumerate() {
        pairs.extend(tagged.range(rows.clone()).map(|row| (row, tag as u32)));
    }
    pairs.sort_unstable();
    let mut next_pair = 0;
    let mut tags = Vec::new();
    for row in rows {
        tags.clear();
        while next_pair < pairs.len() && pairs[next_pair].0 == row {
            tags.push(pairs[next_pair].1);
            next_pair += 1;
        }
        if filter.admits(row) {
            visit(row, &tags);
        }
    }
}

fn company_name(index: &ConversationIndex, company: u32) -> Value {
    linked(company).map_or(Value::Null, |company| {
        Value::from(&*index.cold.companies[company].name)
    })
}

fn tag_name(index: &ConversationIndex, tag: u32) -> Value {
    linked(tag).map_or(Value::Null, |tag| Value::from(&*index.cold.tag_names[tag]))
}

/// Conversations per (company, tag).
#[derive(Debug, Clone, Default)]
pub struct TagStats {
    pub filter: CompanyFilter,
}

impl RowAnalysis for TagStats {
    type Counts = AHashMap<(u32, u32), u64>;

    fn scan(&self, index: &ConversationIndex, rows: Range<u32>, counts: &mut Self::Counts) {
        for (tag, tagged) in index.hot.tag_rows.iter().enumerate() {
            for row in tagged.range(rows.clone()) {
                if self.filter.admits(row) {
                    let company = index.cold.company_of_row[row as usize];
                    *counts.entry((company, tag as u32)).or_default() += 1;
                }
            }
        }
    }

    fn merge(into: &mut Self::Counts, other: Self::Counts) {
        for (key, count) in other {
            *into.entry(key).or_default() += count;
        }
    }

    fn render(&self, index: &ConversationIndex, counts: Self::Counts) -> Value {
        let mut sorted: Vec<_> = counts.into_iter().collect();
        // Companies in dataset order (rows without a company last), tags in order of first
        // appearance.
        sorted.sort_unstable_by_key(|&((company, tag), _)| (company, tag));
        let counts: Vec<Value> = sorted
            .into_iter()
            .map(|((company, tag), conversations)| {
                json!({
                    "company": company_name(index, company),
                    "tag": tag_name(index, tag),
                    "conversations": conversations,
                })
            })
            .collect();
        json!({ "company_filter": self.filter.describe(), "counts": counts })
    }
}

/// Occurrences of chosen words in question and answer text, per company and tag.
#[derive(Debug, Clone, Default)]
pub struct KeywordStats {
    /// The words, lower-cased, each one token of letters and digits.
    pub words: Vec<String>,
    pub filter: CompanyFilter,
}

/// Partial counts of [`KeywordStats`].
#[derive(Debug, Default)]
pub struct KeywordCounts {
    /// `(company, tag, word)` → occurrences; the tag is `NO_LINK` for untagged rows.
    by_group: AHashMap<(u32, u32, u32), u64>,
    /// Per word: occurrences, and conversations containing it at least once.
    totals: Vec<(u64, u64)>,
}

impl KeywordStats {
    fn count_row(&self, index: &ConversationIndex, row: u32, scratch: &mut Scratch) -> bool {
        scratch.per_word.clear();
        scratch.per_word.resize(self.words.len(), 0);
        let texts = [
            index.cold.questions.get(row as usize),
            index.cold.answers.get(row as usize),
        ];
        let mut found = false;
        for text in texts.into_iter().flatten() {
            scratch.lowered.clear();
            scratch
                .lowered
                .extend(text.chars().flat_map(char::to_lowercase));
            for token in words_of(&scratch.lowered) {
                if let Some(word) = self.words.iter().position(|word| word == token) {
                    scratch.per_word[word] += 1;
                    found = true;
                }
            }
        }
        found
    }
}

/// Buffers reused from row to row.
#[derive(Default)]
struct Scratch {
    lowered: String,
    per_word: Vec<u64>,
}

/// The words of `text`: maximal runs of letters and digits.
fn words_of(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
}

impl RowAnalysis for KeywordStats {
    type Counts = KeywordCounts;

    fn scan(&self, index: &ConversationIndex, rows: Range<u32>, counts: &mut KeywordCounts) {
        counts.totals.resize(self.words.len(), (0, 0));
        let mut scratch = Scratch::default();
        for_each_row_with_tags(index, rows, &self.filter, |row, tags| {
            if !self.count_row(index, row, &mut scratch) {
                return;
            }
            let company = index.cold.company_of_row[row as usize];
            let groups = if tags.is_empty() {
                &[NO_LINK][..]
            } else {
                tags
            };
            for (word, &occurrences) in scratch.per_word.iter().enumerate() {
                if occurrences == 0 {
                    continue;
                }
                counts.totals[word].0 += occurrences;
                counts.totals[word].1 += 1;
                for &tag in groups {
                    *counts
                        .by_group
                        .entry((company, tag, word as u32))
                        .or_default() += occurrences;
                }
            }
        });
    }

    fn merge(into: &mut KeywordCounts, other: KeywordCounts) {
        into.totals
            .resize(other.totals.len().max(into.totals.len()), (0, 0));
        for (total, (occurrences, conversations)) in into.totals.iter_mut().zip(other.totals) {
            total.0 += occurrences;
            total.1 += conversations;
        }
        for (key, count) in other.by_group {
            *into.by_group.entry(key).or_default() += count;
        }
    }

    fn render(&self, index: &ConversationIndex, mut counts: KeywordCounts) -> Value {
        counts.totals.resize(self.words.len(), (0, 0));
        let words: Vec<Value> = self
            .words
            .iter()
            .zip(&counts.totals)
            .map(|(word, (occurrences, conversations))| {
                json!({"word": word, "occurrences": occurrences, "conversations": conversations})
            })
            .collect();
        let mut groups: Vec<_> = counts.by_group.into_iter().collect();
        groups.sort_unstable_by_key(|&(key, _)| key);
        let groups: Vec<Value> = groups
            .into_iter()
            .map(|((company, tag, word), occurrences)| {
                json!({
                    "company": company_name(index, company),
                    "tag": tag_name(index, tag),
                    "word": self.words[word as usize],
                    "occurrences": occurrences,
                })
            })
            .collect();
        json!({
            "company_filter": self.filter.describe(),
            "words": words,
            "counts": groups,
        })
    }
}

/// Per transcript: conversations, a tag histogram and the words of its questions and answers.
#[derive(Debug, Clone, Default)]
pub struct TranscriptSummary {
    pub filter: CompanyFilter,
}

/// Partial figures of one transcript.
#[derive(Debug, Default)]
pub struct TranscriptFigures {
    company: u32,
    conversations: u64,
    words: u64,
    tags: BTreeMap<u32, u64>,
}

impl RowAnalysis for TranscriptSummary {
    type Counts = AHashMap<u32, TranscriptFigures>;

    fn scan(&self, index: &ConversationIndex, rows: Range<u32>, counts: &mut Self::Counts) {
        for_each_row_with_tags(index, rows, &self.filter, |row, tags| {
            let transcript = index.cold.transcript_of_row[row as usize];
            if transcript == NO_LINK {
                return;
            }
            let figures = counts
                .entry(transcript)
                .or_insert_with(|| TranscriptFigures {
                    company: index.cold.company_of_row[row as usize],
                    ..TranscriptFigures::default()
                });
            figures.conversations += 1;
            let texts = [
                index.cold.questions.get(row as usize),
                index.cold.answers.get(row as usize),
            ];
            figures.words += texts
                .into_iter()
                .flatten()
                .map(|text| words_of(text).count() as u64)
                .sum::<u64>();
            for &tag in tags {
                *figures.tags.entry(tag).or_default() += 1;
            }
        });
    }

    fn merge(into: &mut Self::Counts, other: Self::Counts) {
        for (transcript, figures) in other {
            let merged = into.entry(transcript).or_insert_with(|| TranscriptFigures {
                company: figures.company,
                ..TranscriptFigures::default()
            });
            merged.conversations += figures.conversations;
            merged.words += figures.words;
            for (tag, count) in figures.tags {
                *merged.tags.entry(tag).or_default() += count;
            }
        }
    }

    fn render(&self, index: &ConversationIndex, counts: Self::Counts) -> Value {
        let mut sorted: Vec<_> = counts.into_iter().collect();
        sorted.sort_unstable_by_key(|&(transcript, _)| transcript);
        let transcripts: Vec<Value> = sorted
            .into_iter()
            .map(|(transcript, figures)| {
                let tags: serde_json::Map<String, Value> = figures
                    .tags
                    .iter()
                    .map(|(&tag, &count)| {
                        (index.cold.tag_names[tag as usize].to_string(), count.into())
                    })
                    .collect();
                let transcript = transcript as usize;
                json!({
                    "transcript_id": index.cold.transcript_ids.get(transcript),
                    "title": index.cold.transcript_titles.get(transcript),
                    "company": company_name(index, figures.company),
                    "conversations": figures.conversations,
                    "words": figures.words,
                    "tags": tags,
                })
            })
            .collect();
        json!({ "company_filter": self.filter.describe(), "transcripts": transcripts })
    }
}
