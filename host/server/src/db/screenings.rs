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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{Database, Durability, retention};
    use warren_vocabulary::{GuardSubjectKind, GuardVerdict};

    fn denial(sha256: &str) -> Screening {
        Screening {
            guard: "reflex".into(),
            subject: GuardSubjectKind::RunInput,
            origin: String::new(),
            sha256: sha256.into(),
            verdict: GuardVerdict::Deny {
                category: "pii.card".into(),
                reason: "a payment card number".into(),
                findings: Vec::new(),
            },
        }
    }

    #[tokio::test]
    async fn refused_submissions_verdicts_go_by_age_all_at_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Database::open(&dir.path().join("w.db"), Durability::Normal).expect("open");
        db.write(|conn| {
            for i in 0..25 {
                insert(conn, 10 + i, None, None, &denial(&format!("old{i}")))?;
            }
            insert(conn, 1_000, None, None, &denial("recent"))
        })
        .await
        .expect("stored");
        // One pass with a batch of 10 runs removes every old verdict.
        db.write(|conn| retention::delete_ended_runs(conn, 500, 10))
            .await
            .expect("retention");
        let left: Vec<String> = db
            .read(|conn| {
                let mut stmt = conn.prepare("SELECT sha256 FROM screenings")?;
                let rows = stmt.query_map([], |r| r.get(0))?;
                Ok(rows.collect::<Result<_, _>>()?)
            })
            .expect("read");
        assert_eq!(left, ["recent"]);
    }
}
