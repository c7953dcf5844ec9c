//! Host interfaces, one module each: a grant (`XCtx`, what the plugin may
//! do), per-attempt state (`XState`), the generated `Host` trait implemented
//! for that state, and `add_to_linker`.
//!
//! Denial is a `host-error` value the guest can handle; a host fault is a trap.

pub mod artifacts;
pub mod jobs;
pub mod log;
pub mod memory;
pub mod wasi;

use wasmtime::component::Linker;

use crate::runtime::PluginState;

/// Adds every interface Warren provides (WASI p2 and `warren:plugin`).
pub fn add_to_linker(linker: &mut Linker<PluginState>) -> anyhow::Result<()> {
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    crate::bindings::types::add_to_linker::<PluginState, wasmtime::component::HasSelf<PluginState>>(
        linker,
        |s| s,
    )?;
    log::add_to_linker(linker)?;
    memory::add_to_linker(linker)?;
    artifacts::add_to_linker(linker)?;
    jobs::add_to_linker(linker)?;
    Ok(())
}
