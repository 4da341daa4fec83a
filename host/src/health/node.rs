//! Real health figures of this machine and process, turned into the spec's
//! [`NodeHealth`] message.
//!
//! Two steps, kept apart so each can be tested on its own:
//!
//! 1. [`read_figures`] reads the operating system (Linux only) into a
//!    [`NodeFigures`]:
//!    - `/proc/loadavg`: the 1-minute load average (first field);
//!    - `/proc/meminfo`: `MemTotal` and `MemAvailable` (kernels older than
//!      3.14 lack `MemAvailable`; then `MemFree + Buffers + Cached` stands in);
//!      memory in use is `1 - MemAvailable / MemTotal`;
//!    - `/proc/self/statm`: this process's resident set size (second field,
//!      in pages, times the system page size);
//!    - `statvfs(2)` on a caller-chosen path (normally the data directory):
//!      disk in use is `1 - f_bavail / f_blocks`, so blocks reserved for root
//!      count as used, since this process cannot write to them; the total is
//!      `f_blocks * f_frsize`;
//!    - the CPU count from [`std::thread::available_parallelism`], which
//!      honours affinity masks and cgroup quotas.
//!
//!    - `/proc/self/stat`: this process's CPU time (`utime + stime`, fields
//!      14 and 15, in clock ticks of `sysconf(_SC_CLK_TCK)`), read by
//!      [`CpuSampler`] so that the CPU percentage is the time used between
//!      two samples over the wall-clock time between them;
//!    - `/proc/self/fd`: this process's open file descriptors.
//!
//!    Every "fraction" is a share between 0.0 (nothing used) and 1.0 (all
//!    used), never a percentage (the CPU figure of [`CpuSampler`] is a
//!    percentage of one core, as `ResourceUsage` wants it). The text parsers
//!    ([`parse_loadavg`], [`parse_meminfo`], [`parse_statm_resident_pages`],
//!    [`parse_stat_cpu_ticks`]) are pure functions over the file contents,
//!    so they can be tested with fixed samples. They are kept rather than
//!    the `procfs` or `sysinfo` crates (issue #13): one [`read_figures`]
//!    costs about 0.1 ms (`host/benches/node.rs`), once per health interval;
//!    procfs is not in the tree and would turn on rustix's `system` feature,
//!    rebuilding rustix and wasmtime above it; sysinfo reads far more.
//!
//! 2. [`node_health`] compares the figures with [`Thresholds`] and builds the
//!    message. There are three checks: `memory` (used fraction), `disk` (used
//!    fraction) and `load` (1-minute load average divided by the CPU count).
//!    A check is `unhealthy` when its value is at or above the unhealthy
//!    threshold, `degraded` when at or above the degraded threshold, and
//!    `healthy` otherwise; the node's status is the worst of the three
//!    (`unhealthy` > `degraded` > `healthy`). A value that is not a finite
//!    number (only possible with hand-made figures) is `unknown`, which ranks
//!    between `healthy` and `degraded`.

use std::fs;
use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use crate::messages::health::{HealthStatus, NodeHealth};

/// Where the load average is read from.
const LOADAVG_PATH: &str = "/proc/loadavg";
/// Where the memory figures are read from.
const MEMINFO_PATH: &str = "/proc/meminfo";
/// Where this process's memory figures are read from.
const STATM_PATH: &str = "/proc/self/statm";
/// Where this process's CPU times are read from.
const STAT_PATH: &str = "/proc/self/stat";
/// Where this process's open file descriptors are listed.
const FD_DIR: &str = "/proc/self/fd";

/// Figures read from the OS by [`read_figures`]; the input of [`node_health`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NodeFigures {
    /// 1-minute load average (runnable plus uninterruptible tasks), >= 0.
    pub load_avg: f64,
    /// Number of CPUs this process may run on (at least 1 when read).
    pub cpus: usize,
    /// Fraction (0.0..=1.0) of physical memory in use: `1 - available/total`.
    pub memory_used_fraction: f64,
    /// Physical memory of the machine, in bytes.
    pub memory_total_bytes: u64,
    /// Resident set size of this process, in bytes.
    pub process_rss_bytes: u64,
    /// Fraction (0.0..=1.0) of the file system's blocks unavailable to
    /// unprivileged users: `1 - f_bavail/f_blocks`.
    pub disk_used_fraction: f64,
    /// Size of the file system, in bytes.
    pub disk_total_bytes: u64,
}

/// Thresholds turning [`NodeFigures`] into a [`HealthStatus`]; a check is at
/// a level when its value is at or above that level's threshold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// Memory used fraction from which the node is degraded (default 0.90).
    pub memory_degraded: f64,
    /// Memory used fraction from which the node is unhealthy (default 0.98).
    pub memory_unhealthy: f64,
    /// Disk used fraction from which the node is degraded (default 0.90).
    pub disk_degraded: f64,
    /// Disk used fraction from which the node is unhealthy (default 0.98).
    pub disk_unhealthy: f64,
    /// Load average per CPU from which the node is degraded (default 2.0).
    pub load_per_cpu_degraded: f64,
    /// Load average per CPU from which the node is unhealthy (default 8.0).
    pub load_per_cpu_unhealthy: f64,
}

impl Default for Thresholds {
    /// 90 % / 98 % for memory and disk, 2 / 8 runnable tasks per CPU for load.
    fn default() -> Self {
        Thresholds {
            memory_degraded: 0.90,
            memory_unhealthy: 0.98,
            disk_degraded: 0.90,
            disk_unhealthy: 0.98,
            load_per_cpu_degraded: 2.0,
            load_per_cpu_unhealthy: 8.0,
        }
    }
}

/// Parses the contents of `/proc/loadavg` (`"0.52 0.58 0.59 1/467 12345"`)
/// into the 1-minute load average; `None` if the first field is missing, not
/// a number, negative or not finite.
pub fn parse_loadavg(text: &str) -> Option<f64> {
    let load: f64 = text.split_whitespace().next()?.parse().ok()?;
    (load.is_finite() && load >= 0.0).then_some(load)
}

/// Parses the contents of `/proc/meminfo` into `(total_bytes,
/// available_bytes)`.
///
/// Values are in kB (KiB) as the kernel writes them; a value without a unit
/// is taken as bytes. If `MemAvailable` is absent (kernels before 3.14),
/// `MemFree + Buffers + Cached` is used instead. The available figure is
/// capped at the total. `None` if `MemTotal` is missing or zero, or neither
/// `MemAvailable` nor all of its stand-ins are present.
pub fn parse_meminfo(text: &str) -> Option<(u64, u64)> {
    let mut total = None;
    let mut available = None;
    let (mut free, mut buffers, mut cached) = (None, None, None);
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let slot = match key.trim() {
            "MemTotal" => &mut total,
            "MemAvailable" => &mut available,
            "MemFree" => &mut free,
            "Buffers" => &mut buffers,
            "Cached" => &mut cached,
            _ => continue,
        };
        *slot = Some(parse_meminfo_value(rest)?);
    }
    let total = total.filter(|&t| t > 0)?;
    let available = match available {
        Some(a) => a,
        None => free?.checked_add(buffers?)?.checked_add(cached?)?,
    };
    Some((total, available.min(total)))
}

/// Parses the value part of a `/proc/meminfo` line (`"  16318412 kB"`) into
/// bytes.
fn parse_meminfo_value(rest: &str) -> Option<u64> {
    let mut fields = rest.split_whitespace();
    let number: u64 = fields.next()?.parse().ok()?;
    match fields.next() {
        None => Some(number),
        Some(unit) if unit.eq_ignore_ascii_case("kB") => number.checked_mul(1024),
        Some(_) => None,
    }
}

/// Parses the contents of `/proc/self/statm` (`"size resident shared text lib
/// data dt"`, all in pages) into the resident page count; `None` if the
/// second field is missing or not a number.
pub fn parse_statm_resident_pages(text: &str) -> Option<u64> {
    text.split_whitespace().nth(1)?.parse().ok()
}

/// Parses the contents of `/proc/self/stat` into the CPU time the process
/// has used in user and kernel mode (`utime + stime`, fields 14 and 15), in
/// clock ticks. The command name (field 2) is in parentheses and may itself
/// hold spaces and parentheses, so fields are counted after its last `)`.
/// `None` if the line is cut short or a field is not a number.
pub fn parse_stat_cpu_ticks(text: &str) -> Option<u64> {
    let rest = &text[text.rfind(')')? + 1..];
    // After the name: field 3 (state) is the first, so field 14 is the 12th.
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    utime.checked_add(stime)
}

/// CPU time (user + kernel) this process has used since it started.
///
/// # Errors
/// An error naming `/proc/self/stat` if it cannot be read or parsed.
pub fn read_process_cpu_time() -> io::Result<Duration> {
    let ticks =
        parse_stat_cpu_ticks(&read_proc(STAT_PATH)?).ok_or_else(|| unparsable(STAT_PATH))?;
    let hz = rustix::param::clock_ticks_per_second().max(1);
    Ok(Duration::from_nanos(
        u64::try_from(u128::from(ticks) * 1_000_000_000 / u128::from(hz)).unwrap_or(u64::MAX),
    ))
}

/// Resident set size of this process, in bytes (`/proc/self/statm`).
///
/// # Errors
/// An error naming `/proc/self/statm` if it cannot be read or parsed.
pub fn read_process_rss_bytes() -> io::Result<u64> {
    let resident_pages = parse_statm_resident_pages(&read_proc(STATM_PATH)?)
        .ok_or_else(|| unparsable(STATM_PATH))?;
    Ok(resident_pages.saturating_mul(rustix::param::page_size() as u64))
}

/// Number of file descriptors (files, sockets, pipes, …) this process holds
/// open (the entries of `/proc/self/fd`, less the one listing them).
///
/// # Errors
/// An error naming `/proc/self/fd` if it cannot be listed.
pub fn read_open_handles() -> io::Result<u64> {
    let entries = fs::read_dir(FD_DIR)
        .map_err(|e| io::Error::new(e.kind(), format!("reading {FD_DIR}: {e}")))?;
    // The directory handle doing the listing is one of the entries.
    Ok((entries.count() as u64).saturating_sub(1))
}

/// CPU used over wall-clock time, as a percentage of one core (above 100
/// when several cores were busy); 0.0 for an empty wall-clock span.
pub fn cpu_percent(cpu: Duration, wall: Duration) -> f64 {
    if wall.is_zero() {
        return 0.0;
    }
    cpu.as_secs_f64() / wall.as_secs_f64() * 100.0
}

/// Measures this process's CPU use between successive samples.
#[derive(Debug, Clone)]
pub struct CpuSampler {
    last: Option<(Instant, Duration)>,
}

impl CpuSampler {
    /// A sampler whose first interval starts now.
    pub fn new() -> CpuSampler {
        CpuSampler {
            last: read_process_cpu_time()
                .ok()
                .map(|cpu| (Instant::now(), cpu)),
        }
    }

    /// The percentage of one core this process used since the previous
    /// sample (or since the sampler was made); `None` when the figures
    /// cannot be read, or on the first call after they could not be.
    pub fn sample(&mut self) -> Option<f64> {
        let now = Instant::now();
        let cpu = read_process_cpu_time().ok()?;
        let previous = self.last.replace((now, cpu));
        let (then, before) = previous?;
        Some(cpu_percent(
            cpu.saturating_sub(before),
            now.duration_since(then),
        ))
    }
}

impl Default for CpuSampler {
    fn default() -> Self {
        CpuSampler::new()
    }
}

/// `1 - available/total`, clamped to 0.0..=1.0; 0.0 when `total` is 0 (a
/// file system or memory pool with no capacity has nothing in use).
fn used_fraction(available: u64, total: u64) -> f64 {
    if total == 0 {
        return 0.0;
    }
    (1.0 - available as f64 / total as f64).clamp(0.0, 1.0)
}

/// Reads `path`, naming it in any error.
fn read_proc(path: &str) -> io::Result<String> {
    fs::read_to_string(path).map_err(|e| io::Error::new(e.kind(), format!("reading {path}: {e}")))
}

/// The error for a file whose contents could not be understood.
fn unparsable(path: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("could not parse {path}"),
    )
}

/// Reads the figures of this machine and process (Linux only: see the
/// [module documentation](self) for the files read), measuring disk use on
/// the file system holding `disk_path`.
///
/// # Errors
///
/// An error naming the file (or `statvfs` and `disk_path`) if one of them
/// cannot be read or parsed, e.g. `NotFound` on systems without `/proc`.
pub fn read_figures(disk_path: &Path) -> io::Result<NodeFigures> {
    let load_avg =
        parse_loadavg(&read_proc(LOADAVG_PATH)?).ok_or_else(|| unparsable(LOADAVG_PATH))?;

    let (memory_total_bytes, memory_available_bytes) =
        parse_meminfo(&read_proc(MEMINFO_PATH)?).ok_or_else(|| unparsable(MEMINFO_PATH))?;

    let process_rss_bytes = read_process_rss_bytes()?;

    let vfs = rustix::fs::statvfs(disk_path).map_err(|e| {
        let e = io::Error::from(e);
        io::Error::new(e.kind(), format!("statvfs {}: {e}", disk_path.display()))
    })?;
    let disk_total_bytes = vfs.f_blocks.saturating_mul(vfs.f_frsize);

    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());

    Ok(NodeFigures {
        load_avg,
        cpus,
        memory_used_fraction: used_fraction(memory_available_bytes, memory_total_bytes),
        memory_total_bytes,
        process_rss_bytes,
        disk_used_fraction: used_fraction(vfs.f_bavail, vfs.f_blocks),
        disk_total_bytes,
    })
}

/// The level of one check: `unhealthy` at or above `unhealthy`, `degraded`
/// at or above `degraded`, `healthy` below; `unknown` if `value` is not
/// finite.
fn classify(value: f64, degraded: f64, unhealthy: f64) -> HealthStatus {
    if !value.is_finite() {
        HealthStatus::Unknown
    } else if value >= unhealthy {
        HealthStatus::Unhealthy
    } else if value >= degraded {
        HealthStatus::Degraded
    } else {
        HealthStatus::Healthy
    }
}

/// Severity order used to pick the worst status.
fn severity(status: HealthStatus) -> u8 {
    match status {
        HealthStatus::Healthy => 0,
        HealthStatus::Unknown => 1,
        HealthStatus::Degraded => 2,
        HealthStatus::Unhealthy => 3,
    }
}

/// Builds the [`NodeHealth`] message for `node` from `figures`, judged by
/// `t`.
///
/// `checks` holds `"memory"`, `"disk"` and `"load"`, each an object
/// `{"value": f64, "status": "healthy" | "degraded" | "unhealthy"}` (the
/// load value is the load average per CPU, a CPU count of 0 counting as 1),
/// plus the numbers `"process_rss_bytes"` and `"cpus"`. The status is the
/// worst of the three checks; `load_avg`, `memory_usage` and `disk_usage`
/// are copied from `figures`.
pub fn node_health(node: &str, figures: &NodeFigures, t: &Thresholds) -> NodeHealth {
    let load_per_cpu = figures.load_avg / figures.cpus.max(1) as f64;
    let results = [
        (
            "memory",
            figures.memory_used_fraction,
            classify(
                figures.memory_used_fraction,
                t.memory_degraded,
                t.memory_unhealthy,
            ),
        ),
        (
            "disk",
            figures.disk_used_fraction,
            classify(
                figures.disk_used_fraction,
                t.disk_degraded,
                t.disk_unhealthy,
            ),
        ),
        (
            "load",
            load_per_cpu,
            classify(
                load_per_cpu,
                t.load_per_cpu_degraded,
                t.load_per_cpu_unhealthy,
            ),
        ),
    ];

    let mut status = HealthStatus::Healthy;
    let mut checks = Map::new();
    for (name, value, check_status) in results {
        if severity(check_status) > severity(status) {
            status = check_status;
        }
        checks.insert(
            name.to_owned(),
            json!({ "value": value, "status": check_status.as_str() }),
        );
    }
    checks.insert(
        "process_rss_bytes".to_owned(),
        Value::from(figures.process_rss_bytes),
    );
    checks.insert("cpus".to_owned(), Value::from(figures.cpus as u64));

    NodeHealth {
        node: node.to_owned(),
        status,
        checks,
        load_avg: figures.load_avg,
        memory_usage: figures.memory_used_fraction,
        disk_usage: figures.disk_used_fraction,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEMINFO: &str = "\
MemTotal:       16318412 kB
MemFree:         1019604 kB
MemAvailable:    8159206 kB
Buffers:          402400 kB
Cached:          6827960 kB
SwapCached:            0 kB
HugePages_Total:       0
Hugepagesize:       2048 kB
";

    fn calm() -> NodeFigures {
        NodeFigures {
            load_avg: 1.0,
            cpus: 4,
            memory_used_fraction: 0.5,
            memory_total_bytes: 16 << 30,
            process_rss_bytes: 50 << 20,
            disk_used_fraction: 0.4,
            disk_total_bytes: 500 << 30,
        }
    }

    fn check_status(health: &NodeHealth, check: &str) -> String {
        health.checks[check]["status"].as_str().unwrap().to_owned()
    }

    #[test]
    fn parses_loadavg() {
        assert_eq!(parse_loadavg("0.52 0.58 0.59 1/467 12345\n"), Some(0.52));
        assert_eq!(parse_loadavg("12.00 3.10 1.00 9/100 1"), Some(12.0));
        assert_eq!(parse_loadavg(""), None);
        assert_eq!(parse_loadavg("abc 0.1 0.1 1/2 3"), None);
        assert_eq!(parse_loadavg("-1.0 0.1 0.1 1/2 3"), None);
        assert_eq!(parse_loadavg("NaN 0.1 0.1 1/2 3"), None);
    }

    #[test]
    fn parses_meminfo() {
        assert_eq!(
            parse_meminfo(MEMINFO),
            Some((16_318_412 * 1024, 8_159_206 * 1024))
        );
    }

    #[test]
    fn meminfo_falls_back_without_memavailable() {
        let old = "MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 50 kB\nCached: 250 kB\n";
        assert_eq!(parse_meminfo(old), Some((1000 * 1024, 400 * 1024)));
        // A stand-in missing too: no answer.
        assert_eq!(parse_meminfo("MemTotal: 1000 kB\nMemFree: 100 kB\n"), None);
    }

    #[test]
    fn meminfo_rejects_bad_input() {
        assert_eq!(parse_meminfo(""), None);
        assert_eq!(parse_meminfo("MemAvailable: 10 kB\n"), None);
        assert_eq!(parse_meminfo("MemTotal: 0 kB\nMemAvailable: 0 kB\n"), None);
        assert_eq!(
            parse_meminfo("MemTotal: lots kB\nMemAvailable: 10 kB\n"),
            None
        );
        assert_eq!(parse_meminfo("MemTotal: 10 MB\nMemAvailable: 1 kB\n"), None);
    }

    #[test]
    fn meminfo_caps_available_at_total() {
        assert_eq!(
            parse_meminfo("MemTotal: 10 kB\nMemAvailable: 20 kB\n"),
            Some((10 * 1024, 10 * 1024))
        );
    }

    #[test]
    fn parses_statm() {
        assert_eq!(
            parse_statm_resident_pages("765 409 381 5 0 123 0\n"),
            Some(409)
        );
        assert_eq!(parse_statm_resident_pages("765"), None);
        assert_eq!(parse_statm_resident_pages("765 x 381"), None);
    }

    #[test]
    fn parses_stat_cpu_ticks() {
        // A name with spaces and a parenthesis; utime 1500, stime 250.
        let line = "4242 (my (odd) host) S 1 4242 4242 0 -1 4194560 9000 0 12 0 \
                    1500 250 0 0 20 0 9 0 123456 2000000 5000 18446744073709551615\n";
        assert_eq!(parse_stat_cpu_ticks(line), Some(1750));
        assert_eq!(parse_stat_cpu_ticks("4242 (x) S 1 2 3"), None);
        assert_eq!(parse_stat_cpu_ticks("no parenthesis 1 2 3"), None);
        assert_eq!(
            parse_stat_cpu_ticks("1 (x) S 1 1 1 0 -1 0 0 0 0 0 abc 5 0 0"),
            None
        );
    }

    #[test]
    fn cpu_percent_is_of_one_core() {
        let ms = Duration::from_millis;
        assert_eq!(cpu_percent(ms(500), ms(1000)), 50.0);
        assert_eq!(cpu_percent(ms(2000), ms(1000)), 200.0);
        assert_eq!(cpu_percent(ms(10), Duration::ZERO), 0.0);
    }

    #[test]
    fn cpu_sampler_sees_a_busy_loop() {
        let mut sampler = CpuSampler::new();
        let started = Instant::now();
        let mut x = 0u64;
        while started.elapsed() < Duration::from_millis(300) {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
        let busy = sampler.sample().expect("CPU figures on Linux");
        // 300 ms of one thread spinning: well above zero, whatever else runs.
        assert!(busy > 0.0 && busy.is_finite(), "{busy}");
        assert!(read_process_cpu_time().unwrap() > Duration::ZERO);
        assert!(read_open_handles().unwrap() > 0);
        assert!(read_process_rss_bytes().unwrap() > 0);
    }

    #[test]
    fn used_fraction_handles_edges() {
        assert_eq!(used_fraction(25, 100), 0.75);
        assert_eq!(used_fraction(0, 0), 0.0);
        assert_eq!(used_fraction(200, 100), 0.0);
    }

    #[test]
    fn default_thresholds() {
        let t = Thresholds::default();
        assert_eq!(t.memory_degraded, 0.90);
        assert_eq!(t.memory_unhealthy, 0.98);
        assert_eq!(t.disk_degraded, 0.90);
        assert_eq!(t.disk_unhealthy, 0.98);
        assert_eq!(t.load_per_cpu_degraded, 2.0);
        assert_eq!(t.load_per_cpu_unhealthy, 8.0);
    }

    #[test]
    fn calm_node_is_healthy_with_all_checks() {
        let figures = calm();
        let health = node_health("node1@host", &figures, &Thresholds::default());
        assert_eq!(health.node, "node1@host");
        assert_eq!(health.status, HealthStatus::Healthy);
        assert_eq!(health.load_avg, 1.0);
        assert_eq!(health.memory_usage, 0.5);
        assert_eq!(health.disk_usage, 0.4);
        assert_eq!(health.checks.len(), 5);
        for check in ["memory", "disk", "load"] {
            assert_eq!(check_status(&health, check), "healthy", "{check}");
        }
        assert_eq!(health.checks["memory"]["value"], 0.5);
        assert_eq!(health.checks["disk"]["value"], 0.4);
        assert_eq!(health.checks["load"]["value"], 0.25);
        assert_eq!(health.checks["process_rss_bytes"], 50u64 << 20);
        assert_eq!(health.checks["cpus"], 4);

        // The message is valid on the wire.
        let json = serde_json::to_value(&health).unwrap();
        assert_eq!(json["status"], "healthy");
        assert_eq!(serde_json::from_value::<NodeHealth>(json).unwrap(), health);
    }

    #[test]
    fn memory_crosses_thresholds() {
        let t = Thresholds::default();
        for (used, expected) in [
            (0.89, HealthStatus::Healthy),
            (0.90, HealthStatus::Degraded),
            (0.95, HealthStatus::Degraded),
            (0.98, HealthStatus::Unhealthy),
            (1.0, HealthStatus::Unhealthy),
        ] {
            let figures = NodeFigures {
                memory_used_fraction: used,
                ..calm()
            };
            let health = node_health("n", &figures, &t);
            assert_eq!(health.status, expected, "memory {used}");
            assert_eq!(check_status(&health, "memory"), expected.as_str());
            assert_eq!(check_status(&health, "disk"), "healthy");
            assert_eq!(check_status(&health, "load"), "healthy");
        }
    }

    #[test]
    fn disk_crosses_thresholds() {
        let t = Thresholds::default();
        for (used, expected) in [
            (0.5, HealthStatus::Healthy),
            (0.92, HealthStatus::Degraded),
            (0.99, HealthStatus::Unhealthy),
        ] {
            let figures = NodeFigures {
                disk_used_fraction: used,
                ..calm()
            };
            let health = node_health("n", &figures, &t);
            assert_eq!(health.status, expected, "disk {used}");
            assert_eq!(check_status(&health, "disk"), expected.as_str());
            assert_eq!(check_status(&health, "memory"), "healthy");
        }
    }

    #[test]
    fn load_is_judged_per_cpu() {
        let t = Thresholds::default();
        for (load, cpus, expected) in [
            (7.9, 4, HealthStatus::Healthy),   // 1.975 per CPU
            (8.0, 4, HealthStatus::Degraded),  // 2.0 per CPU
            (31.9, 4, HealthStatus::Degraded), // 7.975 per CPU
            (32.0, 4, HealthStatus::Unhealthy),
            (3.0, 1, HealthStatus::Degraded),
            (3.0, 0, HealthStatus::Degraded), // 0 CPUs counts as 1
        ] {
            let figures = NodeFigures {
                load_avg: load,
                cpus,
                ..calm()
            };
            let health = node_health("n", &figures, &t);
            assert_eq!(health.status, expected, "load {load} on {cpus} cpus");
            assert_eq!(check_status(&health, "load"), expected.as_str());
            assert_eq!(health.load_avg, load);
        }
    }

    #[test]
    fn worst_check_wins() {
        let t = Thresholds::default();
        let figures = NodeFigures {
            memory_used_fraction: 0.95, // degraded
            disk_used_fraction: 0.99,   // unhealthy
            load_avg: 10.0,             // 2.5 per CPU: degraded
            ..calm()
        };
        let health = node_health("n", &figures, &t);
        assert_eq!(health.status, HealthStatus::Unhealthy);
        assert_eq!(check_status(&health, "memory"), "degraded");
        assert_eq!(check_status(&health, "disk"), "unhealthy");
        assert_eq!(check_status(&health, "load"), "degraded");

        let figures = NodeFigures {
            memory_used_fraction: 0.95, // degraded
            ..calm()
        };
        assert_eq!(
            node_health("n", &figures, &t).status,
            HealthStatus::Degraded
        );
    }

    #[test]
    fn custom_thresholds_apply() {
        let t = Thresholds {
            memory_degraded: 0.3,
            memory_unhealthy: 0.6,
            ..Thresholds::default()
        };
        let health = node_health("n", &calm(), &t);
        assert_eq!(health.status, HealthStatus::Degraded);
        assert_eq!(check_status(&health, "memory"), "degraded");
    }

    #[test]
    fn non_finite_value_is_unknown_but_outranked() {
        let t = Thresholds::default();
        let figures = NodeFigures {
            memory_used_fraction: f64::NAN,
            ..calm()
        };
        let health = node_health("n", &figures, &t);
        assert_eq!(health.status, HealthStatus::Unknown);
        assert_eq!(check_status(&health, "memory"), "unknown");

        let figures = NodeFigures {
            disk_used_fraction: 0.95,
            ..figures
        };
        assert_eq!(
            node_health("n", &figures, &t).status,
            HealthStatus::Degraded
        );
    }

    #[test]
    fn reads_plausible_figures_of_this_machine() {
        let f = read_figures(Path::new("/")).expect("read figures");
        assert!(f.load_avg >= 0.0 && f.load_avg.is_finite(), "{f:?}");
        assert!(f.cpus >= 1, "{f:?}");
        assert!(
            f.memory_used_fraction > 0.0 && f.memory_used_fraction < 1.0,
            "{f:?}"
        );
        assert!(f.memory_total_bytes > 0, "{f:?}");
        assert!(f.process_rss_bytes > 0, "{f:?}");
        assert!(f.process_rss_bytes < f.memory_total_bytes, "{f:?}");
        assert!(
            f.disk_used_fraction > 0.0 && f.disk_used_fraction < 1.0,
            "{f:?}"
        );
        assert!(f.disk_total_bytes > 0, "{f:?}");

        let health = node_health("self", &f, &Thresholds::default());
        assert_ne!(health.status, HealthStatus::Unknown);
        assert_eq!(health.memory_usage, f.memory_used_fraction);
    }

    #[test]
    fn errors_name_the_path() {
        let missing = Path::new("/definitely/not/here/exesdb");
        let err = read_figures(missing).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(
            err.to_string().contains("/definitely/not/here/exesdb"),
            "{err}"
        );
        assert!(err.to_string().contains("statvfs"), "{err}");
    }
}
