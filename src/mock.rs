//! The built-in mock upstream: a marketplace category API, the kind of API confab is put in
//! front of, served when no upstream is named.
//!
//! `GET /categories/{id}` answers a category document derived deterministically from the id
//! (same id, same bytes); ids look like `MLA97994` (a three-letter site code and digits).
//! Everything else answers 404 JSON, as the real API does, except `/faults/{fault}`, where the
//! mock misbehaves on purpose for soak and load tests of the proxy's failure paths (see
//! [`MockFault`]). It runs on the same thread-per-core server as the proxy, so it is never the
//! bottleneck of a load test.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;

use serde_json::{json, Value};

use crate::config::ServeConfig;
use crate::server::connection::{ClientConn, OwnBody, Site};
use crate::server::{RuntimeSetup, StartError, Workers};

/// The content type of every mock answer.
const JSON: &str = "application/json; charset=utf-8";
/// Longest digit run accepted in a category id.
const MAX_ID_DIGITS: usize = 12;
/// Most child categories a mock category has.
const MAX_CHILDREN: u64 = 6;
/// Rendered documents each mock worker keeps; when full, the cache starts over. Load tests hit
/// a few ids over and over, so this keeps the mock far cheaper than the proxy in front of it.
const RENDERED_CACHE_ENTRIES: usize = 4096;

const CATEGORY_NAMES: [&str; 24] = [
    "Accesorios para Vehículos",
    "Agro",
    "Alimentos y Bebidas",
    "Animales y Mascotas",
    "Antigüedades y Colecciones",
    "Arte, Librería y Mercería",
    "Autos, Motos y Otros",
    "Bebés",
    "Belleza y Cuidado Personal",
    "Celulares y Teléfonos",
    "Computación",
    "Consolas y Videojuegos",
    "Construcción",
    "Deportes y Fitness",
    "Electrodomésticos",
    "Electrónica, Audio y Video",
    "Herramientas",
    "Hogar, Muebles y Jardín",
    "Industrias y Oficinas",
    "Instrumentos Musicales",
    "Joyas y Relojes",
    "Juegos y Juguetes",
    "Libros, Revistas y Comics",
    "Ropa y Accesorios",
];

const QUALIFIERS: [&str; 8] = [
    "Repuestos",
    "Accesorios",
    "Otros",
    "Kits",
    "Insumos",
    "Usados",
    "Profesionales",
    "Importados",
];

/// The mock's site, one per worker, with its cache of rendered documents.
#[derive(Debug, Default)]
pub struct MockSite {
    rendered: RefCell<HashMap<String, Rc<str>>>,
}

impl MockSite {
    /// The rendered document for `id`, from the cache when possible.
    fn rendered(&self, id: &str) -> Rc<str> {
        if let Some(body) = self.rendered.borrow().get(id) {
            return Rc::clone(body);
        }
        let body: Rc<str> = category(id).to_string().into();
        let mut cache = self.rendered.borrow_mut();
        if cache.len() >= RENDERED_CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(id.to_owned(), Rc::clone(&body));
        body
    }
}

/// How the mock misbehaves on `/faults/{fault}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MockFault {
    /// `close`: closes the connection without answering (the proxy answers 502).
    Close,
    /// `malformed`: answers with a malformed status line, then closes (502).
    Malformed,
    /// `truncated`: announces a 1,000-byte body, sends 10 bytes of it, then closes (the proxy
    /// closes the client connection mid-body).
    Truncated,
}

impl MockFault {
    /// The fault a path asks for, if it is `/faults/{close|malformed|truncated}`.
    pub fn of_path(path: &[u8]) -> Option<MockFault> {
        match path.strip_prefix(b"/faults/")? {
            b"close" => Some(MockFault::Close),
            b"malformed" => Some(MockFault::Malformed),
            b"truncated" => Some(MockFault::Truncated),
            _ => None,
        }
    }

    /// What the mock writes before it closes the connection.
    fn bytes(self) -> &'static [u8] {
        match self {
            MockFault::Close => b"",
            MockFault::Malformed => b"HTTP/1.1 2x0 Broken\r\nContent-Length: 0\r\n\r\n",
            MockFault::Truncated => b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\ntruncated.",
        }
    }
}

/// Misbehaves as `fault` says; the connection always closes afterwards.
async fn serve_fault(conn: &mut ClientConn, fault: MockFault) -> bool {
    conn.buf.consume(conn.head.head_len);
    if matches!(conn.read_own_body().await, OwnBody::Complete(_)) {
        conn.out.clear();
        conn.out.extend_from_slice(fault.bytes());
        let _ = conn.write_out().await;
    }
    false
}

impl Site for MockSite {
    async fn handle(&self, conn: &mut ClientConn) -> bool {
        if let Some(fault) = MockFault::of_path(conn.head.path.of(conn.buf.data())) {
            return serve_fault(conn, fault).await;
        }
        let buf = conn.buf.data();
        let readable = matches!(conn.head.method.of(buf), b"GET" | b"HEAD");
        let (status, body) = match category_id(conn.head.path.of(buf)) {
            Some(id) if readable => (200, self.rendered(id)),
            Some(_) => (
                405,
                error_body(405, "method_not_allowed", "Method not allowed"),
            ),
            None => (404, error_body(404, "not_found", "Category not found")),
        };
        conn.buf.consume(conn.head.head_len);
        let body_read = matches!(conn.read_own_body().await, OwnBody::Complete(_));
        conn.send_response(status, JSON, &[], body.as_bytes(), body_read)
            .await
    }
}

/// The id in `/categories/{id}`, if the path is one and the id is well formed.
pub fn category_id(path: &[u8]) -> Option<&str> {
    let id = std::str::from_utf8(path.strip_prefix(b"/categories/")?).ok()?;
    let (site, digits) = id.split_at_checked(3)?;
    let site_ok = site.bytes().all(|byte| byte.is_ascii_uppercase());
    let digits_ok = (1..=MAX_ID_DIGITS).contains(&digits.len())
        && digits.bytes().all(|byte| byte.is_ascii_digit());
    (site_ok && digits_ok).then_some(id)
}

/// The category document for `id`, derived from nothing but the id.
pub fn category(id: &str) -> Value {
    let mut seed = Seed(fnv1a(id.as_bytes()));
    let site = &id[..3];
    let depth = 1 + seed.below(3);
    let mut path: Vec<Value> = (0..depth)
        .map(|_| json!({"id": seed.category_id(site), "name": seed.name()}))
        .collect();
    let name = seed.name();
    path.push(json!({"id": id, "name": name}));
    let children: Vec<Value> = (0..seed.below(MAX_CHILDREN + 1))
        .map(|_| {
            json!({
                "id": seed.category_id(site),
                "name": seed.name(),
                "total_items_in_this_category": seed.below(50_000),
            })
        })
        .collect();
    json!({
        "id": id,
        "name": name,
        "picture": null,
        "total_items_in_this_category": seed.below(2_000_000),
        "path_from_root": path,
        "children_categories": children,
        "attribute_types": "attributes",
        "settings": {
            "adult_content": false,
            "buying_allowed": true,
            "listing_allowed": seed.below(10) > 0,
            "max_pictures_per_item": 12,
        },
    })
}

fn error_body(status: u16, error: &str, message: &str) -> Rc<str> {
    let body = json!({"message": message, "error": error, "status": status, "cause": []});
    body.to_string().into()
}

/// FNV-1a: a tiny, stable hash, written here because the document must not change between
/// builds or platforms (the standard hasher promises neither).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A splitmix64 sequence seeded from the id.
struct Seed(u64);

impl Seed {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut mixed = self.0;
        mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        mixed ^ (mixed >> 31)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }

    fn category_id(&mut self, site: &str) -> String {
        format!("{site}{}", 1000 + self.below(999_000))
    }

    fn name(&mut self) -> String {
        let base = CATEGORY_NAMES[self.below(CATEGORY_NAMES.len() as u64) as usize];
        match self.below(3) {
            0 => base.to_owned(),
            _ => format!(
                "{base} - {}",
                QUALIFIERS[self.below(QUALIFIERS.len() as u64) as usize]
            ),
        }
    }
}

/// A running mock upstream.
pub struct MockServer {
    workers: Workers,
}

impl MockServer {
    pub fn local_addr(&self) -> SocketAddr {
        self.workers.local_addr
    }

    /// Stops the mock and joins its threads.
    pub fn shutdown(self) -> std::io::Result<()> {
        self.workers.signal().trigger();
        self.workers.join()
    }
}

/// Starts the mock upstream on `listen` with `threads` workers.
pub fn start(
    listen: SocketAddr,
    threads: usize,
    setup: RuntimeSetup,
) -> Result<MockServer, StartError> {
    let config = ServeConfig {
        listen,
        threads,
        ..ServeConfig::for_tests()
    };
    let workers = crate::server::spawn_mock_workers(&config, setup)?;
    Ok(MockServer { workers })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_marketplace_ids_only() {
        assert_eq!(category_id(b"/categories/MLA97994"), Some("MLA97994"));
        assert_eq!(category_id(b"/categories/mla1"), None);
        assert_eq!(category_id(b"/categories/MLA"), None);
        assert_eq!(category_id(b"/categories/MLA1/x"), None);
        assert_eq!(category_id(b"/items/MLA1"), None);
    }

    #[test]
    fn documents_are_deterministic_and_distinct() {
        let first = category("MLA97994");
        assert_eq!(first, category("MLA97994"));
        assert_ne!(first, category("MLA97995"));
        assert_eq!(first["id"], "MLA97994");
        let path = first["path_from_root"].as_array().expect("path");
        assert_eq!(path.last().expect("leaf")["id"], "MLA97994");
        assert!(first["children_categories"].is_array());
        assert!(first["total_items_in_this_category"].is_u64());
    }
}
