//! Unit tests of the HTTP/1.1 codec: head validation and chunked decoding.

use super::chunked::{write_chunk_header, ChunkError, ChunkedDecoder, Decoded};
use super::headers::parse_content_length;
use super::*;

fn request(raw: &str) -> Result<RequestHead, HeadError> {
    let mut head = RequestHead::default();
    match parse_request(raw.as_bytes(), &HeadLimits::DEFAULT, &mut head)? {
        true => Ok(head),
        false => panic!("head reported incomplete: {raw:?}"),
    }
}

fn forwarded_names(raw: &str) -> Vec<String> {
    let head = request(raw).expect("valid head");
    head.headers
        .iter()
        .filter(|header| header.forward)
        .map(|header| String::from_utf8_lossy(header.name.of(raw.as_bytes())).into_owned())
        .collect()
}

#[test]
fn parses_an_origin_form_request() {
    let raw = "GET /a/b?x=1 HTTP/1.1\r\nHost: h\r\nAccept: */*\r\n\r\n";
    let head = request(raw).expect("valid head");
    let buf = raw.as_bytes();
    assert_eq!(head.method.of(buf), b"GET");
    assert_eq!(head.path.of(buf), b"/a/b");
    assert_eq!(head.path_and_query.of(buf), b"/a/b?x=1");
    assert_eq!(head.head_len, raw.len());
    assert_eq!(head.framing, BodyFraming::None);
    assert!(head.keep_alive);
}

#[test]
fn partial_heads_ask_for_more() {
    let mut head = RequestHead::default();
    assert_eq!(
        parse_request(b"GET / HTTP/1.1\r\nHo", &HeadLimits::DEFAULT, &mut head),
        Ok(false)
    );
}

#[test]
fn absolute_form_splits_authority_and_path() {
    let raw = "GET http://example.com/x?y HTTP/1.1\r\nHost: example.com\r\n\r\n";
    let head = request(raw).expect("valid head");
    let buf = raw.as_bytes();
    assert_eq!(head.path_and_query.of(buf), b"/x?y");
    let Target::Absolute { authority } = head.target_form else {
        panic!("not absolute-form");
    };
    assert_eq!(authority.of(buf), b"example.com");
}

#[test]
fn framing_conflicts_are_refused() {
    let cases = [
        "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 4\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +3\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x5\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: xchunked\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
    ];
    for raw in cases {
        let error = request(raw).expect_err(raw);
        assert_eq!(error.status(), 400, "{raw:?}");
    }
}

#[test]
fn equal_content_lengths_are_one_length() {
    let raw = "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 3, 3\r\n\r\n";
    assert_eq!(request(raw).expect("valid").framing, BodyFraming::Length(3));
}

#[test]
fn host_rules() {
    assert!(request("GET / HTTP/1.1\r\n\r\n").is_err());
    assert!(request("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n").is_err());
    assert!(request("GET / HTTP/1.0\r\n\r\n").is_ok());
}

#[test]
fn obs_fold_and_bad_values_are_refused() {
    assert!(request("GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n").is_err());
    assert!(request("GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n").is_err());
}

#[test]
fn connection_options_drop_the_fields_they_name() {
    let raw = "GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\nX-Kept: 2\r\nKeep-Alive: 5\r\nTE: trailers\r\n\r\n";
    assert_eq!(forwarded_names(raw), vec!["X-Kept"]);
}

#[test]
fn connection_may_not_name_protected_fields() {
    for named in ["Host", "X-Forwarded-For", "x-forwarded-host"] {
        let raw = format!("GET / HTTP/1.1\r\nHost: h\r\nConnection: {named}\r\n\r\n");
        assert_eq!(request(&raw).expect_err(&raw).status(), 400);
    }
}

#[test]
fn keep_alive_follows_version_and_connection() {
    assert!(
        !request("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
            .expect("valid")
            .keep_alive
    );
    assert!(!request("GET / HTTP/1.0\r\n\r\n").expect("valid").keep_alive);
    assert!(
        request("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .expect("valid")
            .keep_alive
    );
}

#[test]
fn limits_map_to_their_statuses() {
    let long_line = format!("GET /{} HTTP/1.1\r\n", "a".repeat(MAX_REQUEST_LINE_BYTES));
    let mut head = RequestHead::default();
    assert_eq!(
        parse_request(long_line.as_bytes(), &HeadLimits::DEFAULT, &mut head),
        Err(HeadError::UriTooLong)
    );
    let many: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: v\r\n")).collect();
    let raw = format!("GET / HTTP/1.1\r\nHost: h\r\n{many}\r\n");
    assert_eq!(request(&raw).expect_err("too many").status(), 431);
    let big = format!(
        "GET / HTTP/1.1\r\nHost: h\r\nX: {}\r\n",
        "v".repeat(MAX_HEAD_BYTES)
    );
    assert_eq!(
        parse_request(big.as_bytes(), &HeadLimits::DEFAULT, &mut head),
        Err(HeadError::HeadTooLarge)
    );
}

#[test]
fn a_complete_head_over_the_size_limit_is_refused() {
    let filler = |len: usize| "v".repeat(len);
    let base = "GET / HTTP/1.1\r\nHost: h\r\nX: \r\n\r\n".len();
    let at_limit = format!(
        "GET / HTTP/1.1\r\nHost: h\r\nX: {}\r\n\r\n",
        filler(MAX_HEAD_BYTES - base)
    );
    assert_eq!(at_limit.len(), MAX_HEAD_BYTES);
    assert!(
        request(&at_limit).is_ok(),
        "a head of exactly the limit is served"
    );
    let over = format!(
        "GET / HTTP/1.1\r\nHost: h\r\nX: {}\r\n\r\n",
        filler(MAX_HEAD_BYTES - base + 1)
    );
    assert_eq!(request(&over).map(|_| ()), Err(HeadError::HeadTooLarge));
    // Also with a body behind it in the same buffer, and under a configured limit.
    let limits = HeadLimits {
        head_bytes: 100,
        ..HeadLimits::DEFAULT
    };
    let raw = format!(
        "GET / HTTP/1.1\r\nHost: h\r\nX: {}\r\n\r\nbody",
        filler(100)
    );
    let mut head = RequestHead::default();
    assert_eq!(
        parse_request(raw.as_bytes(), &limits, &mut head),
        Err(HeadError::HeadTooLarge)
    );
}

#[test]
fn a_complete_response_head_over_the_size_limit_is_refused() {
    let mut head = ResponseHead::default();
    let base = "HTTP/1.1 200 OK\r\nX: \r\nContent-Length: 0\r\n\r\n".len();
    let response = |filler: usize| {
        format!(
            "HTTP/1.1 200 OK\r\nX: {}\r\nContent-Length: 0\r\n\r\n",
            "v".repeat(filler)
        )
    };
    let at_limit = response(MAX_HEAD_BYTES - base);
    assert_eq!(
        parse_response(at_limit.as_bytes(), false, &HeadLimits::DEFAULT, &mut head),
        Ok(true)
    );
    let over = response(MAX_HEAD_BYTES - base + 1);
    assert_eq!(
        parse_response(over.as_bytes(), false, &HeadLimits::DEFAULT, &mut head),
        Err(HeadError::HeadTooLarge)
    );
}

#[test]
fn a_reason_phrase_that_is_not_utf8_is_kept_as_bytes() {
    // Found by the response_head fuzz target: a reason that is not UTF-8 comes from the parser
    // as a constant empty text, and its span was taken against the head's buffer.
    let found: &[u8] =
        b"HTTP/1.0 020 @HTTP/1.\xff\xff\xff\xff\xff\xff\xff\r\n\r\n\r\n\n\r\n\r\n\n\xff0";
    let mut head = ResponseHead::default();
    assert!(parse_response(found, false, &HeadLimits::DEFAULT, &mut head).is_err());

    let obs_text: &[u8] = b"HTTP/1.1 200 \xe9t\xe9\r\nContent-Length: 0\r\n\r\n";
    assert_eq!(
        parse_response(obs_text, false, &HeadLimits::DEFAULT, &mut head),
        Ok(true)
    );
    assert_eq!(head.reason.of(obs_text), b"\xe9t\xe9");
    for (raw, reason) in [
        ("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", "OK"),
        (
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
            "Not Found",
        ),
        ("HTTP/1.0 200 \r\nContent-Length: 0\r\n\r\n", ""),
    ] {
        let mut head = ResponseHead::default();
        assert_eq!(
            parse_response(raw.as_bytes(), false, &HeadLimits::DEFAULT, &mut head),
            Ok(true),
            "{raw:?}"
        );
        assert_eq!(head.reason.of(raw.as_bytes()), reason.as_bytes(), "{raw:?}");
    }
}

#[test]
fn configured_limits_replace_the_defaults() {
    let limits = HeadLimits {
        request_line_bytes: 20,
        head_bytes: 1000,
        headers: 3,
    };
    let mut head = RequestHead::default();
    let long_line = "GET /aaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\nHost: h\r\n\r\n";
    assert_eq!(
        parse_request(long_line.as_bytes(), &limits, &mut head),
        Err(HeadError::UriTooLong)
    );
    let three = "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\n\r\n";
    assert_eq!(
        parse_request(three.as_bytes(), &limits, &mut head),
        Ok(true)
    );
    let four = "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    assert_eq!(
        parse_request(four.as_bytes(), &limits, &mut head),
        Err(HeadError::TooManyHeaders)
    );
    let mut response = ResponseHead::default();
    let four = "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\nContent-Length: 0\r\n\r\n";
    assert_eq!(
        parse_response(four.as_bytes(), false, &limits, &mut response),
        Err(HeadError::TooManyHeaders)
    );
    let raised = HeadLimits {
        headers: HEADERS_CEILING,
        ..HeadLimits::DEFAULT
    };
    let many: String = (0..HEADERS_CEILING - 1)
        .map(|i| format!("X-{i}: v\r\n"))
        .collect();
    let raw = format!("GET / HTTP/1.1\r\nHost: h\r\n{many}\r\n");
    let big = HeadLimits {
        head_bytes: raw.len(),
        ..raised
    };
    assert_eq!(parse_request(raw.as_bytes(), &big, &mut head), Ok(true));
    assert_eq!(head.headers.len(), HEADERS_CEILING);
}

#[test]
fn limits_outside_their_ceilings_are_refused() {
    assert_eq!(HeadLimits::DEFAULT.validate(), Ok(()));
    let bad = [
        HeadLimits {
            headers: HEADERS_CEILING + 1,
            ..HeadLimits::DEFAULT
        },
        HeadLimits {
            headers: 0,
            ..HeadLimits::DEFAULT
        },
        HeadLimits {
            head_bytes: HEAD_BYTES_CEILING + 1,
            ..HeadLimits::DEFAULT
        },
        HeadLimits {
            request_line_bytes: MAX_HEAD_BYTES + 1,
            ..HeadLimits::DEFAULT
        },
    ];
    for limits in bad {
        assert!(limits.validate().is_err(), "{limits:?}");
    }
}

#[test]
fn errors_name_the_configured_limit() {
    let limits = HeadLimits {
        request_line_bytes: 123,
        head_bytes: 4567,
        headers: 89,
    };
    assert!(HeadError::UriTooLong.detail(&limits).contains("123 bytes"));
    assert!(HeadError::HeadTooLarge
        .detail(&limits)
        .contains("4567 bytes"));
    assert!(HeadError::TooManyHeaders
        .detail(&limits)
        .contains("89 header"));
}

#[test]
fn content_length_parsing_is_strict() {
    assert_eq!(parse_content_length(b"42"), Some(42));
    assert_eq!(parse_content_length(b"7, 7"), Some(7));
    for bad in [
        &b""[..],
        b" ",
        b"+1",
        b"-1",
        b"1.0",
        b"0x5",
        b"1 2",
        b"99999999999999999999",
    ] {
        assert_eq!(parse_content_length(bad), None, "{bad:?}");
    }
}

fn response(raw: &str, was_head: bool) -> Result<ResponseHead, HeadError> {
    let mut head = ResponseHead::default();
    assert!(parse_response(
        raw.as_bytes(),
        was_head,
        &HeadLimits::DEFAULT,
        &mut head
    )?);
    Ok(head)
}

#[test]
fn response_framing() {
    let chunked = response(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        false,
    );
    assert_eq!(chunked.expect("valid").framing, ResponseFraming::Chunked);
    let sized = response("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", false);
    assert_eq!(sized.expect("valid").framing, ResponseFraming::Length(5));
    let open = response("HTTP/1.1 200 OK\r\n\r\n", false).expect("valid");
    assert_eq!(open.framing, ResponseFraming::UntilClose);
    assert!(!open.keep_alive);
    let to_head = response("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true);
    assert_eq!(to_head.expect("valid").framing, ResponseFraming::None);
    let both = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n";
    assert!(response(both, false).is_err());
    assert!(response("garbage\r\n\r\n", false).is_err());
}

fn decode_all(input: &[u8]) -> Result<Vec<u8>, ChunkError> {
    let mut decoder = ChunkedDecoder::default();
    let mut body = Vec::new();
    let mut at = 0;
    loop {
        let (used, found) = decoder.decode(&input[at..])?;
        match found {
            Decoded::Data(range) => body.extend_from_slice(&input[at..][range]),
            Decoded::Done => return Ok(body),
            Decoded::NeedMore if at + used == input.len() => panic!("input ended early"),
            Decoded::NeedMore => {}
        }
        at += used;
    }
}

#[test]
fn decodes_chunks_with_extensions_and_trailers() {
    let input = b"5;name=value\r\nhello\r\n1 ; x\r\n!\r\n0\r\nTrailer: yes\r\n\r\n";
    assert_eq!(decode_all(input).expect("valid"), b"hello!");
}

#[test]
fn decodes_byte_by_byte() {
    let input = b"3\r\nabc\r\nA\r\n0123456789\r\n0\r\n\r\n";
    let mut decoder = ChunkedDecoder::default();
    let mut body = Vec::new();
    for byte in input.iter() {
        let one = [*byte];
        let (used, found) = decoder.decode(&one).expect("valid");
        assert_eq!(used, 1);
        if let Decoded::Data(range) = found {
            body.extend_from_slice(&one[range]);
        }
    }
    assert!(decoder.is_done());
    assert_eq!(body, b"abc0123456789");
}

#[test]
fn refuses_bad_chunk_framing() {
    let cases: [(&[u8], ChunkError); 7] = [
        (b"+5\r\nhello\r\n0\r\n\r\n", ChunkError::InvalidSize),
        (b"0x5\r\nhello\r\n0\r\n\r\n", ChunkError::InvalidSize),
        (b"00000000000000001\r\nh\r\n", ChunkError::SizeTooLong),
        (b"5\nhello\r\n0\r\n\r\n", ChunkError::InvalidSize),
        (b"5\r\nhelloXX0\r\n\r\n", ChunkError::MissingCrlf),
        (b"5 garbage\r\nhello\r\n", ChunkError::InvalidSize),
        (b"0\r\nX: y\n\r\n", ChunkError::MissingCrlf),
    ];
    for (input, expected) in cases {
        assert_eq!(decode_all(input), Err(expected), "{input:?}");
    }
    let long_extension = format!("1;{}\r\na\r\n0\r\n\r\n", "e".repeat(16 * 1024 + 1));
    assert_eq!(
        decode_all(long_extension.as_bytes()),
        Err(ChunkError::ExtensionTooLong)
    );
}

#[test]
fn chunk_headers_are_lowercase_hex() {
    for (len, expected) in [
        (1, "1\r\n"),
        (15, "f\r\n"),
        (16, "10\r\n"),
        (4096, "1000\r\n"),
    ] {
        let mut out = Vec::new();
        write_chunk_header(len, &mut out);
        assert_eq!(out, expected.as_bytes());
    }
}

#[test]
fn bare_line_feeds_and_carriage_returns_are_refused_in_requests() {
    let cases = [
        "GET / HTTP/1.1\nHost: h\n\n",
        "GET / HTTP/1.1\r\nHost: h\nX-Injected: v\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\rX-Injected: v\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: h\r\n\n",
    ];
    for raw in cases {
        let error = request(raw).expect_err(raw);
        assert_eq!(error.status(), 400, "{raw:?}");
    }
}

#[test]
fn bare_line_feeds_are_refused_in_responses() {
    let mut head = ResponseHead::default();
    let raw = b"HTTP/1.1 200 OK\r\nX-A: a\nX-Injected: v\r\nContent-Length: 0\r\n\r\n";
    assert!(parse_response(raw, false, &HeadLimits::DEFAULT, &mut head).is_err());
    let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    assert_eq!(
        parse_response(raw, false, &HeadLimits::DEFAULT, &mut head),
        Ok(true)
    );
}
