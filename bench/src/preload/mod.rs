//! `nalloc-preload-bench`: real C and Python programs under glibc malloc and
//! under allocators injected with `LD_PRELOAD` — Debian's mimalloc
//! (`libmimalloc.so.2`), jemalloc (`libjemalloc.so.2`), tcmalloc
//! (`libtcmalloc_minimal.so.4`) and this workspace's `libnalloc.so`.
//!
//! * **Workloads** ([`setup::PRELOAD_WORKLOADS`]): `c-small`, `c-large`,
//!   and the threaded shapes of the classic allocator benchmarks
//!   (`c-xmalloc`, `c-rpmalloc`, `c-larson`, `c-larson-sized`, `c-thrash`, `c-mstress`)
//!   (C sources in `bench/c/`, compiled at run time with `cc -O2 -pthread`
//!   into `<target>/nalloc-preload/`) and `python` (`bench/python/alloc_stress.py`
//!   run with `PYTHONMALLOC=malloc`, so that CPython's small objects go
//!   through `malloc` rather than pymalloc's arenas). Every program checks its
//!   data and prints `<workload> ok ... malloc=<library that serves malloc>`.
//! * **Measurement**: each run is
//!   `/usr/bin/time -f '%e %M' env LD_PRELOAD=<lib> <program>`; peak RSS is
//!   `%M`, and the wall time is taken by the runner around that command with
//!   millisecond resolution (`%e` has only 10 ms, too coarse for the fastest
//!   `c-large` runs; it is kept in the JSON as `time_elapsed_s`). The table
//!   gives the highest peak RSS of the runs and their median, each with its
//!   ratio to the workload's lowest, and for `c-small` the median "pile":
//!   the most bytes waiting in its cross-thread inboxes at once, part of the
//!   peak that depends on scheduling when threads outnumber cores
//!   (`bench/c/c_small.c`). The targets are judged on medians, time and RSS
//!   alike: the highest peak is one run's figure, and in about one run of
//!   `c-small` in ten, under any allocator, 10-30 MiB pile up in an inbox
//!   whose reader waited for a core (the median pile is 4-7 MiB). Runs are
//!   interleaved round-robin across allocators. A run that exits non-zero,
//!   times out, lacks its success line or reports the wrong `malloc` library
//!   is FAILED (with the end of its stderr), never a number. An allocator
//!   whose library is missing is reported `unavailable`.
//! * **Verification**: before the timed runs, each workload runs once under
//!   nalloc with `NALLOC_STATS=1`, and the stats line on stderr must show
//!   allocations. With `--counters` the event lines of that run (lock
//!   acquisitions, cross-thread frees, OS calls) are printed per million
//!   allocator operations.
//! * **Threads**: the threaded workloads take their thread count as an
//!   argument (2 by default for the new ones, this machine's cores);
//!   `--threads N` replaces it, for the scaling runs of
//!   `docs/design/scaling.md`.

pub mod cli;
pub mod exec;
pub mod setup;
pub mod summary;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cli::{choices, parse_args, usage, Options};
use exec::{parse_nalloc_stats, run_one, RunRecord, RunSpec, TIME, TIME_FORMAT};
use setup::{
    busy_processes, loadavg, prepare, resolve_allocator, Availability, CpuSnapshot, Dirs, Prepared, PRELOAD_ALLOCATORS,
    PRELOAD_WORKLOADS,
};
use summary::{check_targets, render_counters, render_table, render_targets, summarize, PreloadReport, Verification};

use crate::report::MachineInfo;

/// Prints the workloads and allocators (with where each library would come from).
pub fn print_list() {
    println!("workloads:");
    for w in PRELOAD_WORKLOADS {
        println!("  {:<9} {}", w.name, w.description);
    }
    println!("\nallocators:");
    for a in PRELOAD_ALLOCATORS {
        let found = match (a.name, a.library) {
            (_, None) => "no preload".to_owned(),
            ("nalloc", Some(f)) => format!("{f}, built into <target>/release"),
            (_, Some(f)) => match setup::find_system_library(f) {
                Some(p) => p.display().to_string(),
                None => format!("{f} not installed"),
            },
        };
        println!("  {:<9} {} ({})", a.name, a.source, found);
    }
}

/// Entry point of `nalloc-preload-bench`; returns the process exit code
/// (0: all runs succeeded, 1: a run or check failed, 2: bad usage or setup).
pub fn main() -> i32 {
    let opts = match crate::cli::options_or_exit(parse_args(std::env::args().skip(1)), print_list, usage, choices) {
        Ok(o) => o,
        Err(code) => return code,
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

/// Runs the benchmark described by `opts`; returns whether every run and check succeeded.
pub fn run(opts: &Options) -> Result<bool, String> {
    if !Path::new(TIME).is_file() {
        return Err(format!("{TIME} not found (GNU time; on Debian: apt-get install time)"));
    }
    let dirs = Dirs::locate()?;
    exec::install_signal_cleanup();
    let machine = MachineInfo::collect();
    print!("{}", machine.render());

    // Setup: libraries (building libnalloc.so if needed), then programs.
    let mut ready: Vec<(&str, Option<PathBuf>)> = Vec::new();
    let mut unavailable: Vec<(String, String)> = Vec::new();
    let mut alloc_desc = Vec::new();
    for a in &opts.allocators {
        match resolve_allocator(a, &dirs, opts.rebuild, opts.nalloc_lib.as_deref()) {
            Availability::Ready(lib) => {
                let shown = lib
                    .as_ref()
                    .map_or_else(|| "(no preload)".to_owned(), |p| p.display().to_string());
                println!("allocator {:<9} {shown}", a.name);
                alloc_desc.push((a.name.to_owned(), shown));
                ready.push((a.name, lib));
            }
            Availability::Unavailable(why) => {
                println!("allocator {:<9} unavailable: {why}", a.name);
                alloc_desc.push((a.name.to_owned(), format!("unavailable: {why}")));
                unavailable.push((a.name.to_owned(), why));
            }
        }
    }
    let mut prepared: Vec<(&str, Prepared)> = Vec::new();
    let mut setup_failed: Vec<(String, String)> = Vec::new();
    let mut work_desc = Vec::new();
    for w in &opts.workloads {
        match prepare(w, &dirs, opts.python.as_deref(), opts.threads) {
            Ok(p) => {
                let env: Vec<String> = p.env.iter().map(|(k, v)| format!("{k}={v} ")).collect();
                let cmdline = format!("{}{} {}", env.concat(), p.program.display(), p.args.join(" "));
                println!("workload  {:<9} {cmdline}", w.name);
                work_desc.push((w.name.to_owned(), w.description.to_owned(), cmdline));
                prepared.push((w.name, p));
            }
            Err(e) => {
                println!("workload  {:<9} setup FAILED: {e}", w.name);
                work_desc.push((
                    w.name.to_owned(),
                    w.description.to_owned(),
                    format!("setup FAILED: {e}"),
                ));
                setup_failed.push((w.name.to_owned(), e));
            }
        }
    }
    let runs_dir = dirs.work.join("runs");
    std::fs::create_dir_all(&runs_dir).map_err(|e| format!("cannot create {}: {e}", runs_dir.display()))?;

    // Verification: nalloc must really serve the runs.
    let mut verification = Vec::new();
    let nalloc_lib = ready.iter().find(|(n, _)| *n == "nalloc").and_then(|(_, l)| l.clone());
    if let (Some(lib), false) = (&nalloc_lib, opts.no_verify) {
        println!("\nchecking that nalloc serves the runs (NALLOC_STATS=1, one untimed run per workload):");
        for (w, p) in &prepared {
            let rec = run_one(&RunSpec {
                workload: w,
                allocator: "nalloc",
                run: 0,
                prepared: p,
                preload: Some(lib),
                extra_env: &[("NALLOC_STATS", "1")],
                work: &runs_dir,
                timeout: opts.timeout,
            });
            let v = verify(w, &rec);
            match (&v.stats, &v.error) {
                (Some(s), None) => println!(
                    "  {w:<9} ok: malloc={} small_allocs={} small_frees={} large_allocs={} large_frees={}",
                    v.malloc.as_deref().unwrap_or("?"),
                    s.small_allocs,
                    s.small_frees,
                    s.large_allocs,
                    s.large_frees
                ),
                (_, Some(e)) => println!("  {w:<9} FAILED: {}", e.replace('\n', "\n      ")),
                (None, None) => println!("  {w:<9} FAILED"),
            }
            verification.push(v);
        }
        if opts.counters {
            println!(
                "\nnalloc's slow-path events per million allocator operations (ops: small and large allocations\n\
                 and frees of the NALLOC_STATS=1 run; r.: cross-thread frees handed over, kept and collected):"
            );
            print!("{}", render_counters(&verification));
        }
    }

    // Timed runs.
    let busy = busy_processes(Duration::from_secs(1));
    let load = loadavg();
    println!();
    if busy.is_empty() {
        println!("no compiler, build or CPU-busy (>= 10% over 1 s) process running before the timed runs");
    } else {
        println!(
            "WARNING: other processes are running and will disturb the timings: {}",
            busy.join(", ")
        );
    }
    if let Some(l) = load {
        println!("load average (1 min) before the timed runs: {l:.2}");
    }
    let cpu_before = CpuSnapshot::take();
    let records = schedule(opts, &prepared, &ready, &runs_dir);
    let other_cpu = CpuSnapshot::take().others_since(&cpu_before);

    let wnames: Vec<&str> = opts.workloads.iter().map(|w| w.name).collect();
    let anames: Vec<&str> = opts.allocators.iter().map(|a| a.name).collect();
    let summaries = summarize(&wnames, &anames, &unavailable, &setup_failed, &records);
    let targets = check_targets(&summaries, &wnames);
    println!(
        "\n{} run(s) per pair, round-robin; each run `{TIME} -f '{TIME_FORMAT}' env LD_PRELOAD=<lib> <program>`;\n\
         wall time timed by the runner around it (ms resolution), peak RSS from %M (highest and median of the runs);\n\
         targets judged on medians;\n\
         pile: median of the most bytes waiting in c-small's cross-thread inboxes at once; python with PYTHONMALLOC=malloc\n",
        opts.runs
    );
    print!("{}", render_table(&summaries));
    print!("{}", summary::render_faults(&summaries, &machine.thp));
    println!(
        "\nother processes used {:.1} CPU-s during the {:.0} s of timed runs ({:.0}% of the machine){}{}",
        other_cpu.cpu_s,
        other_cpu.wall_s,
        other_cpu.share * 100.0,
        if other_cpu.top.is_empty() { "" } else { ": " },
        other_cpu.top.join(", ")
    );
    if other_cpu.share > 0.05 {
        println!("WARNING: the timings above were disturbed by other processes; rerun on a quiet machine");
    }
    let t = render_targets(&targets);
    if !t.is_empty() {
        print!("\n{t}");
    }

    let all_ok = summaries.iter().all(|s| s.status != "FAILED") && verification.iter().all(|v| v.ok);
    if let Some(path) = &opts.json {
        let report = PreloadReport {
            machine,
            runs_per_pair: opts.runs,
            method: format!(
                "{TIME} -f '{TIME_FORMAT}' /usr/bin/env LD_PRELOAD=<lib> <program>; seconds: runner's clock around it; \
                 time_elapsed_s: %e; maxrss_kib: %M; round-robin across allocators"
            ),
            workloads: work_desc,
            allocators: alloc_desc,
            busy_before: busy,
            loadavg_before: load,
            other_cpu_during: other_cpu,
            summaries,
            targets,
            verification,
            runs: records,
        };
        let json = serde_json::to_string_pretty(&report).map_err(|e| format!("cannot serialize JSON: {e}"))?;
        std::fs::write(path, json + "\n").map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        println!("\nJSON written to {}", path.display());
    }
    Ok(all_ok)
}

/// Judges a `NALLOC_STATS=1` run: it must succeed, report libnalloc.so as
/// its malloc and print a stats line with at least one allocation.
fn verify(workload: &str, rec: &RunRecord) -> Verification {
    let stats = parse_nalloc_stats(&rec.stderr);
    let error = if let Some(e) = &rec.error {
        Some(e.clone())
    } else {
        match &stats {
            None => Some("no `nalloc: pid=... small_allocs=...` line on stderr".to_owned()),
            Some(s) if s.small_allocs + s.large_allocs == 0 => Some("stats line shows no allocations".to_owned()),
            Some(_) => None,
        }
    };
    Verification {
        workload: workload.to_owned(),
        ok: error.is_none(),
        stats,
        malloc: rec.malloc.clone(),
        error,
    }
}

/// Runs every prepared (workload, ready allocator) pair `opts.runs` times:
/// run-major, then workload, then allocators round-robin with a rotating
/// start, so that machine noise spreads evenly over the allocators.
fn schedule(
    opts: &Options,
    prepared: &[(&str, Prepared)],
    ready: &[(&str, Option<PathBuf>)],
    runs_dir: &Path,
) -> Vec<RunRecord> {
    let mut plan = Vec::new();
    for run in 0..opts.runs {
        for (wi, (w, p)) in prepared.iter().enumerate() {
            let n = ready.len();
            for i in 0..n {
                let (a, lib) = &ready[(i + run + wi) % n];
                plan.push((run, *w, p, *a, lib.as_deref()));
            }
        }
    }
    let total = plan.len();
    let tty = std::io::stderr().is_terminal();
    let start = Instant::now();
    let mut records = Vec::with_capacity(total);
    for (i, (run, w, p, a, lib)) in plan.into_iter().enumerate() {
        let rec = run_one(&RunSpec {
            workload: w,
            allocator: a,
            run,
            prepared: p,
            preload: lib,
            extra_env: &[],
            work: runs_dir,
            timeout: opts.timeout,
        });
        let result = match (&rec.error, rec.seconds, rec.maxrss_kib) {
            (None, Some(s), Some(k)) => format!("{s:.2} s, {:.1} MiB", k as f64 / 1024.0),
            _ => "FAILED".to_owned(),
        };
        let msg = format!(
            "[{:>3}/{total}] {w} / {a} run {}: {result} ({:.0} s elapsed)",
            i + 1,
            run + 1,
            start.elapsed().as_secs_f64()
        );
        if tty {
            eprint!("\r\x1b[2K{msg}");
        } else {
            eprintln!("{msg}");
        }
        records.push(rec);
    }
    if tty {
        eprintln!();
    }
    records
}
