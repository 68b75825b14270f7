//! The jobs endpoints: `POST /api/jobs` and `GET /api/jobs` (submit, list) and
//! `GET`/`DELETE /api/jobs/{id}` (status with result, cancel). Mutating calls need the admin
//! token; reading does not, like the other read endpoints.

use std::time::Duration;

use serde_json::{json, Value};

use super::{authorize, Answer, ApiContext, OwnRequest};
use crate::jobs::{Cancelled, JobError, JobSpec, JobStatus, JobView, RETRY_AFTER_SECONDS};
use crate::problem::{Problem, ProblemKind};
use crate::serial::SERIAL_QUEUE_CAPACITY;
use crate::server::connection::OwnBody;

/// Largest `POST /api/jobs` body.
pub const MAX_JOB_REQUEST_BYTES: usize = 64 * 1024;
/// Longest wait for a submission, or the cancellation of a queued job, to be journaled. It
/// waits behind the serial task running at the time (possibly an ingest), so it is long; past
/// it the answer is `503` and the change may still be journaled later (the task stays queued).
pub const JOB_SUBMIT_TIMEOUT: Duration = Duration::from_secs(600);
/// Jobs per page of `GET /api/jobs` unless `per_page` says otherwise.
pub const DEFAULT_JOBS_PER_PAGE: usize = 20;
/// Most jobs one page of `GET /api/jobs` holds.
pub const MAX_JOBS_PER_PAGE: usize = 100;

const COLLECTION_METHODS: &str = "GET, HEAD, POST";
const ITEM_METHODS: &str = "GET, HEAD, DELETE";

/// Answers a request under `/api/jobs`.
pub async fn answer(
    context: &ApiContext,
    request: &OwnRequest,
) -> (&'static str, Result<Answer, Problem>) {
    let method = request.method.as_str();
    if request.path == "/api/jobs" {
        let answer = match method {
            "GET" | "HEAD" => list(context, request),
            "POST" => submit(context, request).await,
            _ => Err(Problem::method_not_allowed(COLLECTION_METHODS)),
        };
        return ("/api/jobs", answer);
    }
    let answer = match (method, job_id(&request.path)) {
        ("GET" | "HEAD" | "DELETE", None) => Err(no_such_job(&request.path["/api/jobs/".len()..])),
        ("GET" | "HEAD", Some(id)) => show(context, id),
        ("DELETE", Some(id)) => cancel(context, request, id).await,
        _ => Err(Problem::method_not_allowed(ITEM_METHODS)),
    };
    ("/api/jobs/{id}", answer)
}

fn job_id(path: &str) -> Option<u64> {
    let id = path.strip_prefix("/api/jobs/")?;
    match id.bytes().all(|byte| byte.is_ascii_digit()) {
        true => id.parse().ok(),
        false => None,
    }
}

fn no_such_job(id: impl std::fmt::Display) -> Problem {
    Problem::new(ProblemKind::NotFound, format!("no job has the id {id}"))
}

fn json_answer(status: u16, body: String) -> Answer {
    Answer {
        status,
        ..Answer::json(body)
    }
}

async fn submit(context: &ApiContext, request: &OwnRequest) -> Result<Answer, Problem> {
    authorize(context, request)?;
    let spec = parse_submission(context, &request.body)?;
    let answer = context.jobs.submit(spec).map_err(job_problem)?;
    let view = journaled(answer, "the job").await?;
    Ok(json_answer(202, view.render_with_result()))
}

/// Waits (within [`JOB_SUBMIT_TIMEOUT`]) for the serial queue's answer to a change.
async fn journaled<T>(
    answer: futures_channel::oneshot::Receiver<Result<T, JobError>>,
    what: &str,
) -> Result<T, Problem> {
    match monoio::time::timeout(JOB_SUBMIT_TIMEOUT, answer).await {
        Ok(Ok(answer)) => answer.map_err(job_problem),
        Ok(Err(_)) => Err(job_problem(JobError::Stopping)),
        Err(_) => Err(Problem::new(
            ProblemKind::Unavailable,
            format!(
                "the job journal did not confirm in time; {what} may still be recorded (see GET /api/jobs)"
            ),
        )),
    }
}

/// Reads `{"kind": ..., "params": {...}}` and checks it.
fn parse_submission(context: &ApiContext, body: &OwnBody) -> Result<JobSpec, Problem> {
    let bad = |detail: String| Problem::new(ProblemKind::BadRequest, detail);
    let body = match body {
        OwnBody::Complete(body) if body.len() <= MAX_JOB_REQUEST_BYTES => body,
        OwnBody::Broken => return Err(bad("the request body was cut short".into())),
        _ => {
            return Err(Problem::new(
                ProblemKind::ContentTooLarge,
                format!("a job submission holds at most {MAX_JOB_REQUEST_BYTES} bytes"),
            ))
        }
    };
    let value: Value = serde_json::from_slice(body).map_err(|error| {
        bad(format!(
            "the body must be JSON like {{\"kind\": ..., \"params\": {{...}}}}: {error}"
        ))
    })?;
    let Value::Object(fields) = &value else {
        return Err(bad(
            "the body must be a JSON object with kind and params".into()
        ));
    };
    if let Some(name) = fields
        .keys()
        .find(|name| !matches!(name.as_str(), "kind" | "params"))
    {
        return Err(bad(format!("{name} is not a field of a job submission")));
    }
    let Some(Value::String(kind)) = fields.get("kind") else {
        return Err(bad("kind must be a string".into()));
    };
    let params = match fields.get("params") {
        None => &Value::Null,
        Some(Value::Object(_)) => &fields["params"],
        Some(_) => return Err(bad("params must be a JSON object".into())),
    };
    JobSpec::parse(kind, params, context.jobs.catalog().data_root()).map_err(bad)
}

fn job_problem(error: JobError) -> Problem {
    let detail = error.to_string();
    match error {
        JobError::QueueFull => {
            Problem::new(ProblemKind::Unavailable, detail).with_retry_after(RETRY_AFTER_SECONDS)
        }
        JobError::Journal(_) => {
            Problem::new(ProblemKind::Unavailable, detail).with_retry_after(RETRY_AFTER_SECONDS)
        }
        JobError::Stopping => Problem::new(ProblemKind::ShuttingDown, detail),
        JobError::Unavailable(_) => Problem::new(ProblemKind::Unavailable, detail),
        JobError::NotFound(_) => Problem::new(ProblemKind::NotFound, detail),
        JobError::Finished { .. } => Problem::new(ProblemKind::Conflict, detail),
    }
}

fn show(context: &ApiContext, id: u64) -> Result<Answer, Problem> {
    let view = context.jobs.view(id).ok_or_else(|| no_such_job(id))?;
    Ok(json_answer(200, view.render_with_result()))
}

async fn cancel(context: &ApiContext, request: &OwnRequest, id: u64) -> Result<Answer, Problem> {
    authorize(context, request)?;
    let answer = context.jobs.cancel(id).map_err(job_problem)?;
    match journaled(answer, "the cancellation").await? {
        Cancelled::Now(view) => Ok(json_answer(200, view.render_with_result())),
        Cancelled::Requested(view) => Ok(json_answer(202, view.render_with_result())),
    }
}

/// `GET /api/jobs?page=&per_page=&status=`: newest first, with the serial queue's backlog
/// (what a submission now waits behind).
fn list(context: &ApiContext, request: &OwnRequest) -> Result<Answer, Problem> {
    let listing = Listing::parse(request.query.as_deref())?;
    let offset = (listing.page - 1).saturating_mul(listing.per_page);
    let page = context.jobs.list(listing.status, offset, listing.per_page);
    let jobs: Vec<Value> = page.jobs.iter().map(JobView::to_json).collect();
    let body = json!({
        "jobs": jobs,
        "total": page.total,
        "page": listing.page,
        "per_page": listing.per_page,
        "serial_queue": {
            "waiting": context.jobs.serial_tasks_waiting(),
            "capacity": SERIAL_QUEUE_CAPACITY,
        },
    });
    Ok(json_answer(200, body.to_string()))
}

struct Listing {
    page: usize,
    per_page: usize,
    status: Option<JobStatus>,
}

impl Listing {
    fn parse(query: Option<&str>) -> Result<Listing, Problem> {
        let mut listing = Listing {
            page: 1,
            per_page: DEFAULT_JOBS_PER_PAGE,
            status: None,
        };
        let bad = |name: &str, detail: String| {
            Problem::new(
                ProblemKind::BadRequest,
                format!("parameter {name}: {detail}"),
            )
        };
        for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            match name.as_ref() {
                "page" => {
                    listing.page = value
                        .parse()
                        .ok()
                        .filter(|&page| page >= 1 && page <= u32::MAX as usize)
                        .ok_or_else(|| {
                            bad("page", format!("{value:?} is not a page number from 1"))
                        })?;
                }
                "per_page" => {
                    listing.per_page = value
                        .parse()
                        .ok()
                        .filter(|per_page| (1..=MAX_JOBS_PER_PAGE).contains(per_page))
                        .ok_or_else(|| {
                            bad(
                                "per_page",
                                format!("{value:?} is not from 1 to {MAX_JOBS_PER_PAGE}"),
                            )
                        })?;
                }
                "status" => {
                    listing.status =
                        Some(JobStatus::from_name(&value).ok_or_else(|| {
                            bad("status", format!("{value:?} is not a job status"))
                        })?);
                }
                _ => {}
            }
        }
        Ok(listing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_plain_decimal() {
        assert_eq!(job_id("/api/jobs/17"), Some(17));
        assert_eq!(job_id("/api/jobs/+1"), None);
        assert_eq!(job_id("/api/jobs/x"), None);
        assert_eq!(job_id("/api/jobs/99999999999999999999999"), None);
    }

    #[test]
    fn listing_parameters_are_checked() {
        let listing = Listing::parse(Some("page=2&per_page=5&status=queued")).expect("valid");
        assert_eq!((listing.page, listing.per_page), (2, 5));
        assert_eq!(listing.status, Some(JobStatus::Queued));
        for bad in ["page=0", "per_page=101", "status=done", "page=-1"] {
            assert!(Listing::parse(Some(bad)).is_err(), "{bad}");
        }
    }
}
