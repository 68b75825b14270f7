//! Fuzzes request-head parsing under configured limits, as `--max-request-line`,
//! `--max-head-size` and `--max-headers` set them: the first five bytes choose the limits, the
//! rest is the input. A head that parses keeps every limit; a partial one is still below the
//! head size limit; anything else is refused with 400, 414 or 431; never a panic.

#![no_main]

use confab::http1::{parse_request, HeadLimits, RequestHead};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((choice, input)) = data.split_first_chunk::<5>() else {
        return;
    };
    let head_bytes = 1 + usize::from(u16::from_le_bytes([choice[0], choice[1]]));
    let limits = HeadLimits {
        head_bytes,
        request_line_bytes: 1 + usize::from(u16::from_le_bytes([choice[2], choice[3]])) % head_bytes,
        headers: 1 + usize::from(choice[4]),
    };
    if limits.validate().is_err() {
        return;
    }
    let mut head = RequestHead::default();
    match parse_request(input, &limits, &mut head) {
        Ok(true) => {
            assert!(head.head_len <= limits.head_bytes, "{limits:?}");
            assert!(head.headers.len() <= limits.headers, "{limits:?}");
            let line = input
                .iter()
                .position(|&byte| byte == b'\n')
                .unwrap_or(input.len());
            assert!(line <= limits.request_line_bytes, "{limits:?}");
        }
        Ok(false) => assert!(input.len() < limits.head_bytes, "{limits:?}"),
        Err(error) => assert!(matches!(error.status(), 400 | 414 | 431), "{error:?}"),
    }
});
