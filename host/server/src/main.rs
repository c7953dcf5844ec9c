//! The `warren` command line: the commands (`cli`) and benchmarks (`bench`)
//! over the `warren` library.

mod bench;
mod cli;

use std::path::PathBuf;

use crate::cli::{exit, new, run};
use clap::{Parser, Subcommand, ValueEnum};
use warren_vocabulary::LimitsSpec;

#[derive(Parser)]
#[command(
    name = "warren",
    version,
    about = "Run jobs and agents as sandboxed WebAssembly components"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API with the engine, the plugins of a folder and a
    /// demo template.
    ///
    /// Settings: built-in defaults, then `warren.toml` (or --config), then
    /// `WARREN_*` environment variables, then these flags.
    Serve(ServeArgs),
    /// Start a run of a template on a server; prints the run's id.
    Submit {
        template: String,
        /// The run's input (JSON, or `@file`).
        #[arg(long, default_value = "{}")]
        input: String,
        /// Story id: scopes story memory.
        #[arg(long)]
        story: Option<String>,
        /// Follow the run until it ends, as `warren watch` does.
        #[arg(long)]
        watch: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Upkeep now, on a data directory no server is using: removes what
    /// crashed attempts staged, deletes ended runs past their retention
    /// (`retention_days`, or --retention-days), removes artifact blobs
    /// nothing references, and gives the database's free pages back.
    Gc {
        /// The data directory (default: the configuration's).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Delete runs that ended more than this many days ago.
        #[arg(long)]
        retention_days: Option<u64>,
        /// Operator configuration (default: ./warren.toml if present).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Print what was done as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a run and its jobs. Exit code: 0 completed, 1 failed, 2 otherwise.
    Status {
        run: String,
        /// Print the run as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Print a job's logs, attempt by attempt.
    Logs {
        job: String,
        /// Keep printing: running attempts' lines as they are written, until
        /// the job stops running.
        #[arg(long)]
        follow: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Follow a run live: a progress bar and each job as it changes state,
    /// until it ends or waits for people.
    Watch {
        run: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// List the jobs waiting for a decision or for input, longest waiting
    /// first: run, job, how long, and the output held (or what it waits for).
    Pending {
        /// Print them as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Approve the output of a job waiting at its gate: it completes and its
    /// dependents run.
    Approve {
        job: String,
        #[arg(long)]
        comment: Option<String>,
        /// JSON (or `@file`) added to the job's output for its dependents.
        #[arg(long)]
        data: Option<String>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Reject the output of a job waiting at its gate: it runs again with
    /// your comment (until its gate's rework is used up), or fails with
    /// --final.
    Reject {
        job: String,
        /// What to change; the job's plugin reads it on its rework.
        #[arg(long)]
        comment: String,
        /// Fail the job now instead of sending it back.
        #[arg(long = "final")]
        is_final: bool,
        /// JSON (or `@file`) the rework should use.
        #[arg(long)]
        data: Option<String>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Give a job waiting for input (`needs_input`) what it asked for: it
    /// runs again with it.
    Input {
        job: String,
        /// The input, JSON (or `@file`).
        data: String,
        #[arg(long)]
        comment: Option<String>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Run a plugin once, locally, and print its JSON output.
    ///
    /// Exit codes: 0 success, 1 the job returned an error, 2 a limit was hit
    /// or the plugin trapped, 3 invalid plugin or bad usage.
    Run(RunArgs),
    /// Create a new plugin crate.
    New {
        kind: NewKind,
        /// Plugin name (letters, digits, `-`, `_`).
        name: String,
        /// Folder to create the crate in.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// Depend on the warren-sdk crate in this folder (a Warren checkout's
        /// `sdk`) instead of the published warren-sdk of this version.
        #[arg(long, value_name = "PATH")]
        sdk: Option<PathBuf>,
    },
    /// Run pipelines (job graphs) durably in this process.
    Pipeline {
        #[command(subcommand)]
        command: PipelineCommand,
    },
    /// Measure Warren against baselines in the same run.
    Bench {
        #[command(subcommand)]
        suite: BenchSuite,
    },
}

#[derive(clap::Args)]
struct ServerArgs {
    /// The server's address.
    #[arg(long, env = "WARREN_URL", default_value = "http://127.0.0.1:8080")]
    server: String,
    /// Bearer token, if the server wants one.
    #[arg(long, env = "WARREN_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

impl ServerArgs {
    fn server(&self) -> crate::cli::client::Server {
        crate::cli::client::Server {
            url: self.server.clone(),
            token: self.token.clone(),
        }
    }
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// Where Warren keeps its database, artifacts and compile cache
    /// [default: warren-data].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Folder of plugins (`NAME.wasm`) [default: the first-party plugins
    /// built with this binary].
    #[arg(long)]
    plugins_dir: Option<PathBuf>,
    /// Configuration file [default: warren.toml if it exists].
    #[arg(long)]
    config: Option<PathBuf>,
    /// `normal` or `full` [default: normal].
    #[arg(long)]
    durability: Option<DurabilityArg>,
}

#[derive(Subcommand)]
enum PipelineCommand {
    /// Submit the pipeline in FILE and run it to the end.
    ///
    /// Exit codes: 0 the run completed, 1 it failed, 2 it was cancelled or
    /// the host failed, 3 invalid pipeline or bad usage.
    Run {
        /// The pipeline, JSON.
        file: PathBuf,
        /// The run's input (JSON, or `@file`).
        #[arg(long, default_value = "{}")]
        input: String,
        /// Story id: scopes story memory.
        #[arg(long)]
        story: Option<String>,
        #[command(flatten)]
        engine: EngineArgs,
        /// Print the run as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Finish the runs an earlier process left unfinished.
    Resume {
        #[command(flatten)]
        engine: EngineArgs,
        /// Print the runs as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args)]
struct EngineArgs {
    /// Folder of plugins (`NAME.wasm`) the pipeline may name.
    #[arg(long, default_value = warren::BUILTIN_PLUGINS_DIR)]
    plugins_dir: PathBuf,
    /// Where Warren keeps its database, artifacts and compile cache.
    #[arg(long, default_value = "warren-data")]
    data_dir: PathBuf,
    /// `normal`: a commit survives a crash of the process; `full`: it also
    /// survives power loss, at a cost per commit.
    #[arg(long, default_value = "normal")]
    durability: DurabilityArg,
    /// Attempts running at once.
    #[arg(long, default_value_t = warren::scheduler::DEFAULT_CONCURRENCY)]
    concurrency: usize,
    /// The operator's settings, whose `[policy]` caps the plugins
    /// (default: `./warren.toml` if it exists).
    #[arg(long)]
    config: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum DurabilityArg {
    Normal,
    Full,
}

impl EngineArgs {
    fn options(&self) -> crate::cli::pipeline::EngineOptions {
        crate::cli::pipeline::EngineOptions {
            plugins_dir: self.plugins_dir.clone(),
            data_dir: self.data_dir.clone(),
            durability: match self.durability {
                DurabilityArg::Normal => warren::db::Durability::Normal,
                DurabilityArg::Full => warren::db::Durability::Full,
            },
            concurrency: self.concurrency,
            config: self.config.clone(),
        }
    }
}

#[derive(Subcommand)]
enum BenchSuite {
    /// Instantiate+call against raw wasmtime and a subprocess, limits on vs.
    /// off, cold compile vs. cached load.
    Runtime {
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
        /// Calls per instantiate+call benchmark.
        #[arg(long, default_value_t = 5000)]
        iterations: usize,
        /// Folder with echo.wasm, checksum.wasm, primes.wasm and wordcount.wasm.
        #[arg(long, default_value = warren::BUILTIN_PLUGINS_DIR)]
        plugins_dir: PathBuf,
    },
    /// The HTTP API: run submissions from concurrent clients on loopback,
    /// against `GET /health` from the same clients.
    Api {
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
        /// Clients sending at once.
        #[arg(long, default_value_t = 100)]
        clients: usize,
        /// Requests of each kind and loop.
        #[arg(long, default_value_t = 20_000)]
        requests: usize,
        /// Requests a second the clients offer together in the open loop.
        #[arg(long, default_value_t = 3_000.0)]
        rate: f64,
        /// Folder with echo.wasm.
        #[arg(long, default_value = warren::BUILTIN_PLUGINS_DIR)]
        plugins_dir: PathBuf,
    },
    /// Flows through `POST /v1/run` with a wait: the three example agents
    /// (each reading the document the one before wrote) against three
    /// plain jobs in a row writing an artifact each (`wordcount`) and
    /// writing nothing (`echo`), from concurrent clients.
    Flows {
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
        /// Clients sending at once, each with a story of its own.
        #[arg(long, default_value_t = 100)]
        clients: usize,
        /// Flows of each kind and loop.
        #[arg(long, default_value_t = 5_000)]
        requests: usize,
        /// Flows a second the clients offer together in the open loop.
        #[arg(long, default_value_t = 500.0)]
        rate: f64,
        /// Folder with analyst, writer, reviewer, wordcount and echo (.wasm).
        #[arg(long, default_value = warren::BUILTIN_PLUGINS_DIR)]
        plugins_dir: PathBuf,
    },
    /// The dashboard: how soon a run's page shows its graph for runs of
    /// 10, 100 and 1,000 jobs, from headless chromium's performance
    /// timings (needs Debian's chromium and chromium-driver).
    Ui {
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
        /// Page loads measured for each run size.
        #[arg(long, default_value_t = 5)]
        loads: usize,
        /// Folder with echo.wasm.
        #[arg(long, default_value = warren::BUILTIN_PLUGINS_DIR)]
        plugins_dir: PathBuf,
    },
    /// People in runs: a decision to the start of the job it lets go on
    /// (against a submission to its first job's start), and the memory and
    /// restart time of many runs waiting at a gate (against none waiting).
    Approvals {
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
        /// Decisions timed.
        #[arg(long, default_value_t = 300)]
        decisions: usize,
        /// Runs left waiting at a gate.
        #[arg(long, default_value_t = 10_000)]
        waiting: usize,
        /// Folder with speckit and echo (.wasm).
        #[arg(long, default_value = warren::BUILTIN_PLUGINS_DIR)]
        plugins_dir: PathBuf,
    },
    /// The `reflex` guard over its labelled corpus (precision, recall and
    /// false positives against their goals), its cost per KB, and runs
    /// submitted a second with it checking every input against none.
    Guards {
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
        /// Runs submitted with the guard, and without.
        #[arg(long, default_value_t = 2_000)]
        submissions: u32,
        /// Folder with reflex.wasm and echo.wasm.
        #[arg(long, default_value = warren::BUILTIN_PLUGINS_DIR)]
        plugins_dir: PathBuf,
    },
    /// Plugins reaching out: HTTP requests through `wasi:http` against the
    /// same from native Rust, and model calls through the host against the
    /// same POSTs sent natively, to servers on 127.0.0.1.
    Outbound {
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
        /// Requests of each kind.
        #[arg(long, default_value_t = 1_000)]
        requests: u32,
        /// Folder with fetch.wasm.
        #[arg(long, default_value = warren::BUILTIN_PLUGINS_DIR)]
        plugins_dir: PathBuf,
    },
    /// The plugins folder: a dropped file becoming runnable against a cold
    /// compile of it, and server start with many plugins, cached or not.
    Plugins {
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
        /// Drops and cold compiles measured.
        #[arg(long, default_value_t = 5)]
        repeats: usize,
        /// Plugins in the folder at start.
        #[arg(long, default_value_t = 50)]
        plugins: usize,
        /// Folder with wordcount.wasm.
        #[arg(long, default_value = warren::BUILTIN_PLUGINS_DIR)]
        plugins_dir: PathBuf,
    },
    /// Server start: spawn to /health and to a first finished run, cold and
    /// warm, and with many uncached plugins in the folder.
    Start {
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
        /// Uncached plugins in the folder of the last start.
        #[arg(long, default_value_t = 50)]
        plugins: usize,
        /// Folder with the first-party plugins.
        #[arg(long, default_value = warren::BUILTIN_PLUGINS_DIR)]
        plugins_dir: PathBuf,
    },
    /// `GET /health` latency while hostile plugins run at default limits
    /// (log flood, 32 MiB put loop, spawns with 1 MiB inputs), against the
    /// same server idle, and the server's peak memory.
    Hostile {
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
        /// Hostile runs at once.
        #[arg(long, default_value_t = 8)]
        hostile: usize,
        /// Seconds health is probed, idle and then under load.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Folder with echo.wasm.
        #[arg(long, default_value = warren::BUILTIN_PLUGINS_DIR)]
        plugins_dir: PathBuf,
        /// Folder with the test guests toolbox.wasm and log_flood.wasm.
        #[arg(long, default_value = env!("WARREN_TEST_GUESTS_DIR"))]
        guests_dir: PathBuf,
    },
    /// The durable engine: a fan-out of no-op jobs against raw wasmtime,
    /// and a chain of sequential jobs, with durability normal and full.
    Engine {
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
        /// Jobs of the fan-out run.
        #[arg(long, default_value_t = 10_000)]
        fanout: usize,
        /// Jobs of the chain run.
        #[arg(long, default_value_t = 200)]
        chain: usize,
        /// Attempts running at once.
        #[arg(long, default_value_t = warren::scheduler::DEFAULT_CONCURRENCY)]
        concurrency: usize,
        /// Folder with echo.wasm.
        #[arg(long, default_value = warren::BUILTIN_PLUGINS_DIR)]
        plugins_dir: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum NewKind {
    Job,
    Agent,
}

#[derive(clap::Args)]
struct RunArgs {
    /// The plugin's `.wasm` file, or the name of a first-party plugin (echo,
    /// wordcount, checksum, primes, planner, dev, tester, report).
    plugin: PathBuf,
    /// JSON input, or `@file` to read it from a file.
    #[arg(long, default_value = "{}")]
    input: String,
    /// Fuel budget (about one unit per wasm instruction).
    #[arg(long)]
    fuel: Option<u64>,
    /// Memory cap in MiB.
    #[arg(long)]
    memory_mb: Option<u64>,
    /// Wall-clock deadline in milliseconds.
    #[arg(long)]
    timeout_ms: Option<u64>,
    /// Directory shown read-only to the plugin at `/in` (not to the jobs it
    /// spawns: they see its artifacts there).
    #[arg(long = "in")]
    in_dir: Option<PathBuf>,
    /// Where Warren keeps the run's database, artifacts and compile cache;
    /// a temporary folder by default (story memory then lasts one run).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The operator's settings, whose `[policy]` caps the plugin
    /// (default: `./warren.toml` if it exists).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Story id: scopes the plugin's story memory.
    #[arg(long)]
    story: Option<String>,
    /// Print one JSON object (output, error, usage, artifacts, log) instead.
    #[arg(long)]
    json: bool,
}

// The server allocates small objects on every core all the time; glibc's
// allocator spent about a sixth of `warren bench api` in malloc and free.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() {
                exit::INVALID
            } else {
                exit::SUCCESS
            };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WARREN_LOG")
                .unwrap_or_else(|_| // `warren run` prints guest lines itself.
                "warn,wasmtime=error,warren::guest=off".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let code = match cli.command {
        Command::Serve(args) => serve_command(args),
        Command::Submit {
            template,
            input,
            story,
            watch,
            server,
        } => client_command(async move {
            use crate::cli::client;
            let input = run::read_input(&input)
                .map_err(|e| client::ClientError::Usage(e.to_string()))
                .and_then(|text| {
                    serde_json::from_str(&text)
                        .map_err(|e| client::ClientError::Usage(format!("--input: {e}")))
                })?;
            let server = server.server();
            let id = client::submit(&server, &template, input, story).await?;
            println!("{id}");
            if !watch {
                return Ok(exit::SUCCESS);
            }
            let run = client::watch(&server, &id).await?;
            client::print_status(&run);
            Ok(client::run_exit_code(&run))
        }),
        Command::Status { run, json, server } => client_command(async move {
            use crate::cli::client;
            let run = client::status(&server.server(), &run).await?;
            if json {
                println!("{run}");
            } else {
                client::print_status(&run);
            }
            Ok(client::run_exit_code(&run))
        }),
        Command::Logs {
            job,
            follow,
            server,
        } => client_command(async move {
            crate::cli::client::logs(&server.server(), &job, follow).await?;
            Ok(exit::SUCCESS)
        }),
        Command::Pending { json, server } => client_command(async move {
            use crate::cli::reviews;
            let jobs = reviews::pending(&server.server()).await?;
            if json {
                println!("{}", serde_json::Value::from(jobs));
            } else {
                reviews::print_pending(&jobs, warren_vocabulary::now_ms());
            }
            Ok(exit::SUCCESS)
        }),
        Command::Approve {
            job,
            comment,
            data,
            server,
        } => client_command(async move {
            let data = data.as_deref().map(json_argument).transpose()?;
            let answer =
                crate::cli::reviews::decide(&server.server(), &job, true, comment, data, false)
                    .await?;
            println!("job {job}: {}", answer["state"].as_str().unwrap_or("?"));
            Ok(exit::SUCCESS)
        }),
        Command::Reject {
            job,
            comment,
            is_final,
            data,
            server,
        } => client_command(async move {
            let data = data.as_deref().map(json_argument).transpose()?;
            let answer = crate::cli::reviews::decide(
                &server.server(),
                &job,
                false,
                Some(comment),
                data,
                is_final,
            )
            .await?;
            println!("job {job}: {}", answer["state"].as_str().unwrap_or("?"));
            Ok(exit::SUCCESS)
        }),
        Command::Input {
            job,
            data,
            comment,
            server,
        } => client_command(async move {
            let data = json_argument(&data)?;
            let answer =
                crate::cli::reviews::give_input(&server.server(), &job, data, comment).await?;
            println!("job {job}: {}", answer["state"].as_str().unwrap_or("?"));
            Ok(exit::SUCCESS)
        }),
        Command::Watch { run, server } => client_command(async move {
            use crate::cli::client;
            let run = client::watch(&server.server(), &run).await?;
            client::print_status(&run);
            Ok(client::run_exit_code(&run))
        }),
        Command::Gc {
            data_dir,
            retention_days,
            config,
            json,
        } => gc_command(
            crate::cli::gc::GcOptions {
                data_dir,
                retention_days,
                config,
            },
            json,
        ),
        Command::Run(args) => run_command(args),
        Command::New {
            kind,
            name,
            dir,
            sdk,
        } => new_command(kind, &name, &dir, sdk.as_deref()),
        Command::Bench { suite } => bench_command(suite),
        Command::Pipeline { command } => pipeline_command(command),
    };
    std::process::exit(code);
}

fn gc_command(options: crate::cli::gc::GcOptions, json: bool) -> i32 {
    let runtime = match async_runtime() {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    match runtime.block_on(crate::cli::gc::gc(options)) {
        Ok(report) if json => {
            println!("{}", serde_json::to_string(&report).unwrap_or_default());
            exit::SUCCESS
        }
        Ok(report) => {
            println!(
                "removed {} staged entries, {} ended runs, {} unreferenced blobs ({} bytes); database {} -> {} bytes{}",
                report.staged_removed,
                report.upkeep.runs_deleted,
                report.upkeep.blobs_removed,
                report.upkeep.bytes_removed,
                report.database_bytes_before,
                report.database_bytes_after,
                if report.vacuumed {
                    " (rewritten for incremental vacuum)"
                } else {
                    ""
                }
            );
            exit::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            exit::INVALID
        }
    }
}

fn async_runtime() -> Result<tokio::runtime::Runtime, i32> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("error: cannot start the async runtime: {e}");
            exit::LIMIT_OR_TRAP
        })
}

/// The server's runtime: HTTP and guests on every core.
fn server_runtime() -> Result<tokio::runtime::Runtime, i32> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("error: cannot start the async runtime: {e}");
            exit::LIMIT_OR_TRAP
        })
}

fn client_command(
    command: impl std::future::Future<Output = Result<i32, crate::cli::client::ClientError>>,
) -> i32 {
    let runtime = match async_runtime() {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    match runtime.block_on(command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}

fn serve_command(args: ServeArgs) -> i32 {
    use warren::config::{Layer, ServeConfig};
    let layers = Layer::operator(args.config.as_deref()).map(|mut layers| {
        let flags = Layer {
            listen: args.listen,
            data_dir: args.data_dir.clone(),
            plugins_dir: args.plugins_dir.clone(),
            durability: args.durability.map(|d| match d {
                DurabilityArg::Normal => warren::db::Durability::Normal,
                DurabilityArg::Full => warren::db::Durability::Full,
            }),
            ..Layer::default()
        };
        layers.push(flags);
        layers
    });
    let config = match layers.and_then(|layers| ServeConfig::resolve(&layers)) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::INVALID;
        }
    };
    // The configuration the API benchmarks measure: HTTP and guests on
    // every core.
    let runtime = match server_runtime() {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    let served = runtime.block_on(async {
        let mut server = warren::serve::start(&config).await?;
        // Listening for a stop from now on, even while the folder compiles.
        let stop = warren::serve::stop_signal();
        tokio::pin!(stop);
        tokio::select! {
            // It answers already; the banner lists the plugins once examined.
            () = server.ready() => {
                print!(
                    "{}",
                    warren::serve::banner(&server, &config.data_dir, !config.tokens.is_empty())
                );
                (&mut stop).await;
            }
            () = &mut stop => {}
        }
        eprintln!(
            "stopping: letting running attempts finish (up to {:?})",
            config.shutdown_grace
        );
        server.shutdown().await
    });
    match served {
        Ok(()) => exit::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            exit::LIMIT_OR_TRAP
        }
    }
}

fn pipeline_command(command: PipelineCommand) -> i32 {
    use crate::cli::pipeline;
    let runtime = match async_runtime() {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    let (runs, json) = match command {
        PipelineCommand::Run {
            file,
            input,
            story,
            engine,
            json,
        } => {
            let input = match run::read_input(&input).map(|text| serde_json::from_str(&text)) {
                Ok(Ok(input)) => input,
                Ok(Err(e)) => {
                    eprintln!("error: --input: {e}");
                    return exit::INVALID;
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    return e.exit_code();
                }
            };
            let result = runtime.block_on(pipeline::run(&engine.options(), &file, input, story));
            (result.map(|run| vec![run]), json)
        }
        PipelineCommand::Resume { engine, json } => {
            (runtime.block_on(pipeline::resume(&engine.options())), json)
        }
    };
    let runs = match runs {
        Ok(runs) => runs,
        Err(e) => {
            eprintln!("error: {e}");
            return e.exit_code();
        }
    };
    for run in &runs {
        if json {
            match serde_json::to_string(run) {
                Ok(text) => println!("{text}"),
                Err(e) => eprintln!("error: cannot print the run: {e}"),
            }
        } else {
            pipeline::print_summary(run);
        }
    }
    runs.iter()
        .map(pipeline::exit_code)
        .max()
        .unwrap_or(exit::SUCCESS)
}

fn bench_command(suite: BenchSuite) -> i32 {
    let runtime = match async_runtime() {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    let (measured, json) = match suite {
        BenchSuite::Runtime {
            json,
            iterations,
            plugins_dir,
        } => {
            let options = crate::bench::runtime::RuntimeBenchOptions {
                plugins_dir,
                iterations,
                ..Default::default()
            };
            (runtime.block_on(crate::bench::runtime::run(&options)), json)
        }
        BenchSuite::Api {
            json,
            clients,
            requests,
            rate,
            plugins_dir,
        } => {
            let options = crate::bench::api::ApiBenchOptions {
                plugins_dir,
                clients: clients.max(1),
                requests,
                rate,
            };
            let measured = match server_runtime() {
                Ok(server) => server.block_on(crate::bench::api::run(&options)),
                Err(code) => return code,
            };
            (measured, json)
        }
        BenchSuite::Flows {
            json,
            clients,
            requests,
            rate,
            plugins_dir,
        } => {
            let options = crate::bench::flows::FlowsBenchOptions {
                plugins_dir,
                clients: clients.max(1),
                requests,
                rate,
            };
            let measured = match server_runtime() {
                Ok(server) => server.block_on(crate::bench::flows::run(&options)),
                Err(code) => return code,
            };
            (measured, json)
        }
        BenchSuite::Ui {
            json,
            loads,
            plugins_dir,
        } => {
            let options = crate::bench::ui::UiBenchOptions {
                plugins_dir,
                loads: loads.max(1),
                ..Default::default()
            };
            let measured = match server_runtime() {
                Ok(server) => server.block_on(crate::bench::ui::run(&options)),
                Err(code) => return code,
            };
            (measured, json)
        }
        BenchSuite::Guards {
            json,
            submissions,
            plugins_dir,
        } => {
            let options = crate::bench::guards::GuardsBenchOptions {
                plugins_dir,
                submissions,
            };
            let measured = match server_runtime() {
                Ok(server) => server.block_on(crate::bench::guards::run(&options)),
                Err(code) => return code,
            };
            (measured, json)
        }
        BenchSuite::Outbound {
            json,
            requests,
            plugins_dir,
        } => {
            let options = crate::bench::outbound::OutboundBenchOptions {
                plugins_dir,
                requests,
            };
            let measured = match server_runtime() {
                Ok(server) => server.block_on(crate::bench::outbound::run(&options)),
                Err(code) => return code,
            };
            (measured, json)
        }
        BenchSuite::Approvals {
            json,
            decisions,
            waiting,
            plugins_dir,
        } => {
            let options = crate::bench::approvals::ApprovalsBenchOptions {
                plugins_dir,
                decisions,
                waiting,
            };
            let measured = match server_runtime() {
                Ok(server) => server.block_on(crate::bench::approvals::run(&options)),
                Err(code) => return code,
            };
            (measured, json)
        }
        BenchSuite::Plugins {
            json,
            repeats,
            plugins,
            plugins_dir,
        } => {
            let options = crate::bench::plugins::PluginsBenchOptions {
                plugins_dir,
                repeats,
                plugins: plugins.max(1),
            };
            let measured = match server_runtime() {
                Ok(server) => server.block_on(crate::bench::plugins::run(&options)),
                Err(code) => return code,
            };
            (measured, json)
        }
        BenchSuite::Start {
            json,
            plugins,
            plugins_dir,
        } => {
            let options = crate::bench::start::StartBenchOptions {
                plugins_dir,
                plugins: plugins.max(1),
            };
            (runtime.block_on(crate::bench::start::run(&options)), json)
        }
        BenchSuite::Hostile {
            json,
            hostile,
            seconds,
            plugins_dir,
            guests_dir,
        } => {
            let options = crate::bench::hostile::HostileBenchOptions {
                plugins_dir,
                guests_dir,
                hostile: hostile.max(1),
                duration: std::time::Duration::from_secs(seconds.max(1)),
                ..Default::default()
            };
            (runtime.block_on(crate::bench::hostile::run(&options)), json)
        }
        BenchSuite::Engine {
            json,
            fanout,
            chain,
            concurrency,
            plugins_dir,
        } => {
            let options = crate::bench::engine::EngineBenchOptions {
                plugins_dir,
                fanout_jobs: fanout,
                chain_jobs: chain,
                concurrency,
            };
            (runtime.block_on(crate::bench::engine::run(&options)), json)
        }
    };
    match measured {
        Ok(measurements) => {
            crate::bench::print(&measurements, json);
            exit::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            exit::LIMIT_OR_TRAP
        }
    }
}

fn run_command(args: RunArgs) -> i32 {
    let input = match run::read_input(&args.input) {
        Ok(input) => input,
        Err(e) => {
            eprintln!("error: {e}");
            return e.exit_code();
        }
    };
    let limits = LimitsSpec {
        fuel: args.fuel,
        memory_mb: args.memory_mb,
        timeout_ms: args.timeout_ms,
        ..LimitsSpec::default()
    };
    let options = run::RunOptions {
        plugin: args.plugin,
        input,
        limits,
        in_dir: args.in_dir,
        data_dir: args.data_dir,
        config: args.config,
        story_id: args.story,
        echo_log: !args.json,
    };
    let runtime = match async_runtime() {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    let report = match runtime.block_on(run::run(options)) {
        Ok(report) => report,
        Err(e) => {
            eprintln!("error: {e}");
            return e.exit_code();
        }
    };
    if args.json {
        match serde_json::to_string(&report) {
            Ok(json) => println!("{json}"),
            Err(e) => eprintln!("error: cannot print the report: {e}"),
        }
    } else {
        if let Some(output) = &report.root.output {
            println!("{output}");
        }
        run::print_summary(&report);
    }
    report.exit_code()
}

fn new_command(
    kind: NewKind,
    name: &str,
    dir: &std::path::Path,
    sdk: Option<&std::path::Path>,
) -> i32 {
    let template = match kind {
        NewKind::Job => new::Template::Job,
        NewKind::Agent => new::Template::Agent,
    };
    match new::scaffold(template, name, dir, sdk) {
        Ok(path) => {
            println!("created {}", path.display());
            println!("  cd {} && cargo build --release", path.display());
            exit::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            exit::INVALID
        }
    }
}

/// A JSON command-line argument, or `@file` to read it from a file.
fn json_argument(arg: &str) -> Result<serde_json::Value, crate::cli::client::ClientError> {
    use crate::cli::client::ClientError;
    let text = run::read_input(arg).map_err(|e| ClientError::Usage(e.to_string()))?;
    serde_json::from_str(&text).map_err(|e| ClientError::Usage(format!("not JSON: {e}")))
}
