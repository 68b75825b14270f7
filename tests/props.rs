//! Property-based tests against the real server: one confab (in-process, on real sockets, in
//! front of the echo upstream) is fed generated request bytes (mutations of valid requests with
//! random methods, targets, header names and values, body framings and byte edits; random
//! chunked framings; plain random bytes) and generated conversations query strings. Every case
//! must end in well-formed HTTP/1.1 responses or a clean close, never a hang (every read has a
//! deadline) and never a 5xx for what is the client's fault; afterwards `/healthz` still
//! answers. Case counts are modest so that the file runs in a few seconds.

mod support;

use std::net::Shutdown;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use support::{get, Proxy, Upstream};

/// Characters of a header name or method token (RFC 9110 `tchar`).
const TCHARS: &[u8] =
    b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
/// Characters a generated path or query is mostly made of.
const URL_CHARS: &[u8] = b"abcxyzABC0123456789-._~/?#[]@!$&'()*+,;=%:";
/// Characters a generated conversations query is made of.
const QUERY_CHARS: &[u8] = b"abcmpstgyAZ019_,&=%+- .\xc3\xa9";

/// Sends `bytes` on a new connection, half-closes it, and reads every response until the
/// server closes. Fails on a malformed response, a 5xx, or a read that times out.
fn check_exchange(proxy: &Proxy, bytes: &[u8]) -> Result<Vec<u16>, TestCaseError> {
    let mut client = proxy.client();
    // The server may refuse and close before reading everything: a failed write is fine.
    let _ = client.try_send(bytes);
    let _ = client.writer().shutdown(Shutdown::Write);
    let mut statuses = Vec::new();
    loop {
        match client.try_response(false) {
            Ok(response) => {
                prop_assert!(
                    response.minor_version == 1,
                    "HTTP/1.{} response",
                    response.minor_version
                );
                prop_assert!(
                    response.status < 500,
                    "{} for client bytes {:?}: {}",
                    response.status,
                    String::from_utf8_lossy(bytes),
                    response.text()
                );
                statuses.push(response.status);
            }
            Err(error) if error.to_string().contains("closed before a response") => {
                return Ok(statuses)
            }
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => {
                return Ok(statuses)
            }
            Err(error) => {
                return Err(TestCaseError::fail(format!(
                    "after {statuses:?}: {error} for {:?}",
                    String::from_utf8_lossy(bytes)
                )))
            }
        }
    }
}

fn token(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(TCHARS), 1..max)
}

fn header_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => prop::collection::vec(0x20u8..0x7f, 0..30),
        1 => prop::collection::vec(any::<u8>(), 0..30),
    ]
}

fn target() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => prop::collection::vec(prop::sample::select(URL_CHARS), 0..40)
            .prop_map(|rest| [b"/".as_slice(), &rest].concat()),
        1 => Just(b"/api/conversations?tags=pricing".to_vec()),
        1 => Just(b"/healthz".to_vec()),
        1 => Just(b"*".to_vec()),
        1 => prop::collection::vec(any::<u8>(), 0..20),
    ]
}

/// A body with the framing header it goes with: none, a right or wrong Content-Length, or a
/// (possibly malformed) chunked encoding.
fn body() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
    let data = prop::collection::vec(any::<u8>(), 0..64);
    prop_oneof![
        Just((Vec::new(), Vec::new())),
        data.clone().prop_map(|data| (
            format!("Content-Length: {}\r\n", data.len()).into_bytes(),
            data
        )),
        (data.clone(), 0usize..100).prop_map(|(data, length)| (
            format!("Content-Length: {length}\r\n").into_bytes(),
            data
        )),
        chunked_body().prop_map(|body| (b"Transfer-Encoding: chunked\r\n".to_vec(), body)),
    ]
}

/// Chunked framing, valid or not: sizes that may lie, extensions, missing CRLFs, trailers.
fn chunked_body() -> impl Strategy<Value = Vec<u8>> {
    let chunk = (
        prop::collection::vec(any::<u8>(), 0..20),
        prop_oneof![Just(None), (0usize..40).prop_map(Some)],
        prop_oneof![Just(""), Just(";ext=1"), Just(" ;a=\"b\""), Just(";;")],
        prop_oneof![4 => Just("\r\n"), 1 => Just("\n"), 1 => Just("")],
    );
    (
        prop::collection::vec(chunk, 0..4),
        prop_oneof![
            Just("0\r\n\r\n"),
            Just("0\r\nX-T: v\r\n\r\n"),
            Just("0\r\n"),
            Just("")
        ],
    )
        .prop_map(|(chunks, last)| {
            let mut out = Vec::new();
            for (data, size, extension, crlf) in chunks {
                let size = size.unwrap_or(data.len());
                out.extend_from_slice(format!("{size:x}{extension}{crlf}").as_bytes());
                out.extend_from_slice(&data);
                out.extend_from_slice(crlf.as_bytes());
            }
            out.extend_from_slice(last.as_bytes());
            out
        })
}

/// A request built from generated parts; HEAD is left out (its response has a body length
/// but no body, which the reader could not tell from the next response).
fn request() -> impl Strategy<Value = Vec<u8>> {
    let method = prop_oneof![
        Just(b"GET".to_vec()),
        Just(b"POST".to_vec()),
        Just(b"OPTIONS".to_vec()),
        token(8),
    ]
    .prop_map(|method| {
        if method == b"HEAD" {
            b"GET".to_vec()
        } else {
            method
        }
    });
    let version = prop_oneof![
        6 => Just("HTTP/1.1"),
        2 => Just("HTTP/1.0"),
        1 => Just("HTTP/2.0"),
        1 => Just("http/1.1"),
    ];
    let host = prop_oneof![4 => Just(Some(b"client.test".to_vec())), 1 => Just(None)];
    let headers = prop::collection::vec((token(16), header_value()), 0..6);
    (method, target(), version, host, headers, body()).prop_map(
        |(method, target, version, host, headers, (framing, body))| {
            let mut out = [
                method.as_slice(),
                b" ",
                &target,
                b" ",
                version.as_bytes(),
                b"\r\n",
            ]
            .concat();
            if let Some(host) = host {
                out.extend_from_slice(&[b"Host: ".as_slice(), &host, b"\r\n"].concat());
            }
            for (name, value) in headers {
                out.extend_from_slice(&[name.as_slice(), b": ", &value, b"\r\n"].concat());
            }
            out.extend_from_slice(&framing);
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(&body);
            out
        },
    )
}

/// Byte edits: each replaces, inserts or removes one byte at a position (modulo the length).
fn mutated(base: impl Strategy<Value = Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    let edit = (any::<usize>(), 0u8..3, any::<u8>());
    (base, prop::collection::vec(edit, 0..4)).prop_map(|(mut bytes, edits)| {
        for (at, kind, byte) in edits {
            if bytes.is_empty() {
                bytes.push(byte);
                continue;
            }
            let at = at % bytes.len();
            match kind {
                0 => bytes[at] = byte,
                1 => bytes.insert(at, byte),
                _ => {
                    bytes.remove(at);
                }
            }
        }
        bytes
    })
}

fn run(proxy: &Proxy, cases: u32, strategy: impl Strategy<Value = Vec<u8>>) {
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let outcome = runner.run(&strategy, |bytes| check_exchange(proxy, &bytes).map(|_| ()));
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
}

#[test]
fn generated_requests_get_well_formed_answers_or_a_clean_close() {
    let upstream = Upstream::echo();
    let proxy = Proxy::to(&upstream);

    run(&proxy, 300, mutated(request()));
    run(&proxy, 100, prop::collection::vec(any::<u8>(), 0..200));
    run(
        &proxy,
        100,
        chunked_body().prop_map(|body| {
            [
                b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".as_slice(),
                &body,
            ]
            .concat()
        }),
    );
    // Pipelined: two generated requests on one connection.
    run(
        &proxy,
        100,
        (request(), request()).prop_map(|(a, b)| [a, b].concat()),
    );

    let health = proxy.exchange(&get("/healthz"));
    assert_eq!(health.status, 200, "{:?}", health.text());
    proxy.shutdown().expect("no worker panicked");
}

#[test]
fn generated_conversation_queries_get_200_or_a_named_400() {
    let upstream = Upstream::echo();
    let proxy = Proxy::to(&upstream);
    let keys = prop::sample::select(vec![
        "company", "tags", "match", "page", "per_page", "x", "",
    ]);
    let value = prop::collection::vec(prop::sample::select(QUERY_CHARS), 0..16);
    let pair = (keys, value).prop_map(|(key, value)| [key.as_bytes(), b"=", &value].concat());
    let query = prop::collection::vec(pair, 0..5).prop_map(|pairs| pairs.join(&b'&'));

    let mut runner = TestRunner::new(Config {
        cases: 300,
        failure_persistence: None,
        ..Config::default()
    });
    let outcome = runner.run(&query, |query| {
        let mut target = b"/api/conversations?".to_vec();
        target.extend_from_slice(&query);
        let request = [b"GET ".as_slice(), &target, b" HTTP/1.1\r\nHost: a\r\n\r\n"].concat();
        let statuses = check_exchange(&proxy, &request)?;
        // Bytes outside the request-target grammar (a space) are refused at the head.
        prop_assert!(
            matches!(statuses.as_slice(), [200] | [400]),
            "{statuses:?} for {:?}",
            String::from_utf8_lossy(&query)
        );
        Ok(())
    });
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
    assert_eq!(proxy.exchange(&get("/healthz")).status, 200);
    assert_eq!(
        upstream.connections(),
        0,
        "conversation queries are not proxied"
    );
    proxy.shutdown().expect("no worker panicked");
}
