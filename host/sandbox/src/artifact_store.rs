//! Content-addressed blob storage for artifacts: each distinct content is
//! stored once, named by its sha256, under the data directory. All file
//! access goes through a cap-std `Dir` rooted there.
//!
//! An attempt's artifacts are staged in a folder of their own and reach the
//! shared blobs only when whoever ran the attempt promotes them (after it
//! succeeded); a failed attempt's folder is removed. Promoted blobs are
//! pinned until their references are committed, so the garbage collector,
//! which removes blobs nothing references, never takes one in between.
//!
//! Staged blobs are written without syncing each one: whoever commits
//! references to promoted blobs calls [`ArtifactStore::sync`] first, once
//! for everything written since (Warren's scheduler does so before each
//! commit that names artifacts), which costs one sync per commit instead
//! of one per file.
//!
//! Some artifacts have no blob: their bytes are kept elsewhere by whoever
//! commits their references (Warren keeps an agent's documents once, as
//! story documents in its database). Promotion holds such bytes in memory
//! until the references are committed; after that, reads find them through
//! the [`ContentByDigest`] the store was given.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use cap_std::ambient_authority;
use cap_std::fs::Dir;
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum ArtifactStoreError {
    #[error("artifact store I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("no artifact with digest {0}")]
    NotFound(String),
    #[error("artifact {digest} is {size} bytes, more than the {limit} allowed")]
    TooLarge {
        digest: String,
        size: u64,
        limit: u64,
    },
    #[error("{0:?} is not a sha256 digest")]
    BadDigest(String),
    #[error("{0:?} is not an attempt id")]
    BadAttempt(String),
}

#[derive(Debug)]
pub struct ArtifactStore {
    root: Dir,
    /// Blobs promoted whose references are not committed yet, with how many
    /// promotions hold each. The collector holds this lock while it decides.
    pins: Mutex<HashMap<String, usize>>,
    /// Bytes of artifacts without a blob whose references (and the bytes
    /// where they are kept) are not committed yet, with how many promotions
    /// hold each.
    held: Mutex<HashMap<String, Held>>,
    /// Where the bytes of artifacts without a blob are read once committed.
    elsewhere: Option<Arc<dyn ContentByDigest>>,
}

/// Bytes without a blob held in memory, with how many promotions hold them.
type Held = (Arc<[u8]>, usize);

/// Finds the bytes of an artifact kept outside the store, by their sha256
/// (Warren's database implements it over story documents).
pub trait ContentByDigest: Send + Sync + std::fmt::Debug {
    /// The bytes whose sha256 is `digest`, if kept;
    /// [`ArtifactStoreError::TooLarge`] when they are more than `limit`.
    fn content(&self, digest: &str, limit: u64) -> Result<Option<Vec<u8>>, ArtifactStoreError>;
}

/// Hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// What one garbage collection found and did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Collected {
    /// Blobs looked at.
    pub examined: u64,
    /// Blobs removed, and their bytes.
    pub removed: u64,
    pub removed_bytes: u64,
}

/// Blobs the collector looks at per decision (and per reference query).
const COLLECT_BATCH: usize = 500;

impl ArtifactStore {
    /// Opens (creating if needed) the store at `path`.
    pub fn open(path: &Path) -> Result<Self, ArtifactStoreError> {
        std::fs::create_dir_all(path)?;
        let root = Dir::open_ambient_dir(path, ambient_authority())?;
        root.create_dir_all("sha256")?;
        root.create_dir_all("tmp")?;
        root.create_dir_all("staging")?;
        Ok(Self {
            root,
            pins: Mutex::default(),
            held: Mutex::default(),
            elsewhere: None,
        })
    }

    /// Reads the bytes of artifacts without a blob from `elsewhere`.
    pub fn with_content_elsewhere(mut self, elsewhere: Arc<dyn ContentByDigest>) -> Self {
        self.elsewhere = Some(elsewhere);
        self
    }

    /// Stores `bytes` and returns their digest. Storing the same bytes twice
    /// keeps one copy. For content referenced at once by its caller; an
    /// attempt's artifacts go through [`Self::stage`].
    pub fn put(&self, bytes: &[u8]) -> Result<String, ArtifactStoreError> {
        let digest = sha256_hex(bytes);
        let path = blob_path(&digest);
        // Kept already, perhaps promoted but not yet synced: sync it.
        if let Ok(kept) = self.root.open(&path)
            && kept.metadata().is_ok_and(|m| m.len() == bytes.len() as u64)
        {
            kept.sync_data()?;
            return Ok(digest);
        }
        self.root
            .create_dir_all(format!("sha256/{}", &digest[..2]))?;
        let tmp = self.write_tmp(bytes, true)?;
        self.root.rename(&tmp, &self.root, &path)?;
        Ok(digest)
    }

    /// Whether the store has a blob of `digest` of `size` bytes.
    pub fn has_blob(&self, digest: &str, size: u64) -> bool {
        check_digest(digest).is_ok()
            && self
                .root
                .metadata(blob_path(digest))
                .is_ok_and(|m| m.len() == size)
    }

    /// Writes `bytes` to a new file under `tmp/`, whose name it returns,
    /// for a rename into place: a reader never sees a partial blob. With
    /// `synced`, the bytes are on disk when it returns.
    fn write_tmp(&self, bytes: &[u8], synced: bool) -> Result<String, ArtifactStoreError> {
        let tmp = format!("tmp/{}", uuid::Uuid::new_v4().simple());
        let mut file = self.root.create(&tmp)?;
        file.write_all(bytes)?;
        if synced {
            file.sync_data()?;
        }
        Ok(tmp)
    }

    /// Makes everything written to the store so far (staged and promoted
    /// blobs, renames) durable: one `syncfs` of the store's file system.
    /// Call it before committing references to promoted blobs.
    pub fn sync(&self) -> Result<(), ArtifactStoreError> {
        // The store's own handle is path-only; syncfs needs an open one.
        let opened = self.root.open("tmp")?;
        rustix::fs::syncfs(&opened).map_err(std::io::Error::from)?;
        Ok(())
    }

    /// Stores `bytes` for the attempt `attempt_id` only, until
    /// [`Self::promote`] or [`Self::discard`].
    pub fn stage(&self, attempt_id: &str, bytes: &[u8]) -> Result<String, ArtifactStoreError> {
        let folder = staging_folder(attempt_id)?;
        let digest = sha256_hex(bytes);
        let path = format!("{folder}/{digest}");
        if self.root.exists(&path) {
            return Ok(digest);
        }
        self.root.create_dir_all(&folder)?;
        // Synced with the others before its references are committed.
        let tmp = self.write_tmp(bytes, false)?;
        self.root.rename(&tmp, &self.root, &path)?;
        Ok(digest)
    }

    /// Reads a blob the attempt `attempt_id` staged, refusing one larger
    /// than `limit` bytes.
    pub fn get_staged(
        &self,
        attempt_id: &str,
        digest: &str,
        limit: u64,
    ) -> Result<Vec<u8>, ArtifactStoreError> {
        check_digest(digest)?;
        let path = format!("{}/{digest}", staging_folder(attempt_id)?);
        read_limited(self.open_file(&path, digest)?, digest, limit)
    }

    /// Makes the staged blobs `digests` of `attempt_id` shared blobs and
    /// removes the attempt's staging folder. The blobs stay pinned (safe
    /// from the collector) until the returned [`Pins`] are dropped: drop
    /// them once the references are committed.
    pub fn promote(
        self: &Arc<Self>,
        attempt_id: &str,
        digests: &[String],
    ) -> Result<Pins, ArtifactStoreError> {
        self.promote_with(attempt_id, digests, Vec::new())
    }

    /// [`Self::promote`], and `kept`, the `(digest, bytes)` of artifacts
    /// without a blob, readable from memory until the returned [`Pins`] are
    /// dropped: drop them once the references, and the bytes where their
    /// keeper keeps them, are committed.
    pub fn promote_with(
        self: &Arc<Self>,
        attempt_id: &str,
        digests: &[String],
        kept: Vec<(String, Arc<[u8]>)>,
    ) -> Result<Pins, ArtifactStoreError> {
        let folder = staging_folder(attempt_id)?;
        for (digest, _) in &kept {
            check_digest(digest)?;
        }
        let pins = Pins::new(self.clone(), digests, kept);
        for digest in digests {
            check_digest(digest)?;
            let path = blob_path(digest);
            let staged = format!("{folder}/{digest}");
            // The staged copy replaces a blob of the same digest (an atomic
            // rename, same bytes): one left by a power loss before the sync
            // that would have kept it whole is never trusted.
            match self.root.metadata(&staged) {
                Ok(_) => {
                    self.root
                        .create_dir_all(format!("sha256/{}", &digest[..2]))?;
                    self.root.rename(&staged, &self.root, &path)?;
                }
                // Promoted already: the attempt named the content twice.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && self.root.exists(&path) => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.discard(attempt_id)?;
        Ok(pins)
    }

    /// The pins of a promotion of nothing.
    pub fn pin_nothing(self: &Arc<Self>) -> Pins {
        Pins::new(self.clone(), &[], Vec::new())
    }

    /// Removes what the attempt `attempt_id` staged.
    pub fn discard(&self, attempt_id: &str) -> Result<(), ArtifactStoreError> {
        match self.root.remove_dir_all(staging_folder(attempt_id)?) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// Removes every staging folder and half-written file: what attempts
    /// that cannot be running any more (a restart) left. Returns how many
    /// entries went.
    pub fn sweep_staging(&self) -> Result<usize, ArtifactStoreError> {
        let mut swept = 0;
        for folder in ["staging", "tmp"] {
            for entry in self.root.read_dir(folder)? {
                let entry = entry?;
                let path = format!("{folder}/{}", entry.file_name().to_string_lossy());
                if entry.file_type()?.is_dir() {
                    self.root.remove_dir_all(&path)?;
                } else {
                    self.root.remove_file(&path)?;
                }
                swept += 1;
            }
        }
        Ok(swept)
    }

    /// Removes every blob that `referenced` does not name and no promotion
    /// pins. `referenced` gets a batch of digests and answers which of them
    /// are referenced; it is asked while the pins are locked, so a blob
    /// promoted after the lock waits, and one whose references were
    /// committed before it is seen as referenced.
    pub fn collect_garbage(
        &self,
        mut referenced: impl FnMut(&[String]) -> Result<HashSet<String>, String>,
    ) -> Result<Collected, ArtifactStoreError> {
        let mut collected = Collected::default();
        let mut batch = Vec::with_capacity(COLLECT_BATCH);
        for shard in self.root.read_dir("sha256")? {
            let shard = shard?.file_name().to_string_lossy().into_owned();
            for blob in self.root.read_dir(format!("sha256/{shard}"))? {
                let digest = blob?.file_name().to_string_lossy().into_owned();
                if warren_vocabulary::names::is_valid_digest(&digest) {
                    batch.push(digest);
                }
                if batch.len() == COLLECT_BATCH {
                    self.collect_batch(&mut batch, &mut referenced, &mut collected)?;
                }
            }
        }
        self.collect_batch(&mut batch, &mut referenced, &mut collected)?;
        Ok(collected)
    }

    fn collect_batch(
        &self,
        batch: &mut Vec<String>,
        referenced: &mut impl FnMut(&[String]) -> Result<HashSet<String>, String>,
        collected: &mut Collected,
    ) -> Result<(), ArtifactStoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let pins = self.pins();
        let keep = referenced(batch).map_err(std::io::Error::other)?;
        for digest in batch.drain(..) {
            collected.examined += 1;
            if keep.contains(&digest) || pins.contains_key(&digest) {
                continue;
            }
            let path = blob_path(&digest);
            let size = self.root.metadata(&path).map_or(0, |m| m.len());
            match self.root.remove_file(&path) {
                Ok(()) => {
                    collected.removed += 1;
                    collected.removed_bytes += size;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    fn pins(&self) -> MutexGuard<'_, HashMap<String, usize>> {
        self.pins.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn open_file(&self, path: &str, digest: &str) -> Result<std::fs::File, ArtifactStoreError> {
        match self.root.open(path) {
            Ok(file) => Ok(file.into_std()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(ArtifactStoreError::NotFound(digest.to_owned()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Opens the blob `digest` for reading, with its size, for callers that
    /// stream it rather than hold it in memory.
    pub fn open_blob(&self, digest: &str) -> Result<(std::fs::File, u64), ArtifactStoreError> {
        check_digest(digest)?;
        let file = self.open_file(&blob_path(digest), digest)?;
        let size = file.metadata()?.len();
        Ok((file, size))
    }

    /// Reads the artifact `digest`, refusing one larger than `limit` bytes:
    /// its blob, or else its bytes kept elsewhere (held in memory until
    /// committed, then read from the [`ContentByDigest`]).
    pub fn get(&self, digest: &str, limit: u64) -> Result<Vec<u8>, ArtifactStoreError> {
        check_digest(digest)?;
        match self.open_file(&blob_path(digest), digest) {
            Ok(file) => read_limited(file, digest, limit),
            Err(ArtifactStoreError::NotFound(_)) => self.get_elsewhere(digest, limit),
            Err(e) => Err(e),
        }
    }

    /// The bytes of an artifact without a blob.
    fn get_elsewhere(&self, digest: &str, limit: u64) -> Result<Vec<u8>, ArtifactStoreError> {
        let held = self.held().get(digest).map(|(bytes, _)| bytes.clone());
        if let Some(bytes) = held {
            if bytes.len() as u64 > limit {
                return Err(ArtifactStoreError::TooLarge {
                    digest: digest.to_owned(),
                    size: bytes.len() as u64,
                    limit,
                });
            }
            return Ok(bytes.to_vec());
        }
        if let Some(elsewhere) = &self.elsewhere
            && let Some(bytes) = elsewhere.content(digest, limit)?
        {
            return Ok(bytes);
        }
        // Where they were kept gave them up (a deleted document) after
        // writing their blob.
        read_limited(self.open_file(&blob_path(digest), digest)?, digest, limit)
    }

    fn held(&self) -> MutexGuard<'_, HashMap<String, Held>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Blobs pinned by one promotion, and the bytes without a blob it holds
/// in memory; dropping this unpins and forgets them.
#[derive(Debug)]
pub struct Pins {
    store: Arc<ArtifactStore>,
    digests: Vec<String>,
    held: Vec<String>,
}

impl Pins {
    fn new(store: Arc<ArtifactStore>, digests: &[String], kept: Vec<(String, Arc<[u8]>)>) -> Self {
        let mut pins = store.pins();
        for digest in digests {
            *pins.entry(digest.clone()).or_default() += 1;
        }
        drop(pins);
        let mut held = store.held();
        let digests_held = kept.iter().map(|(digest, _)| digest.clone()).collect();
        for (digest, bytes) in kept {
            held.entry(digest).or_insert((bytes, 0)).1 += 1;
        }
        drop(held);
        Self {
            store,
            digests: digests.to_vec(),
            held: digests_held,
        }
    }
}

impl Drop for Pins {
    fn drop(&mut self) {
        let mut pins = self.store.pins();
        for digest in &self.digests {
            if let Some(count) = pins.get_mut(digest) {
                *count -= 1;
                if *count == 0 {
                    pins.remove(digest);
                }
            }
        }
        drop(pins);
        let mut held = self.store.held();
        for digest in &self.held {
            if let Some((_, count)) = held.get_mut(digest) {
                *count -= 1;
                if *count == 0 {
                    held.remove(digest);
                }
            }
        }
    }
}

fn read_limited(
    mut file: std::fs::File,
    digest: &str,
    limit: u64,
) -> Result<Vec<u8>, ArtifactStoreError> {
    let size = file.metadata()?.len();
    if size > limit {
        return Err(ArtifactStoreError::TooLarge {
            digest: digest.to_owned(),
            size,
            limit,
        });
    }
    let mut bytes = Vec::with_capacity(size as usize);
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// The staging folder of an attempt; the id becomes a path, so it is
/// checked to be one.
fn staging_folder(attempt_id: &str) -> Result<String, ArtifactStoreError> {
    let safe = !attempt_id.is_empty()
        && attempt_id.len() <= 64
        && attempt_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if safe {
        Ok(format!("staging/{attempt_id}"))
    } else {
        Err(ArtifactStoreError::BadAttempt(attempt_id.to_owned()))
    }
}

fn check_digest(digest: &str) -> Result<(), ArtifactStoreError> {
    if warren_vocabulary::names::is_valid_digest(digest) {
        Ok(())
    } else {
        Err(ArtifactStoreError::BadDigest(digest.to_owned()))
    }
}

fn blob_path(digest: &str) -> String {
    format!("sha256/{}/{digest}", &digest[..2])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_content_is_stored_once_and_read_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ArtifactStore::open(dir.path()).expect("open");
        let a = store.put(b"hello").expect("put");
        let b = store.put(b"hello").expect("put again");
        assert_eq!(a, b);
        assert_eq!(
            a,
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(store.get(&a, 100).expect("get"), b"hello");
        let blobs = std::fs::read_dir(dir.path().join("sha256").join(&a[..2]))
            .expect("dir")
            .count();
        assert_eq!(blobs, 1);
    }

    #[test]
    fn a_truncated_blob_is_replaced_by_a_whole_one_and_the_store_syncs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(ArtifactStore::open(dir.path()).expect("open"));
        let digest = store.stage("attempt-1", b"whole content").expect("stage");
        let blob = dir.path().join("sha256").join(&digest[..2]);
        std::fs::create_dir_all(&blob).expect("shard");
        // What a power loss before the sync could leave: an empty file.
        std::fs::write(blob.join(&digest), b"").expect("truncated");
        let twice = [digest.clone(), digest.clone()];
        let _pins = store.promote("attempt-1", &twice).expect("promote");
        store.sync().expect("sync");
        assert_eq!(store.get(&digest, 100).expect("get"), b"whole content");
    }

    #[test]
    fn staged_blobs_are_shared_only_once_promoted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(ArtifactStore::open(dir.path()).expect("open"));
        let kept = store.stage("attempt-1", b"kept").expect("stage");
        let dropped = store.stage("attempt-2", b"dropped").expect("stage");
        assert!(matches!(
            store.get(&kept, 100),
            Err(ArtifactStoreError::NotFound(_))
        ));
        assert_eq!(
            store.get_staged("attempt-1", &kept, 100).expect("own"),
            b"kept"
        );
        assert!(store.stage("../escape", b"x").is_err());

        let pins = store
            .promote("attempt-1", std::slice::from_ref(&kept))
            .expect("promote");
        store.discard("attempt-2").expect("discard");
        assert_eq!(store.get(&kept, 100).expect("shared"), b"kept");
        assert!(matches!(
            store.get(&dropped, 100),
            Err(ArtifactStoreError::NotFound(_))
        ));
        // Pinned, so kept though nothing references it; gone once unpinned.
        let nothing = |_: &[String]| Ok(HashSet::new());
        assert_eq!(store.collect_garbage(nothing).expect("gc").removed, 0);
        drop(pins);
        let collected = store.collect_garbage(nothing).expect("gc");
        assert_eq!((collected.removed, collected.removed_bytes), (1, 4));
        assert_eq!(
            std::fs::read_dir(dir.path().join("staging"))
                .expect("staging")
                .count(),
            0
        );
    }

    /// Bytes kept by someone else, as Warren's database keeps documents.
    #[derive(Debug, Default)]
    struct Kept(Mutex<HashMap<String, Vec<u8>>>);

    impl ContentByDigest for Kept {
        fn content(&self, digest: &str, limit: u64) -> Result<Option<Vec<u8>>, ArtifactStoreError> {
            let kept = self.0.lock().unwrap();
            match kept.get(digest) {
                Some(bytes) if bytes.len() as u64 > limit => Err(ArtifactStoreError::TooLarge {
                    digest: digest.to_owned(),
                    size: bytes.len() as u64,
                    limit,
                }),
                found => Ok(found.cloned()),
            }
        }
    }

    #[test]
    fn artifacts_without_a_blob_are_read_from_memory_then_from_their_keeper() {
        let dir = tempfile::tempdir().expect("tempdir");
        let kept = Arc::new(Kept::default());
        let store = Arc::new(
            ArtifactStore::open(dir.path())
                .expect("open")
                .with_content_elsewhere(kept.clone()),
        );
        let digest = sha256_hex(b"a document");
        assert!(matches!(
            store.get(&digest, 100),
            Err(ArtifactStoreError::NotFound(_))
        ));
        let held: Arc<[u8]> = Arc::from(&b"a document"[..]);
        let pins = store
            .promote_with("attempt-1", &[], vec![(digest.clone(), held)])
            .expect("promote");
        // Not committed yet: from memory.
        assert_eq!(store.get(&digest, 100).expect("held"), b"a document");
        assert!(matches!(
            store.get(&digest, 3),
            Err(ArtifactStoreError::TooLarge { size: 10, .. })
        ));
        kept.0
            .lock()
            .unwrap()
            .insert(digest.clone(), b"a document".to_vec());
        drop(pins);
        assert_eq!(store.get(&digest, 100).expect("kept"), b"a document");
        // No blob was written, so the collector has nothing to look at.
        let nothing = |_: &[String]| Ok(HashSet::new());
        assert_eq!(store.collect_garbage(nothing).expect("gc").examined, 0);
        // Given up by its keeper after a blob was written: the blob.
        kept.0.lock().unwrap().clear();
        store.put(b"a document").expect("put");
        assert_eq!(store.get(&digest, 100).expect("blob"), b"a document");
    }

    #[test]
    fn refuses_bad_digests_and_oversized_reads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ArtifactStore::open(dir.path()).expect("open");
        let digest = store.put(b"0123456789").expect("put");
        assert!(matches!(
            store.get("../../etc/passwd", 100),
            Err(ArtifactStoreError::BadDigest(_))
        ));
        assert!(matches!(
            store.get(&digest, 5),
            Err(ArtifactStoreError::TooLarge { size: 10, .. })
        ));
        let missing = "0".repeat(64);
        assert!(matches!(
            store.get(&missing, 5),
            Err(ArtifactStoreError::NotFound(_))
        ));
    }
}
