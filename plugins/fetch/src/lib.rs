//! `fetch`: gets a URL, or asks a model, `times` times in a row, and says
//! how it went. An example of reaching out (its manifest must grant the
//! destination or the model: see docs/plugins.md), and what
//! `warren bench outbound` runs.
//!
//! Input: `{"url": U, "times": N}` (GETs), or `{"model": M, "prompt": P,
//! "times": N}` (completions); `times` is 1 when left out.
//! Output: `{"ok": N, "failed": N, "bytes": B, "tokens": T, "last": ...}`
//! with the last answer's status and first 200 bytes (or its error).

use serde::{Deserialize, Serialize};
use warren_sdk::models::{self, Message};
use warren_sdk::{Context, Error, Job, http};

#[derive(Deserialize)]
struct Input {
    url: Option<String>,
    model: Option<String>,
    #[serde(default)]
    prompt: String,
    #[serde(default = "once")]
    times: u32,
}

fn once() -> u32 {
    1
}

#[derive(Serialize, Default)]
struct Output {
    ok: u32,
    failed: u32,
    bytes: u64,
    tokens: u64,
    last: String,
}

struct Fetch;

impl Job for Fetch {
    type Input = Input;
    type Output = Output;

    fn run(_ctx: &Context, input: Input) -> Result<Output, Error> {
        let mut out = Output::default();
        for _ in 0..input.times {
            let last = match (&input.url, &input.model) {
                (Some(url), None) => http::get(url)
                    .map(|answer| {
                        out.bytes += answer.body.len() as u64;
                        let text = answer.text();
                        format!(
                            "{} {}",
                            answer.status,
                            text.chars().take(200).collect::<String>()
                        )
                    })
                    .map_err(|e| e.to_string()),
                (None, Some(model)) => {
                    models::complete(model, &[Message::user(input.prompt.clone())], Some(64))
                        .map(|answer| {
                            out.tokens += u64::from(answer.tokens_in + answer.tokens_out);
                            answer.text.chars().take(200).collect()
                        })
                        .map_err(|e| format!("{e:?}"))
                }
                _ => return Err(Error::permanent("give either `url` or `model`")),
            };
            match last {
                Ok(last) => {
                    out.ok += 1;
                    out.last = last;
                }
                Err(error) => {
                    out.failed += 1;
                    out.last = error;
                }
            }
        }
        Ok(out)
    }
}

warren_sdk::export_job!(Fetch);
