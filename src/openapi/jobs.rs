//! The API description of the jobs endpoints: their schemas and operations.
//!
//! [`Job`] states the shape `crate::jobs::JobView` renders; the tests of the parent
//! module check real job documents against it.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::problem;
use crate::problem::{ProblemDocument, ProblemKind};

/// The kinds of job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum JobKind {
    TagStats,
    KeywordStats,
    TranscriptSummary,
    Ingest,
    Reload,
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

/// A job submission.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"kind": "tag-stats", "params": {"company": "microsoft"}}))]
pub struct JobSubmission {
    pub kind: JobKind,
    /// The parameters of the kind; no other member is accepted.
    /// - `tag-stats`, `transcript-summary`: `company` (optional), a company key as
    ///   `/api/companies` lists them.
    /// - `keyword-stats`: `words` (required), 1 to 64 single words of letters and digits;
    ///   `company` (optional).
    /// - `ingest`: `path` (required), a dataset folder or Parquet file relative to the data
    ///   root; `..`, absolute paths and symbolic links leading out of the root are refused.
    /// - `reload`: none.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub params: Option<serde_json::Value>,
}

/// A job: what was asked, where it is, and once finished its result or error.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "id": 7, "kind": "tag-stats", "params": {"company": "microsoft"}, "status": "succeeded",
    "progress": 1.0, "cancel_requested": false, "created_at": "2026-12-03T20:22:32Z",
    "started_at": "2026-12-03T20:22:32Z", "finished_at": "2026-12-03T20:22:33Z", "error": null,
    "result": {"company_filter": "microsoft", "counts": [
        {"company": "Microsoft Corporation", "tag": "Pricing", "conversations": 312}
    ]}
}))]
pub struct Job {
    /// Ids grow in submission order, across restarts.
    #[schema(minimum = 1)]
    pub id: u64,
    pub kind: JobKind,
    /// The parameters as checked at submission.
    #[schema(value_type = Object)]
    pub params: serde_json::Value,
    pub status: JobState,
    /// From 0 to 1: rows scanned (analyses) or datasets read (ingest, reload).
    #[schema(minimum = 0, maximum = 1)]
    pub progress: f64,
    /// Whether a cancellation was asked for (a running job stops at its next checkpoint).
    pub cancel_requested: bool,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime, required = true)]
    pub started_at: Option<String>,
    #[schema(format = DateTime, required = true)]
    pub finished_at: Option<String>,
    /// Why the job failed or was cancelled.
    #[schema(required = true)]
    pub error: Option<String>,
    /// The result of a job that succeeded (absent from listings).
    /// - `tag-stats`: `counts`, a list of `{company, tag, conversations}`.
    /// - `keyword-stats`: `words` (per word: occurrences and conversations) and `counts`, a
    ///   list of `{company, tag, word, occurrences}`.
    /// - `transcript-summary`: `transcripts`, per transcript its conversations, words and tag
    ///   histogram.
    /// - `ingest`, `reload`: the datasets now served and their conversation count.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub result: Option<serde_json::Value>,
}

/// One page of jobs, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct JobList {
    pub jobs: Vec<Job>,
    /// Jobs matching the filter, over all pages.
    #[schema(minimum = 0)]
    pub total: u64,
    #[schema(minimum = 1)]
    pub page: u64,
    #[schema(minimum = 1, maximum = 100)]
    pub per_page: u64,
    pub serial_queue: SerialQueueBacklog,
}

/// The serial queue's backlog: the tasks (ingests, reloads, job journal writes, statistics
/// flushes) a submission made now would wait behind before it is journaled and answered.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SerialQueueBacklog {
    /// Tasks waiting, not counting the one running.
    #[schema(minimum = 0)]
    pub waiting: u64,
    /// Tasks that may wait; past it, submissions and cancellations of queued jobs get `503`.
    #[schema(minimum = 1)]
    pub capacity: u64,
}

/// The query parameters of `GET /api/jobs`. Unknown parameters are ignored.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JobsQuery {
    /// The page to return, from 1.
    #[param(nullable = false, minimum = 1, maximum = 4294967295_u64, default = 1)]
    pub page: Option<u64>,
    /// Jobs per page.
    #[param(nullable = false, minimum = 1, maximum = 100, default = 20)]
    pub per_page: Option<u32>,
    /// Only jobs in this state.
    #[param(nullable = false, inline)]
    pub status: Option<JobState>,
}

/// The operations. The functions are never called.
#[allow(dead_code)]
pub(super) mod operations {
    use super::*;

    /// Submit a job
    ///
    /// Queues an analysis (`tag-stats`, `keyword-stats`, `transcript-summary`: run over
    /// every core, one job at a time) or a dataset change (`ingest`, `reload`: run on the
    /// serial queue). The answer comes once the job is journaled, so an acknowledged job
    /// survives a crash; it waits behind the serial task running at the time (at worst an
    /// ingest), and past the submit timeout (10 minutes) the answer is `503` while the job may
    /// still be journaled later. Needs the admin token.
    #[utoipa::path(
        post,
        path = "/api/jobs",
        tag = "jobs",
        security(("bearer" = [])),
        request_body = JobSubmission,
        responses(
            (status = 202, description = "The job is journaled and queued", body = Job),
            (status = 400, description = "The body, the kind or a parameter is invalid",
                body = ProblemDocument, content_type = "application/problem+json",
                example = json!(problem(
                    ProblemKind::BadRequest,
                    "params.path must not contain `..`"
                ))),
            (status = 401, description = "No bearer token was sent",
                body = ProblemDocument, content_type = "application/problem+json",
                example = json!(problem(
                    ProblemKind::Unauthorized,
                    "send the admin token as Authorization: Bearer <token>"
                ))),
            (status = 403, description = "The token is wrong, or admin endpoints are disabled",
                body = ProblemDocument, content_type = "application/problem+json",
                example = json!(problem(ProblemKind::Forbidden, "the admin token is wrong"))),
            (status = 413, description = "The body is over 64 KiB",
                body = ProblemDocument, content_type = "application/problem+json",
                example = json!(problem(
                    ProblemKind::ContentTooLarge,
                    "a job submission holds at most 65536 bytes"
                ))),
            (status = 503, description = "The queues are full (with `Retry-After`), jobs are \
                unavailable, or confab is stopping",
                body = ProblemDocument, content_type = "application/problem+json",
                headers(("retry-after" = u32, description = "Seconds to wait when the queues are full")),
                example = json!(problem(
                    ProblemKind::Unavailable,
                    "the job queues are full; retry shortly"
                ))),
        )
    )]
    fn submit_job() {}

    /// List jobs
    ///
    /// Jobs newest first, without their results, and the serial queue's backlog.
    #[utoipa::path(
        get,
        path = "/api/jobs",
        tag = "jobs",
        params(JobsQuery),
        responses(
            (status = 200, description = "One page of jobs", body = JobList),
            (status = 400, description = "A parameter has a bad value",
                body = ProblemDocument, content_type = "application/problem+json",
                example = json!(problem(
                    ProblemKind::BadRequest,
                    "parameter status: \"done\" is not a job status"
                ))),
        )
    )]
    fn list_jobs() {}

    /// Get a job
    ///
    /// The job's state and progress, and its result or error once finished.
    #[utoipa::path(
        get,
        path = "/api/jobs/{id}",
        tag = "jobs",
        params(("id" = u64, Path, minimum = 1, description = "The job id")),
        responses(
            (status = 200, description = "The job", body = Job),
            (status = 404, description = "No job has this id (or it was forgotten)",
                body = ProblemDocument, content_type = "application/problem+json",
                example = json!(problem(ProblemKind::NotFound, "no job has the id 99"))),
        )
    )]
    fn get_job() {}

    /// Cancel a job
    ///
    /// A queued job is cancelled (`200`) once the cancellation is journaled, which waits
    /// behind the serial task running at the time; a running one is asked to stop at its next
    /// checkpoint (`202`, answered at once). Needs the admin token.
    #[utoipa::path(
        delete,
        path = "/api/jobs/{id}",
        tag = "jobs",
        security(("bearer" = [])),
        params(("id" = u64, Path, minimum = 1, description = "The job id")),
        responses(
            (status = 200, description = "The job was queued and is now cancelled", body = Job),
            (status = 202, description = "The job is running; it will stop", body = Job),
            (status = 401, description = "No bearer token was sent",
                body = ProblemDocument, content_type = "application/problem+json",
                example = json!(problem(
                    ProblemKind::Unauthorized,
                    "send the admin token as Authorization: Bearer <token>"
                ))),
            (status = 403, description = "The token is wrong, or admin endpoints are disabled",
                body = ProblemDocument, content_type = "application/problem+json",
                example = json!(problem(ProblemKind::Forbidden, "the admin token is wrong"))),
            (status = 404, description = "No job has this id",
                body = ProblemDocument, content_type = "application/problem+json",
                example = json!(problem(ProblemKind::NotFound, "no job has the id 99"))),
            (status = 409, description = "The job has already finished",
                body = ProblemDocument, content_type = "application/problem+json",
                example = json!(problem(
                    ProblemKind::Conflict,
                    "job 7 has already succeeded"
                ))),
            (status = 503, description = "The serial queue is full (with `Retry-After`), the \
                cancellation was not journaled in time, or confab is stopping",
                body = ProblemDocument, content_type = "application/problem+json",
                headers(("retry-after" = u32, description = "Seconds to wait when the queue is full")),
                example = json!(problem(
                    ProblemKind::Unavailable,
                    "the job queues are full; retry shortly"
                ))),
        )
    )]
    fn cancel_job() {}
}
