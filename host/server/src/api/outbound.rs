//! `GET /v1/outbound` (admin): plugins' HTTP requests, counted, and each
//! destination's circuit breaker.

use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use warren_sandbox::capabilities::breaker::BreakerState;
use warren_sandbox::capabilities::outbound::OUTBOUND;

/// Requests since the server started.
#[derive(Debug, Serialize, ToSchema)]
pub struct OutboundCounts {
    /// Let through to their destination.
    pub sent: u64,
    /// Refused: no grant of the plugin names the destination (never sent).
    pub denied: u64,
    /// Cut by their job's deadline or cancel.
    pub cut: u64,
    /// Failed at once: their destination's breaker was open.
    pub refused: u64,
}

/// A destination's circuit breaker.
#[derive(Debug, Serialize, ToSchema)]
pub struct DestinationView {
    /// `host:port`.
    pub destination: String,
    /// `closed`, `open` (requests fail at once until the cool-down ends) or
    /// `half_open` (one probe is out).
    pub state: String,
    pub failures_in_a_row: u32,
    pub sent: u64,
    /// Sent and failed: no answer, or a 5xx.
    pub failed: u64,
    /// Failed at once while the breaker was open.
    pub refused: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OutboundReport {
    pub requests: OutboundCounts,
    /// Every destination requests went to, by name.
    pub destinations: Vec<DestinationView>,
}

#[utoipa::path(
    get, path = "/v1/outbound", operation_id = "get_outbound", tag = "plugins",
    responses(
        (status = 200, body = OutboundReport),
        (status = 403, description = "`forbidden`: an admin token is needed", body = super::error::ErrorBody),
    )
)]
/// Plugins' HTTP requests, counted, and each destination's circuit breaker
/// (admin).
pub async fn get(State(state): State<AppState>) -> Json<OutboundReport> {
    let counts = OutboundCounts {
        sent: OUTBOUND.sent.load(Ordering::Relaxed),
        denied: OUTBOUND.denied.load(Ordering::Relaxed),
        cut: OUTBOUND.cut.load(Ordering::Relaxed),
        refused: OUTBOUND.refused.load(Ordering::Relaxed),
    };
    let destinations = state
        .runtime
        .breakers()
        .report()
        .into_iter()
        .map(|d| DestinationView {
            destination: d.destination,
            state: match d.state {
                BreakerState::Closed => "closed",
                BreakerState::Open => "open",
                BreakerState::HalfOpen => "half_open",
            }
            .to_owned(),
            failures_in_a_row: d.failures_in_a_row,
            sent: d.sent,
            failed: d.failed,
            refused: d.refused,
        })
        .collect();
    Json(OutboundReport {
        requests: counts,
        destinations,
    })
}
