//! The one error type of confab's HTTP surface and its mapping to RFC 9457 problem documents.
//!
//! Every failure a client can see is a [`Problem`]: a stable machine code (the `type` URI's
//! last segment, which clients match on), a status, and a human detail. The mapping from cause
//! to status lives here and only here; the detail never carries addresses or OS error text.

use std::fmt::Write as _;

/// The media type of every error body.
pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// The prefix of every problem `type`.
pub const PROBLEM_TYPE_PREFIX: &str = "urn:confab:problem:";

/// What went wrong, as clients may match on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    BadRequest,
    AmbiguousPath,
    NotFound,
    MethodNotAllowed,
    Unauthorized,
    Forbidden,
    Unavailable,
    UriTooLong,
    RequestHeadTooLarge,
    UpstreamRefused,
    UpstreamUnreachable,
    UpstreamReset,
    UpstreamMalformed,
    UpstreamConnectTimeout,
    UpstreamTimeout,
    ShuttingDown,
    ContentTooLarge,
    RequestTimeout,
    Overloaded,
    Conflict,
    UpstreamCertificateUntrusted,
    UpstreamTlsFailed,
}

impl ProblemKind {
    /// Every kind, in declaration order (for API descriptions that list the codes).
    pub const ALL: [ProblemKind; 22] = [
        ProblemKind::BadRequest,
        ProblemKind::AmbiguousPath,
        ProblemKind::NotFound,
        ProblemKind::MethodNotAllowed,
        ProblemKind::Unauthorized,
        ProblemKind::Forbidden,
        ProblemKind::Unavailable,
        ProblemKind::UriTooLong,
        ProblemKind::RequestHeadTooLarge,
        ProblemKind::UpstreamRefused,
        ProblemKind::UpstreamUnreachable,
        ProblemKind::UpstreamReset,
        ProblemKind::UpstreamMalformed,
        ProblemKind::UpstreamConnectTimeout,
        ProblemKind::UpstreamTimeout,
        ProblemKind::ShuttingDown,
        ProblemKind::ContentTooLarge,
        ProblemKind::RequestTimeout,
        ProblemKind::Overloaded,
        ProblemKind::Conflict,
        ProblemKind::UpstreamCertificateUntrusted,
        ProblemKind::UpstreamTlsFailed,
    ];

    /// The full problem `type` URI of this kind.
    pub fn type_uri(self) -> String {
        format!("{PROBLEM_TYPE_PREFIX}{}", self.code())
    }

    /// The stable code that ends the problem `type`.
    pub fn code(self) -> &'static str {
        match self {
            ProblemKind::BadRequest => "bad-request",
            ProblemKind::AmbiguousPath => "ambiguous-path",
            ProblemKind::NotFound => "not-found",
            ProblemKind::MethodNotAllowed => "method-not-allowed",
            ProblemKind::Unauthorized => "unauthorized",
            ProblemKind::Forbidden => "forbidden",
            ProblemKind::Unavailable => "unavailable",
            ProblemKind::UriTooLong => "uri-too-long",
            ProblemKind::RequestHeadTooLarge => "request-head-too-large",
            ProblemKind::UpstreamRefused => "upstream-refused",
            ProblemKind::UpstreamUnreachable => "upstream-unreachable",
            ProblemKind::UpstreamReset => "upstream-reset",
            ProblemKind::UpstreamMalformed => "upstream-malformed",
            ProblemKind::UpstreamConnectTimeout => "upstream-connect-timeout",
            ProblemKind::UpstreamTimeout => "upstream-timeout",
            ProblemKind::ShuttingDown => "shutting-down",
            ProblemKind::ContentTooLarge => "content-too-large",
            ProblemKind::RequestTimeout => "request-timeout",
            ProblemKind::Overloaded => "overloaded",
            ProblemKind::Conflict => "conflict",
            ProblemKind::UpstreamCertificateUntrusted => "upstream-certificate-untrusted",
            ProblemKind::UpstreamTlsFailed => "upstream-tls-failed",
        }
    }

    /// The HTTP status this kind of problem is answered with.
    pub fn status(self) -> u16 {
        match self {
            ProblemKind::BadRequest | ProblemKind::AmbiguousPath => 400,
            ProblemKind::NotFound => 404,
            ProblemKind::MethodNotAllowed => 405,
            ProblemKind::Unauthorized => 401,
            ProblemKind::Forbidden => 403,
            ProblemKind::UriTooLong => 414,
            ProblemKind::RequestHeadTooLarge => 431,
            ProblemKind::UpstreamRefused
            | ProblemKind::UpstreamUnreachable
            | ProblemKind::UpstreamReset
            | ProblemKind::UpstreamMalformed
            | ProblemKind::UpstreamCertificateUntrusted
            | ProblemKind::UpstreamTlsFailed => 502,
            ProblemKind::RequestTimeout => 408,
            ProblemKind::ContentTooLarge => 413,
            ProblemKind::ShuttingDown | ProblemKind::Unavailable | ProblemKind::Overloaded => 503,
            ProblemKind::UpstreamConnectTimeout | ProblemKind::UpstreamTimeout => 504,
            ProblemKind::Conflict => 409,
        }
    }

    /// A short summary that does not change from occurrence to occurrence.
    pub fn title(self) -> &'static str {
        match self {
            ProblemKind::BadRequest => "Bad request",
            ProblemKind::AmbiguousPath => "Ambiguous request path",
            ProblemKind::NotFound => "Not found",
            ProblemKind::MethodNotAllowed => "Method not allowed",
            ProblemKind::Unauthorized => "Authentication required",
            ProblemKind::Forbidden => "Forbidden",
            ProblemKind::Unavailable => "Temporarily unavailable",
            ProblemKind::UriTooLong => "Request line too long",
            ProblemKind::RequestHeadTooLarge => "Request header section too large",
            ProblemKind::UpstreamRefused => "Upstream refused the connection",
            ProblemKind::UpstreamUnreachable => "Upstream unreachable",
            ProblemKind::UpstreamReset => "Upstream connection reset",
            ProblemKind::UpstreamMalformed => "Malformed upstream response",
            ProblemKind::UpstreamConnectTimeout => "Upstream connect timeout",
            ProblemKind::UpstreamTimeout => "Upstream response timeout",
            ProblemKind::ShuttingDown => "Shutting down",
            ProblemKind::ContentTooLarge => "Request body too large",
            ProblemKind::RequestTimeout => "Request too slow",
            ProblemKind::Overloaded => "Overloaded",
            ProblemKind::Conflict => "Conflict with the resource's state",
            ProblemKind::UpstreamCertificateUntrusted => "Upstream certificate not trusted",
            ProblemKind::UpstreamTlsFailed => "TLS handshake with the upstream failed",
        }
    }
}

/// One failure, ready to be rendered as a problem document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub kind: ProblemKind,
    pub detail: String,
    /// Methods to list in `Allow`, for [`ProblemKind::MethodNotAllowed`].
    pub allow: Option<&'static str>,
    /// Seconds to send in `Retry-After`, for answers that ask the client to come back.
    pub retry_after: Option<u32>,
}

impl Problem {
    pub fn new(kind: ProblemKind, detail: impl Into<String>) -> Problem {
        Problem {
            kind,
            detail: detail.into(),
            allow: None,
            retry_after: None,
        }
    }

    /// The same problem, asking the client to retry after `seconds`.
    pub fn with_retry_after(mut self, seconds: u32) -> Problem {
        self.retry_after = Some(seconds);
        self
    }

    /// A 405 listing the methods the resource accepts.
    pub fn method_not_allowed(allow: &'static str) -> Problem {
        Problem {
            kind: ProblemKind::MethodNotAllowed,
            detail: format!("this resource accepts {allow}"),
            allow: Some(allow),
            retry_after: None,
        }
    }

    /// The HTTP status of this problem.
    pub fn status(&self) -> u16 {
        self.kind.status()
    }

    /// The problem document as JSON.
    pub fn to_json(&self) -> String {
        let mut body = String::with_capacity(160 + self.detail.len());
        let _ = write!(
            body,
            r#"{{"type":"{}{}","title":{},"status":{},"detail":{}}}"#,
            PROBLEM_TYPE_PREFIX,
            self.kind.code(),
            json_string(self.kind.title()),
            self.status(),
            json_string(&self.detail),
        );
        body
    }
}

/// The members of a problem document as a typed value: what [`Problem::to_json`] writes, for
/// the API description (its schema and examples) and for clients that read problems back.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[schema(
    as = Problem,
    description = "An RFC 9457 problem document: the body of every error response.",
    example = json!(ProblemDocument::from(&Problem::new(
        ProblemKind::NotFound,
        "no such confab endpoint"
    )))
)]
pub struct ProblemDocument {
    /// Identifies the kind of problem: `urn:confab:problem:` and a stable code. Match on this.
    #[serde(rename = "type")]
    #[schema(schema_with = problem_type_schema)]
    pub type_uri: String,
    /// A short summary of the kind of problem; the same for every occurrence of a kind.
    #[schema(example = "Not found")]
    pub title: String,
    /// The HTTP status code of the response.
    #[schema(minimum = 400, maximum = 599, example = 404)]
    pub status: u16,
    /// What went wrong this time, for a human.
    #[schema(example = "no such confab endpoint")]
    pub detail: String,
}

impl From<&Problem> for ProblemDocument {
    fn from(problem: &Problem) -> ProblemDocument {
        ProblemDocument {
            type_uri: problem.kind.type_uri(),
            title: problem.kind.title().to_owned(),
            status: problem.status(),
            detail: problem.detail.clone(),
        }
    }
}

/// The schema of `type`: one of the URIs of [`ProblemKind::ALL`].
fn problem_type_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .format(Some(utoipa::openapi::SchemaFormat::Custom("uri".into())))
        .enum_values(Some(ProblemKind::ALL.map(ProblemKind::type_uri)))
        .examples([ProblemKind::NotFound.type_uri()])
        .build()
}

fn json_string(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_rfc9457_members() {
        let problem = Problem::new(ProblemKind::UpstreamTimeout, "no \"answer\"");
        let value: serde_json::Value =
            serde_json::from_str(&problem.to_json()).expect("valid JSON");
        assert_eq!(value["type"], "urn:confab:problem:upstream-timeout");
        assert_eq!(value["status"], 504);
        assert_eq!(value["title"], "Upstream response timeout");
        assert_eq!(value["detail"], "no \"answer\"");
    }

    #[test]
    fn document_type_mirrors_to_json() {
        for kind in ProblemKind::ALL {
            let problem = Problem::new(kind, "a \"quoted\" detail");
            let typed = serde_json::to_string(&ProblemDocument::from(&problem)).expect("serialize");
            assert_eq!(typed, problem.to_json(), "{kind:?}");
            let back: ProblemDocument = serde_json::from_str(&problem.to_json()).expect("parse");
            assert_eq!(back.status, kind.status());
        }
    }

    #[test]
    fn all_lists_every_kind_once() {
        // The match is exhaustive: a new kind stops this test from compiling until it is
        // given a place here and in `ProblemKind::ALL`.
        let position = |kind: ProblemKind| match kind {
            ProblemKind::BadRequest => 0,
            ProblemKind::AmbiguousPath => 1,
            ProblemKind::NotFound => 2,
            ProblemKind::MethodNotAllowed => 3,
            ProblemKind::Unauthorized => 4,
            ProblemKind::Forbidden => 5,
            ProblemKind::Unavailable => 6,
            ProblemKind::UriTooLong => 7,
            ProblemKind::RequestHeadTooLarge => 8,
            ProblemKind::UpstreamRefused => 9,
            ProblemKind::UpstreamUnreachable => 10,
            ProblemKind::UpstreamReset => 11,
            ProblemKind::UpstreamMalformed => 12,
            ProblemKind::UpstreamConnectTimeout => 13,
            ProblemKind::UpstreamTimeout => 14,
            ProblemKind::ShuttingDown => 15,
            ProblemKind::ContentTooLarge => 16,
            ProblemKind::RequestTimeout => 17,
            ProblemKind::Overloaded => 18,
            ProblemKind::Conflict => 19,
            ProblemKind::UpstreamCertificateUntrusted => 20,
            ProblemKind::UpstreamTlsFailed => 21,
        };
        for (index, kind) in ProblemKind::ALL.into_iter().enumerate() {
            assert_eq!(position(kind), index, "{kind:?}");
        }
    }
}
