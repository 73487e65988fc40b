//! Helpers shared by the integration tests: find `libnalloc.so`, compile the
//! C test programs, run processes with a deadline, read nalloc's exit report.

#![allow(dead_code)] // each test binary uses a subset

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The directory holding `libnalloc.so`. `cargo test -p nalloc-capi`
/// compiles the library (all its crate types) into `target/<profile>/deps/`,
/// next to this test executable, before running the tests; `cargo build`
/// also copies it up to `target/<profile>/`. The fresh one in `deps/` wins.
pub fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe.parent().expect("test executable has a directory");
    let candidates = [
        deps.to_path_buf(),
        deps.parent().expect("deps/ has a parent").to_path_buf(),
    ];
    for dir in &candidates {
        if dir.join("libnalloc.so").is_file() {
            return dir.clone();
        }
    }
    panic!(
        "libnalloc.so not found in {} or {}: build it with `cargo build -p nalloc-capi` (same profile and target dir)",
        candidates[0].display(),
        candidates[1].display()
    );
}

/// Path of `libnalloc.so`.
pub fn lib_path() -> PathBuf {
    lib_dir().join("libnalloc.so")
}

/// `capi/include`.
pub fn include_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("include")
}

/// `capi/tests/c`.
pub fn c_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("c")
}

/// A fresh, empty scratch directory unique to this test process and name.
pub fn scratch_dir(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}-{n}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// How a C test program is linked.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// Against libc only (nalloc comes in with `LD_PRELOAD`).
    Plain,
    /// With `-lnalloc` (and an rpath to it): nalloc is the malloc.
    Nalloc,
    /// With `libnalloc.a` linked in statically.
    Static,
}

/// Compiles `capi/tests/c/<name>.c` with the system C compiler into `dir`.
pub fn compile_c(name: &str, dir: &Path, link: Link) -> PathBuf {
    let out = dir.join(name);
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let mut cmd = Command::new(&cc);
    cmd.args([
        "-std=gnu11",
        "-O1",
        "-g",
        "-fno-builtin",
        "-Wall",
        "-Wextra",
        "-pthread",
    ])
    .arg("-I")
    .arg(include_dir())
    .arg("-I")
    .arg(c_dir())
    .arg(c_dir().join(format!("{name}.c")))
    .arg("-o")
    .arg(&out);
    match link {
        Link::Plain => {}
        Link::Nalloc => {
            let lib = lib_dir();
            cmd.arg("-L")
                .arg(&lib)
                .arg("-lnalloc")
                .arg(format!("-Wl,-rpath,{}", lib.display()));
        }
        Link::Static => {
            cmd.arg(lib_dir().join("libnalloc.a")).args(["-lm", "-lrt"]);
        }
    }
    cmd.arg("-ldl");
    let o = cmd.output().unwrap_or_else(|e| panic!("cannot run {cc}: {e}"));
    assert!(
        o.status.success(),
        "compiling {name}.c failed: {cmd:?}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

/// What a finished process left.
pub struct Output {
    /// Exit code (None if killed by a signal).
    pub code: Option<i32>,
    /// Killing signal, if any.
    pub signal: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Output {
    /// Asserts a zero exit and returns self.
    pub fn ok(self, what: &str) -> Self {
        assert!(
            self.code == Some(0),
            "{what}: exit {:?} signal {:?}\nstdout:\n{}\nstderr:\n{}",
            self.code,
            self.signal,
            String::from_utf8_lossy(&self.stdout),
            self.stderr
        );
        self
    }

    /// stdout as text.
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// Runs `cmd` to completion or kills it after `limit` (then panics):
/// stdout and stderr go to files in `dir`, so no pipe can fill up.
pub fn run(mut cmd: Command, dir: &Path, limit: Duration) -> Output {
    use std::os::unix::process::ExitStatusExt;
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let out_path = dir.join(format!("stdout-{n}"));
    let err_path = dir.join(format!("stderr-{n}"));
    cmd.stdin(Stdio::null())
        .stdout(fs::File::create(&out_path).expect("stdout file"))
        .stderr(fs::File::create(&err_path).expect("stderr file"));
    let desc = format!("{cmd:?}");
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {desc}: {e}"));
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{desc} still running after {limit:?} (deadlock?)\nstderr:\n{}",
                fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        code: status.code(),
        signal: status.signal(),
        stdout: fs::read(&out_path).unwrap_or_default(),
        stderr: fs::read_to_string(&err_path).unwrap_or_default(),
    }
}

/// A command with nalloc preloaded (or not) and `NALLOC_STATS` set (or not).
pub fn command(program: impl AsRef<OsStr>, preload: bool) -> Command {
    let mut cmd = Command::new(program);
    // Cargo's LD_LIBRARY_PATH lists target/debug before target/debug/deps,
    // and it beats the programs' RUNPATH: a stale libnalloc.so left in
    // target/debug by an earlier `cargo build` would be tested instead of
    // the one this test run built.
    cmd.env("LD_LIBRARY_PATH", lib_dir());
    cmd.env_remove("LD_PRELOAD").env_remove("NALLOC_STATS");
    if preload {
        cmd.env("LD_PRELOAD", lib_path()).env("NALLOC_STATS", "1");
    }
    cmd
}

/// The figures of one `nalloc: pid=...` report line.
#[derive(Debug, Default, Clone, Copy)]
pub struct Report {
    pub small_allocs: u64,
    pub small_frees: u64,
    pub large_allocs: u64,
    pub large_frees: u64,
}

/// The reports that nalloc printed at exit (one per process).
pub fn reports(stderr: &str) -> Vec<Report> {
    fn field(line: &str, name: &str) -> Option<u64> {
        let key = format!(" {name}=");
        let at = line.find(&key)? + key.len();
        let digits: String = line[at..].chars().take_while(|c| c.is_ascii_digit()).collect();
        digits.parse().ok()
    }
    stderr
        .lines()
        .filter(|l| l.starts_with("nalloc: pid="))
        .map(|l| Report {
            small_allocs: field(l, "small_allocs").expect("small_allocs"),
            small_frees: field(l, "small_frees").expect("small_frees"),
            large_allocs: field(l, "large_allocs").expect("large_allocs"),
            large_frees: field(l, "large_frees").expect("large_frees"),
        })
        .collect()
}

/// stderr without nalloc's report lines.
pub fn without_reports(stderr: &str) -> String {
    stderr
        .lines()
        .filter(|l| !l.starts_with("nalloc:"))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Asserts that nalloc reported at exit and served allocations: at least
/// `min_reports` report lines, and the busiest one counting at least
/// `min_allocs` allocations.
pub fn assert_served(stderr: &str, min_reports: usize, min_allocs: u64) {
    let r = reports(stderr);
    assert!(
        r.len() >= min_reports,
        "expected ≥ {min_reports} nalloc report(s) on stderr, found {}:\n{stderr}",
        r.len()
    );
    let most = r.iter().map(|r| r.small_allocs + r.large_allocs).max().unwrap_or(0);
    assert!(
        most >= min_allocs,
        "nalloc served too few allocations ({most} < {min_allocs}):\n{stderr}"
    );
}

/// Finds `program` on PATH (None if absent, for tools a machine may lack).
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// A deterministic pseudo-random generator (xorshift64*).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}
