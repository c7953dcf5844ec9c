//! `warren:plugin/log` and the capture of guest stdout/stderr: every line
//! lands in the attempt's bounded log and in `tracing`.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use wasmtime::component::{HasSelf, Linker};

use crate::bindings::log::{Host, Level};

/// Where a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogSource {
    Log,
    Stdout,
    Stderr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl From<Level> for LogLevel {
    fn from(level: Level) -> Self {
        match level {
            Level::Trace => Self::Trace,
            Level::Debug => Self::Debug,
            Level::Info => Self::Info,
            Level::Warn => Self::Warn,
            Level::Error => Self::Error,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// Milliseconds since the attempt started.
    pub at_ms: u64,
    pub source: LogSource,
    pub level: LogLevel,
    pub message: String,
}

/// The attempt's log as it was when the attempt ended.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapturedLog {
    pub lines: Vec<LogLine>,
    /// Bytes the guest wrote beyond the log limit, dropped.
    pub dropped_bytes: u64,
}

/// What a line costs against the log budget beyond its bytes.
pub const LINE_OVERHEAD: usize = 32;

/// Receives each line as it is logged (e.g. `warren run` prints them live).
pub type LogSink = Arc<dyn Fn(&LogLine) + Send + Sync>;

/// The log of one attempt, shared by the log interface and the stdio streams.
/// Bounded: once `max_bytes` are kept, further bytes are counted and dropped.
#[derive(Clone)]
pub struct AttemptLog {
    inner: Arc<Mutex<LogBuffer>>,
}

struct LogBuffer {
    started: Instant,
    max_bytes: usize,
    kept_bytes: usize,
    captured: CapturedLog,
    /// Partial stdout/stderr lines waiting for their newline.
    pending_stdout: Vec<u8>,
    pending_stderr: Vec<u8>,
    sink: Option<LogSink>,
    attempt_id: String,
}

impl AttemptLog {
    pub fn new(attempt_id: &str, max_bytes: usize, sink: Option<LogSink>) -> Self {
        Self {
            inner: Arc::new(Mutex::new(LogBuffer {
                started: Instant::now(),
                max_bytes,
                kept_bytes: 0,
                captured: CapturedLog::default(),
                pending_stdout: Vec::new(),
                pending_stderr: Vec::new(),
                sink,
                attempt_id: attempt_id.to_owned(),
            })),
        }
    }

    pub fn push(&self, source: LogSource, level: LogLevel, message: &str) {
        self.lock().push(source, level, message);
    }

    /// Appends raw stdio bytes, splitting them into lines.
    pub fn write_stdio(&self, source: LogSource, bytes: &[u8]) {
        self.lock().write_stdio(source, bytes);
    }

    /// Flushes partial lines and returns everything kept.
    pub fn finish(&self) -> CapturedLog {
        let mut buffer = self.lock();
        for source in [LogSource::Stdout, LogSource::Stderr] {
            let pending = std::mem::take(buffer.pending(source));
            if !pending.is_empty() {
                let line = String::from_utf8_lossy(&pending).into_owned();
                buffer.push(source, stdio_level(source), &line);
            }
        }
        buffer.captured.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LogBuffer> {
        // A poisoned log only means a panic elsewhere; the data is still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn stdio_level(source: LogSource) -> LogLevel {
    match source {
        LogSource::Stderr => LogLevel::Warn,
        _ => LogLevel::Info,
    }
}

impl LogBuffer {
    fn pending(&mut self, source: LogSource) -> &mut Vec<u8> {
        match source {
            LogSource::Stderr => &mut self.pending_stderr,
            _ => &mut self.pending_stdout,
        }
    }

    fn push(&mut self, source: LogSource, level: LogLevel, message: &str) {
        // Each line costs its bytes plus a fixed overhead, so a guest writing
        // empty lines still fills the budget instead of growing the log.
        let room = self.max_bytes - self.kept_bytes;
        if room <= LINE_OVERHEAD {
            self.captured.dropped_bytes += message.len() as u64;
            return;
        }
        let kept = warren_vocabulary::text::prefix(message, room - LINE_OVERHEAD);
        self.captured.dropped_bytes += (message.len() - kept.len()) as u64;
        self.kept_bytes += kept.len() + LINE_OVERHEAD;
        let line = LogLine {
            at_ms: self.started.elapsed().as_millis() as u64,
            source,
            level,
            message: kept.to_owned(),
        };
        trace_line(&self.attempt_id, &line);
        if let Some(sink) = &self.sink {
            sink(&line);
        }
        self.captured.lines.push(line);
    }

    fn write_stdio(&mut self, source: LogSource, bytes: &[u8]) {
        if self.max_bytes - self.kept_bytes <= LINE_OVERHEAD {
            // Nothing more will be kept: skip the line splitting.
            self.captured.dropped_bytes += bytes.len() as u64;
            return;
        }
        let mut rest = bytes;
        while let Some(newline) = rest.iter().position(|&b| b == b'\n') {
            let mut line = std::mem::take(self.pending(source));
            line.extend_from_slice(&rest[..newline]);
            rest = &rest[newline + 1..];
            let text = String::from_utf8_lossy(&line).into_owned();
            self.push(source, stdio_level(source), &text);
        }
        // A line without newline is held, but never beyond the log limit.
        let room = self
            .max_bytes
            .saturating_sub(self.kept_bytes + self.pending(source).len());
        let held = rest.len().min(room);
        self.pending(source).extend_from_slice(&rest[..held]);
        self.captured.dropped_bytes += (rest.len() - held) as u64;
    }
}

/// `tracing` target of guest log lines, so they can be filtered apart.
pub const GUEST_LOG_TARGET: &str = "warren::guest";

fn trace_line(attempt_id: &str, line: &LogLine) {
    let message = line.message.as_str();
    let source = line.source;
    match line.level {
        LogLevel::Trace => {
            tracing::trace!(target: GUEST_LOG_TARGET, attempt = attempt_id, ?source, "{message}")
        }
        LogLevel::Debug => {
            tracing::debug!(target: GUEST_LOG_TARGET, attempt = attempt_id, ?source, "{message}")
        }
        LogLevel::Info => {
            tracing::info!(target: GUEST_LOG_TARGET, attempt = attempt_id, ?source, "{message}")
        }
        LogLevel::Warn => {
            tracing::warn!(target: GUEST_LOG_TARGET, attempt = attempt_id, ?source, "{message}")
        }
        LogLevel::Error => {
            tracing::error!(target: GUEST_LOG_TARGET, attempt = attempt_id, ?source, "{message}")
        }
    }
}

impl Host for AttemptLog {
    #[tracing::instrument(name = "warren.log", skip_all)]
    fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        // `message` is bounded by the guest's memory cap; the log keeps at
        // most `max_bytes` of all messages together.
        self.push(LogSource::Log, level.into(), &message);
        Ok(())
    }
}

/// Adds `warren:plugin/log`; `get` finds this capability's state in the
/// store's data.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut AttemptLog,
) -> anyhow::Result<()> {
    crate::bindings::log::add_to_linker::<T, HasSelf<AttemptLog>>(linker, get)?;
    Ok(())
}

/// Guest stdout or stderr, written into the attempt log.
pub struct CapturedStdio {
    log: AttemptLog,
    source: LogSource,
}

impl CapturedStdio {
    pub fn new(log: AttemptLog, source: LogSource) -> Self {
        Self { log, source }
    }
}

impl wasmtime_wasi::cli::IsTerminal for CapturedStdio {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl wasmtime_wasi::cli::StdoutStream for CapturedStdio {
    fn p2_stream(&self) -> Box<dyn wasmtime_wasi::p2::OutputStream> {
        Box::new(StdioWriter {
            log: self.log.clone(),
            source: self.source,
        })
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(StdioWriter {
            log: self.log.clone(),
            source: self.source,
        })
    }
}

struct StdioWriter {
    log: AttemptLog,
    source: LogSource,
}

/// Largest write the guest is invited to make at once.
const STDIO_WRITE_BUDGET: usize = 64 << 10;

#[async_trait::async_trait]
impl wasmtime_wasi::p2::Pollable for StdioWriter {
    async fn ready(&mut self) {}
}

impl wasmtime_wasi::p2::OutputStream for StdioWriter {
    fn write(&mut self, bytes: bytes::Bytes) -> wasmtime_wasi::p2::StreamResult<()> {
        // Always accepted: past the log limit the bytes are counted and dropped,
        // so a flooding guest keeps running instead of panicking on a write error.
        self.log.write_stdio(self.source, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> wasmtime_wasi::p2::StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> wasmtime_wasi::p2::StreamResult<usize> {
        Ok(STDIO_WRITE_BUDGET)
    }
}

impl tokio::io::AsyncWrite for StdioWriter {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.log.write_stdio(self.source, buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stdio_is_split_into_lines_and_partial_lines_are_kept_at_the_end() {
        let log = AttemptLog::new("t", 1024, None);
        log.write_stdio(LogSource::Stdout, b"first\nsec");
        log.write_stdio(LogSource::Stdout, b"ond\nthird");
        log.write_stdio(LogSource::Stderr, b"oops\n");
        let captured = log.finish();
        let lines: Vec<(LogSource, &str)> = captured
            .lines
            .iter()
            .map(|l| (l.source, l.message.as_str()))
            .collect();
        assert_eq!(
            lines,
            [
                (LogSource::Stdout, "first"),
                (LogSource::Stdout, "second"),
                (LogSource::Stderr, "oops"),
                (LogSource::Stdout, "third"),
            ]
        );
        assert_eq!(captured.dropped_bytes, 0);
    }

    #[test]
    fn bytes_past_the_limit_are_counted_not_kept() {
        let log = AttemptLog::new("t", LINE_OVERHEAD + 10, None);
        log.push(LogSource::Log, LogLevel::Info, "0123456789abcdef");
        log.push(LogSource::Log, LogLevel::Info, "more");
        log.write_stdio(LogSource::Stdout, b"and more\n");
        let captured = log.finish();
        assert_eq!(captured.lines.len(), 1);
        assert_eq!(captured.lines[0].message, "0123456789");
        assert_eq!(captured.dropped_bytes, 6 + 4 + 9);
    }

    #[test]
    fn empty_lines_cost_budget_too() {
        let log = AttemptLog::new("t", 10 * LINE_OVERHEAD, None);
        log.write_stdio(LogSource::Stdout, &[b'\n'; 10_000]);
        let captured = log.finish();
        assert_eq!(
            captured.lines.len(),
            9,
            "the tenth line would not fit with its overhead"
        );
    }
}
