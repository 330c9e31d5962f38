//! Shared helpers for the integration tests: `mod support;` in a test file
//! brings in the log generator. Invariant: support code is data-only test
//! scaffolding; it never links against the crate under test, so the answers it
//! computes stay independent of the code they check.

pub mod genlog;
