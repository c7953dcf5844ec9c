//! Upstream artifacts materialised read-only under `/in/<job>/` for an
//! attempt. The folder lives under the data directory's `work/`, named by
//! the attempt id; artifact names were validated when stored, and every
//! write goes through a cap-std `Dir` rooted there.

use std::path::{Path, PathBuf};

use cap_std::ambient_authority;
use cap_std::fs::Dir;

use warren_sandbox::artifact_store::ArtifactStore;
use warren_vocabulary::Artifact;

/// The `/in` folder of one attempt, removed on drop.
pub(crate) struct InputDir {
    root: Dir,
    name: String,
    pub path: PathBuf,
}

impl InputDir {
    /// Copies each `(job name, artifact)` to `<job>/<artifact name>`.
    pub fn create(
        work_root: &Path,
        attempt_id: &str,
        store: &ArtifactStore,
        artifacts: &[Artifact],
        max_bytes: u64,
    ) -> Result<Self, String> {
        std::fs::create_dir_all(work_root).map_err(|e| e.to_string())?;
        let root =
            Dir::open_ambient_dir(work_root, ambient_authority()).map_err(|e| e.to_string())?;
        let name = format!("{attempt_id}-in");
        root.create_dir(&name).map_err(|e| e.to_string())?;
        let input = Self {
            path: work_root.join(&name),
            root,
            name,
        };
        let dir = input
            .root
            .open_dir(&input.name)
            .map_err(|e| e.to_string())?;
        for artifact in artifacts {
            let relative = format!("{}/{}", artifact.producer, artifact.name);
            if let Some((parent, _)) = relative.rsplit_once('/') {
                dir.create_dir_all(parent)
                    .map_err(|e| format!("{relative}: {e}"))?;
            }
            let bytes = store
                .get(&artifact.sha256, max_bytes)
                .map_err(|e| format!("{relative}: {e}"))?;
            dir.write(&relative, bytes)
                .map_err(|e| format!("{relative}: {e}"))?;
        }
        Ok(input)
    }
}

impl Drop for InputDir {
    fn drop(&mut self) {
        if let Err(e) = self.root.remove_dir_all(&self.name) {
            tracing::warn!(dir = %self.name, "could not remove an input directory: {e}");
        }
    }
}
