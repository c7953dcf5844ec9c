//! An agent built against the first `warren:plugin@0.1.0` contract (a
//! frozen copy in `wit/`), before `agent-memory` and `agent-inputs` were
//! added: it must load and run unchanged. It echoes its documents.

wit_bindgen::generate!({
    world: "agent",
    path: "wit",
});

use exports::warren::plugin::agent_handler::{AgentInfo, AgentReply, AgentRequest, Guest};
use warren::plugin::types::JobError;

struct AgentV010;

impl Guest for AgentV010 {
    fn describe() -> AgentInfo {
        AgentInfo {
            name: "agent-v010".into(),
            version: "0.1.0".into(),
            description: "built against the first 0.1.0 contract".into(),
            requires: vec!["brief".into()],
            produces: Vec::new(),
        }
    }

    fn invoke(request: AgentRequest) -> Result<AgentReply, JobError> {
        let names: Vec<String> = request
            .documents
            .iter()
            .map(|d| format!("{:?}:{}", d.name, d.content.len()))
            .collect();
        Ok(AgentReply {
            output: format!(
                "{{\"documents\":\"{}\"}}",
                names.join(",").replace('"', "'")
            ),
            documents: Vec::new(),
        })
    }
}

export!(AgentV010);
