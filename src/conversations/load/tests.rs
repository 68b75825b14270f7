//! Unit tests for key lookups and the helpers that infer links from row order.

use std::collections::HashMap;

use super::keys::KeyMap;
use super::normalized::{company_beginning, fill_companies_from_next};
use crate::conversations::columns::IdValue;

#[test]
fn keys_match_across_integer_and_text_forms() {
    let mut keys = KeyMap::default();
    keys.insert(IdValue::Integer(3), 0);
    keys.insert(IdValue::Text("abc"), 1);
    keys.insert(IdValue::Text("17"), 2);
    assert_eq!(keys.get(IdValue::Text("3")), Some(0));
    assert_eq!(keys.get(IdValue::Integer(3)), Some(0));
    assert_eq!(keys.get(IdValue::Integer(17)), Some(2));
    assert_eq!(keys.get(IdValue::Text("abc")), Some(1));
    assert_eq!(keys.get(IdValue::Text("nope")), None);
}

#[test]
fn titles_take_the_longest_company_name_at_a_word_boundary() {
    let names: HashMap<String, u32> = [("amazon", 0), ("amazon.com, inc.", 1), ("meta", 2)]
        .into_iter()
        .map(|(name, index)| (name.to_string(), index))
        .collect();
    assert_eq!(
        company_beginning("Amazon.com, Inc., Q1 2022 Earnings Call", &names),
        Some(1)
    );
    assert_eq!(
        company_beginning("Amazon Web Services call", &names),
        Some(0)
    );
    assert_eq!(company_beginning("Metaverse expert", &names), None);
    assert_eq!(company_beginning("Former Manager at Amazon", &names), None);
}

#[test]
fn transcripts_without_a_company_take_the_next_ones() {
    let mut companies = [None, None, Some(1), None, Some(2), None];
    fill_companies_from_next(&mut companies);
    assert_eq!(
        companies,
        [Some(1), Some(1), Some(1), Some(2), Some(2), None]
    );
}
