//! The proxy site: confab's own endpoints, and everything else forwarded to the upstream.
//! Every exchange is recorded in the worker's statistics recorder.

use std::rc::Rc;
use std::time::Instant;

use super::connection::{ClientConn, OwnBody, Refusal, Site};
use super::SiteSettings;
use crate::api::{self, ApiContext, OwnRequest};
use crate::http1::Target;
use crate::problem::{Problem, ProblemKind};
use crate::proxy::pool::UpstreamPool;
use crate::proxy::{self, ProxySettings};
use crate::routing::{self, Route};
use crate::stats::{method_index, upstream_error_index, RouteKey, Sample, WorkerRecorder};

/// One worker's proxy site: its upstream pool, its statistics recorder, and settings.
pub struct ProxySite {
    pool: UpstreamPool,
    proxy: ProxySettings,
    api: ApiContext,
    recorder: WorkerRecorder,
    record_stats: bool,
    access_log: bool,
}

impl ProxySite {
    pub fn new(settings: &SiteSettings) -> ProxySite {
        ProxySite {
            pool: UpstreamPool::new(
                Rc::new(settings.target.clone()),
                settings.connect_timeout,
                settings.tls.clone(),
            ),
            proxy: ProxySettings {
                upstream_timeout: settings.upstream_timeout,
                max_body: settings.max_body,
                head_limits: settings.head_limits,
                spool_dir: settings.spool_dir.clone(),
            },
            api: settings.api.clone(),
            recorder: WorkerRecorder::new(settings.api.stats.clone()),
            record_stats: settings.record_stats,
            access_log: settings.access_log,
        }
    }

    async fn forward(&self, conn: &mut ClientConn, method: u8) -> (u16, bool) {
        let route = RouteKey::of_path(conn.head.path.of(conn.buf.data()));
        // Bytes of this request: what was buffered at the start plus what was read during the
        // exchange, less what is left for the next request.
        let buffered_before = conn.buf.len() as u64;
        let (read_before, written_before) = (conn.bytes_read, conn.bytes_written);
        let outcome = proxy::forward(conn, &self.pool, &self.proxy).await;
        let sample = Sample {
            method,
            status: outcome.status,
            micros: conn.head_started.elapsed().as_micros() as u64,
            bytes_in: buffered_before + (conn.bytes_read - read_before) - conn.buf.len() as u64,
            bytes_out: conn.bytes_written - written_before,
        };
        let upstream_error = outcome.upstream_failure.and_then(upstream_error_index);
        if self.record_stats {
            self.recorder
                .record_proxy(route.as_bytes(), sample, upstream_error);
        }
        (outcome.status, outcome.keep_alive)
    }

    async fn serve_own(
        &self,
        conn: &mut ClientConn,
        request: Result<OwnRequest, Problem>,
    ) -> (u16, bool) {
        let method = method_index(conn.head.method.of(conn.buf.data()));
        let written_before = conn.bytes_written;
        conn.buf.consume(conn.head.head_len);
        let body = conn.read_own_body().await;
        let body_read = matches!(body, OwnBody::Complete(_));
        let (route, answer) = match request {
            Ok(mut request) => {
                request.body = body;
                api::answer(&self.api, &request).await
            }
            Err(problem) => (crate::stats::OTHER_ROUTE, Err(problem)),
        };
        let (status, keep_alive) = match answer {
            Ok(answer) => {
                let body = &answer.body;
                let keep = conn
                    .send_response(answer.status, answer.content_type, &[], body, body_read)
                    .await;
                (answer.status, keep)
            }
            Err(problem) => (
                problem.status(),
                conn.send_problem(&problem, body_read).await,
            ),
        };
        let sample = Sample {
            method,
            status,
            micros: conn.head_started.elapsed().as_micros() as u64,
            bytes_in: conn.head.head_len as u64,
            bytes_out: conn.bytes_written - written_before,
        };
        if self.record_stats {
            self.recorder.record_api(route, sample);
        }
        (status, keep_alive)
    }
}

impl Site for ProxySite {
    async fn handle(&self, conn: &mut ClientConn) -> bool {
        let access = self.access_log.then(|| AccessEntry::of(conn));
        let buf = conn.buf.data();
        let method = method_index(conn.head.method.of(buf));
        let route = match conn.head.target_form {
            Target::Asterisk => Ok(Route::Proxy),
            _ => routing::route(conn.head.path.of(buf)),
        };
        let (status, keep_alive) = match route {
            Ok(Route::Proxy) => self.forward(conn, method).await,
            Ok(own) => {
                let request = own_request(conn, own);
                self.serve_own(conn, Ok(request)).await
            }
            Err(_) => {
                let problem = Problem::new(
                    ProblemKind::AmbiguousPath,
                    "the path routes differently once percent-decoded and normalized",
                );
                self.serve_own(conn, Err(problem)).await
            }
        };
        if let Some(entry) = access {
            entry.log(status);
        }
        keep_alive
    }

    /// Records a refused request where it was headed: under its proxied route, or (for an own
    /// endpoint, or a head too broken to route) under the own endpoints' `other`.
    fn record_refusal(&self, conn: &ClientConn, refusal: Refusal) {
        if !self.record_stats {
            return;
        }
        let buf = conn.buf.data();
        let method = match refusal.head_parsed {
            true => method_index(conn.head.method.of(buf)),
            false => method_index(b""),
        };
        let sample = Sample {
            method,
            status: refusal.status,
            micros: conn.head_started.elapsed().as_micros() as u64,
            bytes_in: refusal.bytes_in,
            bytes_out: refusal.bytes_out,
        };
        // Before the head parsed, its spans are stale: they must not be read.
        let proxied_path = refusal
            .head_parsed
            .then(|| conn.head.path.of(buf))
            .filter(|path| {
                conn.head.target_form == Target::Asterisk
                    || routing::route(path) == Ok(Route::Proxy)
            });
        match proxied_path {
            Some(path) => {
                self.recorder
                    .record_proxy(RouteKey::of_path(path).as_bytes(), sample, None)
            }
            None => self.recorder.record_api(crate::stats::OTHER_ROUTE, sample),
        }
    }

    fn tick(&self) {
        self.recorder.publish();
    }
}

/// Copies what an own endpoint needs out of the read buffer.
fn own_request(conn: &ClientConn, route: Route) -> OwnRequest {
    let buf = conn.buf.data();
    let head = &conn.head;
    let path_and_query = head.path_and_query.of(buf);
    let query = path_and_query
        .iter()
        .position(|&byte| byte == b'?')
        .map(|at| String::from_utf8_lossy(&path_and_query[at + 1..]).into_owned());
    let authorization = head
        .headers
        .iter()
        .find(|header| header.name.of(buf).eq_ignore_ascii_case(b"authorization"))
        .map(|header| String::from_utf8_lossy(header.value.of(buf)).into_owned());
    OwnRequest {
        method: String::from_utf8_lossy(head.method.of(buf)).into_owned(),
        route,
        path: String::from_utf8_lossy(&routing::normalize(head.path.of(buf))).into_owned(),
        query,
        authorization,
        body: OwnBody::Complete(Vec::new()),
    }
}

/// What the optional access log records of a request, captured before its head is consumed
/// (and only when the log is on: nothing of it is paid for otherwise, the clock read included).
struct AccessEntry {
    method: String,
    target: String,
    peer: std::net::SocketAddr,
    started: Instant,
}

impl AccessEntry {
    fn of(conn: &ClientConn) -> AccessEntry {
        let buf = conn.buf.data();
        AccessEntry {
            method: String::from_utf8_lossy(conn.head.method.of(buf)).into_owned(),
            target: String::from_utf8_lossy(conn.head.target.of(buf)).into_owned(),
            peer: conn.peer,
            started: Instant::now(),
        }
    }

    fn log(self, status: u16) {
        tracing::info!(
            target: "confab::access",
            peer = %self.peer,
            method = %self.method,
            path = %self.target,
            status,
            micros = self.started.elapsed().as_micros() as u64,
        );
    }
}
