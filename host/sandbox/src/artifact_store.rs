//! Content-addressed blob storage for artifacts: each distinct content is
//! stored once, named by its sha256, under the data directory. All file
//! access goes through a cap-std `Dir` rooted there.

use std::io::{Read, Write};
use std::path::Path;

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
}

#[derive(Debug)]
pub struct ArtifactStore {
    root: Dir,
}

/// Hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl ArtifactStore {
    /// Opens (creating if needed) the store at `path`.
    pub fn open(path: &Path) -> Result<Self, ArtifactStoreError> {
        std::fs::create_dir_all(path)?;
        let root = Dir::open_ambient_dir(path, ambient_authority())?;
        root.create_dir_all("sha256")?;
        root.create_dir_all("tmp")?;
        Ok(Self { root })
    }

    /// Stores `bytes` and returns their digest. Storing the same bytes twice
    /// keeps one copy.
    pub fn put(&self, bytes: &[u8]) -> Result<String, ArtifactStoreError> {
        let digest = sha256_hex(bytes);
        let path = blob_path(&digest);
        if self.root.exists(&path) {
            return Ok(digest);
        }
        self.root
            .create_dir_all(format!("sha256/{}", &digest[..2]))?;
        // Write then rename, so a reader never sees a partial blob.
        let tmp = format!("tmp/{}", uuid::Uuid::new_v4().simple());
        let mut file = self.root.create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_data()?;
        drop(file);
        self.root.rename(&tmp, &self.root, &path)?;
        Ok(digest)
    }

    /// Opens the blob `digest` for reading, with its size, for callers that
    /// stream it rather than hold it in memory.
    pub fn open_blob(&self, digest: &str) -> Result<(std::fs::File, u64), ArtifactStoreError> {
        check_digest(digest)?;
        let file = match self.root.open(blob_path(digest)) {
            Ok(file) => file.into_std(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ArtifactStoreError::NotFound(digest.to_owned()));
            }
            Err(e) => return Err(e.into()),
        };
        let size = file.metadata()?.len();
        Ok((file, size))
    }

    /// Reads the blob `digest`, refusing one larger than `limit` bytes.
    pub fn get(&self, digest: &str, limit: u64) -> Result<Vec<u8>, ArtifactStoreError> {
        let (mut file, size) = self.open_blob(digest)?;
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
