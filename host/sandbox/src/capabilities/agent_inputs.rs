//! `warren:plugin/agent-inputs`: what an agent's request does not carry,
//! its upstream jobs' outputs.

use wasmtime::component::{HasSelf, Linker};

use crate::bindings::agent_inputs::Host;
use crate::bindings::types::UpstreamOutput;

/// Per-attempt state: the `(job name, JSON output)` of upstream jobs.
#[derive(Debug, Default)]
pub struct AgentInputsState {
    upstream: Vec<(String, String)>,
}

impl AgentInputsState {
    pub fn new(upstream: Vec<(String, String)>) -> Self {
        Self { upstream }
    }
}

impl Host for AgentInputsState {
    fn upstream(&mut self) -> wasmtime::Result<Vec<UpstreamOutput>> {
        Ok(self
            .upstream
            .iter()
            .map(|(job, output)| UpstreamOutput {
                job: job.clone(),
                output: output.clone(),
            })
            .collect())
    }
}

/// Adds `warren:plugin/agent-inputs`; `get` finds this capability's state.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut AgentInputsState,
) -> anyhow::Result<()> {
    crate::bindings::agent_inputs::add_to_linker::<T, HasSelf<AgentInputsState>>(linker, get)?;
    Ok(())
}
