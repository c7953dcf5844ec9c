//! `checksum`: sha256 of every file under `/in` and of the input text, the
//! text hashed `rounds` times over (a hash chain, as in key stretching).
//! CPU-bound; `warren bench runtime` uses it to measure what limits cost.

use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use warren_sdk::{Context, Error, Job};

#[derive(Deserialize)]
struct Input {
    #[serde(default)]
    text: String,
    /// Times the text is hashed: `h1 = sha256(text)`, `h(n+1) = sha256(hn)`.
    #[serde(default = "one")]
    rounds: u32,
}

fn one() -> u32 {
    1
}

#[derive(Serialize)]
struct FileDigest {
    path: String,
    sha256: String,
}

#[derive(Serialize)]
struct Output {
    text_sha256: String,
    rounds: u32,
    files: Vec<FileDigest>,
}

struct Checksum;

impl Job for Checksum {
    type Input = Input;
    type Output = Output;

    fn run(_ctx: &Context, input: Input) -> Result<Output, Error> {
        if input.rounds == 0 {
            return Err(Error::permanent("rounds must be at least 1"));
        }
        let mut digest = Sha256::digest(input.text.as_bytes());
        for _ in 1..input.rounds {
            digest = Sha256::digest(digest);
        }
        let mut files = Vec::new();
        if Path::new("/in").is_dir() {
            hash_files(Path::new("/in"), &mut files)?;
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(Output {
            text_sha256: hex::encode(digest),
            rounds: input.rounds,
            files,
        })
    }
}

fn hash_files(dir: &Path, files: &mut Vec<FileDigest>) -> Result<(), Error> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            hash_files(&entry.path(), files)?;
        } else if kind.is_file() {
            files.push(FileDigest {
                path: entry.path().display().to_string(),
                sha256: hex::encode(Sha256::digest(std::fs::read(entry.path())?)),
            });
        }
    }
    Ok(())
}

warren_sdk::export_job!(Checksum);
