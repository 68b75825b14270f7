//! The conversations endpoints: `/api/conversations`, `/api/conversations/{id}`,
//! `/api/companies`, `/api/tags`, answered from the worker's index.

use crate::conversations::{ConversationIndex, ConversationQuery};
use crate::problem::{Problem, ProblemKind};

use super::{Answer, OwnRequest, JSON};

/// The methods the conversations endpoints accept.
const READ_METHODS: &str = "GET, HEAD";

/// Answers a request under `/api/conversations`, `/api/companies` or `/api/tags`, or `None`
/// when the path is none of those.
pub fn answer(
    index: &ConversationIndex,
    request: &OwnRequest,
) -> Option<(&'static str, Result<Answer, Problem>)> {
    let (route, kind) = match request.path.as_str() {
        "/api/conversations" => ("/api/conversations", Endpoint::Query),
        "/api/companies" => ("/api/companies", Endpoint::Companies),
        "/api/tags" => ("/api/tags", Endpoint::Tags),
        path => {
            let id = path.strip_prefix("/api/conversations/")?;
            if id.is_empty() || id.contains('/') {
                return None;
            }
            ("/api/conversations/{id}", Endpoint::Detail)
        }
    };
    if !matches!(request.method.as_str(), "GET" | "HEAD") {
        return Some((route, Err(Problem::method_not_allowed(READ_METHODS))));
    }
    Some((route, kind.answer(index, request)))
}

#[derive(Clone, Copy)]
enum Endpoint {
    Query,
    Detail,
    Companies,
    Tags,
}

impl Endpoint {
    fn answer(self, index: &ConversationIndex, request: &OwnRequest) -> Result<Answer, Problem> {
        match self {
            Endpoint::Query => query(index, request),
            Endpoint::Detail => detail(index, request),
            Endpoint::Companies => json(&index.companies()),
            Endpoint::Tags => json(&index.tags()),
        }
    }
}

fn query(index: &ConversationIndex, request: &OwnRequest) -> Result<Answer, Problem> {
    let query = ConversationQuery::parse(request.query.as_deref()).map_err(|error| {
        let detail = format!("parameter {}: {}", error.parameter, error.detail);
        Problem::new(ProblemKind::BadRequest, detail)
    })?;
    let mut body = Vec::new();
    index.write_query_json(&query, &mut body);
    Ok(Answer::bytes(JSON, body))
}

fn detail(index: &ConversationIndex, request: &OwnRequest) -> Result<Answer, Problem> {
    // The path is already percent-decoded (see `routing::normalize`).
    let id = request.path.trim_start_matches("/api/conversations/");
    match index.conversation(id) {
        Some(detail) => json(&detail),
        None => Err(Problem::new(
            ProblemKind::NotFound,
            format!("no conversation has the id {id:?}"),
        )),
    }
}

fn json<T: serde::Serialize>(value: &T) -> Result<Answer, Problem> {
    serde_json::to_vec(value)
        .map(|body| Answer::bytes(JSON, body))
        .map_err(|_| Problem::new(ProblemKind::Unavailable, "the answer could not be rendered"))
}
