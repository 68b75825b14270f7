//! The proxy site: confab's own endpoints, and everything else forwarded to the upstream.

use std::rc::Rc;
use std::time::Instant;

use super::connection::{ClientConn, Site};
use super::SiteSettings;
use crate::problem::{Problem, ProblemKind};
use crate::proxy::pool::UpstreamPool;
use crate::proxy::{self, ProxySettings};
use crate::routing::{self, Route};

/// The methods `/healthz` answers.
const HEALTHZ_METHODS: &str = "GET, HEAD";
/// The body of a healthy `/healthz`.
const HEALTHY_BODY: &[u8] = br#"{"status":"ok"}"#;

/// One worker's proxy site: its upstream pool and settings.
pub struct ProxySite {
    pool: UpstreamPool,
    proxy: ProxySettings,
    access_log: bool,
}

impl ProxySite {
    pub fn new(settings: &SiteSettings) -> ProxySite {
        ProxySite {
            pool: UpstreamPool::new(Rc::new(settings.target.clone()), settings.connect_timeout),
            proxy: ProxySettings {
                upstream_timeout: settings.upstream_timeout,
            },
            access_log: settings.access_log,
        }
    }

    async fn serve_own(&self, conn: &mut ClientConn, route: Result<Route, Problem>) -> (u16, bool) {
        let method_ok = matches!(conn.head.method.of(conn.buf.data()), b"GET" | b"HEAD");
        conn.buf.consume(conn.head.head_len);
        let body_read = conn.discard_body().await;
        let answer = match route {
            Ok(Route::Healthz) if method_ok => Ok(HEALTHY_BODY),
            Ok(Route::Healthz) => Err(Problem::method_not_allowed(HEALTHZ_METHODS)),
            Ok(_) => Err(Problem::new(
                ProblemKind::NotFound,
                "no such confab endpoint",
            )),
            Err(problem) => Err(problem),
        };
        match answer {
            Ok(body) => {
                let keep = conn
                    .send_response(200, "application/json", &[], body, body_read)
                    .await;
                (200, keep)
            }
            Err(problem) => (
                problem.status(),
                conn.send_problem(&problem, body_read).await,
            ),
        }
    }
}

impl Site for ProxySite {
    async fn handle(&self, conn: &mut ClientConn) -> bool {
        let started = Instant::now();
        let access = self.access_log.then(|| AccessEntry::of(conn));
        let route = match conn.head.target_form {
            crate::http1::Target::Asterisk => Ok(Route::Proxy),
            _ => routing::route(conn.head.path.of(conn.buf.data())),
        };
        let (status, keep_alive) = match route {
            Ok(Route::Proxy) => {
                let outcome = proxy::forward(conn, &self.pool, &self.proxy).await;
                (outcome.status, outcome.keep_alive)
            }
            Ok(own) => self.serve_own(conn, Ok(own)).await,
            Err(_) => {
                let problem = Problem::new(
                    ProblemKind::AmbiguousPath,
                    "the path routes differently once percent-decoded and normalized",
                );
                self.serve_own(conn, Err(problem)).await
            }
        };
        if let Some(entry) = access {
            entry.log(status, started);
        }
        keep_alive
    }
}

/// What the optional access log records of a request, captured before its head is consumed.
struct AccessEntry {
    method: String,
    target: String,
    peer: std::net::SocketAddr,
}

impl AccessEntry {
    fn of(conn: &ClientConn) -> AccessEntry {
        let buf = conn.buf.data();
        AccessEntry {
            method: String::from_utf8_lossy(conn.head.method.of(buf)).into_owned(),
            target: String::from_utf8_lossy(conn.head.target.of(buf)).into_owned(),
            peer: conn.peer,
        }
    }

    fn log(self, status: u16, started: Instant) {
        tracing::info!(
            target: "confab::access",
            peer = %self.peer,
            method = %self.method,
            path = %self.target,
            status,
            micros = started.elapsed().as_micros() as u64,
        );
    }
}
