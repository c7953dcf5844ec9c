//! What a plugin version's attempts may use. Warren's server resolves
//! grants from the plugin's manifest capped by the operator's policy; the
//! sandbox only applies them.

use std::path::PathBuf;

use serde::Serialize;
use warren_vocabulary::{Limits, LimitsSpec, MemoryScope};

/// What one plugin version may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grants {
    /// The most a job of this plugin may ask for.
    pub limits: Limits,
    /// What a job gets when its pipeline asks for nothing.
    pub default_limits: Limits,
    pub memory: Vec<MemoryScope>,
    pub spawn: bool,
    pub directories: Vec<DirectoryGrant>,
    /// Where its attempts may send HTTP requests; nowhere when empty.
    pub outbound: Vec<OutboundGrant>,
    /// Secrets its requests may carry, by placeholder.
    pub secrets: Vec<SecretGrant>,
    /// Models its attempts may call.
    pub models: Vec<ModelEndpoint>,
    /// When its circuit breaker opens; none without one.
    pub breaker: Option<PluginBreakerSettings>,
    /// What the manifest asked for and did not get, and why.
    pub capped: Vec<String>,
}

/// A plugin's circuit breaker: after `failures` failed attempts in a row
/// (over every run), its new attempts wait (or fail at once, with
/// `fail_fast`) for `cooldown_ms`; then one probe runs, and its end closes
/// the breaker or opens it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginBreakerSettings {
    pub failures: u32,
    pub cooldown_ms: u64,
    #[serde(default)]
    pub fail_fast: bool,
}

/// Requests a plugin may send: to `host` (exact, or `*.example.com` for
/// its subdomains), over these schemes, to these ports, with these
/// methods (any when a list is empty).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutboundGrant {
    pub host: String,
    pub schemes: Vec<String>,
    pub ports: Vec<u16>,
    pub methods: Vec<String>,
}

impl OutboundGrant {
    /// Whether a request to `scheme://host:port` with `method` is granted.
    pub fn allows(&self, scheme: &str, host: &str, port: u16, method: &str) -> bool {
        host_matches(&self.host, host)
            && (self.schemes.is_empty()
                || self.schemes.iter().any(|s| s.eq_ignore_ascii_case(scheme)))
            && (self.ports.is_empty() || self.ports.contains(&port))
            && (self.methods.is_empty()
                || self.methods.iter().any(|m| m.eq_ignore_ascii_case(method)))
    }

    /// Whether everything `self` allows, `other` allowed.
    pub fn within(&self, other: &OutboundGrant) -> bool {
        let covered = |mine: &[String], theirs: &[String]| {
            theirs.is_empty()
                || (!mine.is_empty()
                    && mine
                        .iter()
                        .all(|m| theirs.iter().any(|t| t.eq_ignore_ascii_case(m))))
        };
        (other.host.eq_ignore_ascii_case(&self.host)
            || (!self.host.starts_with("*.") && host_matches(&other.host, &self.host)))
            && covered(&self.schemes, &other.schemes)
            && covered(&self.methods, &other.methods)
            && (other.ports.is_empty()
                || (!self.ports.is_empty() && self.ports.iter().all(|p| other.ports.contains(p))))
    }
}

/// A secret a plugin's requests may carry: the guest sees a placeholder
/// (in `WARREN_SECRET_<NAME>`), and the host puts the value in its place
/// in request headers, only on requests to `hosts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretGrant {
    pub name: String,
    pub value: SecretValue,
    /// Host names (or `*.example.com`) the value may be sent to.
    pub hosts: Vec<String>,
    /// Whether it may go over plain `http` too (else only `https`).
    pub allow_http: bool,
}

impl SecretGrant {
    /// The environment variable the guest finds the placeholder in.
    pub fn variable(&self) -> String {
        format!("WARREN_SECRET_{}", self.name.to_ascii_uppercase())
    }

    /// Whether the value may be sent to `host` over `scheme`.
    pub fn may_go_to(&self, scheme: &str, host: &str) -> bool {
        (scheme.eq_ignore_ascii_case("https") || self.allow_http)
            && self.hosts.iter().any(|pattern| host_matches(pattern, host))
    }
}

/// A model the operator configured: an OpenAI-compatible chat completions
/// endpoint, its model, and the secret that is its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelEndpoint {
    /// What plugins call it by.
    pub name: String,
    /// Up to `/v1`: calls go to `{base_url}/chat/completions`.
    pub base_url: String,
    /// The endpoint's name for the model.
    pub model: String,
    pub api_key: Option<SecretValue>,
    /// Longest a call may take (also bounded by the job's deadline).
    pub timeout: std::time::Duration,
}

/// A secret's value: kept in the host's memory only, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(std::sync::Arc<str>);

impl SecretValue {
    pub fn new(value: &str) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<secret>")
    }
}

/// Whether `host` matches `pattern`: the same name (case aside), or for
/// `*.example.com` a name ending in `.example.com` (not the bare domain).
pub fn host_matches(pattern: &str, host: &str) -> bool {
    let host = host.trim_end_matches('.');
    match pattern.strip_prefix("*.") {
        Some(domain) => {
            let Some(split) = host.len().checked_sub(domain.len() + 1) else {
                return false;
            };
            split > 0
                && host.get(split..split + 1) == Some(".")
                && host
                    .get(split + 1..)
                    .is_some_and(|tail| tail.eq_ignore_ascii_case(domain))
        }
        None => pattern.eq_ignore_ascii_case(host),
    }
}

/// A host directory preopened for the plugin's attempts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DirectoryGrant {
    /// Canonical host path.
    pub host: PathBuf,
    pub guest: String,
    pub writable: bool,
}

impl Default for Grants {
    /// What a plugin without manifest gets under the default policy: every
    /// memory scope, spawning, no host directory, the default limits and
    /// ceiling.
    fn default() -> Self {
        Self {
            limits: Limits::default_ceiling(),
            default_limits: Limits::default(),
            memory: vec![MemoryScope::Run, MemoryScope::Story, MemoryScope::Agent],
            spawn: true,
            directories: Vec::new(),
            outbound: Vec::new(),
            secrets: Vec::new(),
            models: Vec::new(),
            breaker: None,
            capped: Vec::new(),
        }
    }
}

impl Grants {
    /// What `self` may use that `before` could not: a larger limit, a new
    /// memory scope, spawning, a directory or write access to one.
    pub fn escalations_over(&self, before: &Grants) -> Vec<String> {
        let mut more = Vec::new();
        let now = LimitsSpec::from(&self.limits);
        let then = LimitsSpec::from(&before.limits);
        for ((name, now), (_, then)) in now.fields().into_iter().zip(then.fields()) {
            if now > then {
                more.push(format!(
                    "{name}: {} (was {})",
                    now.unwrap_or_default(),
                    then.unwrap_or_default()
                ));
            }
        }
        for scope in &self.memory {
            if !before.memory.contains(scope) {
                more.push(format!("memory scope {}", scope.as_str()));
            }
        }
        if self.spawn && !before.spawn {
            more.push("spawn".into());
        }
        for grant in &self.outbound {
            if !before.outbound.iter().any(|old| grant.within(old)) {
                more.push(format!("outbound {}", grant.host));
            }
        }
        for model in &self.models {
            if !before.models.iter().any(|old| old.name == model.name) {
                more.push(format!("model {}", model.name));
            }
        }
        for secret in &self.secrets {
            let had = before.secrets.iter().any(|old| {
                old.name == secret.name && secret.hosts.iter().all(|h| old.hosts.contains(h))
            });
            if !had {
                more.push(format!("secret {}", secret.name));
            }
        }
        for dir in &self.directories {
            let had = before.directories.iter().any(|old| {
                old.host == dir.host && old.guest == dir.guest && (old.writable || !dir.writable)
            });
            if !had {
                let access = if dir.writable {
                    "read-write"
                } else {
                    "read-only"
                };
                more.push(format!(
                    "directory {} at {} ({access})",
                    dir.host.display(),
                    dir.guest
                ));
            }
        }
        more
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(host: &str, schemes: &[&str], ports: &[u16], methods: &[&str]) -> OutboundGrant {
        OutboundGrant {
            host: host.into(),
            schemes: schemes.iter().map(|s| (*s).into()).collect(),
            ports: ports.to_vec(),
            methods: methods.iter().map(|s| (*s).into()).collect(),
        }
    }

    #[test]
    fn wildcards_match_subdomains_only() {
        assert!(host_matches("*.example.com", "api.example.com"));
        assert!(host_matches("*.example.com", "a.b.Example.COM"));
        assert!(!host_matches("*.example.com", "example.com"));
        assert!(!host_matches("*.example.com", "badexample.com"));
        assert!(!host_matches("*.example.com", "é.example.co"));
        assert!(host_matches("api.example.com", "API.example.com."));
        assert!(!host_matches("api.example.com", "api.example.com.evil"));
    }

    #[test]
    fn a_grant_checks_scheme_port_and_method() {
        let g = grant("api.example.com", &["https"], &[443], &["GET"]);
        assert!(g.allows("https", "api.example.com", 443, "get"));
        assert!(!g.allows("http", "api.example.com", 443, "GET"));
        assert!(!g.allows("https", "api.example.com", 8443, "GET"));
        assert!(!g.allows("https", "api.example.com", 443, "POST"));
        assert!(!g.allows("https", "other.example.com", 443, "GET"));
        assert!(grant("*.example.com", &[], &[], &[]).allows("http", "x.example.com", 1, "PUT"));
    }

    #[test]
    fn a_secret_goes_over_https_to_its_hosts_and_over_http_only_when_allowed() {
        let mut secret = SecretGrant {
            name: "k".into(),
            value: SecretValue::new("v"),
            hosts: vec!["api.example.com".into()],
            allow_http: false,
        };
        assert!(secret.may_go_to("https", "api.example.com"));
        assert!(!secret.may_go_to("http", "api.example.com"));
        assert!(!secret.may_go_to("https", "other.example.com"));
        secret.allow_http = true;
        assert!(secret.may_go_to("http", "api.example.com"));
        assert_eq!(format!("{:?}", secret.value), "<secret>");
    }

    #[test]
    fn a_narrower_grant_is_within_a_wider_one() {
        let wide = grant("*.example.com", &[], &[], &[]);
        let narrow = grant("api.example.com", &["https"], &[443], &["GET"]);
        assert!(narrow.within(&wide));
        assert!(!wide.within(&narrow));
        assert!(narrow.within(&narrow));
        assert!(!grant("api.example.com", &[], &[443], &[]).within(&narrow));
    }
}
