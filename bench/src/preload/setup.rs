//! What runs: the allocator and workload tables, finding the preload
//! libraries, building `libnalloc.so`, compiling the C workloads and finding
//! the tools.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

/// One allocator of the comparison.
#[derive(Debug)]
pub struct PreloadAllocator {
    /// Name on the command line and in the table.
    pub name: &'static str,
    /// File name of the shared object to preload; `None` for glibc (no preload).
    pub library: Option<&'static str>,
    /// Where the library comes from (Debian package or build command).
    pub source: &'static str,
}

/// The allocators, in table order. glibc is the baseline of the time ratio.
pub const PRELOAD_ALLOCATORS: &[PreloadAllocator] = &[
    PreloadAllocator {
        name: "glibc",
        library: None,
        source: "the C library's own malloc (no LD_PRELOAD)",
    },
    PreloadAllocator {
        name: "mimalloc",
        library: Some("libmimalloc.so.2"),
        source: "Debian package libmimalloc2.0",
    },
    PreloadAllocator {
        name: "jemalloc",
        library: Some("libjemalloc.so.2"),
        source: "Debian package libjemalloc2",
    },
    PreloadAllocator {
        name: "tcmalloc",
        library: Some("libtcmalloc_minimal.so.4"),
        source: "Debian package libtcmalloc-minimal4",
    },
    PreloadAllocator {
        name: "nalloc",
        library: Some("libnalloc.so"),
        source: "this workspace: cargo build --release -p nalloc-capi",
    },
];

/// Name of the baseline allocator (time ratios are relative to it).
pub const BASELINE: &str = "glibc";

/// Which program a workload runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkloadKind {
    /// `bench/c/c_small.c`.
    CSmall,
    /// `bench/c/c_large.c`.
    CLarge,
    /// `bench/c/c_first_touch.c`.
    CFirstTouch,
    /// `bench/c/c_xmalloc.c`.
    CXmalloc,
    /// `bench/c/c_rpmalloc.c`.
    CRpmalloc,
    /// `bench/c/c_larson.c` (plain or sized frees, by its arguments).
    CLarson,
    /// `bench/c/c_thrash.c`.
    CThrash,
    /// `bench/c/c_mstress.c`.
    CMstress,
    /// `bench/python/alloc_stress.py` under `PYTHONMALLOC=malloc`.
    Python,
}

/// One workload of the comparison.
#[derive(Debug)]
pub struct PreloadWorkload {
    /// Name on the command line and in the table; also the prefix of the
    /// program's success line (`<name> ok ...`).
    pub name: &'static str,
    /// What it does.
    pub description: &'static str,
    /// Which program it runs.
    pub kind: WorkloadKind,
    /// Arguments passed to the program.
    pub args: &'static [&'static str],
    /// Which of `args` is the thread count (`--threads` replaces it), if any.
    pub threads_arg: Option<usize>,
}

/// The workloads, in table order.
pub const PRELOAD_WORKLOADS: &[PreloadWorkload] = &[
    PreloadWorkload {
        name: "c-small",
        description: "C, 4 threads x 3M steps: 8-1024 B blocks churned, 1/4 freed by another thread \
                      (lock-free inbox), reallocs, LIFO bursts, content checks",
        kind: WorkloadKind::CSmall,
        args: &["4", "3000000"],
        threads_arg: Some(0),
    },
    PreloadWorkload {
        name: "c-large",
        description: "C, 500 x malloc of 5-25 MiB, one write per 4 KiB page, read back, free",
        kind: WorkloadKind::CLarge,
        args: &["500"],
        threads_arg: None,
    },
    PreloadWorkload {
        name: "first-touch",
        description: "C, a fresh process's first pass over large blocks: 256 KiB doubling to 1 GiB, \
                      each size once by malloc and once by calloc, every 4 KiB page written \
                      (calloc'd ones checked zero first), freed before the next: \
                      what reusing the pages of freed smaller blocks for larger ones saves",
        kind: WorkloadKind::CFirstTouch,
        args: &["1024"],
        threads_arg: None,
    },
    PreloadWorkload {
        name: "python",
        description: "python3 with PYTHONMALLOC=malloc: 4 threads build/sort/check dicts, lists, \
                      strings, handing them to each other through queues",
        kind: WorkloadKind::Python,
        args: &["30", "4"],
        threads_arg: Some(1),
    },
    PreloadWorkload {
        name: "c-xmalloc",
        description: "C, producer/consumer (xmalloc-test shape): threads/2 pairs (default 2 threads), each \
                      producer allocates 1.5M blocks of 16 B-32 KiB (16<<e plus up to as much again, e \
                      uniform 0..10) in batches of 1-256, its consumer checks and frees them all",
        kind: WorkloadKind::CXmalloc,
        args: &["2", "1500000"],
        threads_arg: Some(0),
    },
    PreloadWorkload {
        name: "c-rpmalloc",
        description: "C, random sizes and lifetimes across threads (rpmalloc benchmark shape): 2 threads x \
                      2M steps, 16 B-32 KiB (60% <=128 B, 1% >8 KiB), half short-lived (64 slots), half \
                      long-lived (8192 slots), a quarter of all blocks freed by another thread in batches of 64",
        kind: WorkloadKind::CRpmalloc,
        args: &["2", "2000000"],
        threads_arg: Some(0),
    },
    PreloadWorkload {
        name: "c-larson",
        description: "C, server churn (Larson shape): 2 threads x 3M steps replace random blocks of 8-1000 B \
                      in one shared array (4096 slots per thread, atomic swap), frees cross threads; each \
                      thread hands over to a new thread 10 times; plain free",
        kind: WorkloadKind::CLarson,
        args: &["2", "3000000", "10", "0"],
        threads_arg: Some(0),
    },
    PreloadWorkload {
        name: "c-larson-sized",
        description: "C, c-larson with sized frees: free_sized where exported (nalloc), else the allocator's \
                      own (jemalloc sdallocx, tcmalloc tc_free_sized, mimalloc mi_free_size), else free (glibc)",
        kind: WorkloadKind::CLarson,
        args: &["2", "3000000", "10", "1"],
        threads_arg: Some(0),
    },
    PreloadWorkload {
        name: "c-thrash",
        description: "C, cache thrash (Hoard cache-thrash shape): 2 threads x 4M x (malloc 8 B, write each \
                      byte 16 times, check, free)",
        kind: WorkloadKind::CThrash,
        args: &["2", "4000000", "8", "16"],
        threads_arg: Some(0),
    },
    PreloadWorkload {
        name: "c-mstress",
        description: "C, rounds of short-lived threads (mimalloc-bench mstress shape): 10 rounds of 4 fresh \
                      threads, thread k making 5,000 x (k % 8 + 1) calloc'd items of 8-512 B, 1 in 50 of \
                      them 100-10,000 times larger (up to 5 MiB), every word written and checked; 2/3 \
                      freed soon, half kept to the thread's end, 1/4 swapped into a shared array of \
                      1,000 that other threads free",
        kind: WorkloadKind::CMstress,
        args: &["4", "50", "10"],
        threads_arg: Some(0),
    },
];

const C_SMALL_SRC: &str = include_str!("../../c/c_small.c");
const C_LARGE_SRC: &str = include_str!("../../c/c_large.c");
const C_FIRST_TOUCH_SRC: &str = include_str!("../../c/c_first_touch.c");
const C_COMMON_H: &str = include_str!("../../c/bench_common.h");
const C_XMALLOC_SRC: &str = include_str!("../../c/c_xmalloc.c");
const C_RPMALLOC_SRC: &str = include_str!("../../c/c_rpmalloc.c");
const C_LARSON_SRC: &str = include_str!("../../c/c_larson.c");
const C_THRASH_SRC: &str = include_str!("../../c/c_thrash.c");
const C_MSTRESS_SRC: &str = include_str!("../../c/c_mstress.c");
const PYTHON_SRC: &str = include_str!("../../python/alloc_stress.py");

/// Directories searched for the system allocator libraries, in order.
pub fn library_dirs() -> Vec<PathBuf> {
    let multiarch = format!("/usr/lib/{}-linux-gnu", std::env::consts::ARCH);
    [
        multiarch.as_str(),
        "/usr/lib64",
        "/usr/lib",
        "/usr/local/lib",
        "/lib64",
        "/lib",
    ]
    .iter()
    .map(PathBuf::from)
    .collect()
}

/// Finds a system library by file name in [`library_dirs`].
pub fn find_system_library(file: &str) -> Option<PathBuf> {
    library_dirs().into_iter().map(|d| d.join(file)).find(|p| p.is_file())
}

/// An allocator ready to run, or why it cannot.
#[derive(Clone, Debug)]
pub enum Availability {
    /// Runs with this library preloaded (`None`: no preload, glibc).
    Ready(Option<PathBuf>),
    /// Skipped, with the reason.
    Unavailable(String),
}

/// The directories the runner works in.
#[derive(Clone, Debug)]
pub struct Dirs {
    /// Cargo target directory holding the running binary's profile directory.
    pub target: PathBuf,
    /// `<target>/nalloc-preload`: compiled workloads, scripts, run outputs.
    pub work: PathBuf,
}

impl Dirs {
    /// Derives the directories from the running executable (`<target>/<profile>/nalloc-preload-bench`).
    pub fn locate() -> Result<Self, String> {
        let exe = std::env::current_exe().map_err(|e| format!("cannot locate own executable: {e}"))?;
        let target = exe
            .parent()
            .and_then(Path::parent)
            .ok_or("own executable has no target directory")?
            .to_path_buf();
        let work = target.join("nalloc-preload");
        std::fs::create_dir_all(&work).map_err(|e| format!("cannot create {}: {e}", work.display()))?;
        Ok(Self { target, work })
    }
}

/// Resolves one allocator: finds its library, building `libnalloc.so` when it
/// is missing (or `rebuild`).
pub fn resolve_allocator(a: &PreloadAllocator, dirs: &Dirs, rebuild: bool, nalloc_lib: Option<&Path>) -> Availability {
    let Some(file) = a.library else {
        return Availability::Ready(None);
    };
    if a.name != "nalloc" {
        return match find_system_library(file) {
            Some(p) => Availability::Ready(Some(p)),
            None => Availability::Unavailable(format!(
                "{file} not found in {} ({})",
                library_dirs()
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                a.source
            )),
        };
    }
    if let Some(p) = nalloc_lib {
        return if p.is_file() {
            Availability::Ready(Some(absolute(p)))
        } else {
            Availability::Unavailable(format!("--nalloc-lib {} does not exist", p.display()))
        };
    }
    let lib = dirs.target.join("release").join(file);
    if rebuild || !lib.is_file() {
        if let Err(e) = build_nalloc(&dirs.target) {
            return Availability::Unavailable(e);
        }
        if !lib.is_file() {
            return Availability::Unavailable(format!("{} still missing after the build", lib.display()));
        }
    } else if let Some(newer) = newer_source(&lib) {
        eprintln!(
            "warning: {} is older than {}; pass --rebuild to measure the current sources",
            lib.display(),
            newer.display()
        );
    }
    Availability::Ready(Some(lib))
}

fn absolute(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

/// `$CARGO build --release -p nalloc-capi --target-dir <target>` (falls back to `cargo`).
fn build_nalloc(target: &Path) -> Result<(), String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let mut cmd = Command::new(&cargo);
    cmd.args(["build", "--release", "-p", "nalloc-capi", "--manifest-path"])
        .arg(&manifest)
        .arg("--target-dir")
        .arg(target);
    eprintln!("building libnalloc.so: {cmd:?}");
    let status = cmd
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .status()
        .map_err(|e| format!("cannot run {}: {e}", cargo.to_string_lossy()))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("building libnalloc.so failed ({status})"))
    }
}

fn mtime(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// A workspace source of `libnalloc.so` newer than `lib`, if any (a staleness hint).
fn newer_source(lib: &Path) -> Option<PathBuf> {
    let built = mtime(lib)?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent()?;
    let mut stack = vec![
        root.join("src"),
        root.join("capi").join("src"),
        root.join("Cargo.toml"),
        root.join("capi").join("Cargo.toml"),
    ];
    while let Some(p) = stack.pop() {
        if p.is_dir() {
            if let Ok(rd) = std::fs::read_dir(&p) {
                stack.extend(rd.filter_map(|e| e.ok()).map(|e| e.path()));
            }
        } else if mtime(&p).is_some_and(|t| t > built) {
            return Some(p);
        }
    }
    None
}

/// A workload ready to run: the program and its arguments.
#[derive(Clone, Debug)]
pub struct Prepared {
    /// Program to execute.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Extra environment for every run (`PYTHONMALLOC=malloc`).
    pub env: Vec<(String, String)>,
}

/// Writes `contents` to `path` unless it already holds exactly that; returns whether it wrote.
fn write_if_changed(path: &Path, contents: &str) -> Result<bool, String> {
    if std::fs::read_to_string(path).is_ok_and(|s| s == contents) {
        return Ok(false);
    }
    std::fs::write(path, contents).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(true)
}

/// Compiles a C workload (`$CC`, default `cc`, `-O2 -pthread`) into the work
/// directory if the binary is missing or older than its source or the
/// programs' shared header (`bench/c/bench_common.h`, written beside it).
fn compile_c(dirs: &Dirs, stem: &str, src: &str) -> Result<PathBuf, String> {
    let src_path = dirs.work.join(format!("{stem}.c"));
    let bin = dirs.work.join(stem);
    // The programs' shared helpers, included from beside the source.
    let header = dirs.work.join("bench_common.h");
    write_if_changed(&header, C_COMMON_H)?;
    let changed = write_if_changed(&src_path, src)?;
    if !changed && bin.is_file() && mtime(&bin) >= mtime(&src_path).max(mtime(&header)) {
        return Ok(bin);
    }
    let cc = std::env::var_os("CC").unwrap_or_else(|| "cc".into());
    let mut cmd = Command::new(&cc);
    cmd.args(["-O2", "-pthread", "-o"]).arg(&bin).arg(&src_path).arg("-ldl");
    eprintln!("compiling {stem}: {cmd:?}");
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run C compiler {}: {e}", cc.to_string_lossy()))?;
    if !out.status.success() {
        let _ = std::fs::remove_file(&bin);
        return Err(format!(
            "compiling {} failed ({}):\n{}",
            src_path.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(bin)
}

/// Finds `name` in `PATH`.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
}

/// The python interpreter: `explicit`, else `/usr/bin/python3`, else `python3` on `PATH`.
pub fn find_python(explicit: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(p) = explicit {
        return if p.is_file() {
            Ok(p.to_path_buf())
        } else {
            which(&p.to_string_lossy()).ok_or_else(|| format!("python interpreter {} not found", p.display()))
        };
    }
    let system = Path::new("/usr/bin/python3");
    if system.is_file() {
        return Ok(system.to_path_buf());
    }
    which("python3").ok_or_else(|| "no python3 found (/usr/bin/python3 or on PATH)".into())
}

/// The workload's arguments, with its thread count replaced by `threads`
/// where it has one.
pub fn workload_args(w: &PreloadWorkload, threads: Option<usize>) -> Vec<String> {
    let mut args: Vec<String> = w.args.iter().map(|s| s.to_string()).collect();
    if let (Some(i), Some(n)) = (w.threads_arg, threads) {
        args[i] = n.to_string();
    }
    args
}

/// Prepares a workload: compiles the C program or writes the Python script.
/// `threads` replaces its thread count where it has one.
pub fn prepare(
    w: &PreloadWorkload,
    dirs: &Dirs,
    python: Option<&Path>,
    threads: Option<usize>,
) -> Result<Prepared, String> {
    let args = workload_args(w, threads);
    let c = |stem: &str, src: &str, args: Vec<String>| -> Result<Prepared, String> {
        Ok(Prepared {
            program: compile_c(dirs, stem, src)?,
            args,
            env: Vec::new(),
        })
    };
    match w.kind {
        WorkloadKind::CXmalloc => c("c_xmalloc", C_XMALLOC_SRC, args),
        WorkloadKind::CRpmalloc => c("c_rpmalloc", C_RPMALLOC_SRC, args),
        WorkloadKind::CLarson => c("c_larson", C_LARSON_SRC, args),
        WorkloadKind::CThrash => c("c_thrash", C_THRASH_SRC, args),
        WorkloadKind::CMstress => c("c_mstress", C_MSTRESS_SRC, args),
        WorkloadKind::CSmall => Ok(Prepared {
            program: compile_c(dirs, "c_small", C_SMALL_SRC)?,
            args,
            env: Vec::new(),
        }),
        WorkloadKind::CLarge => Ok(Prepared {
            program: compile_c(dirs, "c_large", C_LARGE_SRC)?,
            args,
            env: Vec::new(),
        }),
        WorkloadKind::CFirstTouch => Ok(Prepared {
            program: compile_c(dirs, "c_first_touch", C_FIRST_TOUCH_SRC)?,
            args,
            env: Vec::new(),
        }),
        WorkloadKind::Python => {
            let interpreter = find_python(python)?;
            let script = dirs.work.join("alloc_stress.py");
            write_if_changed(&script, PYTHON_SRC)?;
            let mut full_args = vec![script.to_string_lossy().into_owned()];
            full_args.extend(args);
            Ok(Prepared {
                program: interpreter,
                args: full_args,
                env: vec![("PYTHONMALLOC".into(), "malloc".into())],
            })
        }
    }
}

/// Processes that would disturb the timings: compilers, linkers and build
/// scripts running now (by name), and any process that used at least 10% of
/// a CPU during a `sample` interval (so a test suite or interpreter shows up
/// too). Each entry reads `name (pid N)` or `name (pid N, X% CPU)`.
pub fn busy_processes(sample: Duration) -> Vec<String> {
    const BUILD: &[&str] = &[
        "rustc", "cc1", "cc1plus", "cc1obj", "ld", "ld.lld", "ld.gold", "ld.bfd", "lld", "mold", "collect2", "as",
        "clang", "clang++",
    ];
    let before = cpu_ticks();
    std::thread::sleep(sample);
    let after = cpu_ticks();
    let hz = clock_ticks();
    let secs = sample.as_secs_f64().max(1e-3);
    let mut found = Vec::new();
    for (pid, (comm, ticks)) in &after {
        let pct = before
            .get(pid)
            .map(|(_, t0)| ticks.saturating_sub(*t0) as f64 / hz / secs * 100.0)
            .unwrap_or(0.0);
        if pct >= 10.0 {
            found.push(format!("{comm} (pid {pid}, {pct:.0}% CPU)"));
        } else if BUILD.contains(&comm.as_str()) || comm.starts_with("build-script") {
            found.push(format!("{comm} (pid {pid})"));
        }
    }
    found.sort();
    found
}

/// `pid -> (comm, utime + stime in clock ticks)` for every process but this one.
fn cpu_ticks() -> BTreeMap<u32, (String, u64)> {
    let me = std::process::id();
    let mut out = BTreeMap::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.filter_map(|e| e.ok()) {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid ..." — comm may hold spaces and parentheses.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = stat.get(open + 1..close).unwrap_or("?").to_owned();
        // After ") ": state is field 3, utime field 14, stime field 15.
        let rest: Vec<&str> = stat.get(close + 2..).unwrap_or("").split_whitespace().collect();
        let num = |i: usize| rest.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        out.insert(pid, (comm, num(11) + num(12)));
    }
    out
}

/// Clock ticks per second of the `/proc` CPU counters.
fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 {
        hz as f64
    } else {
        100.0
    }
}

/// Busy (non-idle) CPU ticks of the whole machine, from the `cpu` line of `/proc/stat`.
fn machine_busy_ticks() -> u64 {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
        return 0;
    };
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return 0;
    };
    // user nice system idle iowait irq softirq steal ...
    let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    [0usize, 1, 2, 5, 6, 7].iter().filter_map(|&i| v.get(i)).sum()
}

/// CPU time used by this process and its reaped children.
fn own_cpu() -> Duration {
    let tv = |t: libc::timeval| Duration::new(t.tv_sec.max(0) as u64, (t.tv_usec.max(0) as u32) * 1000);
    let mut total = Duration::ZERO;
    for who in [libc::RUSAGE_SELF, libc::RUSAGE_CHILDREN] {
        // SAFETY: rusage is plain old data; all-zero is a valid value.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: `ru` is a valid out-pointer.
        if unsafe { libc::getrusage(who, &mut ru) } == 0 {
            total += tv(ru.ru_utime) + tv(ru.ru_stime);
        }
    }
    total
}

/// A snapshot of CPU accounting, to tell afterwards how much of the machine
/// other processes took while the benchmark ran.
#[derive(Clone, Debug)]
pub struct CpuSnapshot {
    at: Instant,
    machine_busy: u64,
    own: Duration,
    procs: BTreeMap<u32, (String, u64)>,
}

/// CPU time that processes other than the runner and its workloads used
/// between two snapshots.
#[derive(Clone, Debug, Serialize)]
pub struct OtherCpu {
    /// Wall seconds between the snapshots.
    pub wall_s: f64,
    /// CPU seconds used by other processes (machine busy time minus ours).
    pub cpu_s: f64,
    /// That as a fraction of the machine's capacity (`cpu_s / (wall_s * nproc)`).
    pub share: f64,
    /// The biggest other consumers still alive at the end: `name (pid N, X s)`.
    pub top: Vec<String>,
}

impl CpuSnapshot {
    /// Takes a snapshot now.
    pub fn take() -> Self {
        Self {
            at: Instant::now(),
            machine_busy: machine_busy_ticks(),
            own: own_cpu(),
            procs: cpu_ticks(),
        }
    }

    /// What other processes used since `earlier`.
    pub fn others_since(&self, earlier: &Self) -> OtherCpu {
        let hz = clock_ticks();
        let wall_s = self.at.duration_since(earlier.at).as_secs_f64();
        let busy_s = self.machine_busy.saturating_sub(earlier.machine_busy) as f64 / hz;
        let own_s = self.own.saturating_sub(earlier.own).as_secs_f64();
        let cpu_s = (busy_s - own_s).max(0.0);
        let nproc = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) as f64;
        let share = if wall_s > 0.0 { cpu_s / (wall_s * nproc) } else { 0.0 };
        let mut used: Vec<(f64, String)> = self
            .procs
            .iter()
            .filter_map(|(pid, (comm, t))| {
                let t0 = earlier.procs.get(pid).map_or(0, |(_, t0)| *t0);
                let secs = t.saturating_sub(t0) as f64 / hz;
                (secs >= 0.1).then(|| (secs, format!("{comm} (pid {pid}, {secs:.1} s)")))
            })
            .collect();
        used.sort_by(|a, b| b.0.total_cmp(&a.0));
        OtherCpu {
            wall_s,
            cpu_s,
            share,
            top: used.into_iter().take(5).map(|(_, s)| s).collect(),
        }
    }
}

/// The 1-minute load average from `/proc/loadavg`.
pub fn loadavg() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_consistent() {
        assert_eq!(PRELOAD_ALLOCATORS[0].name, BASELINE);
        assert!(PRELOAD_ALLOCATORS[0].library.is_none());
        assert!(PRELOAD_ALLOCATORS.iter().skip(1).all(|a| a.library.is_some()));
        assert!(PRELOAD_ALLOCATORS.iter().any(|a| a.name == "nalloc"));
        for w in PRELOAD_WORKLOADS {
            assert!(!w.args.is_empty(), "{}", w.name);
            // A thread count is an argument, 2 by default for the new
            // threaded programs (this machine's cores).
            if let Some(i) = w.threads_arg {
                assert!(w.args[i].parse::<usize>().is_ok(), "{}", w.name);
            }
        }
        assert!(C_SMALL_SRC.contains("c-small ok") && C_LARGE_SRC.contains("c-large ok"));
        assert!(C_FIRST_TOUCH_SRC.contains("first-touch ok"));
        // Every program takes its helpers from the one shared header.
        for src in [
            C_SMALL_SRC,
            C_LARGE_SRC,
            C_FIRST_TOUCH_SRC,
            C_XMALLOC_SRC,
            C_RPMALLOC_SRC,
            C_LARSON_SRC,
            C_THRASH_SRC,
            C_MSTRESS_SRC,
        ] {
            assert!(src.contains("#include \"bench_common.h\""));
        }
        assert!(C_COMMON_H.contains("next_rand") && C_COMMON_H.contains("malloc_library"));
        // Each program prints the success line the runner looks for.
        for (name, src) in [
            ("c-xmalloc", C_XMALLOC_SRC),
            ("c-rpmalloc", C_RPMALLOC_SRC),
            ("c-larson", C_LARSON_SRC),
            ("c-larson-sized", C_LARSON_SRC),
            ("c-thrash", C_THRASH_SRC),
            ("c-mstress", C_MSTRESS_SRC),
        ] {
            assert!(PRELOAD_WORKLOADS.iter().any(|w| w.name == name), "{name}");
            assert!(
                src.contains(&format!("\"{name} ok")) || src.contains("\"%s ok"),
                "{name}"
            );
            assert!(src.contains("malloc=%s"), "{name}");
        }
        assert!(PYTHON_SRC.contains("python ok"));
    }

    #[test]
    fn busy_sees_a_spinning_child() {
        // A busy-looping shell for the sample interval shows up with its CPU share.
        let Ok(mut child) = Command::new("sh").args(["-c", "while :; do :; done"]).spawn() else {
            return;
        };
        let busy = busy_processes(Duration::from_millis(400));
        let _ = child.kill();
        let _ = child.wait();
        let me = format!("pid {},", child.id());
        assert!(busy.iter().any(|b| b.contains(&me) && b.contains("% CPU")), "{busy:?}");
    }

    #[test]
    fn other_cpu_excludes_our_reaped_children() {
        let before = CpuSnapshot::take();
        let mut child = Command::new("sh")
            .args(["-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done"])
            .spawn()
            .expect("sh");
        let _ = child.wait();
        let other = CpuSnapshot::take().others_since(&before);
        // The child is ours (reaped), so it must not count as "other" in full.
        assert!(other.wall_s > 0.0 && other.share >= 0.0);
        assert!(other.cpu_s < other.wall_s * 2.0 + 0.5, "{other:?}");
    }

    #[test]
    fn threads_replace_the_thread_argument_only() {
        let find = |n: &str| PRELOAD_WORKLOADS.iter().find(|w| w.name == n).unwrap();
        assert_eq!(workload_args(find("c-xmalloc"), Some(32)), ["32", "1500000"]);
        assert_eq!(
            workload_args(find("c-larson-sized"), Some(8)),
            ["8", "3000000", "10", "1"]
        );
        assert_eq!(workload_args(find("python"), Some(8)), ["30", "8"]);
        assert_eq!(workload_args(find("c-large"), Some(8)), ["500"]);
        assert_eq!(workload_args(find("c-thrash"), None), ["2", "4000000", "8", "16"]);
        assert_eq!(workload_args(find("c-mstress"), Some(8)), ["8", "50", "10"]);
    }

    #[test]
    fn library_dirs_start_with_multiarch() {
        let d = library_dirs();
        assert!(d[0].to_string_lossy().ends_with("-linux-gnu"));
    }
}
