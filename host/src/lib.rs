//! Warren: a host runtime where jobs and agents run as sandboxed WebAssembly
//! components.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use warren::runtime::{AttemptRequest, Runtime, RuntimeConfig};
//!
//! let runtime = Runtime::new(RuntimeConfig::new("./warren-data"))?;
//! let plugin = runtime.load_file("echo.wasm".as_ref())?;
//! let outcome = runtime.run_attempt(&plugin, AttemptRequest::new("echo", r#"{"text":"hi"}"#)).await;
//! assert_eq!(outcome.result.ok().as_deref(), Some(r#"{"text":"hi"}"#));
//! # Ok(())
//! # }
//! ```

pub mod api;
pub mod artifact_store;
pub mod bench;

pub mod bindings;
pub mod capabilities;
pub mod cli;
pub mod config;

pub mod db;
pub mod plugins;
pub mod runtime;
pub mod scheduler;

/// Folder holding the first-party plugins built with this binary.
pub const BUILTIN_PLUGINS_DIR: &str = env!("WARREN_BUILTIN_PLUGINS_DIR");
