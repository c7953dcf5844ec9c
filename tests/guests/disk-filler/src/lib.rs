//! Hostile: fills the disk it can write to, as fast as it can. `mode`:
//! - `bytes`: appends 1 MiB chunks to `/work/fill.bin` until a write fails;
//! - `files`: creates empty files in `/work` until one fails;
//! - `rewrite`: writes `/work/same.bin` (1 MiB) and deletes it, `rounds`
//!   times, then succeeds.
//!
//! A write the host refuses without stopping the guest is reported as a
//! permanent error naming what failed.

use std::io::Write;

use serde::Deserialize;
use warren_sdk::{Context, Error, Job};

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum Mode {
    Bytes,
    Files,
    Rewrite,
}

#[derive(Deserialize)]
struct Input {
    mode: Mode,
    #[serde(default)]
    rounds: u32,
}

struct DiskFiller;

impl Job for DiskFiller {
    type Input = Input;
    type Output = u64;

    fn run(_ctx: &Context, input: Input) -> Result<u64, Error> {
        let chunk = vec![7u8; 1 << 20];
        match input.mode {
            Mode::Bytes => {
                let mut file = std::fs::File::create("/work/fill.bin")?;
                let mut written = 0u64;
                loop {
                    if let Err(e) = file.write_all(&chunk) {
                        return Err(Error::permanent(format!(
                            "write after {written} bytes: {e}"
                        )));
                    }
                    written += chunk.len() as u64;
                }
            }
            Mode::Files => {
                for i in 0u64.. {
                    if let Err(e) = std::fs::File::create(format!("/work/f{i}")) {
                        return Err(Error::permanent(format!("file {i}: {e}")));
                    }
                }
                Ok(0)
            }
            Mode::Rewrite => {
                for _ in 0..input.rounds {
                    std::fs::write("/work/same.bin", &chunk)?;
                    std::fs::remove_file("/work/same.bin")?;
                }
                Ok(u64::from(input.rounds) * chunk.len() as u64)
            }
        }
    }
}

warren_sdk::export_job!(DiskFiller);
