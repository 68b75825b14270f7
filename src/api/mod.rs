//! confab's own endpoints: health, conversations, statistics, metrics, the dashboard.
//!
//! Each request is copied out of the connection's buffer into an [`OwnRequest`] (these routes
//! are not the proxy's hot path), answered by [`answer`], and counted under a fixed route name
//! so that the statistics stay bounded.

mod conversations;
mod jobs;

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use crate::jobs::Jobs;
use crate::problem::{Problem, ProblemKind};
use crate::routing::Route;
use crate::server::connection::OwnBody;
use crate::stats::{parse_rfc3339, Query, StatsHandle};

/// Longest wait for the statistics aggregator to answer.
pub const STATS_QUERY_TIMEOUT: Duration = Duration::from_secs(5);
/// The dashboard page, embedded in the binary.
const DASHBOARD_HTML: &str = include_str!("../../assets/dashboard.html");
/// The interactive API documentation page, embedded in the binary; it renders `/openapi.json`.
const DOCS_HTML: &str = include_str!("../../assets/docs.html");
/// Content type of the Prometheus text format.
const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// Content type of every JSON answer.
pub const JSON: &str = "application/json";
/// Content type of the HTML pages.
const HTML: &str = "text/html; charset=utf-8";
/// The health answer.
const HEALTHY: &[u8] = br#"{"status":"ok"}"#;

/// What the own endpoints need of a request, copied out of the read buffer.
#[derive(Debug, Clone)]
pub struct OwnRequest {
    pub method: String,
    pub route: Route,
    /// The normalized path.
    pub path: String,
    pub query: Option<String>,
    pub authorization: Option<String>,
    /// The request body, read up to the own endpoints' limit.
    pub body: OwnBody,
}

/// A successful answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub content_type: &'static str,
    /// A body rendered for this request, or one built into the binary (sent without a copy).
    pub body: Cow<'static, [u8]>,
}

impl Answer {
    fn json(body: String) -> Answer {
        Answer::bytes(JSON, body.into_bytes())
    }

    /// A 200 answer with this body.
    pub fn bytes(content_type: &'static str, body: Vec<u8>) -> Answer {
        Answer {
            status: 200,
            content_type,
            body: Cow::Owned(body),
        }
    }

    /// A 200 answer with a body that never changes.
    fn fixed(content_type: &'static str, body: &'static [u8]) -> Answer {
        Answer {
            status: 200,
            content_type,
            body: Cow::Borrowed(body),
        }
    }
}

/// What every worker's own endpoints share.
#[derive(Clone)]
pub struct ApiContext {
    pub stats: StatsHandle,
    /// The bearer token of admin endpoints; `None` disables them.
    pub admin_token: Option<String>,
    /// The job service, with the served datasets the conversations endpoints answer from.
    pub jobs: Arc<Jobs>,
}

/// Answers an own-endpoint request. Returns the route name it is counted under.
pub async fn answer(
    context: &ApiContext,
    request: &OwnRequest,
) -> (&'static str, Result<Answer, Problem>) {
    let get = matches!(request.method.as_str(), "GET" | "HEAD");
    match (request.route, request.path.as_str()) {
        (Route::Healthz, _) if get => ("/healthz", Ok(Answer::fixed(JSON, HEALTHY))),
        (Route::Healthz, _) => ("/healthz", Err(Problem::method_not_allowed("GET, HEAD"))),
        (Route::Metrics, _) if get => ("/metrics", metrics(context).await),
        (Route::Metrics, _) => ("/metrics", Err(Problem::method_not_allowed("GET, HEAD"))),
        (Route::Dashboard, "/dashboard") if get => (
            "/dashboard",
            Ok(Answer::fixed(HTML, DASHBOARD_HTML.as_bytes())),
        ),
        (Route::Dashboard, "/dashboard") => {
            ("/dashboard", Err(Problem::method_not_allowed("GET, HEAD")))
        }
        (Route::OpenApi, _) if get => (
            "/openapi.json",
            Ok(Answer::fixed(JSON, crate::openapi::json().as_bytes())),
        ),
        (Route::OpenApi, _) => (
            "/openapi.json",
            Err(Problem::method_not_allowed("GET, HEAD")),
        ),
        (Route::Docs, "/docs") if get => ("/docs", Ok(Answer::fixed(HTML, DOCS_HTML.as_bytes()))),
        (Route::Docs, "/docs") => ("/docs", Err(Problem::method_not_allowed("GET, HEAD"))),
        (Route::Api, "/api/stats") if get => ("/api/stats", stats(context, request).await),
        (Route::Api, "/api/stats") => ("/api/stats", Err(Problem::method_not_allowed("GET, HEAD"))),
        (Route::Api, "/api/stats/reset") => ("/api/stats/reset", reset(context, request).await),
        (Route::Api, path) if path == "/api/jobs" || path.starts_with("/api/jobs/") => {
            jobs::answer(context, request).await
        }
        (Route::Api, _) => {
            let index = context.jobs.catalog().snapshot();
            conversations::answer(&index, request).unwrap_or_else(not_found)
        }
        _ => not_found(),
    }
}

fn not_found() -> (&'static str, Result<Answer, Problem>) {
    (
        crate::stats::OTHER_ROUTE,
        Err(Problem::new(
            ProblemKind::NotFound,
            "no such confab endpoint",
        )),
    )
}

async fn metrics(context: &ApiContext) -> Result<Answer, Problem> {
    let (reply, answer) = futures_channel::oneshot::channel();
    let text = ask(context, Query::Prometheus { reply }, answer).await?;
    Ok(Answer::bytes(PROMETHEUS_CONTENT_TYPE, text.into_bytes()))
}

async fn stats(context: &ApiContext, request: &OwnRequest) -> Result<Answer, Problem> {
    let (from, to) = window(request.query.as_deref())?;
    let (reply, answer) = futures_channel::oneshot::channel();
    ask(context, Query::Json { from, to, reply }, answer)
        .await
        .map(Answer::json)
}

/// Reads `from` and `to` (RFC 3339) from a query string; unknown parameters are ignored.
fn window(query: Option<&str>) -> Result<(Option<u64>, Option<u64>), Problem> {
    let mut window = (None, None);
    for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        let slot = match name.as_ref() {
            "from" => &mut window.0,
            "to" => &mut window.1,
            _ => continue,
        };
        let parsed = parse_rfc3339(&value).ok_or_else(|| {
            Problem::new(
                ProblemKind::BadRequest,
                format!("parameter {name}: {value:?} is not an RFC 3339 time"),
            )
        })?;
        *slot = Some(parsed);
    }
    if let (Some(from), Some(to)) = window {
        if from > to {
            return Err(Problem::new(
                ProblemKind::BadRequest,
                "parameter from: the window starts after it ends",
            ));
        }
    }
    Ok(window)
}

async fn reset(context: &ApiContext, request: &OwnRequest) -> Result<Answer, Problem> {
    if request.method != "POST" {
        return Err(Problem::method_not_allowed("POST"));
    }
    authorize(context, request)?;
    let (reply, answer) = futures_channel::oneshot::channel();
    ask(context, Query::Reset { reply }, answer)
        .await?
        .map_err(|error| Problem::new(ProblemKind::Unavailable, error))?;
    Ok(Answer::json(r#"{"status":"reset"}"#.into()))
}

/// Checks the admin bearer token: 403 when admin endpoints are disabled or the token is wrong,
/// 401 when none was sent.
pub fn authorize(context: &ApiContext, request: &OwnRequest) -> Result<(), Problem> {
    let Some(expected) = &context.admin_token else {
        return Err(Problem::new(
            ProblemKind::Forbidden,
            "admin endpoints are disabled; start confab with --admin-token to enable them",
        ));
    };
    let sent = request
        .authorization
        .as_deref()
        .and_then(|value| value.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    match sent {
        None => Err(Problem::new(
            ProblemKind::Unauthorized,
            "send the admin token as Authorization: Bearer <token>",
        )),
        Some(token) if constant_time_eq(token.as_bytes(), expected.as_bytes()) => Ok(()),
        Some(_) => Err(Problem::new(
            ProblemKind::Forbidden,
            "the admin token is wrong",
        )),
    }
}

/// Compares without an early exit, so the time taken does not reveal how much of a guessed
/// token was right. Four lines do not warrant a dependency.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

/// Sends a query to the aggregator and waits for its answer.
async fn ask<T>(
    context: &ApiContext,
    query: Query,
    answer: futures_channel::oneshot::Receiver<T>,
) -> Result<T, Problem> {
    let busy = || {
        Problem::new(
            ProblemKind::Unavailable,
            "the statistics are busy; retry shortly",
        )
    };
    if !context.stats.ask(query) {
        return Err(busy());
    }
    match monoio::time::timeout(STATS_QUERY_TIMEOUT, answer).await {
        Ok(Ok(value)) => Ok(value),
        _ => Err(busy()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_parse_rfc3339_and_refuse_the_rest() {
        assert_eq!(window(None), Ok((None, None)));
        let parsed = window(Some("from=2026-12-03T17:00:00Z&x=1")).expect("valid");
        assert_eq!(parsed.0, parse_rfc3339("2026-12-03T17:00:00Z"));
        let bad = window(Some("to=yesterday")).expect_err("invalid");
        assert!(bad.detail.contains("to"));
        assert!(window(Some("from=2026-12-03T18:00:00Z&to=2026-12-03T17:00:00Z")).is_err());
    }

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secrets"));
    }
}
