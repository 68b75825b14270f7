//! Unit tests for query parsing.

use super::*;

fn parse(raw: &str) -> Result<ConversationQuery, QueryError> {
    ConversationQuery::parse(Some(raw))
}

fn parameter_of(raw: &str) -> &'static str {
    parse(raw).expect_err(raw).parameter
}

#[test]
fn no_query_gives_defaults() {
    let query = ConversationQuery::parse(None).unwrap();
    assert_eq!(query, ConversationQuery::default());
    assert_eq!(
        (query.page(), query.per_page(), query.tag_match()),
        (1, 50, TagMatch::Any)
    );
    assert_eq!(parse("").unwrap(), query);
}

#[test]
fn bad_values_name_their_parameter() {
    assert_eq!(parameter_of("page=0"), "page");
    assert_eq!(parameter_of("page=abc"), "page");
    assert_eq!(parameter_of("page=-1"), "page");
    assert_eq!(parameter_of("page="), "page");
    assert_eq!(parameter_of("page=99999999999999999999999"), "page");
    assert_eq!(parameter_of("per_page=5000"), "per_page");
    assert_eq!(parameter_of("per_page=0"), "per_page");
    assert_eq!(parameter_of("per_page=1.5"), "per_page");
    assert_eq!(parameter_of("match=some"), "match");
    assert_eq!(parameter_of("match="), "match");
    assert_eq!(parameter_of("company=%FF"), "company");
}

#[test]
fn error_display_names_the_parameter() {
    let error = parse("per_page=5000").unwrap_err();
    assert!(error.to_string().contains("per_page"), "{error}");
    assert!(error.to_string().contains("5000"), "{error}");
}

#[test]
fn good_values_parse() {
    let query =
        parse("company=Microsoft&tags=Competition,%20orientation&match=ALL&page=3&per_page=1000")
            .unwrap();
    assert_eq!(query.company(), Some("microsoft"));
    assert_eq!(query.tags(), ["competition", "orientation"]);
    assert_eq!(query.tag_match(), TagMatch::All);
    assert_eq!((query.page(), query.per_page()), (3, 1000));
    assert_eq!(query.offset(), 2000);
}

#[test]
fn plus_is_a_space_and_percent_decodes() {
    let query = parse("company=Microsoft+Corporation&tags=supply+chain%2Cgrowth").unwrap();
    assert_eq!(query.company(), Some("microsoft corporation"));
    assert_eq!(query.tags(), ["supply chain", "growth"]);
}

#[test]
fn parameter_names_are_decoded_too() {
    let query = parse("comp%61ny=Amazon&per%5Fpage=7&%FFpage=0").unwrap();
    assert_eq!(query.company(), Some("amazon"));
    assert_eq!(query.per_page(), 7);
    assert_eq!(query.page(), 1, "a name that is not UTF-8 is no known name");
}

#[test]
fn empty_items_are_ignored_and_repeats_removed() {
    let query = parse("tags=,a,, b ,A,&company=").unwrap();
    assert_eq!(query.tags(), ["a", "b"]);
    assert_eq!(query.company(), None);
    assert!(parse("tags=,,").unwrap().tags().is_empty());
}

#[test]
fn last_repeated_parameter_wins() {
    let query = parse("page=abc&page=2&company=a&company=b").unwrap();
    assert_eq!((query.page(), query.company()), (2, Some("b")));
    assert_eq!(parameter_of("page=2&page=0"), "page");
}

#[test]
fn unknown_parameters_are_ignored() {
    let query = parse("foo=bar&&page=2&Page=0&x").unwrap();
    assert_eq!(query.page(), 2);
}

#[test]
fn too_many_tags_is_an_error() {
    let tags: Vec<String> = (0..=MAX_QUERY_TAGS).map(|i| format!("t{i}")).collect();
    assert_eq!(parameter_of(&format!("tags={}", tags.join(","))), "tags");
}

#[test]
fn huge_page_offset_saturates() {
    let query = parse("page=18446744073709551615&per_page=1000").unwrap();
    assert_eq!(query.offset(), u64::MAX);
}
