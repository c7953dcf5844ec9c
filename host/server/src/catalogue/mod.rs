//! The plugin catalogue: which plugins new runs may use and which versions
//! running ones keep ([`PluginRegistry`]), the grants a manifest gets under
//! the operator's policy ([`grants`]), and the watched plugins folder
//! ([`directory`]): its versions' lifecycle (`lifecycle`, no I/O) and how
//! the folder is followed (`watcher`).

pub mod directory;
pub mod grants;
mod lifecycle;
pub mod plugin_file;
mod registry;
mod watcher;

pub use registry::PluginRegistry;
