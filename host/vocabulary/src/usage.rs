use std::time::Duration;

use serde::Serialize;

/// What an attempt used.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub fuel_consumed: u64,
    pub peak_memory_bytes: u64,
    #[serde(serialize_with = "serialize_micros", rename = "wall_time_us")]
    pub wall_time: Duration,
    /// Model tokens: of the prompts sent, and of the answers.
    pub tokens_in: u64,
    pub tokens_out: u64,
}

fn serialize_micros<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_micros() as u64)
}
