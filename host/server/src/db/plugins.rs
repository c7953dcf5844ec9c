//! Plugin versions as stored: every distinct file content seen under a
//! plugin name, its manifest and its state, and what its attempts used.

use rusqlite::{Connection, params};
use serde::Serialize;

use super::DbError;
use warren_vocabulary::{AgentInfo, PluginKind};

/// What became of a plugin version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VersionState {
    /// New runs use it.
    Active,
    /// It asks for more than the active version; an admin must approve it.
    PendingApproval,
    /// Replaced by a newer version; runs that started with it keep it.
    Inactive,
    /// Its file was deleted: new runs cannot name the plugin.
    Retired,
}

warren_vocabulary::text_enum!(VersionState {
    Active => "active",
    PendingApproval => "pending_approval",
    Inactive => "inactive",
    Retired => "retired",
});

/// One row of `plugin_versions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionRecord {
    pub name: String,
    pub digest: String,
    pub kind: PluginKind,
    pub size: u64,
    pub state: VersionState,
    /// The manifest's TOML text.
    pub manifest: Option<String>,
    /// Why it waits for approval.
    pub note: Option<String>,
    pub first_seen_at: i64,
    pub activated_at: Option<i64>,
    pub approved_at: Option<i64>,
    /// What an agent said in `describe()`.
    pub agent: Option<AgentInfo>,
}

const COLUMNS: &str = "name, digest, kind, size, state, manifest, note, first_seen_at, activated_at, approved_at, agent_info";

/// A row, with its kind, state and agent description still as stored.
type RawRecord = (VersionRecord, String, String, Option<String>);

fn record(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawRecord> {
    Ok((
        VersionRecord {
            name: r.get(0)?,
            digest: r.get(1)?,
            kind: PluginKind::Job,
            size: r.get(3)?,
            state: VersionState::Active,
            manifest: r.get(5)?,
            note: r.get(6)?,
            first_seen_at: r.get(7)?,
            activated_at: r.get(8)?,
            approved_at: r.get(9)?,
            agent: None,
        },
        r.get(2)?,
        r.get(4)?,
        r.get(10)?,
    ))
}

fn parsed((mut record, kind, state, agent): RawRecord) -> Result<VersionRecord, DbError> {
    record.agent = agent
        .map(|json| serde_json::from_str(&json))
        .transpose()
        .map_err(|e| DbError::Corrupt(format!("agent description: {e}")))?;
    record.kind = PluginKind::parse(&kind)
        .ok_or_else(|| DbError::Corrupt(format!("plugin kind {kind:?}")))?;
    record.state = VersionState::parse(&state)
        .ok_or_else(|| DbError::Corrupt(format!("plugin version state {state:?}")))?;
    Ok(record)
}

/// Every version, by name then first sight.
pub fn versions(conn: &Connection) -> Result<Vec<VersionRecord>, DbError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM plugin_versions ORDER BY name, first_seen_at, digest"
    ))?;
    let rows = stmt.query_map([], record)?;
    rows.map(|row| parsed(row?)).collect()
}

/// Adds a version, or updates its state, note and times.
pub fn save(conn: &Connection, v: &VersionRecord) -> Result<(), DbError> {
    conn.prepare_cached(&format!(
        "INSERT INTO plugin_versions ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
         ON CONFLICT (name, digest) DO UPDATE SET state = excluded.state, note = excluded.note,
         activated_at = excluded.activated_at, approved_at = excluded.approved_at,
         agent_info = coalesce(excluded.agent_info, agent_info)"
    ))?
    .execute(params![
        v.name,
        v.digest,
        v.kind.as_str(),
        v.size,
        v.state.as_str(),
        v.manifest,
        v.note,
        v.first_seen_at,
        v.activated_at,
        v.approved_at,
        v.agent
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| DbError::Corrupt(e.to_string()))?
    ])?;
    Ok(())
}

/// `(plugin, digest)` of the versions jobs not yet ended are pinned to: a
/// restart must load them even when they are no longer active.
pub fn pinned_versions(conn: &Connection) -> Result<Vec<(String, String)>, DbError> {
    let mut stmt = conn.prepare(
        "SELECT DISTINCT j.plugin, j.plugin_digest FROM runs r JOIN jobs j ON j.run_id = r.id
         WHERE r.state IN ('pending', 'running', 'needs_input', 'waiting_approval')
           AND j.plugin_digest IS NOT NULL",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// `(plugin, digest)` of the versions the jobs of run `run_id` use.
pub fn run_versions(conn: &Connection, run_id: &str) -> Result<Vec<(String, String)>, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT DISTINCT plugin, plugin_digest FROM jobs WHERE run_id = ?1 AND plugin_digest IS NOT NULL",
    )?;
    let rows = stmt.query_map([run_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// What the attempts of one plugin version used, in all.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UsageTotals {
    pub attempts: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub fuel_consumed: u64,
    pub wall_time_us: u64,
    /// The largest peak memory of any attempt.
    pub peak_memory_bytes: u64,
}

/// Usage totals of version `digest`'s attempts.
pub fn usage(conn: &Connection, digest: &str) -> Result<UsageTotals, DbError> {
    Ok(conn
        .prepare_cached(
            "SELECT count(*), count(*) FILTER (WHERE state = 'succeeded'),
             count(*) FILTER (WHERE state = 'failed'), coalesce(sum(fuel_consumed), 0),
             coalesce(sum(wall_time_us), 0), coalesce(max(peak_memory_bytes), 0)
             FROM attempts WHERE plugin_digest = ?1",
        )?
        .query_row([digest], |r| {
            Ok(UsageTotals {
                attempts: r.get(0)?,
                succeeded: r.get(1)?,
                failed: r.get(2)?,
                fuel_consumed: r.get(3)?,
                wall_time_us: r.get(4)?,
                peak_memory_bytes: r.get(5)?,
            })
        })?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_states_are_stored_and_shown_as_serde_writes_them() {
        for &state in VersionState::ALL {
            let json = serde_json::to_string(&state).expect("serialize");
            assert_eq!(json, format!("\"{}\"", state.as_str()));
            assert_eq!(VersionState::parse(state.as_str()), Some(state));
        }
        assert_eq!(VersionState::parse("Active"), None);
    }
}
