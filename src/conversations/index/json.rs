//! Minimal JSON writing for the hot path: decimal numbers and strings straight into
//! a byte buffer, with no intermediate allocation.

/// Longest decimal form of a `u64` or `i64` (including a sign).
const MAX_DECIMAL_DIGITS: usize = 20;

/// Appends `value` in decimal.
pub(crate) fn push_decimal(out: &mut Vec<u8>, mut value: u64) {
    let mut digits = [0u8; MAX_DECIMAL_DIGITS];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[start..]);
}

/// Appends a signed `value` in decimal to a `String`.
pub(crate) fn push_decimal_string(out: &mut String, value: i64) {
    let mut bytes = Vec::with_capacity(MAX_DECIMAL_DIGITS + 1);
    if value < 0 {
        bytes.push(b'-');
    }
    push_decimal(&mut bytes, value.unsigned_abs());
    out.extend(bytes.iter().map(|&b| char::from(b)));
}

/// Whether `text` holds a character JSON strings must escape.
pub(crate) fn needs_escape(text: &str) -> bool {
    text.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\')
}

/// Appends `text` (UTF-8) as a JSON string; the caller knows it needs no escaping.
pub(crate) fn push_plain_string(out: &mut Vec<u8>, text: &[u8]) {
    out.reserve(text.len() + 2);
    out.push(b'"');
    out.extend_from_slice(text);
    out.push(b'"');
}

/// Appends `text` as a JSON string, escaping quotes, backslashes and control characters.
pub(crate) fn push_escaped_string(out: &mut Vec<u8>, text: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    for &byte in text.as_bytes() {
        match byte {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            0..=0x1f => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(byte >> 4)],
                HEX[usize::from(byte & 0xf)],
            ]),
            _ => out.push(byte),
        }
    }
    out.push(b'"');
}
