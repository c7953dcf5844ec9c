//! `GET /v1/runs/{id}/graph`: every job of a run with its edges and usage,
//! without inputs and outputs, so a client can draw a run of thousands of
//! jobs from one answer and keep it current from the run's events.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::extract::{ApiPath, check_id};
use super::params::RunId;
use crate::api::ApiError;
use crate::api::error::ErrorBody;
use crate::db::graph::{self, GraphNode};
use warren_vocabulary::{JobState, RunState};

/// Most jobs one graph holds; a run with more is `truncated`.
const MAX_GRAPH_JOBS: usize = 10_000;
/// About the most bytes of JSON one graph takes.
const MAX_GRAPH_BYTES: usize = 4 << 20;

#[derive(Debug, Serialize, ToSchema)]
pub struct RunGraph {
    #[schema(pattern = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]
    pub run_id: String,
    pub state: RunState,
    /// Its jobs in creation order (a spawned job after its parent).
    pub jobs: Vec<GraphJob>,
    /// The run has more jobs than one graph holds (10,000, or about 4 MiB).
    pub truncated: bool,
    /// The run's newest event when this was read: follow
    /// `/v1/runs/{id}/events?after=` from it to miss no change.
    pub last_event_id: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GraphJob {
    #[schema(pattern = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")]
    pub id: String,
    pub name: String,
    pub plugin: String,
    pub state: JobState,
    pub attempts: u32,
    /// The job that spawned it.
    pub parent_job_id: Option<String>,
    /// Ids of the jobs it depends on.
    pub needs: Vec<String>,
    /// Over all its attempts: fuel and wall time summed, the highest peak.
    pub fuel: u64,
    pub wall_us: u64,
    pub peak_memory_bytes: u64,
}

impl From<GraphNode> for GraphJob {
    fn from(node: GraphNode) -> Self {
        Self {
            id: node.id,
            name: node.name,
            plugin: node.plugin,
            state: node.state,
            attempts: node.attempts,
            parent_job_id: node.parent_job_id,
            needs: node.needs,
            fuel: node.fuel,
            wall_us: node.wall_us,
            peak_memory_bytes: node.peak_memory_bytes,
        }
    }
}

#[utoipa::path(
    get, path = "/v1/runs/{id}/graph", operation_id = "get_run_graph", tag = "runs", params(RunId),
    responses(
        (status = 200, description = "The run's jobs with their dependencies, parents and usage; at most 10,000 jobs and about 4 MiB", body = RunGraph),
        (status = 400, description = "`invalid_id`", body = ErrorBody),
        (status = 404, description = "`not_found`", body = ErrorBody),
    )
)]
/// A run's jobs as a graph, with the event to follow changes from.
pub async fn get(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<RunGraph>, ApiError> {
    check_id("run", &id)?;
    let run_id = id.clone();
    let found = state
        .engine
        .database()
        .query(move |conn| {
            // Read before the jobs: a change after it is in the events.
            let last_event_id = graph::last_run_event_id(conn, &run_id)?;
            let Some(run_state) = crate::db::reads::run_state(conn, &run_id)? else {
                return Ok(None);
            };
            let Some((nodes, truncated)) =
                graph::run_graph(conn, &run_id, MAX_GRAPH_JOBS, MAX_GRAPH_BYTES)?
            else {
                return Ok(None);
            };
            Ok(Some((run_state, nodes, truncated, last_event_id)))
        })
        .await?
        .ok_or_else(|| ApiError::not_found(format!("run {id}")))?;
    let (run_state, nodes, truncated, last_event_id) = found;
    Ok(Json(RunGraph {
        run_id: id,
        state: run_state,
        jobs: nodes.into_iter().map(Into::into).collect(),
        truncated,
        last_event_id,
    }))
}
