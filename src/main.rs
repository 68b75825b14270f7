//! The `confab` binary.
fn main() {}
