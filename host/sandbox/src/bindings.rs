//! Host-side bindings of the `warren:plugin` WIT contract. The `agent` world
//! reuses the `job` world's imports, so each interface has one Rust trait.

mod job_world {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "job",
        imports: {
            // Host calls that wait on disk or SQLite run it off the async
            // worker threads, so no API request waits behind a plugin.
            "warren:plugin/memory.get": async | trappable,
            "warren:plugin/memory.set": async | trappable,
            "warren:plugin/memory.delete": async | trappable,
            "warren:plugin/memory.list-keys": async | trappable,
            "warren:plugin/agent-memory.get": async | trappable,
            "warren:plugin/agent-memory.set": async | trappable,
            "warren:plugin/agent-memory.delete": async | trappable,
            "warren:plugin/agent-memory.list-keys": async | trappable,
            "warren:plugin/artifacts.put": async | trappable,
            "warren:plugin/artifacts.get": async | trappable,
            "warren:plugin/models.complete": async | trappable,
            default: trappable,
        },
        exports: { default: async },
    });
}

mod agent_world {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "agent",
        imports: { default: trappable },
        exports: { default: async },
        with: {
            "warren:plugin/types": super::job_world::warren::plugin::types,
            "warren:plugin/log": super::job_world::warren::plugin::log,
            "warren:plugin/memory": super::job_world::warren::plugin::memory,
            "warren:plugin/agent-memory": super::job_world::warren::plugin::agent_memory,
            "warren:plugin/artifacts": super::job_world::warren::plugin::artifacts,
            "warren:plugin/reviews": super::job_world::warren::plugin::reviews,
            "warren:plugin/models": super::job_world::warren::plugin::models,
        },
    });
}

mod guard_world {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "guard",
        imports: { default: trappable },
        exports: { default: async },
        with: {
            "warren:plugin/log": super::job_world::warren::plugin::log,
        },
    });
}

pub use agent_world::exports::warren::plugin::agent_handler;
pub use agent_world::warren::plugin::agent_inputs;
pub use agent_world::{Agent, AgentPre};
pub use guard_world::GuardPre;
pub use guard_world::exports::warren::plugin::guard_handler;
pub use job_world::warren::plugin::{
    agent_memory, artifacts, jobs, log, memory, models, reviews, types,
};
pub use job_world::{Job, JobPre};

/// Version of the contract this host implements.
pub const CONTRACT_VERSION: &str = "0.1.0";
/// Export a job plugin must have.
pub const JOB_EXPORT: &str = "warren:plugin/job-handler";
/// Export an agent plugin must have.
pub const AGENT_EXPORT: &str = "warren:plugin/agent-handler";
/// Export a guard plugin must have.
pub const GUARD_EXPORT: &str = "warren:plugin/guard-handler";
