//! confab: a thread-per-core HTTP API proxy that also serves conversation data.

pub mod conversations;
