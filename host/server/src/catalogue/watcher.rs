//! Following the plugins folder. File events come through
//! `notify-debouncer-full`, which joins a rename's two halves (a hidden
//! upload renamed in is one event on the plugin file) and merges repeated
//! ones. Only events saying a file is complete count (written and closed,
//! renamed, touched, removed): a file created or written to may be half
//! done. A listing every second catches the rest: events missed or
//! unavailable, a writer that never closes its file, an examination to try
//! again.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use notify_debouncer_full::notify::event::{AccessKind, AccessMode, ModifyKind};
use notify_debouncer_full::notify::{EventKind, RecommendedWatcher, RecursiveMode};
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

/// How long events are held to be joined: short, as a file renamed in
/// should become runnable at once (a rename's halves come together).
const DEBOUNCE: Duration = Duration::from_millis(10);
/// How often the folder is listed.
const LISTING_PERIOD: Duration = Duration::from_secs(1);
/// A listed file modified more recently may still be being written.
const QUIET_PERIOD: Duration = Duration::from_secs(1);

/// The file extension of plugins.
pub(super) const PLUGIN_EXTENSION: &str = "wasm";

/// `(file, name)` for `name.wasm`, if the file is a plugin candidate at all
/// (hidden files, such as uploads being written, are not).
pub(super) fn plugin_file(path: &Path) -> Option<(String, String)> {
    let file = path.file_name()?.to_str()?;
    if file.starts_with('.') {
        return None;
    }
    let stem = file.strip_suffix(PLUGIN_EXTENSION)?.strip_suffix('.')?;
    Some((file.to_owned(), stem.to_owned()))
}

/// What a file was when looked at: a file whose stamp has not changed
/// since it was examined is not examined again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FileStamp {
    len: u64,
    modified: Option<SystemTime>,
}

impl FileStamp {
    pub(super) fn of(metadata: &std::fs::Metadata) -> Self {
        Self {
            len: metadata.len(),
            modified: metadata.modified().ok(),
        }
    }

    /// The file's size in bytes.
    pub(super) fn len(&self) -> u64 {
        self.len
    }

    /// Left alone long enough to be complete, as far as a listing can
    /// tell. A modification time in the future (a skewed clock) says
    /// nothing, so it does not hold the file back.
    fn settled(&self, now: SystemTime) -> bool {
        self.modified
            .and_then(|modified| now.duration_since(modified).ok())
            .is_none_or(|age| age >= QUIET_PERIOD)
    }
}

/// The plugin files of `dir` with their stamps, sorted.
pub(super) fn list(dir: &Path) -> std::io::Result<Vec<(PathBuf, FileStamp)>> {
    let mut files: Vec<(PathBuf, FileStamp)> = std::fs::read_dir(dir)?
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            plugin_file(&path)?;
            let metadata = std::fs::metadata(&path).ok().filter(|m| m.is_file())?;
            Some((path, FileStamp::of(&metadata)))
        })
        .collect();
    files.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(files)
}

/// Of a listing, the files to examine: changed since last examined
/// (`examined` gives that stamp by file name) and settled.
pub(super) fn due(
    listing: &[(PathBuf, FileStamp)],
    examined: impl Fn(&str) -> Option<FileStamp>,
    now: SystemTime,
) -> Vec<PathBuf> {
    listing
        .iter()
        .filter(|(path, stamp)| {
            let changed =
                plugin_file(path).is_some_and(|(file, _)| examined(&file) != Some(*stamp));
            changed && stamp.settled(now)
        })
        .map(|(path, _)| path.clone())
        .collect()
}

/// What to look at next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Change {
    /// A plugin file is complete or gone: examine it, or retire its plugin.
    File(PathBuf),
    /// List the folder: it is time, or events were missed.
    Listing,
}

/// The folder's changes, until dropped. Needs a tokio runtime.
pub(super) struct FolderWatcher {
    _debouncer: Option<Debouncer<RecommendedWatcher, RecommendedCache>>,
    events: UnboundedReceiver<Change>,
    listing: tokio::time::Interval,
}

impl FolderWatcher {
    /// Watches `dir`; where file events are unavailable, the listing alone
    /// follows it. The first listing comes at once.
    pub(super) fn start(dir: &Path) -> Self {
        let (sender, events) = unbounded_channel();
        let debouncer = match debounce(dir, sender) {
            Ok(debouncer) => Some(debouncer),
            Err(e) => {
                tracing::warn!(
                    "no file events for {} ({e}); it is listed every second instead",
                    dir.display()
                );
                None
            }
        };
        let mut listing = tokio::time::interval(LISTING_PERIOD);
        listing.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Self {
            _debouncer: debouncer,
            events,
            listing,
        }
    }

    pub(super) async fn next(&mut self) -> Change {
        tokio::select! {
            Some(change) = self.events.recv() => change,
            _ = self.listing.tick() => Change::Listing,
        }
    }
}

fn debounce(
    dir: &Path,
    sender: UnboundedSender<Change>,
) -> notify_debouncer_full::notify::Result<Debouncer<RecommendedWatcher, RecommendedCache>> {
    let mut debouncer = new_debouncer(DEBOUNCE, None, move |result| {
        for change in changes(result) {
            let _ = sender.send(change);
        }
    })?;
    debouncer.watch(dir, RecursiveMode::NonRecursive)?;
    Ok(debouncer)
}

/// The changes a batch of debounced events makes, each plugin file once.
fn changes(result: DebounceEventResult) -> Vec<Change> {
    let events = match result {
        Ok(events) => events,
        Err(errors) => {
            for e in errors {
                tracing::warn!("watching the plugins folder: {e}");
            }
            return vec![Change::Listing];
        }
    };
    let mut changes = Vec::new();
    for event in &events {
        let found = if event.need_rescan() {
            vec![Change::Listing]
        } else if matches!(
            event.kind,
            EventKind::Access(AccessKind::Close(AccessMode::Write))
                | EventKind::Modify(ModifyKind::Name(_) | ModifyKind::Metadata(_))
                | EventKind::Remove(_)
        ) {
            event
                .paths
                .iter()
                .filter(|path| plugin_file(path).is_some())
                .map(|path| Change::File(path.clone()))
                .collect()
        } else {
            Vec::new()
        };
        for change in found {
            if !changes.contains(&change) {
                changes.push(change);
            }
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use notify_debouncer_full::DebouncedEvent;
    use notify_debouncer_full::notify::Event;
    use notify_debouncer_full::notify::event::{
        CreateKind, DataChange, Flag, MetadataKind, RemoveKind, RenameMode,
    };

    use super::*;

    fn event(kind: EventKind, paths: &[&str]) -> DebouncedEvent {
        let mut event = Event::new(kind);
        for path in paths {
            event = event.add_path(PathBuf::from(path));
        }
        DebouncedEvent::new(event, Instant::now())
    }

    fn file(path: &str) -> Change {
        Change::File(PathBuf::from(path))
    }

    #[test]
    fn only_events_saying_a_file_is_complete_or_gone_count() {
        let closed = EventKind::Access(AccessKind::Close(AccessMode::Write));
        let cases = [
            // Copied in: created, written, closed.
            (
                vec![
                    event(EventKind::Create(CreateKind::File), &["/p/a.wasm"]),
                    event(closed, &["/p/a.wasm"]),
                ],
                vec![file("/p/a.wasm")],
            ),
            // Still being written.
            (
                vec![event(EventKind::Create(CreateKind::File), &["/p/a.wasm"])],
                vec![],
            ),
            (
                vec![event(
                    EventKind::Modify(ModifyKind::Data(DataChange::Any)),
                    &["/p/a.wasm"],
                )],
                vec![],
            ),
            // Renamed in from a hidden file.
            (
                vec![event(
                    EventKind::Modify(ModifyKind::Name(RenameMode::Both)),
                    &["/p/.a.partial", "/p/a.wasm"],
                )],
                vec![file("/p/a.wasm")],
            ),
            // Renamed from one plugin name to another: both are looked at.
            (
                vec![event(
                    EventKind::Modify(ModifyKind::Name(RenameMode::Both)),
                    &["/p/a.wasm", "/p/b.wasm"],
                )],
                vec![file("/p/a.wasm"), file("/p/b.wasm")],
            ),
            (
                vec![event(EventKind::Remove(RemoveKind::File), &["/p/a.wasm"])],
                vec![file("/p/a.wasm")],
            ),
            (
                vec![event(
                    EventKind::Modify(ModifyKind::Metadata(MetadataKind::Any)),
                    &["/p/a.wasm"],
                )],
                vec![file("/p/a.wasm")],
            ),
            // Replaced while its earlier events were pending: once.
            (
                vec![
                    event(EventKind::Remove(RemoveKind::Any), &["/p/a.wasm"]),
                    event(EventKind::Create(CreateKind::File), &["/p/a.wasm"]),
                    event(closed, &["/p/a.wasm"]),
                ],
                vec![file("/p/a.wasm")],
            ),
            // Reading a file (Warren examining it) is no change.
            (
                vec![event(
                    EventKind::Access(AccessKind::Close(AccessMode::Read)),
                    &["/p/a.wasm"],
                )],
                vec![],
            ),
            // Hidden files and other files are not plugins.
            (
                vec![
                    event(closed, &["/p/.a.wasm"]),
                    event(closed, &["/p/a.toml"]),
                ],
                vec![],
            ),
            (vec![event(EventKind::Other, &[])], vec![]),
        ];
        for (events, expected) in cases {
            let got = changes(Ok(events.clone()));
            assert_eq!(got, expected, "{events:?}");
        }
        let missed = DebouncedEvent::new(
            Event::new(EventKind::Other).set_flag(Flag::Rescan),
            Instant::now(),
        );
        assert_eq!(changes(Ok(vec![missed])), vec![Change::Listing]);
        let error = notify_debouncer_full::notify::Error::generic("gone");
        assert_eq!(changes(Err(vec![error])), vec![Change::Listing]);
    }

    #[test]
    fn a_listing_examines_files_changed_and_left_alone() {
        let now = SystemTime::now();
        let stamp = |len, age: u64| FileStamp {
            len,
            modified: Some(now - Duration::from_millis(age)),
        };
        let listing = vec![
            (PathBuf::from("/p/new.wasm"), stamp(1, 5_000)),
            (PathBuf::from("/p/copying.wasm"), stamp(1, 10)),
            (PathBuf::from("/p/same.wasm"), stamp(1, 5_000)),
            (PathBuf::from("/p/touched.wasm"), stamp(1, 2_000)),
            (
                PathBuf::from("/p/skewed.wasm"),
                FileStamp {
                    len: 1,
                    modified: Some(now + Duration::from_secs(60)),
                },
            ),
        ];
        let examined = |file: &str| match file {
            "same.wasm" => Some(stamp(1, 5_000)),
            "touched.wasm" => Some(stamp(1, 9_000)),
            _ => None,
        };
        let due = due(&listing, examined, now);
        let names: Vec<&str> = due.iter().filter_map(|p| p.file_name()?.to_str()).collect();
        assert_eq!(names, ["new.wasm", "touched.wasm", "skewed.wasm"]);
    }

    #[test]
    fn plugin_files_are_visible_wasm_files() {
        assert_eq!(
            plugin_file(Path::new("/p/echo.wasm")),
            Some(("echo.wasm".into(), "echo".into()))
        );
        assert_eq!(
            plugin_file(Path::new("/p/bad name!.wasm")),
            Some(("bad name!.wasm".into(), "bad name!".into()))
        );
        for other in [
            "/p/.echo.wasm",
            "/p/echo.toml",
            "/p/wasm",
            "/p/echo.wasm.partial",
        ] {
            assert_eq!(plugin_file(Path::new(other)), None, "{other}");
        }
    }

    /// Real file events: a file renamed in from a hidden one and one
    /// written in place are reported once complete, and a removed one.
    #[tokio::test]
    async fn real_events_report_complete_and_removed_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut watcher = FolderWatcher::start(dir.path());
        assert_eq!(
            watcher.next().await,
            Change::Listing,
            "the first listing comes at once"
        );
        let staged = dir.path().join(".renamed.wasm.partial");
        std::fs::write(&staged, b"renamed").expect("write");
        std::fs::rename(&staged, dir.path().join("renamed.wasm")).expect("rename");
        std::fs::write(dir.path().join("written.wasm"), b"written").expect("write");
        let expected = [
            dir.path().join("renamed.wasm"),
            dir.path().join("written.wasm"),
        ];
        assert_eq!(files_reported(&mut watcher, 2).await, expected);
        std::fs::remove_file(dir.path().join("written.wasm")).expect("remove");
        assert_eq!(
            files_reported(&mut watcher, 1).await,
            [dir.path().join("written.wasm")]
        );
    }

    /// The first `count` distinct files reported within 5 s, sorted.
    async fn files_reported(watcher: &mut FolderWatcher, count: usize) -> Vec<PathBuf> {
        let mut files = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while files.len() < count {
            match tokio::time::timeout_at(deadline, watcher.next()).await {
                Ok(Change::File(path)) if !files.contains(&path) => files.push(path),
                Ok(_) => {}
                Err(_) => break,
            }
        }
        files.sort();
        files
    }
}
