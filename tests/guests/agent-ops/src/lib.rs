//! A test agent that does what its input says, in order, to check what the
//! host gives agents and keeps from them. It requires nothing.
//!
//! Input: `{"ops": [...]}`, each op one of
//! - `{"op": "write", "name": N, "content": C}` or `{"op": "write_big",
//!   "name": N, "bytes": B}`: a document in the reply;
//! - `{"op": "agent_set" | "story_set", "key": K, "value": V}`;
//! - `{"op": "needs", "names": [...]}`: ends asking for documents;
//! - `{"op": "needs_unless_given", "names": [...]}`: the same, unless its
//!   request carried every one of them;
//! - `{"op": "fail", "message": M}`: ends with a permanent error.
//!
//! The output reports what the agent read: its `agent` and `story` memory
//! keys `k` (as text, `null` when absent), the upstream jobs' outputs and
//! the documents it was given.

use serde::Deserialize;
use serde_json::{Value, json};
use warren_sdk::{Agent, AgentContext, AgentInfo, Error, Reply, memory};

#[derive(Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Op {
    Write { name: String, content: String },
    WriteBig { name: String, bytes: usize },
    AgentSet { key: String, value: String },
    StorySet { key: String, value: String },
    Needs { names: Vec<String> },
    NeedsUnlessGiven { names: Vec<String> },
    Fail { message: String },
}

#[derive(Deserialize, Default)]
struct Input {
    #[serde(default)]
    ops: Vec<Op>,
}

struct AgentOps;

fn text(value: Option<Vec<u8>>) -> Value {
    value.map_or(Value::Null, |v| {
        Value::String(String::from_utf8_lossy(&v).into())
    })
}

impl Agent for AgentOps {
    type Input = Input;
    type Output = Value;

    fn describe() -> AgentInfo {
        AgentInfo {
            name: "agent-ops".into(),
            version: "1.0.0".into(),
            description: "does what its input says".into(),
            requires: Vec::new(),
            produces: Vec::new(),
        }
    }

    fn invoke(ctx: &AgentContext, input: Input) -> Result<Reply<Value>, Error> {
        let mut reply = Reply::new(Value::Null);
        for op in input.ops {
            match op {
                Op::Write { name, content } => reply = reply.with_document(name, content),
                Op::WriteBig { name, bytes } => {
                    reply = reply.with_document(name, "d".repeat(bytes))
                }
                Op::AgentSet { key, value } => memory::agent().set(&key, value.as_bytes())?,
                Op::StorySet { key, value } => memory::story().set(&key, value.as_bytes())?,
                Op::Needs { names } => return Err(Error::needs_input(names)),
                Op::NeedsUnlessGiven { names } => {
                    if names.iter().any(|n| ctx.document(n).is_none()) {
                        return Err(Error::needs_input(names));
                    }
                }
                Op::Fail { message } => return Err(Error::permanent(message)),
            }
        }
        let upstream: serde_json::Map<String, Value> = ctx
            .upstream_jobs()
            .map(str::to_owned)
            .collect::<Vec<_>>()
            .into_iter()
            .map(|job| {
                let output = ctx
                    .upstream::<Value>(&job)
                    .ok()
                    .flatten()
                    .unwrap_or(Value::Null);
                (job, output)
            })
            .collect();
        let documents: serde_json::Map<String, Value> = ctx
            .documents
            .iter()
            .map(|d| (d.name.clone(), Value::String(d.content.clone())))
            .collect();
        reply.output = json!({
            "agent_k": memory::agent().get("k").map(text).unwrap_or(Value::Null),
            "story_k": memory::story().get("k").map(text).unwrap_or(Value::Null),
            "upstream": upstream,
            "documents": documents,
        });
        Ok(reply)
    }
}

warren_sdk::export_agent!(AgentOps);
