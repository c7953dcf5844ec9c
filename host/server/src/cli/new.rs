//! `warren new job|agent NAME`: scaffolds a plugin crate that builds with
//! `cargo build --release --target wasm32-wasip2` and runs as it stands.

use std::path::{Path, PathBuf};

use warren_vocabulary::names::is_valid_plugin_name;

/// The SDK of the source tree this binary was built from.
pub const BUNDLED_SDK_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../sdk");

/// Names cargo refuses as package names.
const RUST_KEYWORDS: &[&str] = &[
    "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum", "extern",
    "false", "fn", "for", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub",
    "ref", "return", "self", "Self", "static", "struct", "super", "trait", "true", "type",
    "unsafe", "use", "where", "while", "abstract", "become", "box", "do", "final", "gen", "macro",
    "override", "priv", "try", "typeof", "unsized", "virtual", "yield", "test",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Template {
    Job,
    Agent,
}

#[derive(Debug, thiserror::Error)]
pub enum NewError {
    #[error(
        "{0:?} is not a valid plugin name (letters, digits, `-` and `_`, starting with a letter or digit)"
    )]
    BadName(String),
    #[error("{0} already exists")]
    Exists(PathBuf),
    #[error("warren-sdk not found at {0}; pass --sdk with the path to the SDK crate")]
    SdkNotFound(PathBuf),
    #[error("writing the plugin: {0}")]
    Io(#[from] std::io::Error),
}

/// Creates the crate `parent/name` and returns its path.
pub fn scaffold(
    template: Template,
    name: &str,
    parent: &Path,
    sdk: Option<&Path>,
) -> Result<PathBuf, NewError> {
    // Cargo also wants a package name that starts with a letter and is not
    // a Rust keyword.
    let starts_with_letter = name.starts_with(|c: char| c.is_ascii_alphabetic());
    if !is_valid_plugin_name(name) || !starts_with_letter || RUST_KEYWORDS.contains(&name) {
        return Err(NewError::BadName(name.to_owned()));
    }
    let sdk = sdk.map_or_else(|| PathBuf::from(BUNDLED_SDK_DIR), Path::to_path_buf);
    let sdk = sdk
        .canonicalize()
        .ok()
        .filter(|p| p.join("Cargo.toml").is_file())
        .ok_or(NewError::SdkNotFound(sdk))?;
    let dir = parent.join(name);
    if dir.exists() {
        return Err(NewError::Exists(dir));
    }
    std::fs::create_dir_all(dir.join("src"))?;
    let crate_name = name.to_lowercase();
    let wasm_name = crate_name.replace('-', "_");
    let type_name = type_name(name);
    let (source, example_input) = match template {
        Template::Job => (JOB_SOURCE, r#"{"text":"hello warren"}"#),
        Template::Agent => (AGENT_SOURCE, r#"{"question":"what is warren?"}"#),
    };
    let fill = |text: &str| {
        text.replace("{{crate_name}}", &crate_name)
            .replace("{{wasm_name}}", &wasm_name)
            .replace("{{type_name}}", &type_name)
            .replace(
                "{{sdk_path}}",
                &sdk.display().to_string().replace('\\', "/"),
            )
            .replace("{{example_input}}", example_input)
    };
    std::fs::write(dir.join("Cargo.toml"), fill(CARGO_TOML))?;
    std::fs::write(dir.join("src/lib.rs"), fill(source))?;
    std::fs::write(dir.join("README.md"), fill(README))?;
    std::fs::write(dir.join(".gitignore"), "/target\n")?;
    Ok(dir)
}

/// `my-job` becomes `MyJob`.
fn type_name(name: &str) -> String {
    let mut out = String::new();
    for part in name.split(['-', '_']).filter(|p| !p.is_empty()) {
        let mut chars = part.chars();
        if let Some(first) = chars.next() {
            out.extend(first.to_uppercase());
            out.push_str(chars.as_str());
        }
    }
    out
}

const CARGO_TOML: &str = r#"[package]
name = "{{crate_name}}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib"]

[dependencies]
warren-sdk = { path = "{{sdk_path}}" }
serde = { version = "1", features = ["derive"] }
serde_json = "1"

[profile.release]
opt-level = "s"
lto = true
strip = true

# A plugin is a workspace of its own, wherever it is created.
[workspace]
"#;

const README: &str = r#"# {{crate_name}}

A Warren plugin.

```sh
cargo build --release --target wasm32-wasip2
warren run target/wasm32-wasip2/release/{{wasm_name}}.wasm --input '{{example_input}}'
```
"#;

const JOB_SOURCE: &str = r#"//! A Warren job: takes a text and returns it with a word count.

use serde::{Deserialize, Serialize};
use warren_sdk::{Context, Error, Job, log};

#[derive(Deserialize)]
struct Input {
    text: String,
}

#[derive(Serialize)]
struct Output {
    text: String,
    words: usize,
}

struct {{type_name}};

impl Job for {{type_name}} {
    type Input = Input;
    type Output = Output;

    fn run(ctx: &Context, input: Input) -> Result<Output, Error> {
        if input.text.is_empty() {
            return Err(Error::permanent("text must not be empty"));
        }
        log::info(&format!("job {} attempt {}", ctx.job_name, ctx.attempt));
        let words = input.text.split_whitespace().count();
        Ok(Output { text: input.text, words })
    }
}

warren_sdk::export_job!({{type_name}});
"#;

const AGENT_SOURCE: &str = r#"//! A Warren agent: answers a question and writes its answer as a document.

use serde::{Deserialize, Serialize};
use warren_sdk::{Agent, AgentContext, AgentInfo, Error, Reply, memory};

#[derive(Deserialize)]
struct Input {
    question: String,
}

#[derive(Serialize)]
struct Output {
    answer: String,
    questions_in_this_run: u64,
}

struct {{type_name}};

impl Agent for {{type_name}} {
    type Input = Input;
    type Output = Output;

    fn describe() -> AgentInfo {
        AgentInfo {
            name: "{{crate_name}}".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Answers questions.".into(),
            requires: Vec::new(),
            produces: vec!["answer.md".into()],
        }
    }

    fn invoke(_ctx: &AgentContext, input: Input) -> Result<Reply<Output>, Error> {
        // Run memory is shared by every job of the run.
        let asked = memory::run().get_json::<u64>("questions")?.unwrap_or(0) + 1;
        memory::run().set_json("questions", &asked)?;
        let answer = format!("You asked: {}", input.question);
        Ok(Reply::new(Output {
            answer: answer.clone(),
            questions_in_this_run: asked,
        })
        .with_document("answer.md", answer))
    }
}

warren_sdk::export_agent!({{type_name}});
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_are_camel_case_identifiers() {
        assert_eq!(type_name("my-job"), "MyJob");
        assert_eq!(type_name("word_count"), "WordCount");
        assert_eq!(type_name("lives9"), "Lives9");
    }

    #[test]
    fn refuses_names_that_are_paths_and_existing_directories() {
        let dir = tempfile::tempdir().expect("tempdir");
        for bad in ["../evil", "9lives", "type", "fn"] {
            assert!(
                matches!(
                    scaffold(Template::Job, bad, dir.path(), None),
                    Err(NewError::BadName(_))
                ),
                "{bad}"
            );
        }
        scaffold(Template::Job, "demo", dir.path(), None).expect("first scaffold");
        assert!(matches!(
            scaffold(Template::Job, "demo", dir.path(), None),
            Err(NewError::Exists(_))
        ));
    }
}
