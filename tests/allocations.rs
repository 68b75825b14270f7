//! Heap allocations per proxied request, counted by a global allocator.
//!
//! The server runs in this process (so the counting allocator sees its workers), in front of an
//! upstream and behind a client that are both written here with fixed buffers, so that in the
//! steady state the only allocations counted are confab's. Each measurement is a window of
//! requests on warmed-up keep-alive connections; the statistics publish once a second from
//! every worker (which does allocate), so a test takes the quietest of a few windows.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use confab::config::ServeConfig;

/// Counts every allocation and reallocation made by any thread of the process.
struct CountingAllocator;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

/// Held by each test for its whole run: a server starting in a test running beside another would
/// be counted in the other's windows.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

// SAFETY: every method forwards to the system allocator with the caller's arguments unchanged;
// the only addition is a relaxed atomic increment, which neither allocates nor panics.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which `System` shares.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` through this allocator with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: `ptr` was allocated by `System` with `layout`; the caller upholds the rest.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// The upstream's one answer: a small JSON document, as an API would send.
const UPSTREAM_RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
content-length: 27\r\nx-request-id: 7\r\n\r\n{\"id\":\"MLA97994\",\"ok\":true}";
/// Requests before counting starts: fills the pool, the buffers and the statistics maps.
const WARM_UP_REQUESTS: usize = 500;
/// Requests in one counted window.
const WINDOW_REQUESTS: usize = 1000;
/// Windows measured; the quietest one counts.
const WINDOWS: usize = 5;
/// Size of the fixed read buffers of the test's client and upstream.
const FIXED_BUFFER_BYTES: usize = 64 * 1024;

/// Serves every connection on its own thread: reads requests (bodies framed by
/// `Content-Length`) into a fixed buffer and answers each with [`UPSTREAM_RESPONSE`].
fn start_fixed_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("upstream binds");
    let addr = listener.local_addr().expect("upstream address");
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || answer_heads(stream, UPSTREAM_RESPONSE));
        }
    });
    addr
}

/// Answers every complete request read from `stream` with `response`.
fn answer_heads(mut stream: TcpStream, response: &[u8]) {
    let _ = stream.set_nodelay(true);
    let mut buf = [0u8; FIXED_BUFFER_BYTES];
    let mut filled = 0;
    loop {
        match stream.read(&mut buf[filled..]) {
            Ok(0) | Err(_) => return,
            Ok(n) => filled += n,
        }
        while let Some(head) = head_end(&buf[..filled]) {
            let end = head + content_length(&buf[..head]).unwrap_or(0);
            if filled < end {
                break;
            }
            if stream.write_all(response).is_err() {
                return;
            }
            buf.copy_within(end..filled, 0);
            filled -= end;
        }
    }
}

/// Where the head ending in the first blank line ends, if it is complete.
fn head_end(bytes: &[u8]) -> Option<usize> {
    bytes
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .map(|at| at + 4)
}

/// A keep-alive client that sends one fixed request and reads one response at a time, with a
/// fixed buffer; responses must carry `Content-Length`.
struct FixedClient {
    stream: TcpStream,
    buf: Box<[u8; FIXED_BUFFER_BYTES]>,
}

impl FixedClient {
    fn connect(addr: SocketAddr) -> FixedClient {
        let stream = TcpStream::connect(addr).expect("client connects");
        stream.set_nodelay(true).expect("nodelay");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("read timeout");
        FixedClient {
            stream,
            buf: Box::new([0u8; FIXED_BUFFER_BYTES]),
        }
    }

    /// Sends `request` and reads the whole response; returns its status.
    fn exchange(&mut self, request: &[u8]) -> u16 {
        self.stream.write_all(request).expect("request sent");
        let mut filled = 0;
        loop {
            let n = self
                .stream
                .read(&mut self.buf[filled..])
                .expect("response read");
            assert!(n > 0, "confab closed the connection");
            filled += n;
            let Some(end) = head_end(&self.buf[..filled]) else {
                continue;
            };
            let length = content_length(&self.buf[..end]).expect("response has content-length");
            if filled >= end + length {
                assert_eq!(filled, end + length, "one response at a time");
                return status(&self.buf[..end]);
            }
        }
    }
}

fn status(head: &[u8]) -> u16 {
    std::str::from_utf8(&head[9..12])
        .ok()
        .and_then(|code| code.parse().ok())
        .expect("status code")
}

fn content_length(head: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(head).ok()?;
    text.split("\r\n").find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse().ok())
            .flatten()
    })
}

/// The fewest allocations counted over [`WINDOWS`] windows of [`WINDOW_REQUESTS`] requests.
fn quietest_window(client: &mut FixedClient, request: &[u8]) -> u64 {
    for _ in 0..WARM_UP_REQUESTS {
        assert_eq!(client.exchange(request), 200);
    }
    (0..WINDOWS)
        .map(|_| {
            let before = ALLOCATIONS.load(Ordering::Relaxed);
            for _ in 0..WINDOW_REQUESTS {
                assert_eq!(client.exchange(request), 200);
            }
            ALLOCATIONS.load(Ordering::Relaxed) - before
        })
        .min()
        .expect("at least one window")
}

fn start_confab(upstream: SocketAddr) -> (confab::server::RunningServer, tempfile::TempDir) {
    let state = tempfile::tempdir().expect("state dir");
    let config = ServeConfig {
        upstream: Some(format!("http://{upstream}")),
        state_dir: state.path().to_path_buf(),
        threads: 1,
        ..ServeConfig::for_tests()
    };
    (confab::server::start(config).expect("confab starts"), state)
}

#[test]
fn the_counter_sees_allocations() {
    let _alone = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    let boxed = std::hint::black_box(Box::new([7u8; 100]));
    assert!(ALLOCATIONS.load(Ordering::Relaxed) > before);
    drop(boxed);
}

/// Starts confab in front of the fixed upstream and measures, for each request in turn, the
/// allocations of its quietest window on one keep-alive connection; then shuts confab down.
fn quietest_windows_of(requests: &[&[u8]]) -> Vec<u64> {
    let _alone = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let upstream = start_fixed_upstream();
    let (server, _state) = start_confab(upstream);
    let mut client = FixedClient::connect(server.local_addr());
    let allocations = requests
        .iter()
        .map(|request| quietest_window(&mut client, request))
        .collect();
    drop(client);
    server.shutdown().expect("clean shutdown");
    allocations
}

#[test]
fn a_proxied_request_allocates_nothing_in_the_steady_state() {
    let request = b"GET /categories/MLA97994?attributes=id HTTP/1.1\r\nHost: confab.test\r\n\
User-Agent: allocation-test\r\nAccept: application/json\r\n\r\n";
    let allocations = quietest_windows_of(&[request])[0];
    assert_eq!(
        allocations, 0,
        "{allocations} allocations in {WINDOW_REQUESTS} proxied requests"
    );
}

#[test]
fn a_proxied_post_with_a_body_allocates_nothing_in_the_steady_state() {
    let request =
        b"POST /items HTTP/1.1\r\nHost: confab.test\r\nContent-Type: application/json\r\n\
Content-Length: 42\r\n\r\n{\"title\":\"Repuestos\",\"price\":1250,\"qty\":3}";
    let allocations = quietest_windows_of(&[request])[0];
    assert_eq!(
        allocations, 0,
        "{allocations} allocations in {WINDOW_REQUESTS} proxied POSTs"
    );
}

/// Allocations of one `/healthz` request: the own endpoints copy the request's method and
/// normalized path out of the read buffer (they are not the proxy's hot path); the answer
/// itself is built into the binary.
const HEALTHZ_ALLOCATIONS: u64 = 2;
/// Allocations of the conversations example query: those of `/healthz`, the query string, its
/// parsed company and tags (folded to lower case), and the rendered body. The page itself is
/// merged from precomputed bitmaps without allocating.
const CONVERSATIONS_QUERY_ALLOCATIONS: u64 = 8;

#[test]
fn own_endpoints_allocate_no_more_than_their_known_copies() {
    let healthz = b"GET /healthz HTTP/1.1\r\nHost: confab.test\r\n\r\n";
    let query =
        b"GET /api/conversations?company=microsoft&tags=competition,orientation HTTP/1.1\r\n\
Host: confab.test\r\n\r\n";
    let allocations = quietest_windows_of(&[healthz, query]);
    assert!(
        allocations[0] <= HEALTHZ_ALLOCATIONS * WINDOW_REQUESTS as u64,
        "{} allocations in {WINDOW_REQUESTS} /healthz requests",
        allocations[0]
    );
    assert!(
        allocations[1] <= CONVERSATIONS_QUERY_ALLOCATIONS * WINDOW_REQUESTS as u64,
        "{} allocations in {WINDOW_REQUESTS} conversations queries",
        allocations[1]
    );
}
