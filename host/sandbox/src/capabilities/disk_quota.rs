//! A quota on what one attempt writes to disk (`/work`, `/out` and any
//! writable directory it was granted), held while it writes: every
//! `wasi:filesystem` call that writes or creates goes through here first,
//! and the one that would pass the quota traps the guest, which ends the
//! attempt on a limit, like fuel.
//!
//! What counts:
//! - bytes: every byte written (positional writes, streams, zeroes), an
//!   overwrite included, and a file grown by `set-size`; deleting or
//!   truncating a file gives its bytes back;
//! - files: each file, directory or link created; removing one gives it
//!   back.
//!
//! Every other call is wasmtime-wasi's own, unchanged.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use wasmtime::component::{HasData, Linker, Resource};
use wasmtime_wasi::filesystem::{Descriptor, WasiFilesystemCtxView};
use wasmtime_wasi::p2::bindings::filesystem::types::{
    self, ErrorCode, HostDescriptor, HostDirectoryEntryStream,
};
use wasmtime_wasi::p2::{
    DynInputStream, DynOutputStream, FsError, FsResult, OutputStream, Pollable, StreamError,
    StreamResult,
};

/// The quota a guest passed; the attempt ends with this limit hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DiskQuotaExceeded {
    #[error("disk quota of {limit} bytes written exceeded")]
    Bytes { limit: u64 },
    #[error("disk quota of {limit} files created exceeded")]
    Files { limit: u64 },
}

/// One attempt's disk quota and what it has used so far.
#[derive(Debug)]
pub struct DiskQuota {
    max_bytes: u64,
    max_files: u64,
    bytes: AtomicU64,
    files: AtomicU64,
}

impl DiskQuota {
    pub fn new(max_bytes: u64, max_files: u64) -> Self {
        Self {
            max_bytes,
            max_files,
            bytes: AtomicU64::new(0),
            files: AtomicU64::new(0),
        }
    }

    /// Bytes and files used so far.
    pub fn used(&self) -> (u64, u64) {
        (
            self.bytes.load(Ordering::Relaxed),
            self.files.load(Ordering::Relaxed),
        )
    }

    fn charge_bytes(&self, n: u64) -> Result<(), DiskQuotaExceeded> {
        charge(&self.bytes, n, self.max_bytes).map_err(|()| DiskQuotaExceeded::Bytes {
            limit: self.max_bytes,
        })
    }

    fn charge_file(&self) -> Result<(), DiskQuotaExceeded> {
        charge(&self.files, 1, self.max_files).map_err(|()| DiskQuotaExceeded::Files {
            limit: self.max_files,
        })
    }

    /// Gives back at most what was charged: removing a file the attempt
    /// did not write (in a granted folder) earns it nothing.
    fn credit_bytes(&self, n: u64) {
        credit(&self.bytes, n);
    }

    fn credit_file(&self) {
        credit(&self.files, 1);
    }
}

fn charge(used: &AtomicU64, n: u64, max: u64) -> Result<(), ()> {
    used.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |now| {
        now.checked_add(n).filter(|total| *total <= max)
    })
    .map(|_| ())
    .map_err(|_| ())
}

fn credit(used: &AtomicU64, n: u64) {
    let _ = used.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |now| {
        Some(now.saturating_sub(n))
    });
}

/// `wasi:filesystem/types` for one attempt: wasmtime-wasi's, behind the
/// quota.
pub struct QuotaFilesystem<'a> {
    pub inner: WasiFilesystemCtxView<'a>,
    pub quota: &'a Arc<DiskQuota>,
}

struct QuotaFilesystemData;

impl HasData for QuotaFilesystemData {
    type Data<'a> = QuotaFilesystem<'a>;
}

/// Replaces `wasi:filesystem/types` in a linker that has wasmtime-wasi's
/// (`wasmtime_wasi::p2::add_to_linker_async`) with the quota's.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> QuotaFilesystem<'_>,
) -> anyhow::Result<()> {
    linker.allow_shadowing(true);
    let added = types::add_to_linker::<T, QuotaFilesystemData>(linker, get);
    linker.allow_shadowing(false);
    Ok(added?)
}

/// Another handle on the same descriptor, for a call that needs one while
/// the guest keeps its own.
fn same<T: 'static>(handle: &Resource<T>) -> Resource<T> {
    Resource::new_borrow(handle.rep())
}

fn trap(e: DiskQuotaExceeded) -> FsError {
    FsError::trap(wasmtime::Error::new(e))
}

impl QuotaFilesystem<'_> {
    /// The size of what `path` names under `dir`, if it is a file (links
    /// are not followed: removing a link frees no file's bytes).
    async fn file_size_at(&mut self, dir: &Resource<types::Descriptor>, path: &str) -> Option<u64> {
        let stat = HostDescriptor::stat_at(
            &mut self.inner,
            same(dir),
            types::PathFlags::empty(),
            path.to_owned(),
        )
        .await
        .ok()?;
        (stat.type_ == types::DescriptorType::RegularFile).then_some(stat.size)
    }

    /// Whether anything exists at `path` under `dir`.
    async fn exists_at(&mut self, dir: &Resource<types::Descriptor>, path: &str) -> bool {
        HostDescriptor::stat_at(
            &mut self.inner,
            same(dir),
            types::PathFlags::empty(),
            path.to_owned(),
        )
        .await
        .is_ok()
    }

    /// The current size of an open file.
    fn open_file_size(&mut self, fd: &Resource<types::Descriptor>) -> Option<u64> {
        match self.inner.table.get(fd).ok()? {
            Descriptor::File(f) => f.file.metadata().ok().map(|m| m.len()),
            Descriptor::Dir(_) => None,
        }
    }

    /// Wraps the output stream `stream` so what it writes is charged.
    fn charged(
        &mut self,
        stream: Resource<DynOutputStream>,
    ) -> FsResult<Resource<DynOutputStream>> {
        let inner = self.inner.table.delete(stream)?;
        let wrapped: DynOutputStream = Box::new(ChargedStream {
            inner,
            quota: self.quota.clone(),
        });
        Ok(self.inner.table.push(wrapped)?)
    }
}

impl types::Host for QuotaFilesystem<'_> {
    fn convert_error_code(&mut self, err: FsError) -> wasmtime::Result<ErrorCode> {
        types::Host::convert_error_code(&mut self.inner, err)
    }

    fn filesystem_error_code(
        &mut self,
        err: Resource<wasmtime::Error>,
    ) -> wasmtime::Result<Option<ErrorCode>> {
        types::Host::filesystem_error_code(&mut self.inner, err)
    }
}

impl HostDescriptor for QuotaFilesystem<'_> {
    async fn advise(
        &mut self,
        fd: Resource<types::Descriptor>,
        offset: types::Filesize,
        len: types::Filesize,
        advice: types::Advice,
    ) -> FsResult<()> {
        HostDescriptor::advise(&mut self.inner, fd, offset, len, advice).await
    }

    async fn sync_data(&mut self, fd: Resource<types::Descriptor>) -> FsResult<()> {
        HostDescriptor::sync_data(&mut self.inner, fd).await
    }

    async fn get_flags(
        &mut self,
        fd: Resource<types::Descriptor>,
    ) -> FsResult<types::DescriptorFlags> {
        HostDescriptor::get_flags(&mut self.inner, fd).await
    }

    async fn get_type(
        &mut self,
        fd: Resource<types::Descriptor>,
    ) -> FsResult<types::DescriptorType> {
        HostDescriptor::get_type(&mut self.inner, fd).await
    }

    async fn set_size(
        &mut self,
        fd: Resource<types::Descriptor>,
        size: types::Filesize,
    ) -> FsResult<()> {
        let before = self.open_file_size(&fd).unwrap_or(0);
        if size > before {
            self.quota.charge_bytes(size - before).map_err(trap)?;
        }
        HostDescriptor::set_size(&mut self.inner, fd, size).await?;
        if size < before {
            self.quota.credit_bytes(before - size);
        }
        Ok(())
    }

    async fn set_times(
        &mut self,
        fd: Resource<types::Descriptor>,
        atim: types::NewTimestamp,
        mtim: types::NewTimestamp,
    ) -> FsResult<()> {
        HostDescriptor::set_times(&mut self.inner, fd, atim, mtim).await
    }

    async fn read(
        &mut self,
        fd: Resource<types::Descriptor>,
        len: types::Filesize,
        offset: types::Filesize,
    ) -> FsResult<(Vec<u8>, bool)> {
        HostDescriptor::read(&mut self.inner, fd, len, offset).await
    }

    async fn write(
        &mut self,
        fd: Resource<types::Descriptor>,
        buf: Vec<u8>,
        offset: types::Filesize,
    ) -> FsResult<types::Filesize> {
        self.quota.charge_bytes(buf.len() as u64).map_err(trap)?;
        HostDescriptor::write(&mut self.inner, fd, buf, offset).await
    }

    async fn read_directory(
        &mut self,
        fd: Resource<types::Descriptor>,
    ) -> FsResult<Resource<types::DirectoryEntryStream>> {
        HostDescriptor::read_directory(&mut self.inner, fd).await
    }

    async fn sync(&mut self, fd: Resource<types::Descriptor>) -> FsResult<()> {
        HostDescriptor::sync(&mut self.inner, fd).await
    }

    async fn create_directory_at(
        &mut self,
        fd: Resource<types::Descriptor>,
        path: String,
    ) -> FsResult<()> {
        self.quota.charge_file().map_err(trap)?;
        let created = HostDescriptor::create_directory_at(&mut self.inner, fd, path).await;
        if created.is_err() {
            self.quota.credit_file();
        }
        created
    }

    async fn stat(&mut self, fd: Resource<types::Descriptor>) -> FsResult<types::DescriptorStat> {
        HostDescriptor::stat(&mut self.inner, fd).await
    }

    async fn stat_at(
        &mut self,
        fd: Resource<types::Descriptor>,
        path_flags: types::PathFlags,
        path: String,
    ) -> FsResult<types::DescriptorStat> {
        HostDescriptor::stat_at(&mut self.inner, fd, path_flags, path).await
    }

    async fn set_times_at(
        &mut self,
        fd: Resource<types::Descriptor>,
        path_flags: types::PathFlags,
        path: String,
        atim: types::NewTimestamp,
        mtim: types::NewTimestamp,
    ) -> FsResult<()> {
        HostDescriptor::set_times_at(&mut self.inner, fd, path_flags, path, atim, mtim).await
    }

    async fn link_at(
        &mut self,
        fd: Resource<types::Descriptor>,
        old_path_flags: types::PathFlags,
        old_path: String,
        new_descriptor: Resource<types::Descriptor>,
        new_path: String,
    ) -> FsResult<()> {
        self.quota.charge_file().map_err(trap)?;
        let linked = HostDescriptor::link_at(
            &mut self.inner,
            fd,
            old_path_flags,
            old_path,
            new_descriptor,
            new_path,
        )
        .await;
        if linked.is_err() {
            self.quota.credit_file();
        }
        linked
    }

    async fn open_at(
        &mut self,
        fd: Resource<types::Descriptor>,
        path_flags: types::PathFlags,
        path: String,
        oflags: types::OpenFlags,
        flags: types::DescriptorFlags,
    ) -> FsResult<Resource<types::Descriptor>> {
        let creates =
            oflags.contains(types::OpenFlags::CREATE) && !self.exists_at(&fd, &path).await;
        let truncated = if oflags.contains(types::OpenFlags::TRUNCATE) {
            self.file_size_at(&fd, &path).await
        } else {
            None
        };
        if creates {
            self.quota.charge_file().map_err(trap)?;
        }
        let opened =
            HostDescriptor::open_at(&mut self.inner, fd, path_flags, path, oflags, flags).await;
        match (&opened, creates) {
            (Err(_), true) => self.quota.credit_file(),
            (Ok(_), _) => self.quota.credit_bytes(truncated.unwrap_or(0)),
            (Err(_), false) => {}
        }
        opened
    }

    fn drop(&mut self, fd: Resource<types::Descriptor>) -> wasmtime::Result<()> {
        HostDescriptor::drop(&mut self.inner, fd)
    }

    async fn readlink_at(
        &mut self,
        fd: Resource<types::Descriptor>,
        path: String,
    ) -> FsResult<String> {
        HostDescriptor::readlink_at(&mut self.inner, fd, path).await
    }

    async fn remove_directory_at(
        &mut self,
        fd: Resource<types::Descriptor>,
        path: String,
    ) -> FsResult<()> {
        HostDescriptor::remove_directory_at(&mut self.inner, fd, path).await?;
        self.quota.credit_file();
        Ok(())
    }

    async fn rename_at(
        &mut self,
        fd: Resource<types::Descriptor>,
        old_path: String,
        new_fd: Resource<types::Descriptor>,
        new_path: String,
    ) -> FsResult<()> {
        HostDescriptor::rename_at(&mut self.inner, fd, old_path, new_fd, new_path).await
    }

    async fn symlink_at(
        &mut self,
        fd: Resource<types::Descriptor>,
        src_path: String,
        dest_path: String,
    ) -> FsResult<()> {
        self.quota.charge_file().map_err(trap)?;
        let linked = HostDescriptor::symlink_at(&mut self.inner, fd, src_path, dest_path).await;
        if linked.is_err() {
            self.quota.credit_file();
        }
        linked
    }

    async fn unlink_file_at(
        &mut self,
        fd: Resource<types::Descriptor>,
        path: String,
    ) -> FsResult<()> {
        let size = self.file_size_at(&fd, &path).await;
        HostDescriptor::unlink_file_at(&mut self.inner, fd, path).await?;
        self.quota.credit_bytes(size.unwrap_or(0));
        self.quota.credit_file();
        Ok(())
    }

    fn read_via_stream(
        &mut self,
        fd: Resource<types::Descriptor>,
        offset: types::Filesize,
    ) -> FsResult<Resource<DynInputStream>> {
        HostDescriptor::read_via_stream(&mut self.inner, fd, offset)
    }

    fn write_via_stream(
        &mut self,
        fd: Resource<types::Descriptor>,
        offset: types::Filesize,
    ) -> FsResult<Resource<DynOutputStream>> {
        let stream = HostDescriptor::write_via_stream(&mut self.inner, fd, offset)?;
        self.charged(stream)
    }

    fn append_via_stream(
        &mut self,
        fd: Resource<types::Descriptor>,
    ) -> FsResult<Resource<DynOutputStream>> {
        let stream = HostDescriptor::append_via_stream(&mut self.inner, fd)?;
        self.charged(stream)
    }

    async fn is_same_object(
        &mut self,
        a: Resource<types::Descriptor>,
        b: Resource<types::Descriptor>,
    ) -> wasmtime::Result<bool> {
        HostDescriptor::is_same_object(&mut self.inner, a, b).await
    }

    async fn metadata_hash(
        &mut self,
        fd: Resource<types::Descriptor>,
    ) -> FsResult<types::MetadataHashValue> {
        HostDescriptor::metadata_hash(&mut self.inner, fd).await
    }

    async fn metadata_hash_at(
        &mut self,
        fd: Resource<types::Descriptor>,
        path_flags: types::PathFlags,
        path: String,
    ) -> FsResult<types::MetadataHashValue> {
        HostDescriptor::metadata_hash_at(&mut self.inner, fd, path_flags, path).await
    }
}

impl HostDirectoryEntryStream for QuotaFilesystem<'_> {
    async fn read_directory_entry(
        &mut self,
        stream: Resource<types::DirectoryEntryStream>,
    ) -> FsResult<Option<types::DirectoryEntry>> {
        HostDirectoryEntryStream::read_directory_entry(&mut self.inner, stream).await
    }

    fn drop(&mut self, stream: Resource<types::DirectoryEntryStream>) -> wasmtime::Result<()> {
        HostDirectoryEntryStream::drop(&mut self.inner, stream)
    }
}

/// A file's output stream whose bytes are charged before they are written.
struct ChargedStream {
    inner: DynOutputStream,
    quota: Arc<DiskQuota>,
}

impl ChargedStream {
    fn charge(&self, n: usize) -> StreamResult<()> {
        self.quota
            .charge_bytes(n as u64)
            .map_err(|e| StreamError::Trap(wasmtime::Error::new(e)))
    }
}

#[async_trait::async_trait]
impl Pollable for ChargedStream {
    async fn ready(&mut self) {
        self.inner.ready().await;
    }
}

#[async_trait::async_trait]
impl OutputStream for ChargedStream {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        self.charge(bytes.len())?;
        self.inner.write(bytes)
    }

    fn flush(&mut self) -> StreamResult<()> {
        self.inner.flush()
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        self.inner.check_write()
    }

    async fn blocking_write_and_flush(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        self.charge(bytes.len())?;
        self.inner.blocking_write_and_flush(bytes).await
    }

    fn write_zeroes(&mut self, nelem: usize) -> StreamResult<()> {
        self.charge(nelem)?;
        self.inner.write_zeroes(nelem)
    }

    async fn write_ready(&mut self) -> StreamResult<usize> {
        self.inner.write_ready().await
    }

    async fn cancel(&mut self) {
        self.inner.cancel().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_stop_at_the_quota_and_credits_never_go_below_zero() {
        let quota = DiskQuota::new(100, 2);
        assert!(quota.charge_bytes(60).is_ok());
        assert_eq!(
            quota.charge_bytes(41),
            Err(DiskQuotaExceeded::Bytes { limit: 100 })
        );
        assert!(quota.charge_bytes(40).is_ok());
        quota.credit_bytes(1_000);
        assert_eq!(quota.used().0, 0);
        assert!(quota.charge_file().is_ok());
        assert!(quota.charge_file().is_ok());
        assert_eq!(
            quota.charge_file(),
            Err(DiskQuotaExceeded::Files { limit: 2 })
        );
        assert!(quota.charge_bytes(u64::MAX).is_err(), "no overflow");
    }
}
