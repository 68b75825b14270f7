//! Unit tests for the index: query semantics, JSON output and lookups.
