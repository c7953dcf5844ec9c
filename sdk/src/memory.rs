//! Key-value memory shared by the jobs of a run ([`run`]) or by every run of
//! a story ([`story`]).

use serde::{Serialize, de::DeserializeOwned};

use crate::Error;
use crate::bindings::job::warren::plugin::memory as wit;

pub use wit::Scope;

/// A handle on one memory scope.
#[derive(Debug, Clone, Copy)]
pub struct Memory {
    scope: Scope,
}

/// Memory shared by the jobs of this run.
pub fn run() -> Memory {
    Memory { scope: Scope::Run }
}

/// Memory shared by every run of this run's story. Calls fail with
/// `access-denied` when the run has no story.
pub fn story() -> Memory {
    Memory {
        scope: Scope::Story,
    }
}

impl Memory {
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        Ok(wit::get(self.scope, key)?)
    }

    pub fn set(&self, key: &str, value: &[u8]) -> Result<(), Error> {
        Ok(wit::set(self.scope, key, value)?)
    }

    /// Returns whether the key existed.
    pub fn delete(&self, key: &str) -> Result<bool, Error> {
        Ok(wit::delete(self.scope, key)?)
    }

    /// Every key starting with `prefix`, in byte order.
    pub fn keys(&self, prefix: &str) -> Result<Vec<String>, Error> {
        let mut keys: Vec<String> = Vec::new();
        loop {
            let page = wit::list_keys(self.scope, prefix, keys.last().map(String::as_str))?;
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
