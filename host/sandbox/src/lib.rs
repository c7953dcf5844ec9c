//! Warren's sandbox: one wasmtime engine, plugin validation, the compile
//! cache and pre-linking, the host capabilities (one module each) and one
//! attempt under limits. Storage it needs is behind small traits
//! ([`capabilities::memory::MemoryStore`]) or plain files
//! ([`artifact_store::ArtifactStore`]): this crate knows nothing of SQLite,
//! HTTP or the plugins folder, so an embedder can run a plugin with it alone.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use warren_sandbox::runtime::{AttemptRequest, Runtime, RuntimeConfig};
//!
//! let runtime = Runtime::new(RuntimeConfig::new("./warren-data"))?;
//! let plugin = runtime.load_file("echo.wasm".as_ref())?;
//! let outcome = runtime.run_attempt(&plugin, AttemptRequest::new("echo", r#"{"text":"hi"}"#)).await;
//! assert_eq!(outcome.result.ok().as_deref(), Some(r#"{"text":"hi"}"#));
//! # Ok(())
//! # }
//! ```

pub mod artifact_store;
pub mod bindings;
pub mod capabilities;
pub mod plugin;
pub mod runtime;

/// The shared vocabulary (limits, usage, artifacts, states), re-exported so
/// an embedder needs this crate only.
pub use warren_vocabulary as vocabulary;
