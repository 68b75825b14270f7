//! Library-level tests of the conversations data layer: the real sample export,
//! generated datasets in both layouts and every accepted encoding checked against a
//! naive filter, broken inputs, and the dataset generator.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{LargeListBuilder, ListBuilder, StringBuilder};
use arrow_array::types::Int16Type;
use arrow_array::{
    ArrayRef, DictionaryArray, Float64Array, Int32Array, Int64Array, LargeStringArray, RecordBatch,
    StringArray, StringViewArray,
};
use confab::conversations::datagen::{self, DatagenOptions};
use confab::conversations::{ConversationIndex, ConversationQuery, LoadError, TagMatch};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, GzipLevel, ZstdLevel};
use parquet::file::properties::WriterProperties;
use serde_json::{json, Value};

// ---------------------------------------------------------------- sample export

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

fn json_answer(index: &ConversationIndex, raw: &str) -> Value {
    let mut body = Vec::new();
    index.write_query_json(&query(raw), &mut body);
    serde_json::from_slice(&body).expect("valid JSON")
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
    assert_eq!(index.query(&query("company=amazon")).total, 107);
    assert!(index.stats().links_inferred);
}

#[test]
fn sample_answers_are_exact_json_with_string_ids() {
    let Some(dir) = sample_dir() else { return };
    let index = ConversationIndex::load(&dir).unwrap();
    let answer = json_answer(
        &index,
        "company=microsoft&tags=competition,orientation&per_page=2&page=2",
    );
    let keys: Vec<&String> = answer.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["conversation_ids", "total", "page", "per_page"]);
    assert_eq!(
        (
            answer["total"].clone(),
            answer["page"].clone(),
            answer["per_page"].clone()
        ),
        (json!(27), json!(2), json!(2))
    );
    assert!(answer["conversation_ids"]
        .as_array()
        .unwrap()
        .iter()
        .all(Value::is_string));
    let structured = serde_json::to_value(index.query(&query(
        "company=microsoft&tags=competition,orientation&per_page=2&page=2",
    )))
    .unwrap();
    assert_eq!(structured, answer);
}

#[test]
fn sample_detail_and_listings() {
    let Some(dir) = sample_dir() else { return };
    let index = ConversationIndex::load(&dir).unwrap();
    let detail = index.conversation("3741cd83").unwrap();
    assert_eq!(detail.company.as_deref(), Some("Amazon.com, Inc."));
    assert_eq!(detail.tags, ["Orientation"]);
    assert_eq!(detail.transcript_id.as_deref(), Some("001b8769"));
    assert!(index.conversation("nope").is_none());
    let companies = index.companies();
    let keys: Vec<(&str, u64)> = companies
        .iter()
        .map(|c| (c.key.as_str(), c.conversations))
        .collect();
    assert_eq!(keys, [("amazon", 107), ("microsoft", 73), ("tesla", 38)]);
    let tag_total: u64 = index.tags().iter().map(|t| t.conversations).sum();
    assert_eq!(tag_total, 218);
}

// ------------------------------------------------------------ naive reference model

/// One conversation as the test knows it.
#[derive(Clone, Debug)]
struct Record {
    id: String,
    company: Option<(String, String)>,
    tags: Vec<String>,
}

/// A tiny deterministic generator for test data (xorshift64).
struct TestRng(u64);

impl TestRng {
    fn below(&mut self, bound: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % bound as u64) as usize
    }
}

const TEST_COMPANIES: &[&str] = &[
    "Microsoft Corporation",
    "Amazon.com, Inc.",
    "Acme Corp",
    "Acme Labs",
    "Émile Études SA",
    "Tesla, Inc.",
];
const TEST_TAGS: &[&str] = &[
    "Competition",
    "Growth",
    "Orientation",
    "Supply Chain",
    "future",
];

fn leading_word(name: &str) -> String {
    name.split(|c: char| !c.is_alphanumeric())
        .find(|w| !w.is_empty())
        .unwrap_or("")
        .to_lowercase()
}

fn naive_matches(
    record: &Record,
    company: Option<&str>,
    tags: &[String],
    tag_match: TagMatch,
) -> bool {
    let company_ok = company.is_none_or(|key| {
        record.company.as_ref().is_some_and(|(id, name)| {
            [id.to_lowercase(), name.to_lowercase(), leading_word(name)]
                .iter()
                .any(|k| k == key)
        })
    });
    let has = |tag: &String| record.tags.iter().any(|t| t.to_lowercase() == *tag);
    let tags_ok = tags.is_empty()
        || match tag_match {
            TagMatch::Any => tags.iter().any(has),
            TagMatch::All => tags.iter().all(has),
        };
    company_ok && tags_ok
}

fn expected_answer(records: &[Record], raw: &str, numeric_ids: bool) -> Value {
    let q = query(raw);
    let hits: Vec<&Record> = records
        .iter()
        .filter(|r| naive_matches(r, q.company(), q.tags(), q.tag_match()))
        .collect();
    let page: Vec<Value> = hits
        .iter()
        .skip(usize::try_from(q.offset()).unwrap_or(usize::MAX))
        .take(q.per_page() as usize)
        .map(|r| match numeric_ids {
            true => json!(r.id.parse::<i64>().unwrap()),
            false => json!(r.id),
        })
        .collect();
    json!({"conversation_ids": page, "total": hits.len(), "page": q.page(), "per_page": q.per_page()})
}

const CHECKED_QUERIES: &[&str] = &[
    "",
    "company=acme",
    "company=acme&tags=growth,competition",
    "company=acme&tags=growth,competition&match=all",
    "company=acme%20corp&tags=growth",
    "company=ACME%20LABS",
    "company=microsoft&tags=competition,growth",
    "company=microsoft&tags=competition,growth&match=all",
    "tags=growth&match=all",
    "tags=Competition,%20growth&match=all",
    "tags=supply+chain",
    "tags=nope",
    "tags=nope,growth",
    "tags=nope,growth&match=all",
    "company=unknown",
    "company=émile",
    "company=amazon&tags=orientation,future,growth",
    "per_page=1000",
    "page=999999&per_page=1000",
    "company=tesla&page=2&per_page=1",
];

fn check_against_naive(index: &ConversationIndex, records: &[Record], numeric_ids: bool) {
    assert_eq!(index.len(), records.len());
    let total_pages = records.len().div_ceil(7) + 1;
    let paged =
        (1..=total_pages).map(|page| format!("tags=growth,competition&per_page=7&page={page}"));
    let all_queries = CHECKED_QUERIES.iter().map(|q| q.to_string()).chain(paged);
    for raw in all_queries {
        let expected = expected_answer(records, &raw, numeric_ids);
        assert_eq!(json_answer(index, &raw), expected, "query {raw}");
        assert_eq!(
            serde_json::to_value(index.query(&query(&raw))).unwrap(),
            expected,
            "structured {raw}"
        );
    }
}

fn flat_records(count: usize, seed: u64) -> Vec<Record> {
    let mut rng = TestRng(seed);
    (0..count)
        .map(|n| {
            let company = match rng.below(8) {
                0 => None,
                i => TEST_COMPANIES
                    .get(i - 1)
                    .map(|c| (c.to_string(), c.to_string())),
            };
            let mut tags: Vec<String> = Vec::new();
            for _ in 0..rng.below(4) {
                let tag = TEST_TAGS[rng.below(TEST_TAGS.len())];
                let spelled = if rng.below(3) == 0 {
                    tag.to_uppercase()
                } else {
                    tag.to_string()
                };
                if !tags.iter().any(|t| t.eq_ignore_ascii_case(&spelled)) {
                    tags.push(spelled);
                }
            }
            Record {
                id: (1000 + n * 7).to_string(),
                company,
                tags,
            }
        })
        .collect()
}

// ------------------------------------------------------------ writing test files

#[derive(Clone, Copy, Debug)]
enum TextEncoding {
    Plain,
    Large,
    Dictionary,
    View,
}

#[derive(Clone, Copy, Debug)]
enum IdEncoding {
    Text(TextEncoding),
    Int32,
    Int64,
}

#[derive(Clone, Copy, Debug)]
enum TagEncoding {
    List,
    LargeList,
    Comma(TextEncoding),
}

fn text_array<'a>(
    values: impl IntoIterator<Item = Option<&'a str>>,
    encoding: TextEncoding,
) -> ArrayRef {
    let values: Vec<Option<&str>> = values.into_iter().collect();
    match encoding {
        TextEncoding::Plain => Arc::new(StringArray::from(values)),
        TextEncoding::Large => Arc::new(LargeStringArray::from(values)),
        TextEncoding::View => Arc::new(StringViewArray::from(values)),
        TextEncoding::Dictionary => {
            Arc::new(values.into_iter().collect::<DictionaryArray<Int16Type>>())
        }
    }
}

fn id_array(ids: &[&str], encoding: IdEncoding) -> ArrayRef {
    match encoding {
        IdEncoding::Text(text) => text_array(ids.iter().map(|s| Some(*s)), text),
        IdEncoding::Int32 => Arc::new(Int32Array::from_iter_values(
            ids.iter().map(|s| s.parse::<i32>().unwrap()),
        )),
        IdEncoding::Int64 => Arc::new(Int64Array::from_iter_values(
            ids.iter().map(|s| s.parse::<i64>().unwrap()),
        )),
    }
}

fn tags_array(records: &[Record], encoding: TagEncoding) -> ArrayRef {
    let lists = records.iter().map(|r| {
        (!r.tags.is_empty()).then(|| {
            r.tags
                .iter()
                .map(|t| Some(format!(" {t} ")))
                .collect::<Vec<_>>()
        })
    });
    match encoding {
        TagEncoding::List => {
            let mut builder = ListBuilder::new(StringBuilder::new());
            lists.for_each(|list| builder.append_option(list));
            Arc::new(builder.finish())
        }
        TagEncoding::LargeList => {
            let mut builder = LargeListBuilder::new(StringBuilder::new());
            lists.for_each(|list| builder.append_option(list));
            Arc::new(builder.finish())
        }
        TagEncoding::Comma(text) => {
            let joined: Vec<Option<String>> = records
                .iter()
                .map(|r| (!r.tags.is_empty()).then(|| format!("{},", r.tags.join(" ,"))))
                .collect();
            text_array(joined.iter().map(|s| s.as_deref()), text)
        }
    }
}

fn write_parquet(
    path: &Path,
    columns: Vec<(&str, ArrayRef)>,
    compression: Compression,
    row_group_rows: usize,
) {
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let properties = WriterProperties::builder()
        .set_compression(compression)
        .set_max_row_group_row_count(Some(row_group_rows))
        .build();
    let mut writer = ArrowWriter::try_new(
        File::create(path).unwrap(),
        batch.schema(),
        Some(properties),
    )
    .unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

struct FlatVariant {
    ids: IdEncoding,
    company: TextEncoding,
    tags: TagEncoding,
    compression: Compression,
    row_group_rows: usize,
}

/// Writes `records` as a flat table split into `parts` part files (file names sort in order).
fn write_flat(dir: &Path, records: &[Record], variant: &FlatVariant, parts: usize) {
    let chunk = records.len().div_ceil(parts);
    for (part, slice) in records.chunks(chunk).enumerate() {
        let ids: Vec<&str> = slice.iter().map(|r| r.id.as_str()).collect();
        let columns = vec![
            ("conversation_id", id_array(&ids, variant.ids)),
            (
                "company",
                text_array(
                    slice
                        .iter()
                        .map(|r| r.company.as_ref().map(|c| c.1.as_str())),
                    variant.company,
                ),
            ),
            ("tags", tags_array(slice, variant.tags)),
            (
                "question",
                text_array(
                    slice.iter().map(|r| Some(r.id.as_str())),
                    TextEncoding::Plain,
                ),
            ),
        ];
        write_parquet(
            &dir.join(format!("part-{part:05}.parquet")),
            columns,
            variant.compression,
            variant.row_group_rows,
        );
    }
    std::fs::write(dir.join("_SUCCESS"), b"").unwrap();
    std::fs::write(dir.join(".part-00000.parquet.crc"), b"junk").unwrap();
}

#[test]
fn flat_tables_in_every_encoding_match_the_naive_filter() {
    let text = [
        TextEncoding::Plain,
        TextEncoding::Large,
        TextEncoding::Dictionary,
        TextEncoding::View,
    ];
    let ids = [
        IdEncoding::Text(TextEncoding::Plain),
        IdEncoding::Text(TextEncoding::Large),
        IdEncoding::Text(TextEncoding::Dictionary),
        IdEncoding::Text(TextEncoding::View),
        IdEncoding::Int32,
        IdEncoding::Int64,
    ];
    let tags = [
        TagEncoding::List,
        TagEncoding::LargeList,
        TagEncoding::Comma(TextEncoding::Plain),
        TagEncoding::Comma(TextEncoding::Dictionary),
    ];
    let codecs = [
        Compression::SNAPPY,
        Compression::ZSTD(ZstdLevel::default()),
        Compression::GZIP(GzipLevel::default()),
        Compression::LZ4,
        Compression::LZ4_RAW,
        Compression::UNCOMPRESSED,
    ];
    let records = flat_records(300, 0x5EED);
    for (n, id_encoding) in ids.iter().enumerate() {
        for (m, codec) in codecs.iter().enumerate() {
            let variant = FlatVariant {
                ids: *id_encoding,
                company: text[(n + m) % text.len()],
                tags: tags[(n + m) % tags.len()],
                compression: *codec,
                row_group_rows: [7, 64, 1000][m % 3],
            };
            let dir = tempfile::tempdir().unwrap();
            write_flat(dir.path(), &records, &variant, 1 + m % 3);
            let index = ConversationIndex::load(dir.path())
                .unwrap_or_else(|e| panic!("{e} for {:?} {:?}", id_encoding, codec));
            let numeric = matches!(id_encoding, IdEncoding::Int32 | IdEncoding::Int64);
            check_against_naive(&index, &records, numeric);
        }
    }
}

#[test]
fn a_single_flat_file_loads_and_details_work() {
    let records = flat_records(50, 9);
    let dir = tempfile::tempdir().unwrap();
    let variant = FlatVariant {
        ids: IdEncoding::Int64,
        company: TextEncoding::Plain,
        tags: TagEncoding::List,
        compression: Compression::SNAPPY,
        row_group_rows: 10,
    };
    write_flat(dir.path(), &records, &variant, 1);
    let index = ConversationIndex::load(&dir.path().join("part-00000.parquet")).unwrap();
    check_against_naive(&index, &records, true);
    let record = records
        .iter()
        .find(|r| r.company.is_some() && !r.tags.is_empty())
        .unwrap();
    let detail = index.conversation(&record.id).unwrap();
    assert_eq!(detail.company, record.company.as_ref().map(|c| c.1.clone()));
    assert_eq!(detail.question.as_deref(), Some(record.id.as_str()));
    assert_eq!(
        serde_json::to_value(&detail.id).unwrap(),
        json!(record.id.parse::<i64>().unwrap())
    );
}

// ------------------------------------------------------------ normalized layout

/// A normalized dataset: transcripts with runs of records, written with or without keys.
struct Normalized {
    records: Vec<Record>,
    /// (transcript id, title, type, company id, first record, record count)
    transcripts: Vec<(String, String, &'static str, String, usize, usize)>,
}

fn normalized_dataset(runs: usize, seed: u64) -> Normalized {
    let mut rng = TestRng(seed);
    let mut records = Vec::new();
    let mut transcripts = Vec::new();
    for run in 0..runs {
        let company = TEST_COMPANIES[rng.below(TEST_COMPANIES.len())];
        let company_id = format!(
            "c{}",
            TEST_COMPANIES.iter().position(|c| *c == company).unwrap()
        );
        let first = records.len();
        for _ in 0..1 + rng.below(6) {
            let tags = match rng.below(6) {
                0 => vec![],
                _ => vec![TEST_TAGS[rng.below(TEST_TAGS.len())].to_string()],
            };
            records.push(Record {
                id: format!("conv-{}", records.len()),
                company: Some((company_id.clone(), company.to_string())),
                tags,
            });
        }
        let anonymous = run % 3 == 1;
        let title = match anonymous {
            true => "Former Director at a Large Company".to_string(),
            false => format!("{company}, expert call {run}"),
        };
        transcripts.push((
            format!("t{run}"),
            title,
            "conversation",
            company_id.clone(),
            first,
            records.len() - first,
        ));
        if anonymous || run % 4 == 0 {
            transcripts.push((
                format!("m{run}"),
                format!("{company}, Q1 2024 Earnings Call"),
                "monologue",
                company_id,
                0,
                0,
            ));
        }
    }
    Normalized {
        records,
        transcripts,
    }
}

fn write_normalized(
    dir: &Path,
    data: &Normalized,
    explicit_keys: bool,
    text: TextEncoding,
    tag_ids: IdEncoding,
) {
    for table in ["company", "transcript", "conversation", "tag"] {
        std::fs::create_dir_all(dir.join(table)).unwrap();
    }
    let company_ids: Vec<String> = (0..TEST_COMPANIES.len()).map(|i| format!("c{i}")).collect();
    write_parquet(
        &dir.join("company/part-00000.parquet"),
        vec![
            (
                "id_company",
                text_array(company_ids.iter().map(|s| Some(s.as_str())), text),
            ),
            (
                "company_name",
                text_array(TEST_COMPANIES.iter().map(|s| Some(*s)), text),
            ),
            (
                "logo",
                text_array(TEST_COMPANIES.iter().map(|_| None), text),
            ),
        ],
        Compression::SNAPPY,
        1000,
    );
    let tag_numbers: Vec<String> = (1..=TEST_TAGS.len()).map(|n| n.to_string()).collect();
    let tag_number_refs: Vec<&str> = tag_numbers.iter().map(String::as_str).collect();
    write_parquet(
        &dir.join("tag/part-00000.parquet"),
        vec![
            (
                "tag_value",
                text_array(TEST_TAGS.iter().map(|s| Some(*s)), text),
            ),
            ("id_tag", id_array(&tag_number_refs, IdEncoding::Int64)),
        ],
        Compression::SNAPPY,
        1000,
    );
    let t = &data.transcripts;
    let mut transcript_columns = vec![
        (
            "id_transcript",
            text_array(t.iter().map(|t| Some(t.0.as_str())), text),
        ),
        (
            "title",
            text_array(t.iter().map(|t| Some(t.1.as_str())), text),
        ),
        (
            "transcript_type",
            text_array(t.iter().map(|t| Some(t.2)), text),
        ),
    ];
    if explicit_keys {
        transcript_columns.push((
            "id_company",
            text_array(t.iter().map(|t| Some(t.3.as_str())), text),
        ));
    }
    write_parquet(
        &dir.join("transcript/part-00000.parquet"),
        transcript_columns,
        Compression::SNAPPY,
        5,
    );
    write_conversations(dir, data, explicit_keys, text, tag_ids);
}

fn write_conversations(
    dir: &Path,
    data: &Normalized,
    explicit_keys: bool,
    text: TextEncoding,
    tag_ids: IdEncoding,
) {
    let r = &data.records;
    let mut sequence = vec![0.0; r.len()];
    let mut transcript_of = vec![""; r.len()];
    for (id, _, _, _, first, count) in &data.transcripts {
        for k in 0..*count {
            sequence[first + k] = (k + 1) as f64;
            transcript_of[first + k] = id.as_str();
        }
    }
    let tag_number = |rec: &Record| {
        rec.tags
            .first()
            .map(|t| (TEST_TAGS.iter().position(|x| x == t).unwrap() + 1) as i64)
    };
    let tag_column: ArrayRef = match tag_ids {
        IdEncoding::Int32 => Arc::new(Int32Array::from_iter(
            r.iter().map(|rec| tag_number(rec).map(|n| n as i32)),
        )),
        IdEncoding::Int64 => Arc::new(Int64Array::from_iter(r.iter().map(tag_number))),
        IdEncoding::Text(encoding) => {
            let texts: Vec<Option<String>> = r
                .iter()
                .map(|rec| tag_number(rec).map(|n| n.to_string()))
                .collect();
            text_array(texts.iter().map(|s| s.as_deref()), encoding)
        }
    };
    let mut columns = vec![
        (
            "id_conversation",
            text_array(r.iter().map(|rec| Some(rec.id.as_str())), text),
        ),
        ("question", text_array(r.iter().map(|_| Some("q")), text)),
        ("answer", text_array(r.iter().map(|_| None), text)),
        (
            "sequence_conversation",
            Arc::new(Float64Array::from(sequence)) as ArrayRef,
        ),
        ("id_tag", tag_column),
    ];
    if explicit_keys {
        columns.push((
            "id_transcript",
            text_array(transcript_of.iter().map(|s| Some(*s)), text),
        ));
    }
    let half = r.len() / 2;
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    for (part, (offset, len)) in [(0, half), (half, r.len() - half)].into_iter().enumerate() {
        let slice = batch.slice(offset, len);
        let schema = slice.schema();
        let columns: Vec<(&str, ArrayRef)> = schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .zip(slice.columns().iter().cloned())
            .collect();
        write_parquet(
            &dir.join(format!("conversation/part-{part:05}.parquet")),
            columns,
            Compression::ZSTD(ZstdLevel::default()),
            16,
        );
    }
}

#[test]
fn normalized_exports_with_and_without_keys_match_the_naive_filter() {
    let data = normalized_dataset(60, 77);
    let variants = [
        (false, TextEncoding::Plain, IdEncoding::Int32),
        (true, TextEncoding::Plain, IdEncoding::Int64),
        (
            false,
            TextEncoding::Dictionary,
            IdEncoding::Text(TextEncoding::Plain),
        ),
        (true, TextEncoding::Large, IdEncoding::Int32),
        (true, TextEncoding::View, IdEncoding::Int64),
    ];
    for (explicit, text, tag_ids) in variants {
        let dir = tempfile::tempdir().unwrap();
        write_normalized(dir.path(), &data, explicit, text, tag_ids);
        let index = ConversationIndex::load(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(index.stats().links_inferred, !explicit);
        check_against_naive(&index, &data.records, false);
        let detail = index.conversation("conv-0").unwrap();
        assert_eq!(
            (
                detail.transcript_id.as_deref(),
                detail.question.as_deref(),
                detail.answer
            ),
            (Some("t0"), Some("q"), None)
        );
    }
}

// ------------------------------------------------------------ broken inputs

fn load_error(path: &Path) -> String {
    let error = ConversationIndex::load(path).expect_err("load should fail");
    error.to_string()
}

#[test]
fn a_file_that_is_not_parquet_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("part-00000.parquet");
    std::fs::write(&file, b"id,company\n1,acme\n").unwrap();
    let message = load_error(dir.path());
    assert!(
        message.contains("part-00000.parquet") && message.contains("not a readable Parquet"),
        "{message}"
    );
}

#[test]
fn a_missing_column_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("flat.parquet");
    write_parquet(
        &file,
        vec![
            ("conversation_id", id_array(&["1"], IdEncoding::Int64)),
            ("company", text_array([Some("a")], TextEncoding::Plain)),
        ],
        Compression::SNAPPY,
        10,
    );
    let message = load_error(&file);
    assert!(
        message.contains("flat.parquet") && message.contains("`tags`"),
        "{message}"
    );
}

#[test]
fn a_column_of_the_wrong_type_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("flat.parquet");
    let columns = vec![
        ("conversation_id", id_array(&["1"], IdEncoding::Int64)),
        ("company", id_array(&["5"], IdEncoding::Int32)),
        ("tags", text_array([Some("a")], TextEncoding::Plain)),
    ];
    write_parquet(&file, columns, Compression::SNAPPY, 10);
    let message = load_error(&file);
    assert!(
        message.contains("flat.parquet")
            && message.contains("`company`")
            && message.contains("Int32"),
        "{message}"
    );
    let float_ids = vec![
        (
            "conversation_id",
            Arc::new(Float64Array::from(vec![1.5])) as ArrayRef,
        ),
        ("company", text_array([Some("a")], TextEncoding::Plain)),
        ("tags", text_array([Some("a")], TextEncoding::Plain)),
    ];
    write_parquet(&file, float_ids, Compression::SNAPPY, 10);
    assert!(load_error(&file).contains("`conversation_id`"));
}

#[test]
fn runs_that_do_not_line_up_are_refused() {
    let mut data = normalized_dataset(10, 5);
    let last = data
        .transcripts
        .iter()
        .rposition(|t| t.2 == "conversation")
        .unwrap();
    data.transcripts[last].2 = "monologue";
    let dir = tempfile::tempdir().unwrap();
    write_normalized(
        dir.path(),
        &data,
        false,
        TextEncoding::Plain,
        IdEncoding::Int32,
    );
    let message = load_error(dir.path());
    assert!(
        message.contains("conversation") && message.contains("runs") && message.contains("line up"),
        "{message}"
    );

    let mut data = normalized_dataset(10, 5);
    data.transcripts.push((
        "extra".into(),
        "Acme Corp call".into(),
        "conversation",
        "c2".into(),
        0,
        0,
    ));
    let dir = tempfile::tempdir().unwrap();
    write_normalized(
        dir.path(),
        &data,
        false,
        TextEncoding::Plain,
        IdEncoding::Int32,
    );
    assert!(load_error(dir.path()).contains("line up"));
}

#[test]
fn an_unknown_tag_id_is_refused_with_its_column() {
    let data = normalized_dataset(5, 3);
    let dir = tempfile::tempdir().unwrap();
    write_normalized(
        dir.path(),
        &data,
        true,
        TextEncoding::Plain,
        IdEncoding::Int32,
    );
    write_parquet(
        &dir.path().join("tag/part-00000.parquet"),
        vec![
            ("tag_value", text_array([Some("x")], TextEncoding::Plain)),
            ("id_tag", id_array(&["99"], IdEncoding::Int64)),
        ],
        Compression::SNAPPY,
        10,
    );
    let message = load_error(dir.path());
    assert!(
        message.contains("`id_tag`") && message.contains("unknown tag id"),
        "{message}"
    );
}

#[test]
fn missing_paths_and_empty_folders_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        ConversationIndex::load(&dir.path().join("absent")),
        Err(LoadError::Io { .. })
    ));
    assert!(matches!(
        ConversationIndex::load(dir.path()),
        Err(LoadError::NoData { .. })
    ));
}

// ------------------------------------------------------------ generator

#[test]
fn generated_datasets_are_deterministic_and_load() {
    let dir = tempfile::tempdir().unwrap();
    let options = |name: &str| DatagenOptions {
        out: dir.path().join(name),
        conversations: 5_000,
        seed: 11,
    };
    let summary = datagen::generate(&options("a")).unwrap();
    datagen::generate(&options("b")).unwrap();
    assert_eq!(summary.conversations, 5_000);
    for table in ["company", "tag", "transcript", "conversation"] {
        let read = |run: &str| {
            std::fs::read(
                dir.path()
                    .join(run)
                    .join(table)
                    .join("part-00000-confab-c000.snappy.parquet"),
            )
            .unwrap()
        };
        assert_eq!(read("a"), read("b"), "{table} differs between runs");
    }
    let index = ConversationIndex::load(&dir.path().join("a")).unwrap();
    assert_eq!(index.len(), 5_000);
    assert!(!index.stats().links_inferred);
    let companies = index.companies();
    let largest = companies.iter().map(|c| c.conversations).max().unwrap();
    let smallest = companies.iter().map(|c| c.conversations).min().unwrap();
    assert!(
        largest > 10 * smallest.max(1),
        "skewed sizes: {largest} vs {smallest}"
    );
}

#[test]
fn the_default_dataset_answers_the_example_query() {
    let dir = tempfile::tempdir().unwrap();
    let path = datagen::default_dataset(dir.path()).unwrap();
    let index = ConversationIndex::load(&path).unwrap();
    assert_eq!(index.len() as u64, datagen::DEFAULT_CONVERSATIONS);
    let answer = index.query(&query("company=microsoft&tags=competition,orientation"));
    assert!(answer.total > 0 && !answer.conversation_ids.is_empty());
    assert_eq!(
        datagen::default_dataset(dir.path()).unwrap(),
        path,
        "reused"
    );
}
