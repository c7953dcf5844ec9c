//! Helper: runs a list of operations against the host capabilities and
//! reports each result, so tests can drive memory, artifacts, spawn,
//! progress and errors from the outside.

use serde::Deserialize;
use serde_json::{Value, json};
use warren_sdk::{Context, Error, Job, artifacts, jobs, log, memory};

#[derive(Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Op {
    Context,
    MemGet {
        scope: Scope,
        key: String,
    },
    MemSet {
        scope: Scope,
        key: String,
        value: String,
    },
    MemDelete {
        scope: Scope,
        key: String,
    },
    MemKeys {
        scope: Scope,
        prefix: String,
    },
    Put {
        name: String,
        data: String,
    },
    Get {
        name: String,
    },
    List,
    /// Writes `data`, `repeat` times over, to `/out/{name}`.
    WriteOut {
        name: String,
        data: String,
        #[serde(default = "once")]
        repeat: usize,
    },
    Spawn {
        plugin: String,
        input: Value,
        reason: String,
    },
    Progress {
        percent: u8,
        summary: String,
    },
    Log {
        message: String,
    },
    Fail {
        kind: String,
        message: String,
    },
    /// Fails (retryable) while this is an earlier attempt than `attempt`.
    FailUntil {
        attempt: u32,
    },
    SleepMs {
        ms: u64,
    },
    /// Reads any path the guest can see (a granted directory, say).
    ReadFile {
        path: String,
    },
    WriteFile {
        path: String,
        data: String,
    },
    /// Outputs of upstream jobs, by name.
    Upstream,
    /// Sets `count` keys `{prefix}{i}` to `bytes`-long values; reports how
    /// many were stored and the first refusal.
    MemFill {
        scope: Scope,
        prefix: String,
        count: usize,
        bytes: usize,
    },
    /// Puts `bytes`-long content as artifact `name`, `times` times over,
    /// whatever each put answers; reports how many were stored.
    PutLoop {
        name: String,
        bytes: usize,
        times: usize,
    },
    /// Spawns `plugin` `count` times, each with a `bytes`-long text input.
    SpawnBig {
        plugin: String,
        count: usize,
        bytes: usize,
    },
    /// Reports arrays nested `depth` deep (JSON no input could carry).
    Nest {
        depth: usize,
    },
    /// Spawns `plugin` with arrays nested `depth` deep as its input.
    SpawnNested {
        plugin: String,
        depth: usize,
    },
    /// Reports a string of `bytes` `x`s (a large output from a small input).
    Pad {
        bytes: usize,
    },
    /// Fails with a `bytes`-long message (or `items` needs of that size).
    FailBig {
        kind: String,
        bytes: usize,
        #[serde(default = "once")]
        items: usize,
    },
}

/// `[[[...]]]`, `depth` arrays deep.
fn nested(depth: usize) -> Value {
    (0..depth).fold(Value::Null, |inner, _| Value::Array(vec![inner]))
}

fn once() -> usize {
    1
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum Scope {
    Run,
    Story,
}

fn scope(s: Scope) -> memory::Memory {
    match s {
        Scope::Run => memory::run(),
        Scope::Story => memory::story(),
    }
}

fn report<T: serde::Serialize>(result: Result<T, Error>) -> Value {
    match result {
        Ok(value) => json!({ "ok": value }),
        Err(e) => json!({ "err": e.to_string() }),
    }
}

struct Toolbox;

impl Job for Toolbox {
    type Input = Vec<Op>;
    type Output = Vec<Value>;

    fn run(ctx: &Context, ops: Vec<Op>) -> Result<Vec<Value>, Error> {
        let mut results = Vec::new();
        for op in ops {
            let result = match op {
                Op::Context => json!({ "ok": {
                    "run_id": ctx.run_id, "job_id": ctx.job_id, "job_name": ctx.job_name,
                    "attempt": ctx.attempt, "story_id": ctx.story_id,
                }}),
                Op::MemGet { scope: s, key } => report(
                    scope(s)
                        .get(&key)
                        .map(|v| v.map(|b| String::from_utf8_lossy(&b).into_owned())),
                ),
                Op::MemSet {
                    scope: s,
                    key,
                    value,
                } => report(scope(s).set(&key, value.as_bytes())),
                Op::MemDelete { scope: s, key } => report(scope(s).delete(&key)),
                Op::MemKeys { scope: s, prefix } => report(scope(s).keys(&prefix)),
                Op::Put { name, data } => {
                    report(artifacts::put(&name, data.as_bytes()).map(|a| a.digest))
                }
                Op::Get { name } => {
                    report(artifacts::get(&name).map(|b| String::from_utf8_lossy(&b).into_owned()))
                }
                Op::List => report(artifacts::list().map(|list| {
                    list.into_iter()
                        .map(|a| json!({ "name": a.name, "size": a.size }))
                        .collect::<Vec<_>>()
                })),
                Op::ReadFile { path } => report(std::fs::read_to_string(path).map_err(Error::from)),
                Op::WriteFile { path, data } => {
                    report(std::fs::write(path, data).map_err(Error::from))
                }
                Op::WriteOut { name, data, repeat } => report(
                    std::fs::write(format!("/out/{name}"), data.repeat(repeat))
                        .map_err(Error::from),
                ),
                Op::Spawn {
                    plugin,
                    input,
                    reason,
                } => report(jobs::spawn(&plugin, &input, &reason)),
                Op::Progress { percent, summary } => {
                    jobs::progress(percent, &summary);
                    json!({ "ok": null })
                }
                Op::Log { message } => {
                    log::info(&message);
                    json!({ "ok": null })
                }
                Op::FailUntil { attempt } => {
                    if ctx.attempt < attempt {
                        return Err(Error::retryable(format!(
                            "attempt {} is too early",
                            ctx.attempt
                        )));
                    }
                    json!({ "ok": ctx.attempt })
                }
                Op::SleepMs { ms } => {
                    std::thread::sleep(std::time::Duration::from_millis(ms));
                    json!({ "ok": ms })
                }
                Op::Upstream => {
                    let mut upstream = serde_json::Map::new();
                    for name in ctx.upstream_jobs() {
                        let value: Option<Value> = ctx.upstream(name)?;
                        upstream.insert(name.to_owned(), value.unwrap_or(Value::Null));
                    }
                    json!({ "ok": upstream })
                }
                Op::MemFill {
                    scope: s,
                    prefix,
                    count,
                    bytes,
                } => {
                    let value = vec![b'm'; bytes];
                    let mut stored = 0;
                    let mut refused = None;
                    for i in 0..count {
                        match scope(s).set(&format!("{prefix}{i}"), &value) {
                            Ok(()) => stored += 1,
                            Err(e) => {
                                refused = Some(e.to_string());
                                break;
                            }
                        }
                    }
                    json!({ "ok": { "stored": stored, "refused": refused } })
                }
                Op::PutLoop { name, bytes, times } => {
                    let data = vec![b'p'; bytes];
                    let stored = (0..times)
                        .filter(|_| artifacts::put(&name, &data).is_ok())
                        .count();
                    json!({ "ok": stored })
                }
                Op::SpawnBig {
                    plugin,
                    count,
                    bytes,
                } => {
                    // Under the byte cap once quoted as JSON.
                    let input = json!({ "text": "s".repeat(bytes.saturating_sub(16)) });
                    let spawned = (0..count)
                        .filter(|_| jobs::spawn(&plugin, &input, "big input").is_ok())
                        .count();
                    json!({ "ok": spawned })
                }
                Op::Nest { depth } => json!({ "ok": nested(depth) }),
                Op::Pad { bytes } => json!({ "ok": "x".repeat(bytes) }),
                Op::SpawnNested { plugin, depth } => {
                    report(jobs::spawn(&plugin, &nested(depth), "nested"))
                }
                Op::FailBig { kind, bytes, items } => {
                    let message = "x".repeat(bytes);
                    return Err(match kind.as_str() {
                        "needs_input" => Error::needs_input(vec![message; items]),
                        _ => Error::permanent(message),
                    });
                }
                Op::Fail { kind, message } => {
                    return Err(match kind.as_str() {
                        "retryable" => Error::retryable(message),
                        "needs_input" => Error::needs_input([message]),
                        _ => Error::permanent(message),
                    });
                }
            };
            results.push(result);
        }
        Ok(results)
    }
}

warren_sdk::export_job!(Toolbox);
