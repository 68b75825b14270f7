//! Header field helpers: comma-separated token lists, `Content-Length` values, and the
//! hop-by-hop fields a proxy must not forward.

/// Fields that describe one hop and never cross the proxy in either direction. `Content-Length`
/// and `Transfer-Encoding` are listed because the proxy re-frames every body itself.
const HOP_BY_HOP: [&[u8]; 8] = [
    b"connection",
    b"keep-alive",
    b"proxy-connection",
    b"te",
    b"trailer",
    b"upgrade",
    b"transfer-encoding",
    b"content-length",
];

/// Request fields the proxy sets itself, so the client's copies are dropped.
const SET_BY_PROXY: [&[u8]; 5] = [
    b"host",
    b"x-forwarded-for",
    b"x-forwarded-proto",
    b"x-forwarded-host",
    b"expect",
];

/// Whether `name` is a hop-by-hop field (see [`HOP_BY_HOP`]).
pub fn is_hop_by_hop(name: &[u8]) -> bool {
    HOP_BY_HOP.iter().any(|hop| name.eq_ignore_ascii_case(hop))
}

/// Whether `name` is a request field the proxy replaces with its own value.
pub fn is_set_by_proxy(name: &[u8]) -> bool {
    SET_BY_PROXY
        .iter()
        .any(|own| name.eq_ignore_ascii_case(own))
}

/// Whether a `Connection` option names a field that must survive to the upstream: asking the
/// proxy to strip `Host` or an `X-Forwarded-*` field is an attempt to hide the client.
pub fn is_protected_from_connection(name: &[u8]) -> bool {
    name.eq_ignore_ascii_case(b"host")
        || (name.len() > 12 && name[..12].eq_ignore_ascii_case(b"x-forwarded-"))
}

/// Splits a comma-separated list into its trimmed, non-empty items.
pub fn comma_items(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&byte| byte == b',')
        .map(|item| item.trim_ascii())
        .filter(|item| !item.is_empty())
}

/// Parses a `Content-Length` value strictly: one or more comma-separated runs of ASCII digits
/// that all agree (RFC 9110 §8.6). Signs, hex, blanks and values over `u64` are refused.
pub fn parse_content_length(value: &[u8]) -> Option<u64> {
    let mut agreed = None;
    for item in value.split(|&byte| byte == b',') {
        let length = parse_decimal(item.trim_ascii())?;
        match agreed {
            Some(previous) if previous != length => return None,
            _ => agreed = Some(length),
        }
    }
    agreed
}

/// Parses a non-empty run of ASCII digits into a `u64`, refusing anything else.
fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |total, &byte| {
        let digit = byte.is_ascii_digit().then(|| u64::from(byte - b'0'))?;
        total.checked_mul(10)?.checked_add(digit)
    })
}
