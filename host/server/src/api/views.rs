//! What the API answers with: its response types and their OpenAPI
//! schemas. The store returns records (`crate::db::runs`, `crate::db::reads`);
//! each view is built from one, so the stored form and the published one can
//! change apart.

use serde::Serialize;
use utoipa::ToSchema;
use warren_vocabulary::{JobState, RunState};

use crate::db::reads::{
    ArtifactRecord, AttemptLogRecord, EventRecord, JobDetailRecord, RunSummaryRecord,
    TemplateRecord,
};
use crate::db::runs::{AttemptRecord, JobRecord, RunRecord};

/// A run as a client sees it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RunView {
    pub id: String,
    pub state: RunState,
    pub template: Option<String>,
    pub template_version: Option<i64>,
    pub story_id: Option<String>,
    pub input: serde_json::Value,
    pub created_at: i64,
    pub finished_at: Option<i64>,
    pub jobs: Vec<JobView>,
}

impl From<RunRecord> for RunView {
    fn from(record: RunRecord) -> Self {
        Self {
            id: record.id,
            state: record.state,
            template: record.template,
            template_version: record.template_version,
            story_id: record.story_id,
            input: record.input,
            created_at: record.created_at,
            finished_at: record.finished_at,
            jobs: record.jobs.into_iter().map(Into::into).collect(),
        }
    }
}

/// A job as a client sees it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobView {
    pub id: String,
    pub name: String,
    pub plugin: String,
    pub state: JobState,
    pub attempts: u32,
    pub output: Option<serde_json::Value>,
    pub error: Option<serde_json::Value>,
    pub parent_job_id: Option<String>,
    pub spawn_reason: Option<String>,
    pub depth: u32,
}

impl From<JobRecord> for JobView {
    fn from(record: JobRecord) -> Self {
        Self {
            id: record.id,
            name: record.name,
            plugin: record.plugin,
            state: record.state,
            attempts: record.attempts,
            output: record.output,
            error: record.error,
            parent_job_id: record.parent_job_id,
            spawn_reason: record.spawn_reason,
            depth: record.depth,
        }
    }
}

/// An attempt as a client sees it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AttemptView {
    pub id: String,
    pub number: u32,
    pub state: String,
    pub plugin_digest: String,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub error: Option<serde_json::Value>,
    pub fuel_consumed: Option<i64>,
    pub peak_memory_bytes: Option<i64>,
    pub wall_time_us: Option<i64>,
}

impl From<AttemptRecord> for AttemptView {
    fn from(record: AttemptRecord) -> Self {
        Self {
            id: record.id,
            number: record.number,
            state: record.state,
            plugin_digest: record.plugin_digest,
            started_at: record.started_at,
            finished_at: record.finished_at,
            error: record.error,
            fuel_consumed: record.fuel_consumed,
            peak_memory_bytes: record.peak_memory_bytes,
            wall_time_us: record.wall_time_us,
        }
    }
}

/// A run in a list (its jobs are fetched with the run).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RunSummary {
    pub id: String,
    pub state: String,
    pub template: Option<String>,
    pub template_version: Option<i64>,
    pub story_id: Option<String>,
    pub created_at: i64,
    pub finished_at: Option<i64>,
}

impl From<RunSummaryRecord> for RunSummary {
    fn from(record: RunSummaryRecord) -> Self {
        Self {
            id: record.id,
            state: record.state,
            template: record.template,
            template_version: record.template_version,
            story_id: record.story_id,
            created_at: record.created_at,
            finished_at: record.finished_at,
        }
    }
}

/// A job with its run, attempts and artifacts.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobDetail {
    pub run_id: String,
    #[serde(flatten)]
    pub job: JobView,
    pub input: serde_json::Value,
    pub attempts: Vec<AttemptView>,
    pub artifacts: Vec<ArtifactView>,
}

impl From<JobDetailRecord> for JobDetail {
    fn from(record: JobDetailRecord) -> Self {
        Self {
            run_id: record.run_id,
            job: record.job.into(),
            input: record.input,
            attempts: record.attempts.into_iter().map(Into::into).collect(),
            artifacts: record.artifacts.into_iter().map(Into::into).collect(),
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ArtifactView {
    pub job_id: String,
    pub job: String,
    pub name: String,
    pub sha256: String,
    pub size: u64,
}

impl From<ArtifactRecord> for ArtifactView {
    fn from(record: ArtifactRecord) -> Self {
        Self {
            job_id: record.job_id,
            job: record.job,
            name: record.name,
            sha256: record.sha256,
            size: record.size,
        }
    }
}

/// The log each attempt of a job left, in attempt order.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AttemptLogView {
    pub attempt: u32,
    pub state: String,
    pub log: serde_json::Value,
}

impl From<AttemptLogRecord> for AttemptLogView {
    fn from(record: AttemptLogRecord) -> Self {
        Self {
            attempt: record.attempt,
            state: record.state,
            log: record.log,
        }
    }
}

/// One entry of the history, with its run.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventRow {
    pub id: i64,
    pub at: i64,
    pub run_id: String,
    pub job_id: Option<String>,
    pub kind: String,
    pub from_state: Option<String>,
    pub to_state: String,
    pub reason: Option<String>,
}

impl From<EventRecord> for EventRow {
    fn from(record: EventRecord) -> Self {
        Self {
            id: record.id,
            at: record.at,
            run_id: record.run_id,
            job_id: record.job_id,
            kind: record.kind,
            from_state: record.from_state,
            to_state: record.to_state,
            reason: record.reason,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TemplateSummary {
    pub name: String,
    pub latest_version: i64,
    pub updated_at: i64,
}

impl From<TemplateRecord> for TemplateSummary {
    fn from(record: TemplateRecord) -> Self {
        Self {
            name: record.name,
            latest_version: record.latest_version,
            updated_at: record.updated_at,
        }
    }
}
