//! `warren:plugin/artifacts`: artifacts put by the guest (or left in `/out`)
//! are staged in the content-addressed store for this attempt (shared only
//! once the attempt succeeded and its runner promoted them); reads are
//! limited to this job's own artifacts and its upstream ones.

use std::path::Path;
use std::sync::Arc;

use cap_std::ambient_authority;
use cap_std::fs::Dir;
use warren_vocabulary::{Artifact, text};
use wasmtime::component::{HasSelf, Linker};

use crate::artifact_store::{ArtifactStore, ArtifactStoreError};
use crate::bindings::artifacts::Host;
use crate::bindings::types::{ArtifactInfo, HostError};

/// Longest artifact name, in bytes.
pub const MAX_NAME_BYTES: usize = 512;
/// Deepest `/`-separated artifact name.
pub const MAX_NAME_DEPTH: usize = 16;
/// Most artifacts one attempt may produce.
pub const MAX_ARTIFACTS_PER_ATTEMPT: usize = 1_000;

impl From<&Artifact> for ArtifactInfo {
    fn from(a: &Artifact) -> Self {
        Self {
            name: a.name.clone(),
            digest: a.sha256.clone(),
            size: a.size,
            producer: a.producer.clone(),
        }
    }
}

/// What one attempt may do with artifacts.
#[derive(Debug, Clone)]
pub struct ArtifactsCtx {
    /// The attempt whose staging folder receives what it stores.
    pub attempt_id: String,
    /// The job's name, recorded as producer.
    pub producer: String,
    /// Cap on the bytes this attempt stores.
    pub max_bytes: u64,
    /// Artifacts of upstream jobs this job may read, named `<job>/<name>`.
    pub upstream: Vec<Artifact>,
}

/// The puts of one attempt still writing to its staging folder.
pub struct StagingWrites(Arc<tokio::sync::RwLock<()>>);

impl StagingWrites {
    /// Returns once every put begun so far has finished writing.
    pub async fn finished(&self) {
        drop(self.0.write().await);
    }
}

/// Per-attempt state of the artifacts capability.
pub struct ArtifactsState {
    store: Arc<ArtifactStore>,
    grant: ArtifactsCtx,
    produced: Vec<Artifact>,
    /// Names among `produced` recorded without a blob ([`Self::record_kept`]).
    kept: Vec<String>,
    bytes_stored: u64,
    /// Held, shared, by each put while it writes on its blocking thread. A
    /// put cut off by a deadline or a cancel goes on writing there, so the
    /// attempt's staging folder is removed only once this is free.
    writes: Arc<tokio::sync::RwLock<()>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error("invalid artifact name {}: {reason}", text::shown(name))]
    InvalidName { name: String, reason: &'static str },
    #[error("artifacts of this attempt would exceed {limit} bytes")]
    TooManyBytes { limit: u64 },
    #[error("an attempt produces at most {MAX_ARTIFACTS_PER_ATTEMPT} artifacts")]
    TooMany,
    #[error(transparent)]
    Store(#[from] ArtifactStoreError),
}

impl From<ArtifactError> for HostError {
    fn from(e: ArtifactError) -> Self {
        match e {
            ArtifactError::InvalidName { .. } => Self::Invalid(e.to_string()),
            ArtifactError::TooManyBytes { .. } | ArtifactError::TooMany => {
                Self::LimitExceeded(e.to_string())
            }
            ArtifactError::Store(ArtifactStoreError::NotFound(_)) => Self::NotFound(e.to_string()),
            ArtifactError::Store(ArtifactStoreError::TooLarge { .. }) => {
                Self::LimitExceeded(e.to_string())
            }
            ArtifactError::Store(e) => {
                tracing::error!("artifact store: {e}");
                Self::Unavailable("artifact store unavailable".into())
            }
        }
    }
}

/// Checks an artifact name: relative, `/`-separated, no empty, `.` or `..`
/// part, no control or bidirectional formatting characters, no
/// backslashes.
pub fn validate_name(name: &str) -> Result<(), ArtifactError> {
    let invalid = |reason| ArtifactError::InvalidName {
        name: name.to_owned(),
        reason,
    };
    if name.is_empty() || name.len() > MAX_NAME_BYTES {
        return Err(invalid("must be 1 to 512 bytes"));
    }
    if text::has_hidden_characters(name) || name.contains('\\') {
        return Err(invalid(
            "control characters, bidirectional formatting characters and backslashes are not allowed",
        ));
    }
    let parts: Vec<&str> = name.split('/').collect();
    if parts.len() > MAX_NAME_DEPTH {
        return Err(invalid("too many `/`-separated parts"));
    }
    if parts
        .iter()
        .any(|p| p.is_empty() || *p == "." || *p == "..")
    {
        return Err(invalid(
            "must be relative, without empty, `.` or `..` parts",
        ));
    }
    Ok(())
}

impl ArtifactsState {
    pub fn new(store: Arc<ArtifactStore>, grant: ArtifactsCtx) -> Self {
        Self {
            store,
            grant,
            produced: Vec::new(),
            kept: Vec::new(),
            bytes_stored: 0,
            writes: Arc::default(),
        }
    }

    /// The puts still writing, to wait for once the attempt has stopped
    /// (and dropped this state).
    pub fn writes(&self) -> StagingWrites {
        StagingWrites(self.writes.clone())
    }

    /// Artifacts produced so far, in the order they were stored.
    pub fn produced(&self) -> &[Artifact] {
        &self.produced
    }

    /// Stores `bytes` as artifact `name` of this attempt; a second artifact
    /// of the same name replaces the first. Every call's bytes count
    /// against the budget, replaced or not: each one was written.
    pub fn store(&mut self, name: &str, bytes: &[u8]) -> Result<Artifact, ArtifactError> {
        self.check_store(name, bytes.len())?;
        let sha256 = self.store.stage(&self.grant.attempt_id, bytes)?;
        Ok(self.record(name, sha256, bytes.len()))
    }

    /// Records `bytes` as artifact `name` of this attempt without storing
    /// them: whoever runs the attempt keeps them elsewhere (see
    /// [`Self::kept`]). Counted against the budget like [`Self::store`].
    pub fn record_kept(&mut self, name: &str, bytes: &[u8]) -> Result<Artifact, ArtifactError> {
        self.check_store(name, bytes.len())?;
        let sha256 = crate::artifact_store::sha256_hex(bytes);
        let artifact = self.record(name, sha256, bytes.len());
        self.kept.push(name.to_owned());
        Ok(artifact)
    }

    /// Names of the artifacts produced whose bytes have no blob: recorded
    /// by [`Self::record_kept`] and not replaced since.
    pub fn kept(&self) -> &[String] {
        &self.kept
    }

    /// Whether `size` more bytes under `name` fit this attempt's limits.
    fn check_store(&self, name: &str, size: usize) -> Result<(), ArtifactError> {
        validate_name(name)?;
        if self.bytes_stored + size as u64 > self.grant.max_bytes {
            return Err(ArtifactError::TooManyBytes {
                limit: self.grant.max_bytes,
            });
        }
        let new_name = !self.produced.iter().any(|a| a.name == name);
        if new_name && self.produced.len() >= MAX_ARTIFACTS_PER_ATTEMPT {
            return Err(ArtifactError::TooMany);
        }
        Ok(())
    }

    /// Records a staged blob as artifact `name`, replacing an earlier one.
    fn record(&mut self, name: &str, sha256: String, size: usize) -> Artifact {
        let artifact = Artifact {
            name: name.to_owned(),
            sha256,
            size: size as u64,
            producer: self.grant.producer.clone(),
        };
        self.bytes_stored += size as u64;
        self.kept.retain(|kept| kept != name);
        match self.produced.iter().position(|a| a.name == name) {
            Some(i) => self.produced[i] = artifact.clone(),
            None => self.produced.push(artifact.clone()),
        }
        artifact
    }

    /// Turns every regular file under `out` into an artifact named by its
    /// path relative to `out`. Symlinks and special files are skipped: the
    /// guest could point them anywhere.
    pub fn collect_dir(&mut self, out: &Path) -> Result<Vec<String>, ArtifactError> {
        let dir =
            Dir::open_ambient_dir(out, ambient_authority()).map_err(ArtifactStoreError::from)?;
        let mut skipped = Vec::new();
        self.collect_from(&dir, "", 1, &mut skipped)?;
        Ok(skipped)
    }

    /// Bounded walk: at most MAX_NAME_DEPTH levels (names deeper could not
    /// be stored anyway) and MAX_ARTIFACTS_PER_ATTEMPT entries read.
    fn collect_from(
        &mut self,
        dir: &Dir,
        prefix: &str,
        depth: usize,
        skipped: &mut Vec<String>,
    ) -> Result<(), ArtifactError> {
        let too_deep = || ArtifactError::InvalidName {
            name: prefix.to_owned(),
            reason: "too many `/`-separated parts",
        };
        if depth > MAX_NAME_DEPTH {
            return Err(too_deep());
        }
        let mut entries = Vec::new();
        for entry in dir.entries().map_err(ArtifactStoreError::from)? {
            if entries.len() + self.produced.len() + skipped.len() >= MAX_ARTIFACTS_PER_ATTEMPT {
                return Err(ArtifactError::TooMany);
            }
            let entry = entry.map_err(ArtifactStoreError::from)?;
            entries.push(entry.file_name().to_string_lossy().into_owned());
        }
        entries.sort();
        for file_name in entries {
            let name = if prefix.is_empty() {
                file_name.clone()
            } else {
                format!("{prefix}/{file_name}")
            };
            let metadata = dir
                .symlink_metadata(&file_name)
                .map_err(ArtifactStoreError::from)?;
            let kind = metadata.file_type();
            if kind.is_dir() {
                let sub = dir.open_dir(&file_name).map_err(ArtifactStoreError::from)?;
                self.collect_from(&sub, &name, depth + 1, skipped)?;
            } else if kind.is_file() {
                // A file larger than what is left of the budget fails the
                // collection before it is read.
                if self.bytes_stored + metadata.len() > self.grant.max_bytes {
                    return Err(ArtifactError::TooManyBytes {
                        limit: self.grant.max_bytes,
                    });
                }
                let bytes = dir.read(&file_name).map_err(ArtifactStoreError::from)?;
                self.store(&name, &bytes)?;
            } else {
                skipped.push(name);
            }
        }
        Ok(())
    }

    /// An upstream artifact, named `<job>/<name>`.
    fn find_upstream(&self, name: &str) -> Option<&Artifact> {
        self.grant.upstream.iter().find(|a| {
            name.strip_prefix(&a.producer)
                .and_then(|n| n.strip_prefix('/'))
                == Some(a.name.as_str())
        })
    }
}

impl Host for ArtifactsState {
    #[tracing::instrument(name = "warren.artifacts.put", skip(self, data), fields(size = data.len()))]
    async fn put(
        &mut self,
        name: String,
        data: Vec<u8>,
    ) -> wasmtime::Result<Result<ArtifactInfo, HostError>> {
        if let Err(e) = self.check_store(&name, data.len()) {
            return Ok(Err(e.into()));
        }
        // Hashing, writing and syncing happen on a blocking thread.
        let (store, attempt_id, size) = (
            self.store.clone(),
            self.grant.attempt_id.clone(),
            data.len(),
        );
        let writing = self.writes.clone().read_owned().await;
        let staged = tokio::task::spawn_blocking(move || {
            let staged = store.stage(&attempt_id, &data);
            drop(writing);
            staged
        })
        .await;
        Ok(match staged {
            Ok(Ok(sha256)) => Ok((&self.record(&name, sha256, size)).into()),
            Ok(Err(e)) => Err(ArtifactError::from(e).into()),
            Err(e) => Err(HostError::Unavailable(format!("artifact store: {e}"))),
        })
    }

    #[tracing::instrument(name = "warren.artifacts.get", skip(self))]
    async fn get(&mut self, name: String) -> wasmtime::Result<Result<Vec<u8>, HostError>> {
        // Reads are capped like writes, so a guest cannot pull more into its
        // memory through the host than it may store.
        let limit = self.grant.max_bytes;
        let store = self.store.clone();
        let read = if let Some(own) = self.produced.iter().find(|a| a.name == name) {
            let (attempt_id, digest) = (self.grant.attempt_id.clone(), own.sha256.clone());
            tokio::task::spawn_blocking(move || store.get_staged(&attempt_id, &digest, limit)).await
        } else if let Some(upstream) = self.find_upstream(&name) {
            let digest = upstream.sha256.clone();
            tokio::task::spawn_blocking(move || store.get(&digest, limit)).await
        } else {
            return Ok(Err(HostError::NotFound(format!(
                "no artifact {} visible to this job",
                text::shown(&name)
            ))));
        };
        Ok(match read {
            Ok(read) => read.map_err(|e| HostError::from(ArtifactError::from(e))),
            Err(e) => Err(HostError::Unavailable(format!("artifact store: {e}"))),
        })
    }

    #[tracing::instrument(name = "warren.artifacts.list", skip(self))]
    fn list(&mut self) -> wasmtime::Result<Result<Vec<ArtifactInfo>, HostError>> {
        let upstream = self.grant.upstream.iter().map(|a| ArtifactInfo {
            name: format!("{}/{}", a.producer, a.name),
            ..a.into()
        });
        Ok(Ok(self
            .produced
            .iter()
            .map(ArtifactInfo::from)
            .chain(upstream)
            .collect()))
    }
}

/// Adds `warren:plugin/artifacts`; `get` finds this capability's state in the
/// store's data.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut ArtifactsState,
) -> anyhow::Result<()> {
    crate::bindings::artifacts::add_to_linker::<T, HasSelf<ArtifactsState>>(linker, get)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_could_escape_or_confuse_are_rejected() {
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../b",
            "a//b",
            "./a",
            "a\\b",
            "a\0b",
            "a/\n",
            "cod\u{202e}txt.exe",
            "a\u{2066}b",
        ] {
            assert!(validate_name(bad).is_err(), "{bad:?} should be rejected");
        }
        for good in ["report.txt", "plan/steps.json", "résumé.md", ".hidden"] {
            assert!(validate_name(good).is_ok(), "{good:?} should be accepted");
        }
    }
}
