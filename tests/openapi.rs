//! The API description as a client gets it: `/openapi.json` from a running confab parses as
//! OpenAPI 3.1, describes every one of confab's routes with its methods, resolves every
//! `$ref`, gives error responses as problem documents, and has examples that satisfy their
//! schemas. `/docs` is a self-contained HTML page.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::{json, Value};

/// Every route confab answers itself, with the methods the document must describe.
const ROUTES: [(&str, &[&str]); 13] = [
    ("/healthz", &["get", "head"]),
    ("/metrics", &["get"]),
    ("/api/stats", &["get"]),
    ("/api/stats/reset", &["post"]),
    ("/dashboard", &["get"]),
    ("/docs", &["get"]),
    ("/openapi.json", &["get"]),
    ("/api/conversations", &["get"]),
    ("/api/conversations/{id}", &["get"]),
    ("/api/companies", &["get"]),
    ("/api/tags", &["get"]),
    ("/api/jobs", &["get", "post"]),
    ("/api/jobs/{id}", &["get", "delete"]),
];

const HTTP_METHODS: [&str; 8] = [
    "get", "head", "post", "put", "patch", "delete", "options", "trace",
];

struct Fetched {
    status: u16,
    content_type: String,
    body: String,
}

/// One HTTP/1.1 GET over a fresh connection, read until the server closes it.
fn get(addr: SocketAddr, target: &str) -> Fetched {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    let request =
        format!("GET {target} HTTP/1.1\r\nHost: confab.test\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).expect("send request");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read response");
    let text = String::from_utf8(raw).expect("UTF-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("a header section");
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .expect("a status line");
    let content_type = lines
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("content-type"))
        .map(|(_, value)| value.trim().to_owned())
        .unwrap_or_default();
    Fetched {
        status,
        content_type,
        body: body.to_owned(),
    }
}

/// Fetches `/openapi.json` and `/docs` from a confab started for the test.
fn fetch_both() -> (Fetched, Fetched) {
    let state = tempfile::tempdir().expect("state dir");
    let mut config = confab::config::ServeConfig::for_tests();
    config.state_dir = state.path().to_path_buf();
    let server = confab::server::start(config).expect("start confab");
    let addr = server.local_addr();
    let fetched = (get(addr, "/openapi.json"), get(addr, "/docs"));
    server.shutdown().expect("shut down");
    fetched
}

/// Resolves a local `$ref` (`#/components/...`) in `document`.
fn resolve<'a>(document: &'a Value, reference: &str) -> Option<&'a Value> {
    document.pointer(reference.strip_prefix('#')?)
}

/// Every `$ref` in `value`, with where it was found.
fn refs(value: &Value, at: &str, found: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                if let ("$ref", Value::String(reference)) = (key.as_str(), child) {
                    found.push((at.to_owned(), reference.clone()));
                }
                refs(child, &format!("{at}/{key}"), found);
            }
        }
        Value::Array(items) => {
            for (index, child) in items.iter().enumerate() {
                refs(child, &format!("{at}/{index}"), found);
            }
        }
        _ => {}
    }
}

/// Checks `instance` against `schema`, whose `$ref`s point into `document`'s components.
fn check_example(document: &Value, schema: &Value, instance: &Value, at: &str) -> Vec<String> {
    let mut rooted = match schema {
        Value::Object(map) if !map.contains_key("$ref") => schema.clone(),
        _ => json!({ "allOf": [schema] }),
    };
    rooted["components"] = document["components"].clone();
    let validator = match jsonschema::validator_for(&rooted) {
        Ok(validator) => validator,
        Err(error) => return vec![format!("{at}: the schema does not compile: {error}")],
    };
    validator
        .iter_errors(instance)
        .map(|error| format!("{at}: example {instance}: {error}"))
        .collect()
}

/// The examples of a media type or parameter object: `example` and every `examples` value.
fn examples_of(object: &Value) -> Vec<&Value> {
    let mut found: Vec<&Value> = object.get("example").into_iter().collect();
    if let Some(Value::Object(named)) = object.get("examples") {
        found.extend(named.values().filter_map(|example| example.get("value")));
    }
    found
}

fn operations(document: &Value) -> Vec<(String, String, &Value)> {
    let mut found = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for method in HTTP_METHODS {
            if let Some(operation) = item.get(method) {
                found.push((path.clone(), method.to_owned(), operation));
            }
        }
    }
    found
}

#[test]
fn serves_a_valid_openapi_31_document_and_a_self_contained_docs_page() {
    let (spec, docs) = fetch_both();

    assert_eq!(spec.status, 200, "{}", spec.body);
    assert!(
        spec.content_type.starts_with("application/json"),
        "{}",
        spec.content_type
    );
    let parsed = oas3::from_json(&spec.body).expect("parses as an OpenAPI 3.1 document");
    let version = parsed
        .validate_version()
        .expect("a supported OpenAPI version");
    assert_eq!((version.major, version.minor), (3, 1));
    assert!(parsed.operations().count() >= ROUTES.len());
    let document: Value = serde_json::from_str(&spec.body).expect("JSON");
    assert_eq!(
        document,
        serde_json::to_value(confab::openapi::document()).expect("value")
    );

    check_routes(&document);
    check_refs(&document);
    check_problem_responses(&document);
    check_examples(&document);

    assert_eq!(docs.status, 200, "{}", docs.body);
    assert!(
        docs.content_type.starts_with("text/html"),
        "{}",
        docs.content_type
    );
    assert!(
        docs.body.contains("/openapi.json"),
        "the page loads the document"
    );
    for scheme in ["http://", "https://", "//cdn", "src=\"//"] {
        assert!(
            !docs.body.contains(scheme),
            "/docs refers to another host ({scheme})"
        );
    }
}

fn check_routes(document: &Value) {
    let paths = document["paths"].as_object().expect("paths");
    for (route, methods) in ROUTES {
        let item = paths
            .get(route)
            .unwrap_or_else(|| panic!("{route} is not described"));
        for method in methods {
            let operation = &item[*method];
            assert!(operation.is_object(), "{method} {route} is not described");
            assert!(
                operation["summary"].is_string(),
                "{method} {route} has no summary"
            );
            assert!(
                operation["tags"][0].is_string(),
                "{method} {route} has no tag"
            );
            let responses = &operation["responses"];
            assert!(
                responses["200"].is_object() || responses["202"].is_object(),
                "{method} {route} has no 200 or 202"
            );
        }
    }
    assert_eq!(paths.len(), ROUTES.len(), "no upstream paths are described");
    let description = document["info"]["description"].as_str().unwrap_or_default();
    assert!(
        description.contains("upstream"),
        "info says what is proxied"
    );
    let reset = &document["paths"]["/api/stats/reset"]["post"];
    assert_eq!(reset["security"], json!([{ "bearer": [] }]));
    let scheme = &document["components"]["securitySchemes"]["bearer"];
    assert_eq!(
        (&scheme["type"], &scheme["scheme"]),
        (&json!("http"), &json!("bearer"))
    );

    let mut ids: Vec<&str> = operations(document)
        .iter()
        .map(|(path, method, operation)| {
            operation["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path} has no operationId"))
        })
        .collect();
    let count = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), count, "operation ids are unique");
}

fn check_refs(document: &Value) {
    let mut found = Vec::new();
    refs(document, "#", &mut found);
    assert!(!found.is_empty());
    for (at, reference) in found {
        assert!(
            resolve(document, &reference).is_some(),
            "{at}: $ref {reference} does not resolve"
        );
    }
}

/// Every operation that can fail answers its failures with problem documents.
fn check_problem_responses(document: &Value) {
    let always_succeed = [
        "/healthz",
        "/dashboard",
        "/docs",
        "/openapi.json",
        "/api/companies",
        "/api/tags",
    ];
    for (path, method, operation) in operations(document) {
        let responses = operation["responses"].as_object().expect("responses");
        let problems: Vec<(&String, &Value)> = responses
            .iter()
            .filter(|(status, _)| status.starts_with('4') || status.starts_with('5'))
            .collect();
        if always_succeed.contains(&path.as_str()) {
            continue;
        }
        assert!(
            !problems.is_empty(),
            "{method} {path} has no error response"
        );
        for (status, response) in problems {
            let media = &response["content"]["application/problem+json"];
            assert_eq!(
                media["schema"]["$ref"], "#/components/schemas/Problem",
                "{method} {path} {status}: not a problem document"
            );
            let examples = examples_of(media);
            assert!(!examples.is_empty(), "{method} {path} {status}: no example");
            for example in examples {
                assert_eq!(example["status"].as_u64(), status.parse().ok());
                let type_uri = example["type"].as_str().unwrap_or_default();
                assert!(type_uri.starts_with(confab::problem::PROBLEM_TYPE_PREFIX));
            }
        }
    }
    if let Some(params) = document["paths"]["/api/stats"]["get"]["parameters"].as_array() {
        let names: Vec<&str> = params.iter().filter_map(|p| p["name"].as_str()).collect();
        assert_eq!(names, ["from", "to"]);
    }
}

/// Examples of media types, parameters and component schemas satisfy their schemas, and
/// every component schema is a valid JSON Schema 2020-12 schema.
fn check_examples(document: &Value) {
    let mut errors = Vec::new();
    let mut checked = 0;
    for (path, method, operation) in operations(document) {
        for parameter in operation["parameters"].as_array().into_iter().flatten() {
            let at = format!("{method} {path} parameter {}", parameter["name"]);
            for example in examples_of(parameter) {
                errors.extend(check_example(document, &parameter["schema"], example, &at));
                checked += 1;
            }
        }
        for (status, response) in operation["responses"].as_object().expect("responses") {
            for (media_type, media) in response["content"].as_object().into_iter().flatten() {
                let at = format!("{method} {path} {status} {media_type}");
                for example in examples_of(media) {
                    errors.extend(check_example(document, &media["schema"], example, &at));
                    checked += 1;
                }
            }
        }
    }
    for (name, schema) in document["components"]["schemas"]
        .as_object()
        .expect("schemas")
    {
        if let Err(error) = jsonschema::meta::validate(schema) {
            errors.push(format!("schema {name} is not valid JSON Schema: {error}"));
        }
        if let Some(example) = schema.get("example") {
            let reference = json!({ "$ref": format!("#/components/schemas/{name}") });
            errors.extend(check_example(document, &reference, example, name));
            checked += 1;
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    assert!(checked >= 20, "only {checked} examples were checked");
}

/// Real job documents (queued, finished with each kind of result, listed) fit the `Job` and
/// `JobList` schemas the document states.
#[test]
fn job_documents_fit_their_schemas() {
    let mut config = support::config(None);
    config.admin_token = Some("openapi-token".into());
    let proxy = support::Proxy::start(config);
    let document = serde_json::to_value(confab::openapi::document()).expect("value");
    let schema = |name: &str| json!({ "$ref": format!("#/components/schemas/{name}") });
    let mut errors = Vec::new();
    let submissions = [
        json!({"kind": "tag-stats"}),
        json!({"kind": "keyword-stats", "params": {"words": ["the"]}}),
        json!({"kind": "transcript-summary", "params": {"company": "tesla"}}),
        json!({"kind": "reload"}),
    ];
    for submission in submissions {
        let body = submission.to_string();
        let headers = [("authorization", "Bearer openapi-token")];
        let queued = proxy.exchange(&support::request(
            "POST",
            "/api/jobs",
            &headers,
            body.as_bytes(),
        ));
        assert_eq!(queued.status, 202, "{}", queued.text());
        errors.extend(check_example(
            &document,
            &schema("JobSubmission"),
            &submission,
            "submission",
        ));
        errors.extend(check_example(
            &document,
            &schema("Job"),
            &queued.json(),
            "queued",
        ));
        let id = queued.json()["id"].as_u64().expect("id");
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let finished = loop {
            let job = proxy
                .exchange(&support::get(&format!("/api/jobs/{id}")))
                .json();
            if job["status"] != "queued" && job["status"] != "running" {
                break job;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "job {id} stuck: {job}"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(finished["status"], "succeeded", "{finished}");
        errors.extend(check_example(
            &document,
            &schema("Job"),
            &finished,
            "finished",
        ));
    }
    let listed = proxy.exchange(&support::get("/api/jobs")).json();
    errors.extend(check_example(
        &document,
        &schema("JobList"),
        &listed,
        "listed",
    ));
    assert!(errors.is_empty(), "{errors:#?}");
}
