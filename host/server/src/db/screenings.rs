//! Guards' verdicts, kept with the text's sha256 and never the text.

use rusqlite::{Connection, params};
use serde::Serialize;

use warren_vocabulary::{GuardFinding, Screening};

use super::DbError;

/// Records `screening`, of a run's job (or of a refused submission, with
/// no run).
pub fn insert(
    conn: &Connection,
    at: i64,
    run_id: Option<&str>,
    job_id: Option<&str>,
    screening: &Screening,
) -> Result<(), DbError> {
    let (category, reason) = screening.denial().unzip();
    let findings = findings_json(screening.verdict.findings())?;
    conn.prepare_cached(
        "INSERT INTO screenings (at, run_id, job_id, guard, subject, origin, sha256, verdict, category, reason, findings)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        at,
        run_id,
        job_id,
        screening.guard,
        screening.subject.as_str(),
        screening.origin,
        screening.sha256,
        screening.verdict.name(),
        category,
        reason,
        findings
    ])?;
    Ok(())
}

pub fn findings_json(findings: &[GuardFinding]) -> Result<String, DbError> {
    serde_json::to_string(findings).map_err(|e| DbError::Corrupt(e.to_string()))
}

/// What an event of a screening says besides its verdict.
#[derive(Serialize)]
pub struct ScreeningDetail<'a> {
    pub guard: &'a str,
    pub subject: &'a str,
    pub origin: &'a str,
    pub sha256: &'a str,
    pub category: Option<&'a str>,
    pub findings: &'a [GuardFinding],
}

impl<'a> ScreeningDetail<'a> {
    pub fn of(screening: &'a Screening) -> Self {
        Self {
            guard: &screening.guard,
            subject: screening.subject.as_str(),
            origin: &screening.origin,
            sha256: &screening.sha256,
            category: screening.denial().map(|(category, _)| category),
            findings: screening.verdict.findings(),
        }
    }
}
