//! Host interfaces, one module each: a grant (`XCtx`, what the plugin may
//! do), per-attempt state (`XState`), the generated `Host` trait implemented
//! for that state, and `add_to_linker`, generic over the store's data with
//! an accessor to the capability's own state (as wasmtime-wasi's are), so
//! no capability names the runtime's state type.
//!
//! Denial is a `host-error` value the guest can handle; a host fault is a trap.

pub mod agent_inputs;
pub mod artifacts;
pub mod breaker;
pub mod disk_quota;
pub mod jobs;
pub mod log;
pub mod memory;
pub mod models;
pub mod outbound;
pub mod replay;
pub mod reviews;
pub mod wasi;
