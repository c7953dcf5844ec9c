//! The plugins folder of `warren serve`. A `.wasm` file dropped into it
//! becomes a plugin version without a restart; replacing the file makes a
//! new version, deleting it retires the plugin. Each file is validated and
//! compiled in the background, one at a time and with a time bound, before
//! anything changes; a file that fails is quarantined with the reason.
//!
//! Every version's bytes are kept under the data folder, so a run pinned to
//! a version, or an active version whose file was replaced by one waiting
//! for approval, still loads after a restart.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::PluginRegistry;
use super::grants::{self, Manifest, Policy};
pub use super::lifecycle::Version;
use super::lifecycle::{self, Refusal, Transition};
use super::watcher::{self, Change, FileStamp, FolderWatcher, PLUGIN_EXTENSION, plugin_file};
use crate::db::plugins::{self as stored, VersionRecord, VersionState};
use crate::db::{Database, DbError};
use warren_sandbox::artifact_store::{ArtifactStore, sha256_hex};
use warren_sandbox::plugin::{MAX_PLUGIN_BYTES, Plugin, PluginError};
use warren_sandbox::runtime::Runtime;
use warren_vocabulary::names::is_valid_plugin_name;
use warren_vocabulary::{PluginKind, now_ms};

/// The file extension of manifests.
const MANIFEST_EXTENSION: &str = "toml";

/// A file that was not loaded, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Quarantined {
    pub file: String,
    /// sha256 of the file, when it could be read.
    pub digest: Option<String>,
    pub reason: String,
    /// Unix milliseconds.
    pub at: i64,
    #[serde(skip)]
    pub seen: Seen,
}

/// What a file was when examined: a quarantine holds until one of these
/// changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seen {
    stamp: Option<FileStamp>,
    digest: Option<String>,
    /// The manifest's text.
    manifest: Option<String>,
}

/// What examining a file did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Examined {
    pub file: String,
    pub name: Option<String>,
    pub digest: Option<String>,
    pub state: FileState,
    /// Why it is quarantined or waits for approval.
    pub reason: Option<String>,
}

/// What became of a file: the state of the version it holds, or why it
/// holds none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileState {
    Active,
    PendingApproval,
    Inactive,
    Retired,
    /// Not loaded until it changes.
    Quarantined,
    /// Warren could not examine it (its own fault); it tries again.
    Error,
    /// A manifest, kept for the component sent after it.
    Stored,
}

warren_vocabulary::text_enum!(FileState {
    Active => "active",
    PendingApproval => "pending_approval",
    Inactive => "inactive",
    Retired => "retired",
    Quarantined => "quarantined",
    Error => "error",
    Stored => "stored",
});

impl From<VersionState> for FileState {
    fn from(state: VersionState) -> Self {
        match state {
            VersionState::Active => Self::Active,
            VersionState::PendingApproval => Self::PendingApproval,
            VersionState::Inactive => Self::Inactive,
            VersionState::Retired => Self::Retired,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApproveError {
    #[error("plugin {0} has no version {1}")]
    NotFound(String, String),
    #[error("version {digest} of {name} is {state}, not pending approval")]
    NotPending {
        name: String,
        digest: String,
        state: VersionState,
    },
    #[error("cannot load the version: {0}")]
    Load(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Why a new file content is not a version.
enum Failure {
    /// The file's: it is quarantined.
    File(String),
    /// Warren's: it is examined again.
    Host(String),
}

/// The folder, the versions it produced and the files it quarantined.
/// Cheap to clone.
#[derive(Clone)]
pub struct PluginDirectory {
    shared: Arc<Shared>,
}

struct Shared {
    runtime: Arc<Runtime>,
    db: Arc<Database>,
    registry: PluginRegistry,
    dir: PathBuf,
    policy: Policy,
    compile_timeout: Duration,
    /// The bytes of every version, by digest.
    store: ArtifactStore,
    catalogue: Mutex<Catalogue>,
    /// Files are examined one at a time: compiling is heavy, and two
    /// examinations of the same name must not interleave.
    examining: tokio::sync::Mutex<()>,
    /// New contents a start compiled ahead of their examination, by digest.
    precompiled: Mutex<HashMap<String, Result<Plugin, String>>>,
}

#[derive(Default)]
struct Catalogue {
    /// By plugin name, oldest first.
    versions: BTreeMap<String, Vec<Version>>,
    /// By file name.
    quarantined: BTreeMap<String, Quarantined>,
    /// What each file was when last examined, so an unchanged file is not
    /// read again.
    seen: HashMap<String, FileStamp>,
}

/// The next file of a start's queue.
fn pop(queue: &Mutex<VecDeque<PathBuf>>) -> Option<PathBuf> {
    queue.lock().unwrap_or_else(|p| p.into_inner()).pop_front()
}

impl PluginDirectory {
    /// Restores the versions the database knows (loading the active ones
    /// and those unfinished runs use) and notes every file of `dir` as
    /// still to examine: runs naming them wait until
    /// [`PluginDirectory::examine_all`] has.
    pub async fn open(
        runtime: Arc<Runtime>,
        db: Arc<Database>,
        registry: PluginRegistry,
        dir: &Path,
        policy: Policy,
        compile_timeout: Duration,
    ) -> anyhow::Result<Self> {
        let store = ArtifactStore::open(&runtime.data_dir().join("plugin-versions"))?;
        let directory = Self {
            shared: Arc::new(Shared {
                runtime,
                db,
                registry,
                dir: dir.to_owned(),
                policy,
                compile_timeout,
                store,
                catalogue: Mutex::default(),
                examining: tokio::sync::Mutex::new(()),
                precompiled: Mutex::default(),
            }),
        };
        let shared = Arc::downgrade(&directory.shared);
        directory
            .shared
            .registry
            .set_loader(Arc::new(move |name: &str, digest: &str| {
                let shared = shared.upgrade()?;
                load_kept(&shared, name, digest)
            }));
        directory.restore().await?;
        let names: Vec<String> = watcher::list(dir)?
            .iter()
            .filter_map(|(p, _)| plugin_file(p).map(|(_, name)| name))
            .collect();
        directory.shared.registry.expect(names);
        Ok(directory)
    }

    /// Examines every file of the folder, smallest first: the first file
    /// alone, then one worker per core (compiling is the slow part and runs
    /// outside the examination lock), a file a submitted run waits for at
    /// once; then retires the plugins whose file is gone. `warren serve`
    /// runs this in the background once it listens.
    pub async fn examine_all(&self) {
        let mut files = match watcher::list(&self.shared.dir) {
            Ok(files) => files,
            Err(e) => {
                tracing::error!("cannot list {}: {e}", self.shared.dir.display());
                Vec::new()
            }
        };
        let present: Vec<String> = files
            .iter()
            .filter_map(|(p, _)| plugin_file(p).map(|(_, name)| name))
            .collect();
        // Smallest first: compile time grows with size, so the most
        // plugins become runnable soonest.
        files.sort_by_key(|(path, stamp)| (stamp.len(), path.clone()));
        let queue = Arc::new(Mutex::new(
            files.into_iter().map(|(p, _)| p).collect::<VecDeque<_>>(),
        ));
        // wasmtime compiles a component's functions on every core, but its
        // parsing and linking use one: one file at a time kept the cores
        // about 90% busy, one file per core fills the gaps. The first file
        // compiles alone, so the smallest plugin is runnable soonest.
        let workers = std::thread::available_parallelism().map_or(1, usize::from);
        let (first_done, after_first) = tokio::sync::watch::channel(false);
        let mut first_done = Some(first_done);
        let mut tasks = tokio::task::JoinSet::new();
        for worker in 0..workers {
            let (directory, queue) = (self.clone(), queue.clone());
            let first_done = if worker == 0 { first_done.take() } else { None };
            let mut after_first = after_first.clone();
            tasks.spawn(async move {
                if first_done.is_none() {
                    // Also ends when the first worker ends (the queue is empty).
                    let _ = after_first.wait_for(|done| *done).await;
                }
                while let Some(path) = pop(&queue) {
                    directory.examine_one(&path).await;
                    if let Some(first_done) = &first_done {
                        first_done.send_replace(true);
                    }
                }
            });
        }
        // A file a run waits for does not wait for a worker: it is taken
        // out of the queue and examined at once, beside them. Once the
        // workers are done it takes no more, and finishes what it took.
        let (workers_done, mut stop_taking) = tokio::sync::oneshot::channel::<()>();
        let express = tokio::spawn({
            let (directory, queue) = (self.clone(), queue.clone());
            async move {
                let mut loading = directory.shared.registry.loading();
                let mut started = tokio::task::JoinSet::new();
                loop {
                    tokio::select! {
                        changed = loading.changed() => if changed.is_err() { break },
                        _ = &mut stop_taking => break,
                    }
                    let wanted = loading.borrow_and_update().wanted.clone();
                    // Most changes are files settling; nothing to take then.
                    if wanted.is_empty() {
                        continue;
                    }
                    let taken: VecDeque<PathBuf> = {
                        let mut queue = queue.lock().unwrap_or_else(|p| p.into_inner());
                        let (taken, left): (VecDeque<PathBuf>, VecDeque<PathBuf>) =
                            queue.drain(..).partition(|p| {
                                plugin_file(p).is_some_and(|(_, name)| wanted.contains(&name))
                            });
                        *queue = left;
                        taken
                    };
                    for path in taken {
                        let directory = directory.clone();
                        started.spawn(async move { directory.examine_one(&path).await });
                    }
                }
                while started.join_next().await.is_some() {}
            }
        });
        while tasks.join_next().await.is_some() {}
        let _ = workers_done.send(());
        let _ = express.await;
        self.precompiled().clear();
        // Whatever a failed worker left is examined as far as runs go.
        for name in &present {
            self.shared.registry.settle(name);
        }
        let names: Vec<String> = self.catalogue().versions.keys().cloned().collect();
        for name in names.into_iter().filter(|name| !present.contains(name)) {
            self.retire(&name).await;
        }
    }

    /// Waits until no file of the folder is left to examine.
    pub async fn all_examined(&self) {
        let mut loading = self.shared.registry.loading();
        let _ = loading.wait_for(|l| l.names.is_empty()).await;
    }

    /// Compiles, examines and settles one file of the start.
    async fn examine_one(&self, path: &Path) {
        self.precompile(path).await;
        self.examine(path).await;
        if let Some((_, name)) = plugin_file(path) {
            self.shared.registry.settle(&name);
        }
    }

    /// Compiles a new content of `path` outside the examination lock, so
    /// that a run waiting for it is not held behind another file's
    /// examination; [`Self::examine`] takes the result. Anything wrong
    /// with the file is for the examination to report.
    async fn precompile(&self, path: &Path) {
        let Some((_, name)) = plugin_file(path) else {
            return;
        };
        // A plugin restored from the database is runnable already: its file
        // is examined as usual, without reading it twice.
        if self.shared.registry.get(&name).is_some() {
            return;
        }
        let small = std::fs::metadata(path).is_ok_and(|m| m.len() <= MAX_PLUGIN_BYTES);
        let Some(bytes) = small.then(|| std::fs::read(path).ok()).flatten() else {
            return;
        };
        let digest = sha256_hex(&bytes);
        if self.version(&name, &digest).is_some() {
            return;
        }
        let compiled = self.compile(&name, bytes).await;
        self.precompiled().insert(digest, compiled);
    }

    fn precompiled(&self) -> MutexGuard<'_, HashMap<String, Result<Plugin, String>>> {
        self.shared
            .precompiled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn db(&self) -> &Database {
        &self.shared.db
    }

    fn catalogue(&self) -> MutexGuard<'_, Catalogue> {
        self.shared
            .catalogue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    pub fn registry(&self) -> &PluginRegistry {
        &self.shared.registry
    }

    async fn restore(&self) -> anyhow::Result<()> {
        let records = self.db().read(stored::versions)?;
        let pinned = self.db().read(stored::pinned_versions)?;
        for record in records {
            let (version, broken) = lifecycle::from_store(record, &self.shared.policy);
            if let Some(e) = broken {
                tracing::error!(
                    plugin = version.record.name,
                    digest = version.record.digest,
                    "stored manifest no longer parses ({e}); the version gets the least grants"
                );
            }
            self.put(version);
        }
        for (name, versions) in self.plugins() {
            let pinned: Vec<String> = pinned
                .iter()
                .filter(|(plugin, _)| *plugin == name)
                .map(|(_, digest)| digest.clone())
                .collect();
            let transition = lifecycle::restored(&versions, &pinned);
            let needed = versions.iter().filter(|v| {
                let digest = &v.record.digest;
                transition.load.contains(digest) || transition.activate.as_ref() == Some(digest)
            });
            for version in needed {
                if let Err(e) = self.ensure_loaded(version, None).await {
                    tracing::warn!(
                        plugin = name,
                        digest = version.record.digest,
                        "stored plugin version not loaded: {e}"
                    );
                }
            }
            self.commit(&name, transition).await?;
        }
        Ok(())
    }

    /// Loads `version` unless it is loaded: from `bytes` (its file's, then
    /// kept) or from the kept copy (compiled code comes from the cache when
    /// it is there).
    async fn ensure_loaded(&self, version: &Version, bytes: Option<Vec<u8>>) -> Result<(), String> {
        let (name, digest) = (&version.record.name, &version.record.digest);
        if self.shared.registry.version(name, digest).is_some() {
            return Ok(());
        }
        let keep = bytes.is_some();
        let bytes = match bytes {
            Some(bytes) => bytes,
            None => self
                .shared
                .store
                .get(digest, MAX_PLUGIN_BYTES)
                .map_err(|e| e.to_string())?,
        };
        let plugin = self.compile(name, bytes.clone()).await?;
        self.shared
            .registry
            .add_version(plugin.with_grants(version.grants.clone()));
        if keep && let Err(e) = self.shared.store.put(&bytes) {
            tracing::warn!(plugin = name, "cannot keep a copy of the version: {e}");
        }
        Ok(())
    }

    /// Validates and compiles off the async threads, within the time bound;
    /// an agent is then asked to describe itself (under limits of its own).
    async fn compile(&self, name: &str, bytes: Vec<u8>) -> Result<Plugin, String> {
        let runtime = self.shared.runtime.clone();
        let owned_name = name.to_owned();
        let work = tokio::task::spawn_blocking(move || runtime.load_bytes(&owned_name, &bytes));
        let plugin = match tokio::time::timeout(self.shared.compile_timeout, work).await {
            Ok(Ok(result)) => result.map_err(|e: PluginError| e.to_string())?,
            Ok(Err(e)) => return Err(format!("validation stopped: {e}")),
            Err(_) => {
                return Err(format!(
                    "compiling took longer than {} s",
                    self.shared.compile_timeout.as_secs_f64()
                ));
            }
        };
        if plugin.kind() != PluginKind::Agent {
            return Ok(plugin);
        }
        let info = self.shared.runtime.describe_agent(&plugin).await?;
        Ok(plugin.with_agent_info(info))
    }

    /// The file's fault: it is not loaded until it changes (content,
    /// manifest, or just its modification time).
    fn quarantine(&self, file: &str, seen: Seen, reason: String) -> Examined {
        tracing::warn!("plugin file {file} quarantined: {reason}");
        let entry = Quarantined {
            file: file.to_owned(),
            digest: seen.digest.clone(),
            reason: reason.clone(),
            at: now_ms(),
            seen: seen.clone(),
        };
        self.catalogue().quarantined.insert(file.to_owned(), entry);
        Examined {
            file: file.to_owned(),
            name: None,
            digest: seen.digest,
            state: FileState::Quarantined,
            reason: Some(reason),
        }
    }

    /// Warren's fault (a database or disk error): nothing is recorded
    /// against the file, which is examined again at the next listing.
    fn host_failure(&self, file: &str, digest: Option<String>, reason: String) -> Examined {
        tracing::error!("plugin file {file} not examined: {reason}");
        self.catalogue().seen.remove(file);
        Examined {
            file: file.to_owned(),
            name: None,
            digest,
            state: FileState::Error,
            reason: Some(reason),
        }
    }

    fn examined(file: &str, version: &VersionRecord) -> Examined {
        Examined {
            file: file.to_owned(),
            name: Some(version.name.clone()),
            digest: Some(version.digest.clone()),
            state: version.state.into(),
            reason: version.note.clone(),
        }
    }

    /// Makes a version of `path` if its content is new: validated, compiled,
    /// granted, then active, or pending approval when it asks for more than
    /// the plugin's last active version. Never fails; what went wrong is in
    /// the answer.
    pub async fn examine(&self, path: &Path) -> Examined {
        let _turn = self.shared.examining.lock().await;
        let Some((file, name)) = plugin_file(path) else {
            let file = path.display().to_string();
            return self.quarantine(&file, Seen::default(), "not a `.wasm` plugin file".into());
        };
        let metadata = match std::fs::metadata(path) {
            Ok(metadata) => metadata,
            Err(e) => return self.host_failure(&file, None, format!("cannot read it: {e}")),
        };
        let stamp = FileStamp::of(&metadata);
        // Whatever the outcome, an unchanged file is not examined again.
        self.catalogue().seen.insert(file.clone(), stamp);
        let mut seen = Seen {
            stamp: Some(stamp),
            ..Seen::default()
        };
        if !is_valid_plugin_name(&name) {
            let error = PluginError::BadName { name };
            return self.quarantine(&file, seen, error.to_string());
        }
        if metadata.len() > MAX_PLUGIN_BYTES {
            let error = PluginError::TooLarge {
                size: metadata.len(),
                limit: MAX_PLUGIN_BYTES,
            };
            return self.quarantine(&file, seen, error.to_string());
        }
        let read_path = path.to_owned();
        let bytes = match tokio::task::spawn_blocking(move || std::fs::read(read_path)).await {
            Ok(Ok(bytes)) => bytes,
            Ok(Err(e)) => return self.host_failure(&file, None, format!("cannot read it: {e}")),
            Err(e) => return self.host_failure(&file, None, format!("cannot read it: {e}")),
        };
        let digest = sha256_hex(&bytes);
        seen.digest = Some(digest.clone());
        let manifest_text = match read_manifest_text(path) {
            Ok(text) => text,
            Err(e) => {
                let reason = format!("cannot read {name}.{MANIFEST_EXTENSION}: {e}");
                return self.quarantine(&file, seen, reason);
            }
        };
        seen.manifest = manifest_text.clone();
        if let Some(earlier) = self.catalogue().quarantined.get(&file)
            && earlier.seen == seen
        {
            return Examined {
                file,
                name: Some(name),
                digest: Some(digest),
                state: FileState::Quarantined,
                reason: Some(earlier.reason.clone()),
            };
        }
        let known = self.version(&name, &digest);
        let new = known.is_none();
        let version = match known {
            Some(known) => known,
            None => match self.validate(&name, &digest, &bytes, manifest_text).await {
                Ok(version) => version,
                Err(Failure::File(reason)) => return self.quarantine(&file, seen, reason),
                Err(Failure::Host(reason)) => {
                    return self.host_failure(&file, Some(digest), reason);
                }
            },
        };
        let versions = self.versions_of(&name).unwrap_or_default();
        let transition = lifecycle::seen(&versions, version.clone(), now_ms());
        // A version seen before may not be loaded (a restart could not).
        if transition.activate.as_ref() == Some(&digest)
            && let Err(reason) = self.ensure_loaded(&version, Some(bytes)).await
        {
            return self.quarantine(&file, seen, reason);
        }
        if let Err(e) = self.commit(&name, transition).await {
            return self.host_failure(&file, Some(digest), format!("cannot record it: {e}"));
        }
        self.catalogue().quarantined.remove(&file);
        let record = self
            .version(&name, &digest)
            .map_or(version.record, |v| v.record);
        if new {
            tracing::info!(
                plugin = name,
                digest,
                state = record.state.as_str(),
                "plugin version added"
            );
        }
        Self::examined(&file, &record)
    }

    /// A content never seen under this name as a version: its manifest
    /// checked, compiled, its kind checked, a copy kept, granted and loaded
    /// (the lifecycle decides its state).
    async fn validate(
        &self,
        name: &str,
        digest: &str,
        bytes: &[u8],
        manifest_text: Option<String>,
    ) -> Result<Version, Failure> {
        let manifest = match manifest_text.as_deref().map(|t| parse_manifest(t, name)) {
            None => None,
            Some(Ok(manifest)) => Some(manifest),
            Some(Err(reason)) => return Err(Failure::File(reason)),
        };
        let precompiled = self.precompiled().remove(digest);
        let plugin = match precompiled {
            Some(compiled) => compiled,
            None => self.compile(name, bytes.to_vec()).await,
        }
        .map_err(Failure::File)?;
        if let Some(kind) = manifest.as_ref().and_then(|m| m.kind)
            && kind != plugin.kind()
        {
            return Err(Failure::File(format!(
                "the manifest says kind {kind:?}, the component exports the {:?} world",
                plugin.kind()
            )));
        }
        // Only versions that loaded are kept.
        if let Err(e) = self.shared.store.put(bytes) {
            return Err(Failure::Host(format!("cannot keep a copy: {e}")));
        }
        let grants = grants::grant(manifest.as_ref(), &self.shared.policy);
        let record = VersionRecord {
            name: name.to_owned(),
            digest: digest.to_owned(),
            kind: plugin.kind(),
            size: bytes.len() as u64,
            state: VersionState::PendingApproval,
            // Exactly the text the grants came from.
            manifest: manifest_text,
            note: None,
            first_seen_at: now_ms(),
            activated_at: None,
            approved_at: None,
            agent: plugin.agent_info().cloned(),
        };
        self.shared
            .registry
            .add_version(plugin.with_grants(grants.clone()));
        Ok(Version {
            record,
            manifest,
            grants,
        })
    }

    fn version(&self, name: &str, digest: &str) -> Option<Version> {
        self.catalogue()
            .versions
            .get(name)?
            .iter()
            .find(|v| v.record.digest == digest)
            .cloned()
    }

    /// The one way versions change: `transition` is recorded in one
    /// transaction, then shown in the catalogue, then applied to the
    /// registry (never the other way round). A version to activate must be
    /// loaded.
    async fn commit(&self, name: &str, transition: Transition) -> Result<(), DbError> {
        if !transition.changed.is_empty() {
            let records: Vec<VersionRecord> = transition
                .changed
                .iter()
                .map(|v| v.record.clone())
                .collect();
            self.db()
                .write(move |conn| {
                    for record in &records {
                        stored::save(conn, record)?;
                    }
                    Ok(())
                })
                .await?;
            for version in transition.changed {
                self.put(version);
            }
        }
        if let Some(digest) = &transition.activate {
            self.shared.registry.activate(name, digest);
        }
        if transition.retire {
            self.shared.registry.retire(name);
        }
        Ok(())
    }

    /// Stores `version` in the catalogue, replacing its earlier state.
    fn put(&self, version: Version) {
        let mut catalogue = self.catalogue();
        let versions = catalogue
            .versions
            .entry(version.record.name.clone())
            .or_default();
        match versions
            .iter_mut()
            .find(|v| v.record.digest == version.record.digest)
        {
            Some(slot) => *slot = version,
            None => versions.push(version),
        }
    }

    /// The file of `name` is gone: new runs can no longer use it. Its
    /// versions stay, for history and for the runs pinned to them.
    pub async fn retire(&self, name: &str) {
        let _turn = self.shared.examining.lock().await;
        let file = format!("{name}.{PLUGIN_EXTENSION}");
        if self.shared.dir.join(&file).is_file() {
            return;
        }
        self.catalogue().quarantined.remove(&file);
        let transition = lifecycle::removed(&self.versions_of(name).unwrap_or_default());
        let retired = !transition.changed.is_empty();
        match self.commit(name, transition).await {
            Ok(()) => {
                self.catalogue().seen.remove(&file);
                if retired {
                    tracing::info!(plugin = name, "plugin retired: its file was removed");
                }
            }
            // Still seen: the next listing tries again.
            Err(e) => tracing::error!(plugin = name, "retiring the plugin was not recorded: {e}"),
        }
    }

    /// Makes a version waiting for approval the active one.
    pub async fn approve(&self, name: &str, digest: &str) -> Result<Version, ApproveError> {
        let _turn = self.shared.examining.lock().await;
        let not_found = || ApproveError::NotFound(name.to_owned(), digest.to_owned());
        let versions = self.versions_of(name).unwrap_or_default();
        let transition =
            lifecycle::approved(&versions, digest, now_ms()).map_err(|refusal| match refusal {
                Refusal::Unknown => not_found(),
                Refusal::NotPending(state) => ApproveError::NotPending {
                    name: name.to_owned(),
                    digest: digest.to_owned(),
                    state,
                },
            })?;
        let version = versions
            .iter()
            .find(|v| v.record.digest == digest)
            .ok_or_else(not_found)?;
        self.ensure_loaded(version, None)
            .await
            .map_err(ApproveError::Load)?;
        self.commit(name, transition).await?;
        tracing::info!(plugin = name, digest, "plugin version approved");
        self.version(name, digest).ok_or_else(not_found)
    }

    /// Every plugin's versions, by name.
    pub fn plugins(&self) -> BTreeMap<String, Vec<Version>> {
        self.catalogue().versions.clone()
    }

    pub fn versions_of(&self, name: &str) -> Option<Vec<Version>> {
        self.catalogue().versions.get(name).cloned()
    }

    pub fn quarantined(&self) -> Vec<Quarantined> {
        self.catalogue().quarantined.values().cloned().collect()
    }

    /// Lands uploaded bytes in the folder the way an operator should: a
    /// hidden temporary file, then an atomic rename; then examines it.
    pub async fn upload(
        &self,
        name: &str,
        bytes: &[u8],
        manifest: bool,
    ) -> std::io::Result<Option<Examined>> {
        let extension = if manifest {
            MANIFEST_EXTENSION
        } else {
            PLUGIN_EXTENSION
        };
        let target = self.shared.dir.join(format!("{name}.{extension}"));
        let temporary = self.shared.dir.join(format!(
            ".{name}.{extension}.{}",
            uuid::Uuid::new_v4().simple()
        ));
        let contents = bytes.to_vec();
        let (from, to) = (temporary.clone(), target.clone());
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            use std::io::Write as _;
            let mut file = std::fs::File::create(&from)?;
            file.write_all(&contents)?;
            file.sync_all()?;
            std::fs::rename(&from, &to)
        })
        .await
        .map_err(std::io::Error::other)?
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&temporary);
        })?;
        if manifest {
            return Ok(None);
        }
        Ok(Some(self.examine(&target).await))
    }

    /// Follows the folder (file events, and a listing every second) until
    /// the returned handle is dropped. Needs a tokio runtime.
    pub fn watch(&self) -> Watching {
        let mut folder = FolderWatcher::start(&self.shared.dir);
        let directory = self.clone();
        let task = tokio::spawn(async move {
            // The start examines every file first; what changed meanwhile
            // waits in the watcher's queue.
            directory.all_examined().await;
            loop {
                match folder.next().await {
                    Change::File(path) => directory.look_at(&path).await,
                    Change::Listing => directory.rescan().await,
                }
            }
        });
        Watching { task }
    }

    /// A plugin file an event says is complete or gone: examined if it
    /// changed since, its plugin retired if it is gone.
    async fn look_at(&self, path: &Path) {
        let Some((file, name)) = plugin_file(path) else {
            return;
        };
        match std::fs::metadata(path) {
            Ok(metadata) if metadata.is_file() => {
                let examined = self.catalogue().seen.get(&file).copied();
                if examined != Some(FileStamp::of(&metadata)) {
                    self.examine(path).await;
                }
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => self.retire(&name).await,
            Err(e) => tracing::warn!("plugin file {file} not looked at: {e}"),
        }
    }

    /// Examines the files that changed and were left alone, and retires
    /// the plugins whose file is gone.
    async fn rescan(&self) {
        let listing = match watcher::list(&self.shared.dir) {
            Ok(listing) => listing,
            Err(e) => {
                tracing::warn!("listing the plugins folder: {e}");
                return;
            }
        };
        let due = {
            let catalogue = self.catalogue();
            watcher::due(
                &listing,
                |file| catalogue.seen.get(file).copied(),
                SystemTime::now(),
            )
        };
        for path in &due {
            self.examine(path).await;
        }
        let gone: Vec<String> = {
            let catalogue = self.catalogue();
            catalogue
                .seen
                .keys()
                .filter(|file| {
                    !listing
                        .iter()
                        .any(|(p, _)| p.file_name().is_some_and(|n| n == file.as_str()))
                })
                .filter_map(|file| plugin_file(Path::new(file)).map(|(_, name)| name))
                .collect()
        };
        for name in gone {
            self.retire(&name).await;
        }
    }
}

/// A version from its kept copy, with its grants, for runs pinned to a
/// version no longer loaded (a retried job of an ended run, say).
fn load_kept(shared: &Shared, name: &str, digest: &str) -> Option<Plugin> {
    let (grants, agent) = {
        let catalogue = shared.catalogue.lock().unwrap_or_else(|p| p.into_inner());
        let version = catalogue
            .versions
            .get(name)?
            .iter()
            .find(|v| v.record.digest == digest)?;
        (version.grants.clone(), version.record.agent.clone())
    };
    let loaded = shared
        .store
        .get(digest, MAX_PLUGIN_BYTES)
        .map_err(|e| e.to_string())
        .and_then(|bytes| {
            shared
                .runtime
                .load_bytes(name, &bytes)
                .map_err(|e| e.to_string())
        });
    match loaded {
        // Described when it was first loaded: what it said is on record.
        Ok(plugin) => Some(match agent {
            Some(info) => plugin.with_grants(grants).with_agent_info(info),
            None => plugin.with_grants(grants),
        }),
        Err(e) => {
            tracing::warn!(plugin = name, digest, "kept version not loaded: {e}");
            None
        }
    }
}

fn manifest_path(path: &Path) -> PathBuf {
    path.with_extension(MANIFEST_EXTENSION)
}

/// The manifest beside `path`, if there is one.
fn read_manifest_text(path: &Path) -> std::io::Result<Option<String>> {
    match std::fs::read_to_string(manifest_path(path)) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Parses and checks the manifest of plugin `name`.
fn parse_manifest(text: &str, name: &str) -> Result<Manifest, String> {
    let invalid = |e: String| format!("invalid manifest {name}.{MANIFEST_EXTENSION}: {e}");
    let manifest = Manifest::parse(text).map_err(invalid)?;
    if let Some(named) = &manifest.name
        && named != name
    {
        return Err(format!(
            "the manifest names the plugin {named:?}, but the file is {name}.{PLUGIN_EXTENSION}"
        ));
    }
    let unbounded = warren_vocabulary::LimitsSpec::from_fields(
        [Some(u64::MAX); warren_vocabulary::LimitsSpec::FIELDS],
    )
    .resolve(&warren_vocabulary::Limits::default());
    manifest.limits.check(&unbounded).map_err(invalid)?;
    Ok(manifest)
}

/// Watching the folder; dropping it stops.
pub struct Watching {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Watching {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_states_are_shown_as_serde_writes_them() {
        for &state in FileState::ALL {
            let json = serde_json::to_string(&state).expect("serialize");
            assert_eq!(json, format!("\"{}\"", state.as_str()));
        }
        for &state in VersionState::ALL {
            assert_eq!(FileState::from(state).as_str(), state.as_str());
        }
    }
}
