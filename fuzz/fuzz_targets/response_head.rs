//! Fuzzes upstream response-head parsing: any bytes parse, ask for more, or are refused;
//! never a panic, and a parsed head's spans lie inside it.

#![no_main]

use confab::http1::{parse_response, HeadLimits, ResponseHead, MAX_HEAD_BYTES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let request_was_head = data.first().is_some_and(|byte| byte & 1 == 1);
    let mut head = ResponseHead::default();
    match parse_response(data, request_was_head, &HeadLimits::DEFAULT, &mut head) {
        Ok(true) => {
            assert!(head.head_len <= data.len() && head.head_len <= MAX_HEAD_BYTES);
            assert!((100..=999).contains(&head.status));
            let own = &data[..head.head_len];
            let _ = head.reason.of(own);
            for header in &head.headers {
                let _ = (header.name.of(own), header.value.of(own));
            }
        }
        Ok(false) => assert!(data.len() < MAX_HEAD_BYTES),
        Err(_) => {}
    }
});
