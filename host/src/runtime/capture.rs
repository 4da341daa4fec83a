//! Captures a plugin's stdout and stderr: each complete line becomes a log
//! record tagged with the plugin's name (so it reaches the console and the
//! `logging` channel), and the last stderr lines are kept for trap reports
//! and the plugin's status.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

/// Longest line kept; longer lines are cut.
const MAX_LINE: usize = 8 * 1024;
/// How many recent lines are kept (for trap reports and the status).
pub(crate) const RECENT_LINES: usize = 20;

#[derive(Debug, Default)]
struct Buffer {
    pending: Vec<u8>,
    recent: VecDeque<String>,
}

/// One captured stream of one plugin. Clones share the buffer.
#[derive(Debug, Clone)]
pub(crate) struct Capture {
    plugin: Arc<str>,
    stream: &'static str,
    buf: Arc<Mutex<Buffer>>,
    /// The plugin's secrets, redacted from every line.
    secrets: Arc<super::secrets::Secrets>,
}

impl Capture {
    pub(crate) fn new(
        plugin: &str,
        stream: &'static str,
        secrets: Arc<super::secrets::Secrets>,
    ) -> Capture {
        Capture {
            plugin: plugin.into(),
            stream,
            buf: Arc::default(),
            secrets,
        }
    }

    fn push(&self, bytes: &[u8]) {
        let mut buf = self.buf.lock();
        buf.pending.extend_from_slice(bytes);
        while let Some(pos) = buf.pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.pending.drain(..=pos).collect();
            self.emit(&mut buf, &line[..line.len() - 1]);
        }
        if buf.pending.len() > MAX_LINE {
            let line = std::mem::take(&mut buf.pending);
            self.emit(&mut buf, &line);
        }
    }

    fn emit(&self, buf: &mut Buffer, line: &[u8]) {
        let raw = String::from_utf8_lossy(&line[..line.len().min(MAX_LINE)]);
        let text = self.secrets.redact(&raw).into_owned();
        if self.stream == "stderr" {
            tracing::warn!(plugin = &*self.plugin, stream = self.stream, "{text}");
        } else {
            tracing::info!(plugin = &*self.plugin, stream = self.stream, "{text}");
        }
        if buf.recent.len() == RECENT_LINES {
            buf.recent.pop_front();
        }
        buf.recent.push_back(text);
    }

    /// Emits a trailing partial line, if any.
    pub(crate) fn flush_partial(&self) {
        let mut buf = self.buf.lock();
        if !buf.pending.is_empty() {
            let line = std::mem::take(&mut buf.pending);
            self.emit(&mut buf, &line);
        }
    }

    /// Forgets the kept lines (a new instance starts), emitting a trailing
    /// partial line first.
    pub(crate) fn clear_recent(&self) {
        self.flush_partial();
        self.buf.lock().recent.clear();
    }

    /// The most recent lines, oldest first, a trailing partial line
    /// included (it is emitted as a line of its own).
    pub(crate) fn recent(&self) -> Vec<String> {
        self.flush_partial();
        self.lines()
    }

    /// The most recent complete lines, oldest first (at most
    /// [`RECENT_LINES`]), without touching a partial line still being
    /// written, so looking does not split it.
    pub(crate) fn lines(&self) -> Vec<String> {
        self.buf.lock().recent.iter().cloned().collect()
    }
}

impl IsTerminal for Capture {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Capture {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for Capture {
    async fn ready(&mut self) {}
}

impl OutputStream for Capture {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(64 * 1024)
    }
}

impl tokio::io::AsyncWrite for Capture {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.push(buf);
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
    fn lines_are_the_last_complete_ones_oldest_first() {
        let c = Capture::new("p", "stderr", Arc::default());
        for n in 0..RECENT_LINES + 5 {
            c.push(format!("line {n}\n").as_bytes());
        }
        c.push(b"partial");
        let lines = c.lines();
        assert_eq!(lines.len(), RECENT_LINES);
        assert_eq!(lines[0], "line 5");
        assert_eq!(
            lines[RECENT_LINES - 1],
            format!("line {}", RECENT_LINES + 4)
        );
        // Looking leaves the partial line alone: it completes later.
        c.push(b" line\n");
        assert_eq!(c.lines().last().unwrap(), "partial line");
        c.clear_recent();
        assert!(c.lines().is_empty());
    }
}
