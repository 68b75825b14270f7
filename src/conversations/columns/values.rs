//! Typed views over Arrow arrays: text, ids, numbers and tag lists.

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float16Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, UInt16Type,
    UInt32Type, UInt64Type, UInt8Type,
};
use arrow_array::{
    AnyDictionaryArray, Array, ArrowPrimitiveType, LargeStringArray, OffsetSizeTrait, StringArray,
    StringViewArray,
};

/// Read access to a string column whatever its physical encoding.
pub(crate) enum TextColumn<'a> {
    Plain(&'a StringArray),
    Large(&'a LargeStringArray),
    View(&'a StringViewArray),
    Dictionary {
        dictionary: &'a dyn AnyDictionaryArray,
        keys: Vec<usize>,
        values: Box<TextColumn<'a>>,
    },
}

impl<'a> TextColumn<'a> {
    /// `None` if the array is not a string type confab accepts.
    pub(crate) fn try_new(array: &'a dyn Array) -> Option<Self> {
        if let Some(plain) = array.as_string_opt::<i32>() {
            return Some(Self::Plain(plain));
        }
        if let Some(large) = array.as_string_opt::<i64>() {
            return Some(Self::Large(large));
        }
        if let Some(view) = array.as_string_view_opt() {
            return Some(Self::View(view));
        }
        let dictionary = array.as_any_dictionary_opt()?;
        let values = TextColumn::try_new(dictionary.values().as_ref())?;
        Some(Self::Dictionary {
            dictionary,
            keys: dictionary.normalized_keys(),
            values: Box::new(values),
        })
    }

    /// The value at `row`, `None` for a null.
    pub(crate) fn get(&self, row: usize) -> Option<&'a str> {
        match self {
            Self::Plain(array) => array.is_valid(row).then(|| array.value(row)),
            Self::Large(array) => array.is_valid(row).then(|| array.value(row)),
            Self::View(array) => array.is_valid(row).then(|| array.value(row)),
            Self::Dictionary {
                dictionary,
                keys,
                values,
            } => match dictionary.is_valid(row) {
                true => values.get(keys[row]),
                false => None,
            },
        }
    }
}

/// One identifier value, borrowed from its column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IdValue<'a> {
    Text(&'a str),
    Integer(i64),
}

/// Read access to an identifier column: strings, or integers of any width.
pub(crate) enum IdColumn<'a> {
    Text(TextColumn<'a>),
    Integer(Vec<Option<i64>>),
}

impl<'a> IdColumn<'a> {
    /// `Ok(None)` for an unusable type; `Err(row)` for an unsigned value above `i64::MAX`.
    pub(crate) fn try_new(array: &'a dyn Array) -> Result<Option<Self>, usize> {
        if let Some(text) = TextColumn::try_new(array) {
            return Ok(Some(Self::Text(text)));
        }
        Ok(integers(array)?.map(Self::Integer))
    }

    pub(crate) fn get(&self, row: usize) -> Option<IdValue<'a>> {
        match self {
            Self::Text(text) => text.get(row).map(IdValue::Text),
            Self::Integer(values) => values[row].map(IdValue::Integer),
        }
    }
}

fn primitive_values<T>(array: &dyn Array) -> Option<Vec<Option<T::Native>>>
where
    T: ArrowPrimitiveType,
{
    let typed = array.as_primitive_opt::<T>()?;
    Some(typed.iter().collect())
}

fn widen<N: TryInto<i64> + Copy>(values: Vec<Option<N>>) -> Result<Vec<Option<i64>>, usize> {
    values
        .iter()
        .enumerate()
        .map(|(row, value)| match value {
            Some(v) => (*v).try_into().map(Some).map_err(|_| row),
            None => Ok(None),
        })
        .collect()
}

/// Any integer array as `i64`s; `Ok(None)` if the array is not an integer type.
fn integers(array: &dyn Array) -> Result<Option<Vec<Option<i64>>>, usize> {
    macro_rules! try_type {
        ($($arrow_type:ty),*) => {
            $(if let Some(values) = primitive_values::<$arrow_type>(array) {
                return widen(values).map(Some);
            })*
        };
    }
    try_type!(
        Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type, UInt32Type, UInt64Type
    );
    Ok(None)
}

/// Read access to a numeric column (integers or floats) as `f64`.
pub(crate) struct NumberColumn {
    values: Vec<Option<f64>>,
}

impl NumberColumn {
    pub(crate) fn try_new(array: &dyn Array) -> Option<Self> {
        if let Ok(Some(values)) = integers(array) {
            let values = values.into_iter().map(|v| v.map(|n| n as f64)).collect();
            return Some(Self { values });
        }
        let values = primitive_values::<Float64Type>(array)
            .or_else(|| as_f64::<Float32Type>(array))
            .or_else(|| as_f64::<Float16Type>(array))?;
        Some(Self { values })
    }

    pub(crate) fn get(&self, row: usize) -> Option<f64> {
        self.values[row]
    }
}

fn as_f64<T>(array: &dyn Array) -> Option<Vec<Option<f64>>>
where
    T: ArrowPrimitiveType,
    T::Native: Into<f64>,
{
    let values = primitive_values::<T>(array)?;
    Some(values.into_iter().map(|v| v.map(Into::into)).collect())
}

/// Read access to a tags column: a list of strings, or one comma-separated string.
pub(crate) enum TagsColumn<'a> {
    List {
        list: &'a dyn Array,
        offsets: Vec<usize>,
        items: TextColumn<'a>,
    },
    CommaSeparated(TextColumn<'a>),
}

impl<'a> TagsColumn<'a> {
    pub(crate) fn try_new(array: &'a dyn Array) -> Option<Self> {
        if let Some(text) = TextColumn::try_new(array) {
            return Some(Self::CommaSeparated(text));
        }
        list_parts::<i32>(array).or_else(|| list_parts::<i64>(array))
    }

    /// Calls `each` with every non-empty, trimmed tag of `row` (none for a null).
    pub(crate) fn for_each(&self, row: usize, mut each: impl FnMut(&'a str)) {
        let mut emit = |tag: &'a str| {
            let tag = tag.trim();
            if !tag.is_empty() {
                each(tag);
            }
        };
        match self {
            Self::CommaSeparated(text) => text
                .get(row)
                .into_iter()
                .flat_map(|s| s.split(','))
                .for_each(&mut emit),
            Self::List {
                list,
                offsets,
                items,
            } if list.is_valid(row) => {
                (offsets[row]..offsets[row + 1])
                    .filter_map(|i| items.get(i))
                    .for_each(&mut emit);
            }
            Self::List { .. } => {}
        }
    }
}

fn list_parts<O: OffsetSizeTrait>(array: &dyn Array) -> Option<TagsColumn<'_>> {
    let list = array.as_list_opt::<O>()?;
    let items = TextColumn::try_new(list.values().as_ref())?;
    let offsets = list.value_offsets().iter().map(|o| o.as_usize()).collect();
    Some(TagsColumn::List {
        list: array,
        offsets,
        items,
    })
}
