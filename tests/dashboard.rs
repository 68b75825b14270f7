//! The operator dashboard in a real browser. confab starts in-process with its built-in mock
//! upstream and serves some proxied traffic (found and missing categories) and a few API calls;
//! Debian's headless Chromium then loads `GET /dashboard`, and the DOM it renders must show the
//! figures `GET /api/stats` reports: the proxied request total, the success rate, latency
//! percentiles, a row per status code and per route, the upstream error counters and the store
//! health. The page must be self-contained: its source names no other host and loads nothing
//! from elsewhere, and Chromium's own network log shows that every request the page made went
//! to confab.
//!
//! Without `chromium` on the PATH the test prints a notice and passes (CI installs it with
//! `apt-get install chromium`). With `CONFAB_DASHBOARD_SCREENSHOT=/some/file.png` set, it also
//! saves a screenshot of the page.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Longest a single connect, read or write on a test socket may block.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for the workers to publish the traffic this test sent (they publish once a
/// second).
const STATS_DEADLINE: Duration = Duration::from_secs(10);
/// Pause between two reads of `/api/stats` while waiting for the figures to arrive.
const STATS_POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Longest a Chromium run may take, start-up included.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(90);
/// Virtual time Chromium gives the page before dumping it: several of its one-second polls.
const VIRTUAL_TIME_BUDGET_MS: u32 = 5000;
/// Window size for the optional screenshot.
const SCREENSHOT_WINDOW: &str = "1400,1000";

/// Proxied requests for a category the mock upstream knows (200).
const FOUND: u64 = 20;
/// Proxied requests for a malformed category id (404 from the mock upstream).
const MISSING: u64 = 3;
/// Calls to confab's own `/healthz`.
const HEALTH_CHECKS: u64 = 2;

const FOUND_TARGET: &str = "/categories/MLA97994";
const MISSING_TARGET: &str = "/categories/bad";

/// Flags for every Chromium run: headless, no sandbox (CI containers run as root), no
/// first-run or background traffic of Chromium's own, and no name resolution at all, so that
/// nothing but loopback is reachable.
const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--hide-scrollbars",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
];

#[test]
fn dashboard_shows_the_figures_of_api_stats_in_headless_chromium() {
    let Some(chromium) = find_on_path("chromium") else {
        println!("skipped: chromium not installed (apt-get install chromium)");
        return;
    };

    let state_dir = tempfile::tempdir().expect("create a state directory");
    let mut config = confab::config::ServeConfig::for_tests();
    config.state_dir = state_dir.path().to_path_buf();
    let server = confab::server::start(config).expect("confab should start");
    let addr = server.local_addr();

    let page = get(addr, "/dashboard");
    assert_eq!(page.status, 200, "GET /dashboard: {}", page.text());
    assert_eq!(
        page.header("content-type").as_deref(),
        Some("text/html; charset=utf-8"),
        "content type of the dashboard"
    );
    let html = page.text();
    assert!(
        html.contains(r#"data-testid="proxy-requests""#),
        "the dashboard page has the proxied-requests figure"
    );
    assert_self_contained(&html);

    for _ in 0..FOUND {
        let response = get(addr, FOUND_TARGET);
        assert_eq!(response.status, 200, "{FOUND_TARGET}: {}", response.text());
    }
    for _ in 0..MISSING {
        let response = get(addr, MISSING_TARGET);
        assert_eq!(
            response.status,
            404,
            "{MISSING_TARGET}: {}",
            response.text()
        );
    }
    for _ in 0..HEALTH_CHECKS {
        let response = get(addr, "/healthz");
        assert_eq!(response.status, 200, "/healthz: {}", response.text());
    }

    let before = published_stats(addr);
    let proxy = &before["proxy"];
    assert_eq!(count(&proxy["by_status"]["200"]), FOUND, "stats: {before}");
    assert_eq!(
        count(&proxy["by_status"]["404"]),
        MISSING,
        "stats: {before}"
    );

    let profile = tempfile::tempdir().expect("create a browser profile directory");
    let url = format!("http://{addr}/dashboard");
    let net_log = profile.path().join("net-log.json");
    let dom = run_chromium(
        &chromium,
        profile.path(),
        &[
            format!("--virtual-time-budget={VIRTUAL_TIME_BUDGET_MS}"),
            format!("--log-net-log={}", net_log.display()),
            "--dump-dom".to_string(),
        ],
        &url,
    );
    if let Some(path) = std::env::var_os("CONFAB_DASHBOARD_SCREENSHOT") {
        let shots = tempfile::tempdir().expect("create a browser profile directory");
        run_chromium(
            &chromium,
            shots.path(),
            &[
                format!("--virtual-time-budget={VIRTUAL_TIME_BUDGET_MS}"),
                format!("--window-size={SCREENSHOT_WINDOW}"),
                format!("--screenshot={}", PathBuf::from(path).display()),
            ],
            &url,
        );
    }

    let after = stats(addr);
    assert_eq!(
        count(&after["proxy"]["requests"]),
        count(&proxy["requests"]),
        "the page made no proxied request of its own (a favicon, say); stats after: {after}"
    );
    assert_page_requests_stay_home(&net_log, addr);
    assert_dom_shows(&dom, &before, &after);

    server.shutdown().expect("graceful shutdown");
}

// === What the page must show ===

/// Checks the rendered DOM against the statistics read before (`before`) and after (`after`)
/// the browser ran. Proxy figures did not move in between; API figures grew by the page's own
/// polls, so the page shows a value between the two.
fn assert_dom_shows(dom: &str, before: &Value, after: &Value) {
    let dom = Dom(dom);
    let proxy = &before["proxy"];

    let body = dom.start_tag_of("<body").expect("a body element");
    assert!(
        body.contains(r#"data-state="live""#),
        "the page is live, not disconnected: {body}"
    );
    assert_ne!(
        dom.attr_of_tag(&body, "data-updates").as_deref(),
        Some("0"),
        "the page rendered at least one statistics document: {body}"
    );

    assert_eq!(
        dom.text("proxy-requests"),
        fmt_int(count(&proxy["requests"])),
        "proxied requests"
    );
    assert_eq!(
        dom.text("proxy-failures"),
        fmt_int(count(&proxy["failures"])),
        "proxy failures"
    );
    let rate = proxy["success_rate"].as_f64().expect("a success rate");
    assert_eq!(
        dom.text("proxy-success-rate"),
        fmt_rate(rate),
        "success rate"
    );
    for percentile in ["p50", "p90", "p99", "max"] {
        let expected = proxy["latency_ms"][percentile]
            .as_f64()
            .unwrap_or_else(|| panic!("proxy latency {percentile} in {proxy}"));
        let id = format!("proxy-{percentile}");
        assert_close(dom.value(&id), expected, &id);
        assert!(
            dom.text(&id).parse::<f64>().is_ok(),
            "{id} is shown as a number: {:?}",
            dom.text(&id)
        );
    }

    for (code, n) in proxy["by_status"].as_object().expect("by_status") {
        let id = format!("status-{code}");
        assert!(dom.has(&id), "a row for status {code}");
        assert_eq!(dom.text(&format!("{id}-count")), fmt_int(count(n)), "{id}");
    }
    assert!(dom.has("status-200") && dom.has("status-404"));

    let routes = proxy["by_route"].as_array().expect("by_route");
    assert!(!routes.is_empty(), "the proxied traffic has a route");
    for route in routes {
        let name = route["route"].as_str().expect("a route name");
        let id = format!("route-{name}");
        assert!(dom.has(&id), "a row for route {name}");
        assert_eq!(dom.text(&format!("{id}-name")), name, "{id}");
        assert_eq!(
            dom.text(&format!("{id}-requests")),
            fmt_int(count(&route["requests"])),
            "{id}"
        );
        let rate = route["success_rate"]
            .as_f64()
            .expect("a route success rate");
        assert_eq!(
            dom.text(&format!("{id}-success-rate")),
            fmt_rate(rate),
            "{id}"
        );
        for percentile in ["p50", "p99"] {
            let expected = route["latency_ms"][percentile].as_f64().expect("latency");
            assert_close(dom.value(&format!("{id}-{percentile}")), expected, &id);
        }
    }

    for (kind, n) in proxy["upstream_errors"]
        .as_object()
        .expect("upstream_errors")
    {
        let id = format!("upstream-error-{kind}");
        assert_eq!(dom.text(&id), fmt_int(count(n)), "{id}");
    }

    let api_low = count(&before["api"]["requests"]);
    let api_high = count(&after["api"]["requests"]);
    let api_shown = dom.text("api-requests");
    let api_shown: u64 = api_shown
        .replace(',', "")
        .parse()
        .unwrap_or_else(|_| panic!("api-requests is a count: {api_shown:?}"));
    assert!(
        (api_low..=api_high).contains(&api_shown),
        "API requests shown ({api_shown}) lie between {api_low} and {api_high}"
    );
    assert!(
        dom.has("api-route-/healthz"),
        "a row for the API route /healthz"
    );

    let store_ok = before["store"]["ok"].as_bool().expect("store.ok");
    assert_eq!(dom.value("store-ok"), store_ok.to_string(), "store health");
    assert_eq!(
        dom.value("since"),
        before["since"].as_str().expect("since"),
        "since"
    );

    for chart in [
        "chart-rps",
        "chart-success",
        "chart-latency",
        "chart-history",
    ] {
        assert!(
            dom.inner(chart).starts_with("<svg"),
            "{chart} is drawn as SVG"
        );
    }
    assert!(
        dom.inner("chart-rps").contains("<path"),
        "the requests/s chart draws the traffic sent"
    );
}

/// The page's source names no other host: no absolute URL anywhere (so no `<script src>`,
/// stylesheet, font, image or fetch elsewhere), no protocol-relative URL, and every `src`,
/// `href` or CSS `url(` is a same-origin path or a `data:` URL.
fn assert_self_contained(html: &str) {
    let lower = html.to_ascii_lowercase();
    for needle in [
        "http://", "https://", "\"//", "'//", "`//", "(//", "@import",
    ] {
        assert!(
            !lower.contains(needle),
            "the dashboard refers to another host ({needle:?} at byte {:?})",
            lower.find(needle)
        );
    }
    for attribute in ["src=", "href=", "url("] {
        for (at, _) in lower.match_indices(attribute) {
            let value = lower[at + attribute.len()..].trim_start_matches(['"', '\'']);
            assert!(
                value.starts_with("data:") || (value.starts_with('/') && !value.starts_with("//")),
                "{attribute} must be a data: URL or a same-origin path: {:?}",
                &html[at..(at + 60).min(html.len())]
            );
        }
    }
    assert!(
        !lower.contains("<iframe") && !lower.contains("<object") && !lower.contains("<embed"),
        "the dashboard embeds no other document"
    );
}

/// Every request Chromium made on behalf of the page (the navigation and what the page itself
/// loaded or fetched) went to confab. Chromium's network log ties each request to the site of
/// the page that caused it, through its network isolation key and initiator.
fn assert_page_requests_stay_home(net_log: &Path, addr: SocketAddr) {
    let text = std::fs::read_to_string(net_log)
        .unwrap_or_else(|err| panic!("read Chromium's network log {net_log:?}: {err}"));
    let log = parse_net_log(&text);
    let start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
        .as_u64()
        .expect("the network log names its event types");
    let origin = format!("http://{addr}");
    let site = format!("http://{} ", addr.ip());
    let mut page_urls = Vec::new();
    for event in log["events"].as_array().expect("network log events") {
        if event["type"].as_u64() != Some(start_job) {
            continue;
        }
        let params = &event["params"];
        let url = params["url"].as_str().unwrap_or_default();
        let isolation_key = params["network_isolation_key"].as_str().unwrap_or_default();
        let initiator = params["initiator"].as_str().unwrap_or_default();
        if isolation_key.starts_with(&site) || initiator == origin {
            page_urls.push(url.to_string());
        }
    }
    for url in &page_urls {
        assert!(
            url.starts_with(&format!("{origin}/")),
            "the page made a request to another host: {url} (all: {page_urls:?})"
        );
    }
    for path in ["/dashboard", "/api/stats"] {
        assert!(
            page_urls
                .iter()
                .any(|url| url == &format!("{origin}{path}")),
            "the network log shows the page's request for {path} (seen: {page_urls:?})"
        );
    }
}

/// Parses a network log. Chromium writes one event per line and closes the list when it
/// exits; should it exit before closing it, the log is cut after its last complete event.
fn parse_net_log(text: &str) -> Value {
    if let Ok(log) = serde_json::from_str(text) {
        return log;
    }
    let last_event = text
        .rfind("},\n")
        .unwrap_or_else(|| panic!("Chromium's network log has no complete event"));
    let closed = format!("{}]}}", &text[..=last_event]);
    serde_json::from_str(&closed)
        .unwrap_or_else(|err| panic!("Chromium's network log is not JSON ({err})"))
}

// === confab over plain sockets ===

/// One response read off a `Connection: close` exchange.
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.clone())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends `GET target` on a fresh connection and reads the response until the server closes.
fn get(addr: SocketAddr, target: &str) -> Response {
    let mut stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect to confab");
    stream
        .set_read_timeout(Some(IO_TIMEOUT))
        .expect("read timeout");
    stream
        .set_write_timeout(Some(IO_TIMEOUT))
        .expect("write timeout");
    write!(
        stream,
        "GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .expect("send a request");
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .unwrap_or_else(|err| panic!("read the response to {target}: {err}"));
    parse_response(&raw).unwrap_or_else(|| {
        panic!(
            "malformed response to {target}: {:?}",
            String::from_utf8_lossy(&raw)
        )
    })
}

fn parse_response(raw: &[u8]) -> Option<Response> {
    let head_end = raw.windows(4).position(|window| window == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..head_end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .map(|line| {
            let (name, value) = line.split_once(':')?;
            Some((name.trim().to_string(), value.trim().to_string()))
        })
        .collect::<Option<_>>()?;
    let mut response = Response {
        status,
        headers,
        body: Vec::new(),
    };
    let rest = &raw[head_end + 4..];
    let chunked = response
        .header("transfer-encoding")
        .is_some_and(|value| value.to_ascii_lowercase().contains("chunked"));
    response.body = if chunked {
        dechunk(rest)?
    } else if let Some(length) = response.header("content-length") {
        rest.get(..length.parse::<usize>().ok()?)?.to_vec()
    } else {
        rest.to_vec()
    };
    Some(response)
}

/// Decodes a chunked body (trailers ignored).
fn dechunk(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = rest.windows(2).position(|window| window == b"\r\n")?;
        let size_text = std::str::from_utf8(&rest[..line_end]).ok()?;
        let size_text = size_text.split(';').next()?.trim();
        let size = usize::from_str_radix(size_text, 16).ok()?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(rest.get(..size)?);
        rest = rest.get(size + 2..)?;
    }
}

/// The current `/api/stats` document.
fn stats(addr: SocketAddr) -> Value {
    let response = get(addr, "/api/stats");
    assert_eq!(response.status, 200, "GET /api/stats: {}", response.text());
    serde_json::from_slice(&response.body)
        .unwrap_or_else(|err| panic!("/api/stats is not JSON ({err}): {}", response.text()))
}

/// `/api/stats` once every worker has published the traffic this test sent: polled until the
/// proxied total and the `/healthz` count arrive, for at most [`STATS_DEADLINE`].
fn published_stats(addr: SocketAddr) -> Value {
    let deadline = Instant::now() + STATS_DEADLINE;
    loop {
        let stats = stats(addr);
        let proxied = count(&stats["proxy"]["requests"]);
        let health = stats["api"]["by_route"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|route| route["route"] == "/healthz")
            .map(|route| count(&route["requests"]))
            .sum::<u64>();
        assert!(
            proxied <= FOUND + MISSING,
            "more proxied requests than sent: {stats}"
        );
        if proxied == FOUND + MISSING && health >= HEALTH_CHECKS {
            return stats;
        }
        assert!(
            Instant::now() < deadline,
            "the statistics did not reach {} proxied requests and {HEALTH_CHECKS} health checks \
             within {STATS_DEADLINE:?}; last seen: {stats}",
            FOUND + MISSING
        );
        thread::sleep(STATS_POLL_INTERVAL);
    }
}

fn count(value: &Value) -> u64 {
    value
        .as_u64()
        .unwrap_or_else(|| panic!("expected a count, got {value}"))
}

// === Chromium ===

/// The first executable called `name` on the PATH.
fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// Runs Chromium on `url` with a fresh profile in `profile` and `extra` flags; returns what it
/// printed. Panics with its log when it fails or outlives [`BROWSER_TIMEOUT`].
fn run_chromium(chromium: &Path, profile: &Path, extra: &[String], url: &str) -> String {
    let user_data = profile.join("user-data");
    let log_path = profile.join("chromium.log");
    let log = File::create(&log_path).expect("create Chromium's log file");
    let mut child = Command::new(chromium)
        .args(CHROMIUM_FLAGS)
        .arg(format!("--user-data-dir={}", user_data.display()))
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|err| panic!("start {chromium:?}: {err}"));
    let mut stdout = child.stdout.take().expect("Chromium's stdout");
    let (sender, receiver) = mpsc::channel();
    let reader = thread::spawn(move || {
        let mut out = Vec::new();
        let read = stdout.read_to_end(&mut out).map(|_| out);
        // The receiver is gone only when the test already gave up on Chromium.
        let _ = sender.send(read);
    });
    let chromium_log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let output = match receiver.recv_timeout(BROWSER_TIMEOUT) {
        Ok(read) => read.expect("read Chromium's output"),
        Err(_) => {
            // Killing it closes its stdout, which lets the reader thread finish.
            let _ = child.kill();
            let _ = child.wait();
            let _ = reader.join();
            panic!(
                "Chromium did not finish within {BROWSER_TIMEOUT:?}; its log:\n{}",
                chromium_log()
            );
        }
    };
    reader.join().expect("the output reader");
    let status = child.wait().expect("wait for Chromium");
    assert!(
        status.success(),
        "Chromium failed ({status}); its log:\n{}",
        chromium_log()
    );
    String::from_utf8_lossy(&output).into_owned()
}

// === Reading the dumped DOM ===

/// Chromium's serialized DOM, searched by `data-testid`.
struct Dom<'a>(&'a str);

impl Dom<'_> {
    fn needle(id: &str) -> String {
        format!(r#"data-testid="{}""#, escape_attribute(id))
    }

    fn has(&self, id: &str) -> bool {
        self.0.contains(&Self::needle(id))
    }

    /// The start tag carrying `data-testid="id"` and where the element's content begins.
    fn tag(&self, id: &str) -> (String, usize) {
        let at = self
            .0
            .find(&Self::needle(id))
            .unwrap_or_else(|| panic!("no element with data-testid={id:?} in the page"));
        let open = self.0[..at].rfind('<').expect("a start tag");
        let close = at + self.0[at..].find('>').expect("the end of a start tag");
        (self.0[open..=close].to_string(), close + 1)
    }

    /// The first start tag beginning with `prefix` (`<body`, say).
    fn start_tag_of(&self, prefix: &str) -> Option<String> {
        let open = self.0.find(prefix)?;
        let close = open + self.0[open..].find('>')?;
        Some(self.0[open..=close].to_string())
    }

    /// The value of `name` in a start tag, entities decoded.
    fn attr_of_tag(&self, tag: &str, name: &str) -> Option<String> {
        let needle = format!(" {name}=\"");
        let start = tag.find(&needle)? + needle.len();
        let end = start + tag[start..].find('"')?;
        Some(decode_entities(&tag[start..end]))
    }

    /// The element's text up to its first child element, entities decoded and trimmed.
    fn text(&self, id: &str) -> String {
        let (_, content) = self.tag(id);
        let end = content
            + self.0[content..]
                .find('<')
                .unwrap_or(self.0.len() - content);
        decode_entities(self.0[content..end].trim())
    }

    /// The element's raw content (markup included) up to the end of the document.
    fn inner(&self, id: &str) -> &str {
        let (_, content) = self.tag(id);
        &self.0[content..]
    }

    /// The element's `data-value` attribute: the raw figure behind the formatted text.
    fn value(&self, id: &str) -> String {
        let (tag, _) = self.tag(id);
        self.attr_of_tag(&tag, "data-value")
            .unwrap_or_else(|| panic!("{id} has no data-value: {tag}"))
    }
}

/// Escapes text the way HTML serialization escapes attribute values.
fn escape_attribute(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\u{a0}', "&nbsp;")
}

fn decode_entities(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&")
}

/// `raw` (a `data-value`) parses as a number equal to `expected`.
fn assert_close(raw: String, expected: f64, what: &str) {
    let shown: f64 = raw
        .parse()
        .unwrap_or_else(|_| panic!("{what}: data-value {raw:?} is not a number"));
    assert!(
        (shown - expected).abs() <= 1e-9 * expected.abs().max(1.0),
        "{what}: page has {shown}, /api/stats has {expected}"
    );
}

// === The page's number formats ===

/// An integer with thousands separators: `1234567` → `1,234,567`.
fn fmt_int(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// A rate as the page shows it: a percentage with two decimals, rounded down (so only a
/// perfect rate reads `100%`).
fn fmt_rate(rate: f64) -> String {
    if rate >= 1.0 {
        "100%".to_string()
    } else {
        format!("{:.2}%", (rate.max(0.0) * 10000.0).floor() / 100.0)
    }
}

#[test]
fn page_number_formats() {
    assert_eq!(fmt_int(0), "0");
    assert_eq!(fmt_int(999), "999");
    assert_eq!(fmt_int(1000), "1,000");
    assert_eq!(fmt_int(1234567), "1,234,567");
    assert_eq!(fmt_rate(1.0), "100%");
    assert_eq!(fmt_rate(0.99999), "99.99%");
    assert_eq!(fmt_rate(0.8), "80.00%");
    assert_eq!(fmt_rate(0.0), "0.00%");
}
