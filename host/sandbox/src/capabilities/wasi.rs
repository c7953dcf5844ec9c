//! WASI preview 2 for plugins: only `/work` (private scratch), `/out` (files
//! left there become artifacts), when given, `/in` (read-only), and the
//! host directories the plugin was granted are preopened. No environment, no arguments, no network, no inherited stdio:
//! stdout and stderr go into the attempt log.

use std::path::{Path, PathBuf};

use cap_std::ambient_authority;
use cap_std::fs::Dir;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder};

use super::log::{AttemptLog, CapturedStdio, LogSource};
use crate::plugin::grants::DirectoryGrant;

/// Guest path of the private scratch directory.
pub const WORK_DIR: &str = "/work";
/// Guest path of the read-only inputs.
pub const IN_DIR: &str = "/in";
/// Guest path whose files become artifacts.
pub const OUT_DIR: &str = "/out";

/// The per-attempt directories behind `/work` and `/out`, removed on drop.
/// They live under the data directory's `work/`, named by the attempt id
/// (never by anything a guest chose).
#[derive(Debug)]
pub struct Scratch {
    root: Dir,
    name: String,
    pub work: PathBuf,
    pub out: PathBuf,
}

impl Scratch {
    pub fn create(work_root: &Path, attempt_id: &str) -> std::io::Result<Self> {
        std::fs::create_dir_all(work_root)?;
        let root = Dir::open_ambient_dir(work_root, ambient_authority())?;
        root.create_dir_all(format!("{attempt_id}/work"))?;
        root.create_dir_all(format!("{attempt_id}/out"))?;
        let base = work_root.join(attempt_id);
        Ok(Self {
            root,
            name: attempt_id.to_owned(),
            work: base.join("work"),
            out: base.join("out"),
        })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // cap-std's remove_dir_all does not follow symlinks the guest made.
        if let Err(e) = self.root.remove_dir_all(&self.name) {
            tracing::warn!(attempt = %self.name, "could not remove scratch directory: {e}");
        }
    }
}

/// Builds the WASI context of one attempt.
pub fn build_ctx(
    log: &AttemptLog,
    scratch: Option<&Scratch>,
    in_dir: Option<&Path>,
    directories: &[DirectoryGrant],
    env: &[(String, String)],
) -> anyhow::Result<WasiCtx> {
    let mut builder = WasiCtxBuilder::new();
    builder
        .stdout(CapturedStdio::new(log.clone(), LogSource::Stdout))
        .stderr(CapturedStdio::new(log.clone(), LogSource::Stderr));
    for (name, value) in env {
        builder.env(name, value);
    }
    if let Some(scratch) = scratch {
        builder.preopened_dir(&scratch.work, WORK_DIR, FsPerms::ReadWrite)?;
        builder.preopened_dir(&scratch.out, OUT_DIR, FsPerms::ReadWrite)?;
    }
    if let Some(in_dir) = in_dir {
        builder.preopened_dir(in_dir, IN_DIR, FsPerms::ReadOnly)?;
    }
    for dir in directories {
        // Checked again at each attempt: a symlink swapped into the path
        // since it was granted would lead elsewhere.
        let now = dir.host.canonicalize()?;
        anyhow::ensure!(
            now == dir.host,
            "granted directory {} now resolves to {}",
            dir.host.display(),
            now.display()
        );
        let perms = if dir.writable {
            FsPerms::ReadWrite
        } else {
            FsPerms::ReadOnly
        };
        builder.preopened_dir(&dir.host, &dir.guest, perms)?;
    }
    Ok(builder.build())
}
