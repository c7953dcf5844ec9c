//! A run's jobs as a graph: each job with its dependencies, its parent and
//! what its attempts used, small enough to draw thousands at once (the
//! dashboard's run page). Inputs and outputs stay with the run view.

use rusqlite::{Connection, OptionalExtension};

use super::DbError;
use warren_vocabulary::JobState;

/// One job of a run's graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphNode {
    pub id: String,
    pub name: String,
    pub plugin: String,
    pub state: JobState,
    pub attempts: u32,
    /// The job that spawned it.
    pub parent_job_id: Option<String>,
    /// The jobs it depends on, by id.
    pub needs: Vec<String>,
    /// Over all its attempts: fuel and wall time summed, the highest peak.
    pub fuel: u64,
    pub wall_us: u64,
    pub peak_memory_bytes: u64,
}

impl GraphNode {
    /// About what it takes as JSON: what a graph's byte budget counts.
    fn held_bytes(&self) -> usize {
        200 + self.name.len() + self.plugin.len() + 40 * self.needs.len()
    }
}

/// The first jobs of `run_id` in creation order, at most `limit` and about
/// `max_bytes` of JSON, and whether it has more; `None` when there is no
/// such run.
pub fn run_graph(
    conn: &Connection,
    run_id: &str,
    limit: usize,
    max_bytes: usize,
) -> Result<Option<(Vec<GraphNode>, bool)>, DbError> {
    let exists = conn
        .prepare_cached("SELECT 1 FROM runs WHERE id = ?1")?
        .query_row([run_id], |_| Ok(()))
        .optional()?;
    if exists.is_none() {
        return Ok(None);
    }
    // The page of jobs first, so only its attempts are summed.
    let mut stmt = conn.prepare_cached(
        "WITH page AS (SELECT rowid AS position, id FROM jobs WHERE run_id = ?1
                       ORDER BY rowid LIMIT ?2),
              used AS (SELECT a.job_id, SUM(a.fuel_consumed) AS fuel, SUM(a.wall_time_us) AS wall,
                              MAX(a.peak_memory_bytes) AS peak
                       FROM page JOIN attempts a ON a.job_id = page.id GROUP BY a.job_id)
         SELECT j.id, j.name, j.plugin, j.state, j.attempts, j.parent_job_id,
                (SELECT group_concat(d.depends_on, ' ') FROM job_deps d WHERE d.job_id = j.id),
                COALESCE(u.fuel, 0), COALESCE(u.wall, 0), COALESCE(u.peak, 0)
         FROM page JOIN jobs j ON j.rowid = page.position
         LEFT JOIN used u ON u.job_id = j.id
         ORDER BY page.position",
    )?;
    let rows = stmt.query_map(
        rusqlite::params![run_id, (limit as i64).saturating_add(1)],
        |r| {
            let state: String = r.get(3)?;
            let needs: Option<String> = r.get(6)?;
            Ok((
                GraphNode {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    plugin: r.get(2)?,
                    state: JobState::Pending,
                    attempts: r.get(4)?,
                    parent_job_id: r.get(5)?,
                    needs: needs
                        .map(|n| n.split(' ').map(str::to_owned).collect())
                        .unwrap_or_default(),
                    fuel: r.get::<_, i64>(7)?.max(0) as u64,
                    wall_us: r.get::<_, i64>(8)?.max(0) as u64,
                    peak_memory_bytes: r.get::<_, i64>(9)?.max(0) as u64,
                },
                state,
            ))
        },
    )?;
    let (mut nodes, mut bytes) = (Vec::new(), 0);
    for row in rows {
        let (mut node, state) = row?;
        bytes += node.held_bytes();
        if nodes.len() == limit || bytes > max_bytes {
            return Ok(Some((nodes, true)));
        }
        node.state = JobState::parse(&state)
            .ok_or_else(|| DbError::Corrupt(format!("job state {state:?}")))?;
        nodes.push(node);
    }
    Ok(Some((nodes, false)))
}

/// The newest event's id (0 before the first): a snapshot read after it,
/// followed by the events after it, misses nothing.
pub fn last_event_id(conn: &Connection) -> Result<i64, DbError> {
    Ok(conn
        .prepare_cached("SELECT COALESCE(MAX(id), 0) FROM events")?
        .query_row([], |r| r.get(0))?)
}

/// The newest event of `run_id`'s id (0 before its first).
pub fn last_run_event_id(conn: &Connection, run_id: &str) -> Result<i64, DbError> {
    Ok(conn
        .prepare_cached("SELECT COALESCE(MAX(id), 0) FROM events WHERE run_id = ?1")?
        .query_row([run_id], |r| r.get(0))?)
}
