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
        })
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
        let folder = staging_folder(attempt_id)?;
        let pins = Pins::new(self.clone(), digests);
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

    /// Reads the blob `digest`, refusing one larger than `limit` bytes.
    pub fn get(&self, digest: &str, limit: u64) -> Result<Vec<u8>, ArtifactStoreError> {
        check_digest(digest)?;
        read_limited(self.open_file(&blob_path(digest), digest)?, digest, limit)
    }
}

/// Blobs pinned by one promotion; dropping this unpins them.
#[derive(Debug)]
pub struct Pins {
    store: Arc<ArtifactStore>,
    digests: Vec<String>,
}

impl Pins {
    fn new(store: Arc<ArtifactStore>, digests: &[String]) -> Self {
        let mut pins = store.pins();
        for digest in digests {
            *pins.entry(digest.clone()).or_default() += 1;
        }
        drop(pins);
        Self {
            store,
            digests: digests.to_vec(),
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
