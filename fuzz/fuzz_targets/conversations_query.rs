//! Fuzzes the conversations query-string parser: any string either parses into a query that
//! keeps its documented bounds, or is refused naming a known parameter; never a panic.

#![no_main]

use confab::conversations::{ConversationQuery, MAX_PER_PAGE, MAX_QUERY_TAGS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    match ConversationQuery::parse(Some(raw)) {
        Ok(query) => {
            assert!(query.page() >= 1);
            assert!((1..=MAX_PER_PAGE).contains(&query.per_page()));
            assert!(query.tags().len() <= MAX_QUERY_TAGS);
            for (index, tag) in query.tags().iter().enumerate() {
                assert!(!tag.is_empty() && tag.trim() == tag && tag.to_lowercase() == *tag);
                assert!(!query.tags()[..index].contains(tag), "repeated tag {tag:?}");
            }
            if let Some(company) = query.company() {
                assert!(!company.is_empty() && company.to_lowercase() == company);
            }
            let _ = query.offset();
        }
        Err(error) => assert!(
            ["company", "tags", "match", "page", "per_page"].contains(&error.parameter),
            "unknown parameter {:?}",
            error.parameter
        ),
    }
});
