//! `wordcount`: counts the words of its input text and of every file under
//! `/in`, and writes a report to `/out/report.json`.

use std::path::Path;

use serde::{Deserialize, Serialize};
use warren_sdk::{Context, Error, Job, log};

#[derive(Deserialize)]
struct Input {
    #[serde(default)]
    text: String,
}

#[derive(Serialize)]
struct FileCount {
    path: String,
    words: usize,
}

#[derive(Serialize)]
struct Report {
    input_words: usize,
    files: Vec<FileCount>,
    total_words: usize,
}

struct WordCount;

impl Job for WordCount {
    type Input = Input;
    type Output = Report;

    fn run(_ctx: &Context, input: Input) -> Result<Report, Error> {
        let input_words = count_words(&input.text);
        let mut files = Vec::new();
        // `/in` is only there when the job was given inputs.
        if Path::new("/in").is_dir() {
            collect_files(Path::new("/in"), &mut files)?;
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        let total_words = input_words + files.iter().map(|f| f.words).sum::<usize>();
        let report = Report {
            input_words,
            files,
            total_words,
        };
        std::fs::write("/out/report.json", serde_json::to_vec_pretty(&report)?)?;
        log::info(&format!("counted {total_words} words"));
        Ok(report)
    }
}

fn collect_files(dir: &Path, files: &mut Vec<FileCount>) -> Result<(), Error> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let kind = entry.file_type()?;
        if kind.is_dir() {
            collect_files(&path, files)?;
        } else if kind.is_file() {
            let bytes = std::fs::read(&path)?;
            files.push(FileCount {
                path: path.display().to_string(),
                words: count_words(&String::from_utf8_lossy(&bytes)),
            });
        }
    }
    Ok(())
}

fn count_words(text: &str) -> usize {
    text.split_whitespace().count()
}

warren_sdk::export_job!(WordCount);
