//! Compiled components cached on disk, keyed by the file's sha256 and the
//! engine's compatibility hash (wasmtime version and every setting that
//! changes generated code), so a restart does no compilation.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Where a component came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Loaded from a previously compiled file.
    Hit,
    /// Compiled now (and stored when a cache directory is set).
    Compiled,
}

#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: Option<PathBuf>,
    engine_key: String,
}

impl CompileCache {
    /// A cache in `dir`, or no cache at all with `None`.
    pub fn new(engine: &Engine, dir: Option<PathBuf>) -> anyhow::Result<Self> {
        if let Some(dir) = &dir {
            prepare_dir(dir)?;
        }
        let mut hasher = Sha256Hasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_key = hex::encode(&hasher.0.finalize()[..8]);
        Ok(Self { dir, engine_key })
    }

    /// Returns the compiled component for `bytes` whose sha256 is `digest`,
    /// compiling and storing it on a miss.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        digest: &str,
        bytes: &[u8],
    ) -> anyhow::Result<(Component, CacheOutcome)> {
        if let Some(component) = self.load(engine, digest) {
            return Ok((component, CacheOutcome::Hit));
        }
        let component = Component::new(engine, bytes)?;
        self.store(digest, &component)?;
        Ok((component, CacheOutcome::Compiled))
    }

    /// The cached compilation of `digest`, if there is a usable one.
    pub fn load(&self, engine: &Engine, digest: &str) -> Option<Component> {
        let path = self.path_for(digest)?;
        if !path.is_file() {
            return None;
        }
        match load_precompiled(engine, &path) {
            Ok(component) => Some(component),
            // A damaged or foreign file is replaced, not trusted.
            Err(e) => {
                tracing::warn!(path = %path.display(), "ignoring cached component: {e:#}");
                None
            }
        }
    }

    /// Keeps a compiled component for the next load (nothing without a
    /// cache directory). Callers store only components they accepted, so
    /// rejected files do not fill the cache.
    pub fn store(&self, digest: &str, component: &Component) -> anyhow::Result<()> {
        let Some(path) = self.path_for(digest) else {
            return Ok(());
        };
        write_atomically(&path, &component.serialize()?)
    }

    fn path_for(&self, digest: &str) -> Option<PathBuf> {
        let dir = self.dir.as_ref()?;
        Some(dir.join(format!("{digest}-{}.cwasm", self.engine_key)))
    }
}

/// Creates the cache folder readable and writable by Warren's user only,
/// and refuses an existing one that other users can write to: whoever can
/// write a file there can make Warren run any native code.
fn prepare_dir(dir: &Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let metadata = std::fs::metadata(dir)?;
        let mode = metadata.permissions().mode();
        if mode & 0o022 != 0 {
            anyhow::bail!(
                "the compile cache {} can be written by other users (mode {:o}); \
                 make it private (chmod 700) or choose another folder",
                dir.display(),
                mode & 0o777
            );
        }
        // `load_precompiled` also needs the folder to be ours.
        let owner = metadata.uid();
        let me = rustix::process::geteuid().as_raw();
        if owner != me {
            anyhow::bail!(
                "the compile cache {} belongs to another user (uid {owner}); choose a folder of Warren's own",
                dir.display()
            );
        }
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir)?;
    Ok(())
}

/// Loads a file this cache wrote.
#[allow(unsafe_code)]
fn load_precompiled(engine: &Engine, path: &Path) -> anyhow::Result<Component> {
    // SAFETY: `deserialize_file` maps the file and runs its machine code
    // as is: it must be the output of `Component::serialize` from a
    // compatible engine, and must not change while mapped. wasmtime checks
    // the header and the engine configuration, not the code. What makes
    // this hold is who can write the folder: `prepare_dir` made it (or
    // found it) owned by Warren's user and writable by no one else, and
    // this cache writes only whole files, renamed into place.
    Ok(unsafe { Component::deserialize_file(engine, path) }?)
}

fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Feeds `Hash` output into sha256, whose value is stable across runs
/// (unlike `DefaultHasher`).
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        let digest = self.0.clone().finalize();
        u64::from_le_bytes(digest[..8].try_into().unwrap_or_default())
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn the_cache_folder_is_private_and_a_shared_one_is_refused() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("cache");
        prepare_dir(&dir).expect("created");
        let mode = std::fs::metadata(&dir)
            .expect("metadata")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);

        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        let error = prepare_dir(&dir).expect_err("refused").to_string();
        assert!(error.contains("can be written by other users"), "{error}");
    }
}
