/// A new id for a stored row (run, job, attempt). Time-ordered (UUIDv7), so
/// rows inserted together land at the end of their index instead of at
/// random places in it, and ids sort by creation.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Unix time in milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
