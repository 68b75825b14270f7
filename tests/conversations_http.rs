//! The conversations API through HTTP: the sample dataset's figures, parameter errors,
//! methods, details, companies and tags, against the real server on a real socket.

mod support;

use std::path::PathBuf;

use support::{assert_problem, config, get, request, Proxy};

/// The real sample (a Spark export) shipped beside the repository.
fn sample() -> Option<PathBuf> {
    let path = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/data/aura-sample"
    ));
    if path.is_dir() {
        Some(path)
    } else {
        eprintln!("skipped: {} is absent", path.display());
        None
    }
}

fn serve_sample() -> Option<Proxy> {
    let mut config = config(None);
    config.data = Some(sample()?);
    Some(Proxy::start(config))
}

fn total(proxy: &Proxy, query: &str) -> u64 {
    let response = proxy.exchange(&get(&format!("/api/conversations{query}")));
    assert_eq!(response.status, 200, "{query}: {}", response.text());
    let body = response.json();
    body["total"].as_u64().expect("total is a number")
}

#[test]
fn sample_figures_through_http() {
    let Some(proxy) = serve_sample() else { return };
    assert_eq!(
        total(&proxy, "?company=microsoft&tags=competition,orientation"),
        27
    );
    assert_eq!(total(&proxy, "?company=microsoft"), 73);
    assert_eq!(total(&proxy, ""), 218);
    assert_eq!(
        total(&proxy, "?company=MICROSOFT&tags=%20Competition%20,,"),
        total(&proxy, "?company=microsoft&tags=competition")
    );
    assert_eq!(total(&proxy, "?company=no-such-company"), 0);
}

#[test]
fn the_answer_has_exactly_the_documented_members() {
    let Some(proxy) = serve_sample() else { return };
    let response = proxy.exchange(&get(
        "/api/conversations?company=microsoft&tags=competition,orientation&per_page=10&page=2",
    ));
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("content-type").as_deref(),
        Some("application/json")
    );
    let body = response.json();
    let members: Vec<&String> = body.as_object().expect("an object").keys().collect();
    assert_eq!(members, ["conversation_ids", "total", "page", "per_page"]);
    assert_eq!(body["page"], 2);
    assert_eq!(body["per_page"], 10);
    assert_eq!(body["conversation_ids"].as_array().expect("ids").len(), 10);
    let past_the_end = proxy.exchange(&get("/api/conversations?company=microsoft&page=99"));
    let past_the_end = past_the_end.json();
    assert_eq!(
        past_the_end["conversation_ids"].as_array().map(Vec::len),
        Some(0)
    );
    assert_eq!(past_the_end["total"], 73);
}

#[test]
fn bad_values_name_their_parameter() {
    let Some(proxy) = serve_sample() else { return };
    for (query, parameter) in [
        ("page=0", "page"),
        ("page=abc", "page"),
        ("per_page=5000", "per_page"),
        ("per_page=0", "per_page"),
        ("match=some", "match"),
    ] {
        let response = proxy.exchange(&get(&format!("/api/conversations?{query}")));
        let problem = assert_problem(&response, 400, "bad-request");
        let detail = problem["detail"].as_str().expect("detail");
        assert!(detail.contains(parameter), "{query}: {detail}");
    }
    assert_eq!(total(&proxy, "?unknown=1&company=microsoft"), 73);
}

#[test]
fn only_get_and_head_are_allowed() {
    let Some(proxy) = serve_sample() else { return };
    for path in ["/api/conversations", "/api/companies", "/api/tags"] {
        let response = proxy.exchange(&request("POST", path, &[("Content-Length", "0")], b""));
        assert_problem(&response, 405, "method-not-allowed");
        assert_eq!(response.header("allow").as_deref(), Some("GET, HEAD"));
    }
}

#[test]
fn details_companies_and_tags() {
    let Some(proxy) = serve_sample() else { return };
    let page = proxy
        .exchange(&get("/api/conversations?company=microsoft&per_page=1"))
        .json();
    let id = page["conversation_ids"][0]
        .as_str()
        .expect("a string id")
        .to_owned();
    let detail = proxy.exchange(&get(&format!("/api/conversations/{id}")));
    assert_eq!(detail.status, 200, "{}", detail.text());
    let detail = detail.json();
    assert_eq!(detail["id"], id.as_str());
    assert!(detail["company"]
        .as_str()
        .expect("company")
        .starts_with("Microsoft"));
    assert!(detail["question"].is_string());

    let missing = proxy.exchange(&get("/api/conversations/no-such-id"));
    assert_problem(&missing, 404, "not-found");

    let companies = proxy.exchange(&get("/api/companies")).json();
    let microsoft = companies
        .as_array()
        .expect("a list")
        .iter()
        .find(|company| company["key"] == "microsoft")
        .expect("microsoft is listed");
    assert_eq!(microsoft["conversations"], 73);

    let tags = proxy.exchange(&get("/api/tags")).json();
    let counted: u64 = tags
        .as_array()
        .expect("a list")
        .iter()
        .map(|tag| tag["conversations"].as_u64().expect("count"))
        .sum();
    assert!(
        counted >= 218,
        "every conversation has at least one tag: {counted}"
    );
}

#[test]
fn the_default_dataset_answers_the_example_query() {
    let proxy = Proxy::start(config(None));
    let response = proxy.exchange(&get(
        "/api/conversations?company=microsoft&tags=competition,orientation",
    ));
    assert_eq!(response.status, 200);
    let body = response.json();
    assert!(body["total"].as_u64().expect("total") > 0, "{body}");
}
