//! Unit tests for typed column views and part-file listing.

use std::sync::Arc;

use arrow_array::builder::{ListBuilder, StringBuilder};
use arrow_array::types::Int8Type;
use arrow_array::{DictionaryArray, StringArray, UInt64Array};
use arrow_schema::DataType;

use super::*;

#[test]
fn dictionary_text_keeps_nulls() {
    let array: DictionaryArray<Int8Type> = vec![Some("a"), None, Some("b"), Some("a")]
        .into_iter()
        .collect();
    let column = TextColumn::try_new(&array).unwrap();
    let values: Vec<Option<&str>> = (0..4).map(|row| column.get(row)).collect();
    assert_eq!(values, [Some("a"), None, Some("b"), Some("a")]);
}

#[test]
fn comma_tags_are_trimmed_and_empties_dropped() {
    let array = StringArray::from(vec![Some(" a, ,b ,"), None, Some("")]);
    let column = TagsColumn::try_new(&array).unwrap();
    let tags_of = |row| {
        let mut tags = Vec::new();
        column.for_each(row, |tag| tags.push(tag));
        tags
    };
    assert_eq!(tags_of(0), ["a", "b"]);
    assert!(tags_of(1).is_empty() && tags_of(2).is_empty());
}

#[test]
fn list_tags_skip_null_items_and_rows() {
    let mut builder = ListBuilder::new(StringBuilder::new());
    builder.append_value([Some("x"), None, Some(" y ")]);
    builder.append_null();
    let array = builder.finish();
    let column = TagsColumn::try_new(&array).unwrap();
    let mut tags = Vec::new();
    column.for_each(0, |tag| tags.push(tag));
    column.for_each(1, |tag| tags.push(tag));
    assert_eq!(tags, ["x", "y"]);
}

#[test]
fn unsigned_ids_above_i64_are_rejected_by_row() {
    let array = UInt64Array::from(vec![1, u64::MAX]);
    assert_eq!(IdColumn::try_new(&array).err(), Some(1));
    let fine = UInt64Array::from(vec![7]);
    let column = IdColumn::try_new(&fine).unwrap().unwrap();
    assert_eq!(column.get(0), Some(IdValue::Integer(7)));
}

#[test]
fn kinds_accept_the_documented_types() {
    let text_list = DataType::List(Arc::new(arrow_schema::Field::new(
        "item",
        DataType::LargeUtf8,
        true,
    )));
    let dictionary = DataType::Dictionary(Box::new(DataType::UInt16), Box::new(DataType::Utf8View));
    assert!(ColumnKind::Tags.accepts(&text_list) && ColumnKind::Text.accepts(&dictionary));
    assert!(
        ColumnKind::Id.accepts(&DataType::UInt8) && !ColumnKind::Id.accepts(&DataType::Float64)
    );
    assert!(
        ColumnKind::Number.accepts(&DataType::Float32)
            && !ColumnKind::Text.accepts(&DataType::Int64)
    );
    assert!(TextColumn::try_new(&UInt64Array::from(vec![1])).is_none());
}

#[test]
fn part_files_skip_markers_and_sort_by_name() {
    let dir = tempfile::tempdir().unwrap();
    for name in [
        "part-00002.parquet",
        "_SUCCESS",
        ".part-00001.parquet.crc",
        "part-00001.parquet",
        "x.crc",
    ] {
        std::fs::write(dir.path().join(name), b"").unwrap();
    }
    std::fs::create_dir(dir.path().join("part-00000")).unwrap();
    let names: Vec<String> = part_files(dir.path())
        .unwrap()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["part-00001.parquet", "part-00002.parquet"]);
}
