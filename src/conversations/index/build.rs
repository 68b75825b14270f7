//! Accumulating conversations row by row, then freezing them into a [`ConversationIndex`].

use std::collections::HashMap;
use std::time::Duration;

use roaring::RoaringBitmap;

use super::{
    BuildInfo, ColdStore, Company, ConversationIndex, HotIndex, IdFormat, LookupMap, LookupSet,
    SourceLayout, NO_LINK,
};
use crate::conversations::arena::{ArenaFull, TextArena};
use crate::conversations::columns::IdValue;

/// Companies and tags with at least this many rows get a precomputed bitmap per
/// (company, tag) pair; below it, intersecting at query time costs a few µs at most.
pub(crate) const MIN_ROWS_FOR_TAG_PAIRS: u64 = 2_048;

/// Most conversations one index holds: row numbers are `u32` and `u32::MAX` is reserved.
pub(crate) const MAX_CONVERSATIONS: u64 = NO_LINK as u64;

/// One conversation row handed to the builder. Tags are added with
/// [`IndexBuilder::tag_row`] after the row is pushed.
pub(crate) struct NewConversation<'a> {
    pub id: IdValue<'a>,
    pub company: Option<u32>,
    pub transcript: Option<u32>,
    pub question: Option<&'a str>,
    pub answer: Option<&'a str>,
}

/// Mutable accumulation of a dataset; [`IndexBuilder::finish`] makes the index.
pub(crate) struct IndexBuilder {
    ids: TextArena<u32>,
    ids_all_integer: bool,
    ids_need_escape: bool,
    id_text: String,
    companies: Vec<Company>,
    company_rows: Vec<RoaringBitmap>,
    company_by_name: HashMap<Box<str>, u32>,
    tag_names: Vec<Box<str>>,
    tag_rows: Vec<RoaringBitmap>,
    tag_by_key: LookupMap<Box<str>, u32>,
    tag_by_spelling: HashMap<Box<str>, u32>,
    co_occurring_tags: LookupSet<(u32, u32)>,
    tagged_row: u32,
    tags_of_tagged_row: Vec<u32>,
    company_of_row: Vec<u32>,
    transcript_of_row: Vec<u32>,
    transcript_ids: TextArena<u64>,
    transcript_titles: TextArena<u64>,
    questions: TextArena<u64>,
    answers: TextArena<u64>,
}

impl IndexBuilder {
    pub(crate) fn new() -> Self {
        Self {
            ids: TextArena::new(),
            ids_all_integer: true,
            ids_need_escape: false,
            id_text: String::new(),
            companies: Vec::new(),
            company_rows: Vec::new(),
            company_by_name: HashMap::new(),
            tag_names: Vec::new(),
            tag_rows: Vec::new(),
            tag_by_key: LookupMap::new(),
            tag_by_spelling: HashMap::new(),
            co_occurring_tags: LookupSet::new(),
            tagged_row: NO_LINK,
            tags_of_tagged_row: Vec::new(),
            company_of_row: Vec::new(),
            transcript_of_row: Vec::new(),
            transcript_ids: TextArena::new(),
            transcript_titles: TextArena::new(),
            questions: TextArena::new(),
            answers: TextArena::new(),
        }
    }

    pub(crate) fn row_count(&self) -> usize {
        self.ids.len()
    }

    /// Transcripts added so far (by every dataset read into this builder).
    pub(crate) fn transcript_count(&self) -> usize {
        self.transcript_ids.len()
    }

    /// Adds a company and returns its index.
    pub(crate) fn add_company(&mut self, id: &str, name: &str) -> u32 {
        let index = self.companies.len() as u32;
        let key = company_key(id, name);
        self.companies.push(Company {
            id: id.into(),
            name: name.into(),
            key: key.into(),
        });
        self.company_rows.push(RoaringBitmap::new());
        self.company_by_name.entry(name.into()).or_insert(index);
        index
    }

    /// The company with exactly this name, added (with the name as its id) if new.
    pub(crate) fn company_named(&mut self, name: &str) -> u32 {
        match self.company_by_name.get(name) {
            Some(&index) => index,
            None => self.add_company(name, name),
        }
    }

    /// The tag matching `spelling` case-insensitively (after trimming), added if new.
    pub(crate) fn tag(&mut self, spelling: &str) -> u32 {
        if let Some(&index) = self.tag_by_spelling.get(spelling) {
            return index;
        }
        let key = spelling.trim().to_lowercase();
        let index = match self.tag_by_key.get(key.as_str()) {
            Some(&index) => index,
            None => self.add_tag(spelling.trim(), key),
        };
        self.tag_by_spelling.insert(spelling.into(), index);
        index
    }

    fn add_tag(&mut self, display: &str, key: String) -> u32 {
        let index = self.tag_names.len() as u32;
        self.tag_names.push(display.into());
        self.tag_rows.push(RoaringBitmap::new());
        self.tag_by_key.insert(key.into(), index);
        index
    }

    /// Adds a transcript and returns its index.
    pub(crate) fn add_transcript(
        &mut self,
        id: &str,
        title: Option<&str>,
    ) -> Result<u32, ArenaFull> {
        let index = u32::try_from(self.transcript_ids.len()).map_err(|_| ArenaFull)?;
        self.transcript_ids.push(Some(id))?;
        self.transcript_titles.push(title)?;
        Ok(index)
    }

    /// Appends one conversation and returns its row number.
    pub(crate) fn push_conversation(&mut self, row: NewConversation<'_>) -> Result<u32, ArenaFull> {
        let number = u32::try_from(self.ids.len()).map_err(|_| ArenaFull)?;
        if u64::from(number) >= MAX_CONVERSATIONS {
            return Err(ArenaFull);
        }
        self.push_id(row.id)?;
        if let Some(company) = row.company {
            append(&mut self.company_rows[company as usize], number);
        }
        self.company_of_row.push(row.company.unwrap_or(NO_LINK));
        self.transcript_of_row
            .push(row.transcript.unwrap_or(NO_LINK));
        self.questions.push(row.question)?;
        self.answers.push(row.answer)?;
        Ok(number)
    }

    fn push_id(&mut self, id: IdValue<'_>) -> Result<(), ArenaFull> {
        match id {
            IdValue::Integer(number) => {
                self.id_text.clear();
                super::json::push_decimal_string(&mut self.id_text, number);
                self.ids.push(Some(&self.id_text))
            }
            IdValue::Text(text) => {
                self.ids_all_integer = false;
                self.ids_need_escape |= super::json::needs_escape(text);
                self.ids.push(Some(text))
            }
        }
    }

    /// Marks `row` (the last pushed row) as carrying `tag`.
    pub(crate) fn tag_row(&mut self, row: u32, tag: u32) {
        self.note_co_occurrence(row, tag);
        append(&mut self.tag_rows[tag as usize], row);
    }

    /// Records which tags share a row, so queries know which tag bitmaps are disjoint.
    fn note_co_occurrence(&mut self, row: u32, tag: u32) {
        if row != self.tagged_row {
            self.tagged_row = row;
            self.tags_of_tagged_row.clear();
        }
        for &other in self
            .tags_of_tagged_row
            .iter()
            .filter(|&&other| other != tag)
        {
            self.co_occurring_tags
                .insert((other.min(tag), other.max(tag)));
        }
        self.tags_of_tagged_row.push(tag);
    }

    /// Freezes everything into an index.
    pub(crate) fn finish(self, layout: SourceLayout, links_inferred: bool) -> ConversationIndex {
        let started = std::time::Instant::now();
        let (company_sets, company_keys, unions) =
            company_lookup(&self.companies, self.company_rows);
        let large_sets = large_sets_of_companies(&company_sets, &unions, self.companies.len());
        let company_tag_rows = company_tag_pairs(&large_sets, &self.company_of_row, &self.tag_rows);
        tracing::info!(
            pairs = company_tag_rows.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "indexed company keys and (company, tag) pairs"
        );
        let rows_by_id = rows_sorted_by_id(&self.ids);
        tracing::info!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "sorted conversation ids"
        );
        let hot = HotIndex {
            id_format: id_format(
                self.ids_all_integer && self.ids.len() > 0,
                self.ids_need_escape,
            ),
            row_count: self.ids.len() as u32,
            ids: shrunk(self.ids),
            company_sets: compacted(company_sets),
            company_keys,
            tag_rows: compacted(self.tag_rows),
            tag_keys: self.tag_by_key,
            company_tag_rows,
            co_occurring_tags: self.co_occurring_tags,
        };
        let cold = ColdStore {
            companies: self.companies,
            tag_names: self.tag_names,
            company_of_row: self.company_of_row,
            transcript_of_row: self.transcript_of_row,
            transcript_ids: shrunk(self.transcript_ids),
            transcript_titles: shrunk(self.transcript_titles),
            questions: shrunk(self.questions),
            answers: shrunk(self.answers),
            rows_by_id,
        };
        let info = BuildInfo {
            layout,
            links_inferred,
            build_time: Duration::ZERO,
        };
        ConversationIndex { hot, cold, info }
    }
}

/// Adds `row` to `rows`: an O(1) append in the usual case of rows arriving in order.
fn append(rows: &mut RoaringBitmap, row: u32) {
    if rows.try_push(row).is_err() {
        rows.insert(row);
    }
}

fn id_format(all_integer: bool, needs_escape: bool) -> IdFormat {
    match all_integer {
        true => IdFormat::Integer,
        false => IdFormat::Text { needs_escape },
    }
}

fn shrunk<O: crate::conversations::arena::ArenaOffset>(mut arena: TextArena<O>) -> TextArena<O> {
    arena.shrink_to_fit();
    arena
}

/// Bitmaps are deliberately not run-compressed (`optimize`): roaring's run
/// containers count their values by walking every run, which makes the `len` and
/// `select` of each query linear in runs; array and bitset containers keep counts.
/// Cloning drops the spare capacity that pushes and intersections leave behind.
fn compacted(bitmaps: Vec<RoaringBitmap>) -> Vec<RoaringBitmap> {
    bitmaps.iter().map(RoaringBitmap::clone).collect()
}

/// The first run of letters and digits in `name` (Unicode-aware), as written.
pub(crate) fn leading_word(name: &str) -> &str {
    let start = name.find(char::is_alphanumeric).unwrap_or(name.len());
    let rest = &name[start..];
    let end = rest
        .find(|c: char| !c.is_alphanumeric())
        .unwrap_or(rest.len());
    &rest[..end]
}

/// The key a company is listed under: its leading word lower-cased, or its id
/// lower-cased when the name has no letters or digits.
fn company_key(id: &str, name: &str) -> String {
    match leading_word(name) {
        "" => id.to_lowercase(),
        word => word.to_lowercase(),
    }
}

/// Company bitmaps with the unions appended, the lookup keys, and each union's
/// (set, members).
type CompanyLookup = (
    Vec<RoaringBitmap>,
    LookupMap<Box<str>, u32>,
    Vec<(u32, Vec<u32>)>,
);

/// Maps every accepted lookup key (id, full name, leading word; lower-cased) to a
/// bitmap: the company's own, or a union when several companies share the key.
fn company_lookup(companies: &[Company], mut sets: Vec<RoaringBitmap>) -> CompanyLookup {
    let mut members: HashMap<Box<str>, Vec<u32>> = HashMap::new();
    for (index, company) in companies.iter().enumerate() {
        let words = [
            company.id.to_lowercase(),
            company.name.to_lowercase(),
            leading_word(&company.name).to_lowercase(),
        ];
        for key in words.into_iter().filter(|key| !key.is_empty()) {
            let list = members.entry(key.into()).or_default();
            if !list.contains(&(index as u32)) {
                list.push(index as u32);
            }
        }
    }
    let mut union_of: HashMap<Vec<u32>, u32> = HashMap::new();
    let mut keys = LookupMap::with_capacity(members.len());
    for (key, list) in members {
        let set = match list.as_slice() {
            [single] => *single,
            _ => *union_of
                .entry(list.clone())
                .or_insert_with(|| push_union(&mut sets, &list)),
        };
        keys.insert(key, set);
    }
    let unions = union_of
        .into_iter()
        .map(|(members, set)| (set, members))
        .collect();
    (sets, keys, unions)
}

/// For each company, the company sets with at least [`MIN_ROWS_FOR_TAG_PAIRS`]
/// rows that contain it (its own set, and unions it belongs to).
fn large_sets_of_companies(
    sets: &[RoaringBitmap],
    unions: &[(u32, Vec<u32>)],
    companies: usize,
) -> Vec<Vec<u32>> {
    let is_large = |set: u32| sets[set as usize].len() >= MIN_ROWS_FOR_TAG_PAIRS;
    let mut large: Vec<Vec<u32>> = (0..companies as u32)
        .map(|c| if is_large(c) { vec![c] } else { vec![] })
        .collect();
    for (set, members) in unions.iter().filter(|(set, _)| is_large(*set)) {
        members
            .iter()
            .for_each(|&member| large[member as usize].push(*set));
    }
    large
}

/// Rows of each (company set, tag) pair where both have at least
/// [`MIN_ROWS_FOR_TAG_PAIRS`] rows, built in one pass over the large tags' rows;
/// smaller pairs are intersected per query, which is cheap as one side is small.
fn company_tag_pairs(
    large_sets: &[Vec<u32>],
    company_of_row: &[u32],
    tags: &[RoaringBitmap],
) -> LookupMap<(u32, u32), RoaringBitmap> {
    let mut pairs = LookupMap::new();
    let set_count = large_sets
        .iter()
        .flatten()
        .max()
        .map_or(0, |&set| set as usize + 1);
    let large_tags = tags
        .iter()
        .enumerate()
        .filter(|(_, rows)| rows.len() >= MIN_ROWS_FOR_TAG_PAIRS);
    for (tag, tag_rows) in large_tags {
        let mut by_set = vec![RoaringBitmap::new(); set_count];
        for row in tag_rows {
            let sets = large_sets.get(company_of_row[row as usize] as usize);
            sets.into_iter()
                .flatten()
                .for_each(|&set| append(&mut by_set[set as usize], row));
        }
        let filled = by_set
            .iter()
            .enumerate()
            .filter(|(_, rows)| !rows.is_empty());
        pairs.extend(filled.map(|(set, rows)| ((set as u32, tag as u32), rows.clone())));
    }
    pairs
}

fn push_union(sets: &mut Vec<RoaringBitmap>, members: &[u32]) -> u32 {
    let union = members
        .iter()
        .fold(RoaringBitmap::new(), |acc, &m| acc | &sets[m as usize]);
    sets.push(union);
    (sets.len() - 1) as u32
}

fn rows_sorted_by_id(ids: &TextArena<u32>) -> Vec<u32> {
    let mut keyed: Vec<(u64, u32)> = (0..ids.len() as u32)
        .map(|row| (id_prefix(ids.text(row as usize)), row))
        .collect();
    keyed.sort_unstable();
    let mut rows: Vec<u32> = keyed.into_iter().map(|(_, row)| row).collect();
    sort_prefix_ties(&mut rows, ids);
    let repeated = rows
        .windows(2)
        .filter(|pair| ids.text(pair[0] as usize) == ids.text(pair[1] as usize))
        .count();
    if repeated > 0 {
        tracing::warn!(
            repeated,
            "conversation ids repeat; lookups by id return the first in dataset order"
        );
    }
    rows
}

/// The first eight bytes of an id, zero-padded, as a big-endian number: sorting by
/// it agrees with sorting by the whole id, and stays in cache unlike the ids.
fn id_prefix(id: &str) -> u64 {
    let mut bytes = [0u8; 8];
    let length = id.len().min(bytes.len());
    bytes[..length].copy_from_slice(&id.as_bytes()[..length]);
    u64::from_be_bytes(bytes)
}

/// Orders runs of rows whose ids share a prefix by the whole id (then by row).
fn sort_prefix_ties(rows: &mut [u32], ids: &TextArena<u32>) {
    let prefix = |row: u32| id_prefix(ids.text(row as usize));
    let mut start = 0;
    while start < rows.len() {
        let first = prefix(rows[start]);
        let end = start
            + rows[start..]
                .iter()
                .take_while(|&&row| prefix(row) == first)
                .count();
        if end - start > 1 {
            rows[start..end].sort_unstable_by(|&a, &b| {
                ids.text(a as usize)
                    .cmp(ids.text(b as usize))
                    .then(a.cmp(&b))
            });
        }
        start = end;
    }
}
