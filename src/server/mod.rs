//! The thread-per-core server: one monoio runtime, one `SO_REUSEPORT` listener and one site
//! (with its own upstream pool) per worker thread.
//!
//! Listeners are bound on the starting thread, so a bad address fails [`start`] at once and an
//! ephemeral port (`:0`) is the same for every worker; the kernel spreads new connections over
//! the workers' listeners. Nothing on the request path is shared between workers.

pub mod connection;
pub mod io;
pub mod limits;
pub mod runtime;
pub mod shutdown;
mod site;

use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use crate::api::ApiContext;
use crate::config::ServeConfig;
use crate::http1::HeadLimits;
use crate::jobs::catalog::Catalog;
use crate::jobs::journal::Journal;
use crate::jobs::Jobs;
use crate::mock::{MockServer, MockSite};
use crate::proxy::tls::{self, TlsSetupError};
use crate::proxy::upstream::{Scheme, UpstreamError, UpstreamTarget};
use crate::serial::{SerialContext, SerialQueue};
use crate::stats::{Stats, StatsConfig, PUBLISH_INTERVAL};
use connection::{ConnectionSettings, Site};
use limits::{ConnectionLimit, DRAIN_ACCEPT_WAIT};
pub use runtime::RuntimeSetup;
use shutdown::{ShutdownSignal, WorkerState};
pub use site::ProxySite;

/// Pending-connection queue length of each listener.
pub const LISTEN_BACKLOG: i32 = 4096;
/// Pause after a failed `accept` (for example when out of file descriptors) before the next.
pub const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("--threads must be at least 1")]
    NoThreads,
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error(transparent)]
    Tls(#[from] TlsSetupError),
    #[error("the io_uring driver was requested but this kernel does not offer it")]
    NoIoUring,
    #[error("worker thread could not start: {0}")]
    Worker(std::io::Error),
    #[error("conversation data: {0}")]
    Data(String),
    #[error("{0}")]
    Limits(String),
}

/// A started server. Dropping it without [`shutdown`](Self::shutdown) leaves the workers
/// running until the process exits.
pub struct RunningServer {
    local_addr: SocketAddr,
    upstream_url: String,
    setup: RuntimeSetup,
    workers: Workers,
    stats: Stats,
    jobs: Arc<Jobs>,
    serial: Arc<SerialQueue>,
    mock: Option<MockServer>,
}

impl RunningServer {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The upstream actually used (the built-in mock's URL when none was configured).
    pub fn upstream_url(&self) -> &str {
        &self.upstream_url
    }

    /// How the workers' runtimes were built (the driver is never `auto`).
    pub fn runtime_setup(&self) -> RuntimeSetup {
        self.setup
    }

    /// The serial queue of this server (for embedding code and tests that watch or hold it).
    pub fn serial_queue(&self) -> &Arc<SerialQueue> {
        &self.serial
    }

    /// The signal that stops this server; trigger it from anywhere (a signal handler thread).
    pub fn shutdown_signal(&self) -> Arc<ShutdownSignal> {
        Arc::clone(&self.workers.signal)
    }

    /// Blocks until every worker has closed its listener after the shutdown signal (new
    /// connections are refused from then on), or `timeout` passes; returns whether they had.
    pub fn wait_stopped_accepting(&self, timeout: Duration) -> bool {
        let workers = self.workers.threads.len();
        self.workers.signal.wait_stopped_accepting(workers, timeout)
    }

    /// Stops accepting, lets in-flight requests finish within the grace period, joins every
    /// worker, writes the statistics to the store, and stops the built-in mock upstream. Every
    /// step runs; the first failure is reported (a worker, statistics or job runner thread that
    /// panicked, or a mock upstream worker that did).
    pub fn shutdown(self) -> std::io::Result<()> {
        self.workers.signal.trigger();
        let joined = self.workers.join();
        let jobs = self.jobs.shutdown();
        let stats = self.stats.shutdown();
        self.serial.shutdown();
        let mock = match self.mock {
            Some(mock) => mock.shutdown(),
            None => Ok(()),
        };
        joined.and(jobs).and(stats).and(mock)
    }
}

/// Starts serving as `config` says. Returns once every worker is accepting.
pub fn start(config: ServeConfig) -> Result<RunningServer, StartError> {
    config.head_limits.validate().map_err(StartError::Limits)?;
    let setup = RuntimeSetup::resolve(config.driver, config.uring_task_work, config.pin_workers)?;
    let (mock, upstream_url) = match &config.upstream {
        Some(url) => (None, url.clone()),
        None => {
            let mock = crate::mock::start(SocketAddr::from(([127, 0, 0, 1], 0)), 1, setup)?;
            let url = format!("http://{}", mock.local_addr());
            (Some(mock), url)
        }
    };
    let target = UpstreamTarget::resolve(&upstream_url)?;
    let tls = upstream_tls(&config, &target)?;
    let mut serial_context = SerialContext::default();
    serial_context.state_dir = Some(config.state_dir.clone());
    let serial = SerialQueue::start(serial_context)
        .map(Arc::new)
        .map_err(StartError::Worker)?;
    let stats = Stats::start(
        StatsConfig {
            state_dir: Some(config.state_dir.clone()),
            flush_interval: config.stats_flush_interval,
            retention: config.stats_retention,
        },
        Arc::clone(&serial),
    )
    .map_err(StartError::Worker)?;
    let (catalog, journal) = open_catalog(&config)?;
    let jobs = Jobs::start(journal, Arc::clone(&serial), catalog, config.job_threads)
        .map_err(|error| StartError::Data(error.to_string()))?;
    let api = ApiContext {
        stats: stats.handle(),
        admin_token: config.admin_token.clone(),
        jobs: Arc::clone(&jobs),
    };
    let settings = SiteSettings::from_config(&config, target, tls, api);
    let workers = Workers::spawn("confab-worker", &config, setup, move || {
        ProxySite::new(&settings)
    })?;
    tracing::info!(
        listen = %workers.local_addr,
        threads = config.threads,
        io = %setup.describe(),
        pinned = setup.pin_workers,
        upstream = %upstream_url,
        data = %config.data.as_ref().map_or("built-in".into(), |path| path.display().to_string()),
        access_log = config.access_log,
        state_dir = %config.state_dir.display(),
        "confab serving"
    );
    if config.admin_token.is_none() {
        tracing::info!(
            "admin endpoints are disabled; set --admin-token or CONFAB_ADMIN_TOKEN to enable them"
        );
    }
    Ok(RunningServer {
        local_addr: workers.local_addr,
        upstream_url,
        setup,
        workers,
        stats,
        jobs,
        serial,
        mock,
    })
}

/// The TLS client configuration of an `https://` upstream, built once and shared by every
/// worker's pool. A configured `--upstream-ca` is checked even for an `http://` upstream, so a
/// broken file never goes unnoticed.
fn upstream_tls(
    config: &ServeConfig,
    target: &UpstreamTarget,
) -> Result<Option<Arc<rustls::ClientConfig>>, StartError> {
    let extra_ca = config.upstream_ca.as_deref();
    if target.scheme == Scheme::Http {
        if let Some(path) = extra_ca {
            tls::add_ca_file(&mut rustls::RootCertStore::empty(), path)?;
            tracing::warn!(file = %path.display(), "--upstream-ca has no effect: the upstream is http://");
        }
        return Ok(None);
    }
    let roots = tls::system_roots();
    let system_roots = roots.len();
    let client = tls::client_config(roots, extra_ca)?;
    tracing::info!(
        system_roots,
        upstream_ca = %extra_ca.map_or("none".into(), |path| path.display().to_string()),
        "verifying the upstream's certificate"
    );
    Ok(Some(client))
}

/// Opens the job journal and loads the served datasets: `--data` (or a small dataset generated
/// once in the state folder when no data is configured) and every dataset ingested before.
/// A journal that cannot be opened does not stop the serving (nor does a failing statistics
/// store); the base dataset is served and jobs are refused with the reason.
fn open_catalog(
    config: &ServeConfig,
) -> Result<(Arc<Catalog>, Result<Journal, String>), StartError> {
    let data_error = |error: &dyn std::fmt::Display| StartError::Data(error.to_string());
    let base = match &config.data {
        Some(path) => path.clone(),
        None => {
            let dir = config.state_dir.join("datasets");
            crate::conversations::datagen::default_dataset(&dir)
                .map_err(|error| data_error(&error))?
        }
    };
    let root = match &config.data_root {
        Some(root) => root.clone(),
        None => std::path::absolute(&base)
            .ok()
            .and_then(|base| base.parent().map(Path::to_path_buf))
            .unwrap_or_else(|| PathBuf::from(".")),
    };
    let root = root
        .canonicalize()
        .map_err(|error| StartError::Data(format!("data root {}: {error}", root.display())))?;
    let journal = Journal::open(&config.state_dir).map_err(|error| error.to_string());
    let ingested = match &journal {
        Ok(journal) => journal.datasets().map_err(|error| data_error(&error))?,
        Err(error) => {
            tracing::error!(%error, "the job journal cannot be opened: serving the base dataset, refusing jobs");
            Vec::new()
        }
    };
    // The loader logs what it built (rows, companies, tags, memory, time).
    let catalog = Catalog::open(base, root, ingested).map_err(|error| data_error(&error))?;
    Ok((Arc::new(catalog), journal))
}

/// What every worker's site is built from; plain data, sent to each worker thread.
#[derive(Clone)]
pub struct SiteSettings {
    pub target: UpstreamTarget,
    /// The TLS client configuration of an `https://` upstream.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub connect_timeout: Duration,
    pub upstream_timeout: Duration,
    pub access_log: bool,
    pub record_stats: bool,
    /// Largest request body accepted.
    pub max_body: u64,
    /// The limits of the upstream's response heads.
    pub head_limits: HeadLimits,
    /// Where chunked request bodies too long to keep in memory are buffered.
    pub spool_dir: PathBuf,
    pub api: ApiContext,
}

impl SiteSettings {
    fn from_config(
        config: &ServeConfig,
        target: UpstreamTarget,
        tls: Option<Arc<rustls::ClientConfig>>,
        api: ApiContext,
    ) -> SiteSettings {
        SiteSettings {
            target,
            tls,
            connect_timeout: config.connect_timeout,
            upstream_timeout: config.upstream_timeout,
            access_log: config.access_log,
            record_stats: config.record_stats,
            max_body: config.max_body,
            head_limits: config.head_limits,
            spool_dir: config.state_dir.clone(),
            api,
        }
    }
}

/// A set of worker threads serving one listening address.
pub(crate) struct Workers {
    pub(crate) local_addr: SocketAddr,
    signal: Arc<ShutdownSignal>,
    threads: Vec<JoinHandle<()>>,
}

impl Workers {
    /// Binds one listener per thread and starts the threads, each building its site with
    /// `make_site`. Returns once every thread is accepting.
    pub(crate) fn spawn<S, F>(
        name: &str,
        config: &ServeConfig,
        setup: RuntimeSetup,
        make_site: F,
    ) -> Result<Workers, StartError>
    where
        S: Site,
        F: Fn() -> S + Send + Sync + 'static,
    {
        if config.threads == 0 {
            return Err(StartError::NoThreads);
        }
        let listeners = bind_listeners(config.listen, config.threads)?;
        let local_addr = listeners[0]
            .local_addr()
            .map_err(|source| StartError::Bind {
                addr: config.listen,
                source,
            })?;
        let signal = Arc::new(ShutdownSignal::default());
        let make_site = Arc::new(make_site);
        let settings = WorkerSettings {
            connection: ConnectionSettings {
                idle_timeout: config.idle_timeout,
                header_timeout: config.header_timeout,
                max_body: config.max_body,
                min_body_rate: config.min_body_rate,
                body_rate_window: config.body_rate_window,
                max_inflight: config.max_inflight_per_core,
                head_limits: config.head_limits,
            },
            grace: config.shutdown_grace,
        };
        let connection_limit = ConnectionLimit::new(config.max_connections);
        let (ready_tx, ready_rx) = mpsc::channel();
        let mut threads = Vec::with_capacity(listeners.len());
        for (index, listener) in listeners.into_iter().enumerate() {
            let worker = WorkerStart {
                index,
                setup,
                listener,
                signal: Arc::clone(&signal),
                make_site: Arc::clone(&make_site),
                settings: settings.clone(),
                connection_limit: Arc::clone(&connection_limit),
                ready: ready_tx.clone(),
            };
            let thread = std::thread::Builder::new()
                .name(format!("{name}-{index}"))
                .spawn(move || worker.run())
                .map_err(StartError::Worker)?;
            threads.push(thread);
        }
        drop(ready_tx);
        let workers = Workers {
            local_addr,
            signal,
            threads,
        };
        for _ in 0..workers.threads.len() {
            match ready_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(error)) => return Err(workers.abort(error)),
                Err(_) => return Err(workers.abort(std::io::Error::other("worker died"))),
            }
        }
        Ok(workers)
    }

    fn abort(self, error: std::io::Error) -> StartError {
        self.signal.trigger();
        let _ = self.join();
        StartError::Worker(error)
    }

    pub(crate) fn signal(&self) -> &Arc<ShutdownSignal> {
        &self.signal
    }

    /// Joins every worker thread; fails if any of them panicked.
    pub(crate) fn join(self) -> std::io::Result<()> {
        let panicked = self
            .threads
            .into_iter()
            .map(JoinHandle::join)
            .filter(Result::is_err)
            .count();
        match panicked {
            0 => Ok(()),
            1 => Err(std::io::Error::other("a worker thread panicked")),
            n => Err(std::io::Error::other(format!(
                "{n} worker threads panicked"
            ))),
        }
    }
}

/// Binds `count` listeners to one address with `SO_REUSEPORT`; the first fixes the port.
fn bind_listeners(addr: SocketAddr, count: usize) -> Result<Vec<StdListener>, StartError> {
    let mut listeners: Vec<StdListener> = Vec::with_capacity(count);
    for _ in 0..count {
        let target = match listeners.first() {
            Some(first) => first.local_addr(),
            None => Ok(addr),
        };
        let bound = target.and_then(bind_reuseport);
        listeners.push(bound.map_err(|source| StartError::Bind { addr, source })?);
    }
    Ok(listeners)
}

fn bind_reuseport(addr: SocketAddr) -> std::io::Result<StdListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_port(true)?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket.into())
}

#[derive(Debug, Clone)]
struct WorkerSettings {
    connection: ConnectionSettings,
    grace: Duration,
}

/// Everything a worker thread starts from.
struct WorkerStart<F> {
    /// The worker's position among the workers (its core when pinned).
    index: usize,
    setup: RuntimeSetup,
    listener: StdListener,
    signal: Arc<ShutdownSignal>,
    make_site: Arc<F>,
    settings: WorkerSettings,
    /// The process-wide count of open client connections.
    connection_limit: Arc<ConnectionLimit>,
    ready: mpsc::Sender<std::io::Result<()>>,
}

/// Shuts the whole server down if its worker thread unwinds from a panic: the worker's
/// connections are gone with it, and rather than serving on with a core less, the other
/// workers drain and the shutdown reports the panic (the binary exits 1, for its supervisor to
/// restart it).
struct WorkerPanicGuard {
    index: usize,
    signal: Arc<ShutdownSignal>,
}

impl Drop for WorkerPanicGuard {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        tracing::error!(
            worker = self.index,
            "a worker thread panicked; shutting the server down"
        );
        // A worker closes its listener only once the signal is set; one that panicked before
        // had its listener closed by the unwinding, so it counts as stopped.
        if !self.signal.is_triggered() {
            self.signal.worker_stopped_accepting();
        }
        self.signal.trigger();
    }
}

impl<S: Site, F: Fn() -> S + Send + Sync + 'static> WorkerStart<F> {
    fn run(self) {
        let _panic_guard = WorkerPanicGuard {
            index: self.index,
            signal: Arc::clone(&self.signal),
        };
        let ready = self.ready.clone();
        let setup = self.setup;
        setup.pin_worker(self.index);
        let outcome = setup.block_on(move || self.serve());
        if let Err(error) = outcome {
            let _ = ready.send(Err(error));
        }
    }

    async fn serve(self) {
        let listener = match monoio::net::TcpListener::from_std(self.listener) {
            Ok(listener) => listener,
            Err(error) => {
                let _ = self.ready.send(Err(error));
                return;
            }
        };
        let site = Rc::new((self.make_site)());
        let state = Rc::new(WorkerState::default());
        let acceptor = Acceptor {
            site: Rc::clone(&site),
            state: Rc::clone(&state),
            settings: Rc::new(self.settings.connection),
            limit: self.connection_limit,
        };
        let _ = self.ready.send(Ok(()));
        monoio::spawn(tick_forever(Rc::clone(&site)));
        monoio::select! {
            _ = acceptor.accept_loop(&listener) => {}
            _ = self.signal.triggered() => {}
        }
        acceptor.take_queued(&listener).await;
        stop_listening(&listener);
        drop(listener);
        self.signal.worker_stopped_accepting();
        let drained = monoio::time::timeout(self.settings.grace, state.all_closed()).await;
        if drained.is_err() {
            tracing::warn!(
                open = state.open_connections(),
                "shutdown grace period over; closing the remaining connections"
            );
        }
        site.tick();
    }
}

/// Takes `listener` out of the kernel's listening table at once, so that new connections are
/// refused from this moment on. Dropping it is not enough: on io_uring its close is an
/// operation queued on the ring, which an idle worker (one waiting only on an upstream, say)
/// does not submit until something wakes it, and until then the kernel keeps completing
/// handshakes for it. Shutting down a listening socket's receiving side stops it listening
/// (Linux), whatever is still queued on the ring.
fn stop_listening(listener: &monoio::net::TcpListener) {
    use std::os::fd::{AsRawFd, BorrowedFd};
    // SAFETY: the descriptor belongs to `listener`, which is open and outlives this borrow.
    let fd = unsafe { BorrowedFd::borrow_raw(listener.as_raw_fd()) };
    if let Err(error) = socket2::SockRef::from(&fd).shutdown(std::net::Shutdown::Read) {
        tracing::debug!(%error, "shutting the listener down failed; it closes when dropped");
    }
}

/// Calls the site's [`Site::tick`] every [`PUBLISH_INTERVAL`] until the runtime stops.
async fn tick_forever<S: Site>(site: Rc<S>) {
    loop {
        monoio::time::sleep(PUBLISH_INTERVAL).await;
        site.tick();
    }
}

/// What a worker's accept loop hands each new connection.
struct Acceptor<S> {
    site: Rc<S>,
    state: Rc<WorkerState>,
    settings: Rc<ConnectionSettings>,
    limit: Arc<ConnectionLimit>,
}

impl<S: Site> Acceptor<S> {
    async fn accept_loop(&self, listener: &monoio::net::TcpListener) {
        loop {
            match listener.accept().await {
                Ok((stream, peer)) => self.start(stream, peer),
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    monoio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                }
            }
        }
    }

    /// Serves a new connection, or closes it at once when the process-wide connection limit is
    /// reached (the connections already open keep their service).
    fn start(&self, stream: monoio::net::TcpStream, peer: SocketAddr) {
        let Some(permit) = self.limit.try_acquire() else {
            tracing::debug!(%peer, "connection limit reached; closing a new connection");
            return;
        };
        let connection = connection::serve(
            stream,
            peer,
            Rc::clone(&self.site),
            Rc::clone(&self.state),
            Rc::clone(&self.settings),
            Some(permit),
        );
        monoio::spawn(connection);
    }

    /// Once the worker stops accepting, takes the connections that already completed their
    /// handshake and wait in the listener's queue (closing the listener would reset them, and
    /// their clients may already have sent a request). They are served as draining connections.
    async fn take_queued(&self, listener: &monoio::net::TcpListener) {
        self.state.start_draining();
        let deadline = std::time::Instant::now() + DRAIN_ACCEPT_WAIT;
        while let Ok(Ok((stream, peer))) =
            monoio::time::timeout_at(deadline.into(), listener.accept()).await
        {
            self.start(stream, peer);
        }
    }
}

/// Builds the mock upstream's workers (used by [`crate::mock`]).
pub(crate) fn spawn_mock_workers(
    config: &ServeConfig,
    setup: RuntimeSetup,
) -> Result<Workers, StartError> {
    Workers::spawn("confab-mock", config, setup, MockSite::default)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::config::{Driver, UringTaskWork};
    use connection::ClientConn;

    /// How long the test waits for the server to shut down, and its client on its socket.
    const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

    /// A site whose every request panics the worker that handles it.
    struct PanickingSite;

    impl Site for PanickingSite {
        async fn handle(&self, _conn: &mut ClientConn) -> bool {
            panic!("a deliberate panic in a connection task");
        }
    }

    #[test]
    fn a_worker_that_panicked_makes_the_join_fail_on_both_drivers() {
        for driver in [Driver::Epoll, Driver::IoUring] {
            if driver == Driver::IoUring && !monoio::utils::detect_uring() {
                continue;
            }
            let config = ServeConfig {
                listen: SocketAddr::from(([127, 0, 0, 1], 0)),
                threads: 2,
                ..ServeConfig::for_tests()
            };
            let setup = RuntimeSetup::resolve(driver, UringTaskWork::default(), false)
                .expect("the driver resolves");
            let workers = Workers::spawn("confab-panic-test", &config, setup, || PanickingSite)
                .expect("the workers start");
            let mut client =
                std::net::TcpStream::connect(workers.local_addr).expect("connect to a worker");
            client
                .set_read_timeout(Some(CLIENT_TIMEOUT))
                .expect("client read timeout");
            client
                .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
                .expect("send a request");
            // The worker dies with the connection (on io_uring its socket stays open, its
            // close never submitted to the dead ring, until the process exits), and its death
            // shuts the server down: the other worker drains.
            let signal = Arc::clone(workers.signal());
            let (triggered_tx, triggered) = mpsc::channel();
            std::thread::spawn(move || {
                signal.wait_blocking();
                let _ = triggered_tx.send(());
            });
            let shut_down = triggered.recv_timeout(CLIENT_TIMEOUT).is_ok();
            workers.signal().trigger();
            assert!(
                shut_down,
                "{driver:?}: the server served on without the worker"
            );
            assert!(
                workers
                    .signal()
                    .wait_stopped_accepting(config.threads, CLIENT_TIMEOUT),
                "{driver:?}: the workers did not all stop accepting"
            );
            let joined = workers.join();
            assert!(
                joined.is_err(),
                "{driver:?}: the join hid the worker's panic"
            );
        }
    }
}
