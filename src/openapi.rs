//! confab's API description: an OpenAPI 3.1 document generated from the Rust types.
//!
//! Response schemas come from the types that produce the bodies: the statistics document of
//! `stats::render` (named here through [`StatsBody`], since that module is private) and
//! [`ProblemDocument`] for every error. Each operation is described by a `#[utoipa::path]`
//! attribute on a function of `operations`; those functions are never called. Problem examples
//! are rendered by [`Problem`] itself, so they show exactly what confab sends.
//!
//! The conversations endpoints serve the types of `crate::conversations`, which carry no schema
//! derive of their own; [`ConversationPage`], [`ConversationDetail`], [`CompanySummary`] and
//! [`TagSummary`] state their shapes, and the tests check that the real types serialize to
//! documents these schemas accept.
//!
//! [`document`] builds the document; [`json`] renders it once per process for `/openapi.json`,
//! and `assets/docs.html` (served at `/docs`) renders that in a browser.

pub mod jobs;

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoParams, Modify, OpenApi, ToSchema};

use crate::problem::{Problem, ProblemDocument, ProblemKind};

/// The name of the admin bearer-token security scheme.
pub const BEARER_SCHEME: &str = "bearer";

/// What the document says about confab as a whole (CommonMark).
const DESCRIPTION: &str = "\
confab is a thread-per-core HTTP/1.1 API proxy that also serves conversation data and usage \
statistics. This document describes confab's own endpoints.

**Everything else is proxied.** A request whose path is not one of confab's own routes \
(`/healthz`, `/metrics`, `/openapi.json`, `/docs`, `/dashboard`, and `/api` with everything \
below it) is forwarded unchanged to the configured upstream API, and the upstream's response is \
relayed as it is. Those paths belong to the upstream and are not described here. When the \
upstream fails, confab answers for it with a problem document: 502 (`upstream-refused`, \
`upstream-unreachable`, `upstream-reset`, `upstream-malformed`, and for an `https://` upstream \
`upstream-certificate-untrusted`, `upstream-tls-failed`) or 504 \
(`upstream-connect-timeout`, `upstream-timeout`).

**Errors.** Every error body is an RFC 9457 problem document \
(`application/problem+json`, schema `Problem`). Its `type` is `urn:confab:problem:` followed by \
a stable code: match on `type`, never on `title` or `detail`.

**Methods.** Every `GET` endpoint also answers `HEAD`. Any other method on one of confab's own \
routes is answered `405` (`method-not-allowed`) with an `Allow` header.

**Requests any route may refuse.** `400` (`bad-request`) for malformed HTTP framing, `400` \
(`ambiguous-path`) for a path that routes differently once percent-decoded and normalized, \
`414` (`uri-too-long`) for a request line over 8 KiB, `431` (`request-head-too-large`) for a \
header section over 64 KiB or 100 fields.";

/// The whole API description; see the module documentation.
#[derive(OpenApi)]
#[openapi(
    info(title = "confab", description = DESCRIPTION),
    paths(
        operations::healthz,
        operations::healthz_head,
        operations::list_conversations,
        operations::get_conversation,
        operations::list_companies,
        operations::list_tags,
        operations::get_stats,
        operations::reset_stats,
        jobs::operations::submit_job,
        jobs::operations::list_jobs,
        jobs::operations::get_job,
        jobs::operations::cancel_job,
        operations::metrics,
        operations::dashboard,
        operations::openapi_json,
        operations::docs,
    ),
    components(schemas(ProblemDocument)),
    modifiers(&BearerSecurity),
    tags(
        (name = "health", description = "Whether confab is serving."),
        (name = "conversations", description = "The conversation dataset: conversations, \
            filtered by company and tags, and the companies and tags to filter by."),
        (name = "statistics", description = "Usage statistics of the proxy and of confab's own \
            endpoints: JSON, Prometheus text, and a dashboard page."),
        (name = "jobs", description = "Analyses run in parallel over every core, and dataset \
            ingests and reloads run one at a time on the serial queue; all journaled."),
        (name = "documentation", description = "This document, and a page that renders it."),
    )
)]
struct ApiDoc;

/// Builds the OpenAPI 3.1 document of confab's own endpoints.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The document as pretty-printed JSON, rendered on first use and kept for the process.
pub fn json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        document().to_pretty_json().unwrap_or_else(|error| {
            tracing::error!(%error, "the OpenAPI document could not be rendered");
            String::from("{}")
        })
    })
}

/// Adds the admin bearer-token scheme, which the derive cannot declare.
struct BearerSecurity;

impl Modify for BearerSecurity {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some(
                "The admin token confab was started with (`--admin-token`), sent as \
                 `Authorization: Bearer <token>`. Without `--admin-token` admin endpoints \
                 answer 403.",
            ))
            .build();
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(BEARER_SCHEME, SecurityScheme::Http(scheme));
    }
}

/// The start of a `/metrics` answer, for its example.
const METRICS_EXAMPLE: &str = "\
# HELP confab_proxy_requests_total Requests forwarded to the upstream, by route, method and status \
sent to the client.
# TYPE confab_proxy_requests_total counter
confab_proxy_requests_total{route=\"/categories\",method=\"GET\",status=\"200\"} 1510
";

/// A problem document exactly as confab renders it, for response examples.
fn problem(kind: ProblemKind, detail: &str) -> ProblemDocument {
    ProblemDocument::from(&Problem::new(kind, detail))
}

/// Stands for the `/api/stats` document in the descriptions below. The statistics types live
/// in a module private to `stats`, so `stats::render` implements the schema traits for this
/// type by delegating to the real `StatsDocument`.
pub struct StatsBody;

// === The conversations endpoints ===

/// A conversation id as the dataset has it: a string, or an integer when every id column of
/// the dataset is an integer column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum ConversationId {
    Text(String),
    Integer(i64),
}

/// One page of the conversations matching a query, in dataset order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "conversation_ids": ["ad370369", "b3475ffa", "93aaff80"],
    "total": 8725,
    "page": 1,
    "per_page": 3
}))]
pub struct ConversationPage {
    /// The ids on this page.
    pub conversation_ids: Vec<ConversationId>,
    /// How many conversations match, over all pages.
    #[schema(minimum = 0)]
    pub total: u64,
    /// The page returned (1-based); past the last page the list is empty.
    #[schema(minimum = 1)]
    pub page: u64,
    /// The page size used.
    #[schema(minimum = 1, maximum = 1000)]
    pub per_page: u32,
}

/// Everything known about one conversation. A part the dataset does not have is `null`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "id": "ad370369",
    "company_id": "920382d2",
    "company": "Amazon.com, Inc.",
    "tags": ["Competition"],
    "transcript_id": "0ec79fd1",
    "transcript_title": "Vice President of Business Development at Amazon.com",
    "question": "How does Amazon.com think about unit economics, in terms of competition?",
    "answer": "From what I saw, Amazon.com treats competition as central to unit economics."
}))]
pub struct ConversationDetail {
    pub id: ConversationId,
    /// The id of the conversation's company.
    #[schema(required = true)]
    pub company_id: Option<String>,
    /// The name of the conversation's company.
    #[schema(required = true)]
    pub company: Option<String>,
    pub tags: Vec<String>,
    #[schema(required = true)]
    pub transcript_id: Option<String>,
    #[schema(required = true)]
    pub transcript_title: Option<String>,
    #[schema(required = true)]
    pub question: Option<String>,
    #[schema(required = true)]
    pub answer: Option<String>,
}

/// One company, with the key the `company` parameter accepts and its conversation count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "id": "920382d2", "name": "Amazon.com, Inc.", "key": "amazon", "conversations": 8725
}))]
pub struct CompanySummary {
    pub id: String,
    pub name: String,
    /// What the `company` parameter of `/api/conversations` takes for this company: the
    /// leading word of the name, lower-cased.
    pub key: String,
    #[schema(minimum = 0)]
    pub conversations: u64,
}

/// One tag (its first spelling in the data) and how many conversations carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"tag": "Pricing", "conversations": 1567}))]
pub struct TagSummary {
    pub tag: String,
    #[schema(minimum = 0)]
    pub conversations: u64,
}

/// The query parameters of `GET /api/conversations`. Unknown parameters are ignored; when a
/// parameter is repeated, the last one counts.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConversationsQuery {
    /// Only conversations of this company, by its `key` (see `/api/companies`). Letter case
    /// is ignored; an empty value means no company filter.
    #[param(nullable = false, example = "amazon")]
    pub company: Option<String>,
    /// Only conversations with these tags: a comma-separated list of at most 64 distinct
    /// tags. Letter case and blanks around tags are ignored; an empty value means no tag
    /// filter.
    #[param(nullable = false, example = "pricing,growth")]
    pub tags: Option<String>,
    /// Whether a conversation needs `any` of the tags or `all` of them. Letter case is
    /// ignored.
    #[serde(rename = "match")]
    #[param(schema_with = tag_match_schema)]
    pub tag_match: Option<String>,
    /// The page to return, from 1.
    #[param(
        nullable = false,
        minimum = 1,
        maximum = 18446744073709551615_u64,
        default = 1,
        example = 1
    )]
    pub page: Option<u64>,
    /// Conversations per page.
    #[param(
        nullable = false,
        minimum = 1,
        maximum = 1000,
        default = 50,
        example = 50
    )]
    pub per_page: Option<u32>,
}

/// The schema of the `match` parameter (`crate::conversations::TagMatch`), with its default.
fn tag_match_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(["any", "all"]))
        .default(Some(serde_json::json!("any")))
        .description(Some(
            "Whether a conversation needs `any` of the tags or `all` of them. Letter case is \
             ignored.",
        ))
        .build()
}

/// The query parameters of `GET /api/stats`. Unknown parameters are ignored.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// Start of the window, an RFC 3339 date-time; defaults to the start of the stored
    /// history. Earlier times are clamped to it.
    #[param(nullable = false, format = DateTime, example = "2026-12-03T16:00:00Z")]
    pub from: Option<String>,
    /// End of the window, an RFC 3339 date-time not before `from`; defaults to now.
    #[param(nullable = false, format = DateTime, example = "2026-12-03T17:00:00Z")]
    pub to: Option<String>,
}

/// The operations. The functions are never called: each carries the description of one
/// operation for [`ApiDoc`] to collect.
#[allow(dead_code)]
mod operations {
    use super::*;

    /// Health check
    ///
    /// `200` while the process serves. Never proxied, never touches the upstream.
    #[utoipa::path(
        get,
        path = "/healthz",
        tag = "health",
        responses(
            (status = 200, description = "confab is serving", body = inline(Health),
                example = json!({"status": "ok"})),
        )
    )]
    fn healthz() {}

    /// Health check, headers only
    ///
    /// The same answer as `GET /healthz`, without its body.
    #[utoipa::path(
        head,
        path = "/healthz",
        tag = "health",
        responses((status = 200, description = "confab is serving (no body)"))
    )]
    fn healthz_head() {}

    /// List conversations
    ///
    /// The ids of the conversations that match the filters, one page at a time, with the total
    /// number of matches. Without filters every conversation matches.
    #[utoipa::path(
        get,
        path = "/api/conversations",
        tag = "conversations",
        params(ConversationsQuery),
        responses(
            (status = 200, description = "One page of matching conversation ids",
                body = ConversationPage),
            (status = 400, description = "A parameter has a bad value; `detail` names it",
                body = ProblemDocument, content_type = "application/problem+json",
                example = json!(problem(
                    ProblemKind::BadRequest,
                    "parameter per_page: must be between 1 and 1000, got 5000"
                ))),
        )
    )]
    fn list_conversations() {}

    /// Get one conversation
    ///
    /// Everything known about the conversation with this id.
    #[utoipa::path(
        get,
        path = "/api/conversations/{id}",
        tag = "conversations",
        params(("id" = String, Path, description = "The conversation id", example = "ad370369")),
        responses(
            (status = 200, description = "The conversation", body = ConversationDetail),
            (status = 404, description = "No conversation has this id",
                body = ProblemDocument, content_type = "application/problem+json",
                example = json!(problem(
                    ProblemKind::NotFound,
                    "no conversation has the id \"ffffffff\""
                ))),
        )
    )]
    fn get_conversation() {}

    /// List companies
    ///
    /// Every company with its conversation count; `key` is what the `company` parameter of
    /// `GET /api/conversations` takes.
    #[utoipa::path(
        get,
        path = "/api/companies",
        tag = "conversations",
        responses(
            (status = 200, description = "Every company", body = [CompanySummary]),
        )
    )]
    fn list_companies() {}

    /// List tags
    ///
    /// Every tag with the number of conversations that carry it.
    #[utoipa::path(
        get,
        path = "/api/tags",
        tag = "conversations",
        responses(
            (status = 200, description = "Every tag", body = [TagSummary]),
        )
    )]
    fn list_tags() {}

    /// Usage statistics
    ///
    /// Request counts, success rates, latency percentiles and traffic of the proxy and of
    /// confab's own endpoints over a window, with per-second and per-minute series. The
    /// figures of minutes before the last restart come from the statistics store.
    #[utoipa::path(
        get,
        path = "/api/stats",
        tag = "statistics",
        params(StatsQuery),
        responses(
            (status = 200, description = "The statistics of the window", body = StatsBody),
            (status = 400, description = "`from` or `to` is not an RFC 3339 date-time after \
                1970, or the window starts after it ends",
                body = ProblemDocument, content_type = "application/problem+json",
                example = json!(problem(
                    ProblemKind::BadRequest,
                    "parameter to: \"yesterday\" is not an RFC 3339 time"
                ))),
            (status = 503, description = "The statistics did not answer in time",
                body = ProblemDocument, content_type = "application/problem+json",
                example = json!(problem(
                    ProblemKind::Unavailable,
                    "the statistics are busy; retry shortly"
                ))),
        )
    )]
    fn get_stats() {}

    /// Reset the statistics
    ///
    /// Forgets every figure, in memory and in the store; the history starts again now. Needs
    /// the admin token. A request body, if any, is ignored.
    #[utoipa::path(
        post,
        path = "/api/stats/reset",
        tag = "statistics",
        security(("bearer" = [])),
        responses(
            (status = 200, description = "The statistics were reset", body = inline(ResetDone),
                example = json!({"status": "reset"})),
            (status = 401, description = "No bearer token was sent",
                body = ProblemDocument, content_type = "application/problem+json",
                example = json!(problem(
                    ProblemKind::Unauthorized,
                    "send the admin token as Authorization: Bearer <token>"
                ))),
            (status = 403, description = "The token is wrong, or admin endpoints are disabled",
                body = ProblemDocument, content_type = "application/problem+json",
                examples(
                    ("wrong token" = (summary = "The token is wrong",
                        value = json!(problem(ProblemKind::Forbidden, "the admin token is wrong")))),
                    ("disabled" = (summary = "confab runs without --admin-token",
                        value = json!(problem(
                            ProblemKind::Forbidden,
                            "admin endpoints are disabled; start confab with --admin-token to \
                             enable them"
                        )))),
                )),
            (status = 503, description = "The statistics or their store could not be reset",
                body = ProblemDocument, content_type = "application/problem+json",
                example = json!(problem(
                    ProblemKind::Unavailable,
                    "the statistics are busy; retry shortly"
                ))),
        )
    )]
    fn reset_stats() {}

    /// Prometheus metrics
    ///
    /// The usage statistics in the Prometheus text exposition format, for scraping.
    #[utoipa::path(
        get,
        path = "/metrics",
        tag = "statistics",
        responses(
            (status = 200, description = "Metrics in the Prometheus text format",
                body = String, content_type = "text/plain; version=0.0.4",
                example = json!(METRICS_EXAMPLE)),
            (status = 503, description = "The statistics did not answer in time",
                body = ProblemDocument, content_type = "application/problem+json",
                example = json!(problem(
                    ProblemKind::Unavailable,
                    "the statistics are busy; retry shortly"
                ))),
        )
    )]
    fn metrics() {}

    /// Statistics dashboard
    ///
    /// A self-contained page that charts `GET /api/stats`.
    #[utoipa::path(
        get,
        path = "/dashboard",
        tag = "statistics",
        responses((status = 200, description = "The dashboard page", body = String,
            content_type = "text/html"))
    )]
    fn dashboard() {}

    /// This document
    ///
    /// The OpenAPI 3.1 description of confab's own endpoints, as JSON.
    #[utoipa::path(
        get,
        path = "/openapi.json",
        tag = "documentation",
        responses((status = 200, description = "The OpenAPI document",
            body = inline(serde_json::Value), content_type = "application/json"))
    )]
    fn openapi_json() {}

    /// Interactive documentation
    ///
    /// A self-contained page that renders this document, with a form to try each operation.
    #[utoipa::path(
        get,
        path = "/docs",
        tag = "documentation",
        responses((status = 200, description = "The documentation page", body = String,
            content_type = "text/html"))
    )]
    fn docs() {}

    /// The answer of `GET /healthz`.
    #[derive(ToSchema)]
    struct Health {
        #[schema(inline)]
        status: HealthStatus,
    }

    #[derive(ToSchema)]
    #[schema(rename_all = "lowercase")]
    enum HealthStatus {
        Ok,
    }

    /// The answer of `POST /api/stats/reset`.
    #[derive(ToSchema)]
    struct ResetDone {
        #[schema(inline)]
        status: ResetStatus,
    }

    #[derive(ToSchema)]
    #[schema(rename_all = "lowercase")]
    enum ResetStatus {
        Reset,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conversations::{DEFAULT_PER_PAGE, MAX_PER_PAGE};

    fn operation<'a>(
        document: &'a serde_json::Value,
        method: &str,
        path: &str,
    ) -> &'a serde_json::Value {
        let operation = &document["paths"][path][method];
        assert!(operation.is_object(), "{method} {path} is not described");
        operation
    }

    #[test]
    fn json_is_the_document_rendered_once() {
        let parsed: serde_json::Value = serde_json::from_str(json()).expect("valid JSON");
        let built = serde_json::to_value(document()).expect("serializable");
        assert_eq!(parsed, built);
        assert_eq!(parsed["openapi"], "3.1.0");
        assert!(std::ptr::eq(json(), json()), "rendered once");
    }

    #[test]
    fn describes_every_own_route() {
        let document = serde_json::to_value(document()).expect("serializable");
        for (method, path) in [
            ("get", "/healthz"),
            ("head", "/healthz"),
            ("get", "/metrics"),
            ("get", "/api/stats"),
            ("post", "/api/stats/reset"),
            ("get", "/dashboard"),
            ("get", "/docs"),
            ("get", "/openapi.json"),
            ("get", "/api/conversations"),
            ("get", "/api/conversations/{id}"),
            ("get", "/api/companies"),
            ("get", "/api/tags"),
            ("get", "/api/jobs"),
            ("post", "/api/jobs"),
            ("get", "/api/jobs/{id}"),
            ("delete", "/api/jobs/{id}"),
        ] {
            operation(&document, method, path);
        }
        let metrics = operation(&document, "get", "/metrics");
        assert!(metrics["responses"]["200"]["content"]["text/plain; version=0.0.4"].is_object());
        let stats = operation(&document, "get", "/api/stats");
        let body = &stats["responses"]["200"]["content"]["application/json"]["schema"];
        assert_eq!(body["$ref"], "#/components/schemas/StatsDocument");
        let schemas = &document["components"]["schemas"];
        for name in ["StatsDocument", "ScopeStats", "Latency", "Point", "Problem"] {
            assert!(schemas[name].is_object(), "schema {name} is missing");
        }
    }

    #[test]
    fn conversations_parameters_carry_defaults_and_bounds() {
        let document = serde_json::to_value(document()).expect("serializable");
        let list = operation(&document, "get", "/api/conversations");
        let parameters = list["parameters"].as_array().expect("parameters");
        let schema = |name: &str| {
            parameters
                .iter()
                .find(|parameter| parameter["name"] == name)
                .map(|parameter| parameter["schema"].clone())
                .unwrap_or_else(|| panic!("no parameter {name}"))
        };
        assert_eq!(schema("page")["default"], 1);
        assert_eq!(schema("page")["minimum"], 1);
        assert_eq!(schema("page")["maximum"], u64::MAX);
        assert_eq!(schema("per_page")["default"], DEFAULT_PER_PAGE);
        assert_eq!(schema("per_page")["maximum"], MAX_PER_PAGE);
        let page = &document["components"]["schemas"]["ConversationPage"];
        assert_eq!(page["properties"]["per_page"]["maximum"], MAX_PER_PAGE);
        assert_eq!(schema("match")["enum"], serde_json::json!(["any", "all"]));
        assert_eq!(schema("match")["default"], "any");
        assert_eq!(schema("tags")["type"], "string");
        for parameter in parameters {
            assert_eq!(parameter["in"], "query");
            assert_ne!(parameter["required"], true, "{}", parameter["name"]);
        }
    }

    /// The types the conversations endpoints serialize fit the schemas that describe them.
    #[test]
    fn conversations_types_fit_their_schemas() {
        use crate::conversations as real;
        let document = serde_json::to_value(document()).expect("serializable");
        let detail = |id: real::ConversationId, known: bool| real::ConversationDetail {
            id,
            company_id: known.then(|| "co-1".to_owned()),
            company: known.then(|| "Acme Corporation".to_owned()),
            tags: vec!["billing".to_owned()],
            transcript_id: known.then(|| "t-1".to_owned()),
            transcript_title: known.then(|| "Review".to_owned()),
            question: known.then(|| "Why?".to_owned()),
            answer: None,
        };
        let page = real::QueryPage {
            conversation_ids: vec![
                real::ConversationId::Text("c-1".to_owned()),
                real::ConversationId::Integer(7),
            ],
            total: 2,
            page: 1,
            per_page: MAX_PER_PAGE,
        };
        let company = real::CompanySummary {
            id: "co-1".to_owned(),
            name: "Acme Corporation".to_owned(),
            key: "acme".to_owned(),
            conversations: 3,
        };
        let tag = real::TagSummary {
            tag: "billing".to_owned(),
            conversations: 3,
        };
        let cases = [
            ("ConversationPage", serde_json::to_value(page)),
            (
                "ConversationDetail",
                serde_json::to_value(detail(real::ConversationId::Text("c-1".into()), true)),
            ),
            (
                "ConversationDetail",
                serde_json::to_value(detail(real::ConversationId::Integer(7), false)),
            ),
            ("CompanySummary", serde_json::to_value(company)),
            ("TagSummary", serde_json::to_value(tag)),
        ];
        for (name, value) in cases {
            let value = value.expect("serializable");
            let schema = serde_json::json!({
                "$ref": format!("#/components/schemas/{name}"),
                "components": document["components"],
            });
            let validator = jsonschema::validator_for(&schema).expect("a valid schema");
            let errors: Vec<String> = validator
                .iter_errors(&value)
                .map(|e| e.to_string())
                .collect();
            assert!(errors.is_empty(), "{name} {value}: {errors:?}");
        }
    }

    /// Problem examples are what `Problem` renders, under the status they are listed at.
    #[test]
    fn problem_examples_match_their_status() {
        let document = serde_json::to_value(document()).expect("serializable");
        let mut seen = 0;
        for item in document["paths"].as_object().expect("paths").values() {
            for operation in item.as_object().expect("path item").values() {
                for (status, response) in operation["responses"].as_object().expect("responses") {
                    let media = &response["content"]["application/problem+json"];
                    let mut examples: Vec<&serde_json::Value> =
                        media.get("example").into_iter().collect();
                    if let Some(named) = media["examples"].as_object() {
                        examples.extend(named.values().map(|example| &example["value"]));
                    }
                    for example in examples {
                        let kind = ProblemKind::ALL
                            .into_iter()
                            .find(|kind| example["type"] == kind.type_uri())
                            .unwrap_or_else(|| panic!("unknown type {}", example["type"]));
                        assert_eq!(status.parse::<u16>().ok(), Some(kind.status()));
                        assert_eq!(example["title"], kind.title());
                        seen += 1;
                    }
                }
            }
        }
        assert!(seen >= 9, "only {seen} problem examples");
    }
}
