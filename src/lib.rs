//! confab: a thread-per-core HTTP API proxy that also serves conversation data.
//!
//! Each worker thread runs its own monoio runtime with its own `SO_REUSEPORT` listener and its
//! own upstream connection pool, so the proxied hot path shares nothing between cores. See
//! `docs/` for the design and `README.md` for how to run it.

pub mod api;
pub mod cli;
pub mod config;
pub mod conversations;
pub mod http1;
pub mod jobs;
pub mod mock;
pub mod openapi;
pub mod problem;
pub mod proxy;
pub mod routing;
pub mod serial;
pub mod server;
pub mod stats;
