//! Warren's server: the SQLite store ([`db`]), the plugin catalogue and
//! its watched folder ([`catalogue`]), the durable engine ([`scheduler`]),
//! the HTTP API ([`api`]), and the `warren` commands ([`cli`], [`bench`]).
//! It builds on `warren-sandbox` (wasmtime, capabilities, one attempt) and
//! `warren-vocabulary` (states, limits, ids); see `docs/architecture.md`.

pub mod api;
pub mod bench;
pub mod catalogue;
pub mod cli;
pub mod config;
pub mod db;
pub mod host;
pub mod scheduler;

/// Folder holding the first-party plugins built with this binary.
pub const BUILTIN_PLUGINS_DIR: &str = env!("WARREN_BUILTIN_PLUGINS_DIR");
