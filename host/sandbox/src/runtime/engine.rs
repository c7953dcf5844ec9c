//! The one wasmtime `Engine` and the thread that advances its epoch.

use std::time::Duration;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the epoch advances. Deadlines and cancellation are noticed
/// within one tick; running guests yield to the async executor at each tick.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Engine settings.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// Fuel metering and epoch interruption compiled into guest code. Without
    /// them nothing stops a running guest (no deadline, no cancel, no fuel):
    /// only benchmarks turn this off, to measure what the checks cost.
    pub limits: bool,
    /// Largest memory any guest may have; per-attempt caps are lower.
    pub max_memory_bytes: u64,
    /// Instances the pooling allocator can hold at once.
    pub max_concurrent_instances: u32,
    /// Wasm stack per call; deep recursion traps beyond it.
    pub max_wasm_stack_bytes: usize,
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            limits: true,
            max_memory_bytes: 1 << 30,
            max_concurrent_instances: 256,
            max_wasm_stack_bytes: 1 << 20,
        }
    }
}

/// Bytes of each pooled memory kept resident between instances.
const KEEP_RESIDENT: usize = 1 << 20;

pub fn build_engine(settings: &EngineSettings) -> anyhow::Result<Engine> {
    let mut config = Config::new();
    config
        .concurrency_support(false)
        .consume_fuel(settings.limits)
        .epoch_interruption(settings.limits)
        .max_wasm_stack(settings.max_wasm_stack_bytes)
        // The fiber stack holds the wasm stack plus host frames above it.
        .async_stack_size(settings.max_wasm_stack_bytes + (1 << 20));

    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(settings.max_concurrent_instances)
        .total_core_instances(settings.max_concurrent_instances * 4)
        .total_memories(settings.max_concurrent_instances * 2)
        .total_tables(settings.max_concurrent_instances * 4)
        .total_stacks(settings.max_concurrent_instances)
        .max_memory_size(settings.max_memory_bytes as usize)
        // Reset reused memories in place (only the pages the guest dirtied,
        // found with PAGEMAP_SCAN where the kernel has it) instead of giving
        // them back with madvise, whose TLB shootdowns stall the other core.
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(64 << 10)
        .pagemap_scan(wasmtime::Enabled::Auto);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));

    Engine::new(&config).map_err(anyhow::Error::from)
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until the engine is
/// dropped.
pub fn start_epoch_ticker(engine: &Engine) -> std::io::Result<()> {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("warren-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })?;
    Ok(())
}
