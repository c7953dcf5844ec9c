//! Record and replay of what an attempt's calls out were answered.
//!
//! Every answered HTTP request and model call is recorded: at the end of a
//! successful attempt, each answer becomes an artifact of its job named
//! `replay/<kind>/<request hash>/<n>`, `n` counting the calls with that
//! hash in the attempt. A run submitted with `replay` gives each attempt
//! the recordings of the job of the same name in the earlier run, and its
//! calls are answered from them instead of going out.
//!
//! An answer equal to the one before it for the same hash is not stored
//! again: a replayed call gets the recording with the highest `n` not
//! past its own, so a thousand identical answers cost one artifact.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use warren_vocabulary::Artifact;

use crate::artifact_store::{ArtifactStore, sha256_hex};

/// Prefix of every recording's artifact name.
pub const PREFIX: &str = "replay/";

/// Largest recording read back.
const MAX_RECORDING_BYTES: u64 = 32 << 20;

/// What was called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    Http,
    Model,
}

impl CallKind {
    fn folder(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Model => "models",
        }
    }
}

/// The recordings of an earlier run's job, served to a replaying attempt.
#[derive(Debug, Clone)]
pub struct ReplaySource {
    /// The run recorded.
    pub run_id: String,
    /// Its job's `replay/...` artifacts.
    pub recordings: Vec<Artifact>,
}

/// One attempt's recorder, and its recordings to replay when it has them.
pub struct Tape {
    recorded: Mutex<Recorded>,
    replay: Option<Replay>,
    /// Bytes it keeps at most (the attempt's artifact limit): past them
    /// answers are not recorded, so a guest cannot make the host hold
    /// more than it may keep.
    max_bytes: u64,
}

#[derive(Default)]
struct Recorded {
    /// `(artifact name, answer)`, in the order answered.
    answers: Vec<(String, Bytes)>,
    /// Bytes of `answers`.
    bytes: u64,
    /// Answers not recorded: over `max_bytes`, or carrying a secret.
    skipped: u32,
    /// Per key: the calls so far, and the digest of the last answer.
    calls: HashMap<String, (u32, String)>,
}

struct Replay {
    source: ReplaySource,
    store: Arc<ArtifactStore>,
    /// Per key: the calls replayed so far.
    calls: Mutex<HashMap<String, u32>>,
}

impl Tape {
    pub fn new(
        replay: Option<ReplaySource>,
        store: Arc<ArtifactStore>,
        max_bytes: u64,
    ) -> Arc<Self> {
        Arc::new(Self {
            max_bytes,
            recorded: Mutex::default(),
            replay: replay.map(|source| Replay {
                source,
                store,
                calls: Mutex::default(),
            }),
        })
    }

    /// Whether calls are answered from an earlier run's recordings.
    pub fn replaying(&self) -> bool {
        self.replay.is_some()
    }

    /// Records `answer` to the call `(kind, hash)`.
    pub fn record(&self, kind: CallKind, hash: &str, answer: Bytes) {
        let key = format!("{}/{hash}", kind.folder());
        let digest = sha256_hex(&answer);
        let mut recorded = self.recorded.lock().unwrap_or_else(|p| p.into_inner());
        let (calls, last) = recorded.calls.entry(key.clone()).or_default();
        *calls += 1;
        if *last == digest {
            return;
        }
        *last = digest;
        let name = format!("{PREFIX}{key}/{calls}");
        let size = answer.len() as u64;
        if recorded.bytes.saturating_add(size) > self.max_bytes {
            recorded.skipped += 1;
            return;
        }
        recorded.bytes += size;
        recorded.answers.push((name, answer));
    }

    /// An answer that is not recorded (it answered a request carrying a
    /// secret): a replay of this call will find nothing.
    pub fn skip(&self) {
        let mut recorded = self.recorded.lock().unwrap_or_else(|p| p.into_inner());
        recorded.skipped += 1;
    }

    /// Answers left out of the recording.
    pub fn skipped(&self) -> u32 {
        self.recorded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .skipped
    }

    /// The recordings to keep as artifacts, in the order answered.
    pub fn take_recorded(&self) -> Vec<(String, Bytes)> {
        let mut recorded = self.recorded.lock().unwrap_or_else(|p| p.into_inner());
        std::mem::take(&mut recorded.answers)
    }

    /// The recorded answer to this call, or why there is none. Reads the
    /// store off the async threads.
    pub async fn replayed(&self, kind: CallKind, hash: &str) -> Result<Bytes, String> {
        let Some(replay) = &self.replay else {
            return Err("this attempt replays nothing".into());
        };
        let key = format!("{}/{hash}", kind.folder());
        let call = {
            let mut calls = replay.calls.lock().unwrap_or_else(|p| p.into_inner());
            let call = calls.entry(key.clone()).or_default();
            *call += 1;
            *call
        };
        // The recording with the highest number not past this call's.
        let prefix = format!("{PREFIX}{key}/");
        let found = replay
            .source
            .recordings
            .iter()
            .filter_map(|a| {
                let n: u32 = a.name.strip_prefix(&prefix)?.parse().ok()?;
                (n <= call).then_some((n, a))
            })
            .max_by_key(|(n, _)| *n)
            .map(|(_, a)| a.sha256.clone());
        let Some(digest) = found else {
            return Err(format!(
                "replay of run {}: it recorded no answer to this {} (request {})",
                replay.source.run_id,
                match kind {
                    CallKind::Http => "request",
                    CallKind::Model => "model call",
                },
                &hash[..16.min(hash.len())]
            ));
        };
        let store = replay.store.clone();
        let read = tokio::task::spawn_blocking(move || store.get(&digest, MAX_RECORDING_BYTES))
            .await
            .map_err(|e| format!("reading a recording: {e}"))?;
        read.map(Bytes::from)
            .map_err(|e| format!("reading a recording: {e}"))
    }
}

/// A recorded HTTP response: a JSON head line, then the body as it came.
#[derive(Debug, Serialize, Deserialize)]
pub struct HttpHead {
    pub status: u16,
    pub headers: Vec<(String, String)>,
}

/// Hash of an HTTP request: method, URL and body. Headers are left out:
/// they carry per-attempt placeholders and nothing that picks the answer
/// in the services plugins call.
pub fn http_request_hash(method: &http::Method, uri: &http::Uri, body: &[u8]) -> String {
    let mut bytes = Vec::with_capacity(body.len() + 64);
    bytes.extend_from_slice(method.as_str().as_bytes());
    bytes.push(b'\n');
    bytes.extend_from_slice(uri.to_string().as_bytes());
    bytes.push(b'\n');
    bytes.extend_from_slice(body);
    sha256_hex(&bytes)
}

/// A response as recorded: its head line and its body.
pub fn encode_http(status: http::StatusCode, headers: &http::HeaderMap, body: &[u8]) -> Bytes {
    let head = HttpHead {
        status: status.as_u16(),
        headers: headers
            .iter()
            .filter(|(name, _)| !is_hop_by_hop(name))
            .filter_map(|(name, value)| Some((name.to_string(), value.to_str().ok()?.to_owned())))
            .collect(),
    };
    let mut bytes = serde_json::to_vec(&head).unwrap_or_default();
    bytes.push(b'\n');
    bytes.extend_from_slice(body);
    Bytes::from(bytes)
}

/// A recorded response read back: its head and body.
pub fn decode_http(recording: Bytes) -> Result<(HttpHead, Bytes), String> {
    let end = recording
        .iter()
        .position(|&b| b == b'\n')
        .ok_or("a recorded response without its head line")?;
    let head: HttpHead = serde_json::from_slice(&recording[..end])
        .map_err(|e| format!("a recorded response's head: {e}"))?;
    Ok((head, recording.slice(end + 1..)))
}

/// Headers about the connection, not the response: a replayed response
/// comes whole, over no connection.
fn is_hop_by_hop(name: &http::HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection" | "keep-alive" | "transfer-encoding" | "te" | "trailer" | "upgrade"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Arc<ArtifactStore>) {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(ArtifactStore::open(dir.path()).unwrap());
        (dir, store)
    }

    #[test]
    fn an_answer_equal_to_the_last_is_not_recorded_again() {
        let (_dir, store) = store();
        let tape = Tape::new(None, store, 1 << 20);
        for answer in ["a", "a", "b", "b", "a"] {
            tape.record(CallKind::Http, "h", Bytes::from(answer));
        }
        tape.record(CallKind::Model, "h", Bytes::from("m"));
        let names: Vec<String> = tape.take_recorded().into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            [
                "replay/http/h/1",
                "replay/http/h/3",
                "replay/http/h/5",
                "replay/models/h/1"
            ]
        );
    }

    #[tokio::test]
    async fn a_call_gets_the_last_recording_not_past_it() {
        let (_dir, store) = store();
        let recording = |name: &str, text: &str| Artifact {
            name: name.into(),
            sha256: store.put(text.as_bytes()).unwrap(),
            size: text.len() as u64,
            producer: "job".into(),
        };
        let source = ReplaySource {
            run_id: "r".into(),
            recordings: vec![
                recording("replay/http/h/1", "first"),
                recording("replay/http/h/3", "third"),
            ],
        };
        let tape = Tape::new(Some(source), store.clone(), 1 << 20);
        let mut served = Vec::new();
        for _ in 0..4 {
            served.push(tape.replayed(CallKind::Http, "h").await.unwrap());
        }
        assert_eq!(served, ["first", "first", "third", "third"]);
        let missing = tape.replayed(CallKind::Model, "h").await.unwrap_err();
        assert!(
            missing.contains("recorded no answer to this model call"),
            "{missing}"
        );
    }

    #[test]
    fn a_response_survives_its_recording() {
        let mut headers = http::HeaderMap::new();
        headers.insert("content-type", "text/plain".parse().unwrap());
        headers.insert("transfer-encoding", "chunked".parse().unwrap());
        let recorded = encode_http(http::StatusCode::CREATED, &headers, b"line\nnext");
        let (head, body) = decode_http(recorded).unwrap();
        assert_eq!(head.status, 201);
        assert_eq!(head.headers, [("content-type".into(), "text/plain".into())]);
        assert_eq!(&body[..], b"line\nnext");
    }
}
