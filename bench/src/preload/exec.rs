//! Running one (workload, allocator) process under `/usr/bin/time` and
//! checking what it did.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::setup::Prepared;

/// `/usr/bin/time` (GNU time; Debian package `time`).
pub const TIME: &str = "/usr/bin/time";
/// Output format given to `/usr/bin/time`: wall seconds and peak RSS in KiB.
pub const TIME_FORMAT: &str = "%e %M %R";

/// Process group of the run in progress (0: none), for [`install_signal_cleanup`].
static CURRENT_GROUP: AtomicI32 = AtomicI32::new(0);

/// Kills the running workload's process group, then dies of `sig` as if unhandled.
extern "C" fn kill_group_and_reraise(sig: libc::c_int) {
    let group = CURRENT_GROUP.load(Ordering::SeqCst);
    if group > 0 {
        // SAFETY: kill is async-signal-safe; `group` is the process group of
        // a child that has not been reaped yet (cleared before reaping).
        unsafe { libc::kill(-group, libc::SIGKILL) };
    }
    // SAFETY: signal and raise are async-signal-safe; restoring the default
    // action and re-raising ends the process with the original signal.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        libc::raise(sig);
    }
}

/// Makes SIGINT, SIGTERM and SIGHUP kill the workload in progress before the
/// runner dies. Each run lives in its own process group (so that a timeout
/// kills `time`, `env` and the program together), which a Ctrl-C or
/// `timeout(1)` aimed at the runner would not otherwise reach.
pub fn install_signal_cleanup() {
    let handler = kill_group_and_reraise as extern "C" fn(libc::c_int);
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: the handler only calls async-signal-safe functions and
        // reads an atomic.
        unsafe { libc::signal(sig, handler as libc::sighandler_t) };
    }
}

/// How one run ended.
#[derive(Clone, Debug, Serialize)]
pub struct RunRecord {
    /// Workload name.
    pub workload: String,
    /// Allocator name.
    pub allocator: String,
    /// Run index (0-based).
    pub run: usize,
    /// Wall time in seconds, if the run succeeded: measured by the runner
    /// from spawning `/usr/bin/time` to its exit (millisecond resolution;
    /// includes the few milliseconds `time` and `env` take to start).
    pub seconds: Option<f64>,
    /// The same wall time as `/usr/bin/time` reports it (`%e`, 10 ms resolution).
    pub time_elapsed_s: Option<f64>,
    /// Peak RSS in KiB (`%M`), if the run succeeded.
    pub maxrss_kib: Option<u64>,
    /// Minor page faults of the program (`%R`), if the run succeeded: how
    /// much fresh memory it touched, page by page.
    pub minflt: Option<u64>,
    /// `/proc/vmstat` deltas over the run (see [`Vmstat`]).
    pub vmstat: Option<Vmstat>,
    /// Library that served `malloc`, as the program reported it.
    pub malloc: Option<String>,
    /// Most bytes (KiB) the program saw waiting in its cross-thread inboxes
    /// at once, if it reports it (`pile_peak_kib=` on its success line:
    /// `c-small`): part of the peak RSS that depends on scheduling (see
    /// `bench/c/c_small.c`).
    pub pile_kib: Option<u64>,
    /// Why the run failed (exit status, check, end of stderr); `None` on success.
    pub error: Option<String>,
    /// Full stderr of the run (kept for the `NALLOC_STATS` check; not serialized).
    #[serde(skip)]
    pub stderr: String,
}

/// What to run and how.
#[derive(Clone, Copy, Debug)]
pub struct RunSpec<'a> {
    /// Workload name (its program prints `<name> ok ...` on success).
    pub workload: &'a str,
    /// Allocator name.
    pub allocator: &'a str,
    /// Run index.
    pub run: usize,
    /// The prepared program.
    pub prepared: &'a Prepared,
    /// Library to preload; `None` runs with the C library's malloc.
    pub preload: Option<&'a Path>,
    /// Extra environment for this run only (`NALLOC_STATS=1`).
    pub extra_env: &'a [(&'a str, &'a str)],
    /// Directory for the run's stdout, stderr and time files.
    pub work: &'a Path,
    /// Time limit; the process group is killed after it.
    pub timeout: Duration,
}

/// Runs `/usr/bin/time -o FILE -f '%e %M' /usr/bin/env [-u LD_PRELOAD | LD_PRELOAD=LIB] PROGRAM ARGS`.
///
/// The preload goes through `env`, so `/usr/bin/time` itself runs with the C
/// library's malloc and only the workload gets the allocator. A run is a
/// success only if it exits 0, prints `<workload> ok ... malloc=PATH` and
/// `PATH` is the expected library.
pub fn run_one(spec: &RunSpec<'_>) -> RunRecord {
    let mut rec = RunRecord {
        workload: spec.workload.to_owned(),
        allocator: spec.allocator.to_owned(),
        run: spec.run,
        seconds: None,
        time_elapsed_s: None,
        maxrss_kib: None,
        minflt: None,
        vmstat: None,
        malloc: None,
        pile_kib: None,
        error: None,
        stderr: String::new(),
    };
    let stem = format!("{}-{}", spec.workload, spec.allocator);
    let out_path = spec.work.join(format!("{stem}.stdout"));
    let err_path = spec.work.join(format!("{stem}.stderr"));
    let time_path = spec.work.join(format!("{stem}.time"));
    let _ = std::fs::remove_file(&time_path);
    let files = File::create(&out_path).and_then(|o| File::create(&err_path).map(|e| (o, e)));
    let (out_file, err_file) = match files {
        Ok(f) => f,
        Err(e) => {
            rec.error = Some(format!("cannot create output files in {}: {e}", spec.work.display()));
            return rec;
        }
    };

    let env_prog = if Path::new("/usr/bin/env").is_file() {
        PathBuf::from("/usr/bin/env")
    } else {
        PathBuf::from("env")
    };
    let mut cmd = Command::new(TIME);
    cmd.arg("-o").arg(&time_path).arg("-f").arg(TIME_FORMAT).arg(&env_prog);
    match spec.preload {
        Some(lib) => {
            let mut kv = std::ffi::OsString::from("LD_PRELOAD=");
            kv.push(lib);
            cmd.arg(kv);
        }
        None => {
            cmd.arg("-u").arg("LD_PRELOAD");
        }
    }
    for (k, v) in spec.extra_env {
        cmd.arg(format!("{k}={v}"));
    }
    cmd.arg(&spec.prepared.program).args(&spec.prepared.args);
    cmd.env_remove("LD_PRELOAD").env_remove("NALLOC_STATS");
    for (k, v) in &spec.prepared.env {
        cmd.env(k, v);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(out_file))
        .stderr(Stdio::from(err_file))
        .process_group(0);

    let vm_before = Vmstat::read();
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            rec.error = Some(format!("cannot start {TIME}: {e}"));
            return rec;
        }
    };
    let start = Instant::now();
    let Ok(pid) = libc::pid_t::try_from(child.id()) else {
        rec.error = Some("child pid out of range".into());
        return rec;
    };
    // The watchdog kills the process group after the timeout unless told the
    // child exited. The child is only reaped after the watchdog is joined, so
    // the group id cannot have been reused when it fires.
    CURRENT_GROUP.store(pid, Ordering::SeqCst);
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let timeout = spec.timeout;
    let watchdog = std::thread::spawn(move || {
        if let Err(RecvTimeoutError::Timeout) = done_rx.recv_timeout(timeout) {
            // SAFETY: `pid` leads the process group of our unreaped child
            // (spawned with process_group(0)); kill only sends a signal.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
            true
        } else {
            false
        }
    });
    wait_exited_no_reap(pid);
    let wall = start.elapsed();
    let _ = done_tx.send(());
    let killed = watchdog.join().unwrap_or(false);
    CURRENT_GROUP.store(0, Ordering::SeqCst);
    let status = child.wait();
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    rec.stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    let time_out = std::fs::read_to_string(&time_path).unwrap_or_default();
    let tail = last_lines(&rec.stderr, 8);

    let status = match status {
        Ok(s) => s,
        Err(e) => {
            rec.error = Some(format!("waiting for {TIME} failed: {e}"));
            return rec;
        }
    };
    if killed {
        rec.error = Some(format!(
            "timed out after {} s and was killed\n{tail}",
            spec.timeout.as_secs()
        ));
        return rec;
    }
    if !status.success() {
        // GNU time writes "Command exited with non-zero status N" or
        // "Command terminated by signal N" before the format line.
        let what = time_out
            .lines()
            .find(|l| l.starts_with("Command "))
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{status}"));
        rec.error = Some(format!("{what}\n{tail}"));
        return rec;
    }
    rec.vmstat = match (vm_before, Vmstat::read()) {
        (Some(b), Some(a)) => Some(a.since(&b)),
        _ => None,
    };
    let Some((secs, kib, minflt)) = parse_time_output(&time_out) else {
        rec.error = Some(format!("cannot parse {TIME} output {time_out:?}\n{tail}"));
        return rec;
    };
    match check_output(&stdout, spec.workload, spec.preload) {
        Ok(lib) => {
            rec.malloc = Some(lib);
            rec.seconds = Some(wall.as_secs_f64());
            rec.time_elapsed_s = Some(secs);
            rec.maxrss_kib = Some(kib);
            rec.minflt = Some(minflt);
            rec.pile_kib = success_field(&stdout, spec.workload, "pile_peak_kib");
        }
        Err(e) => rec.error = Some(format!("{e}\n{tail}")),
    }
    rec
}

/// Blocks until child `pid` has exited, without reaping it (`waitid` with `WNOWAIT`).
fn wait_exited_no_reap(pid: libc::pid_t) {
    let Ok(id) = libc::id_t::try_from(pid) else {
        return;
    };
    loop {
        // SAFETY: siginfo_t is plain old data; all-zero is a valid value.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `info` is a valid out-pointer; WNOWAIT leaves the child
        // waitable, so `Child::wait` still reaps it afterwards.
        let r = unsafe { libc::waitid(libc::P_PID, id, &mut info, libc::WEXITED | libc::WNOWAIT) };
        if r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return;
        }
    }
}

/// Parses the last non-empty line of `/usr/bin/time -f '%e %M'` output.
pub fn parse_time_output(s: &str) -> Option<(f64, u64, u64)> {
    let line = s.lines().rev().find(|l| !l.trim().is_empty())?;
    let mut it = line.split_whitespace();
    let secs: f64 = it.next()?.parse().ok()?;
    let kib: u64 = it.next()?.parse().ok()?;
    let minflt: u64 = it.next()?.parse().ok()?;
    if it.next().is_some() || !secs.is_finite() || secs < 0.0 {
        return None;
    }
    Some((secs, kib, minflt))
}

/// The `/proc/vmstat` counters that tell how fresh memory was first
/// touched: transparent huge pages faulted in (`thp_fault_alloc`), huge
/// page faults that fell back to small pages (`thp_fault_fallback`), and
/// direct compaction stalls (`compact_stall`). System-wide: a run's delta
/// is its own only on an otherwise idle machine (the runner warns when it
/// is not).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Vmstat {
    /// Transparent huge pages allocated at a page fault.
    pub thp_fault_alloc: u64,
    /// Huge-page faults that got small pages instead.
    pub thp_fault_fallback: u64,
    /// Allocations that stalled for direct compaction.
    pub compact_stall: u64,
}

impl Vmstat {
    /// Reads the counters now; `None` where `/proc/vmstat` is unreadable.
    pub fn read() -> Option<Self> {
        Self::parse(&std::fs::read_to_string("/proc/vmstat").ok()?)
    }

    /// Parses `/proc/vmstat` text; `None` without `thp_fault_alloc` (no THP).
    pub fn parse(text: &str) -> Option<Self> {
        let get = |key: &str| {
            text.lines().find_map(|l| {
                let (k, v) = l.split_once(' ')?;
                (k == key).then(|| v.trim().parse::<u64>().ok()).flatten()
            })
        };
        Some(Self {
            thp_fault_alloc: get("thp_fault_alloc")?,
            thp_fault_fallback: get("thp_fault_fallback").unwrap_or(0),
            compact_stall: get("compact_stall").unwrap_or(0),
        })
    }

    /// What happened between `before` and `self`.
    pub fn since(&self, before: &Self) -> Self {
        Self {
            thp_fault_alloc: self.thp_fault_alloc.saturating_sub(before.thp_fault_alloc),
            thp_fault_fallback: self.thp_fault_fallback.saturating_sub(before.thp_fault_fallback),
            compact_stall: self.compact_stall.saturating_sub(before.compact_stall),
        }
    }
}

/// The number after `NAME=` on the program's success line, if there is one.
pub fn success_field(stdout: &str, workload: &str, name: &str) -> Option<u64> {
    let prefix = format!("{workload} ok");
    let line = stdout.lines().find(|l| l.starts_with(&prefix))?;
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))?
        .parse()
        .ok()
}

/// Checks the program's success line (`<workload> ok ... malloc=PATH`) and
/// that `PATH` is the preloaded library (or the C library when `preload` is
/// `None`). Returns `PATH`.
pub fn check_output(stdout: &str, workload: &str, preload: Option<&Path>) -> Result<String, String> {
    let prefix = format!("{workload} ok");
    let Some(line) = stdout.lines().find(|l| l.starts_with(&prefix)) else {
        return Err(format!(
            "no `{prefix} ...` line on stdout (got {:?})",
            last_lines(stdout, 3)
        ));
    };
    let Some(lib) = line.split_whitespace().find_map(|w| w.strip_prefix("malloc=")) else {
        return Err(format!("success line lacks malloc=: {line:?}"));
    };
    let lib_path = Path::new(lib);
    let served_by_expected = match preload {
        Some(want) => same_file(lib_path, want),
        None => lib_path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("libc.so")),
    };
    if served_by_expected {
        Ok(lib.to_owned())
    } else {
        let want = preload.map_or_else(|| "the C library (libc.so.*)".to_owned(), |p| p.display().to_string());
        Err(format!("malloc was served by {lib}, expected {want}"))
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

/// The `NALLOC_STATS` counters of interest, from a run's stderr.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct NallocStats {
    /// `small_allocs=`.
    pub small_allocs: u64,
    /// `small_frees=`.
    pub small_frees: u64,
    /// `large_allocs=`.
    pub large_allocs: u64,
    /// `large_frees=`.
    pub large_frees: u64,
    /// The slow-path event counts, in the order printed: the
    /// `nalloc: events ...` line's fields, then the `nalloc: os_calls ...`
    /// line's with `os_` in front (empty for a library that prints neither).
    pub events: Vec<(String, u64)>,
}

impl NallocStats {
    /// Allocator operations: small and large allocations and frees.
    pub fn ops(&self) -> u64 {
        self.small_allocs + self.small_frees + self.large_allocs + self.large_frees
    }

    /// The event count `name` (`lock_acquisitions`, `os_map`, ...), if printed.
    pub fn event(&self, name: &str) -> Option<u64> {
        self.events.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
    }
}

/// Parses the first `nalloc: pid=... small_allocs=N ...` line of `stderr`.
pub fn parse_nalloc_stats(stderr: &str) -> Option<NallocStats> {
    let line = stderr
        .lines()
        .find(|l| l.starts_with("nalloc: pid=") && l.contains("small_allocs="))?;
    let field = |name: &str| -> Option<u64> {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(name).and_then(|v| v.strip_prefix('=')))?
            .parse()
            .ok()
    };
    let mut events = Vec::new();
    for (tag, prefix) in [("nalloc: events ", ""), ("nalloc: os_calls ", "os_")] {
        let Some(l) = stderr.lines().find(|l| l.starts_with(tag)) else {
            continue;
        };
        for (k, v) in l[tag.len()..].split_whitespace().filter_map(|w| w.split_once('=')) {
            if let Ok(v) = v.parse() {
                events.push((format!("{prefix}{k}"), v));
            }
        }
    }
    Some(NallocStats {
        small_allocs: field("small_allocs")?,
        small_frees: field("small_frees")?,
        large_allocs: field("large_allocs")?,
        large_frees: field("large_frees")?,
        events,
    })
}

/// The last `n` non-empty lines of `text`.
pub fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let from = lines.len().saturating_sub(n);
    lines[from..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_output() {
        assert_eq!(parse_time_output("1.52 45312 1200\n"), Some((1.52, 45312, 1200)));
        assert_eq!(
            parse_time_output("Command exited with non-zero status 1\n0.01 1234 5\n"),
            Some((0.01, 1234, 5))
        );
        assert_eq!(parse_time_output(""), None);
        assert_eq!(parse_time_output("x 1"), None);
        assert_eq!(parse_time_output("1.0"), None);
        assert_eq!(parse_time_output("1.0 2"), None);
        assert_eq!(parse_time_output("1.0 2 3 4"), None);
    }

    #[test]
    fn vmstat_deltas_are_parsed_and_subtracted() {
        let before = Vmstat::parse("pgfault 10\nthp_fault_alloc 3\ncompact_stall 1\nthp_fault_fallback 0\n").unwrap();
        let after = Vmstat::parse("thp_fault_alloc 10\ncompact_stall 4\nthp_fault_fallback 2\n").unwrap();
        assert_eq!(
            after.since(&before),
            Vmstat {
                thp_fault_alloc: 7,
                thp_fault_fallback: 2,
                compact_stall: 3
            }
        );
        // A kernel without THP has no such counters.
        assert_eq!(Vmstat::parse("pgfault 10\n"), None);
    }

    #[test]
    fn output_checks() {
        let glibc = "c-small ok threads=4 malloc=/lib/x86_64-linux-gnu/libc.so.6\n";
        assert!(check_output(glibc, "c-small", None).is_ok());
        assert!(check_output(glibc, "c-large", None).is_err());
        let pre = Path::new("/nonexistent/libnalloc.so");
        assert!(check_output(glibc, "c-small", Some(pre)).is_err());
        let ok = "python ok rounds=1 malloc=/nonexistent/libnalloc.so\n";
        assert_eq!(
            check_output(ok, "python", Some(pre)).unwrap(),
            "/nonexistent/libnalloc.so"
        );
        assert!(check_output(ok, "python", None).is_err());
        assert!(check_output("python ok rounds=1\n", "python", Some(pre)).is_err());
        let piles = "c-small ok threads=4 pile_peak_kib=6522 malloc=/x.so\n";
        assert_eq!(success_field(piles, "c-small", "pile_peak_kib"), Some(6522));
        assert_eq!(success_field(piles, "c-small", "pile_peak"), None);
        assert_eq!(success_field(piles, "c-large", "pile_peak_kib"), None);
        assert_eq!(success_field(glibc, "c-small", "pile_peak_kib"), None);
        assert_eq!(
            success_field("c-small ok pile_peak_kib=x\n", "c-small", "pile_peak_kib"),
            None
        );
    }

    /// The success lines of the threaded C programs (as they print them)
    /// pass the check under the library they name and fail otherwise.
    #[test]
    fn threaded_programs_success_lines() {
        let lib = Path::new("/nonexistent/libnalloc.so");
        for (workload, line) in [
            (
                "c-xmalloc",
                "c-xmalloc ok threads=2 pairs=1 blocks=1500000 bytes=6682596974",
            ),
            (
                "c-rpmalloc",
                "c-rpmalloc ok threads=8 steps=2000000 allocs=16000000 cross_thread_frees=3990000",
            ),
            ("c-larson", "c-larson ok threads=2 steps=3000000 rounds=10 free=free"),
            (
                "c-larson-sized",
                "c-larson-sized ok threads=32 steps=3000000 rounds=10 free=free_sized",
            ),
            (
                "c-thrash",
                "c-thrash ok threads=2 iterations=4000000 objsize=8 writes=16 sum=8160000000",
            ),
            ("c-mstress", "c-mstress ok threads=4 scale=50 rounds=10 items=1350000"),
        ] {
            let out = format!("{line} malloc={}\n", lib.display());
            assert_eq!(
                check_output(&out, workload, Some(lib)).unwrap(),
                lib.display().to_string()
            );
            assert!(check_output(&out, workload, None).is_err(), "{workload}");
            let glibc = format!("{line} malloc=/lib/x86_64-linux-gnu/libc.so.6\n");
            assert!(check_output(&glibc, workload, None).is_ok(), "{workload}");
            assert!(
                check_output(&format!("{line}\n"), workload, Some(lib)).is_err(),
                "{workload}"
            );
        }
        // c-larson's line does not pass for c-larson-sized, nor the reverse.
        let plain = "c-larson ok threads=2 free=free malloc=/lib/x86_64-linux-gnu/libc.so.6\n";
        assert!(check_output(plain, "c-larson-sized", None).is_err());
        let sized = "c-larson-sized ok threads=2 free=free malloc=/lib/x86_64-linux-gnu/libc.so.6\n";
        assert!(check_output(sized, "c-larson", None).is_err());
    }

    #[test]
    fn nalloc_stats_line() {
        let err = "noise\nnalloc: pid=7 small_allocs=508429 small_frees=508424 large_allocs=4 large_frees=3 \
                   pool_hits=0 heaps=5\nnalloc: peak_mapped=1 (1.0 B)\n";
        assert_eq!(
            parse_nalloc_stats(err),
            Some(NallocStats {
                small_allocs: 508429,
                small_frees: 508424,
                large_allocs: 4,
                large_frees: 3,
                events: Vec::new(),
            })
        );
        assert_eq!(parse_nalloc_stats("nalloc: peak_mapped=1\n"), None);
    }

    #[test]
    fn nalloc_event_lines() {
        let err = "nalloc: pid=7 small_allocs=600 small_frees=300 large_allocs=60 large_frees=40 pool_hits=0 heaps=2\n\
                   nalloc: peak_mapped=1 (1.0 B)\n\
                   nalloc: events lock_acquisitions=12 lock_contended=3 remote_batches=5 remote_blocks=160 \
                   remote_atomics=15 remote_kept=1 remote_collects=4 remote_collected=150\n\
                   nalloc: os_calls map=9 unmap=2 remap=0 advise=1 purge=7 protect=0 query=0\n";
        let s = parse_nalloc_stats(err).unwrap();
        assert_eq!(s.ops(), 1000);
        assert_eq!(s.event("lock_acquisitions"), Some(12));
        assert_eq!(s.event("remote_collected"), Some(150));
        assert_eq!(s.event("os_map"), Some(9));
        assert_eq!(s.event("os_query"), Some(0));
        assert_eq!(s.event("map"), None);
        assert_eq!(s.events.len(), 15);
        assert_eq!(s.events[0].0, "lock_acquisitions");
        assert_eq!(s.events[8].0, "os_map");
    }

    #[test]
    fn tails() {
        assert_eq!(last_lines("a\n\nb\nc\n", 2), "b\nc");
        assert_eq!(last_lines("", 3), "");
    }
}
