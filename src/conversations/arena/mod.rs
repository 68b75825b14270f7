//! Compact storage for many strings: one text buffer plus one end offset per entry.
//!
//! Used for conversation ids (hot, `u32` offsets) and for the cold text columns
//! (questions, answers, titles; `u64` offsets since they can exceed 4 GiB).

use roaring::RoaringBitmap;

/// An offset type for [`TextArena`]: `u32` for small arenas, `u64` for large ones.
pub(crate) trait ArenaOffset: Copy + TryFrom<usize> {
    /// The offset as a buffer position.
    fn position(self) -> usize;
}

impl ArenaOffset for u32 {
    fn position(self) -> usize {
        self as usize
    }
}

impl ArenaOffset for u64 {
    fn position(self) -> usize {
        self as usize
    }
}

/// The arena would exceed what its offset type (or the row numbering) can address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ArenaFull;

/// Append-only list of optional strings stored back to back in one buffer.
#[derive(Clone, Debug, Default)]
pub(crate) struct TextArena<O> {
    text: String,
    ends: Vec<O>,
    nulls: RoaringBitmap,
}

impl<O: ArenaOffset> TextArena<O> {
    pub(crate) fn new() -> Self {
        Self {
            text: String::new(),
            ends: Vec::new(),
            nulls: RoaringBitmap::new(),
        }
    }

    /// Appends one entry; `None` is stored as a null.
    pub(crate) fn push(&mut self, value: Option<&str>) -> Result<(), ArenaFull> {
        let index = u32::try_from(self.ends.len()).map_err(|_| ArenaFull)?;
        match value {
            Some(text) => self.text.push_str(text),
            None => {
                self.nulls.insert(index);
            }
        }
        let end = O::try_from(self.text.len()).map_err(|_| ArenaFull)?;
        self.ends.push(end);
        Ok(())
    }

    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    /// The mean length of an entry in bytes (0 when empty), rounded up.
    pub(crate) fn mean_len(&self) -> usize {
        self.text.len().div_ceil(self.len().max(1))
    }

    /// The entry at `index` ("" for a null); panics if out of range.
    pub(crate) fn text(&self, index: usize) -> &str {
        &self.text[self.span(index)]
    }

    /// The entry at `index` as bytes, without the character-boundary checks of slicing a
    /// `str` (the spans were cut at boundaries when pushed); panics if out of range.
    pub(crate) fn bytes(&self, index: usize) -> &[u8] {
        &self.text.as_bytes()[self.span(index)]
    }

    fn span(&self, index: usize) -> std::ops::Range<usize> {
        let start = match index {
            0 => 0,
            _ => self.ends[index - 1].position(),
        };
        start..self.ends[index].position()
    }

    /// The entry at `index`, `None` for a null or an index out of range.
    pub(crate) fn get(&self, index: usize) -> Option<&str> {
        let is_null = u32::try_from(index).map_or(true, |i| self.nulls.contains(i));
        (index < self.len() && !is_null).then(|| self.text(index))
    }

    /// Heap bytes held (capacity, not just length).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.text.capacity()
            + self.ends.capacity() * std::mem::size_of::<O>()
            + self.nulls.serialized_size()
    }

    /// Releases spare capacity once building is over.
    pub(crate) fn shrink_to_fit(&mut self) {
        self.text.shrink_to_fit();
        self.ends.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests;
