//! Each worker's recorder: what its requests did since the last publish, in plain cells that no
//! other thread touches.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};

use ahash::RandomState;

use super::{
    unix_now, Delta, Message, RouteCounters, Scope, StatsHandle, UpstreamErrors, API_ROUTES,
    MAX_PROXY_ROUTES, MAX_ROUTE_KEY_BYTES, OTHER_ROUTE,
};

/// One worker's recorder. Lives on the worker's thread.
pub struct WorkerRecorder {
    handle: StatsHandle,
    proxy: RefCell<HashMap<Box<[u8]>, RouteCounters, RandomState>>,
    api: RefCell<HashMap<&'static str, RouteCounters, RandomState>>,
    upstream_errors: Cell<UpstreamErrors>,
    /// Proxied route keys this worker has admitted, at most [`MAX_PROXY_ROUTES`].
    admitted: RefCell<HashSet<Box<[u8]>, RandomState>>,
}

impl WorkerRecorder {
    pub fn new(handle: StatsHandle) -> WorkerRecorder {
        WorkerRecorder {
            handle,
            proxy: RefCell::default(),
            api: RefCell::default(),
            upstream_errors: Cell::default(),
            admitted: RefCell::default(),
        }
    }

    /// Records a proxied request under its route key (see [`RouteKey`]). `upstream_error` is
    /// an index into [`super::UPSTREAM_ERROR_KINDS`].
    pub fn record_proxy(&self, route: &[u8], sample: Sample, upstream_error: Option<usize>) {
        let mut proxy = self.proxy.borrow_mut();
        // The common case, a route already counted this second, costs one hash lookup.
        match proxy.get_mut(route) {
            Some(counters) => sample.apply(counters),
            None => sample.apply(proxy.entry(self.admit(route).into()).or_default()),
        }
        if let Some(kind) = upstream_error {
            let mut errors = self.upstream_errors.get();
            errors[kind] += 1;
            self.upstream_errors.set(errors);
        }
    }

    /// Records a request confab answered itself, under one of the [`API_ROUTES`].
    pub fn record_api(&self, route: &'static str, sample: Sample) {
        debug_assert!(API_ROUTES.contains(&route), "unlisted API route {route}");
        let mut api = self.api.borrow_mut();
        sample.apply(api.entry(route).or_default());
    }

    /// The key to count `key` under: itself if admitted (or admissible), else `other`.
    fn admit<'a>(&self, key: &'a [u8]) -> &'a [u8] {
        let mut admitted = self.admitted.borrow_mut();
        if admitted.contains(key) {
            return key;
        }
        if admitted.len() < MAX_PROXY_ROUTES && key != OTHER_ROUTE.as_bytes() {
            admitted.insert(key.into());
            return key;
        }
        OTHER_ROUTE.as_bytes()
    }

    /// Sends what was recorded since the last publish to the aggregator. When the aggregator's
    /// queue is full the figures stay here and go with the next publish.
    pub fn publish(&self) {
        let Some(delta) = self.take_delta() else {
            return;
        };
        if let Err(Message::Delta(delta)) = self.handle.try_send(Message::Delta(delta)) {
            self.put_back(delta);
        }
    }

    fn take_delta(&self) -> Option<Delta> {
        let proxy = std::mem::take(&mut *self.proxy.borrow_mut());
        let api = std::mem::take(&mut *self.api.borrow_mut());
        let upstream_errors = self.upstream_errors.take();
        if proxy.is_empty() && api.is_empty() && upstream_errors.iter().all(|&n| n == 0) {
            return None;
        }
        let proxy_routes = proxy.into_iter().map(|(route, counters)| {
            let route = String::from_utf8_lossy(&route).into_owned();
            (Scope::Proxy, route, counters)
        });
        let api_routes = api
            .into_iter()
            .map(|(route, counters)| (Scope::Api, route.to_owned(), counters));
        Some(Delta {
            second: unix_now(),
            routes: proxy_routes.chain(api_routes).collect(),
            upstream_errors,
        })
    }

    fn put_back(&self, delta: Delta) {
        for (scope, route, counters) in delta.routes {
            match scope {
                Scope::Proxy => {
                    let mut proxy = self.proxy.borrow_mut();
                    let key: Box<[u8]> = route.into_bytes().into_boxed_slice();
                    proxy.entry(key).or_default().merge(&counters);
                }
                Scope::Api => {
                    let name = API_ROUTES
                        .iter()
                        .find(|name| **name == route)
                        .unwrap_or(&OTHER_ROUTE);
                    let mut api = self.api.borrow_mut();
                    api.entry(name).or_default().merge(&counters);
                }
            }
        }
        let mut errors = self.upstream_errors.get();
        for (total, more) in errors.iter_mut().zip(delta.upstream_errors) {
            *total += more;
        }
        self.upstream_errors.set(errors);
    }
}

/// One request's figures.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub method: u8,
    pub status: u16,
    pub micros: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

impl Sample {
    fn apply(self, counters: &mut RouteCounters) {
        counters.record(
            self.method,
            self.status,
            self.micros,
            self.bytes_in,
            self.bytes_out,
        );
    }
}

/// The route key of a proxied path: its first segment (`/categories/1` → `/categories`), or
/// `other` when that is too long.
pub fn proxy_route_key(path: &[u8]) -> &[u8] {
    let end = path[1.min(path.len())..]
        .iter()
        .position(|&byte| byte == b'/' || byte == b'?')
        .map_or(path.len(), |at| at + 1);
    let key = &path[..end];
    if key.is_empty() || key.len() > MAX_ROUTE_KEY_BYTES {
        OTHER_ROUTE.as_bytes()
    } else {
        key
    }
}

/// A proxied route key copied out of a request's buffer onto the stack, so that recording it
/// after the exchange allocates nothing.
#[derive(Debug, Clone, Copy)]
pub struct RouteKey {
    bytes: [u8; MAX_ROUTE_KEY_BYTES],
    len: usize,
}

impl RouteKey {
    /// The route key of a proxied path (see [`proxy_route_key`]).
    pub fn of_path(path: &[u8]) -> RouteKey {
        let key = proxy_route_key(path);
        let mut bytes = [0; MAX_ROUTE_KEY_BYTES];
        bytes[..key.len()].copy_from_slice(key);
        RouteKey {
            bytes,
            len: key.len(),
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}
