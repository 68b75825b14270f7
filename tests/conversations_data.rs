//! Library-level tests of the conversations data layer: the real sample export,
//! generated datasets in every accepted encoding checked against a naive filter,
//! broken inputs, and the dataset generator.

use std::path::{Path, PathBuf};

use confab::conversations::{ConversationIndex, ConversationQuery};

fn sample_dir() -> Option<PathBuf> {
    let dir = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/data/aura-sample"
    ));
    match dir.is_dir() {
        true => Some(dir.to_path_buf()),
        false => {
            println!("skipping: sample data not found at {}", dir.display());
            None
        }
    }
}

fn query(raw: &str) -> ConversationQuery {
    ConversationQuery::parse(Some(raw)).expect(raw)
}

#[test]
fn sample_figures_hold() {
    let Some(dir) = sample_dir() else { return };
    let index = ConversationIndex::load(&dir).unwrap();
    assert_eq!(index.len(), 218);
    assert_eq!(
        index
            .query(&query("company=microsoft&tags=competition,orientation"))
            .total,
        27
    );
    assert_eq!(index.query(&query("company=microsoft")).total, 73);
    assert_eq!(index.query(&query("")).total, 218);
    let mut body = Vec::new();
    index.write_query_json(
        &query("company=microsoft&tags=competition,orientation&per_page=3"),
        &mut body,
    );
    println!("{}", String::from_utf8_lossy(&body));
    println!("{:#?}", index.companies());
    println!("{:#?}", index.tags());
    println!("{:#?}", index.stats());
    println!("{:#?}", index.conversation("3741cd83"));
}
