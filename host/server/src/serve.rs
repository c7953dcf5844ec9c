//! A running Warren server (`warren serve`): the engine behind the HTTP API, with the plugins of a
//! folder and a demo template, until SIGTERM or SIGINT.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::sync::oneshot;

use crate::api::{self, AppContext, RouterOptions};
use crate::catalogue::directory::{PluginDirectory, Watching};
use crate::config::ServeConfig;
use crate::host::HostBuilder;
use crate::scheduler::spec::PipelineSpec;
use crate::scheduler::{Engine, EngineConfig};

/// The templates every fresh server offers, made of first-party plugins:
/// a pipeline of jobs, a flow of agents (the default `flow` of
/// `POST /v1/run`), the gated phases of a spec-driven workflow, and a
/// flow whose agent asks a model when one is configured.
pub const DEMO_TEMPLATE: &str = "build-and-check";
pub const DEMO_FLOW: &str = crate::config::DEFAULT_FLOW;
pub const DEMO_GATED: &str = "speckit";
/// The flow whose agent asks a model when one is configured.
pub const DEMO_SUMMARY: &str = "brief-to-summary";
const DEMO_TEMPLATES: [(&str, &str); 4] = [
    (
        DEMO_TEMPLATE,
        include_str!("../../../examples/pipelines/build-and-check.json"),
    ),
    (
        DEMO_FLOW,
        include_str!("../../../examples/pipelines/brief-to-review.json"),
    ),
    (
        DEMO_GATED,
        include_str!("../../../examples/pipelines/speckit.json"),
    ),
    (
        DEMO_SUMMARY,
        include_str!("../../../examples/pipelines/brief-to-summary.json"),
    ),
];

/// A server listening and running; dropping it does not stop it, call
/// [`RunningServer::shutdown`].
pub struct RunningServer {
    pub addr: SocketAddr,
    pub engine: Engine,
    pub plugins: PluginDirectory,
    stop: oneshot::Sender<()>,
    _watching: Watching,
    /// Where attempts run; shut down after the engine stops.
    _attempts: AttemptsRuntime,
    served: tokio::task::JoinHandle<()>,
    /// Examining the folder's files and adding the demo template.
    background: Option<tokio::task::JoinHandle<()>>,
    grace: Duration,
}

/// Opens the data folder, loads plugins, recovers unfinished runs, adds the
/// demo template if missing, and starts answering on `config.listen`.
pub async fn start(config: &ServeConfig) -> anyhow::Result<RunningServer> {
    let mut builder = HostBuilder::new(&config.data_dir)
        .durability(config.durability)
        .compile_timeout(config.compile_timeout)
        .breakers(config.breakers);
    if let Some(cache_dir) = &config.cache_dir {
        builder = builder.cache_dir(Some(cache_dir.clone()));
    }
    let host = builder.open()?;
    let plugins_dir = config
        .plugins_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(crate::BUILTIN_PLUGINS_DIR));
    let plugins = host
        .open_plugins_dir(&plugins_dir, config.policy.clone())
        .await?;
    let watching = plugins.watch();
    let attempts = AttemptsRuntime::start()?;
    let engine = host
        .start_engine(EngineConfig {
            attempts_on: Some(attempts.handle()),
            max_concurrent_jobs: config.max_concurrent_jobs,
            limit_ceiling: config.policy.max_limits.clone(),
            keep_ended_runs: config.keep_ended_runs,
            min_free_disk_bytes: config.min_free_disk_bytes,
            max_run_data_bytes: config.max_run_data_bytes,
            guards: config.guards.clone(),
            max_spawn_depth: config.policy.max_spawn_depth,
            max_spawned_per_run: config.policy.max_spawned_per_run,
            max_run_budget: config.policy.max_run_budget,
            ..EngineConfig::default()
        })
        .await?;
    let runtime = host.runtime.clone();

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let state = Arc::new(AppContext {
        engine: engine.clone(),
        plugins: plugins.clone(),
        runtime,
        tokens: Arc::new(config.tokens.clone()),
        request_timeout: config.request_timeout,
        // A request waiting for the first with its key answers before its
        // own deadline.
        idempotency: api::idempotency::Keys::new(
            config.idempotency_retention,
            config.request_timeout / 2,
        ),
        default_flow: config.default_flow.clone(),
        started: std::time::Instant::now(),
    });
    let router = api::app(
        state,
        &RouterOptions {
            max_body_bytes: config.max_body_bytes,
            cors_origins: config.cors_origins.clone(),
        },
    );
    let (stop, stopped) = oneshot::channel::<()>();
    let served = tokio::spawn(api::server::serve(
        listener,
        router,
        config.request_timeout,
        async {
            let _ = stopped.await;
        },
    ));
    // Files the database did not know compile in the background: the server
    // answers meanwhile, and runs naming them wait for them.
    let background = tokio::spawn({
        let (plugins, engine) = (plugins.clone(), engine.clone());
        async move {
            plugins.examine_all().await;
            add_demo_templates(&engine).await;
        }
    });
    Ok(RunningServer {
        addr,
        engine,
        plugins,
        stop,
        _watching: watching,
        _attempts: attempts,
        served,
        background: Some(background),
        grace: config.shutdown_grace,
    })
}

/// The tokio runtime attempts run on, apart from the one answering HTTP,
/// so a guest busy between two epoch ticks (or in a long host call) holds
/// one of its threads, not a thread a request is waiting for: the OS
/// shares the cores between the two runtimes' threads.
struct AttemptsRuntime(Option<tokio::runtime::Runtime>);

/// The nice value of the attempts' threads (HTTP's stay at 0).
const ATTEMPTS_NICE: i32 = 10;

impl AttemptsRuntime {
    fn start() -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(std::thread::available_parallelism().map_or(1, usize::from))
            .thread_name("warren-attempts")
            // Guests yield the cores to requests: their threads (workers and
            // blocking ones) run at a lower scheduling priority.
            .on_thread_start(|| {
                let thread = rustix::thread::gettid();
                if let Err(e) = rustix::process::setpriority_process(Some(thread), ATTEMPTS_NICE) {
                    tracing::warn!("cannot lower an attempt thread's priority: {e}");
                }
            })
            .enable_all()
            .build()
            .context("starting the attempts' runtime")?;
        Ok(Self(Some(runtime)))
    }

    fn handle(&self) -> tokio::runtime::Handle {
        match &self.0 {
            Some(runtime) => runtime.handle().clone(),
            None => tokio::runtime::Handle::current(),
        }
    }
}

impl Drop for AttemptsRuntime {
    fn drop(&mut self) {
        // Dropping a runtime may block, which an async context forbids.
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

async fn add_demo_templates(engine: &Engine) {
    for (name, pipeline) in DEMO_TEMPLATES {
        let exists = engine
            .database()
            .read(|conn| crate::db::runs::get_template(conn, name, None));
        if !matches!(exists, Ok(None)) {
            continue;
        }
        let created = match serde_json::from_str::<PipelineSpec>(pipeline) {
            Ok(spec) => engine
                .create_template(name, &spec)
                .await
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(e) = created {
            tracing::info!("demo template {name:?} not added: {e}");
        }
    }
}

impl RunningServer {
    /// Waits until every file of the plugins folder is examined and the
    /// demo templates are added (the server answers before).
    pub async fn ready(&mut self) {
        if let Some(background) = self.background.take() {
            let _ = background.await;
        }
    }

    /// Stops accepting requests, gives running attempts the grace period to
    /// finish, and returns; what is left is recovered at the next start.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.engine.drain();
        let deadline = Instant::now() + self.grace;
        let metrics = self.engine.metrics();
        while metrics.running.load(Ordering::Relaxed) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let left = metrics.running.load(Ordering::Relaxed);
        if left > 0 {
            tracing::warn!(
                "{left} attempts still running at shutdown; the next start retries them"
            );
        }
        // What the attempts that finished decided is committed before exit.
        let remaining = deadline.saturating_duration_since(Instant::now());
        if tokio::time::timeout(remaining, self.engine.sync())
            .await
            .is_err()
        {
            tracing::warn!(
                "the last decisions were not committed in time; the next start redoes them"
            );
        }
        // Open streams (SSE) are not waited for beyond the grace period.
        let remaining = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(remaining, self.served).await {
            Ok(joined) => joined?,
            Err(_) => tracing::warn!("connections still open at shutdown were dropped"),
        }
        Ok(())
    }
}

/// What `warren serve` prints once it listens.
pub fn banner(server: &RunningServer, data_dir: &Path, with_tokens: bool) -> String {
    let base = format!("http://{}", server.addr);
    let auth = if with_tokens {
        " -H \"authorization: Bearer $WARREN_TOKEN\""
    } else {
        ""
    };
    let mut names = server.engine.plugins().names();
    names.sort();
    let mut text = format!(
        "warren listening on {base}\n  data:    {}\n  plugins: {} ({})\n",
        data_dir.display(),
        server.plugins.dir().display(),
        names.join(", ")
    );
    for quarantined in server.plugins.quarantined() {
        text.push_str(&format!(
            "  quarantined: {}: {}\n",
            quarantined.file, quarantined.reason
        ));
    }
    text.push_str(&format!(
        "\nStart the demo pipeline:\n  curl -s{auth} -H 'content-type: application/json' \\\n    -d '{{\"template\":\"{DEMO_TEMPLATE}\",\"input\":{{\"goal\":\"a word counter\"}}}}' {base}/v1/runs\n\
         Follow it (use the id it returned):\n  curl -sN{auth} {base}/v1/runs/RUN_ID/events\n\
         Dashboard: {base}/   API: {base}/v1   health: {base}/health   metrics: {base}/metrics\n"
    ));
    text
}

/// Resolves when the process is asked to stop.
pub async fn stop_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
