//! The life of a plugin's versions, without I/O. Each function takes the
//! versions known for one name and what happened to it (its file holds some
//! content, an admin approves a version, the file is gone, the server
//! starts) and returns a [`Transition`]: the versions whose record changes
//! and what the registry must do. The plugins folder
//! ([`super::directory`]) reads files, compiles, records and activates.
//!
//! | state | once active | file holds it | new version, asks no more | new version, asks more | approved | file removed |
//! |---|---|---|---|---|---|---|
//! | active | yes | stays | inactive | stays | refused | retired |
//! | pending_approval | no | stays | inactive, superseded | inactive, superseded | active | retired |
//! | inactive | yes | active | stays | stays | refused | stays |
//! | inactive | no | decided again | stays | stays | refused | stays |
//! | retired | yes | active | stays | stays | refused | stays |
//! | retired | no | decided again | stays | stays | refused | stays |
//!
//! A new version is active at once unless it asks for more than the last
//! version made active, whatever became of that one; then it waits for
//! approval.

use super::grants::{self, Grants, Manifest, Policy};
use crate::db::plugins::{VersionRecord, VersionState};

/// The note of a version that waited for approval when a newer file came.
pub const SUPERSEDED: &str = "replaced by a newer file before approval";

/// One version of a plugin, as the catalogue knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub record: VersionRecord,
    pub manifest: Option<Manifest>,
    pub grants: Grants,
}

impl Version {
    fn is(&self, state: VersionState) -> bool {
        self.record.state == state
    }

    fn with_state(&self, state: VersionState) -> Version {
        let mut version = self.clone();
        version.record.state = state;
        version
    }
}

/// What an event does to a plugin's versions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transition {
    /// Versions in their new state, to record in one transaction and then
    /// show in the catalogue.
    pub changed: Vec<Version>,
    /// The digest of the version new runs use from now on: loaded before
    /// recording, activated after.
    pub activate: Option<String>,
    /// Digests of versions to load without activating them (runs are
    /// pinned to them).
    pub load: Vec<String>,
    /// New runs can no longer use the plugin.
    pub retire: bool,
}

/// Why an approval is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Unknown,
    NotPending(VersionState),
}

/// The plugin's file holds `version`'s content. A version seen before
/// keeps what it has: pending stays pending, active stays active, one
/// active before is active again (going back is no escalation), one never
/// active is decided again like a new one. Any other version still pending
/// is superseded: what an admin approves is the folder's newest content.
pub fn seen(versions: &[Version], version: Version, now: i64) -> Transition {
    let mut transition = Transition::default();
    let known = versions
        .iter()
        .find(|v| v.record.digest == version.record.digest);
    if known.is_some_and(|v| v.is(VersionState::PendingApproval)) {
        return transition;
    }
    for pending in versions
        .iter()
        .filter(|v| v.is(VersionState::PendingApproval))
    {
        let mut superseded = pending.with_state(VersionState::Inactive);
        superseded.record.note = Some(SUPERSEDED.into());
        transition.changed.push(superseded);
    }
    match known {
        Some(active) if active.is(VersionState::Active) => {
            transition.activate = Some(active.record.digest.clone());
        }
        Some(before) if before.record.activated_at.is_some() => {
            activate(versions, before.clone(), now, &mut transition);
        }
        Some(never) => decide(versions, never.clone(), now, &mut transition),
        None => decide(versions, version, now, &mut transition),
    }
    transition
}

/// An admin approves version `digest`, which must be pending.
pub fn approved(versions: &[Version], digest: &str, now: i64) -> Result<Transition, Refusal> {
    let version = versions
        .iter()
        .find(|v| v.record.digest == digest)
        .ok_or(Refusal::Unknown)?;
    if !version.is(VersionState::PendingApproval) {
        return Err(Refusal::NotPending(version.record.state));
    }
    let mut version = version.clone();
    version.record.approved_at = Some(now);
    let mut transition = Transition::default();
    activate(versions, version, now, &mut transition);
    Ok(transition)
}

/// The plugin's file is gone: its active and pending versions are retired.
/// The others, and the history, stay.
pub fn removed(versions: &[Version]) -> Transition {
    Transition {
        changed: versions
            .iter()
            .filter(|v| v.is(VersionState::Active) || v.is(VersionState::PendingApproval))
            .map(|v| v.with_state(VersionState::Retired))
            .collect(),
        retire: true,
        ..Transition::default()
    }
}

/// The server starts: the active version is loaded and activated, the ones
/// unfinished runs are pinned to (`pinned`, digests) are loaded. No state
/// changes.
pub fn restored(versions: &[Version], pinned: &[String]) -> Transition {
    let active = versions.iter().find(|v| v.is(VersionState::Active));
    Transition {
        activate: active.map(|v| v.record.digest.clone()),
        load: versions
            .iter()
            .filter(|v| !v.is(VersionState::Active) && pinned.contains(&v.record.digest))
            .map(|v| v.record.digest.clone())
            .collect(),
        ..Transition::default()
    }
}

/// A stored version under today's policy. A stored manifest that no longer
/// parses grants the least, never everything the policy allows; its error
/// comes back to be reported.
pub fn from_store(record: VersionRecord, policy: &Policy) -> (Version, Option<String>) {
    let (manifest, grants, broken) = match record.manifest.as_deref().map(Manifest::parse) {
        None => (None, grants::grant(None, policy), None),
        Some(Ok(manifest)) => {
            let grants = grants::grant(Some(&manifest), policy);
            (Some(manifest), grants, None)
        }
        Some(Err(e)) => (None, grants::least(policy), Some(e)),
    };
    let version = Version {
        record,
        manifest,
        grants,
    };
    (version, broken)
}

/// Active at once when the plugin never had an active version or when
/// `version` asks for no more than the last one made active (deleting a
/// file does not reset what was approved); pending approval otherwise.
fn decide(versions: &[Version], mut version: Version, now: i64, transition: &mut Transition) {
    let baseline = versions
        .iter()
        .filter(|v| v.record.activated_at.is_some())
        .max_by_key(|v| v.record.activated_at);
    let escalation = baseline.and_then(|base| {
        let more = version.grants.escalations_over(&base.grants);
        (!more.is_empty()).then_some((base, more))
    });
    match escalation {
        Some((base, more)) => {
            version.record.state = VersionState::PendingApproval;
            version.record.note = Some(format!(
                "asks for more than version {}: {}",
                base.record.digest,
                more.join(", ")
            ));
            transition.changed.push(version);
        }
        None => activate(versions, version, now, transition),
    }
}

/// The one activation sequence: the active version, if another, becomes
/// inactive, and `version` becomes active.
fn activate(versions: &[Version], mut version: Version, now: i64, transition: &mut Transition) {
    if let Some(previous) = versions
        .iter()
        .find(|v| v.is(VersionState::Active) && v.record.digest != version.record.digest)
    {
        transition
            .changed
            .push(previous.with_state(VersionState::Inactive));
    }
    version.record.state = VersionState::Active;
    version.record.note = None;
    version.record.activated_at = Some(now);
    transition.activate = Some(version.record.digest.clone());
    transition.changed.push(version);
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren_vocabulary::{MemoryScope, PluginKind};

    use VersionState::{Active as A, Inactive as I, PendingApproval as P, Retired as R};

    const NOW: i64 = 1_000;

    /// What the version under test, `s`, is beside `o`, a version that was
    /// active once. The plugin is in a state it can reach.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Subject {
        Active,
        Pending,
        InactiveOnceActive,
        InactiveNeverActive,
        RetiredOnceActive,
        RetiredNeverActive,
    }

    impl Subject {
        const ALL: [Subject; 6] = [
            Self::Active,
            Self::Pending,
            Self::InactiveOnceActive,
            Self::InactiveNeverActive,
            Self::RetiredOnceActive,
            Self::RetiredNeverActive,
        ];

        fn state(self) -> VersionState {
            self.versions()[1].record.state
        }

        /// `[o, s]`. A version never active asks for more than `o`.
        fn versions(self) -> Vec<Version> {
            let asks_more =
                Some("asks for more than version o: memory scope story, memory scope agent, spawn");
            let (o, s) = match self {
                Self::Active => (version("o", I, Some(10)), version("s", A, Some(20))),
                Self::Pending => (
                    version("o", A, Some(10)),
                    wide(version("s", P, None), asks_more),
                ),
                Self::InactiveOnceActive => (version("o", A, Some(20)), version("s", I, Some(10))),
                Self::InactiveNeverActive => (
                    version("o", A, Some(10)),
                    wide(version("s", I, None), Some(SUPERSEDED)),
                ),
                Self::RetiredOnceActive => (version("o", I, Some(10)), version("s", R, Some(20))),
                Self::RetiredNeverActive => (
                    version("o", R, Some(10)),
                    wide(version("s", R, None), asks_more),
                ),
            };
            vec![o, s]
        }
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Event {
        /// The file holds `s` (again).
        SeenAgain,
        /// The file holds `n`, never seen, asking no more than `o` and `s`.
        SeenNewSame,
        /// The file holds `n`, never seen, asking for more.
        SeenNewMore,
        Approved,
        Removed,
        Restored,
        /// Restored with a run pinned to `s`.
        RestoredPinned,
        /// Restored, and `s`'s stored manifest no longer parses.
        RestoredBrokenManifest,
    }

    const EVENTS: [Event; 8] = [
        Event::SeenAgain,
        Event::SeenNewSame,
        Event::SeenNewMore,
        Event::Approved,
        Event::Removed,
        Event::Restored,
        Event::RestoredPinned,
        Event::RestoredBrokenManifest,
    ];

    /// The states of `s`, `o` and `n` after the event, and which version
    /// the registry activates and loads.
    #[derive(Debug, Clone, Copy)]
    enum Then {
        States {
            s: VersionState,
            o: VersionState,
            n: Option<VersionState>,
            activate: Option<&'static str>,
            load: &'static [&'static str],
        },
        Refused(Refusal),
    }

    const fn then(
        s: VersionState,
        o: VersionState,
        n: Option<VersionState>,
        activate: Option<&'static str>,
    ) -> Then {
        Then::States {
            s,
            o,
            n,
            activate,
            load: &[],
        }
    }

    const fn loads(s: VersionState, o: VersionState, activate: Option<&'static str>) -> Then {
        Then::States {
            s,
            o,
            n: None,
            activate,
            load: &["s"],
        }
    }

    const fn refused(state: VersionState) -> Then {
        Then::Refused(Refusal::NotPending(state))
    }

    #[rustfmt::skip]
    const TABLE: &[(Subject, Event, Then)] = {
        use Event::*;
        use Subject::{
            Active as Act, InactiveNeverActive as InNever, InactiveOnceActive as InOnce,
            Pending as Pend, RetiredNeverActive as RetNever, RetiredOnceActive as RetOnce,
        };
        &[
            (Act, SeenAgain, then(A, I, None, Some("s"))),
            (Act, SeenNewSame, then(I, I, Some(A), Some("n"))),
            (Act, SeenNewMore, then(A, I, Some(P), None)),
            (Act, Approved, refused(A)),
            (Act, Removed, then(R, I, None, None)),
            (Act, Restored, then(A, I, None, Some("s"))),
            (Act, RestoredPinned, then(A, I, None, Some("s"))),
            (Act, RestoredBrokenManifest, then(A, I, None, Some("s"))),

            (Pend, SeenAgain, then(P, A, None, None)),
            (Pend, SeenNewSame, then(I, I, Some(A), Some("n"))),
            (Pend, SeenNewMore, then(I, A, Some(P), None)),
            (Pend, Approved, then(A, I, None, Some("s"))),
            (Pend, Removed, then(R, R, None, None)),
            (Pend, Restored, then(P, A, None, Some("o"))),
            (Pend, RestoredPinned, loads(P, A, Some("o"))),
            (Pend, RestoredBrokenManifest, then(P, A, None, Some("o"))),

            (InOnce, SeenAgain, then(A, I, None, Some("s"))),
            (InOnce, SeenNewSame, then(I, I, Some(A), Some("n"))),
            (InOnce, SeenNewMore, then(I, A, Some(P), None)),
            (InOnce, Approved, refused(I)),
            (InOnce, Removed, then(I, R, None, None)),
            (InOnce, Restored, then(I, A, None, Some("o"))),
            (InOnce, RestoredPinned, loads(I, A, Some("o"))),
            (InOnce, RestoredBrokenManifest, then(I, A, None, Some("o"))),

            (InNever, SeenAgain, then(P, A, None, None)),
            (InNever, SeenNewSame, then(I, I, Some(A), Some("n"))),
            (InNever, SeenNewMore, then(I, A, Some(P), None)),
            (InNever, Approved, refused(I)),
            (InNever, Removed, then(I, R, None, None)),
            (InNever, Restored, then(I, A, None, Some("o"))),
            (InNever, RestoredPinned, loads(I, A, Some("o"))),
            (InNever, RestoredBrokenManifest, then(I, A, None, Some("o"))),

            (RetOnce, SeenAgain, then(A, I, None, Some("s"))),
            (RetOnce, SeenNewSame, then(R, I, Some(A), Some("n"))),
            (RetOnce, SeenNewMore, then(R, I, Some(P), None)),
            (RetOnce, Approved, refused(R)),
            (RetOnce, Removed, then(R, I, None, None)),
            (RetOnce, Restored, then(R, I, None, None)),
            (RetOnce, RestoredPinned, loads(R, I, None)),
            (RetOnce, RestoredBrokenManifest, then(R, I, None, None)),

            (RetNever, SeenAgain, then(P, R, None, None)),
            (RetNever, SeenNewSame, then(R, R, Some(A), Some("n"))),
            (RetNever, SeenNewMore, then(R, R, Some(P), None)),
            (RetNever, Approved, refused(R)),
            (RetNever, Removed, then(R, R, None, None)),
            (RetNever, Restored, then(R, R, None, None)),
            (RetNever, RestoredPinned, loads(R, R, None)),
            (RetNever, RestoredBrokenManifest, then(R, R, None, None)),
        ]
    };

    /// Grants asking for run memory only and no spawning.
    fn modest() -> Grants {
        Grants {
            memory: vec![MemoryScope::Run],
            spawn: false,
            ..Grants::default()
        }
    }

    fn version(digest: &str, state: VersionState, activated_at: Option<i64>) -> Version {
        Version {
            record: VersionRecord {
                name: "plugin".into(),
                digest: digest.into(),
                kind: PluginKind::Job,
                size: 1,
                state,
                manifest: Some("spawn = false\nmemory = [\"run\"]\n".into()),
                note: None,
                first_seen_at: 1,
                activated_at,
                approved_at: None,
                agent: None,
            },
            manifest: None,
            grants: modest(),
        }
    }

    /// `version` asking for story memory and spawning too.
    fn wide(mut version: Version, note: Option<&str>) -> Version {
        version.grants = Grants::default();
        version.record.manifest = None;
        version.record.note = note.map(str::to_owned);
        version
    }

    /// The versions after `transition` is recorded.
    fn apply(mut versions: Vec<Version>, transition: &Transition) -> Vec<Version> {
        for changed in &transition.changed {
            match versions
                .iter_mut()
                .find(|v| v.record.digest == changed.record.digest)
            {
                Some(slot) => *slot = changed.clone(),
                None => versions.push(changed.clone()),
            }
        }
        versions
    }

    fn run(subject: Subject, event: Event) -> Result<(Vec<Version>, Transition), Refusal> {
        let mut versions = subject.versions();
        let s = versions[1].clone();
        let transition = match event {
            Event::SeenAgain => seen(&versions, s, NOW),
            Event::SeenNewSame => seen(&versions, version("n", A, None), NOW),
            Event::SeenNewMore => seen(&versions, wide(version("n", A, None), None), NOW),
            Event::Approved => approved(&versions, "s", NOW)?,
            Event::Removed => removed(&versions),
            Event::Restored => restored(&versions, &[]),
            Event::RestoredPinned => restored(&versions, &["s".into()]),
            Event::RestoredBrokenManifest => {
                versions[1].record.manifest = Some("spawn = maybe".into());
                versions = versions
                    .into_iter()
                    .map(|v| from_store(v.record, &Policy::default()).0)
                    .collect();
                restored(&versions, &[])
            }
        };
        Ok((apply(versions, &transition), transition))
    }

    fn state_of(versions: &[Version], digest: &str) -> Option<VersionState> {
        versions
            .iter()
            .find(|v| v.record.digest == digest)
            .map(|v| v.record.state)
    }

    #[test]
    fn every_state_meets_every_event_as_the_table_says() {
        for (subject, event, then) in TABLE {
            let case = format!("{subject:?} {event:?}");
            let outcome = run(*subject, *event);
            let (s, o, n, activate, load) = match *then {
                Then::Refused(refusal) => {
                    assert_eq!(outcome.err(), Some(refusal), "{case}");
                    continue;
                }
                Then::States {
                    s,
                    o,
                    n,
                    activate,
                    load,
                } => (s, o, n, activate, load),
            };
            let (after, transition) = outcome.unwrap_or_else(|e| panic!("{case}: refused {e:?}"));
            assert_eq!(state_of(&after, "s"), Some(s), "{case}: s");
            assert_eq!(state_of(&after, "o"), Some(o), "{case}: o");
            assert_eq!(state_of(&after, "n"), n, "{case}: n");
            assert_eq!(transition.activate.as_deref(), activate, "{case}: activate");
            assert_eq!(transition.load, load, "{case}: load");
            assert_eq!(transition.retire, *event == Event::Removed, "{case}");
            if *event == Event::RestoredBrokenManifest {
                assert_eq!(after[1].grants, grants::least(&Policy::default()), "{case}");
            }
            let active: Vec<&str> = after
                .iter()
                .filter(|v| v.record.state == A)
                .map(|v| v.record.digest.as_str())
                .collect();
            assert!(active.len() <= 1, "{case}: several active {active:?}");
            if transition.changed.iter().any(|v| v.record.state == A) {
                assert_eq!(active.first().copied(), activate, "{case}");
            }
        }
    }

    #[test]
    fn the_table_covers_every_state_and_event() {
        for &state in VersionState::ALL {
            assert!(Subject::ALL.iter().any(|s| s.state() == state), "{state}");
        }
        for subject in Subject::ALL {
            for event in EVENTS {
                let rows = TABLE
                    .iter()
                    .filter(|(s, e, _)| *s == subject && *e == event)
                    .count();
                assert_eq!(rows, 1, "{subject:?} {event:?}");
            }
        }
    }

    #[test]
    fn activating_stamps_the_time_and_clears_the_note() {
        let (after, _) = run(Subject::Pending, Event::Approved).expect("approved");
        let s = &after[1].record;
        assert_eq!(
            (s.activated_at, s.approved_at, &s.note),
            (Some(NOW), Some(NOW), &None)
        );
        let (after, _) = run(Subject::RetiredOnceActive, Event::SeenAgain).expect("seen");
        assert_eq!(after[1].record.activated_at, Some(NOW));
        // An active version seen again is not recorded again.
        let (_, transition) = run(Subject::Active, Event::SeenAgain).expect("seen");
        assert!(transition.changed.is_empty());
    }

    #[test]
    fn a_version_asking_more_says_what_and_supersedes_the_one_pending() {
        let (after, _) = run(Subject::Pending, Event::SeenNewMore).expect("seen");
        assert_eq!(after[1].record.note.as_deref(), Some(SUPERSEDED));
        // Compared with the last version made active, `o`.
        assert_eq!(
            after[2].record.note.as_deref(),
            Some("asks for more than version o: memory scope story, memory scope agent, spawn")
        );
        // Compared with `s`, active after `o`, though now retired.
        let (after, _) = run(Subject::RetiredOnceActive, Event::SeenNewMore).expect("seen");
        assert!(
            after[2]
                .record
                .note
                .as_deref()
                .is_some_and(|n| n.starts_with("asks for more than version s:"))
        );
    }

    #[test]
    fn the_first_version_of_a_name_is_active_whatever_it_asks() {
        let transition = seen(&[], wide(version("n", P, None), None), NOW);
        assert_eq!(transition.activate.as_deref(), Some("n"));
        assert_eq!(transition.changed.len(), 1);
        assert_eq!(transition.changed[0].record.state, A);
    }

    #[test]
    fn approving_an_unknown_version_is_refused() {
        let versions = Subject::Pending.versions();
        assert_eq!(approved(&versions, "x", NOW), Err(Refusal::Unknown));
    }

    #[test]
    fn a_stored_manifest_that_no_longer_parses_grants_the_least() {
        let policy = Policy::default();
        let mut record = version("s", A, Some(1)).record;
        let (ok, broken) = from_store(record.clone(), &policy);
        assert!(broken.is_none());
        assert_eq!(ok.grants, modest());
        record.manifest = Some("spawn = maybe".into());
        let (version, broken) = from_store(record.clone(), &policy);
        assert!(broken.is_some());
        assert_eq!(version.grants, grants::least(&policy));
        assert_eq!((version.record, version.manifest), (record, None));
    }
}
