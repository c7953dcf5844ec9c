//! Chat completions from the models the operator configured, by name. The
//! host holds the keys and counts the tokens: a call that could pass the
//! job's `max_tokens` or the run's budget fails with
//! `HostError::LimitExceeded` and is not sent.
//!
//! ```no_run
//! use warren_sdk::models::{self, Message};
//!
//! let answer = models::complete("default", &[
//!     Message::system("Answer in one sentence."),
//!     Message::user("What is a lighthouse for?"),
//! ], Some(100))?;
//! println!("{} ({} tokens)", answer.text, answer.tokens_in + answer.tokens_out);
//! # Ok::<(), warren_sdk::HostError>(())
//! ```

use crate::HostError;
use crate::bindings::job::warren::plugin::models as wit;

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// `system`, `user` or `assistant`.
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn system(content: impl Into<String>) -> Self {
        Self::new("system", content)
    }

    pub fn user(content: impl Into<String>) -> Self {
        Self::new("user", content)
    }

    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new("assistant", content)
    }

    fn new(role: &str, content: impl Into<String>) -> Self {
        Self {
            role: role.to_owned(),
            content: content.into(),
        }
    }
}

/// A model's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    pub text: String,
    /// As the endpoint says it (`stop`, `length`...).
    pub finish_reason: String,
    pub tokens_in: u32,
    pub tokens_out: u32,
}

/// Asks model `model` (a name the operator configured and granted this
/// plugin) to complete `messages`, in at most `max_tokens` tokens.
pub fn complete(
    model: &str,
    messages: &[Message],
    max_tokens: Option<u32>,
) -> Result<Completion, HostError> {
    complete_with(model, messages, max_tokens, None)
}

/// [`complete`] at a sampling `temperature`.
pub fn complete_with(
    model: &str,
    messages: &[Message],
    max_tokens: Option<u32>,
    temperature: Option<f32>,
) -> Result<Completion, HostError> {
    let request = wit::CompletionRequest {
        model: model.to_owned(),
        messages: messages
            .iter()
            .map(|m| wit::Message {
                role: m.role.clone(),
                content: m.content.clone(),
            })
            .collect(),
        max_tokens,
        temperature,
    };
    let answer = wit::complete(&request)?;
    Ok(Completion {
        text: answer.text,
        finish_reason: answer.finish_reason,
        tokens_in: answer.tokens_in,
        tokens_out: answer.tokens_out,
    })
}
