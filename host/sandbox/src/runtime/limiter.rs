//! The memory limiter that enforces an attempt's memory cap and measures
//! the peak.

/// Table elements any guest may have; tables hold function references and
/// only grow without bound in a hostile guest.
const MAX_TABLE_ELEMENTS: usize = 100_000;

/// The limit a guest hit, recorded so the attempt can report it precisely.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryLimitExceeded {
    pub limit: u64,
    pub requested: u64,
}

impl std::fmt::Display for MemoryLimitExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "memory limit of {} bytes exceeded (guest asked for {} bytes)",
            self.limit, self.requested
        )
    }
}

impl std::error::Error for MemoryLimitExceeded {}

/// Caps the guest's memories and records their peak total size.
#[derive(Debug)]
pub struct MemoryLimiter {
    limit: u64,
    /// Sum of the current sizes of every memory of the instance.
    current_total: u64,
    peak_total: u64,
    /// The last growth approved, taken back if the engine then fails it.
    last_growth: u64,
}

impl MemoryLimiter {
    pub fn new(limit: u64) -> Self {
        Self {
            limit,
            current_total: 0,
            peak_total: 0,
            last_growth: 0,
        }
    }

    pub fn peak_bytes(&self) -> u64 {
        self.peak_total
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let growth = desired.saturating_sub(current) as u64;
        let total = self.current_total.saturating_add(growth);
        if total > self.limit {
            // Trap rather than fail the grow: a Rust guest would abort anyway,
            // and the trap carries the reason.
            return Err(wasmtime::Error::new(MemoryLimitExceeded {
                limit: self.limit,
                requested: total,
            }));
        }
        self.current_total = total;
        self.peak_total = self.peak_total.max(total);
        self.last_growth = growth;
        Ok(true)
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        // The engine refused a growth this limiter had approved (a module's
        // own maximum, the pool's slot size): it never happened.
        self.current_total = self.current_total.saturating_sub(self.last_growth);
        self.last_growth = 0;
        Ok(())
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}
