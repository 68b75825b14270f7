//! The immutable conversation index: hot structures (ids, roaring bitmaps per company
//! and per tag, lookup maps) used by every query, and a cold store (companies, tag
//! names, transcripts, question and answer text) used only for details and listings.
//!
//! Row numbers are dataset order (part files by name, rows in file order), so a
//! bitmap's ascending order is the answer's order.

pub mod analysis;
mod build;
mod json;
mod search;

pub(crate) use build::{IndexBuilder, NewConversation};

use std::fmt;
use std::path::Path;
use std::time::Duration;

use ahash::{AHashMap, AHashSet};
use roaring::RoaringBitmap;

use super::arena::TextArena;
use super::error::LoadError;
use super::query::ConversationQuery;

/// The index's lookup maps, hashed with aHash: a query looks keys up a few times, and the
/// resistance of the standard SipHash to crafted keys buys nothing for maps that only the
/// dataset fills (a request can look up, never insert).
pub(super) type LookupMap<K, V> = AHashMap<K, V>;
/// The set counterpart of [`LookupMap`].
pub(super) type LookupSet<T> = AHashSet<T>;

/// Marks "no company" / "no transcript" in per-row link columns.
const NO_LINK: u32 = u32::MAX;
/// Bytes of a query answer around its ids: the field names, the total, page and per_page.
const QUERY_JSON_FRAME_BYTES: usize = 96;

/// A conversation id as it appears in the data: JSON strings for string columns,
/// JSON numbers when every id column of the dataset is an integer column.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(untagged)]
pub enum ConversationId {
    Text(String),
    Integer(i64),
}

impl fmt::Display for ConversationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Text(text) => f.write_str(text),
            Self::Integer(number) => write!(f, "{number}"),
        }
    }
}

/// One page of a query's answer; serializes to exactly the HTTP body.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct QueryPage {
    pub conversation_ids: Vec<ConversationId>,
    pub total: u64,
    pub page: u64,
    pub per_page: u32,
}

/// Everything known about one conversation. Unknown parts are `None` (or empty tags).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ConversationDetail {
    pub id: ConversationId,
    pub company_id: Option<String>,
    pub company: Option<String>,
    pub tags: Vec<String>,
    pub transcript_id: Option<String>,
    pub transcript_title: Option<String>,
    pub question: Option<String>,
    pub answer: Option<String>,
}

/// One company, with the key the `company` parameter accepts and its conversation count.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CompanySummary {
    pub id: String,
    pub name: String,
    /// The leading word of the name, lower-cased (the id, lower-cased, when the name has none).
    pub key: String,
    pub conversations: u64,
}

/// One tag (first spelling seen in the data) and its conversation count.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct TagSummary {
    pub tag: String,
    pub conversations: u64,
}

/// Which input layout a dataset was loaded from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceLayout {
    /// Company, transcript, conversation and tag folders.
    Normalized,
    /// One row per conversation with company and tags inline.
    Flat,
}

/// Size and provenance of an index.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct IndexStats {
    pub layout: SourceLayout,
    /// True when conversation-to-company links were inferred from row order.
    pub links_inferred: bool,
    pub rows: u64,
    pub companies: usize,
    pub tags: usize,
    pub transcripts: usize,
    /// Approximate heap bytes of the structures every query touches.
    pub hot_heap_bytes: usize,
    /// Approximate heap bytes of the text and link columns used for details only.
    pub cold_heap_bytes: usize,
    pub heap_bytes: usize,
    /// Wall time of `load`, reading included.
    pub build_time: Duration,
}

/// How ids are written into JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum IdFormat {
    Integer,
    Text { needs_escape: bool },
}

/// Structures every query touches.
#[derive(Clone, Debug)]
struct HotIndex {
    ids: TextArena<u32>,
    id_format: IdFormat,
    row_count: u32,
    /// One bitmap per company (indices `0..companies`), then unions for keys that
    /// several companies share.
    company_sets: Vec<RoaringBitmap>,
    company_keys: LookupMap<Box<str>, u32>,
    tag_rows: Vec<RoaringBitmap>,
    tag_keys: LookupMap<Box<str>, u32>,
    /// Rows of each (company set, tag) pair that has any, so a company filter with
    /// tags combines a few small bitmaps instead of two large ones.
    company_tag_rows: LookupMap<(u32, u32), RoaringBitmap>,
    /// Tag pairs `(low, high)` that share at least one row; tags of no pair here
    /// have disjoint bitmaps, which lets `match=any` merge instead of unite.
    co_occurring_tags: LookupSet<(u32, u32)>,
}

#[derive(Clone, Debug)]
struct Company {
    id: Box<str>,
    name: Box<str>,
    key: Box<str>,
}

/// Structures used for details and listings only.
#[derive(Clone, Debug)]
struct ColdStore {
    companies: Vec<Company>,
    tag_names: Vec<Box<str>>,
    company_of_row: Vec<u32>,
    transcript_of_row: Vec<u32>,
    transcript_ids: TextArena<u64>,
    transcript_titles: TextArena<u64>,
    questions: TextArena<u64>,
    answers: TextArena<u64>,
    /// Row numbers sorted by id (ties in dataset order), for lookups by id.
    rows_by_id: Vec<u32>,
}

#[derive(Clone, Copy, Debug)]
struct BuildInfo {
    layout: SourceLayout,
    links_inferred: bool,
    build_time: Duration,
}

/// An immutable, `Send + Sync` index over a conversation dataset. `Clone` is a deep
/// copy, so a server may keep one replica per core or share one behind an `Arc`.
#[derive(Clone, Debug)]
pub struct ConversationIndex {
    hot: HotIndex,
    cold: ColdStore,
    info: BuildInfo,
}

impl ConversationIndex {
    /// Loads a dataset in either layout (see the crate docs), logging progress.
    pub fn load(path: &Path) -> Result<Self, LoadError> {
        super::load::load(path)
    }

    /// Loads several datasets (each in either layout) into one index, rows numbered in the
    /// order given. `watch` is told of each dataset and each file before it is read and of
    /// the progress after each batch of conversations; it can refuse a file or stop the load
    /// (see [`LoadWatch`](crate::conversations::LoadWatch)), so a cancelled load ends within a dataset.
    pub fn load_many(
        paths: &[std::path::PathBuf],
        watch: &mut dyn crate::conversations::LoadWatch,
    ) -> Result<Self, LoadError> {
        super::load::load_many(paths, watch)
    }

    /// Number of conversations.
    pub fn len(&self) -> usize {
        self.hot.row_count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.hot.row_count == 0
    }

    /// One page of matching conversation ids, with the total match count.
    pub fn query(&self, query: &ConversationQuery) -> QueryPage {
        let mut conversation_ids = Vec::new();
        let total = self.hot.for_each_on_page(query, |row| {
            conversation_ids.push(self.hot.conversation_id(row));
        });
        QueryPage {
            conversation_ids,
            total,
            page: query.page(),
            per_page: query.per_page(),
        }
    }

    /// Appends the exact JSON answer body to `out`: allocation-free beyond `out`'s
    /// growth for single-bitmap queries; combined filters build one temporary bitmap.
    pub fn write_query_json(&self, query: &ConversationQuery, out: &mut Vec<u8>) {
        // Room for a full page of typical ids (quotes and comma included) and the fields
        // around them, so that a page is written without growing the buffer on the way.
        let id_bytes = self.hot.ids.mean_len() + 3;
        out.reserve(QUERY_JSON_FRAME_BYTES + query.per_page() as usize * id_bytes);
        out.extend_from_slice(b"{\"conversation_ids\":[");
        let list_start = out.len();
        let total = self.hot.for_each_on_page(query, |row| {
            if out.len() != list_start {
                out.push(b',');
            }
            self.hot.write_id(row, out);
        });
        out.extend_from_slice(b"],\"total\":");
        json::push_decimal(out, total);
        out.extend_from_slice(b",\"page\":");
        json::push_decimal(out, query.page());
        out.extend_from_slice(b",\"per_page\":");
        json::push_decimal(out, u64::from(query.per_page()));
        out.push(b'}');
    }

    /// The conversation with this id (its textual form for integer ids); the first
    /// in dataset order if the data repeats an id.
    pub fn conversation(&self, id: &str) -> Option<ConversationDetail> {
        let row = self.row_of_id(id)?;
        Some(self.detail(row))
    }

    /// Every company in dataset order, with its conversation count.
    pub fn companies(&self) -> Vec<CompanySummary> {
        let counts = self.hot.company_sets.iter().map(RoaringBitmap::len);
        self.cold
            .companies
            .iter()
            .zip(counts)
            .map(|(company, conversations)| CompanySummary {
                id: company.id.to_string(),
                name: company.name.to_string(),
                key: company.key.to_string(),
                conversations,
            })
            .collect()
    }

    /// Every tag in order of first appearance, with its conversation count.
    pub fn tags(&self) -> Vec<TagSummary> {
        let counts = self.hot.tag_rows.iter().map(RoaringBitmap::len);
        self.cold
            .tag_names
            .iter()
            .zip(counts)
            .map(|(tag, conversations)| TagSummary {
                tag: tag.to_string(),
                conversations,
            })
            .collect()
    }

    pub fn stats(&self) -> IndexStats {
        let hot_heap_bytes = self.hot.heap_bytes();
        let cold_heap_bytes = self.cold.heap_bytes();
        IndexStats {
            layout: self.info.layout,
            links_inferred: self.info.links_inferred,
            rows: u64::from(self.hot.row_count),
            companies: self.cold.companies.len(),
            tags: self.cold.tag_names.len(),
            transcripts: self.cold.transcript_ids.len(),
            hot_heap_bytes,
            cold_heap_bytes,
            heap_bytes: hot_heap_bytes + cold_heap_bytes,
            build_time: self.info.build_time,
        }
    }

    pub(crate) fn set_build_time(&mut self, build_time: Duration) {
        self.info.build_time = build_time;
    }

    fn row_of_id(&self, id: &str) -> Option<u32> {
        let rows = &self.cold.rows_by_id;
        let first = rows.partition_point(|&row| self.hot.ids.text(row as usize) < id);
        let row = *rows.get(first)?;
        (self.hot.ids.text(row as usize) == id).then_some(row)
    }

    fn detail(&self, row: u32) -> ConversationDetail {
        let index = row as usize;
        let company = self.cold.company_of(index);
        let transcript = linked(self.cold.transcript_of_row[index]);
        let owned = |text: Option<&str>| text.map(str::to_string);
        ConversationDetail {
            id: self.hot.conversation_id(row),
            company_id: company.map(|c| c.id.to_string()),
            company: company.map(|c| c.name.to_string()),
            tags: self.tags_of(row),
            transcript_id: transcript.and_then(|t| owned(self.cold.transcript_ids.get(t))),
            transcript_title: transcript.and_then(|t| owned(self.cold.transcript_titles.get(t))),
            question: owned(self.cold.questions.get(index)),
            answer: owned(self.cold.answers.get(index)),
        }
    }

    fn tags_of(&self, row: u32) -> Vec<String> {
        let tagged = self.hot.tag_rows.iter().zip(&self.cold.tag_names);
        tagged
            .filter(|(rows, _)| rows.contains(row))
            .map(|(_, name)| name.to_string())
            .collect()
    }
}

fn linked(link: u32) -> Option<usize> {
    (link != NO_LINK).then_some(link as usize)
}

fn bitmaps_heap_bytes(bitmaps: &[RoaringBitmap]) -> usize {
    let containers: u64 = bitmaps
        .iter()
        .map(|bitmap| {
            let stats = bitmap.statistics();
            let payload = stats.n_bytes_array_containers / ROARING_ARRAY_BYTES_OVERCOUNT
                + stats.n_bytes_run_containers
                + stats.n_bytes_bitset_containers;
            payload + u64::from(stats.n_containers) * CONTAINER_OVERHEAD_BYTES
        })
        .sum();
    usize::try_from(containers).unwrap_or(usize::MAX) + std::mem::size_of_val(bitmaps)
}

/// roaring 0.12's statistics count 4 bytes per array-container slot; slots are `u16`.
const ROARING_ARRAY_BYTES_OVERCOUNT: u64 = 2;

/// Approximate per-container bookkeeping of a roaring bitmap (key, length, pointers).
const CONTAINER_OVERHEAD_BYTES: u64 = 32;

fn key_map_heap_bytes(map: &LookupMap<Box<str>, u32>) -> usize {
    let entry = std::mem::size_of::<(Box<str>, u32)>() + 1;
    let key_text: usize = map.keys().map(|key| key.len()).sum();
    map.capacity() * entry + key_text
}

fn pair_map_heap_bytes(map: &LookupMap<(u32, u32), RoaringBitmap>) -> usize {
    let entry = std::mem::size_of::<((u32, u32), RoaringBitmap)>() + 1;
    let containers: usize = map
        .values()
        .map(|rows| bitmaps_heap_bytes(std::slice::from_ref(rows)))
        .sum();
    map.capacity() * entry + containers
}

impl HotIndex {
    fn heap_bytes(&self) -> usize {
        self.ids.heap_bytes()
            + bitmaps_heap_bytes(&self.company_sets)
            + bitmaps_heap_bytes(&self.tag_rows)
            + key_map_heap_bytes(&self.company_keys)
            + key_map_heap_bytes(&self.tag_keys)
            + pair_map_heap_bytes(&self.company_tag_rows)
            + self.co_occurring_tags.capacity() * (std::mem::size_of::<(u32, u32)>() + 1)
    }

    fn conversation_id(&self, row: u32) -> ConversationId {
        let text = self.ids.text(row as usize);
        match (self.id_format, text.parse::<i64>()) {
            (IdFormat::Integer, Ok(number)) => ConversationId::Integer(number),
            _ => ConversationId::Text(text.to_string()),
        }
    }

    fn write_id(&self, row: u32, out: &mut Vec<u8>) {
        match self.id_format {
            IdFormat::Integer => out.extend_from_slice(self.ids.bytes(row as usize)),
            IdFormat::Text {
                needs_escape: false,
            } => json::push_plain_string(out, self.ids.bytes(row as usize)),
            IdFormat::Text { needs_escape: true } => {
                json::push_escaped_string(out, self.ids.text(row as usize))
            }
        }
    }
}

impl ColdStore {
    fn company_of(&self, row: usize) -> Option<&Company> {
        linked(self.company_of_row[row]).map(|company| &self.companies[company])
    }

    fn heap_bytes(&self) -> usize {
        let companies: usize = self
            .companies
            .iter()
            .map(|c| c.id.len() + c.name.len() + c.key.len() + std::mem::size_of::<Company>())
            .sum();
        let tag_names: usize = self.tag_names.iter().map(|t| t.len() + 16).sum();
        let links = (self.company_of_row.capacity() + self.transcript_of_row.capacity()) * 4;
        companies
            + tag_names
            + links
            + self.rows_by_id.capacity() * 4
            + self.transcript_ids.heap_bytes()
            + self.transcript_titles.heap_bytes()
            + self.questions.heap_bytes()
            + self.answers.heap_bytes()
    }
}

#[cfg(test)]
mod tests;
