//! Unit tests for the index: query semantics, JSON output and lookups, on indexes
//! built directly through the builder.

use super::build::leading_word;
use super::*;
use crate::conversations::columns::IdValue;

fn push(builder: &mut IndexBuilder, id: IdValue<'_>, company: Option<u32>, tags: &[&str]) {
    let conversation = NewConversation {
        id,
        company,
        transcript: None,
        question: None,
        answer: None,
    };
    let row = builder.push_conversation(conversation).unwrap();
    for tag in tags {
        let tag = builder.tag(tag);
        builder.tag_row(row, tag);
    }
}

fn small_index() -> ConversationIndex {
    let mut builder = IndexBuilder::new();
    let acme_corp = builder.add_company("A1", "Acme Corp");
    let acme_labs = builder.add_company("A2", "Acme-Labs");
    let unicode = builder.add_company("U1", "Ünïcode GmbH");
    push(
        &mut builder,
        IdValue::Text("x\"1"),
        Some(acme_corp),
        &["Red", "blue"],
    );
    push(&mut builder, IdValue::Text("x2"), Some(acme_labs), &["RED"]);
    push(&mut builder, IdValue::Text("x3"), Some(unicode), &["Blue"]);
    push(&mut builder, IdValue::Text("x4"), None, &[]);
    builder.finish(SourceLayout::Flat, false)
}

fn body(index: &ConversationIndex, raw: &str) -> String {
    let mut out = Vec::new();
    index.write_query_json(&ConversationQuery::parse(Some(raw)).unwrap(), &mut out);
    String::from_utf8(out).unwrap()
}

#[test]
fn leading_word_is_the_first_alphanumeric_run() {
    assert_eq!(leading_word("Amazon.com, Inc."), "Amazon");
    assert_eq!(leading_word("  Eco2Solar Ltd"), "Eco2Solar");
    assert_eq!(leading_word("Ünïcode GmbH"), "Ünïcode");
    assert_eq!(leading_word("..."), "");
}

#[test]
fn shared_leading_words_match_every_company() {
    let index = small_index();
    assert_eq!(
        body(&index, "company=acme"),
        r#"{"conversation_ids":["x\"1","x2"],"total":2,"page":1,"per_page":50}"#
    );
    assert_eq!(
        body(&index, "company=acme-labs"),
        r#"{"conversation_ids":["x2"],"total":1,"page":1,"per_page":50}"#
    );
    assert_eq!(
        body(&index, "company=a1"),
        r#"{"conversation_ids":["x\"1"],"total":1,"page":1,"per_page":50}"#
    );
    assert_eq!(
        body(&index, "company=%C3%BCN%C3%AFCODE"),
        r#"{"conversation_ids":["x3"],"total":1,"page":1,"per_page":50}"#
    );
    assert_eq!(
        body(&index, "company=nobody"),
        r#"{"conversation_ids":[],"total":0,"page":1,"per_page":50}"#
    );
}

#[test]
fn tag_modes_and_pages() {
    let index = small_index();
    assert_eq!(
        index
            .query(&ConversationQuery::parse(Some("tags=red,blue")).unwrap())
            .total,
        3
    );
    assert_eq!(
        index
            .query(&ConversationQuery::parse(Some("tags=red,blue&match=all")).unwrap())
            .total,
        1
    );
    assert_eq!(
        index
            .query(&ConversationQuery::parse(Some("tags=red,green&match=all")).unwrap())
            .total,
        0
    );
    assert_eq!(
        body(&index, "per_page=1&page=4"),
        r#"{"conversation_ids":["x4"],"total":4,"page":4,"per_page":1}"#
    );
    assert_eq!(
        body(&index, "per_page=1&page=5"),
        r#"{"conversation_ids":[],"total":4,"page":5,"per_page":1}"#
    );
    assert_eq!(
        body(&index, "tags=red&per_page=1&page=2"),
        r#"{"conversation_ids":["x2"],"total":2,"page":2,"per_page":1}"#
    );
}

#[test]
fn listings_count_conversations() {
    let index = small_index();
    let keys: Vec<(String, u64)> = index
        .companies()
        .into_iter()
        .map(|c| (c.key, c.conversations))
        .collect();
    assert_eq!(
        keys,
        [
            ("acme".into(), 1),
            ("acme".into(), 1),
            ("ünïcode".into(), 1)
        ]
    );
    let tags: Vec<(String, u64)> = index
        .tags()
        .into_iter()
        .map(|t| (t.tag, t.conversations))
        .collect();
    assert_eq!(tags, [("Red".into(), 2), ("blue".into(), 2)]);
    assert_eq!(index.conversation("x\"1").unwrap().tags, ["Red", "blue"]);
    assert_eq!(index.conversation("x4").unwrap().company, None);
}

#[test]
fn integer_ids_are_json_numbers_and_clones_are_equal() {
    let mut builder = IndexBuilder::new();
    push(&mut builder, IdValue::Integer(-5), None, &[]);
    push(&mut builder, IdValue::Integer(42), None, &[]);
    let index = builder.finish(SourceLayout::Flat, false);
    assert_eq!(
        body(&index, ""),
        r#"{"conversation_ids":[-5,42],"total":2,"page":1,"per_page":50}"#
    );
    assert_eq!(
        index.conversation("42").unwrap().id,
        ConversationId::Integer(42)
    );
    let copy = index.clone();
    assert_eq!(body(&copy, ""), body(&index, ""));
}

#[test]
fn an_empty_index_answers_nothing() {
    let index = IndexBuilder::new().finish(SourceLayout::Flat, false);
    assert!(index.is_empty());
    assert_eq!(
        body(&index, "page=3"),
        r#"{"conversation_ids":[],"total":0,"page":3,"per_page":50}"#
    );
}

#[test]
fn index_is_send_sync_and_clone() {
    fn assert_traits<T: Send + Sync + Clone + 'static>() {}
    assert_traits::<ConversationIndex>();
}

#[test]
fn json_helpers_write_numbers_and_escapes() {
    let mut out = Vec::new();
    json::push_decimal(&mut out, 0);
    out.push(b' ');
    json::push_decimal(&mut out, u64::MAX);
    out.push(b' ');
    json::push_escaped_string(&mut out, "a\"b\\c\n\u{1}é");
    assert_eq!(
        String::from_utf8(out).unwrap(),
        r#"0 18446744073709551615 "a\"b\\c\n\u0001é""#
    );
    let mut text = String::new();
    json::push_decimal_string(&mut text, i64::MIN);
    assert_eq!(text, i64::MIN.to_string());
}

/// 12 000 rows; row `n` has tag `n % 3` (so tags are disjoint) and company `n % 2`,
/// plus, when `overlap` is set, row 0 also has tag 1.
fn striped_index(overlap: bool) -> ConversationIndex {
    let mut builder = IndexBuilder::new();
    let companies = [
        builder.add_company("e", "Even"),
        builder.add_company("o", "Odd"),
    ];
    for n in 0..12_000u32 {
        let id = format!("r{n}");
        let mut tags = vec![["t0", "t1", "t2"][n as usize % 3]];
        if overlap && n == 0 {
            tags.push("t1");
        }
        push(
            &mut builder,
            IdValue::Text(&id),
            Some(companies[n as usize % 2]),
            &tags,
        );
    }
    builder.finish(SourceLayout::Flat, false)
}

fn naive_rows(overlap: bool, even_only: bool, tags: &[usize]) -> Vec<String> {
    let has = |n: usize, tag: usize| n % 3 == tag || (overlap && n == 0 && tag == 1);
    (0..12_000)
        .filter(|n| (!even_only || n % 2 == 0) && tags.iter().any(|&t| has(*n, t)))
        .map(|n| format!("r{n}"))
        .collect()
}

#[test]
fn merged_and_united_tag_walks_agree_with_a_naive_filter_at_every_depth() {
    for overlap in [false, true] {
        let index = striped_index(overlap);
        for (company, even_only) in [("", false), ("company=even&", true)] {
            let expected = naive_rows(overlap, even_only, &[0, 1]);
            for page in [1, 2, 40, 41, 42, 80, 81, 82, 83, 100, 200] {
                let raw = format!("{company}tags=t0,t1&per_page=50&page={page}");
                let answer = index.query(&ConversationQuery::parse(Some(&raw)).unwrap());
                let ids: Vec<String> = answer
                    .conversation_ids
                    .iter()
                    .map(ToString::to_string)
                    .collect();
                let start = ((page - 1) * 50).min(expected.len());
                assert_eq!(
                    ids,
                    expected[start..(start + 50).min(expected.len())],
                    "{raw} overlap={overlap}"
                );
                assert_eq!(answer.total, expected.len() as u64, "{raw}");
            }
        }
    }
}

#[test]
fn all_mode_on_tags_that_never_meet_is_empty() {
    let index = striped_index(false);
    let all = |raw: &str| {
        index
            .query(&ConversationQuery::parse(Some(raw)).unwrap())
            .total
    };
    assert_eq!(all("tags=t0,t1&match=all"), 0);
    assert_eq!(all("tags=t0,t0&match=all"), 4_000);
    assert_eq!(all("company=odd&tags=t1&match=all"), 2_000);
    let overlapping = striped_index(true);
    assert_eq!(
        overlapping
            .query(&ConversationQuery::parse(Some("tags=t0,t1&match=all")).unwrap())
            .total,
        1
    );
}

#[test]
fn lookups_by_id_resolve_long_shared_prefixes_and_repeats() {
    let mut builder = IndexBuilder::new();
    let ids = [
        "conversation-b",
        "conversation-a",
        "conversation",
        "conversation-a",
        "c",
    ];
    for id in ids {
        let company = builder.company_named(id);
        push(&mut builder, IdValue::Text(id), Some(company), &[]);
    }
    let index = builder.finish(SourceLayout::Flat, false);
    for id in ["conversation-b", "conversation", "c"] {
        assert_eq!(
            index.conversation(id).unwrap().id,
            ConversationId::Text(id.into())
        );
    }
    let repeated = index.conversation("conversation-a").unwrap();
    assert_eq!(repeated.company.as_deref(), Some("conversation-a"));
    assert!(index.conversation("conversation-c").is_none() && index.conversation("").is_none());
}
