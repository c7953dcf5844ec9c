use std::cell::OnceCell;

use serde::{Serialize, de::DeserializeOwned};

use crate::Error;
use crate::bindings::agent::exports::warren::plugin::agent_handler as wit;
use crate::bindings::agent::warren::plugin::agent_inputs;
use crate::reviews::{self, Review};

/// A named document an agent reads or writes.
pub type Document = wit::Document;

/// How an agent describes itself to the host.
#[derive(Debug, Clone, Default)]
pub struct AgentInfo {
    pub name: String,
    pub version: String,
    pub description: String,
    /// Documents the agent needs before it can be invoked.
    pub requires: Vec<String>,
    /// Documents the agent produces.
    pub produces: Vec<String>,
}

/// An agent: describes itself and answers requests.
pub trait Agent {
    type Input: DeserializeOwned;
    type Output: Serialize;

    fn describe() -> AgentInfo;
    fn invoke(ctx: &AgentContext, input: Self::Input) -> Result<Reply<Self::Output>, Error>;
}

/// What an agent is told about a request.
#[derive(Debug, Clone)]
pub struct AgentContext {
    pub run_id: String,
    pub story_id: Option<String>,
    /// The documents the agent requires, the latest version of each.
    pub documents: Vec<Document>,
    /// `(job, JSON output)` of upstream jobs, asked of the host on first use.
    upstream: OnceCell<Vec<(String, String)>>,
}

impl AgentContext {
    /// The content of the document called `name`, if it was given.
    pub fn document(&self, name: &str) -> Option<&str> {
        self.documents
            .iter()
            .find(|d| d.name == name)
            .map(|d| d.content.as_str())
    }

    /// The output of upstream job `job`, deserialized; `None` if that job is
    /// not upstream of this agent's job.
    pub fn upstream<T: DeserializeOwned>(&self, job: &str) -> Result<Option<T>, Error> {
        self.upstream_outputs()
            .iter()
            .find(|(name, _)| name == job)
            .map(|(_, output)| serde_json::from_str(output).map_err(Error::from))
            .transpose()
    }

    /// Names of the upstream jobs whose outputs this agent can read.
    pub fn upstream_jobs(&self) -> impl Iterator<Item = &str> {
        self.upstream_outputs()
            .iter()
            .map(|(name, _)| name.as_str())
    }

    /// Every review of this agent's job, oldest first: decisions on its
    /// earlier replies (a rework reads here why it runs) and input given
    /// to it.
    pub fn reviews(&self) -> Vec<Review> {
        reviews::own()
    }

    /// Reviews of the jobs this one depends on, oldest first: an approval's
    /// data is the reviewer's addition to that job's output.
    pub fn upstream_reviews(&self) -> Vec<Review> {
        reviews::upstream()
    }

    fn upstream_outputs(&self) -> &[(String, String)] {
        self.upstream.get_or_init(|| {
            agent_inputs::upstream()
                .into_iter()
                .map(|u| (u.job, u.output))
                .collect()
        })
    }
}

/// An agent's answer: an output and the documents it wrote.
#[derive(Debug, Clone)]
pub struct Reply<T> {
    pub output: T,
    pub documents: Vec<Document>,
}

impl<T> Reply<T> {
    pub fn new(output: T) -> Self {
        Self {
            output,
            documents: Vec::new(),
        }
    }

    /// Adds a document to the reply.
    pub fn with_document(mut self, name: impl Into<String>, content: impl Into<String>) -> Self {
        self.documents.push(Document {
            name: name.into(),
            content: content.into(),
        });
        self
    }
}

/// Adapts an [`Agent`] to the generated exports.
pub fn invoke_agent<A: Agent>(
    request: wit::AgentRequest,
) -> Result<wit::AgentReply, crate::bindings::types::JobError> {
    let input: A::Input = serde_json::from_str(&request.input)
        .map_err(|e| Error::permanent(format!("invalid input: {e}")))?;
    let ctx = AgentContext {
        run_id: request.run_id,
        story_id: request.story_id,
        documents: request.documents,
        upstream: OnceCell::new(),
    };
    let reply = A::invoke(&ctx, input)?;
    let output = serde_json::to_string(&reply.output)
        .map_err(|e| Error::permanent(format!("output is not JSON: {e}")))?;
    Ok(wit::AgentReply {
        output,
        documents: reply.documents,
    })
}

/// Converts the SDK's description into the WIT record.
pub fn describe_agent<A: Agent>() -> wit::AgentInfo {
    let info = A::describe();
    wit::AgentInfo {
        name: info.name,
        version: info.version,
        description: info.description,
        requires: info.requires,
        produces: info.produces,
    }
}

/// Exports an [`Agent`] implementation as this component's agent handler.
#[macro_export]
macro_rules! export_agent {
    ($agent:ty) => {
        #[doc(hidden)]
        pub struct __WarrenAgentExport;

        impl $crate::bindings::agent::exports::warren::plugin::agent_handler::Guest
            for __WarrenAgentExport
        {
            fn describe() -> $crate::bindings::agent::exports::warren::plugin::agent_handler::AgentInfo {
                $crate::__private::describe_agent::<$agent>()
            }

            fn invoke(
                request: $crate::bindings::agent::exports::warren::plugin::agent_handler::AgentRequest,
            ) -> ::core::result::Result<
                $crate::bindings::agent::exports::warren::plugin::agent_handler::AgentReply,
                $crate::bindings::types::JobError,
            > {
                $crate::__private::invoke_agent::<$agent>(request)
            }
        }

        $crate::bindings::agent::__export_agent_world!(__WarrenAgentExport);
    };
}
