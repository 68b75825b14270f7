//! A sans-IO HTTP/1.1 codec for the proxy's hot path.
//!
//! hyper's server parser is lenient where a proxy at the edge must be strict: it silently
//! prefers `Transfer-Encoding` over `Content-Length` when both are present, which a proxy must
//! refuse outright (request smuggling). This module therefore parses heads with `httparse` (the
//! parser hyper itself uses), validates framing the way nginx and HAProxy do, and records header
//! positions as spans into the connection's read buffer so that forwarding a request allocates
//! nothing. Bodies are framed by [`chunked::ChunkedDecoder`] or a byte count; the IO lives in
//! the server and proxy modules.

pub mod chunked;
mod head;
pub mod headers;

pub use head::{
    parse_request, parse_response, BodyFraming, HeadError, HeaderSpan, RequestHead,
    ResponseFraming, ResponseHead, Span, Target, Version,
};

/// Longest request line accepted by default (method, target and version); longer gets 414.
pub const MAX_REQUEST_LINE_BYTES: usize = 8 * 1024;
/// Largest request or response head accepted by default (start line plus header section);
/// larger gets 431 (or, from the upstream, 502).
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Most header fields accepted in one head by default; more gets 431 (from the upstream, 502).
pub const MAX_HEADERS: usize = 100;
/// The highest the head size limit may be set to: heads are addressed with `u32` offsets, and
/// every connection may buffer a head this large.
pub const HEAD_BYTES_CEILING: usize = 16 * 1024 * 1024;
/// The highest the header count limit may be set to: the parser's field slots live on the
/// stack, 32 bytes each.
pub const HEADERS_CEILING: usize = 1000;

/// The size limits heads are parsed under (the same for requests and for the upstream's
/// responses, except the request line, which only requests have).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadLimits {
    /// Longest request line; longer gets 414.
    pub request_line_bytes: usize,
    /// Largest head, start line and header section with the blank line that ends it.
    pub head_bytes: usize,
    /// Most header fields in one head.
    pub headers: usize,
}

impl HeadLimits {
    /// The limits confab uses unless configured otherwise.
    pub const DEFAULT: HeadLimits = HeadLimits {
        request_line_bytes: MAX_REQUEST_LINE_BYTES,
        head_bytes: MAX_HEAD_BYTES,
        headers: MAX_HEADERS,
    };

    /// Checks that each limit lies between 1 and its ceiling, and that the request line fits
    /// in the head.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=HEAD_BYTES_CEILING).contains(&self.head_bytes) {
            return Err(format!(
                "the head size limit must lie between 1 and {HEAD_BYTES_CEILING} bytes"
            ));
        }
        if !(1..=self.head_bytes).contains(&self.request_line_bytes) {
            return Err("the request line limit must lie between 1 and the head size limit".into());
        }
        if !(1..=HEADERS_CEILING).contains(&self.headers) {
            return Err(format!(
                "the header count limit must lie between 1 and {HEADERS_CEILING}"
            ));
        }
        Ok(())
    }
}

impl Default for HeadLimits {
    fn default() -> Self {
        HeadLimits::DEFAULT
    }
}

#[cfg(test)]
mod tests;
