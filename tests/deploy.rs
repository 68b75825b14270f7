//! The deployment files in deploy/ against the code: every YAML file parses (every document of
//! it), the Grafana dashboard parses, the Kubernetes probes ask `/healthz` on the port confab
//! listens on, every `CONFAB_*` variable they set is one the binary reads, and every metric
//! that the dashboard, the alerting rules or the autoscaler query is one a running confab
//! exports (scraped from its `/metrics` after traffic that makes every family appear).

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::Instant;

use promql_parser::label::METRIC_NAME;
use promql_parser::parser::{self, Expr};
use promql_parser::util::{walk_expr, ExprVisitor};
use serde_json::Value;
use yaml_rust2::{Yaml, YamlLoader};

use support::cli::{help_flags, SUBCOMMANDS};
use support::stats::{fetch, metrics, POLL_PAUSE, STATS_DEADLINE};
use support::upstream::write_all;
use support::{After, Proxy, Upstream};

/// The files the deployment documentation promises; the checks below must find each.
const EXPECTED_FILES: [&str; 13] = [
    "confab.service",
    "Containerfile",
    "README.md",
    "grafana/confab-dashboard.json",
    "kubernetes/configmap.yaml",
    "kubernetes/deployment.yaml",
    "kubernetes/hpa.yaml",
    "kubernetes/kustomization.yaml",
    "kubernetes/pdb.yaml",
    "kubernetes/service.yaml",
    "kubernetes/servicemonitor.yaml",
    "prometheus/confab-rules.yml",
    "prometheus/prometheus.yml",
];

/// Series Prometheus itself makes for every target; alerting rules may use them, the
/// dashboard may not (it shows only what confab exports).
const SCRAPE_SERIES: [&str; 1] = ["up"];

/// What Grafana's interval variables are replaced with before a query is parsed.
const GRAFANA_INTERVAL: &str = "5m";

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

/// Every file under deploy/, relative to it.
fn deploy_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, files: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("read deploy/") {
            let path = entry.expect("deploy/ entry").path();
            if path.is_dir() {
                walk(&path, files);
            } else {
                files.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(&deploy_dir(), &mut files);
    files.sort();
    files
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|error| panic!("read {}: {error}", path.display()))
}

fn is_yaml(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|ext| ext.to_str()),
        Some("yaml" | "yml")
    )
}

/// Every document of a YAML file; panics if any does not parse or is not a mapping.
fn yaml_documents(path: &Path) -> Vec<Yaml> {
    let documents = YamlLoader::load_from_str(&read(path))
        .unwrap_or_else(|error| panic!("{} is not valid YAML: {error}", path.display()));
    assert!(!documents.is_empty(), "{} has no document", path.display());
    for (index, document) in documents.iter().enumerate() {
        assert!(
            document.as_hash().is_some(),
            "document {index} of {} is not a mapping: {document:?}",
            path.display()
        );
    }
    documents
}

fn dashboard() -> Value {
    let path = deploy_dir().join("grafana/confab-dashboard.json");
    serde_json::from_str(&read(&path)).expect("the Grafana dashboard is valid JSON")
}

// === Files parse ===

#[test]
fn every_promised_file_is_there() {
    let files = deploy_files();
    for expected in EXPECTED_FILES {
        assert!(
            files.contains(&deploy_dir().join(expected)),
            "deploy/{expected} is missing; found {files:?}"
        );
    }
}

#[test]
fn every_yaml_file_parses() {
    let yaml_files: Vec<PathBuf> = deploy_files().into_iter().filter(|p| is_yaml(p)).collect();
    assert!(yaml_files.len() >= 9, "YAML files found: {yaml_files:?}");
    for path in &yaml_files {
        yaml_documents(path);
    }
}

#[test]
fn yaml_files_with_several_documents_parse_every_one() {
    let text = "a: 1\n---\nb: [1, 2]\n---\nc: {d: e}\n";
    assert_eq!(YamlLoader::load_from_str(text).expect("parses").len(), 3);
    assert!(YamlLoader::load_from_str("a: 1\n---\nb: [1, 2\n").is_err());
}

#[test]
fn the_grafana_dashboard_parses_and_has_panels() {
    let dashboard = dashboard();
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(panels.len() >= 8, "dashboard panels: {}", panels.len());
    assert!(!dashboard_queries(&dashboard).is_empty());
}

// === Kubernetes ===

/// The confab container of the Deployment.
fn deployment_container() -> Yaml {
    let documents = yaml_documents(&deploy_dir().join("kubernetes/deployment.yaml"));
    let deployment = documents
        .iter()
        .find(|document| document["kind"].as_str() == Some("Deployment"))
        .expect("deployment.yaml has a Deployment");
    let containers = deployment["spec"]["template"]["spec"]["containers"]
        .as_vec()
        .expect("containers");
    containers
        .iter()
        .find(|container| container["name"].as_str() == Some("confab"))
        .expect("a container named confab")
        .clone()
}

/// The value of an `env` entry of a container.
fn container_env(container: &Yaml, name: &str) -> Option<String> {
    container["env"]
        .as_vec()?
        .iter()
        .find(|entry| entry["name"].as_str() == Some(name))
        .and_then(|entry| entry["value"].as_str().map(str::to_owned))
}

#[test]
fn kubernetes_probes_ask_healthz_on_the_port_confab_listens_on() {
    let container = deployment_container();
    let listen = container_env(&container, "CONFAB_LISTEN").expect("CONFAB_LISTEN is set");
    let port: i64 = listen
        .rsplit(':')
        .next()
        .and_then(|port| port.parse().ok())
        .expect("CONFAB_LISTEN has a port");
    let http = container["ports"]
        .as_vec()
        .expect("ports")
        .iter()
        .find(|entry| entry["name"].as_str() == Some("http"))
        .expect("a port named http")
        .clone();
    assert_eq!(http["containerPort"].as_i64(), Some(port));
    for probe in ["startupProbe", "readinessProbe", "livenessProbe"] {
        let get = &container[probe]["httpGet"];
        assert_eq!(get["path"].as_str(), Some("/healthz"), "{probe} path");
        assert_eq!(get["port"].as_str(), Some("http"), "{probe} port");
    }
}

/// Every `CONFAB_*` name in a text.
fn confab_variables(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (at, _) in text.match_indices("CONFAB_") {
        let name: String = text[at..]
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        // `CONFAB_<FLAG>` in prose names no variable.
        if name.len() > "CONFAB_".len() {
            found.insert(name);
        }
    }
    found
}

#[test]
fn every_confab_variable_in_deploy_is_one_the_binary_reads() {
    let known: BTreeSet<String> = SUBCOMMANDS
        .iter()
        .flat_map(|subcommand| help_flags(subcommand))
        .filter_map(|flag| flag.env)
        .collect();
    let mut used = BTreeSet::new();
    for path in deploy_files() {
        used.extend(confab_variables(&read(&path)));
    }
    assert!(used.contains("CONFAB_LISTEN"), "variables found: {used:?}");
    let unknown: Vec<&String> = used.difference(&known).collect();
    assert!(
        unknown.is_empty(),
        "deploy/ sets variables confab does not read: {unknown:?} (known: {known:?})"
    );
}

// === Metric names in queries ===

/// Replaces Grafana's variables (`$__rate_interval`, `$job`, `${instance}`) so a query parses
/// as PromQL: interval variables become a duration, the others a regex matching anything
/// (they are only used inside label matchers).
fn substitute_grafana_variables(query: &str) -> String {
    let mut out = String::with_capacity(query.len());
    let mut rest = query;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, consumed) = match after.strip_prefix('{') {
            Some(braced) => {
                let end = braced.find('}').expect("closed ${...}");
                (&braced[..end], end + 2)
            }
            None => {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..end], end)
            }
        };
        out.push_str(if name.starts_with("__") {
            GRAFANA_INTERVAL
        } else {
            ".*"
        });
        rest = &after[consumed..];
    }
    out.push_str(rest);
    out
}

/// Collects the metric name of every selector of an expression.
#[derive(Default)]
struct MetricNames {
    names: BTreeSet<String>,
    unnamed: Vec<String>,
}

impl MetricNames {
    fn selector(&mut self, selector: &promql_parser::parser::VectorSelector) {
        let by_label = selector
            .matchers
            .matchers
            .iter()
            .find(|matcher| matcher.name == METRIC_NAME)
            .map(|matcher| matcher.value.clone());
        match selector.name.clone().or(by_label) {
            Some(name) => {
                self.names.insert(name);
            }
            None => self.unnamed.push(format!("{selector}")),
        }
    }
}

impl ExprVisitor for MetricNames {
    type Error = ();

    fn pre_visit(&mut self, expr: &Expr) -> Result<bool, ()> {
        match expr {
            Expr::VectorSelector(selector) => self.selector(selector),
            Expr::MatrixSelector(matrix) => self.selector(&matrix.vs),
            _ => {}
        }
        Ok(true)
    }
}

/// The metric names a PromQL query selects; panics if it does not parse or selects a series
/// without naming its metric.
fn metric_names(query: &str, context: &str) -> BTreeSet<String> {
    let promql = substitute_grafana_variables(query);
    let expr = parser::parse(&promql)
        .unwrap_or_else(|error| panic!("{context}: not PromQL ({error}): {promql}"));
    let mut names = MetricNames::default();
    walk_expr(&mut names, &expr).expect("walk the query");
    assert!(
        names.unnamed.is_empty(),
        "{context}: selectors without a metric name: {:?}",
        names.unnamed
    );
    names.names
}

/// The metric names in `metric` of a Grafana `label_values(metric, label)` variable query.
fn label_values_metric(query: &str, context: &str) -> BTreeSet<String> {
    let inner = query
        .trim()
        .strip_prefix("label_values(")
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{context}: unsupported variable query {query:?}"));
    match inner.rfind(',') {
        Some(comma) => metric_names(&inner[..comma], context),
        None => BTreeSet::new(),
    }
}

/// Every query of the dashboard with where it is: `expr` of every panel target, and the
/// queries of `query` variables.
fn dashboard_queries(dashboard: &Value) -> Vec<(String, String)> {
    fn walk(value: &Value, path: &str, found: &mut Vec<(String, String)>) {
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    let here = format!("{path}.{key}");
                    match (key.as_str(), child) {
                        ("expr", Value::String(expr)) => found.push((here, expr.clone())),
                        _ => walk(child, &here, found),
                    }
                }
            }
            Value::Array(items) => {
                for (index, child) in items.iter().enumerate() {
                    walk(child, &format!("{path}[{index}]"), found);
                }
            }
            _ => {}
        }
    }
    let mut found = Vec::new();
    walk(&dashboard["panels"], "panels", &mut found);
    found
}

/// The metric names the dashboard's panels and variables query.
fn dashboard_metric_names() -> BTreeSet<String> {
    let dashboard = dashboard();
    let mut names = BTreeSet::new();
    for (place, query) in dashboard_queries(&dashboard) {
        names.extend(metric_names(&query, &format!("dashboard {place}")));
    }
    let variables = dashboard["templating"]["list"]
        .as_array()
        .expect("templating");
    for variable in variables.iter().filter(|v| v["type"] == "query") {
        let query = variable["query"]["query"]
            .as_str()
            .or_else(|| variable["query"].as_str())
            .expect("a variable's query");
        let context = format!("dashboard variable {}", variable["name"]);
        names.extend(label_values_metric(query, &context));
    }
    names
}

/// The metric names of every `expr` of the Prometheus rule files, less [`SCRAPE_SERIES`].
fn rule_metric_names() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let rule_files = deploy_files()
        .into_iter()
        .filter(|path| is_yaml(path) && path.to_string_lossy().contains("rules"));
    for path in rule_files {
        for document in yaml_documents(&path) {
            for group in document["groups"].as_vec().expect("groups") {
                for rule in group["rules"].as_vec().expect("rules") {
                    let expr = rule["expr"].as_str().expect("a rule's expr");
                    names.extend(metric_names(expr, &path.display().to_string()));
                }
            }
        }
    }
    names.retain(|name| !SCRAPE_SERIES.contains(&name.as_str()));
    names
}

/// The metric names of the HorizontalPodAutoscaler's pods/object/external metrics, if any.
fn autoscaler_metric_names() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for document in yaml_documents(&deploy_dir().join("kubernetes/hpa.yaml")) {
        for metric in document["spec"]["metrics"].as_vec().expect("metrics") {
            for source in ["pods", "object", "external"] {
                if let Some(name) = metric[source]["metric"]["name"].as_str() {
                    names.insert(name.to_owned());
                }
            }
        }
    }
    names
}

/// The names of the series in a Prometheus text exposition (histograms give `_bucket`, `_sum`
/// and `_count`); panics unless the text parses as Prometheus text.
fn exported_series_names(text: &str) -> BTreeSet<String> {
    prometheus_parse::Scrape::parse(text.lines().map(|line| Ok(line.to_owned())))
        .expect("/metrics parses as Prometheus text");
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            line.split(['{', ' '])
                .next()
                .expect("a sample line starts with its name")
                .to_owned()
        })
        .collect()
}

/// An upstream that answers `/broken/...` by resetting the connection (confab answers 502 and
/// counts an upstream error) and anything else with 200.
fn upstream_with_a_broken_route() -> Upstream {
    Upstream::start(|request, stream| {
        if request.target.starts_with("/broken") {
            return After::Reset;
        }
        let response =
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
        match write_all(stream, &[response]) {
            Ok(()) => After::KeepAlive,
            Err(_) => After::Close,
        }
    })
}

/// Scrapes `/metrics` until every name in `wanted` is exported (workers publish once a
/// second) or the deadline passes; returns the last scrape's names.
fn scrape_until_exported(proxy: &Proxy, wanted: &BTreeSet<String>) -> BTreeSet<String> {
    let deadline = Instant::now() + STATS_DEADLINE;
    loop {
        let exported = exported_series_names(&metrics(proxy.addr()));
        if wanted.is_subset(&exported) || Instant::now() >= deadline {
            return exported;
        }
        thread::sleep(POLL_PAUSE);
    }
}

#[test]
fn every_metric_the_deploy_files_query_is_one_confab_exports() {
    let upstream = upstream_with_a_broken_route();
    let proxy = Proxy::to(&upstream);
    assert_eq!(fetch(proxy.addr(), "/categories/MLA1").status, 200);
    assert_eq!(fetch(proxy.addr(), "/broken/1").status, 502);
    assert_eq!(fetch(proxy.addr(), "/healthz").status, 200);

    let mut queried = dashboard_metric_names();
    assert!(
        queried.contains("confab_proxy_requests_total"),
        "dashboard metrics: {queried:?}"
    );
    queried.extend(rule_metric_names());
    queried.extend(autoscaler_metric_names());
    let exported = scrape_until_exported(&proxy, &queried);
    let missing: Vec<&String> = queried.difference(&exported).collect();
    assert!(
        missing.is_empty(),
        "deploy/ queries metrics confab does not export: {missing:?}\nexported: {exported:?}"
    );
}

#[test]
fn metric_names_are_read_from_promql_and_grafana_queries() {
    let query = r#"histogram_quantile(0.99, sum by (le, route) (rate(a_bucket{job=~"$job"}[$__rate_interval]))) / on (route) group_left sum(b_total offset 5m) or vector(0)"#;
    assert_eq!(
        metric_names(query, "example"),
        BTreeSet::from(["a_bucket".to_owned(), "b_total".to_owned()])
    );
    assert_eq!(
        label_values_metric(r#"label_values(c_total{job=~"$job"}, instance)"#, "example"),
        BTreeSet::from(["c_total".to_owned()])
    );
    let exported = exported_series_names(
        "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_sum 0.5\nh_count 1\n# TYPE c counter\nc{k=\"v\"} 2\n",
    );
    let expected = ["c", "h_bucket", "h_count", "h_sum"].map(str::to_owned);
    assert_eq!(exported, BTreeSet::from(expected));
}

#[test]
#[should_panic(expected = "selectors without a metric name")]
fn a_query_without_a_metric_name_is_refused() {
    metric_names(r#"sum(rate({job="confab"}[5m]))"#, "example");
}
