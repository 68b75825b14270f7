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

/// Longest request line accepted (method, target and version); longer gets 414.
pub const MAX_REQUEST_LINE_BYTES: usize = 8 * 1024;
/// Largest request or response head (start line plus header section); larger gets 431 (or, from
/// the upstream, 502).
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Most header fields accepted in one head; more gets 431.
pub const MAX_HEADERS: usize = 100;

#[cfg(test)]
mod tests;
