//! `/v1/stories` and `/v1/stories/{story}/status`: what outside systems
//! and people follow of a story, its runs and each agent's latest status.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use warren_vocabulary::{JobState, RunState, names};

use super::AppState;
use super::extract::{ApiPath, ApiQuery, bad_query, check_story_id, page_limit};
use super::params::StoryId;
use crate::api::ApiError;
use crate::api::error::ErrorBody;
use crate::db::{DbError, stories};

/// Job names a status view shows at most.
const MAX_STATUSES: usize = 1_000;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StoriesQuery {
    /// Only stories whose latest run is in this state.
    state: Option<RunState>,
    /// Cursor: the `next` of the previous page (a story id).
    #[param(pattern = "^[A-Za-z0-9._:-]{1,128}$")]
    after: Option<String>,
    /// 1 to 500; 100 by default.
    #[param(minimum = 1, maximum = 500)]
    limit: Option<usize>,
}

/// A story's latest run.
#[derive(Debug, Serialize, ToSchema)]
pub struct LatestRun {
    #[schema(pattern = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]
    pub id: String,
    pub state: RunState,
    pub template: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StorySummary {
    pub story_id: String,
    pub latest_run: LatestRun,
    /// The last change of any of its runs (Unix ms).
    pub updated_at: i64,
    /// Its runs, ended ones included.
    pub runs: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StoryPage {
    pub stories: Vec<StorySummary>,
    /// Pass as `after` for the next page; absent on the last.
    pub next: Option<String>,
}

#[utoipa::path(
    get, path = "/v1/stories", operation_id = "list_stories", tag = "stories", params(StoriesQuery),
    responses(
        (status = 200, body = StoryPage),
        (status = 400, description = "`invalid_query`: an unknown parameter, or a malformed value", body = ErrorBody),
    )
)]
/// Stories that have runs, in id order, a page at a time.
pub async fn list(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<StoriesQuery>,
) -> Result<Json<StoryPage>, ApiError> {
    if let Some(after) = &query.after
        && !names::is_valid_story_id(after)
    {
        return Err(bad_query(
            "after",
            after,
            "not a story id (pass the `next` of the previous page)",
        ));
    }
    let limit = page_limit("limit", query.limit, 100)?;
    let wanted = query.state.map(RunState::as_str);
    let after = query.after;
    let found = state
        .engine
        .database()
        .query(move |conn| stories::list(conn, wanted, after.as_deref(), limit))
        .await?;
    let next = (found.len() == limit)
        .then(|| found.last().map(|s| s.story_id.clone()))
        .flatten();
    let stories = found
        .into_iter()
        .map(|s| {
            Ok(StorySummary {
                latest_run: LatestRun {
                    id: s.latest_run_id,
                    state: RunState::parse(&s.latest_run_state).ok_or_else(|| {
                        DbError::Corrupt(format!("run state {:?}", s.latest_run_state))
                    })?,
                    template: s.latest_run_template,
                },
                story_id: s.story_id,
                updated_at: s.updated_at,
                runs: s.runs,
            })
        })
        .collect::<Result<_, DbError>>()?;
    Ok(Json(StoryPage { stories, next }))
}

/// The latest status of one job name (an agent, say) in a story.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentStatus {
    /// The job's state.
    pub status: JobState,
    /// When its latest attempt started (Unix ms); `null` if it never ran.
    pub last_execution: Option<i64>,
    /// What its plugin last reported through `jobs.progress`, or an outside
    /// reporter gave.
    pub output_summary: Option<String>,
    #[schema(pattern = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]
    pub run_id: String,
    #[schema(pattern = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]
    pub job_id: String,
    /// Its last change (Unix ms).
    pub updated_at: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StoryStatus {
    pub story_id: String,
    /// The last change among the jobs shown (Unix ms).
    pub updated_at: i64,
    /// By job name: the latest job of that name across the story's runs.
    pub agent_statuses: BTreeMap<String, AgentStatus>,
    /// Whether names were left out (at most 1,000 are shown).
    pub truncated: bool,
}

#[utoipa::path(
    get, path = "/v1/stories/{story}/status", operation_id = "story_status", tag = "stories",
    params(StoryId),
    responses(
        (status = 200, body = StoryStatus),
        (status = 400, description = "`invalid_id`", body = ErrorBody),
        (status = 404, description = "`not_found`: the story has no run", body = ErrorBody),
    )
)]
/// The latest status of each job name (each agent) across a story's runs.
pub async fn status(
    State(state): State<AppState>,
    ApiPath(story): ApiPath<String>,
) -> Result<Json<StoryStatus>, ApiError> {
    check_story_id(&story)?;
    let id = story.clone();
    let mut found = state
        .engine
        .database()
        .query(move |conn| stories::statuses(conn, &id, MAX_STATUSES + 1))
        .await?;
    if found.is_empty() {
        return Err(ApiError::not_found(format!("a run of story {story}")));
    }
    let truncated = found.len() > MAX_STATUSES;
    found.truncate(MAX_STATUSES);
    let updated_at = found.iter().map(|s| s.updated_at).max().unwrap_or_default();
    let agent_statuses = found
        .into_iter()
        .map(|s| {
            let status = JobState::parse(&s.state)
                .ok_or_else(|| DbError::Corrupt(format!("job state {:?}", s.state)))?;
            Ok((
                s.name,
                AgentStatus {
                    status,
                    last_execution: s.last_execution,
                    output_summary: s.summary,
                    run_id: s.run_id,
                    job_id: s.job_id,
                    updated_at: s.updated_at,
                },
            ))
        })
        .collect::<Result<_, DbError>>()?;
    Ok(Json(StoryStatus {
        story_id: story,
        updated_at,
        agent_statuses,
        truncated,
    }))
}
