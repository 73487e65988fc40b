//! The runner: argument parsing, worker building, process launching and scheduling.

use std::io::{BufRead, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::allocators::{AllocatorInfo, ALLOCATORS};
use crate::cli::{options_or_exit, select, split_list};
use crate::report::{self, MachineInfo, Report, ReportConfig, RunRecord};
use crate::result::WorkerResult;
use crate::workloads::{self, soak, WorkloadInfo, ON_DEMAND, WORKLOADS};

/// Default runs per (workload, allocator) in the quick suite.
pub const QUICK_RUNS: usize = 3;
/// Default runs per (workload, allocator) in the full suite.
pub const FULL_RUNS: usize = 5;

/// Parsed command-line options of a benchmark run.
#[derive(Clone, Debug)]
pub struct Options {
    /// Run the long suite.
    pub full: bool,
    /// Workloads to run, in suite order.
    pub workloads: Vec<&'static WorkloadInfo>,
    /// Allocators to compare, in report order.
    pub allocators: Vec<&'static AllocatorInfo>,
    /// Fresh-process runs per (workload, allocator).
    pub runs: usize,
    /// Where to write the JSON report, if anywhere.
    pub json: Option<PathBuf>,
    /// Where to write the SVG chart (`None`: the default path in the target dir).
    pub svg: Option<PathBuf>,
    /// Do not write an SVG chart.
    pub no_svg: bool,
    /// Always rebuild the worker binaries first.
    pub rebuild: bool,
    /// Never build the worker binaries (fail if they are missing).
    pub no_build: bool,
    /// Per-run time limit; a worker running longer is killed and reported FAILED.
    pub timeout: Duration,
    /// Duration of time-bound workloads (`soak`), passed to the workers.
    pub seconds: Option<u64>,
    /// Run the workloads (default: halo2 and fft) once under nalloc with
    /// their phases labelled and print nalloc's per-phase tables.
    pub phases: bool,
}

/// What the command line asked for.
pub type Cli = crate::cli::Cli<Options>;

/// Usage text.
pub fn usage() -> String {
    format!(
        "nalloc-bench: compare zk-nalloc with glibc, mimalloc and jemalloc\n\
         \n\
         usage: cargo run --release -p nalloc-bench -- [OPTIONS]\n\
         \n\
         options:\n  \
           --full                 run the long suite (default: quick, ~5 min on 2 cores)\n  \
           --phases               run halo2 and fft (or --workload) once under nalloc, phases labelled, and print its per-phase tables\n  \
           --workload NAME[,..]   workloads to run (repeatable; default: all)\n  \
           --allocator NAME[,..]  allocators to compare (repeatable; default: all but the opt-in ones)\n  \
           --runs N               fresh-process runs per pair (default {QUICK_RUNS} quick, {FULL_RUNS} full)\n  \
           --json FILE            also write the results as JSON\n  \
           --svg FILE             write the SVG chart here (default: <target>/nalloc-bench/)\n  \
           --no-svg               do not write the SVG chart\n  \
           --timeout SECS         per-run time limit (default 600 quick, 1800 full; at least --seconds + 120)\n  \
           --seconds N            duration of the `soak` workload (default 20 quick, 120 full)\n  \
           --rebuild              rebuild the worker binaries even if they look fresh\n  \
           --no-build             use the workers as they are (fail if missing)\n  \
           --list                 list workloads and allocators\n  \
           --cmd \"COMMAND\"        instead of the suite: your own program under each allocator (see --cmd x --help)\n  \
           -h, --help             this help\n\
         \n{}",
        choices()
    )
}

/// The valid workload and allocator names, for error messages.
pub fn choices() -> String {
    let w: Vec<&str> = WORKLOADS.iter().chain(ON_DEMAND).map(|w| w.name).collect();
    let a: Vec<String> = ALLOCATORS
        .iter()
        .filter(|a| !a.opt_in)
        .map(|a| a.name.to_owned())
        .chain(
            ALLOCATORS
                .iter()
                .filter(|a| a.opt_in)
                .map(|a| format!("{} (opt-in)", a.name)),
        )
        .collect();
    format!("valid workloads: {}\nvalid allocators: {}", w.join(", "), a.join(", "))
}

/// Parses the command line (without the program name).
pub fn parse_args<I: IntoIterator<Item = String>>(args: I) -> Result<Cli, String> {
    let mut full = false;
    let mut wanted_workloads: Vec<String> = Vec::new();
    let mut wanted_allocators: Vec<String> = Vec::new();
    let mut runs = None;
    let mut json = None;
    let mut svg = None;
    let mut no_svg = false;
    let mut rebuild = false;
    let mut no_build = false;
    let mut timeout = None;
    let mut seconds = None;
    let mut list = false;
    let mut phases = false;

    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        // Accept both `--flag value` and `--flag=value`.
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let takes_value = matches!(
            flag.as_str(),
            "--workload" | "--allocator" | "--runs" | "--json" | "--svg" | "--timeout" | "--seconds"
        );
        if inline.is_some() && !takes_value {
            return Err(format!("flag `{flag}` takes no value"));
        }
        let mut value = || -> Result<String, String> {
            match inline.clone().or_else(|| args.next()) {
                Some(v) if !v.is_empty() => Ok(v),
                _ => Err(format!("flag `{flag}` needs a value")),
            }
        };
        match flag.as_str() {
            "--full" => full = true,
            "--list" => list = true,
            "--phases" => phases = true,
            "-h" | "--help" => return Ok(Cli::Help),
            "--no-svg" => no_svg = true,
            "--rebuild" => rebuild = true,
            "--no-build" => no_build = true,
            "--workload" => wanted_workloads.extend(split_list(&value()?)),
            "--allocator" => wanted_allocators.extend(split_list(&value()?)),
            "--runs" => {
                let v = value()?;
                runs = Some(
                    v.parse::<usize>()
                        .ok()
                        .filter(|&n| n >= 1)
                        .ok_or_else(|| format!("--runs needs a positive integer, got `{v}`"))?,
                );
            }
            "--timeout" => {
                let v = value()?;
                let secs = v
                    .parse::<u64>()
                    .ok()
                    .filter(|&n| n >= 1)
                    .ok_or_else(|| format!("--timeout needs a positive number of seconds, got `{v}`"))?;
                timeout = Some(Duration::from_secs(secs));
            }
            "--seconds" => {
                let v = value()?;
                seconds = Some(
                    v.parse::<u64>()
                        .ok()
                        .filter(|&n| n >= 1)
                        .ok_or_else(|| format!("--seconds needs a positive number of seconds, got `{v}`"))?,
                );
            }
            "--json" => json = Some(PathBuf::from(value()?)),
            "--svg" => svg = Some(PathBuf::from(value()?)),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    if list {
        return Ok(Cli::List);
    }
    if rebuild && no_build {
        return Err("--rebuild and --no-build are mutually exclusive".into());
    }
    if svg.is_some() && no_svg {
        return Err("--svg and --no-svg are mutually exclusive".into());
    }

    // On-demand workloads (soak) run only when named, after the suite's.
    let on_demand: Vec<&'static WorkloadInfo> = ON_DEMAND
        .iter()
        .filter(|o| wanted_workloads.iter().any(|w| w == o.name))
        .collect();
    wanted_workloads.retain(|w| !ON_DEMAND.iter().any(|o| o.name == w));
    if phases && wanted_workloads.is_empty() {
        wanted_workloads = vec!["halo2".into(), "fft".into()];
    }
    if phases {
        wanted_allocators = vec!["nalloc".into()];
    }
    let mut workloads = if wanted_workloads.is_empty() && !on_demand.is_empty() {
        Vec::new()
    } else {
        select(&wanted_workloads, WORKLOADS, |w| w.name, "workload")?
    };
    workloads.extend(on_demand);
    let mut allocators = select(&wanted_allocators, ALLOCATORS, |a| a.name, "allocator")?;
    if wanted_allocators.is_empty() {
        // Opt-in allocators (nalloc-hardened) run only when named.
        allocators.retain(|a| !a.opt_in);
    }
    Ok(Cli::Run(Options {
        full,
        workloads,
        allocators,
        runs: runs.unwrap_or(if full { FULL_RUNS } else { QUICK_RUNS }),
        json,
        svg,
        no_svg,
        rebuild,
        no_build,
        timeout: timeout.unwrap_or(Duration::from_secs(
            (if full { 1800 } else { 600 }).max(seconds.map_or(0, |s| s + 120)),
        )),
        seconds,
        phases,
    }))
}

/// Prints the workloads and allocators.
pub fn print_list() {
    println!("workloads:");
    for w in WORKLOADS {
        println!("  {:<14} {}", w.name, w.description);
    }
    println!("\non demand (only when named with --workload):");
    for w in ON_DEMAND {
        println!("  {:<14} {}", w.name, w.description);
    }
    println!("\nallocators (one worker binary each):");
    for a in ALLOCATORS.iter().filter(|a| !a.opt_in) {
        println!("  {:<16} {}", a.name, a.description);
    }
    println!("\nopt-in allocators (only when named with --allocator):");
    for a in ALLOCATORS.iter().filter(|a| a.opt_in) {
        println!("  {:<16} {}", a.name, a.description);
    }
}

/// Runner entry point; returns the process exit code.
pub fn main() -> i32 {
    let opts = match options_or_exit(parse_args(std::env::args().skip(1)), print_list, usage, choices) {
        Ok(o) => o,
        Err(code) => return code,
    };
    match run(&opts) {
        Ok(all_ok) => {
            if all_ok {
                0
            } else {
                1
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            2
        }
    }
}

/// `--phases`: each workload once under nalloc, phases labelled; prints
/// nalloc's per-phase table (calls, bytes, peak live, returned, minor
/// faults, wall time) per workload. Returns whether every run succeeded.
pub fn run_phases(opts: &Options) -> Result<bool, String> {
    let exe_dir = ensure_workers(opts)?;
    let nalloc = opts.allocators.first().ok_or("no allocator")?;
    let mut all_ok = true;
    for w in &opts.workloads {
        let mut cmd = Command::new(worker_path(&exe_dir, nalloc));
        cmd.arg("--workload").arg(w.name).arg("--phases");
        if opts.full {
            cmd.arg("--full");
        }
        let out = cmd.output().map_err(|e| format!("cannot run the nalloc worker: {e}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        println!("== {} under nalloc, per phase ==", w.name);
        for line in stdout.lines().filter(|l| !l.starts_with(crate::result::RESULT_PREFIX)) {
            println!("{line}");
        }
        println!();
        if !out.status.success() {
            eprintln!("{}: {}\n{}", w.name, out.status, String::from_utf8_lossy(&out.stderr));
            all_ok = false;
        }
    }
    if opts.workloads.iter().any(|w| w.name == "halo2") {
        all_ok &= peak_timeline(opts, &exe_dir, nalloc)?;
    }
    Ok(all_ok)
}

/// Proofs in `--phases`' peak-RSS timeline (quick / full).
const TIMELINE_PROOFS: (usize, usize) = (16, 40);
/// Creep of the per-proof peak RSS that fails the timeline: the median of
/// the last third of the proofs over that of the first third (the first
/// proof, which builds the pool, excluded).
const TIMELINE_CREEP_MAX: f64 = 0.10;

/// `--phases`' timeline: the halo2 workload proving many times in one
/// process under nalloc, the peak RSS of each proof (its own window:
/// `VmHWM` reset before it); printed, drawn as an SVG, and judged for creep.
fn peak_timeline(opts: &Options, exe_dir: &Path, nalloc: &AllocatorInfo) -> Result<bool, String> {
    let proofs = if opts.full {
        TIMELINE_PROOFS.1
    } else {
        TIMELINE_PROOFS.0
    };
    let out = Command::new(worker_path(exe_dir, nalloc))
        .args(["--workload", "halo2"])
        .args(opts.full.then_some("--full"))
        .env(workloads::TIMELINE_ENV, proofs.to_string())
        .output()
        .map_err(|e| format!("cannot run the nalloc worker: {e}"))?;
    if !out.status.success() {
        eprintln!(
            "halo2 timeline: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        return Ok(false);
    }
    let peaks = report::parse_timeline(&String::from_utf8_lossy(&out.stdout));
    if peaks.len() != proofs {
        eprintln!("halo2 timeline: {} of {proofs} proofs reported their peak", peaks.len());
        return Ok(false);
    }
    println!("== halo2 under nalloc: peak RSS of each of {proofs} consecutive proofs (MiB) ==");
    let mib: Vec<String> = peaks.iter().map(|k| format!("{:.1}", *k as f64 / 1024.0)).collect();
    println!("{}", mib.join(" "));
    let creep = report::timeline_creep(&peaks);
    let ok = creep <= TIMELINE_CREEP_MAX;
    println!(
        "creep (median of the last third over the first, first proof excluded): {:+.1} % ({})",
        creep * 100.0,
        if ok { "ok" } else { "CREEPS" }
    );
    let path = exe_dir
        .parent()
        .unwrap_or(exe_dir)
        .join("nalloc-bench")
        .join("nalloc-bench-timeline.svg");
    write_file(
        &path,
        &report::render_timeline_svg("halo2: peak RSS per proof, nalloc", &peaks),
    )?;
    println!("SVG written to {}", path.display());
    Ok(ok)
}

/// Runs the suite described by `opts`; returns whether every run succeeded.
pub fn run(opts: &Options) -> Result<bool, String> {
    if opts.phases {
        return run_phases(opts);
    }
    let machine = MachineInfo::collect();
    print!("{}", machine.render());
    let config = report_config(opts);
    println!(
        "suite: {} | runs per pair: {} | workloads: {} | allocators: {}\n",
        config.suite,
        config.runs,
        config.workloads.join(","),
        config.allocators.join(","),
    );
    let _ = std::io::stdout().flush();

    let exe_dir = ensure_workers(opts)?;
    if let Some(s) = opts.seconds {
        // Inherited by the workers (see `workloads::soak`).
        std::env::set_var(soak::SECONDS_ENV, s.to_string());
    }
    let records = schedule(opts, &exe_dir);
    let report = Report::new(machine, config, records);
    print!("{}", report.render_table());

    if let Some(path) = &opts.json {
        write_file(path, &report.to_json()?)?;
        println!("JSON written to {}", path.display());
    }
    if !opts.no_svg {
        let path = match &opts.svg {
            Some(p) => p.clone(),
            None => default_svg_path(&exe_dir, opts.full),
        };
        write_file(&path, &report::render_svg(&report))?;
        println!("SVG chart written to {}", path.display());
    }
    Ok(report.all_ok())
}

/// What `opts` asked for, as the report echoes it.
fn report_config(opts: &Options) -> ReportConfig {
    ReportConfig {
        suite: if opts.full { "full" } else { "quick" }.into(),
        runs: opts.runs,
        workloads: opts.workloads.iter().map(|w| w.name.to_owned()).collect(),
        allocators: opts.allocators.iter().map(|a| a.name.to_owned()).collect(),
    }
}

fn write_file(path: &Path, contents: &str) -> Result<(), String> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    std::fs::write(path, contents).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// `<target dir>/nalloc-bench/nalloc-bench-<suite>.svg`, where the target dir
/// is the parent of the profile directory holding the executables.
fn default_svg_path(exe_dir: &Path, full: bool) -> PathBuf {
    let target = exe_dir.parent().unwrap_or(exe_dir);
    target
        .join("nalloc-bench")
        .join(format!("nalloc-bench-{}.svg", if full { "full" } else { "quick" }))
}

/// Directory holding `alloc`'s worker, given `exe_dir`, the profile directory
/// holding the runner (`<target>/<profile>`): `exe_dir` itself, or
/// `<target>/<feature>/<profile>` for a worker built with a feature of its own
/// (see [`AllocatorInfo::feature`]).
pub fn worker_dir(exe_dir: &Path, alloc: &AllocatorInfo) -> PathBuf {
    match alloc.feature {
        None => exe_dir.to_path_buf(),
        Some(feature) => feature_target_dir(exe_dir, feature).join(exe_dir.file_name().unwrap_or_default()),
    }
}

/// `<target>/<feature>`: the target directory of the workers built with `feature`.
fn feature_target_dir(exe_dir: &Path, feature: &str) -> PathBuf {
    exe_dir.parent().unwrap_or(exe_dir).join(feature)
}

/// Path of `alloc`'s worker executable (see [`worker_dir`]).
pub fn worker_path(exe_dir: &Path, alloc: &AllocatorInfo) -> PathBuf {
    worker_dir(exe_dir, alloc).join(format!("{}{}", alloc.worker_bin, std::env::consts::EXE_SUFFIX))
}

fn mtime(p: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// The cargo command that builds workers in the runner's profile: with
/// `feature` `None`, `$CARGO build -p nalloc-bench --bins` into the runner's
/// own target directory; with `Some(feature)`, `$CARGO build -p nalloc-bench
/// --features <feature> --bin <bin>..` into `<target>/<feature>`.
pub fn build_command(exe_dir: &Path, feature: Option<&str>, bins: &[&str]) -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let mut cmd = Command::new(cargo);
    cmd.arg("build").arg("-p").arg("nalloc-bench");
    match feature {
        None => {
            cmd.arg("--bins");
        }
        Some(feature) => {
            cmd.arg("--features").arg(feature);
            for bin in bins {
                cmd.arg("--bin").arg(bin);
            }
        }
    }
    cmd.arg("--manifest-path").arg(&manifest);
    match exe_dir.file_name().and_then(|n| n.to_str()).unwrap_or("") {
        "release" => {
            cmd.arg("--release");
        }
        "debug" => {}
        other => {
            cmd.arg("--profile").arg(other);
        }
    }
    match (feature, exe_dir.parent()) {
        (None, Some(target_dir)) => {
            cmd.arg("--target-dir").arg(target_dir);
        }
        (None, None) => {}
        (Some(feature), _) => {
            cmd.arg("--target-dir").arg(feature_target_dir(exe_dir, feature));
        }
    }
    cmd
}

/// Makes sure the selected allocators' worker binaries exist and are newer
/// than the runner; otherwise builds them in the runner's profile (see
/// [`build_command`]): the ordinary workers with one cargo invocation in the
/// runner's target directory, those needing a feature (`nalloc-hardened`)
/// with one invocation per feature into `<target>/<feature>`. Returns the
/// directory holding the runner, from which [`worker_path`] finds each worker.
pub fn ensure_workers(opts: &Options) -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot locate own executable: {e}"))?;
    let dir = exe
        .parent()
        .ok_or("own executable has no parent directory")?
        .to_path_buf();
    let exe_time = mtime(&exe);
    let fresh = |a: &AllocatorInfo| match (mtime(&worker_path(&dir, a)), exe_time) {
        (Some(w), Some(e)) => w >= e,
        _ => false,
    };
    let missing = || opts.allocators.iter().find(|a| !worker_path(&dir, a).exists());
    if opts.no_build {
        return match missing() {
            Some(a) => Err(format!(
                "worker binary {} ({}) is missing and --no-build was given{}",
                worker_path(&dir, a).display(),
                a.name,
                match a.feature {
                    Some(_) => format!("; it is built by {:?}", build_command(&dir, a.feature, &[a.worker_bin])),
                    None => String::new(),
                },
            )),
            None => Ok(dir),
        };
    }

    // One build per distinct feature set among the stale workers, the
    // ordinary workers first.
    let mut builds: Vec<Option<&'static str>> = Vec::new();
    for a in opts.allocators.iter().filter(|a| opts.rebuild || !fresh(a)) {
        if !builds.contains(&a.feature) {
            builds.push(a.feature);
        }
    }
    builds.sort_by_key(Option::is_some);
    for feature in builds {
        let bins: Vec<&str> = opts
            .allocators
            .iter()
            .filter(|a| a.feature == feature)
            .map(|a| a.worker_bin)
            .collect();
        let mut cmd = build_command(&dir, feature, &bins);
        let what = match feature {
            None => "the worker binaries".to_owned(),
            Some(f) => format!("the worker binaries with feature `{f}`"),
        };
        match feature {
            None => eprintln!("building {what}: {cmd:?}"),
            // A target directory of its own: its first build compiles every dependency once more.
            Some(_) => eprintln!("building {what} (own target directory; the first build takes minutes): {cmd:?}"),
        }
        let status = cmd
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit())
            .status()
            .map_err(|e| format!("cannot run {}: {e}", cmd.get_program().to_string_lossy()))?;
        if !status.success() {
            return Err(format!("building {what} failed ({status})"));
        }
    }
    if let Some(a) = missing() {
        return Err(format!(
            "worker binary {} ({}) still missing after the build",
            worker_path(&dir, a).display(),
            a.name
        ));
    }
    Ok(dir)
}

/// Runs every (workload, allocator) pair `opts.runs` times, each in a fresh
/// process. Order: run-major, then workload, then allocators round-robin
/// (the starting allocator rotates), so machine noise spreads evenly.
pub fn schedule(opts: &Options, exe_dir: &Path) -> Vec<RunRecord> {
    let mut plan = Vec::new();
    for run in 0..opts.runs {
        for (wi, w) in opts.workloads.iter().enumerate() {
            let n = opts.allocators.len();
            for i in 0..n {
                let a = opts.allocators[(i + run + wi) % n];
                plan.push((run, *w, a));
            }
        }
    }
    let total = plan.len();
    let tty = std::io::stderr().is_terminal();
    let start = Instant::now();
    let mut records = Vec::with_capacity(total);
    for (i, (run, w, a)) in plan.into_iter().enumerate() {
        let label = format!(
            "[{:>3}/{total}] {} / {} (run {}/{})",
            i + 1,
            w.name,
            a.name,
            run + 1,
            opts.runs
        );
        if tty {
            eprint!("\r\x1b[2K{label} ... elapsed {:.0} s", start.elapsed().as_secs_f64());
        }
        let rec = run_worker(&worker_path(exe_dir, a), w, a, run, opts.full, opts.timeout);
        let outcome = match &rec.result {
            Some(r) => format!("{:.1} ms", r.wall_ms),
            None => "FAILED".to_owned(),
        };
        if tty {
            eprint!("\r\x1b[2K{label}: {outcome}");
        } else {
            eprintln!("{label}: {outcome}");
        }
        records.push(rec);
    }
    if tty {
        eprintln!("\r\x1b[2Kdone: {total} runs in {:.1} s", start.elapsed().as_secs_f64());
    } else {
        eprintln!("done: {total} runs in {:.1} s", start.elapsed().as_secs_f64());
    }
    records
}

/// Shared flag between the waiting thread and the timeout watchdog.
struct Watch {
    state: Mutex<WatchState>,
    cond: Condvar,
}

#[derive(Default)]
struct WatchState {
    exited: bool,
    killed: bool,
}

/// Launches one worker, waits for it with `wait4` (to get its own peak RSS
/// and page faults), kills it after `timeout`, and parses its result line.
pub fn run_worker(
    path: &Path,
    workload: &WorkloadInfo,
    alloc: &AllocatorInfo,
    run: usize,
    full: bool,
    timeout: Duration,
) -> RunRecord {
    let mut rec = RunRecord {
        workload: workload.name.to_owned(),
        allocator: alloc.name.to_owned(),
        run,
        result: None,
        error: None,
        process_ms: 0.0,
        maxrss_kib: 0,
        process_maxrss_kib: 0,
        minflt: 0,
        exit: String::new(),
    };
    let mut cmd = Command::new(path);
    cmd.arg("--workload").arg(workload.name);
    if full {
        cmd.arg("--full");
    }
    let start = Instant::now();
    let mut child = match cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            rec.error = Some(format!("cannot start {}: {e}", path.display()));
            return rec;
        }
    };
    let pid = child.id() as libc::pid_t;
    let mut out_pipe = child.stdout.take().expect("piped stdout");
    let mut err_pipe = child.stderr.take().expect("piped stderr");
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out_pipe.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        // Kept for the error report; progress lines are also shown live.
        let mut s = String::new();
        for line in std::io::BufReader::new(&mut err_pipe).lines().map_while(Result::ok) {
            if line.starts_with(soak::PREFIX) {
                eprintln!("{line}");
            }
            s.push_str(&line);
            s.push('\n');
        }
        s
    });

    let watch = Arc::new(Watch {
        state: Mutex::new(WatchState::default()),
        cond: Condvar::new(),
    });
    let watchdog = {
        let watch = Arc::clone(&watch);
        std::thread::spawn(move || {
            let guard = watch.state.lock().expect("watch lock");
            let (mut guard, _) = watch
                .cond
                .wait_timeout_while(guard, timeout, |s| !s.exited)
                .expect("watch lock");
            if !guard.exited {
                // SAFETY: the child has not been reaped yet (the waiting
                // thread only reaps after setting `exited` under this lock),
                // so `pid` still names our child and cannot have been reused.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                guard.killed = true;
            }
        })
    };

    // Wait for exit without reaping, mark it, then reap with wait4 for rusage.
    loop {
        // SAFETY: siginfo_t is plain old data; all-zero is valid.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: valid out-pointer; WNOWAIT leaves the child waitable.
        let r = unsafe { libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, libc::WEXITED | libc::WNOWAIT) };
        if r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            break;
        }
    }
    let killed = {
        let mut s = watch.state.lock().expect("watch lock");
        s.exited = true;
        watch.cond.notify_all();
        s.killed
    };
    let _ = watchdog.join();

    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain old data; all-zero is valid.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let reaped = loop {
        // SAFETY: valid out-pointers; `pid` is our unreaped child.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            break true;
        }
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            break false;
        }
    };
    rec.process_ms = workloads::ms(start.elapsed());
    drop(child); // already reaped; dropping a Child does not wait.
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();

    if !reaped {
        rec.error = Some(format!("wait4 failed: {}", std::io::Error::last_os_error()));
        return rec;
    }
    rec.process_maxrss_kib = usage.ru_maxrss.max(0) as u64;
    rec.maxrss_kib = rec.process_maxrss_kib;
    rec.minflt = usage.ru_minflt.max(0) as u64;
    rec.exit = describe_status(status);

    let success = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    let tail = last_lines(&stderr, 6);
    if killed {
        rec.error = Some(format!(
            "timed out after {} s and was killed\n{tail}",
            timeout.as_secs()
        ));
    } else if !success {
        rec.error = Some(format!("{}\n{tail}", rec.exit));
    } else {
        match WorkerResult::from_stdout(&stdout) {
            Some(Ok(r)) if r.workload == workload.name && r.allocator == alloc.name => {
                if let Some(kib) = r.output.common_peak_rss_kib {
                    rec.maxrss_kib = kib;
                }
                rec.result = Some(r);
            }
            Some(Ok(r)) => {
                rec.error = Some(format!(
                    "worker reported {}/{} instead of {}/{}",
                    r.workload, r.allocator, workload.name, alloc.name
                ))
            }
            Some(Err(e)) => rec.error = Some(e),
            None => rec.error = Some(format!("exited 0 without a result line\n{tail}")),
        }
    }
    rec
}

fn describe_status(status: libc::c_int) -> String {
    if libc::WIFEXITED(status) {
        format!("exit code {}", libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        let sig = libc::WTERMSIG(status);
        let name = match sig {
            libc::SIGSEGV => "SIGSEGV",
            libc::SIGABRT => "SIGABRT",
            libc::SIGBUS => "SIGBUS",
            libc::SIGKILL => "SIGKILL",
            libc::SIGILL => "SIGILL",
            libc::SIGFPE => "SIGFPE",
            _ => "signal",
        };
        format!("killed by signal {sig} ({name})")
    } else {
        format!("wait status {status:#x}")
    }
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let from = lines.len().saturating_sub(n);
    lines[from..].join("\n")
}

/// Selected allocator names, for convenience.
pub fn allocator_names(opts: &Options) -> Vec<&'static str> {
    opts.allocators.iter().map(|a| a.name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, String> {
        parse_args(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn defaults_and_lists() {
        let Ok(Cli::Run(o)) = parse(&[]) else { panic!() };
        assert_eq!(o.runs, QUICK_RUNS);
        assert_eq!(o.workloads.len(), WORKLOADS.len());
        // Every allocator but the opt-in ones.
        assert_eq!(allocator_names(&o), ["nalloc", "glibc", "mimalloc", "jemalloc"]);

        let Ok(Cli::Run(o)) = parse(&[
            "--full",
            "--workload",
            "fft,small",
            "--workload=halo2",
            "--allocator",
            "glibc",
            "--runs=2",
        ]) else {
            panic!()
        };
        assert_eq!(o.runs, 2);
        // Suite order, not command-line order.
        let names: Vec<_> = o.workloads.iter().map(|w| w.name).collect();
        assert_eq!(names, ["halo2", "fft", "small"]);
        assert_eq!(allocator_names(&o), ["glibc"]);
        assert!(crate::allocators::find("nalloc").is_some());
    }

    #[test]
    fn errors() {
        for bad in [
            &["--workload", "nope"][..],
            &["--allocator", "tcmalloc"],
            &["--runs", "0"],
            &["--runs", "x"],
            &["--runs"],
            &["--bogus"],
            &["--full=1"],
            &["--svg", "a.svg", "--no-svg"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should fail");
        }
        assert!(matches!(parse(&["--list"]), Ok(Cli::List)));
    }

    #[test]
    fn opt_in_allocators_run_only_when_named() {
        let Ok(Cli::Run(o)) = parse(&["--allocator", "nalloc-hardened"]) else {
            panic!()
        };
        assert_eq!(allocator_names(&o), ["nalloc-hardened"]);
        // Report order, not command-line order.
        let Ok(Cli::Run(o)) = parse(&["--allocator=glibc,nalloc-hardened", "--allocator", "nalloc"]) else {
            panic!()
        };
        assert_eq!(allocator_names(&o), ["nalloc", "nalloc-hardened", "glibc"]);
        assert!(choices().contains("nalloc-hardened (opt-in)"), "{}", choices());
    }

    #[test]
    fn feature_workers_live_in_their_own_target_dir() {
        let nalloc = crate::allocators::find("nalloc").expect("nalloc");
        let hardened = crate::allocators::find("nalloc-hardened").expect("nalloc-hardened");
        let exe_dir = Path::new("/t/release");
        let exe = std::env::consts::EXE_SUFFIX;
        assert_eq!(
            worker_path(exe_dir, nalloc),
            PathBuf::from(format!("/t/release/nalloc-bench-worker-nalloc{exe}"))
        );
        assert_eq!(
            worker_path(exe_dir, hardened),
            PathBuf::from(format!("/t/hardened/release/nalloc-bench-worker-nalloc{exe}"))
        );

        let args = |feature, bins: &[&str]| -> Vec<String> {
            build_command(exe_dir, feature, bins)
                .get_args()
                .map(|a| a.to_string_lossy().into_owned())
                .collect()
        };
        let plain = args(None, &[]);
        assert!(plain.windows(2).any(|w| w == ["--target-dir", "/t"]), "{plain:?}");
        assert!(plain.iter().any(|a| a == "--bins") && !plain.iter().any(|a| a == "--features"));
        let hard = args(Some("hardened"), &[hardened.worker_bin]);
        for pair in [
            ["--features", "hardened"],
            ["--bin", "nalloc-bench-worker-nalloc"],
            ["--target-dir", "/t/hardened"],
        ] {
            assert!(hard.windows(2).any(|w| w == pair), "{pair:?} in {hard:?}");
        }
        assert!(hard.iter().any(|a| a == "--release") && !hard.iter().any(|a| a == "--bins"));
    }
}
