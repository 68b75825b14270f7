//! Library-level tests of the job service.
