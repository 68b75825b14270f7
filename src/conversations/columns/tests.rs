//! Unit tests for column reading.
