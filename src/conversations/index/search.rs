//! Query evaluation: bitmap algebra to select rows, then a rank/select walk to the
//! requested page. No step scans rows.

use roaring::RoaringBitmap;

use super::HotIndex;
use crate::conversations::query::{ConversationQuery, TagMatch};

/// The rows a query selects, borrowed from the index whenever one bitmap suffices.
enum Selection<'a> {
    Everything,
    Nothing,
    Borrowed(&'a RoaringBitmap),
    Owned(RoaringBitmap),
}

impl HotIndex {
    /// Calls `emit` with each row on the query's page, in order; returns the total.
    pub(super) fn for_each_on_page(&self, query: &ConversationQuery, emit: impl FnMut(u32)) -> u64 {
        let selection = match query.company() {
            None => self.tag_selection(query, |tag| self.tag_bitmap(tag)),
            Some(key) => match self.company_keys.get(key) {
                None => Selection::Nothing,
                Some(&set) if query.tags().is_empty() => {
                    Selection::Borrowed(&self.company_sets[set as usize])
                }
                Some(&set) => self.tag_selection(query, |tag| self.company_tag_bitmap(set, tag)),
            },
        };
        self.walk_page(&selection, query.offset(), query.per_page(), emit)
    }

    fn tag_index(&self, tag: &str) -> Option<u32> {
        self.tag_keys.get(tag).copied()
    }

    fn tag_bitmap(&self, tag: &str) -> Option<&RoaringBitmap> {
        self.tag_index(tag)
            .map(|index| &self.tag_rows[index as usize])
    }

    fn company_tag_bitmap(&self, set: u32, tag: &str) -> Option<&RoaringBitmap> {
        self.company_tag_rows.get(&(set, self.tag_index(tag)?))
    }

    /// Combines the rows of each listed tag, as found by `rows_of` (`None`: no rows).
    fn tag_selection<'a>(
        &'a self,
        query: &ConversationQuery,
        rows_of: impl Fn(&str) -> Option<&'a RoaringBitmap> + Clone,
    ) -> Selection<'a> {
        let tags = query.tags();
        if tags.is_empty() {
            return Selection::Everything;
        }
        let bitmaps = tags.iter().map(|tag| rows_of(tag));
        match query.tag_match() {
            TagMatch::Any => combine(bitmaps.flatten(), |a, b| a | b, |acc, next| *acc |= next),
            TagMatch::All if bitmaps.clone().any(|b| b.is_none()) => Selection::Nothing,
            TagMatch::All => combine(bitmaps.flatten(), |a, b| a & b, |acc, next| *acc &= next),
        }
    }

    fn walk_page(
        &self,
        selection: &Selection<'_>,
        offset: u64,
        per_page: u32,
        mut emit: impl FnMut(u32),
    ) -> u64 {
        let bitmap = match selection {
            Selection::Everything => return self.walk_all(offset, per_page, emit),
            Selection::Nothing => return 0,
            Selection::Borrowed(bitmap) => *bitmap,
            Selection::Owned(bitmap) => bitmap,
        };
        let total = bitmap.len();
        let first = u32::try_from(offset)
            .ok()
            .filter(|_| offset < total)
            .and_then(|n| bitmap.select(n));
        if let Some(first) = first {
            bitmap
                .range(first..)
                .take(per_page as usize)
                .for_each(&mut emit);
        }
        total
    }

    fn walk_all(&self, offset: u64, per_page: u32, emit: impl FnMut(u32)) -> u64 {
        let total = u64::from(self.row_count);
        let start = offset.min(total);
        let end = start.saturating_add(u64::from(per_page)).min(total);
        (start as u32..end as u32).for_each(emit);
        total
    }
}

/// Folds bitmaps into one selection, copying only when there are two or more.
fn combine<'a>(
    mut bitmaps: impl Iterator<Item = &'a RoaringBitmap>,
    pair: impl Fn(&RoaringBitmap, &RoaringBitmap) -> RoaringBitmap,
    merge: impl Fn(&mut RoaringBitmap, &RoaringBitmap),
) -> Selection<'a> {
    let Some(first) = bitmaps.next() else {
        return Selection::Nothing;
    };
    let Some(second) = bitmaps.next() else {
        return Selection::Borrowed(first);
    };
    let mut acc = pair(first, second);
    bitmaps.for_each(|next| merge(&mut acc, next));
    Selection::Owned(acc)
}
