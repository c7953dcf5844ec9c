//! What one attempt may use: the effective [`Limits`] (stored with each job,
//! in milliseconds and bytes) and the [`LimitsSpec`] a pipeline, manifest or
//! command line asks for.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Per-attempt limits. Defaults are small and safe; a caller asks for more
/// explicitly. A stored value without a field (written before it existed)
/// takes the field's default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Limits {
    /// Fuel budget (roughly one unit per wasm instruction).
    pub fuel: u64,
    /// Cap on the sum of the guest's linear memories.
    pub memory_bytes: u64,
    /// Wall-clock deadline for the whole attempt.
    pub timeout_ms: u64,
    /// Cap on the JSON output.
    pub max_output_bytes: usize,
    /// Cap on captured log (log lines, stdout and stderr together).
    pub max_log_bytes: usize,
    /// Cap on the bytes of all artifacts the attempt stores.
    pub max_artifact_bytes: u64,
    /// Cap on the jobs one attempt may spawn.
    pub max_spawned_jobs: u32,
    /// Cap on the bytes the attempt writes to disk (`/work`, `/out`, any
    /// writable granted folder), overwrites included, deletions given back.
    pub max_disk_bytes: u64,
    /// Cap on the files, folders and links the attempt creates there.
    pub max_disk_files: u64,
    /// Cap on the model tokens (prompt and completion) the attempt's model
    /// calls use.
    pub max_tokens: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            fuel: 10_000_000_000,
            memory_bytes: 64 << 20,
            timeout_ms: 30_000,
            max_output_bytes: 1 << 20,
            max_log_bytes: 256 << 10,
            max_artifact_bytes: 64 << 20,
            max_spawned_jobs: 16,
            max_disk_bytes: 256 << 20,
            max_disk_files: 10_000,
            max_tokens: 100_000,
        }
    }
}

impl Limits {
    /// The most any attempt may use unless the operator says otherwise.
    pub fn default_ceiling() -> Self {
        Self {
            fuel: 1_000_000_000_000,
            memory_bytes: 1 << 30,
            timeout_ms: 3_600_000,
            max_output_bytes: 16 << 20,
            max_log_bytes: 16 << 20,
            max_artifact_bytes: 1 << 30,
            max_spawned_jobs: 1_000,
            max_disk_bytes: 16 << 30,
            max_disk_files: 1_000_000,
            max_tokens: 10_000_000,
        }
    }

    /// The deadline as a duration.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// Every value capped at `ceiling`'s.
    pub fn capped_at(&self, ceiling: &Limits) -> Limits {
        Limits {
            fuel: self.fuel.min(ceiling.fuel),
            memory_bytes: self.memory_bytes.min(ceiling.memory_bytes),
            timeout_ms: self.timeout_ms.min(ceiling.timeout_ms),
            max_output_bytes: self.max_output_bytes.min(ceiling.max_output_bytes),
            max_log_bytes: self.max_log_bytes.min(ceiling.max_log_bytes),
            max_artifact_bytes: self.max_artifact_bytes.min(ceiling.max_artifact_bytes),
            max_spawned_jobs: self.max_spawned_jobs.min(ceiling.max_spawned_jobs),
            max_disk_bytes: self.max_disk_bytes.min(ceiling.max_disk_bytes),
            max_disk_files: self.max_disk_files.min(ceiling.max_disk_files),
            max_tokens: self.max_tokens.min(ceiling.max_tokens),
        }
    }
}

/// Limits a job asks for; unset values take the defaults they are resolved
/// over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LimitsSpec {
    pub fuel: Option<u64>,
    pub memory_mb: Option<u64>,
    pub timeout_ms: Option<u64>,
    pub max_output_bytes: Option<usize>,
    pub max_log_bytes: Option<usize>,
    pub max_artifact_bytes: Option<u64>,
    pub max_spawned_jobs: Option<u32>,
    pub max_disk_bytes: Option<u64>,
    pub max_disk_files: Option<u64>,
    pub max_tokens: Option<u64>,
}

impl LimitsSpec {
    /// How many fields [`LimitsSpec::fields`] lists.
    pub const FIELDS: usize = 10;

    /// The effective limits over `defaults`.
    pub fn resolve(&self, defaults: &Limits) -> Limits {
        Limits {
            fuel: self.fuel.unwrap_or(defaults.fuel),
            memory_bytes: self.memory_mb.map_or(defaults.memory_bytes, |mb| mb << 20),
            timeout_ms: self.timeout_ms.unwrap_or(defaults.timeout_ms),
            max_output_bytes: self.max_output_bytes.unwrap_or(defaults.max_output_bytes),
            max_log_bytes: self.max_log_bytes.unwrap_or(defaults.max_log_bytes),
            max_artifact_bytes: self
                .max_artifact_bytes
                .unwrap_or(defaults.max_artifact_bytes),
            max_spawned_jobs: self.max_spawned_jobs.unwrap_or(defaults.max_spawned_jobs),
            max_disk_bytes: self.max_disk_bytes.unwrap_or(defaults.max_disk_bytes),
            max_disk_files: self.max_disk_files.unwrap_or(defaults.max_disk_files),
            max_tokens: self.max_tokens.unwrap_or(defaults.max_tokens),
        }
    }

    /// Every field by name, widened to `u64`, in declaration order.
    pub fn fields(&self) -> [(&'static str, Option<u64>); Self::FIELDS] {
        [
            ("fuel", self.fuel),
            ("memory_mb", self.memory_mb),
            ("timeout_ms", self.timeout_ms),
            ("max_output_bytes", self.max_output_bytes.map(|v| v as u64)),
            ("max_log_bytes", self.max_log_bytes.map(|v| v as u64)),
            ("max_artifact_bytes", self.max_artifact_bytes),
            ("max_spawned_jobs", self.max_spawned_jobs.map(u64::from)),
            ("max_disk_bytes", self.max_disk_bytes),
            ("max_disk_files", self.max_disk_files),
            ("max_tokens", self.max_tokens),
        ]
    }

    /// The inverse of [`LimitsSpec::fields`]; values too large for a field
    /// saturate.
    pub fn from_fields(values: [Option<u64>; Self::FIELDS]) -> Self {
        let [
            fuel,
            memory_mb,
            timeout_ms,
            output,
            log,
            artifact,
            spawned,
            disk_bytes,
            disk_files,
            tokens,
        ] = values;
        Self {
            fuel,
            memory_mb,
            timeout_ms,
            max_output_bytes: output.map(|v| usize::try_from(v).unwrap_or(usize::MAX)),
            max_log_bytes: log.map(|v| usize::try_from(v).unwrap_or(usize::MAX)),
            max_artifact_bytes: artifact,
            max_spawned_jobs: spawned.map(|v| u32::try_from(v).unwrap_or(u32::MAX)),
            max_disk_bytes: disk_bytes,
            max_disk_files: disk_files,
            max_tokens: tokens,
        }
    }

    /// Refuses zeros (but for `max_spawned_jobs`) and values above `ceiling`.
    pub fn check(&self, ceiling: &Limits) -> Result<(), String> {
        let max = LimitsSpec::from(ceiling).fields();
        for ((name, value), (_, max)) in self.fields().into_iter().zip(max) {
            let max = max.unwrap_or(u64::MAX);
            match value {
                Some(0) if name != "max_spawned_jobs" => {
                    return Err(format!("{name} must be above 0"));
                }
                Some(v) if v > max => {
                    return Err(format!("{name} is {v}, above the maximum of {max}"));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

impl From<&Limits> for LimitsSpec {
    fn from(limits: &Limits) -> Self {
        Self {
            fuel: Some(limits.fuel),
            memory_mb: Some(limits.memory_bytes >> 20),
            timeout_ms: Some(limits.timeout_ms),
            max_output_bytes: Some(limits.max_output_bytes),
            max_log_bytes: Some(limits.max_log_bytes),
            max_artifact_bytes: Some(limits.max_artifact_bytes),
            max_spawned_jobs: Some(limits.max_spawned_jobs),
            max_disk_bytes: Some(limits.max_disk_bytes),
            max_disk_files: Some(limits.max_disk_files),
            max_tokens: Some(limits.max_tokens),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_stored_in_milliseconds_and_bytes() {
        let json = serde_json::to_value(Limits::default()).expect("serialize");
        assert_eq!(json["timeout_ms"], 30_000);
        assert_eq!(json["memory_bytes"], 64 << 20);
        assert!(json.get("timeout").is_none());
    }

    #[test]
    fn a_spec_resolves_over_defaults_and_is_checked_against_a_ceiling() {
        let spec = LimitsSpec {
            memory_mb: Some(2),
            timeout_ms: Some(250),
            ..LimitsSpec::default()
        };
        let limits = spec.resolve(&Limits::default());
        assert_eq!(limits.memory_bytes, 2 << 20);
        assert_eq!(limits.timeout(), Duration::from_millis(250));
        assert_eq!(limits.fuel, Limits::default().fuel);
        assert!(spec.check(&Limits::default_ceiling()).is_ok());
        let zero = LimitsSpec {
            fuel: Some(0),
            ..LimitsSpec::default()
        };
        assert_eq!(
            zero.check(&Limits::default_ceiling()),
            Err("fuel must be above 0".into())
        );
        let huge = LimitsSpec {
            timeout_ms: Some(u64::MAX),
            ..LimitsSpec::default()
        };
        assert!(huge.check(&Limits::default_ceiling()).is_err());
    }
}
