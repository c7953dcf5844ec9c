//! `warren serve` settings: built-in defaults, then `warren.toml`, then
//! `WARREN_*` environment variables, then flags; each layer overrides the
//! one before.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::catalogue::grants::{
    DirectoryRule, ModelEndpoint, OutboundRule, PluginBreakerSettings, Policy, SecretGrant,
    SecretValue,
};
use crate::db::Durability;
use crate::scheduler::guards::GuardConfig;
use warren_sandbox::capabilities::breaker::BreakerSettings;
use warren_vocabulary::{LimitsSpec, MemoryScope, names};

/// What a bearer token may do (shared with the gates that name one).
pub use warren_vocabulary::Role;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Token {
    /// Shown in logs instead of the secret.
    pub name: String,
    pub token: String,
    pub role: Role,
}

/// Deepest spawn chain a policy may allow.
const MAX_SPAWN_DEPTH: u32 = 16;
/// Most spawned jobs a policy may allow a run.
const MAX_SPAWNED_PER_RUN: u32 = 100_000;

/// One layer of settings; unset fields leave the layer below in place.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layer {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub plugins_dir: Option<PathBuf>,
    pub cache_dir: Option<PathBuf>,
    pub durability: Option<Durability>,
    pub max_concurrent_jobs: Option<usize>,
    pub max_body_bytes: Option<usize>,
    pub request_timeout_ms: Option<u64>,
    pub shutdown_grace_ms: Option<u64>,
    pub cors_origins: Option<Vec<String>>,
    pub tokens: Option<Vec<Token>>,
    /// Longest a plugin file may take to validate and compile.
    pub compile_timeout_ms: Option<u64>,
    /// How long an `Idempotency-Key` and its answer are kept.
    pub idempotency_retention_ms: Option<u64>,
    /// Days an ended run is kept (with its history, logs and artifacts).
    pub retention_days: Option<u64>,
    /// Free space under which new runs are refused.
    pub min_free_disk_mb: Option<u64>,
    /// Most megabytes of job inputs and outputs one run holds in all.
    pub max_run_data_mb: Option<u64>,
    /// The template `POST /v1/run` starts when the request names no flow.
    pub default_flow: Option<String>,
    /// `[policy]` of `warren.toml`.
    pub policy: Option<PolicyLayer>,
    /// Failures in a row (no answer, or a 5xx) that open an outbound
    /// destination's circuit breaker.
    pub breaker_failures: Option<u32>,
    /// How long an open breaker fails requests before one probe.
    pub breaker_cooldown_ms: Option<u64>,
    /// `[secrets.NAME]` of `warren.toml`: values plugins' requests may
    /// carry, read from the environment or a file at start, never stored.
    pub secrets: Option<std::collections::BTreeMap<String, SecretSource>>,
    /// `[models.NAME]` of `warren.toml`: chat completions endpoints
    /// plugins may call by name.
    pub models: Option<std::collections::BTreeMap<String, ModelSource>>,
    /// Guard plugins that check every run's input, before a pipeline's own.
    pub default_guards: Option<Vec<String>>,
    /// `[guards.NAME]` of `warren.toml`: each guard's settings, handed to
    /// it with every check.
    pub guards: Option<
        std::collections::BTreeMap<String, std::collections::BTreeMap<String, GuardSetting>>,
    >,
}

/// A guard's setting: a word, or a list of words (handed over joined by
/// commas).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum GuardSetting {
    Text(String),
    List(Vec<String>),
}

/// An OpenAI-compatible chat completions endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSource {
    /// Up to `/v1` (`https://api.example.com/v1`).
    pub base_url: String,
    /// The endpoint's name for the model.
    pub model: String,
    /// The `[secrets.NAME]` holding its key, sent as a bearer token.
    pub api_key_secret: Option<String>,
    /// Longest a call may take; 60 s by default.
    pub timeout_ms: Option<u64>,
}

/// Where a secret's value is read from, and where it may be sent.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretSource {
    /// An environment variable holding the value.
    pub env: Option<String>,
    /// A file holding the value (a trailing newline is dropped).
    pub file: Option<PathBuf>,
    /// Host names (or `*.example.com`) requests carrying it may go to.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Whether it may go over plain `http` too; only over `https` when
    /// left out.
    #[serde(default)]
    pub allow_http: bool,
}

impl ModelSource {
    fn endpoint(&self, name: &str, secrets: &[SecretGrant]) -> Result<ModelEndpoint, ConfigError> {
        let invalid = |why: String| ConfigError::Invalid(format!("models.{name}: {why}"));
        let valid_name = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if !valid_name {
            return Err(invalid(
                "a name is 1 to 64 letters, digits, `_`, `-` or `.`".into(),
            ));
        }
        let url: axum::http::Uri = self
            .base_url
            .parse()
            .map_err(|_| invalid(format!("base_url {:?} is not a URL", self.base_url)))?;
        if !matches!(url.scheme_str(), Some("http" | "https")) || url.host().is_none() {
            return Err(invalid(format!(
                "base_url {:?} is not an http(s) URL",
                self.base_url
            )));
        }
        let api_key = match &self.api_key_secret {
            None => None,
            Some(secret) => {
                let secret = secrets.iter().find(|s| &s.name == secret).ok_or_else(|| {
                    invalid(format!(
                        "api_key_secret {secret:?} is not a declared secret"
                    ))
                })?;
                // The key goes where the model is: its secret must allow it.
                let host = url.host().unwrap_or_default();
                if !secret.may_go_to(url.scheme_str().unwrap_or("https"), host) {
                    return Err(invalid(format!(
                        "secret {:?} may not be sent to {host} (add it to the secret's hosts)",
                        secret.name
                    )));
                }
                Some(secret.value.clone())
            }
        };
        Ok(ModelEndpoint {
            name: name.to_owned(),
            base_url: self.base_url.clone(),
            model: self.model.clone(),
            api_key,
            timeout: Duration::from_millis(self.timeout_ms.unwrap_or(60_000)),
        })
    }
}

impl SecretSource {
    /// The declared secret, its value read; errors name the secret, never
    /// the value.
    fn read(&self, name: &str) -> Result<SecretGrant, ConfigError> {
        let invalid = |why: String| ConfigError::Invalid(format!("secrets.{name}: {why}"));
        let valid_name = !name.is_empty()
            && name.len() <= 64
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid_name {
            return Err(invalid("a name is 1 to 64 letters, digits or `_`".into()));
        }
        if self.hosts.is_empty() {
            return Err(invalid("`hosts` names none: where may it be sent?".into()));
        }
        let value = match (&self.env, &self.file) {
            (Some(var), None) => std::env::var(var)
                .map_err(|_| invalid(format!("environment variable {var} is not set")))?,
            (None, Some(path)) => std::fs::read_to_string(path)
                .map_err(|e| invalid(format!("cannot read {}: {e}", path.display())))?
                .trim_end_matches(['\n', '\r'])
                .to_owned(),
            _ => return Err(invalid("give exactly one of `env` and `file`".into())),
        };
        if value.is_empty() {
            return Err(invalid("the value is empty".into()));
        }
        Ok(SecretGrant {
            name: name.to_owned(),
            value: SecretValue::new(&value),
            hosts: self.hosts.iter().map(|h| h.to_ascii_lowercase()).collect(),
            allow_http: self.allow_http,
        })
    }
}

/// The operator's caps on plugins (`[policy]`); see [`Policy`].
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyLayer {
    /// `[policy.max_limits]`: the most any attempt may use.
    pub max_limits: Option<LimitsSpec>,
    /// `[policy.default_limits]`: what a job asking for nothing gets.
    pub default_limits: Option<LimitsSpec>,
    /// Memory scopes plugins may be granted.
    pub memory: Option<Vec<MemoryScope>>,
    /// Whether plugins may be granted spawning.
    pub spawn: Option<bool>,
    /// `[[policy.directories]]`: host folders plugins may be given.
    pub directories: Option<Vec<DirectoryRule>>,
    /// `[policy.outbound]`: where plugins may be granted to send HTTP
    /// requests.
    pub outbound: Option<OutboundRule>,
    /// Deepest chain of spawned jobs (1 to 16).
    pub max_spawn_depth: Option<u32>,
    /// Jobs one run may spawn in all (up to 100,000).
    pub max_spawned_per_run: Option<u32>,
    /// `[policy.max_run_budget]`: the most any run may use.
    pub max_run_budget: Option<warren_vocabulary::RunBudget>,
    /// `[policy.plugin_breaker]`: every plugin's circuit breaker.
    pub plugin_breaker: Option<PluginBreakerSettings>,
}

/// Settings of a server, every value decided.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// `None`: the first-party plugins built with this binary.
    pub plugins_dir: Option<PathBuf>,
    /// Compiled plugins; `None`: `DATA_DIR/cache`.
    pub cache_dir: Option<PathBuf>,
    pub durability: Durability,
    pub max_concurrent_jobs: usize,
    pub max_body_bytes: usize,
    /// A request that takes longer (a slow client included) gets 408.
    pub request_timeout: Duration,
    /// How long running attempts get to finish after SIGTERM/SIGINT.
    pub shutdown_grace: Duration,
    /// Origins allowed by CORS; empty: no CORS headers.
    pub cors_origins: Vec<String>,
    pub tokens: Vec<Token>,
    pub compile_timeout: Duration,
    /// How long an `Idempotency-Key` and its answer are kept.
    pub idempotency_retention: Duration,
    /// How long ended runs are kept; forever when `None`.
    pub keep_ended_runs: Option<Duration>,
    pub min_free_disk_bytes: u64,
    /// Most bytes of job inputs and outputs one run holds in all.
    pub max_run_data_bytes: u64,
    /// The template `POST /v1/run` starts when the request names no flow.
    pub default_flow: String,
    pub policy: Policy,
    /// When outbound destinations' circuit breakers open.
    pub breakers: BreakerSettings,
    /// `default_guards` and each guard's settings.
    pub guards: GuardConfig,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("warren-data"),
            plugins_dir: None,
            cache_dir: None,
            durability: Durability::Normal,
            max_concurrent_jobs: crate::scheduler::DEFAULT_CONCURRENCY,
            max_body_bytes: 1 << 20,
            request_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(10),
            cors_origins: Vec::new(),
            tokens: Vec::new(),
            compile_timeout: Duration::from_secs(60),
            idempotency_retention: DEFAULT_IDEMPOTENCY_RETENTION,
            keep_ended_runs: None,
            min_free_disk_bytes: DEFAULT_MIN_FREE_DISK_MB << 20,
            max_run_data_bytes: crate::scheduler::DEFAULT_MAX_RUN_DATA_BYTES,
            default_flow: DEFAULT_FLOW.to_owned(),
            policy: Policy::default(),
            breakers: BreakerSettings::default(),
            guards: GuardConfig::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path}: {error}")]
    Parse { path: PathBuf, error: String },
    #[error("{name}: {message}")]
    Env { name: String, message: String },
    #[error("{0}")]
    Invalid(String),
}

/// How long idempotency keys are kept by default: a day, like Stripe's.
pub const DEFAULT_IDEMPOTENCY_RETENTION: Duration = Duration::from_secs(24 * 60 * 60);

/// The longest retention accepted.
const MAX_IDEMPOTENCY_RETENTION: Duration = Duration::from_secs(10 * 366 * 24 * 60 * 60);

/// Free space under which new runs are refused, by default.
pub const DEFAULT_MIN_FREE_DISK_MB: u64 = 1024;

/// The flow `POST /v1/run` starts when a request names none: the demo
/// flow `warren serve` adds (`serve::DEMO_FLOW`).
pub const DEFAULT_FLOW: &str = "brief-to-review";

/// Name of the configuration file looked for in the current folder.
pub const DEFAULT_CONFIG_FILE: &str = "warren.toml";

impl Layer {
    /// The operator's layers: the file (`config`, or `./warren.toml` when it
    /// exists), then the `WARREN_*` variables.
    pub fn operator(config: Option<&Path>) -> Result<Vec<Self>, ConfigError> {
        let file = match config {
            Some(path) => Some(Self::from_file(path)?),
            None if Path::new(DEFAULT_CONFIG_FILE).exists() => {
                Some(Self::from_file(DEFAULT_CONFIG_FILE.as_ref())?)
            }
            None => None,
        };
        let env = Self::from_env(|name| std::env::var(name).ok())?;
        Ok(file.into_iter().chain([env]).collect())
    }

    /// Reads a `warren.toml`.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_owned(),
            error,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            error: e.to_string(),
        })
    }

    /// Reads `WARREN_LISTEN`, `WARREN_DATA_DIR`, `WARREN_PLUGINS_DIR`,
    /// `WARREN_CACHE_DIR`,
    /// `WARREN_DURABILITY`, `WARREN_MAX_CONCURRENT_JOBS`,
    /// `WARREN_MAX_BODY_BYTES`, `WARREN_REQUEST_TIMEOUT_MS`,
    /// `WARREN_SHUTDOWN_GRACE_MS`, `WARREN_COMPILE_TIMEOUT_MS`,
    /// `WARREN_IDEMPOTENCY_RETENTION_MS`, `WARREN_RETENTION_DAYS`,
    /// `WARREN_MIN_FREE_DISK_MB`,
    /// `WARREN_CORS_ORIGINS` (comma-separated) and `WARREN_TOKENS`
    /// (`name:role:token`, comma-separated).
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        fn parsed<T: std::str::FromStr>(
            get: &impl Fn(&str) -> Option<String>,
            name: &str,
        ) -> Result<Option<T>, ConfigError>
        where
            T::Err: std::fmt::Display,
        {
            get(name)
                .map(|value| {
                    value.trim().parse().map_err(|e: T::Err| ConfigError::Env {
                        name: name.to_owned(),
                        message: e.to_string(),
                    })
                })
                .transpose()
        }
        let durability = match get("WARREN_DURABILITY").as_deref() {
            None => None,
            Some("normal") => Some(Durability::Normal),
            Some("full") => Some(Durability::Full),
            Some(other) => {
                return Err(ConfigError::Env {
                    name: "WARREN_DURABILITY".into(),
                    message: format!("{other:?} is neither `normal` nor `full`"),
                });
            }
        };
        let tokens = get("WARREN_TOKENS")
            .map(|list| {
                list.split(',')
                    .filter(|entry| !entry.trim().is_empty())
                    .map(|entry| parse_token(entry.trim()))
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?;
        Ok(Self {
            listen: parsed(&get, "WARREN_LISTEN")?,
            data_dir: get("WARREN_DATA_DIR").map(PathBuf::from),
            plugins_dir: get("WARREN_PLUGINS_DIR").map(PathBuf::from),
            cache_dir: get("WARREN_CACHE_DIR").map(PathBuf::from),
            durability,
            max_concurrent_jobs: parsed(&get, "WARREN_MAX_CONCURRENT_JOBS")?,
            max_body_bytes: parsed(&get, "WARREN_MAX_BODY_BYTES")?,
            request_timeout_ms: parsed(&get, "WARREN_REQUEST_TIMEOUT_MS")?,
            shutdown_grace_ms: parsed(&get, "WARREN_SHUTDOWN_GRACE_MS")?,
            cors_origins: get("WARREN_CORS_ORIGINS").map(|list| {
                list.split(',')
                    .map(str::trim)
                    .filter(|o| !o.is_empty())
                    .map(str::to_owned)
                    .collect()
            }),
            tokens,
            compile_timeout_ms: parsed(&get, "WARREN_COMPILE_TIMEOUT_MS")?,
            idempotency_retention_ms: parsed(&get, "WARREN_IDEMPOTENCY_RETENTION_MS")?,
            retention_days: parsed(&get, "WARREN_RETENTION_DAYS")?,
            min_free_disk_mb: parsed(&get, "WARREN_MIN_FREE_DISK_MB")?,
            max_run_data_mb: parsed(&get, "WARREN_MAX_RUN_DATA_MB")?,
            default_flow: get("WARREN_DEFAULT_FLOW"),
            // The policy has tables and lists: warren.toml only.
            policy: None,
            // Secrets are declared in warren.toml (their values come from
            // the environment or files it names).
            secrets: None,
            models: None,
            breaker_failures: parsed(&get, "WARREN_BREAKER_FAILURES")?,
            breaker_cooldown_ms: parsed(&get, "WARREN_BREAKER_COOLDOWN_MS")?,
            default_guards: get("WARREN_DEFAULT_GUARDS").map(|list| {
                list.split(',')
                    .map(str::trim)
                    .filter(|g| !g.is_empty())
                    .map(str::to_owned)
                    .collect()
            }),
            // Settings are tables: warren.toml only.
            guards: None,
        })
    }
}

fn parse_token(entry: &str) -> Result<Token, ConfigError> {
    let bad = || ConfigError::Env {
        name: "WARREN_TOKENS".into(),
        message: format!(
            "{entry:?} is not `name:ROLE:token` with ROLE `admin`, `client` or `approver`"
        ),
    };
    let mut parts = entry.splitn(3, ':');
    let (Some(name), Some(role), Some(token)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    let Some(role) = Role::parse(role) else {
        return Err(bad());
    };
    Ok(Token {
        name: name.to_owned(),
        token: token.to_owned(),
        role,
    })
}

impl PolicyLayer {
    fn apply(self, mut policy: Policy) -> Result<Policy, ConfigError> {
        let invalid = |e: String| ConfigError::Invalid(format!("policy: {e}"));
        let unbounded = LimitsSpec::from_fields([Some(u64::MAX); LimitsSpec::FIELDS])
            .resolve(&policy.max_limits);
        if let Some(max) = self.max_limits {
            max.check(&unbounded).map_err(invalid)?;
            policy.max_limits = max.resolve(&policy.max_limits);
        }
        if let Some(defaults) = self.default_limits {
            defaults.check(&unbounded).map_err(invalid)?;
            policy.default_limits = defaults.resolve(&policy.default_limits);
        }
        // Defaults above the caps would be refused at every submission.
        policy.default_limits = policy.default_limits.capped_at(&policy.max_limits);
        policy.memory = self.memory.unwrap_or(policy.memory);
        policy.spawn = self.spawn.unwrap_or(policy.spawn);
        policy.directories = self.directories.unwrap_or(policy.directories);
        policy.outbound = self.outbound.unwrap_or(policy.outbound);
        if let Some(depth) = self.max_spawn_depth {
            if !(1..=MAX_SPAWN_DEPTH).contains(&depth) {
                return Err(invalid(format!(
                    "max_spawn_depth must be from 1 to {MAX_SPAWN_DEPTH}"
                )));
            }
            policy.max_spawn_depth = depth;
        }
        if let Some(count) = self.max_spawned_per_run {
            if count > MAX_SPAWNED_PER_RUN {
                return Err(invalid(format!(
                    "max_spawned_per_run must be at most {MAX_SPAWNED_PER_RUN}"
                )));
            }
            policy.max_spawned_per_run = count;
        }
        if let Some(breaker) = self.plugin_breaker {
            if breaker.failures == 0 {
                return Err(invalid("plugin_breaker.failures must be at least 1".into()));
            }
            policy.plugin_breaker = Some(breaker);
        }
        if let Some(budget) = self.max_run_budget {
            budget.check().map_err(invalid)?;
            policy.max_run_budget = budget;
        }
        Ok(policy)
    }
}

impl ServeConfig {
    /// Applies `layers` in order over the defaults and checks the result.
    pub fn resolve(layers: &[Layer]) -> Result<Self, ConfigError> {
        let mut config = Self::default();
        for layer in layers {
            let layer = layer.clone();
            config.listen = layer.listen.unwrap_or(config.listen);
            config.data_dir = layer.data_dir.unwrap_or(config.data_dir);
            config.plugins_dir = layer.plugins_dir.or(config.plugins_dir);
            config.cache_dir = layer.cache_dir.or(config.cache_dir);
            config.durability = layer.durability.unwrap_or(config.durability);
            config.max_concurrent_jobs = layer
                .max_concurrent_jobs
                .unwrap_or(config.max_concurrent_jobs);
            config.max_body_bytes = layer.max_body_bytes.unwrap_or(config.max_body_bytes);
            if let Some(ms) = layer.request_timeout_ms {
                config.request_timeout = Duration::from_millis(ms);
            }
            if let Some(ms) = layer.shutdown_grace_ms {
                config.shutdown_grace = Duration::from_millis(ms);
            }
            config.cors_origins = layer.cors_origins.unwrap_or(config.cors_origins);
            config.tokens = layer.tokens.unwrap_or(config.tokens);
            if let Some(ms) = layer.compile_timeout_ms {
                config.compile_timeout = Duration::from_millis(ms);
            }
            if let Some(ms) = layer.idempotency_retention_ms {
                config.idempotency_retention = Duration::from_millis(ms);
            }
            if let Some(days) = layer.retention_days {
                if days == 0 {
                    return Err(ConfigError::Invalid(
                        "retention_days must be at least 1 (leave it out to keep every run)".into(),
                    ));
                }
                config.keep_ended_runs = Some(Duration::from_secs(days.saturating_mul(86_400)));
            }
            if let Some(mb) = layer.min_free_disk_mb {
                config.min_free_disk_bytes = mb.saturating_mul(1 << 20);
            }
            if let Some(mb) = layer.max_run_data_mb {
                if mb == 0 {
                    return Err(ConfigError::Invalid(
                        "max_run_data_mb must be at least 1".into(),
                    ));
                }
                config.max_run_data_bytes = mb.saturating_mul(1 << 20);
            }
            if let Some(flow) = layer.default_flow {
                if !warren_vocabulary::names::is_valid_template_name(&flow) {
                    return Err(ConfigError::Invalid(format!(
                        "default_flow {flow:?} is not a template name"
                    )));
                }
                config.default_flow = flow;
            }
            if let Some(policy) = layer.policy {
                config.policy = policy.apply(config.policy)?;
            }
            if let Some(failures) = layer.breaker_failures {
                if failures == 0 {
                    return Err(ConfigError::Invalid(
                        "breaker_failures must be at least 1".into(),
                    ));
                }
                config.breakers.failures = failures;
            }
            if let Some(ms) = layer.breaker_cooldown_ms {
                config.breakers.cooldown = Duration::from_millis(ms);
            }
            if let Some(guards) = layer.default_guards {
                if let Some(bad) = guards.iter().find(|g| !names::is_valid_plugin_name(g)) {
                    return Err(ConfigError::Invalid(format!(
                        "default_guards: {bad:?} is not a plugin name"
                    )));
                }
                config.guards.default_guards = guards;
            }
            for (guard, settings) in layer.guards.into_iter().flatten() {
                let pairs = settings
                    .into_iter()
                    .map(|(key, value)| {
                        let value = match value {
                            GuardSetting::Text(text) => text,
                            GuardSetting::List(words) => words.join(","),
                        };
                        (key, value)
                    })
                    .collect();
                config.guards.settings.insert(guard, pairs);
            }
            for (name, source) in layer.secrets.iter().flatten() {
                let secret = source.read(name)?;
                config.policy.secrets.retain(|s| s.name != secret.name);
                config.policy.secrets.push(secret);
            }
            // Read after this layer's secrets: a model's key names one.
            for (name, source) in layer.models.iter().flatten() {
                let model = source.endpoint(name, &config.policy.secrets)?;
                config.policy.models.retain(|m| m.name != model.name);
                config.policy.models.push(model);
            }
        }
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), ConfigError> {
        if self.tokens.is_empty() && !self.listen.ip().is_loopback() {
            return Err(ConfigError::Invalid(format!(
                "refusing to listen on {} without any token: configure `tokens` (or WARREN_TOKENS), or listen on a loopback address",
                self.listen
            )));
        }
        if let Some(token) = self.tokens.iter().find(|t| t.token.len() < 16) {
            return Err(ConfigError::Invalid(format!(
                "token {:?} is shorter than 16 characters",
                token.name
            )));
        }
        if self.max_concurrent_jobs == 0 || self.max_body_bytes == 0 {
            return Err(ConfigError::Invalid(
                "max_concurrent_jobs and max_body_bytes must be above 0".into(),
            ));
        }
        // Stored as Unix milliseconds: a longer window would overflow them.
        if self.idempotency_retention.is_zero()
            || self.idempotency_retention > MAX_IDEMPOTENCY_RETENTION
        {
            return Err(ConfigError::Invalid(format!(
                "idempotency_retention_ms must be from 1 to {} (10 years)",
                MAX_IDEMPOTENCY_RETENTION.as_millis()
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_layers_win_and_unset_fields_keep_earlier_ones() {
        let file: Layer = toml::from_str(
            r#"
            listen = "127.0.0.1:9000"
            data_dir = "from-file"
            durability = "full"
            [[tokens]]
            name = "ops"
            token = "0123456789abcdef-admin"
            role = "admin"
            "#,
        )
        .expect("valid");
        let env =
            Layer::from_env(|name| (name == "WARREN_DATA_DIR").then(|| "from-env".to_owned()))
                .expect("valid");
        let flags = Layer {
            listen: Some("127.0.0.1:9100".parse().expect("valid")),
            ..Layer::default()
        };
        let config = ServeConfig::resolve(&[file, env, flags]).expect("valid");
        assert_eq!(config.listen.port(), 9100);
        assert_eq!(config.data_dir, PathBuf::from("from-env"));
        assert_eq!(config.durability, Durability::Full);
        assert_eq!(config.tokens.len(), 1);
        assert_eq!(config.tokens[0].role, Role::Admin);
    }

    #[test]
    fn the_idempotency_retention_defaults_to_a_day_and_can_be_set() {
        let config = ServeConfig::resolve(&[]).expect("defaults");
        assert_eq!(config.idempotency_retention, Duration::from_secs(86_400));
        let file: Layer = toml::from_str("idempotency_retention_ms = 60000").expect("valid");
        let env = Layer::from_env(|name| {
            (name == "WARREN_IDEMPOTENCY_RETENTION_MS").then(|| "1500".to_owned())
        })
        .expect("valid");
        let config = ServeConfig::resolve(std::slice::from_ref(&file)).expect("valid");
        assert_eq!(config.idempotency_retention, Duration::from_secs(60));
        let config = ServeConfig::resolve(&[file, env]).expect("valid");
        assert_eq!(config.idempotency_retention, Duration::from_millis(1500));
        for refused in [
            "idempotency_retention_ms = 0",
            "idempotency_retention_ms = 1000000000000",
        ] {
            let layer: Layer = toml::from_str(refused).expect("parses");
            let error = ServeConfig::resolve(&[layer])
                .expect_err("refused")
                .to_string();
            assert!(error.contains("idempotency_retention_ms"), "{error}");
        }
    }

    #[test]
    fn a_runs_data_total_defaults_to_256_mib_and_can_be_set() {
        let defaults = ServeConfig::resolve(&[]).expect("defaults");
        assert_eq!(defaults.max_run_data_bytes, 256 << 20);
        let file: Layer = toml::from_str("max_run_data_mb = 2048").expect("valid");
        let env =
            Layer::from_env(|name| (name == "WARREN_MAX_RUN_DATA_MB").then(|| "64".to_owned()))
                .expect("valid");
        let config = ServeConfig::resolve(std::slice::from_ref(&file)).expect("valid");
        assert_eq!(config.max_run_data_bytes, 2 << 30);
        let config = ServeConfig::resolve(&[file, env]).expect("valid");
        assert_eq!(config.max_run_data_bytes, 64 << 20);
        let zero: Layer = toml::from_str("max_run_data_mb = 0").expect("parses");
        let error = ServeConfig::resolve(&[zero])
            .expect_err("refused")
            .to_string();
        assert!(
            error.contains("max_run_data_mb must be at least 1"),
            "{error}"
        );
    }

    #[test]
    fn guards_and_spawn_limits_are_settings() {
        let layer: Layer = toml::from_str(
            r#"
            default_guards = ["reflex"]
            [policy]
            max_spawn_depth = 2
            max_spawned_per_run = 50
            [guards.reflex]
            off = ["pii.phone", "pii.ssn"]
            mode = "strict"
            "#,
        )
        .expect("parses");
        let config = ServeConfig::resolve(&[layer]).expect("valid");
        assert_eq!(config.guards.default_guards, ["reflex"]);
        assert_eq!(
            config.guards.settings["reflex"],
            [
                ("mode".to_owned(), "strict".to_owned()),
                ("off".to_owned(), "pii.phone,pii.ssn".to_owned())
            ]
        );
        assert_eq!(
            (
                config.policy.max_spawn_depth,
                config.policy.max_spawned_per_run
            ),
            (2, 50)
        );
        let defaults = ServeConfig::resolve(&[]).expect("defaults");
        assert_eq!(
            (
                defaults.policy.max_spawn_depth,
                defaults.policy.max_spawned_per_run
            ),
            (4, 1_000)
        );
        for (refused, says) in [
            (
                "[policy]\nmax_spawn_depth = 0",
                "max_spawn_depth must be from 1 to 16",
            ),
            (
                "[policy]\nmax_spawn_depth = 17",
                "max_spawn_depth must be from 1 to 16",
            ),
            (
                "[policy]\nmax_spawned_per_run = 100001",
                "max_spawned_per_run must be at most",
            ),
            ("default_guards = [\"a b\"]", "is not a plugin name"),
        ] {
            let layer: Layer = toml::from_str(refused).expect("parses");
            let error = ServeConfig::resolve(&[layer])
                .expect_err(refused)
                .to_string();
            assert!(error.contains(says), "{refused}: {error}");
        }
    }

    #[test]
    fn bad_settings_are_refused_with_the_reason() {
        let open = Layer {
            listen: Some("0.0.0.0:8080".parse().expect("valid")),
            ..Layer::default()
        };
        let error = ServeConfig::resolve(&[open])
            .expect_err("refused")
            .to_string();
        assert!(error.contains("without any token"), "{error}");

        let error = toml::from_str::<Layer>("listen = \"x\"\nport = 1").expect_err("refused");
        assert!(error.to_string().contains("port") || error.to_string().contains("listen"));

        let error = Layer::from_env(|name| {
            (name == "WARREN_TOKENS").then(|| "ops:root:0123456789abcdef".to_owned())
        })
        .expect_err("refused")
        .to_string();
        assert!(error.contains("WARREN_TOKENS"), "{error}");

        let short =
            Layer::from_env(|name| (name == "WARREN_TOKENS").then(|| "ops:admin:short".to_owned()))
                .expect("valid");
        let error = ServeConfig::resolve(&[short])
            .expect_err("refused")
            .to_string();
        assert!(error.contains("shorter than 16"), "{error}");
    }

    #[test]
    fn secrets_are_read_from_files_and_refused_with_a_reason_that_never_shows_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("key");
        std::fs::write(&file, "sk-file-value\n").expect("write");
        let text = format!(
            "[secrets.model_key]\nfile = {:?}\nhosts = [\"API.example.com\"]\n",
            file
        );
        let layer: Layer = toml::from_str(&text).expect("parses");
        let config = ServeConfig::resolve(&[layer]).expect("valid");
        let secret = &config.policy.secrets[0];
        assert_eq!(secret.name, "model_key");
        assert_eq!(secret.value.expose(), "sk-file-value");
        assert_eq!(secret.hosts, vec!["api.example.com".to_owned()]);
        assert!(
            !format!("{config:?}").contains("sk-file-value"),
            "Debug shows no value"
        );
        for (text, why) in [
            (
                "[secrets.k]\nhosts = [\"a\"]\n",
                "exactly one of `env` and `file`",
            ),
            (
                "[secrets.k]\nenv = \"WARREN_TEST_UNSET_VARIABLE\"\nhosts = [\"a\"]\n",
                "WARREN_TEST_UNSET_VARIABLE is not set",
            ),
            ("[secrets.k]\nenv = \"PATH\"\n", "`hosts` names none"),
            (
                "[secrets.\"a-b\"]\nenv = \"PATH\"\nhosts = [\"a\"]\n",
                "letters, digits or `_`",
            ),
            (
                "[secrets.k]\nenv = \"PATH\"\nhosts = [\"llm.example.com\"]\n\
                 [models.m]\nbase_url = \"http://127.0.0.1:9/v1\"\nmodel = \"x\"\napi_key_secret = \"k\"\n",
                "secret \"k\" may not be sent to 127.0.0.1",
            ),
        ] {
            let layer: Layer = toml::from_str(text).expect("parses");
            let error = ServeConfig::resolve(&[layer]).expect_err(text).to_string();
            assert!(error.contains(why), "{text}: {error}");
        }
    }
}
