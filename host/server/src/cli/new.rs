//! `warren new job|agent NAME`: scaffolds a plugin crate that builds with
//! `cargo build --release` (its `.cargo/config.toml` selects
//! `wasm32-wasip2`) and runs as it stands, from any folder.
//!
//! The crate depends on the published warren-sdk of this binary's version,
//! or with `--sdk PATH` on a local SDK crate (a checkout's `sdk` folder).

use std::path::{Path, PathBuf};

use warren_vocabulary::names::is_valid_plugin_name;

/// The SDK is versioned with Warren (tests/all/wit.rs checks it), so this
/// binary's version is the SDK version its plugins are written against.
const SDK_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The SDK's package name, which `--sdk` must point at.
const SDK_PACKAGE: &str = "warren-sdk";

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
        "{0:?} is not a valid plugin name (letters, digits, `-` and `_`, starting with a letter, not a Rust keyword)"
    )]
    BadName(String),
    #[error("{0} already exists")]
    Exists(PathBuf),
    #[error("--sdk {}: {reason}; pass the folder of the warren-sdk crate (`sdk` in a Warren checkout)", path.display())]
    NotTheSdk { path: PathBuf, reason: String },
    #[error("writing the plugin: {0}")]
    Io(#[from] std::io::Error),
}

/// Creates the crate `parent/name` and returns its path. Without `sdk` it
/// depends on the published warren-sdk; with it, on that local SDK crate.
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
    let sdk_dependency = match sdk {
        None => format!("warren-sdk = \"{SDK_VERSION}\""),
        Some(path) => format!(
            "warren-sdk = {{ path = {} }}",
            toml_string(&local_sdk(path)?)
        ),
    };
    std::fs::create_dir_all(parent)?;
    let dir = parent.join(name);
    // `create_dir`, not a check then `create_dir_all`: an existing folder,
    // file or (even dangling) symlink is refused, never written through.
    match std::fs::create_dir(&dir) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(NewError::Exists(dir));
        }
        other => other?,
    }
    std::fs::create_dir(dir.join("src"))?;
    std::fs::create_dir(dir.join(".cargo"))?;
    let crate_name = name.to_lowercase();
    let wasm_name = crate_name.replace('-', "_");
    let type_name = type_name(name);
    let (source, example_input) = match template {
        Template::Job => (JOB_SOURCE, r#"{"text":"hello warren"}"#),
        Template::Agent => (AGENT_SOURCE, r#"{"question":"what is warren?"}"#),
    };
    // The SDK dependency, which holds a user-given path, goes in last so
    // nothing in it is taken for a placeholder.
    let fill = |text: &str| {
        text.replace("{{crate_name}}", &crate_name)
            .replace("{{wasm_name}}", &wasm_name)
            .replace("{{type_name}}", &type_name)
            .replace("{{example_input}}", example_input)
            .replace("{{sdk_dependency}}", &sdk_dependency)
    };
    std::fs::write(dir.join("Cargo.toml"), fill(CARGO_TOML))?;
    std::fs::write(dir.join(".cargo/config.toml"), CARGO_CONFIG)?;
    std::fs::write(dir.join("src/lib.rs"), fill(source))?;
    std::fs::write(dir.join("README.md"), fill(README))?;
    std::fs::write(dir.join(".gitignore"), "/target\n")?;
    Ok(dir)
}

/// The absolute path of the warren-sdk crate at `path`, or why it is not one.
fn local_sdk(path: &Path) -> Result<String, NewError> {
    let not_the_sdk = |reason: String| NewError::NotTheSdk {
        path: path.to_path_buf(),
        reason,
    };
    let dir = path
        .canonicalize()
        .map_err(|e| not_the_sdk(format!("cannot open it ({e})")))?;
    if !dir.is_dir() {
        return Err(not_the_sdk("not a folder".into()));
    }
    let text = match std::fs::read_to_string(dir.join("Cargo.toml")) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(not_the_sdk("no Cargo.toml in it".into()));
        }
        Err(e) => return Err(not_the_sdk(format!("cannot read its Cargo.toml ({e})"))),
    };
    let manifest = toml::from_str::<toml::Value>(&text)
        .map_err(|_| not_the_sdk("its Cargo.toml is not valid TOML".into()))?;
    let package = manifest
        .get("package")
        .and_then(|p| p.get("name")?.as_str());
    match package {
        Some(SDK_PACKAGE) => {}
        Some(name) => {
            return Err(not_the_sdk(format!(
                "its Cargo.toml is the package {name:?}, not {SDK_PACKAGE:?}"
            )));
        }
        None if dir.join("sdk/Cargo.toml").is_file() => {
            return Err(not_the_sdk(format!(
                "its Cargo.toml is not a package (did you mean {}?)",
                path.join("sdk").display()
            )));
        }
        None => return Err(not_the_sdk("its Cargo.toml is not a package".into())),
    }
    dir.into_os_string()
        .into_string()
        .map_err(|_| not_the_sdk("its path is not valid UTF-8".into()))
}

/// `text` as a TOML basic string.
fn toml_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
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
{{sdk_dependency}}
serde = { version = "1", features = ["derive"] }
serde_json = "1"

[profile.release]
opt-level = "s"
lto = true
strip = true

# A plugin is a workspace of its own, wherever it is created.
[workspace]
"#;

/// Plugins are WebAssembly components, whatever machine builds them.
const CARGO_CONFIG: &str = r#"# A Warren plugin is a WebAssembly component: `cargo build --release` builds
# target/wasm32-wasip2/release/*.wasm (`rustup target add wasm32-wasip2` once).
[build]
target = "wasm32-wasip2"
"#;

const README: &str = r#"# {{crate_name}}

A Warren plugin. `.cargo/config.toml` selects the `wasm32-wasip2` target
(add it once with `rustup target add wasm32-wasip2`).

```sh
cargo build --release
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

    /// The SDK of the source tree these tests belong to.
    const CHECKOUT_SDK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../sdk");

    fn read(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    #[test]
    fn type_names_are_camel_case_identifiers() {
        assert_eq!(type_name("my-job"), "MyJob");
        assert_eq!(type_name("word_count"), "WordCount");
        assert_eq!(type_name("lives9"), "Lives9");
    }

    #[test]
    fn refuses_names_that_are_paths_and_existing_directories() {
        let dir = tempfile::tempdir().expect("tempdir");
        for bad in [
            "../evil", "9lives", "type", "fn", "", "a/b", "-x", "a b", "x.y",
        ] {
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
        // A file, or a symlink pointing nowhere, is not written through.
        std::fs::write(dir.path().join("afile"), "keep").expect("write");
        assert!(matches!(
            scaffold(Template::Agent, "afile", dir.path(), None),
            Err(NewError::Exists(_))
        ));
        assert_eq!(read(&dir.path().join("afile")), "keep");
        #[cfg(unix)]
        {
            let link = dir.path().join("dangling");
            std::os::unix::fs::symlink(dir.path().join("nowhere"), &link).expect("symlink");
            assert!(matches!(
                scaffold(Template::Job, "dangling", dir.path(), None),
                Err(NewError::Exists(_))
            ));
            assert!(!dir.path().join("nowhere").exists());
        }
    }

    #[test]
    fn depends_on_the_published_sdk_by_default_and_targets_wasm() {
        let dir = tempfile::tempdir().expect("tempdir");
        let crate_dir = scaffold(Template::Job, "by-version", dir.path(), None).expect("scaffold");
        let manifest = read(&crate_dir.join("Cargo.toml"));
        let line = format!("warren-sdk = \"{}\"", env!("CARGO_PKG_VERSION"));
        assert!(manifest.lines().any(|l| l == line), "{manifest}");
        let config = read(&crate_dir.join(".cargo/config.toml"));
        assert!(
            config.contains("[build]\ntarget = \"wasm32-wasip2\"\n"),
            "{config}"
        );
    }

    #[test]
    fn a_local_sdk_becomes_an_absolute_path_dependency() {
        let dir = tempfile::tempdir().expect("tempdir");
        let crate_dir = scaffold(
            Template::Agent,
            "by-path",
            dir.path(),
            Some(Path::new(CHECKOUT_SDK)),
        )
        .expect("scaffold");
        let manifest: toml::Value =
            toml::from_str(&read(&crate_dir.join("Cargo.toml"))).expect("valid TOML");
        let path = manifest
            .get("dependencies")
            .and_then(|d| d.get("warren-sdk"))
            .and_then(|s| s.get("path"))
            .and_then(toml::Value::as_str)
            .expect("a path dependency");
        let sdk = Path::new(CHECKOUT_SDK).canonicalize().expect("sdk");
        assert_eq!(Path::new(path), sdk);
    }

    #[test]
    fn refuses_an_sdk_path_that_is_not_the_sdk() {
        let dir = tempfile::tempdir().expect("tempdir");
        let other = dir.path().join("other");
        std::fs::create_dir(&other).expect("mkdir");
        let broken = dir.path().join("broken");
        std::fs::create_dir(&broken).expect("mkdir");
        std::fs::write(broken.join("Cargo.toml"), "[package\nname = ").expect("write");
        let checkout = Path::new(CHECKOUT_SDK).join("..");
        let cases: [(PathBuf, &str); 6] = [
            (broken, "not valid TOML"),
            (dir.path().join("missing"), "cannot open it"),
            (dir.path().to_path_buf(), "no Cargo.toml in it"),
            (Path::new(CHECKOUT_SDK).join("Cargo.toml"), "not a folder"),
            (checkout.join("host/server"), "the package \"warren\""),
            (checkout.clone(), "did you mean"),
        ];
        for (sdk, expected) in cases {
            let err = scaffold(Template::Job, "plugin", &other, Some(&sdk))
                .expect_err("not the SDK")
                .to_string();
            assert!(err.contains(expected), "{err}");
            assert!(
                err.contains("pass the folder of the warren-sdk crate"),
                "{err}"
            );
        }
        // Nothing was created for a refused SDK.
        assert_eq!(std::fs::read_dir(&other).expect("read").count(), 0);
    }

    #[test]
    fn toml_strings_escape_what_would_end_them() {
        assert_eq!(toml_string("/a/b"), r#""/a/b""#);
        assert_eq!(toml_string(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(toml_string("a\nb"), r#""a\u000Ab""#);
        let parsed: toml::Value =
            toml::from_str(&format!("p = {}", toml_string("x\"\\\n{{y}}"))).expect("toml");
        assert_eq!(
            parsed.get("p").and_then(toml::Value::as_str),
            Some("x\"\\\n{{y}}")
        );
    }
}
