//! Lookup of rows by a foreign key that may be an integer or a string on either side
//! (for example `id_tag` as `int32` in one table and `int64` or text in another).

use std::collections::HashMap;

use crate::conversations::columns::IdValue;

/// Maps key values to indices; integer and textual forms of the same key match.
#[derive(Default)]
pub(crate) struct KeyMap {
    integers: HashMap<i64, u32>,
    texts: HashMap<Box<str>, u32>,
}

impl KeyMap {
    /// Records `key → index`; the first index wins when a key repeats.
    pub(crate) fn insert(&mut self, key: IdValue<'_>, index: u32) {
        match key {
            IdValue::Integer(number) => {
                self.integers.entry(number).or_insert(index);
            }
            IdValue::Text(text) => {
                self.texts.entry(text.into()).or_insert(index);
            }
        }
    }

    pub(crate) fn get(&self, key: IdValue<'_>) -> Option<u32> {
        match key {
            IdValue::Integer(number) => self
                .integers
                .get(&number)
                .copied()
                .or_else(|| self.texts.get(number.to_string().as_str()).copied()),
            IdValue::Text(text) => self.texts.get(text).copied().or_else(|| {
                let number = text.trim().parse::<i64>().ok()?;
                self.integers.get(&number).copied()
            }),
        }
    }
}

/// The textual form of a key, for display and for storing ids.
pub(crate) fn key_text(key: IdValue<'_>) -> std::borrow::Cow<'_, str> {
    match key {
        IdValue::Integer(number) => number.to_string().into(),
        IdValue::Text(text) => text.into(),
    }
}
