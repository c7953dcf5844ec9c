//! The floor every Warren figure is compared to: raw wasmtime running the
//! same component on the same engine, with nothing of Warren around it.

use std::path::Path;

use wasmtime::Store;
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use warren_sandbox::bindings::{JobPre, types};
use warren_sandbox::runtime::Runtime;

/// The floor: the same engine and component, a store holding only WASI,
/// and the types of Warren's contract (echo calls nothing of Warren's).
pub(crate) struct RawWasmtime {
    engine: wasmtime::Engine,
    pre: JobPre<RawState>,
    limits: bool,
    input: String,
}

struct RawState {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl types::Host for RawState {}

impl WasiView for RawState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl RawWasmtime {
    pub fn new(runtime: &Runtime, path: &Path, input: &str) -> anyhow::Result<Self> {
        let engine = runtime.engine().clone();
        let component = Component::from_file(&engine, path)?;
        let mut linker: Linker<RawState> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        // echo imports `warren:plugin/types` (types only). Not
        // `define_unknown_imports_as_traps`: it matches names exactly, so it
        // would shadow std's newer `wasi:io` imports with resources of its
        // own that the `wasi:io` types do not match.
        types::add_to_linker::<RawState, HasSelf<RawState>>(&mut linker, |s| s)?;
        let pre = JobPre::new(linker.instantiate_pre(&component)?)?;
        Ok(Self {
            engine,
            pre,
            limits: runtime.settings().limits,
            input: input.to_owned(),
        })
    }

    /// One fresh store, instantiation and call; checks echo's output.
    pub async fn call(&self) -> anyhow::Result<()> {
        let state = RawState {
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
        };
        let mut store = Store::new(&self.engine, state);
        if self.limits {
            store.set_fuel(u64::MAX)?;
            store.set_epoch_deadline(u64::MAX / 2);
        }
        let instance = self.pre.instantiate_async(&mut store).await?;
        let ctx = types::JobContext {
            run_id: "run".into(),
            job_id: "job".into(),
            job_name: "echo".into(),
            attempt: 1,
            story_id: None,
            input: self.input.clone(),
            upstream: Vec::new(),
        };
        match instance
            .warren_plugin_job_handler()
            .call_run(&mut store, &ctx)
            .await?
        {
            Ok(output) if output == self.input => Ok(()),
            other => anyhow::bail!("raw echo returned {other:?}"),
        }
    }
}
