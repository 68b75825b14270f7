//! Query evaluation: bitmap algebra to select rows, then a rank/select walk (or a
//! bounded merge) to the requested page. No step scans rows.
//!
//! Single-bitmap queries (no filter, one company, one tag, a company with one tag)
//! borrow an index bitmap and allocate nothing (a small company with one tag
//! intersects two bitmaps, one of them small). `match=any` over tags that never
//! share a row (always so in the normalized layout) merges the tag bitmaps on the
//! fly, reaching deep pages by a binary search on summed ranks. Other combinations
//! build one temporary bitmap.

use std::borrow::Cow;

use roaring::bitmap::Iter;
use roaring::RoaringBitmap;

use super::build::MIN_ROWS_FOR_TAG_PAIRS;
use super::HotIndex;
use crate::conversations::query::{ConversationQuery, TagMatch};

/// Most disjoint tag bitmaps merged on the fly; more are united into one bitmap.
const MAX_MERGED_TAGS: usize = 8;
/// Deepest offset reached by stepping through merged bitmaps; deeper pages find
/// their first row by a binary search on summed ranks instead.
const MAX_MERGE_SKIP: u64 = 256;

/// The rows a query selects, borrowed from the index whenever possible.
enum Selection<'a> {
    Everything,
    Nothing,
    Borrowed(&'a RoaringBitmap),
    Owned(RoaringBitmap),
    Disjoint(Disjoint<'a>),
}

/// Up to [`MAX_MERGED_TAGS`] pairwise disjoint bitmaps, without allocating.
#[derive(Clone, Copy, Default)]
struct Disjoint<'a> {
    bitmaps: [Option<&'a RoaringBitmap>; MAX_MERGED_TAGS],
    tags: [u32; MAX_MERGED_TAGS],
    len: usize,
}

impl<'a> Disjoint<'a> {
    /// Adds a bitmap; false when full.
    fn push(&mut self, tag: u32, bitmap: &'a RoaringBitmap) -> bool {
        if self.len == MAX_MERGED_TAGS {
            return false;
        }
        (self.bitmaps[self.len], self.tags[self.len]) = (Some(bitmap), tag);
        self.len += 1;
        true
    }

    fn iter(&self) -> impl Iterator<Item = &'a RoaringBitmap> + '_ {
        self.bitmaps[..self.len].iter().flatten().copied()
    }

    /// Rows `<= row` over all bitmaps.
    fn rank(&self, row: u32) -> u64 {
        self.iter().map(|bitmap| bitmap.rank(row)).sum()
    }

    /// The row at `position` (0-based) of the merged order; `position` < total.
    fn row_at(&self, position: u64) -> u32 {
        let last = self.iter().filter_map(RoaringBitmap::max).max();
        let (mut low, mut high) = (0, last.unwrap_or(0));
        while low < high {
            let middle = low + (high - low) / 2;
            match self.rank(middle) > position {
                true => high = middle,
                false => low = middle + 1,
            }
        }
        low
    }
}

impl HotIndex {
    /// Calls `emit` with each row on the query's page, in order; returns the total.
    pub(super) fn for_each_on_page(&self, query: &ConversationQuery, emit: impl FnMut(u32)) -> u64 {
        let selection = match query.company() {
            None => self.tag_selection(query, |tag| {
                Some(Cow::Borrowed(&self.tag_rows[tag as usize]))
            }),
            Some(key) => match self.company_keys.get(key) {
                None => Selection::Nothing,
                Some(&set) if query.tags().is_empty() => {
                    Selection::Borrowed(&self.company_sets[set as usize])
                }
                Some(&set) => self.tag_selection(query, |tag| self.company_tag_rows(set, tag)),
            },
        };
        self.walk_page(selection, query.offset(), query.per_page(), emit)
    }

    /// Rows of a company set carrying a tag: precomputed for large pairs,
    /// intersected here otherwise. `None` when there are none.
    fn company_tag_rows(&self, set: u32, tag: u32) -> Option<Cow<'_, RoaringBitmap>> {
        if let Some(rows) = self.company_tag_rows.get(&(set, tag)) {
            return Some(Cow::Borrowed(rows));
        }
        let (company, tagged) = (
            &self.company_sets[set as usize],
            &self.tag_rows[tag as usize],
        );
        if company.len() >= MIN_ROWS_FOR_TAG_PAIRS && tagged.len() >= MIN_ROWS_FOR_TAG_PAIRS {
            return None;
        }
        let rows = company & tagged;
        (!rows.is_empty()).then_some(Cow::Owned(rows))
    }

    fn tag_index(&self, tag: &str) -> Option<u32> {
        self.tag_keys.get(tag).copied()
    }

    fn share_rows(&self, a: u32, b: u32) -> bool {
        a == b || self.co_occurring_tags.contains(&(a.min(b), a.max(b)))
    }

    /// Combines the listed tags' rows, as found by `rows_of` (`None`: no rows).
    fn tag_selection<'a>(
        &'a self,
        query: &ConversationQuery,
        rows_of: impl Fn(u32) -> Option<Cow<'a, RoaringBitmap>>,
    ) -> Selection<'a> {
        if query.tags().is_empty() {
            return Selection::Everything;
        }
        let tags = query.tags().iter().map(|tag| self.tag_index(tag));
        match query.tag_match() {
            TagMatch::Any => self.any_of(tags.flatten().filter_map(|t| Some((t, rows_of(t)?)))),
            TagMatch::All => self.all_of(tags, rows_of),
        }
    }

    fn any_of<'a>(
        &self,
        mut found: impl Iterator<Item = (u32, Cow<'a, RoaringBitmap>)>,
    ) -> Selection<'a> {
        let mut disjoint = Disjoint::default();
        while let Some((tag, rows)) = found.next() {
            let overlaps = disjoint.tags[..disjoint.len]
                .iter()
                .any(|&other| self.share_rows(tag, other));
            let merged = match rows {
                Cow::Borrowed(bitmap) if !overlaps => disjoint.push(tag, bitmap),
                _ => false,
            };
            if !merged {
                let rest = found.map(|(_, rows)| rows);
                return Selection::Owned(unite(
                    disjoint.iter().map(Cow::Borrowed).chain([rows]).chain(rest),
                ));
            }
        }
        match disjoint.len {
            0 => Selection::Nothing,
            1 => disjoint.bitmaps[0].map_or(Selection::Nothing, Selection::Borrowed),
            _ => Selection::Disjoint(disjoint),
        }
    }

    fn all_of<'a>(
        &self,
        tags: impl Iterator<Item = Option<u32>> + Clone,
        rows_of: impl Fn(u32) -> Option<Cow<'a, RoaringBitmap>>,
    ) -> Selection<'a> {
        if tags.clone().any(|tag| tag.is_none()) {
            return Selection::Nothing;
        }
        let known = tags.flatten();
        let mut earlier = known.clone().enumerate();
        if earlier.any(|(i, a)| known.clone().take(i).any(|b| !self.share_rows(a, b))) {
            return Selection::Nothing;
        }
        let mut common: Option<Cow<'a, RoaringBitmap>> = None;
        for tag in known {
            let Some(rows) = rows_of(tag) else {
                return Selection::Nothing;
            };
            common = Some(match common {
                None => rows,
                Some(previous) => Cow::Owned(previous.as_ref() & rows.as_ref()),
            });
        }
        match common {
            Some(Cow::Borrowed(bitmap)) => Selection::Borrowed(bitmap),
            Some(Cow::Owned(bitmap)) => Selection::Owned(bitmap),
            None => Selection::Nothing,
        }
    }

    fn walk_page(
        &self,
        selection: Selection<'_>,
        offset: u64,
        per_page: u32,
        emit: impl FnMut(u32),
    ) -> u64 {
        match selection {
            Selection::Everything => self.walk_all(offset, per_page, emit),
            Selection::Nothing => 0,
            Selection::Borrowed(bitmap) => walk_bitmap(bitmap, offset, per_page, emit),
            Selection::Owned(bitmap) => walk_bitmap(&bitmap, offset, per_page, emit),
            Selection::Disjoint(disjoint) => walk_merged(&disjoint, offset, per_page, emit),
        }
    }

    fn walk_all(&self, offset: u64, per_page: u32, emit: impl FnMut(u32)) -> u64 {
        let total = u64::from(self.row_count);
        let start = offset.min(total);
        let end = start.saturating_add(u64::from(per_page)).min(total);
        (start as u32..end as u32).for_each(emit);
        total
    }
}

fn walk_bitmap(bitmap: &RoaringBitmap, offset: u64, per_page: u32, emit: impl FnMut(u32)) -> u64 {
    let total = bitmap.len();
    let first = u32::try_from(offset)
        .ok()
        .filter(|_| offset < total)
        .and_then(|n| bitmap.select(n));
    if let Some(first) = first {
        bitmap.range(first..).take(per_page as usize).for_each(emit);
    }
    total
}

/// Walks the sorted merge of disjoint bitmaps from position `offset`.
fn walk_merged(
    disjoint: &Disjoint<'_>,
    offset: u64,
    per_page: u32,
    mut emit: impl FnMut(u32),
) -> u64 {
    let total = disjoint.iter().map(RoaringBitmap::len).sum();
    if offset >= total {
        return total;
    }
    let (first_row, skip) = match offset > MAX_MERGE_SKIP {
        true => (disjoint.row_at(offset), 0),
        false => (0, offset),
    };
    let mut merge = MergeHeads::starting_at(disjoint, first_row);
    for position in 0..skip + u64::from(per_page) {
        let Some(row) = merge.pop_smallest() else {
            break;
        };
        if position >= skip {
            emit(row);
        }
    }
    total
}

/// The next row of each merged bitmap, kept as plain numbers so that choosing the smallest
/// is a scan over a few integers: the merge runs once for every row on the page and for
/// every row skipped before it, so its cost per row is what a merged query pays most often.
struct MergeHeads<'a> {
    /// Each bitmap's next row, or [`MergeHeads::EXHAUSTED`] once it has none left.
    next: [u64; MAX_MERGED_TAGS],
    rest: [Option<Iter<'a>>; MAX_MERGED_TAGS],
    len: usize,
}

impl<'a> MergeHeads<'a> {
    /// Above every row number (rows are `u32`), so an exhausted bitmap is never the smallest.
    const EXHAUSTED: u64 = u64::MAX;

    fn starting_at(disjoint: &Disjoint<'a>, first_row: u32) -> Self {
        let mut heads = Self {
            next: [Self::EXHAUSTED; MAX_MERGED_TAGS],
            rest: Default::default(),
            len: 0,
        };
        for bitmap in disjoint.iter() {
            let mut rows = bitmap.range(first_row..);
            heads.next[heads.len] = rows.next().map_or(Self::EXHAUSTED, u64::from);
            heads.rest[heads.len] = Some(rows);
            heads.len += 1;
        }
        heads
    }

    /// The smallest next row over all bitmaps, advancing the bitmap it came from.
    fn pop_smallest(&mut self) -> Option<u32> {
        let live = &self.next[..self.len];
        let (mut smallest, mut from) = (Self::EXHAUSTED, 0);
        for (i, &row) in live.iter().enumerate() {
            if row < smallest {
                (smallest, from) = (row, i);
            }
        }
        let row = u32::try_from(smallest).ok()?;
        let following = self.rest[from].as_mut().and_then(Iterator::next);
        self.next[from] = following.map_or(Self::EXHAUSTED, u64::from);
        Some(row)
    }
}

/// The union of `bitmaps` as one new bitmap.
fn unite<'a>(bitmaps: impl Iterator<Item = Cow<'a, RoaringBitmap>>) -> RoaringBitmap {
    let mut union = RoaringBitmap::new();
    for rows in bitmaps {
        match (union.is_empty(), rows) {
            (true, Cow::Owned(rows)) => union = rows,
            (_, rows) => union |= rows.as_ref(),
        }
    }
    union
}
