//! Fuzzes request-head parsing: any bytes either parse into a head whose spans all lie inside
//! the head, ask for more, or are refused with a 400, 414 or 431; never a panic. A head that
//! parses parses the same way again, and its own bytes alone parse to the same head.

#![no_main]

use confab::http1::{parse_request, BodyFraming, HeadLimits, RequestHead, MAX_HEAD_BYTES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut head = RequestHead::default();
    match parse_request(data, &HeadLimits::DEFAULT, &mut head) {
        Ok(true) => check_complete(data, &head),
        Ok(false) => assert!(data.len() < MAX_HEAD_BYTES, "a partial head over the limit"),
        Err(error) => assert!(matches!(error.status(), 400 | 414 | 431), "{error:?}"),
    }
});

fn check_complete(data: &[u8], head: &RequestHead) {
    assert!(head.head_len <= data.len() && head.head_len <= MAX_HEAD_BYTES);
    let own = &data[..head.head_len];
    assert!(own.ends_with(b"\r\n\r\n"), "a head ends with an empty line");
    for span in [head.method, head.target, head.path, head.path_and_query] {
        assert!(!span.of(own).is_empty() || span == head.path);
    }
    for header in &head.headers {
        let _ = (header.name.of(own), header.value.of(own));
    }
    if let Some(host) = head.host {
        let _ = host.of(own);
    }
    if let BodyFraming::Length(length) = head.framing {
        let _ = length;
    }
    // Trailing bytes (a body, the next request) never change how the head parses.
    let mut again = RequestHead::default();
    assert_eq!(parse_request(own, &HeadLimits::DEFAULT, &mut again), Ok(true));
    assert_eq!(again.head_len, head.head_len);
    assert_eq!(again.framing, head.framing);
    assert_eq!(again.headers, head.headers);
    assert_eq!(again.keep_alive, head.keep_alive);
}
