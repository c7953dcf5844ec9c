//! The plugin catalogue: which plugins new runs may use and which versions
//! running ones keep ([`PluginRegistry`]), the grants a manifest gets under
//! the operator's policy ([`grants`]), and the watched plugins folder with
//! its version lifecycle ([`directory`]).

pub mod directory;
pub mod grants;
mod lifecycle;
mod registry;

pub use registry::PluginRegistry;
