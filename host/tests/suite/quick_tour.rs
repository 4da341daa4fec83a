//! The README's `## Quick tour`, run as written.
//!
//! Every fenced block of the section starts with `# terminal N`. A ```sh
//! block's commands are run in that terminal: `exesdb-host run` and
//! `exesdb-host tail …` keep running (their output is that terminal's
//! screen), every other command runs to completion and must print what the
//! `# …` lines right after it say. A ```text block is what that terminal
//! shows at that point of the tour: each of its lines must appear there (in
//! a sample line, `…` stands for any text and a `HH:MM:SS.mmm` time for any
//! time). The blocks are taken in the README's order, so the test does what
//! a reader does: it runs a step, waits until the terminals show what the
//! README says, then goes on. A ```text block that shows the host's
//! `exesdb_host stopped` line is what the terminals show after Ctrl-C: the
//! test stops the running commands (SIGTERM, the host must exit 0) before
//! looking for its lines; if no block shows it, they are stopped at the end.
//!
//! What the test changes, and nothing else: `exesdb-host` is found on
//! `PATH` (the directory of the binary under test, as the README's
//! `export PATH="$PWD/target/debug:$PATH"`), `cargo run -p exesdb-host --`
//! is that binary, `ALERT_ID` is the alert id terminal 2 shows, and the
//! host listens on a free port (`EXESDB_API__LISTEN=127.0.0.1:0`) that the
//! clients are pointed at (`EXESDB_ADMIN_URL`, and the README's
//! `http://127.0.0.1:7077` in curl URLs), all in a fresh working directory.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The README's default API address, replaced by the test host's.
const DEFAULT_URL: &str = "http://127.0.0.1:7077";
/// How long one step may take to show what the README says.
const STEP: Duration = Duration::from_secs(20);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Sh,
    Text,
}

/// A fenced block of the tour.
#[derive(Debug)]
struct Block {
    terminal: usize,
    kind: Kind,
    /// The lines after the `# terminal N` marker.
    lines: Vec<String>,
}

/// A command of a ```sh block and the output the README gives for it.
#[derive(Debug)]
struct ShCommand {
    text: String,
    expected: Vec<String>,
}

fn readme() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The fenced blocks of `## Quick tour`, in order.
fn tour_blocks(readme: &str) -> Vec<Block> {
    let start = readme
        .find("\n## Quick tour\n")
        .expect("README.md has a `## Quick tour` section");
    let rest = &readme[start + 1..];
    let section = match rest[3..].find("\n## ") {
        Some(end) => &rest[..end + 3],
        None => rest,
    };
    let mut blocks = Vec::new();
    let mut lines = section.lines();
    while let Some(line) = lines.next() {
        let Some(info) = line.strip_prefix("```") else {
            continue;
        };
        let kind = match info.trim() {
            "sh" => Kind::Sh,
            "text" => Kind::Text,
            other => panic!("quick tour: a ```{other} block; the tour's blocks are sh or text"),
        };
        let mut body: Vec<String> = Vec::new();
        for l in lines.by_ref() {
            if l.starts_with("```") {
                break;
            }
            body.push(l.to_owned());
        }
        let marker = body.first().map(|l| l.trim()).unwrap_or_default();
        let terminal = marker
            .strip_prefix("# terminal ")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| {
                panic!("quick tour: a block starts with {marker:?}, not `# terminal N`")
            });
        body.remove(0);
        blocks.push(Block {
            terminal,
            kind,
            lines: body,
        });
    }
    blocks
}

/// `line` without a trailing `# comment` (a `#` after a blank, outside quotes).
fn strip_comment(line: &str) -> &str {
    let (mut single, mut double) = (false, false);
    let mut prev = ' ';
    for (i, c) in line.char_indices() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '#' if !single && !double && prev.is_whitespace() => return line[..i].trim_end(),
            _ => {}
        }
        prev = c;
    }
    line.trim_end()
}

/// The commands of a ```sh block: continuation lines joined, each with the
/// `# …` output lines that follow it.
fn commands(block: &Block) -> Vec<ShCommand> {
    let mut out: Vec<ShCommand> = Vec::new();
    let mut pending = String::new();
    for line in &block.lines {
        let trimmed = line.trim();
        if pending.is_empty() {
            if trimmed.is_empty() {
                continue;
            }
            if let Some(text) = trimmed.strip_prefix('#') {
                let cmd = out
                    .last_mut()
                    .unwrap_or_else(|| panic!("quick tour: output {line:?} before any command"));
                cmd.expected.push(text.trim().to_owned());
                continue;
            }
        }
        let code = strip_comment(line);
        if let Some(head) = code.strip_suffix('\\') {
            pending.push_str(head);
            pending.push(' ');
            continue;
        }
        pending.push_str(code);
        out.push(ShCommand {
            text: std::mem::take(&mut pending).trim().to_owned(),
            expected: Vec::new(),
        });
    }
    assert!(pending.is_empty(), "quick tour: a command ends with `\\`");
    out
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Lit(char),
    Any,
    Time,
}

fn is_time(c: &[char]) -> bool {
    c.len() >= 12
        && c[..12].iter().enumerate().all(|(i, ch)| match i {
            2 | 5 => *ch == ':',
            8 => *ch == '.',
            _ => ch.is_ascii_digit(),
        })
}

fn tokens(pattern: &str) -> Vec<Tok> {
    let c: Vec<char> = pattern.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < c.len() {
        if c[i] == '…' {
            toks.push(Tok::Any);
            i += 1;
        } else if is_time(&c[i..]) {
            toks.push(Tok::Time);
            i += 12;
        } else {
            toks.push(Tok::Lit(c[i]));
            i += 1;
        }
    }
    toks
}

fn matches_from(p: &[Tok], t: &[char]) -> bool {
    match p.split_first() {
        None => t.is_empty(),
        Some((Tok::Lit(c), rest)) => t.first() == Some(c) && matches_from(rest, &t[1..]),
        Some((Tok::Time, rest)) => is_time(t) && matches_from(rest, &t[12..]),
        Some((Tok::Any, rest)) => (0..=t.len()).any(|k| matches_from(rest, &t[k..])),
    }
}

/// Whether the whole of `line` is what the README's sample `pattern` shows.
fn matches(pattern: &str, line: &str) -> bool {
    let t: Vec<char> = line.trim_end().chars().collect();
    matches_from(&tokens(pattern.trim_end()), &t)
}

/// What one terminal shows: the lines its long-running commands printed.
#[derive(Debug, Default, Clone)]
struct Screen(Arc<Mutex<Vec<String>>>);

impl Screen {
    fn follow(&self, from: impl Read + Send + 'static) {
        let lines = Arc::clone(&self.0);
        std::thread::spawn(move || {
            for line in BufReader::new(from).lines() {
                let Ok(line) = line else { break };
                lines.lock().unwrap().push(line);
            }
        });
    }

    fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    /// The first line for which `pick` gives something, waiting up to `STEP`.
    fn wait_for<T>(&self, what: &str, mut pick: impl FnMut(&str) -> Option<T>) -> T {
        let deadline = Instant::now() + STEP;
        loop {
            if let Some(found) = self.lines().iter().find_map(|l| pick(l)) {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "waited {STEP:?} for {what}; the terminal shows:\n{}",
                self.lines().join("\n")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A long-running command; killed if the test ends early.
struct Running {
    command: String,
    child: Child,
}

impl Running {
    fn terminate(&mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -TERM {}", self.command);
    }

    fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "`{}` did not exit within {timeout:?} of SIGTERM",
                self.command
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The tour's shell: a fresh working directory, the binary on `PATH`, no
/// `EXESDB_*` settings of the caller's.
struct Shell {
    dir: PathBuf,
    path: String,
    admin: Option<String>,
}

impl Shell {
    fn new(dir: &Path) -> Shell {
        let bin_dir = Path::new(env!("CARGO_BIN_EXE_exesdb-host"))
            .parent()
            .unwrap()
            .to_owned();
        let path = std::env::join_paths(std::iter::once(bin_dir).chain(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        )))
        .unwrap();
        Shell {
            dir: dir.to_owned(),
            path: path.into_string().unwrap(),
            admin: None,
        }
    }

    /// `text` as the test runs it (see the module's documentation).
    fn adapt(&self, text: &str) -> String {
        let text = text.replace("cargo run -p exesdb-host --", "exesdb-host");
        match &self.admin {
            Some(url) => text.replace(DEFAULT_URL, url),
            None => text,
        }
    }

    fn command(&self, text: &str) -> Command {
        let mut c = Command::new("sh");
        c.arg("-c").arg(text).current_dir(&self.dir);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("EXESDB_") {
                c.env_remove(k);
            }
        }
        c.env("PATH", &self.path)
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG");
        match &self.admin {
            Some(url) => c.env("EXESDB_ADMIN_URL", url),
            // Only the host starts before the address is known.
            None => c.env("EXESDB_API__LISTEN", "127.0.0.1:0"),
        };
        c
    }

    /// Starts a command that runs until stopped; its stdout and stderr go
    /// to `screen`.
    fn spawn(&self, text: &str, screen: &Screen) -> Running {
        let mut child = self
            .command(&format!("exec {text}"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{text}: {e}"));
        screen.follow(child.stdout.take().unwrap());
        screen.follow(child.stderr.take().unwrap());
        Running {
            command: text.to_owned(),
            child,
        }
    }

    /// Runs a command to completion; its stdout.
    fn run(&self, text: &str) -> String {
        let mut child = self
            .command(text)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{text}: {e}"));
        let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
        let stdout = std::thread::spawn(move || {
            let mut s = String::new();
            out.read_to_string(&mut s).map(|_| s)
        });
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            err.read_to_string(&mut s).map(|_| s)
        });
        let deadline = Instant::now() + STEP;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("`{text}` did not finish within {STEP:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let (stdout, stderr) = (
            stdout.join().unwrap().unwrap(),
            stderr.join().unwrap().unwrap(),
        );
        assert!(
            status.success(),
            "`{text}`: {status}\nstdout: {stdout}\nstderr: {stderr}"
        );
        stdout
    }
}

/// A command the README runs until Ctrl-C.
fn long_running(text: &str) -> bool {
    text.starts_with("exesdb-host run") || text.starts_with("exesdb-host tail ")
}

/// The id of the threshold alerter's `SystemAlert` in a `tail alerts` line.
fn threshold_alert_id(line: &str) -> Option<String> {
    let (_, json) = line.split_once(" SystemAlert ")?;
    let payload: serde_json::Value = serde_json::from_str(json).ok()?;
    (payload["source"] == "threshold-alerter-rs" && payload["category"] == "performance")
        .then(|| payload["alert_id"].as_str().map(str::to_owned))
        .flatten()
}

/// The host's last line, `🔴 exesdb_host stopped`, without its emoji.
const STOPPED: &str = "exesdb_host stopped";

/// Ctrl-C / SIGTERM: the tails stop, the host stops cleanly and exits 0.
fn stop(running: &mut [(usize, Running)], screens: &[Screen]) {
    for (_, r) in running.iter_mut().rev() {
        r.terminate();
    }
    for (terminal, r) in running.iter_mut().rev() {
        let status = r.wait(STEP);
        if *terminal == 1 {
            assert!(
                status.success(),
                "the host exits 0 on SIGTERM: {status}\n{}",
                screens[1].lines().join("\n")
            );
        }
    }
}

#[test]
fn the_readme_quick_tour_runs_as_written() {
    let started = Instant::now();
    let blocks = tour_blocks(&readme());
    let terminals: std::collections::BTreeSet<usize> = blocks.iter().map(|b| b.terminal).collect();
    assert_eq!(
        terminals.into_iter().collect::<Vec<_>>(),
        [1, 2, 3],
        "the tour uses three terminals: {blocks:#?}"
    );

    let dir = tempfile::tempdir().unwrap();
    let mut shell = Shell::new(dir.path());
    let screens: Vec<Screen> = (0..=3).map(|_| Screen::default()).collect();
    let mut running: Vec<(usize, Running)> = Vec::new();
    let mut alert_id: Option<String> = None;
    let mut acknowledged = false;

    let mut stopped = false;
    for block in &blocks {
        let screen = &screens[block.terminal];
        match block.kind {
            Kind::Text => {
                if !stopped && block.lines.iter().any(|l| l.contains(STOPPED)) {
                    stop(&mut running, &screens);
                    stopped = true;
                }
                for sample in block.lines.iter().filter(|l| !l.trim().is_empty()) {
                    let sample = shell.adapt(sample);
                    screen.wait_for(
                        &format!("terminal {} to show {sample:?}", block.terminal),
                        |line| matches(&sample, line).then_some(()),
                    );
                }
            }
            Kind::Sh => {
                for cmd in commands(block) {
                    let mut text = shell.adapt(cmd.text.trim_end_matches('&').trim_end());
                    if long_running(&text) {
                        let is_host = text.starts_with("exesdb-host run");
                        running.push((block.terminal, shell.spawn(&text, screen)));
                        if is_host {
                            // The address the host bound, for the other terminals.
                            let url = screen.wait_for("the host's `API on` line", |l| {
                                l.split_once("API on ")
                                    .and_then(|(_, u)| u.trim().strip_suffix("/v1"))
                                    .map(str::to_owned)
                            });
                            shell.admin = Some(url);
                        }
                        continue;
                    }
                    assert!(
                        shell.admin.is_some(),
                        "quick tour: `{text}` runs before the host is started"
                    );
                    if text.contains("ALERT_ID") {
                        let id = screens[2].wait_for(
                            "the threshold alerter's SystemAlert in terminal 2",
                            threshold_alert_id,
                        );
                        text = text.replace("ALERT_ID", &id);
                        acknowledged = text.contains("alert ack");
                        alert_id = Some(id);
                    }
                    let stdout = shell.run(&text);
                    let got: Vec<&str> = stdout.lines().collect();
                    let want: Vec<String> = cmd.expected.iter().map(|e| shell.adapt(e)).collect();
                    assert!(
                        got.len() == want.len()
                            && want.iter().zip(&got).all(|(w, g)| matches(w, g)),
                        "`{text}` printed\n{stdout}\nthe README says\n{}",
                        want.join("\n")
                    );
                }
            }
        }
    }

    // What the README promises, whatever its sample lines: the host's
    // metrics counted the appended events, the threshold alerter fired and
    // its alert was acknowledged in terminal 2.
    let id = alert_id.expect("the tour acknowledges the threshold alerter's alert");
    assert!(
        acknowledged,
        "the tour runs `exesdb-host alert ack ALERT_ID`"
    );
    screens[1].wait_for("a METRICS SUMMARY line in terminal 1", |l| {
        l.contains("📉 METRICS SUMMARY: Store default - ")
            .then_some(())
    });
    screens[2].wait_for("the AlertAck in terminal 2", |l| {
        (l.contains(&format!(" alerts alert_ack:{id} AlertAck ")) && l.contains(&id)).then_some(())
    });

    if !stopped {
        stop(&mut running, &screens);
    }
    screens[1].wait_for("the host's `stopped` line", |l| {
        l.contains(&format!("🔴 {STOPPED}")).then_some(())
    });
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the tour took {:?}",
        started.elapsed()
    );
}

#[test]
fn samples_match_only_what_they_show() {
    assert!(matches(
        "22:58:39.161 INFO    📉 METRICS SUMMARY: Store default - … eps, 10000 total, 3 active subs",
        "09:01:02.003 INFO    📉 METRICS SUMMARY: Store default - 1703 eps, 10000 total, 3 active subs"
    ));
    assert!(!matches(
        "22:58:39.161 INFO    📉 METRICS SUMMARY: Store default - … eps, 10000 total, 3 active subs",
        "09:01:02.003 INFO    📉 METRICS SUMMARY: Store default - 0 eps, 0 total, 3 active subs"
    ));
    assert!(!matches("acknowledged …", "error: no such alert"));
    assert!(matches(
        "acknowledged threshold-alerter-rs-…",
        "acknowledged threshold-alerter-rs-01a2"
    ));
    assert_eq!(
        strip_comment("exesdb-host tail health 'health_summary:>' &   # in the background"),
        "exesdb-host tail health 'health_summary:>' &"
    );
    assert_eq!(
        strip_comment("echo '# not a comment'"),
        "echo '# not a comment'"
    );
}
