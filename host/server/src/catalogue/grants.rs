//! What a plugin version may use. Its manifest (`NAME.toml` beside
//! `NAME.wasm`) asks; the operator's policy (`[policy]` in `warren.toml`)
//! caps every value; what is left, the grants, is what its attempts get.

use std::path::{Component as PathPart, Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use warren_sandbox::plugin::grants::{
    DirectoryGrant, Grants, ModelEndpoint, OutboundGrant, PluginBreakerSettings, SecretGrant,
    SecretValue, host_matches,
};
use warren_vocabulary::{Limits, LimitsSpec, MemoryScope, PluginKind};

/// The optional manifest beside a plugin file. Everything is optional; what
/// it leaves out, the policy decides.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Must be the file's name without `.wasm` when given.
    pub name: Option<String>,
    /// A label for people (`1.2.0`); versions are told apart by digest.
    pub version: Option<String>,
    pub description: Option<String>,
    /// Must match the world the component exports when given.
    pub kind: Option<PluginKind>,
    /// Limits its attempts need: they become its jobs' defaults.
    #[serde(default)]
    pub limits: LimitsSpec,
    /// Memory scopes it uses; all the policy allows when left out.
    pub memory: Option<Vec<MemoryScope>>,
    /// Whether it spawns jobs; as the policy allows when left out.
    pub spawn: Option<bool>,
    /// Host directories it needs, beyond its own scratch space.
    #[serde(default)]
    pub directories: Vec<DirectoryRequest>,
    /// `[[outbound]]`: where it sends HTTP requests. Nowhere when left out.
    #[serde(default)]
    pub outbound: Vec<OutboundRequest>,
    /// Secrets (by the names the operator declared them under) its
    /// requests carry.
    #[serde(default)]
    pub secrets: Vec<String>,
    /// Models (by the names the operator configured them under) it calls.
    #[serde(default)]
    pub models: Vec<String>,
    /// Its circuit breaker (within `[policy.plugin_breaker]`).
    pub breaker: Option<PluginBreakerSettings>,
}

/// A destination a manifest asks to send HTTP requests to.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OutboundRequest {
    /// A host name, or `*.example.com` for its subdomains.
    pub host: String,
    /// One port; any the policy allows when left out.
    pub port: Option<u16>,
    /// `https` or `http`; either (as the policy allows) when left out.
    pub scheme: Option<String>,
    /// Methods (`GET`, `POST`...); any the policy allows when left out.
    #[serde(default)]
    pub methods: Vec<String>,
}

/// `[policy.outbound]`: where any plugin may be granted to send requests.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OutboundRule {
    /// Host names, or `*.example.com` for the subdomains of one.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Allowed ports; any when empty.
    #[serde(default)]
    pub ports: Vec<u16>,
    /// Allowed methods; any when empty.
    #[serde(default)]
    pub methods: Vec<String>,
    /// Allowed schemes; `https` and `http` when empty.
    #[serde(default)]
    pub schemes: Vec<String>,
}

impl Manifest {
    pub fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }
}

/// A host directory a manifest asks to see at `guest`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DirectoryRequest {
    pub host: PathBuf,
    pub guest: String,
    #[serde(default)]
    pub writable: bool,
}

/// A host directory the policy lets plugins be given (it and below).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DirectoryRule {
    pub host: PathBuf,
    #[serde(default)]
    pub writable: bool,
}

/// The operator's caps on every plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The most any attempt of any plugin may use.
    pub max_limits: Limits,
    /// Limits of a job whose pipeline and manifest ask for none.
    pub default_limits: Limits,
    pub memory: Vec<MemoryScope>,
    pub spawn: bool,
    pub directories: Vec<DirectoryRule>,
    /// Where plugins may be granted to send requests: nowhere by default.
    pub outbound: OutboundRule,
    /// Secrets the operator declared (`[secrets.NAME]`), values in memory.
    pub secrets: Vec<SecretGrant>,
    /// Models the operator configured (`[models.NAME]`).
    pub models: Vec<ModelEndpoint>,
    /// Deepest chain of spawned jobs.
    pub max_spawn_depth: u32,
    /// Jobs one run may spawn in all.
    pub max_spawned_per_run: u32,
    /// The most any run may use, over its own and its pipeline's budget.
    pub max_run_budget: warren_vocabulary::RunBudget,
    /// Every plugin's breaker, and the loosest a manifest may ask for.
    pub plugin_breaker: Option<PluginBreakerSettings>,
}

impl Default for Policy {
    /// What every plugin could use before manifests existed (and the
    /// `agent` memory scope, added since): every memory scope, spawning, no
    /// host directory, the engine's limits.
    fn default() -> Self {
        Self {
            max_limits: Limits::default_ceiling(),
            default_limits: Limits::default(),
            memory: vec![MemoryScope::Run, MemoryScope::Story, MemoryScope::Agent],
            spawn: true,
            directories: Vec::new(),
            outbound: OutboundRule::default(),
            secrets: Vec::new(),
            models: Vec::new(),
            max_spawn_depth: warren_sandbox::runtime::DEFAULT_MAX_SPAWN_DEPTH,
            max_spawned_per_run: DEFAULT_MAX_SPAWNED_PER_RUN,
            max_run_budget: warren_vocabulary::RunBudget::default(),
            plugin_breaker: None,
        }
    }
}

/// Guest paths Warren itself preopens; a directory cannot take them.
const RESERVED_GUEST_PATHS: [&str; 3] = [
    warren_sandbox::capabilities::wasi::WORK_DIR,
    warren_sandbox::capabilities::wasi::IN_DIR,
    warren_sandbox::capabilities::wasi::OUT_DIR,
];

/// The grants of a version with `manifest` under `policy`.
pub fn grant(manifest: Option<&Manifest>, policy: &Policy) -> Grants {
    let mut capped = Vec::new();
    let asked = manifest.map(|m| m.limits).unwrap_or_default();
    let (limits, default_limits) = grant_limits(&asked, policy, &mut capped);

    let memory = match manifest.and_then(|m| m.memory.as_ref()) {
        None => policy.memory.clone(),
        Some(asked) => {
            let mut granted: Vec<MemoryScope> = Vec::new();
            for scope in asked {
                if !policy.memory.contains(scope) {
                    capped.push(format!(
                        "memory scope {}: not allowed by policy",
                        scope.as_str()
                    ));
                } else if !granted.contains(scope) {
                    granted.push(*scope);
                }
            }
            granted.sort();
            granted
        }
    };
    let spawn = match manifest.and_then(|m| m.spawn) {
        Some(true) if !policy.spawn => {
            capped.push("spawn: not allowed by policy".into());
            false
        }
        Some(asked) => asked,
        None => policy.spawn,
    };
    let mut directories = Vec::new();
    for request in manifest.map_or(&[][..], |m| &m.directories) {
        match grant_directory(request, policy) {
            Ok((granted, note)) => {
                capped.extend(note);
                directories.push(granted);
            }
            Err(reason) => capped.push(format!(
                "directory {} at {}: {reason}",
                request.host.display(),
                request.guest
            )),
        }
    }
    let mut outbound = Vec::new();
    for request in manifest.map_or(&[][..], |m| &m.outbound) {
        match grant_outbound(request, &policy.outbound) {
            Ok(granted) => outbound.push(granted),
            Err(reason) => capped.push(format!("outbound {}: {reason}", request.host)),
        }
    }
    let mut secrets: Vec<SecretGrant> = Vec::new();
    for name in manifest.map_or(&[][..], |m| &m.secrets) {
        match policy.secrets.iter().find(|s| &s.name == name) {
            Some(secret) if !secrets.iter().any(|s| &s.name == name) => {
                secrets.push(secret.clone())
            }
            Some(_) => {}
            None => capped.push(format!("secret {name}: not declared by the operator")),
        }
    }
    let mut models: Vec<ModelEndpoint> = Vec::new();
    for name in manifest.map_or(&[][..], |m| &m.models) {
        match policy.models.iter().find(|m| &m.name == name) {
            Some(model) if !models.iter().any(|m| &m.name == name) => models.push(model.clone()),
            Some(_) => {}
            None => capped.push(format!("model {name}: not configured by the operator")),
        }
    }
    let asked_breaker = manifest.and_then(|m| m.breaker).filter(|b| {
        let usable = b.failures > 0;
        if !usable {
            capped.push("breaker: failures must be at least 1".into());
        }
        usable
    });
    let breaker = grant_breaker(asked_breaker, policy.plugin_breaker);
    Grants {
        limits,
        default_limits,
        memory,
        spawn,
        directories,
        outbound,
        secrets,
        models,
        breaker,
        capped,
    }
}

/// A plugin's breaker: the manifest's, never looser than the policy's (no
/// more failures, no shorter cool-down); the policy's when the manifest
/// has none.
fn grant_breaker(
    asked: Option<PluginBreakerSettings>,
    policy: Option<PluginBreakerSettings>,
) -> Option<PluginBreakerSettings> {
    match (asked, policy) {
        (Some(asked), Some(policy)) => Some(PluginBreakerSettings {
            failures: asked.failures.min(policy.failures),
            cooldown_ms: asked.cooldown_ms.max(policy.cooldown_ms),
            fail_fast: asked.fail_fast,
        }),
        (asked, policy) => asked.or(policy),
    }
}

/// A manifest's destination under the policy: its host must be one the
/// policy names (or under one of its wildcards), and what it leaves open
/// the policy's lists close.
fn grant_outbound(request: &OutboundRequest, rule: &OutboundRule) -> Result<OutboundGrant, String> {
    let host = request.host.trim().to_ascii_lowercase();
    let valid = |name: &str| {
        !name.is_empty()
            && name.len() <= 253
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b':' | b'[' | b']'))
    };
    let bare = host.strip_prefix("*.").unwrap_or(&host);
    if !valid(bare) {
        return Err("not a host name (letters, digits, `-`, `.`, or `*.` before a domain)".into());
    }
    let allowed = rule.hosts.iter().any(|pattern| {
        pattern.eq_ignore_ascii_case(&host)
            || (!host.starts_with("*.") && host_matches(pattern, &host))
            || (host.starts_with("*.") && pattern.starts_with("*.") && host_matches(pattern, bare))
    });
    if !allowed {
        return Err("not allowed by policy".into());
    }
    let schemes: Vec<String> = match &request.scheme {
        Some(scheme) => {
            let scheme = scheme.to_ascii_lowercase();
            if scheme != "https" && scheme != "http" {
                return Err(format!("scheme {scheme:?} is not https or http"));
            }
            if !rule.schemes.is_empty()
                && !rule.schemes.iter().any(|s| s.eq_ignore_ascii_case(&scheme))
            {
                return Err(format!("scheme {scheme}: not allowed by policy"));
            }
            vec![scheme]
        }
        None => rule
            .schemes
            .iter()
            .map(|s| s.to_ascii_lowercase())
            .collect(),
    };
    let ports = match request.port {
        Some(port) if !rule.ports.is_empty() && !rule.ports.contains(&port) => {
            return Err(format!("port {port}: not allowed by policy"));
        }
        Some(port) => vec![port],
        None => rule.ports.clone(),
    };
    let methods = if request.methods.is_empty() {
        rule.methods
            .iter()
            .map(|m| m.to_ascii_uppercase())
            .collect()
    } else {
        let mut methods = Vec::new();
        for method in &request.methods {
            let method = method.to_ascii_uppercase();
            if !rule.methods.is_empty()
                && !rule.methods.iter().any(|m| m.eq_ignore_ascii_case(&method))
            {
                return Err(format!("method {method}: not allowed by policy"));
            }
            methods.push(method);
        }
        methods
    };
    Ok(OutboundGrant {
        host,
        schemes,
        ports,
        methods,
    })
}

/// Jobs one run may spawn in all, by default.
pub const DEFAULT_MAX_SPAWNED_PER_RUN: u32 = 1_000;

/// The least a version can be given: the policy's default limits as its
/// ceiling, no memory, no spawning, no directory.
pub fn least(policy: &Policy) -> Grants {
    Grants {
        limits: policy.default_limits.clone(),
        default_limits: policy.default_limits.clone(),
        memory: Vec::new(),
        spawn: false,
        directories: Vec::new(),
        outbound: Vec::new(),
        secrets: Vec::new(),
        models: Vec::new(),
        breaker: policy.plugin_breaker,
        capped: vec!["its stored manifest no longer parses: least grants".into()],
    }
}

/// Ceiling and defaults: a value the manifest asks for is both (capped by
/// the policy); one it leaves out is the policy's.
fn grant_limits(asked: &LimitsSpec, policy: &Policy, capped: &mut Vec<String>) -> (Limits, Limits) {
    let max = LimitsSpec::from(&policy.max_limits).fields();
    let defaults = LimitsSpec::from(&policy.default_limits).fields();
    let mut ceiling = [None; LimitsSpec::FIELDS];
    let mut default = [None; LimitsSpec::FIELDS];
    for (i, (name, asked)) in asked.fields().into_iter().enumerate() {
        let cap = max[i].1.unwrap_or(u64::MAX);
        let granted = match asked {
            Some(asked) if asked > cap => {
                capped.push(format!("{name}: asked {asked}, policy allows {cap}"));
                cap
            }
            Some(asked) => asked,
            None => cap,
        };
        ceiling[i] = Some(granted);
        default[i] = Some(match asked {
            Some(_) => granted,
            None => defaults[i].1.unwrap_or(granted).min(granted),
        });
    }
    (
        LimitsSpec::from_fields(ceiling).resolve(&policy.max_limits),
        LimitsSpec::from_fields(default).resolve(&policy.default_limits),
    )
}

fn grant_directory(
    request: &DirectoryRequest,
    policy: &Policy,
) -> Result<(DirectoryGrant, Option<String>), String> {
    let guest = Path::new(&request.guest);
    let clean = guest.is_absolute()
        && guest.components().count() > 1
        && guest
            .components()
            .all(|part| matches!(part, PathPart::RootDir | PathPart::Normal(_)));
    if !clean {
        return Err("the guest path must be absolute, without `.` or `..`".into());
    }
    if RESERVED_GUEST_PATHS
        .iter()
        .any(|reserved| guest.starts_with(reserved))
    {
        return Err("the guest path is one Warren uses".into());
    }
    let host = request
        .host
        .canonicalize()
        .map_err(|e| format!("the host directory cannot be opened: {e}"))?;
    if !host.is_dir() {
        return Err("the host path is not a directory".into());
    }
    let rule = policy
        .directories
        .iter()
        .filter(|rule| {
            rule.host
                .canonicalize()
                .is_ok_and(|root| host.starts_with(root))
        })
        .max_by_key(|rule| rule.writable)
        .ok_or("not under a directory the policy allows")?;
    let writable = request.writable && rule.writable;
    let note = (request.writable && !writable).then(|| {
        format!(
            "directory {} at {}: read-only, the policy does not allow writing",
            request.host.display(),
            request.guest
        )
    });
    Ok((
        DirectoryGrant {
            host,
            guest: request.guest.clone(),
            writable,
        },
        note,
    ))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn manifest(text: &str) -> Manifest {
        Manifest::parse(text).expect("manifest parses")
    }

    #[test]
    fn a_manifest_asking_beyond_policy_is_capped_and_says_so() {
        let policy = Policy {
            memory: vec![MemoryScope::Run],
            spawn: false,
            ..Policy::default()
        };
        let asked = manifest(
            "version = \"2.0\"\nmemory = [\"run\", \"story\"]\nspawn = true\n[limits]\nfuel = 5000000000000\ntimeout_ms = 60000\n",
        );
        let grants = grant(Some(&asked), &policy);
        assert_eq!(grants.limits.fuel, policy.max_limits.fuel);
        assert_eq!(grants.limits.timeout(), Duration::from_secs(60));
        // What the manifest asked for is also the jobs' default.
        assert_eq!(grants.default_limits.timeout(), Duration::from_secs(60));
        assert_eq!(grants.default_limits.fuel, policy.max_limits.fuel);
        // What it left out keeps the policy's default under the ceiling.
        assert_eq!(
            grants.default_limits.memory_bytes,
            policy.default_limits.memory_bytes
        );
        assert_eq!(grants.memory, vec![MemoryScope::Run]);
        assert!(!grants.spawn);
        assert_eq!(
            grants.capped,
            vec![
                "fuel: asked 5000000000000, policy allows 1000000000000".to_owned(),
                "memory scope story: not allowed by policy".to_owned(),
                "spawn: not allowed by policy".to_owned(),
            ]
        );
    }

    #[test]
    fn no_manifest_gets_what_the_policy_allows() {
        let grants = grant(None, &Policy::default());
        assert_eq!(grants.limits, Policy::default().max_limits);
        assert_eq!(grants.default_limits, Limits::default());
        assert_eq!(
            grants.memory,
            vec![MemoryScope::Run, MemoryScope::Story, MemoryScope::Agent]
        );
        assert!(grants.spawn && grants.directories.is_empty() && grants.capped.is_empty());
    }

    #[test]
    fn directories_need_a_policy_rule_and_writing_needs_a_writable_one() {
        let root = tempfile::tempdir().expect("tempdir");
        let shared = root.path().join("shared");
        let other = root.path().join("other");
        std::fs::create_dir_all(shared.join("inner")).expect("dirs");
        std::fs::create_dir_all(&other).expect("dirs");
        let policy = Policy {
            directories: vec![DirectoryRule {
                host: shared.clone(),
                writable: false,
            }],
            ..Policy::default()
        };
        let text = format!(
            "[[directories]]\nhost = {:?}\nguest = \"/data\"\nwritable = true\n\
             [[directories]]\nhost = {:?}\nguest = \"/other\"\n\
             [[directories]]\nhost = {:?}\nguest = \"/out/x\"\n\
             [[directories]]\nhost = {:?}\nguest = \"/a/../b\"\n",
            shared.join("inner"),
            other,
            shared,
            shared
        );
        let grants = grant(Some(&manifest(&text)), &policy);
        assert_eq!(grants.directories.len(), 1, "{grants:?}");
        assert_eq!(grants.directories[0].guest, "/data");
        assert!(!grants.directories[0].writable);
        assert_eq!(grants.capped.len(), 4, "{:?}", grants.capped);
        assert!(grants.capped[0].contains("read-only"));
        assert!(grants.capped[1].contains("not under a directory the policy allows"));
        assert!(grants.capped[2].contains("one Warren uses"));
        assert!(grants.capped[3].contains("without `.` or `..`"));
    }

    #[test]
    fn asking_for_more_than_before_is_an_escalation() {
        let policy = Policy::default();
        let before = grant(
            Some(&manifest(
                "spawn = false\nmemory = [\"run\"]\n[limits]\nfuel = 1000\n",
            )),
            &policy,
        );
        let same = grant(
            Some(&manifest(
                "spawn = false\nmemory = [\"run\"]\n[limits]\nfuel = 900\n",
            )),
            &policy,
        );
        assert!(same.escalations_over(&before).is_empty());
        let more = grant(
            Some(&manifest(
                "spawn = true\nmemory = [\"run\", \"story\"]\n[limits]\nfuel = 2000\n",
            )),
            &policy,
        );
        assert_eq!(
            more.escalations_over(&before),
            vec!["fuel: 2000 (was 1000)", "memory scope story", "spawn"]
        );
    }

    #[test]
    fn manifests_refuse_unknown_fields() {
        assert!(Manifest::parse("nmae = \"x\"").is_err());
        assert!(Manifest::parse("[limits]\nfuel = \"lots\"").is_err());
    }
}
