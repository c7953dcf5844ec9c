//! Shared test helpers: guest paths, a runtime in a temporary data
//! directory, and a canary file outside every sandbox.

use std::path::{Path, PathBuf};

use warren::host::HostBuilder;
use warren_sandbox::plugin::Plugin;
use warren_sandbox::runtime::{AttemptOutcome, AttemptRequest, Runtime, RuntimeConfig};

/// Test guests built by the host's build script.
pub const TEST_GUESTS_DIR: &str = env!("WARREN_TEST_GUESTS_DIR");

/// A first-party plugin's `.wasm` file.
pub fn plugin_path(name: &str) -> PathBuf {
    Path::new(warren::BUILTIN_PLUGINS_DIR).join(format!("{name}.wasm"))
}

/// A test guest's `.wasm` file.
pub fn guest_path(name: &str) -> PathBuf {
    Path::new(TEST_GUESTS_DIR).join(format!("{name}.wasm"))
}

/// A runtime config over `data_dir` whose compile cache is shared by every
/// test, so each plugin is compiled once per test run, not once per test.
pub fn runtime_config(data_dir: &Path) -> RuntimeConfig {
    let mut config = RuntimeConfig::new(data_dir);
    config.cache_dir = Some(Path::new(env!("CARGO_TARGET_TMPDIR")).join("compile-cache"));
    config
}

/// A host over `data_dir` sharing the tests' compile cache.
pub fn host_builder(data_dir: &Path) -> HostBuilder {
    HostBuilder::new(data_dir).cache_dir(runtime_config(data_dir).cache_dir)
}

/// A host (database and runtime) over a fresh data directory, removed at
/// the end of the test.
pub struct TestHost {
    pub data: tempfile::TempDir,
    /// Its plugin memory is in the host's SQLite database.
    pub runtime: std::sync::Arc<Runtime>,
}

impl TestHost {
    pub fn new() -> Self {
        let data = tempfile::tempdir().expect("tempdir");
        let runtime = host_builder(data.path()).open().expect("host").runtime;
        Self { data, runtime }
    }

    pub fn load(&self, path: &Path) -> Plugin {
        self.runtime
            .load_file(path)
            .unwrap_or_else(|e| panic!("loading {}: {e}", path.display()))
    }

    pub fn plugin(&self, name: &str) -> Plugin {
        self.load(&plugin_path(name))
    }

    pub fn guest(&self, name: &str) -> Plugin {
        self.load(&guest_path(name))
    }

    pub async fn run(&self, plugin: &Plugin, input: &str) -> AttemptOutcome {
        self.runtime
            .run_attempt(plugin, AttemptRequest::new(plugin.name(), input))
            .await
    }

    /// Proves the runtime still works after a hostile guest: a normal job
    /// runs and returns exactly its input.
    pub async fn assert_next_job_succeeds(&self) {
        let echo = self.plugin("echo");
        let outcome = self.run(&echo, r#"{"still":"alive"}"#).await;
        assert_eq!(outcome.result.as_deref(), Ok(r#"{"still":"alive"}"#));
    }
}

/// A file outside every sandbox whose content must never change.
pub struct Canary {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
}

const CANARY_CONTENT: &str = "canary: untouched\n";

impl Canary {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("canary.txt");
        std::fs::write(&path, CANARY_CONTENT).expect("write canary");
        Self { dir, path }
    }

    pub fn assert_untouched(&self) {
        let content = std::fs::read_to_string(&self.path).expect("canary still readable");
        assert_eq!(
            content, CANARY_CONTENT,
            "the canary outside the sandbox changed"
        );
        let entries = std::fs::read_dir(self.dir.path())
            .expect("canary dir")
            .count();
        assert_eq!(entries, 1, "something was created beside the canary");
    }
}
