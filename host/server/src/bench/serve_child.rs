//! A `warren serve` child process, as an operator runs it: the benchmarks
//! that measure the server drive this, so their figures are the product's
//! (its own process and runtime, nothing of the load generator's).

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;

/// A running `warren serve`; killed if dropped before [`ServeChild::stop`].
pub struct ServeChild {
    child: Child,
    pub addr: SocketAddr,
}

impl ServeChild {
    /// Starts `warren serve` (this same binary) on a free loopback port
    /// and returns once it listens.
    pub async fn start(data_dir: &Path, plugins_dir: &Path) -> anyhow::Result<Self> {
        let listen = SocketAddr::from(([127, 0, 0, 1], 0));
        let mut child = Self::spawn(data_dir, plugins_dir, listen, None)?;
        let stdout = child.stdout.take().context("the server's stdout")?;
        // Its first line says where it listens.
        let line = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            BufReader::new(stdout).read_line(&mut line).map(|_| line)
        })
        .await??;
        let addr = line
            .trim()
            .strip_prefix("warren listening on http://")
            .and_then(|addr| addr.parse().ok());
        let Some(addr) = addr else {
            let _ = child.kill();
            anyhow::bail!("warren serve did not start: {line:?}");
        };
        Ok(Self { child, addr })
    }

    /// Starts `warren serve` on `listen` and returns at once, for a caller
    /// that times the start itself; `cache_dir` replaces `DATA_DIR/cache`.
    pub fn spawn_on(
        data_dir: &Path,
        plugins_dir: &Path,
        listen: SocketAddr,
        cache_dir: Option<&Path>,
    ) -> anyhow::Result<Self> {
        let child = Self::spawn(data_dir, plugins_dir, listen, cache_dir)?;
        Ok(Self {
            child,
            addr: listen,
        })
    }

    fn spawn(
        data_dir: &Path,
        plugins_dir: &Path,
        listen: SocketAddr,
        cache_dir: Option<&Path>,
    ) -> anyhow::Result<Child> {
        let mut command = Command::new(std::env::current_exe()?);
        command
            .arg("serve")
            .arg("--listen")
            .arg(listen.to_string())
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--plugins-dir")
            .arg(plugins_dir)
            .env_remove("WARREN_CACHE_DIR")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(cache_dir) = cache_dir {
            command.env("WARREN_CACHE_DIR", cache_dir);
        }
        command.spawn().context("starting warren serve")
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Asks the server to stop (SIGTERM) and waits for it to exit.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let pid = rustix::process::Pid::from_child(&self.child);
        rustix::process::kill_process(pid, rustix::process::Signal::TERM)?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait()? {
                anyhow::ensure!(status.success(), "warren serve exited with {status}");
                return Ok(());
            }
            anyhow::ensure!(Instant::now() < deadline, "warren serve did not stop");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for ServeChild {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
