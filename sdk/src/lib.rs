//! `warren-sdk`: write Warren jobs and agents in plain Rust.
//!
//! A job is a type implementing [`Job`] with serde-typed input and output,
//! exported with [`export_job!`]. `warren new job my-job` scaffolds such a
//! crate; its `.cargo/config.toml` selects the `wasm32-wasip2` target, so
//! `cargo build --release` builds the component (elsewhere, add
//! `--target wasm32-wasip2`). Run it with
//! `warren run target/wasm32-wasip2/release/my_job.wasm --input '{"text":"hi"}'`.
//!
//! ```no_run
//! use serde::{Deserialize, Serialize};
//! use warren_sdk::{Context, Error, Job, log};
//!
//! #[derive(Deserialize)]
//! struct Input { text: String }
//!
//! #[derive(Serialize)]
//! struct Output { shout: String }
//!
//! struct Shout;
//!
//! impl Job for Shout {
//!     type Input = Input;
//!     type Output = Output;
//!
//!     fn run(ctx: &Context, input: Input) -> Result<Output, Error> {
//!         log::info(&format!("attempt {} of job {}", ctx.attempt, ctx.job_name));
//!         Ok(Output { shout: input.text.to_uppercase() })
//!     }
//! }
//!
//! warren_sdk::export_job!(Shout);
//! ```
//!
//! Agents implement [`Agent`] and are exported with [`export_agent!`];
//! guards implement [`guard::Guard`] and are exported with [`export_guard!`].
//! Host capabilities are plain functions: [`log`], [`memory`], [`artifacts`]
//! and [`jobs`]; what people decided about a job (its approval gate, input
//! given to it) comes from `ctx.reviews()`. Files go through `std::fs` under `/work`, `/in` and `/out`.

// The generated bindings name this crate by its public path.
extern crate self as warren_sdk;

mod agent;
mod error;
mod job;

pub mod artifacts;
pub mod guard;
pub mod http;
pub mod jobs;
pub mod log;
pub mod memory;
pub mod models;
pub mod reviews;

pub use agent::{Agent, AgentContext, AgentInfo, Document, Reply};
pub use error::{Error, HostError};
pub use job::{Context, Job};
pub use reviews::{Decision, Review};

/// Generated bindings of the `warren:plugin` WIT contract. Plugin authors do
/// not need these; they are public for the export macros.
///
/// They read `sdk/wit/`, a copy of the repository's top-level `wit/` (the
/// contract's home) that ships inside the crate; tests/all/wit.rs keeps the
/// two identical.
#[doc(hidden)]
pub mod bindings {
    /// The `job` world: imports every capability, exports `job-handler`.
    pub mod job {
        wit_bindgen::generate!({
            world: "job",
            path: "wit",
            pub_export_macro: true,
            export_macro_name: "__export_job_world",
            default_bindings_module: "warren_sdk::bindings::job",
            runtime_path: "warren_sdk::__private::wit_bindgen::rt",
        });
    }

    /// The `agent` world, reusing the `job` world's imports.
    pub mod agent {
        wit_bindgen::generate!({
            world: "agent",
            path: "wit",
            pub_export_macro: true,
            export_macro_name: "__export_agent_world",
            default_bindings_module: "warren_sdk::bindings::agent",
            runtime_path: "warren_sdk::__private::wit_bindgen::rt",
            with: {
                "warren:plugin/types@0.1.0": crate::bindings::job::warren::plugin::types,
                "warren:plugin/log@0.1.0": crate::bindings::job::warren::plugin::log,
                "warren:plugin/memory@0.1.0": crate::bindings::job::warren::plugin::memory,
                "warren:plugin/agent-memory@0.1.0": crate::bindings::job::warren::plugin::agent_memory,
                "warren:plugin/artifacts@0.1.0": crate::bindings::job::warren::plugin::artifacts,
                "warren:plugin/reviews@0.1.0": crate::bindings::job::warren::plugin::reviews,
                "warren:plugin/models@0.1.0": crate::bindings::job::warren::plugin::models,
            },
        });
    }

    /// The `guard` world: the `log` import, exports `guard-handler`.
    pub mod guard {
        wit_bindgen::generate!({
            world: "guard",
            path: "wit",
            pub_export_macro: true,
            export_macro_name: "__export_guard_world",
            default_bindings_module: "warren_sdk::bindings::guard",
            runtime_path: "warren_sdk::__private::wit_bindgen::rt",
            with: {
                "warren:plugin/log@0.1.0": crate::bindings::job::warren::plugin::log,
            },
        });
    }

    pub use job::warren::plugin::types;
}

/// Support for the export macros; not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::agent::{describe_agent, invoke_agent};
    pub use crate::guard::check_guard;
    pub use crate::job::run_job;
    pub use wit_bindgen;
}
