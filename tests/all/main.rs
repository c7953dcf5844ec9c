//! Integration tests: real components built from source, a real SQLite file
//! and the real `warren` binary.

// All of this crate is test code: a failed assumption is a failed test.
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)]

mod agents;
mod api;
mod approvals;
mod browser;
mod budgets;
mod cli;
mod crash;
mod dashboard;
mod documents;
mod engine;
mod guards;
mod hardening;
mod hostile;
mod idempotency;
mod input_schema;
mod outbound;
mod plugin_folder;
mod runtime;
mod stories;
mod support;
mod wit;
