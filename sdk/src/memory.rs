//! Key-value memory shared by the jobs of a run ([`run`]), by every run of
//! a story ([`story`]), or private to this plugin within its story
//! ([`agent`]).

use serde::{Serialize, de::DeserializeOwned};

use crate::Error;
use crate::bindings::job::warren::plugin::agent_memory;
use crate::bindings::job::warren::plugin::memory as wit;

pub use wit::Scope;

/// A handle on one memory scope.
#[derive(Debug, Clone, Copy)]
pub struct Memory {
    target: Target,
}

/// The `agent` scope has an interface of its own (see the WIT).
#[derive(Debug, Clone, Copy)]
enum Target {
    Scoped(Scope),
    Agent,
}

/// Memory shared by the jobs of this run.
pub fn run() -> Memory {
    Memory {
        target: Target::Scoped(Scope::Run),
    }
}

/// Memory shared by every run of this run's story. Calls fail with
/// `access-denied` when the run has no story.
pub fn story() -> Memory {
    Memory {
        target: Target::Scoped(Scope::Story),
    }
}

/// Memory of this plugin alone within this run's story: other plugins of
/// the story cannot read it. Calls fail with `access-denied` when the run
/// has no story.
pub fn agent() -> Memory {
    Memory {
        target: Target::Agent,
    }
}

impl Memory {
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        Ok(match self.target {
            Target::Scoped(scope) => wit::get(scope, key)?,
            Target::Agent => agent_memory::get(key)?,
        })
    }

    pub fn set(&self, key: &str, value: &[u8]) -> Result<(), Error> {
        match self.target {
            Target::Scoped(scope) => wit::set(scope, key, value)?,
            Target::Agent => agent_memory::set(key, value)?,
        }
        Ok(())
    }

    /// Returns whether the key existed.
    pub fn delete(&self, key: &str) -> Result<bool, Error> {
        Ok(match self.target {
            Target::Scoped(scope) => wit::delete(scope, key)?,
            Target::Agent => agent_memory::delete(key)?,
        })
    }

    /// Every key starting with `prefix`, in byte order.
    pub fn keys(&self, prefix: &str) -> Result<Vec<String>, Error> {
        let mut keys: Vec<String> = Vec::new();
        loop {
            let after = keys.last().map(String::as_str);
            let page = match self.target {
                Target::Scoped(scope) => wit::list_keys(scope, prefix, after)?,
                Target::Agent => agent_memory::list_keys(prefix, after)?,
            };
            if page.is_empty() {
                return Ok(keys);
            }
            keys.extend(page);
        }
    }

    /// Reads a JSON value.
    pub fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, Error> {
        self.get(key)?
            .map(|bytes| serde_json::from_slice(&bytes).map_err(Error::from))
            .transpose()
    }

    /// Writes a JSON value.
    pub fn set_json<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<(), Error> {
        self.set(key, &serde_json::to_vec(value)?)
    }
}
