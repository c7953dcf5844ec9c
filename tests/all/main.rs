//! Integration tests: real components built from source, a real SQLite file
//! and the real `warren` binary.

mod api;
mod cli;
mod crash;
mod engine;
mod hostile;
mod plugin_folder;
mod runtime;
mod support;
mod wit;
