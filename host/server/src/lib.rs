//! Warren's server: the SQLite store ([`db`]), the plugin catalogue and
//! its watched folder ([`catalogue`]), the durable engine ([`scheduler`]),
//! the builder every command uses ([`host`]), the HTTP API ([`api`]) and a
//! running server ([`serve`]). The `warren` commands (`cli`) and benchmarks
//! (`bench`) are modules of the binary, so the compiler reports what no
//! command uses.
//! It builds on `warren-sandbox` (wasmtime, capabilities, one attempt) and
//! `warren-vocabulary` (states, limits, ids); see `docs/architecture.md`.

pub mod api;
pub mod catalogue;
pub mod config;
pub mod dashboard;
pub mod db;
pub mod host;
pub mod scheduler;
pub mod serve;
pub mod upkeep;

/// Folder holding the first-party plugins built with this binary.
pub const BUILTIN_PLUGINS_DIR: &str = env!("WARREN_BUILTIN_PLUGINS_DIR");
