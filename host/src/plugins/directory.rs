//! The plugins folder of `warren serve`. A `.wasm` file dropped into it
//! becomes a plugin version without a restart; replacing the file makes a
//! new version, deleting it retires the plugin. Each file is validated and
//! compiled in the background, one at a time and with a time bound, before
//! anything changes; a file that fails is quarantined with the reason.
//!
//! Every version's bytes are kept under the data folder, so a run pinned to
//! a version, or an active version whose file was replaced by one waiting
//! for approval, still loads after a restart.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use utoipa::ToSchema;

use super::grants::{self, Grants, Manifest, Policy};
use super::{MAX_PLUGIN_BYTES, Plugin, PluginError, PluginRegistry, is_valid_plugin_name};
use crate::artifact_store::{ArtifactStore, sha256_hex};
use crate::db::plugins::{self as stored, VersionRecord, VersionState};
use crate::db::{Database, DbError};
use crate::runtime::Runtime;

/// How often the folder is listed again, for changes no event reported.
const RESCAN_PERIOD: Duration = Duration::from_secs(1);
/// A file written to without being closed is examined once it has been
/// left alone this long.
const QUIET_PERIOD: Duration = Duration::from_secs(1);

/// The file extension of plugins, and of their manifests.
const PLUGIN_EXTENSION: &str = "wasm";
const MANIFEST_EXTENSION: &str = "toml";

/// A file that was not loaded, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Quarantined {
    pub file: String,
    /// sha256 of the file, when it could be read.
    pub digest: Option<String>,
    pub reason: String,
    /// Unix milliseconds.
    pub at: i64,
}

/// One version of a plugin, as the catalogue knows it.
#[derive(Debug, Clone)]
pub struct Version {
    pub record: VersionRecord,
    pub manifest: Option<Manifest>,
    pub grants: Grants,
}

/// What examining a file did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Examined {
    pub file: String,
    pub name: Option<String>,
    pub digest: Option<String>,
    /// `active`, `pending_approval`, `inactive`, `retired` or `quarantined`.
    pub state: String,
    /// Why it is quarantined or waits for approval.
    pub reason: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApproveError {
    #[error("plugin {0} has no version {1}")]
    NotFound(String, String),
    #[error("version {digest} of {name} is {state}, not pending approval")]
    NotPending {
        name: String,
        digest: String,
        state: &'static str,
    },
    #[error("cannot load the version: {0}")]
    Load(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// The folder, the versions it produced and the files it quarantined.
/// Cheap to clone.
#[derive(Clone)]
pub struct PluginDirectory {
    shared: Arc<Shared>,
}

struct Shared {
    runtime: Arc<Runtime>,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    len: u64,
    modified: Option<SystemTime>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// `name` for `name.wasm`, if the file is a plugin candidate at all (hidden
/// files, such as uploads being written, are not).
fn plugin_file(path: &Path) -> Option<(String, String)> {
    let file = path.file_name()?.to_str()?;
    if file.starts_with('.') {
        return None;
    }
    let stem = file.strip_suffix(PLUGIN_EXTENSION)?.strip_suffix('.')?;
    Some((file.to_owned(), stem.to_owned()))
}

impl PluginDirectory {
    /// Restores the versions the database knows (loading the active ones
    /// and those unfinished runs use), then examines every file of `dir`
    /// and retires the plugins whose file is gone.
    pub async fn open(
        runtime: Arc<Runtime>,
        registry: PluginRegistry,
        dir: &Path,
        policy: Policy,
        compile_timeout: Duration,
    ) -> anyhow::Result<Self> {
        let store = ArtifactStore::open(&runtime.data_dir().join("plugin-versions"))?;
        let directory = Self {
            shared: Arc::new(Shared {
                runtime,
                registry,
                dir: dir.to_owned(),
                policy,
                compile_timeout,
                store,
                catalogue: Mutex::default(),
                examining: tokio::sync::Mutex::new(()),
            }),
        };
        directory.restore().await?;
        let files = directory.files()?;
        for path in &files {
            directory.examine(path).await;
        }
        let present: Vec<String> = files
            .iter()
            .filter_map(|p| plugin_file(p).map(|(_, name)| name))
            .collect();
        let gone: Vec<String> = directory
            .catalogue()
            .versions
            .iter()
            .filter(|(name, versions)| {
                !present.contains(name)
                    && versions
                        .iter()
                        .any(|v| v.record.state == VersionState::Active)
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in gone {
            directory.retire(&name).await;
        }
        Ok(directory)
    }

    fn db(&self) -> &Database {
        self.shared.runtime.database()
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

    pub fn policy(&self) -> &Policy {
        &self.shared.policy
    }

    pub fn registry(&self) -> &PluginRegistry {
        &self.shared.registry
    }

    /// The `.wasm` files of the folder, sorted.
    fn files(&self) -> std::io::Result<Vec<PathBuf>> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.shared.dir)?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| plugin_file(path).is_some() && path.is_file())
            .collect();
        files.sort();
        Ok(files)
    }

    async fn restore(&self) -> anyhow::Result<()> {
        let records = self.db().read(stored::versions)?;
        let pinned = self.db().read(stored::pinned_versions)?;
        for record in records {
            let manifest = record
                .manifest
                .as_deref()
                .and_then(|text| Manifest::parse(text).ok());
            let grants = grants::grant(manifest.as_ref(), &self.shared.policy);
            let needed = record.state == VersionState::Active
                || pinned.contains(&(record.name.clone(), record.digest.clone()));
            if needed {
                match self
                    .load_stored(&record.name, &record.digest, &grants)
                    .await
                {
                    Ok(plugin) if record.state == VersionState::Active => {
                        self.shared.registry.insert(plugin);
                    }
                    Ok(plugin) => self.shared.registry.add_version(plugin),
                    Err(e) => tracing::warn!(
                        plugin = record.name,
                        digest = record.digest,
                        "stored plugin version not loaded: {e}"
                    ),
                }
            }
            self.catalogue()
                .versions
                .entry(record.name.clone())
                .or_default()
                .push(Version {
                    record,
                    manifest,
                    grants,
                });
        }
        Ok(())
    }

    /// Loads a version from the kept bytes (compiled code comes from the
    /// cache when it is there).
    async fn load_stored(
        &self,
        name: &str,
        digest: &str,
        grants: &Grants,
    ) -> Result<Plugin, String> {
        let bytes = self
            .shared
            .store
            .get(digest, MAX_PLUGIN_BYTES)
            .map_err(|e| e.to_string())?;
        let plugin = self.compile(name, bytes).await?;
        Ok(plugin.with_grants(grants.clone()))
    }

    /// Validates and compiles off the async threads, within the time bound.
    async fn compile(&self, name: &str, bytes: Vec<u8>) -> Result<Plugin, String> {
        let runtime = self.shared.runtime.clone();
        let owned_name = name.to_owned();
        let work = tokio::task::spawn_blocking(move || runtime.load_bytes(&owned_name, &bytes));
        match tokio::time::timeout(self.shared.compile_timeout, work).await {
            Ok(Ok(result)) => result.map_err(|e: PluginError| e.to_string()),
            Ok(Err(e)) => Err(format!("validation stopped: {e}")),
            Err(_) => Err(format!(
                "compiling took longer than {} s",
                self.shared.compile_timeout.as_secs_f64()
            )),
        }
    }

    fn quarantine(&self, file: &str, digest: Option<String>, reason: String) -> Examined {
        tracing::warn!("plugin file {file} quarantined: {reason}");
        let entry = Quarantined {
            file: file.to_owned(),
            digest: digest.clone(),
            reason: reason.clone(),
            at: now_ms(),
        };
        self.catalogue().quarantined.insert(file.to_owned(), entry);
        Examined {
            file: file.to_owned(),
            name: None,
            digest,
            state: "quarantined".into(),
            reason: Some(reason),
        }
    }

    fn examined(file: &str, version: &VersionRecord) -> Examined {
        Examined {
            file: file.to_owned(),
            name: Some(version.name.clone()),
            digest: Some(version.digest.clone()),
            state: version.state.as_str().into(),
            reason: version.note.clone(),
        }
    }

    /// Makes a version of `path` if its content is new: validated, compiled,
    /// granted, then active, or pending approval when it asks for more than
    /// the active version. Never fails; what went wrong is in the answer.
    pub async fn examine(&self, path: &Path) -> Examined {
        let _turn = self.shared.examining.lock().await;
        let Some((file, name)) = plugin_file(path) else {
            let file = path.display().to_string();
            return self.quarantine(&file, None, "not a `.wasm` plugin file".into());
        };
        if !is_valid_plugin_name(&name) {
            let error = PluginError::BadName { name };
            return self.quarantine(&file, None, error.to_string());
        }
        let metadata = match std::fs::metadata(path) {
            Ok(metadata) => metadata,
            Err(e) => return self.quarantine(&file, None, format!("cannot read it: {e}")),
        };
        let stamp = FileStamp {
            len: metadata.len(),
            modified: metadata.modified().ok(),
        };
        if metadata.len() > MAX_PLUGIN_BYTES {
            self.catalogue().seen.insert(file.clone(), stamp);
            let error = PluginError::TooLarge {
                size: metadata.len(),
                limit: MAX_PLUGIN_BYTES,
            };
            return self.quarantine(&file, None, error.to_string());
        }
        let read_path = path.to_owned();
        let bytes = match tokio::task::spawn_blocking(move || std::fs::read(read_path)).await {
            Ok(Ok(bytes)) => bytes,
            Ok(Err(e)) => return self.quarantine(&file, None, format!("cannot read it: {e}")),
            Err(e) => return self.quarantine(&file, None, format!("cannot read it: {e}")),
        };
        let digest = sha256_hex(&bytes);
        self.catalogue().seen.insert(file.clone(), stamp);

        if let Some(earlier) = self.catalogue().quarantined.get(&file)
            && earlier.digest.as_deref() == Some(digest.as_str())
        {
            return Examined {
                file,
                name: Some(name),
                digest: Some(digest),
                state: "quarantined".into(),
                reason: Some(earlier.reason.clone()),
            };
        }
        let known = self.version(&name, &digest);
        if let Some(known) = known {
            return self.reexamine(&file, known).await;
        }

        let manifest = match self.read_manifest(path, &name) {
            Ok(manifest) => manifest,
            Err(reason) => return self.quarantine(&file, Some(digest), reason),
        };
        let size = bytes.len() as u64;
        if let Err(e) = self.shared.store.put(&bytes) {
            return self.quarantine(&file, Some(digest), format!("cannot keep a copy: {e}"));
        }
        let plugin = match self.compile(&name, bytes).await {
            Ok(plugin) => plugin,
            Err(reason) => return self.quarantine(&file, Some(digest), reason),
        };
        if let Some(kind) = manifest.as_ref().and_then(|m| m.kind)
            && kind != plugin.kind()
        {
            let reason = format!(
                "the manifest says kind {kind:?}, the component exports the {:?} world",
                plugin.kind()
            );
            return self.quarantine(&file, Some(digest), reason);
        }
        let grants = grants::grant(manifest.as_ref(), &self.shared.policy);
        let plugin = plugin.with_grants(grants.clone());
        let active = self.active(&name);
        let escalations = active
            .as_ref()
            .map(|active| grants.escalations_over(&active.grants))
            .unwrap_or_default();
        let now = now_ms();
        let mut record = VersionRecord {
            name: name.clone(),
            digest: digest.clone(),
            kind: format!("{:?}", plugin.kind()).to_lowercase(),
            size,
            state: VersionState::Active,
            manifest: manifest
                .as_ref()
                .and_then(|_| std::fs::read_to_string(manifest_path(path)).ok()),
            note: None,
            first_seen_at: now,
            activated_at: Some(now),
            approved_at: None,
        };
        if let Some(active) = &active
            && !escalations.is_empty()
        {
            record.state = VersionState::PendingApproval;
            record.activated_at = None;
            record.note = Some(format!(
                "asks for more than active version {}: {}",
                active.record.digest,
                escalations.join(", ")
            ));
        }
        let version = Version {
            record: record.clone(),
            manifest,
            grants,
        };
        let result = if record.state == VersionState::Active {
            self.shared.registry.add_version(plugin);
            self.make_active(version).await
        } else {
            self.shared.registry.add_version(plugin);
            self.save_new(version).await
        };
        self.catalogue().quarantined.remove(&file);
        match result {
            Ok(()) => {
                tracing::info!(
                    plugin = name,
                    digest,
                    state = record.state.as_str(),
                    "plugin version added"
                );
                Self::examined(&file, &record)
            }
            Err(e) => self.quarantine(&file, Some(digest), format!("cannot record it: {e}")),
        }
    }

    /// A file whose content is a version seen before: active or pending
    /// stay so; a version that was active before is active again (going
    /// back is not an escalation); one never approved waits again.
    async fn reexamine(&self, file: &str, known: Version) -> Examined {
        self.catalogue().quarantined.remove(file);
        match known.record.state {
            VersionState::Active | VersionState::PendingApproval => {
                return Self::examined(file, &known.record);
            }
            VersionState::Inactive | VersionState::Retired => {}
        }
        let (name, digest) = (known.record.name.clone(), known.record.digest.clone());
        if self.shared.registry.version(&name, &digest).is_none() {
            match self.load_stored(&name, &digest, &known.grants).await {
                Ok(plugin) => self.shared.registry.add_version(plugin),
                Err(reason) => return self.quarantine(file, Some(digest), reason),
            }
        }
        let mut version = known;
        let result = if version.record.activated_at.is_some() {
            self.make_active(version.clone()).await
        } else {
            version.record.state = VersionState::PendingApproval;
            self.save_new(version.clone()).await
        };
        match result {
            Ok(()) => {
                let current = self.version(&name, &digest).map(|v| v.record);
                Self::examined(file, current.as_ref().unwrap_or(&version.record))
            }
            Err(e) => self.quarantine(file, Some(digest), format!("cannot record it: {e}")),
        }
    }

    fn read_manifest(&self, path: &Path, name: &str) -> Result<Option<Manifest>, String> {
        let manifest_file = manifest_path(path);
        let text = match std::fs::read_to_string(&manifest_file) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot read {name}.{MANIFEST_EXTENSION}: {e}")),
        };
        let manifest = Manifest::parse(&text)
            .map_err(|e| format!("invalid manifest {name}.{MANIFEST_EXTENSION}: {e}"))?;
        if let Some(named) = &manifest.name
            && named != name
        {
            return Err(format!(
                "the manifest names the plugin {named:?}, but the file is {name}.{PLUGIN_EXTENSION}"
            ));
        }
        manifest
            .limits
            .check(&crate::runtime::Limits {
                fuel: u64::MAX,
                memory_bytes: u64::MAX,
                timeout: Duration::MAX,
                max_output_bytes: usize::MAX,
                max_log_bytes: usize::MAX,
                max_artifact_bytes: u64::MAX,
                max_spawned_jobs: u32::MAX,
            })
            .map_err(|e| format!("invalid manifest {name}.{MANIFEST_EXTENSION}: {e}"))?;
        Ok(Some(manifest))
    }

    fn version(&self, name: &str, digest: &str) -> Option<Version> {
        self.catalogue()
            .versions
            .get(name)?
            .iter()
            .find(|v| v.record.digest == digest)
            .cloned()
    }

    fn active(&self, name: &str) -> Option<Version> {
        self.catalogue()
            .versions
            .get(name)?
            .iter()
            .find(|v| v.record.state == VersionState::Active)
            .cloned()
    }

    /// Records a version that is not active.
    async fn save_new(&self, version: Version) -> Result<(), DbError> {
        let record = version.record.clone();
        self.db()
            .write(move |conn| stored::save(conn, &record))
            .await?;
        self.put(version);
        Ok(())
    }

    /// Makes `version` (already in the registry) the active one: recorded
    /// first, then switched, so new runs never see an unrecorded version.
    async fn make_active(&self, mut version: Version) -> Result<(), DbError> {
        let now = now_ms();
        version.record.state = VersionState::Active;
        version.record.activated_at = Some(now);
        let mut previous = self.active(&version.record.name);
        if let Some(previous) = &mut previous {
            previous.record.state = VersionState::Inactive;
        }
        let records: Vec<VersionRecord> = previous
            .iter()
            .map(|v| v.record.clone())
            .chain([version.record.clone()])
            .collect();
        self.db()
            .write(move |conn| {
                for record in &records {
                    stored::save(conn, record)?;
                }
                Ok(())
            })
            .await?;
        let (name, digest) = (version.record.name.clone(), version.record.digest.clone());
        if let Some(previous) = previous {
            self.put(previous);
        }
        self.put(version);
        self.shared.registry.activate(&name, &digest);
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
        {
            let mut catalogue = self.catalogue();
            catalogue.seen.remove(&file);
            catalogue.quarantined.remove(&file);
        }
        let mut changed: Vec<Version> = self
            .catalogue()
            .versions
            .get(name)
            .map(|versions| {
                versions
                    .iter()
                    .filter(|v| {
                        matches!(
                            v.record.state,
                            VersionState::Active | VersionState::PendingApproval
                        )
                    })
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        if changed.is_empty() {
            return;
        }
        for version in &mut changed {
            version.record.state = VersionState::Retired;
        }
        let records: Vec<VersionRecord> = changed.iter().map(|v| v.record.clone()).collect();
        let saved = self
            .db()
            .write(move |conn| {
                for record in &records {
                    stored::save(conn, record)?;
                }
                Ok(())
            })
            .await;
        if let Err(e) = saved {
            tracing::error!(plugin = name, "retiring the plugin was not recorded: {e}");
        }
        self.shared.registry.retire(name);
        for version in changed {
            self.put(version);
        }
        tracing::info!(plugin = name, "plugin retired: its file was removed");
    }

    /// Makes a version waiting for approval the active one.
    pub async fn approve(&self, name: &str, digest: &str) -> Result<Version, ApproveError> {
        let _turn = self.shared.examining.lock().await;
        let version = self
            .version(name, digest)
            .ok_or_else(|| ApproveError::NotFound(name.to_owned(), digest.to_owned()))?;
        if version.record.state != VersionState::PendingApproval {
            return Err(ApproveError::NotPending {
                name: name.to_owned(),
                digest: digest.to_owned(),
                state: version.record.state.as_str(),
            });
        }
        if self.shared.registry.version(name, digest).is_none() {
            let plugin = self
                .load_stored(name, digest, &version.grants)
                .await
                .map_err(ApproveError::Load)?;
            self.shared.registry.add_version(plugin);
        }
        let mut version = version;
        version.record.approved_at = Some(now_ms());
        version.record.note = None;
        self.make_active(version).await?;
        tracing::info!(plugin = name, digest, "plugin version approved");
        self.version(name, digest)
            .ok_or_else(|| ApproveError::NotFound(name.to_owned(), digest.to_owned()))
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

    /// Follows the folder until the returned handle is dropped: file events
    /// as they come, and a listing every second for what they missed.
    pub fn watch(&self) -> anyhow::Result<Watching> {
        use notify::Watcher as _;
        let (events, mut received) = tokio::sync::mpsc::unbounded_channel();
        let mut watcher = notify::recommended_watcher(move |event| {
            let _ = events.send(event);
        })?;
        watcher.watch(&self.shared.dir, notify::RecursiveMode::NonRecursive)?;
        let directory = self.clone();
        let task = tokio::spawn(async move {
            let mut rescan = tokio::time::interval(RESCAN_PERIOD);
            rescan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // Files written to and not yet closed, with the last write.
            let mut writing: HashMap<PathBuf, Instant> = HashMap::new();
            loop {
                tokio::select! {
                    event = received.recv() => match event {
                        Some(Ok(event)) => directory.on_event(event, &mut writing).await,
                        Some(Err(e)) => tracing::warn!("watching the plugins folder: {e}"),
                        None => break,
                    },
                    _ = rescan.tick() => directory.rescan(&mut writing).await,
                }
            }
        });
        Ok(Watching {
            _watcher: watcher,
            task,
        })
    }

    async fn on_event(&self, event: notify::Event, writing: &mut HashMap<PathBuf, Instant>) {
        use notify::EventKind;
        use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
        match event.kind {
            // Written and closed, or renamed in: complete.
            EventKind::Access(AccessKind::Close(AccessMode::Write))
            | EventKind::Modify(ModifyKind::Name(RenameMode::To)) => {
                for path in event.paths.iter().filter(|p| plugin_file(p).is_some()) {
                    writing.remove(path);
                    if path.is_file() {
                        self.examine(path).await;
                    }
                }
            }
            EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => {
                if let [from, to] = &event.paths[..] {
                    self.on_gone(from, writing).await;
                    if plugin_file(to).is_some() && to.is_file() {
                        writing.remove(to);
                        self.examine(to).await;
                    }
                }
            }
            EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(RenameMode::From)) => {
                for path in &event.paths {
                    self.on_gone(path, writing).await;
                }
            }
            EventKind::Create(_) | EventKind::Modify(_) => {
                for path in event.paths.iter().filter(|p| plugin_file(p).is_some()) {
                    writing.insert(path.clone(), Instant::now());
                }
            }
            _ => {}
        }
    }

    async fn on_gone(&self, path: &Path, writing: &mut HashMap<PathBuf, Instant>) {
        writing.remove(path);
        if let Some((_, name)) = plugin_file(path)
            && !path.exists()
        {
            self.retire(&name).await;
        }
    }

    /// Examines files that changed without an event saying they are
    /// complete (once left alone for a while), and retires plugins whose
    /// file is gone.
    async fn rescan(&self, writing: &mut HashMap<PathBuf, Instant>) {
        let files = match self.files() {
            Ok(files) => files,
            Err(e) => {
                tracing::warn!("listing the plugins folder: {e}");
                return;
            }
        };
        for path in &files {
            if writing
                .get(path)
                .is_some_and(|at| at.elapsed() < QUIET_PERIOD)
            {
                continue;
            }
            writing.remove(path);
            let Some((file, _)) = plugin_file(path) else {
                continue;
            };
            let stamp = std::fs::metadata(path).ok().map(|m| FileStamp {
                len: m.len(),
                modified: m.modified().ok(),
            });
            let unchanged = stamp.is_some() && self.catalogue().seen.get(&file) == stamp.as_ref();
            if !unchanged {
                self.examine(path).await;
            }
        }
        let gone: Vec<String> = {
            let catalogue = self.catalogue();
            catalogue
                .seen
                .keys()
                .filter(|file| {
                    !files
                        .iter()
                        .any(|p| p.file_name().is_some_and(|n| n == file.as_str()))
                })
                .filter_map(|file| plugin_file(Path::new(file)).map(|(_, name)| name))
                .collect()
        };
        for name in gone {
            self.retire(&name).await;
        }
    }
}

fn manifest_path(path: &Path) -> PathBuf {
    path.with_extension(MANIFEST_EXTENSION)
}

/// Watching the folder; dropping it stops.
pub struct Watching {
    _watcher: notify::RecommendedWatcher,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Watching {
    fn drop(&mut self) {
        self.task.abort();
    }
}
