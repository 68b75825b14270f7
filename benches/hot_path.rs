//! The proxy's per-request pieces, each timed on its own so that a change to one shows here.
//! Every group is named for the question it answers:
//!
//! - `request_head_parse`: what reading a request head costs, for a short (curl-like) and a
//!   long (browser-like, 14 fields) request;
//! - `upstream_head_render`: what rendering the head sent upstream costs (hop-by-hop fields
//!   dropped, `Host` and `X-Forwarded-*` set);
//! - `forwarded_for_per_connection_vs_per_request`: whether rendering the client address once
//!   per connection pays, against formatting it for every request;
//! - `response_head_parse_and_render`: what relaying a response head costs;
//! - `route_decision`: what routing costs when the path needs no normalizing, and when it does;
//! - `statistics_record`: what recording one proxied request in the worker's recorder costs;
//! - `conversations_query_parse`: what reading the conversations query string costs, when it
//!   needs no percent-decoding (borrowed) and when it does.

use std::hint::black_box;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use confab::conversations::ConversationQuery;
use confab::http1::{self, HeadLimits, RequestHead, ResponseHead, Version};
use confab::proxy::upstream::UpstreamTarget;
use confab::proxy::{end_request_head, render_request_fields, render_response_head, ForwardedFor};
use confab::routing;
use confab::serial::{SerialContext, SerialQueue};
use confab::stats::{RouteKey, Sample, Stats, StatsConfig, WorkerRecorder};
use criterion::{criterion_group, criterion_main, Criterion};

/// What curl or wrk send.
const SHORT_REQUEST: &[u8] =
    b"GET /categories/MLA97994 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: curl/8.5.0\r\n\
Accept: */*\r\n\r\n";
/// What a browser-based API client sends.
const LONG_REQUEST: &[u8] = b"GET /categories/MLA97994?attributes=id,name&lang=es HTTP/1.1\r\n\
Host: api.example.com\r\nConnection: keep-alive\r\nsec-ch-ua: \"Chromium\";v=\"156\"\r\n\
Accept: application/json, text/plain, */*\r\nsec-ch-ua-mobile: ?0\r\n\
Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJjb25mYWIifQ.c2lnbmF0dXJl\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/156.0 Safari/537.36\r\n\
sec-ch-ua-platform: \"Linux\"\r\nOrigin: https://app.example.com\r\nSec-Fetch-Site: same-site\r\n\
Sec-Fetch-Mode: cors\r\nSec-Fetch-Dest: empty\r\nReferer: https://app.example.com/\r\n\
Accept-Encoding: gzip, deflate, br\r\nAccept-Language: es-AR,es;q=0.9,en;q=0.8\r\n\r\n";
/// What the mock upstream answers (with its body, as it arrives).
const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: application/json; charset=utf-8\r\n\
content-length: 27\r\ncache-control: max-age=300\r\nx-request-id: 3f1c\r\n\r\n\
{\"id\":\"MLA97994\",\"ok\":true}";

fn parsed_request(bytes: &[u8]) -> RequestHead {
    let mut head = RequestHead::default();
    assert_eq!(
        http1::parse_request(bytes, &HeadLimits::DEFAULT, &mut head),
        Ok(true)
    );
    head
}

fn request_head_parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("request_head_parse");
    let mut head = RequestHead::default();
    for (name, bytes) in [("short", SHORT_REQUEST), ("long", LONG_REQUEST)] {
        group.bench_function(name, |b| {
            b.iter(|| http1::parse_request(black_box(bytes), &HeadLimits::DEFAULT, &mut head))
        });
    }
    group.finish();
}

fn upstream_head_render(c: &mut Criterion) {
    let mut group = c.benchmark_group("upstream_head_render");
    let target = UpstreamTarget::resolve("http://127.0.0.1:9090").expect("target");
    let forwarded_for = ForwardedFor::of(SocketAddr::from(([127, 0, 0, 1], 40000)));
    let mut out = Vec::with_capacity(16 * 1024);
    for (name, bytes) in [("short", SHORT_REQUEST), ("long", LONG_REQUEST)] {
        let head = parsed_request(bytes);
        group.bench_function(name, |b| {
            b.iter(|| {
                render_request_fields(bytes, &head, &forwarded_for, &target, &mut out);
                end_request_head(head.framing, &mut out);
            })
        });
    }
    group.finish();
}

fn forwarded_for(c: &mut Criterion) {
    let mut group = c.benchmark_group("forwarded_for_per_connection_vs_per_request");
    let peer = SocketAddr::from(([192, 168, 10, 254], 40000));
    let rendered = ForwardedFor::of(peer);
    let mut out = Vec::with_capacity(256);
    group.bench_function("formatted_per_request", |b| {
        b.iter(|| {
            out.clear();
            let _ = write!(out, "x-forwarded-for: {}\r\n", black_box(peer).ip());
        })
    });
    group.bench_function("rendered_per_connection", |b| {
        b.iter(|| {
            out.clear();
            out.extend_from_slice(b"x-forwarded-for: ");
            out.extend_from_slice(black_box(&rendered).as_bytes());
            out.extend_from_slice(b"\r\n");
        })
    });
    group.finish();
}

fn response_head(c: &mut Criterion) {
    let mut group = c.benchmark_group("response_head_parse_and_render");
    let mut head = ResponseHead::default();
    let mut out = Vec::with_capacity(16 * 1024);
    group.bench_function("parse", |b| {
        b.iter(|| {
            http1::parse_response(black_box(RESPONSE), false, &HeadLimits::DEFAULT, &mut head)
        })
    });
    assert_eq!(
        http1::parse_response(RESPONSE, false, &HeadLimits::DEFAULT, &mut head),
        Ok(true)
    );
    group.bench_function("render", |b| {
        b.iter(|| render_response_head(&head, RESPONSE, false, Version::Http11, true, &mut out))
    });
    group.finish();
}

fn route_decision(c: &mut Criterion) {
    let mut group = c.benchmark_group("route_decision");
    for (name, path) in [
        ("proxied_plain", &b"/categories/MLA97994"[..]),
        ("own_plain", b"/api/conversations"),
        ("needs_normalizing", b"/categories/%4DLA97994/./x"),
    ] {
        group.bench_function(name, |b| b.iter(|| routing::route(black_box(path))));
    }
    group.finish();
}

fn statistics_record(c: &mut Criterion) {
    let serial = Arc::new(SerialQueue::start(SerialContext::default()).expect("serial queue"));
    let stats = Stats::start(
        StatsConfig {
            state_dir: None,
            flush_interval: Duration::from_secs(3600),
            retention: Duration::from_secs(3600),
        },
        serial,
    )
    .expect("statistics");
    let recorder = WorkerRecorder::new(stats.handle());
    let sample = Sample {
        method: 0,
        status: 200,
        micros: 812,
        bytes_in: 120,
        bytes_out: 900,
    };
    c.bench_function("statistics_record/proxied_request", |b| {
        b.iter(|| {
            let route = RouteKey::of_path(black_box(b"/categories/MLA97994"));
            recorder.record_proxy(route.as_bytes(), black_box(sample), None);
        })
    });
}

fn conversations_query_parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("conversations_query_parse");
    for (name, query) in [
        ("example", "company=microsoft&tags=competition,orientation"),
        (
            "percent_encoded",
            "company=Micro%73oft&tags=competition%2Corientation&match=any",
        ),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| ConversationQuery::parse(Some(black_box(query))))
        });
    }
    group.finish();
}

criterion_group!(
    hot_path,
    request_head_parse,
    upstream_head_render,
    forwarded_for,
    response_head,
    route_decision,
    statistics_record,
    conversations_query_parse
);
criterion_main!(hot_path);
