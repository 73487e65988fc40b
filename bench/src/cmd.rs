//! `nalloc-bench --cmd "<command>"`: the user's own program under every
//! allocator this machine has — glibc's malloc, and by `LD_PRELOAD` this
//! workspace's `libnalloc.so` and the system's mimalloc, jemalloc and
//! tcmalloc where installed (found as `nalloc-preload-bench` finds them).
//!
//! The command runs with `sh -c`, runs are interleaved (one round of every
//! allocator, `--runs` times, glibc first), and each process is reaped with
//! `wait4`, whose resource usage gives its peak RSS and page faults (those of
//! the processes it waited for included). The table and SVG are the
//! suite's (`report.rs`). A run that exits non-zero, or whose stdout differs
//! from glibc's first run, is FAILED with the reason, and its allocator gets
//! no numbers at all. A command that does not exist is an error (exit 2)
//! before anything runs.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::cli::split_list;
use crate::preload::setup::{resolve_allocator, Availability, Dirs, PRELOAD_ALLOCATORS};
use crate::report::{self, MachineInfo, Report, ReportConfig, RunRecord};
use crate::result::{WorkerResult, WorkloadOutput};

/// The row name of the user's command in the table.
const ROW: &str = "cmd";

/// What `--cmd` asked for.
#[derive(Clone, Debug, PartialEq)]
pub struct CmdOptions {
    /// The command line, run with `sh -c`.
    pub command: String,
    /// Runs per allocator.
    pub runs: usize,
    /// Allocators to try (empty: every one available); glibc, the
    /// baseline, always runs.
    pub allocators: Vec<String>,
    /// Where to write the JSON report.
    pub json: Option<PathBuf>,
    /// Where to write the SVG (`None`: `<target>/nalloc-bench/cmd.svg`).
    pub svg: Option<PathBuf>,
    /// Skip the SVG.
    pub no_svg: bool,
    /// A `libnalloc.so` to preload instead of building one.
    pub nalloc_lib: Option<PathBuf>,
}

/// Usage of `--cmd`.
pub fn usage() -> &'static str {
    "nalloc-bench --cmd \"<command>\" [--runs N] [--allocator a,b] [--json FILE] [--svg FILE | --no-svg] [--nalloc-lib FILE]\n\n  \
     Runs <command> (with sh -c) under glibc malloc and, by LD_PRELOAD, nalloc, mimalloc, jemalloc and tcmalloc\n  \
     (those installed), interleaved, N runs each (default 5); prints median wall time, ratio to glibc, peak RSS\n  \
     and page faults (from wait4), and an SVG. A run that exits non-zero or prints a different stdout from\n  \
     glibc's is FAILED (glibc, the baseline, always runs). Exit: 0 all runs ok, 1 a run failed, 2 bad usage or a command that does not exist."
}

/// Parses the arguments of a `--cmd` invocation (all of them, `--cmd` included).
pub fn parse_args(args: &[String]) -> Result<CmdOptions, String> {
    let mut o = CmdOptions {
        command: String::new(),
        runs: 5,
        allocators: Vec::new(),
        json: None,
        svg: None,
        no_svg: false,
        nalloc_lib: None,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().cloned().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--cmd" => o.command = value()?,
            "--runs" => {
                let v = value()?;
                o.runs = v
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or(format!("--runs: `{v}` is not a positive number"))?;
            }
            "--allocator" => o.allocators = split_list(&value()?),
            "--json" => o.json = Some(PathBuf::from(value()?)),
            "--svg" => o.svg = Some(PathBuf::from(value()?)),
            "--no-svg" => o.no_svg = true,
            "--nalloc-lib" => o.nalloc_lib = Some(PathBuf::from(value()?)),
            other => return Err(format!("--cmd does not combine with `{other}`")),
        }
    }
    if o.command.trim().is_empty() {
        return Err("--cmd needs a command".into());
    }
    if let Some(bad) = o
        .allocators
        .iter()
        .find(|a| !PRELOAD_ALLOCATORS.iter().any(|p| p.name == *a))
    {
        return Err(format!(
            "unknown allocator `{bad}` (choose from glibc, mimalloc, jemalloc, tcmalloc, nalloc)"
        ));
    }
    Ok(o)
}

/// The program a shell command line starts: its first word after any
/// `NAME=value` assignments, with surrounding quotes removed.
pub fn program_of(command: &str) -> Option<String> {
    command
        .split_whitespace()
        .find(|w| !w.contains('=') || w.starts_with(['"', '\'', '=']))
        .map(|w| w.trim_matches(['"', '\'']).to_owned())
}

/// Whether the shell finds `program` (a builtin, a path or a name on `PATH`).
fn exists(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", "command -v -- \"$1\" >/dev/null 2>&1", "sh", program])
        .status()
        .is_ok_and(|s| s.success())
}

/// One run of the command: what it printed and what `wait4` reported.
struct Outcome {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    status: libc::c_int,
    wall_ms: f64,
    maxrss_kib: u64,
    minflt: u64,
}

fn run_once(command: &str, preload: Option<&PathBuf>) -> Result<Outcome, String> {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", command])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    match preload {
        Some(lib) => cmd.env("LD_PRELOAD", lib),
        None => cmd.env_remove("LD_PRELOAD"),
    };
    let start = Instant::now();
    let mut child = cmd.spawn().map_err(|e| format!("cannot start sh: {e}"))?;
    let pid = child.id() as libc::pid_t;
    let mut out = child.stdout.take().ok_or("no stdout pipe")?;
    let mut err = child.stderr.take().ok_or("no stderr pipe")?;
    // Both pipes are drained while the child runs, so it never blocks on a
    // full pipe.
    let out_reader = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = out.read_to_end(&mut b);
        b
    });
    let err_reader = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = err.read_to_end(&mut b);
        b
    });
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain old data; all-zero is valid.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: valid out-pointers; `pid` is our child, not reaped yet.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            break;
        }
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return Err(format!("wait4 failed: {}", std::io::Error::last_os_error()));
        }
    }
    let wall_ms = start.elapsed().as_secs_f64() * 1e3;
    drop(child); // reaped already; dropping a Child does not wait
    Ok(Outcome {
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
        status,
        wall_ms,
        maxrss_kib: usage.ru_maxrss.max(0) as u64,
        minflt: usage.ru_minflt.max(0) as u64,
    })
}

fn describe(status: libc::c_int) -> String {
    if libc::WIFEXITED(status) {
        format!("exit {}", libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        format!("signal {}", libc::WTERMSIG(status))
    } else {
        format!("status {status}")
    }
}

/// The last lines of a run's stderr, for a failure report.
fn tail(stderr: &[u8]) -> String {
    let s = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(3)..].join(" | ")
}

/// Judges one run against glibc's stdout: the record the report takes.
fn record(allocator: &str, run: usize, o: Result<Outcome, String>, expected: Option<&[u8]>) -> RunRecord {
    let mut rec = RunRecord {
        workload: ROW.into(),
        allocator: allocator.into(),
        run,
        result: None,
        error: None,
        process_ms: 0.0,
        maxrss_kib: 0,
        process_maxrss_kib: 0,
        minflt: 0,
        exit: String::new(),
    };
    let o = match o {
        Ok(o) => o,
        Err(e) => {
            rec.error = Some(e);
            return rec;
        }
    };
    rec.process_ms = o.wall_ms;
    rec.maxrss_kib = o.maxrss_kib;
    rec.process_maxrss_kib = o.maxrss_kib;
    rec.minflt = o.minflt;
    rec.exit = describe(o.status);
    let ok_exit = libc::WIFEXITED(o.status) && libc::WEXITSTATUS(o.status) == 0;
    rec.error = if !ok_exit {
        Some(format!("{}; stderr: {}", rec.exit, tail(&o.stderr)))
    } else if expected.is_some_and(|e| e != o.stdout.as_slice()) {
        Some(format!(
            "stdout differs from glibc's run ({} bytes, glibc's {} bytes)",
            o.stdout.len(),
            expected.map_or(0, <[u8]>::len)
        ))
    } else {
        None
    };
    if rec.error.is_none() {
        rec.result = Some(WorkerResult {
            workload: ROW.into(),
            allocator: allocator.into(),
            full: false,
            wall_ms: o.wall_ms,
            output: WorkloadOutput::default(),
            maxrss_kib: o.maxrss_kib,
            minflt: o.minflt,
        });
    }
    rec
}

/// Entry point of `nalloc-bench --cmd`; returns the exit code.
pub fn main(args: &[String]) -> i32 {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{}", usage());
        return 0;
    }
    let opts = match parse_args(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}\n\n{}", usage());
            return 2;
        }
    };
    match run(&opts) {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(e) => {
            eprintln!("error: {e}");
            2
        }
    }
}

/// Runs the command under every chosen allocator; whether all runs were ok.
pub fn run(opts: &CmdOptions) -> Result<bool, String> {
    let program = program_of(&opts.command).ok_or("--cmd needs a command")?;
    if !exists(&program) {
        return Err(format!(
            "command not found: `{program}` (from --cmd \"{}\"); give a program on PATH or a path to one",
            opts.command
        ));
    }
    let dirs = Dirs::locate()?;
    let mut allocators: Vec<(&str, Option<PathBuf>)> = Vec::new();
    for a in PRELOAD_ALLOCATORS {
        let wanted = opts.allocators.is_empty() || opts.allocators.iter().any(|w| w == a.name) || a.name == "glibc";
        if !wanted {
            continue;
        }
        match resolve_allocator(a, &dirs, false, opts.nalloc_lib.as_deref()) {
            Availability::Ready(lib) => allocators.push((a.name, lib)),
            Availability::Unavailable(why) => eprintln!("skipping {}: {why}", a.name),
        }
    }
    let machine = MachineInfo::collect();
    print!("{}", machine.render());
    let names: Vec<String> = allocators.iter().map(|(n, _)| n.to_string()).collect();
    println!(
        "command: {} | runs per allocator: {} | allocators: {}\n",
        opts.command,
        opts.runs,
        names.join(",")
    );
    let mut expected: Option<Vec<u8>> = None;
    let mut records = Vec::new();
    for run in 0..opts.runs {
        for (name, lib) in &allocators {
            let o = run_once(&opts.command, lib.as_ref());
            // glibc runs first in every round: its first run's stdout is
            // what every later run must print.
            if *name == "glibc" && expected.is_none() {
                if let Ok(o) = &o {
                    expected = Some(o.stdout.clone());
                }
            }
            let rec = record(
                name,
                run,
                o,
                if *name == "glibc" && run == 0 {
                    None
                } else {
                    expected.as_deref()
                },
            );
            match &rec.error {
                Some(e) => eprintln!("run {} {name}: FAILED: {e}", run + 1),
                None => eprintln!("run {} {name}: {}", run + 1, report::fmt_ms(rec.process_ms)),
            }
            records.push(rec);
        }
    }
    let config = ReportConfig {
        suite: format!("cmd: {}", opts.command),
        runs: opts.runs,
        workloads: vec![ROW.into()],
        allocators: names,
    };
    let report = Report::new(machine, config, records);
    println!("{}", report.render_table());
    if let Some(path) = &opts.json {
        std::fs::write(path, report.to_json()?).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        println!("JSON report written to {}", path.display());
    }
    if !opts.no_svg {
        let path = match &opts.svg {
            Some(p) => p.clone(),
            None => {
                let dir = dirs.target.join("nalloc-bench");
                std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
                dir.join("cmd.svg")
            }
        };
        std::fs::write(&path, report::render_svg(&report))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        println!("SVG chart written to {}", path.display());
    }
    Ok(report.all_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_options() {
        let o = parse_args(&args(&[
            "--cmd",
            "sort f",
            "--runs",
            "3",
            "--allocator",
            "glibc,nalloc",
        ]))
        .unwrap();
        assert_eq!((o.command.as_str(), o.runs), ("sort f", 3));
        assert_eq!(o.allocators, ["glibc", "nalloc"]);
        assert!(parse_args(&args(&["--cmd", " "])).is_err());
        assert!(parse_args(&args(&["--cmd", "x", "--runs", "0"])).is_err());
        assert!(parse_args(&args(&["--cmd", "x", "--allocator", "tcmaloc"])).is_err());
        assert!(parse_args(&args(&["--cmd", "x", "--full"])).is_err());
    }

    #[test]
    fn finds_the_program() {
        assert_eq!(program_of("python3 -c 'print(1)'").as_deref(), Some("python3"));
        assert_eq!(program_of("FOO=1 BAR=x ./prover --k 17").as_deref(), Some("./prover"));
        assert_eq!(program_of("   "), None);
    }
}
