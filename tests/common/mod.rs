//! Helpers shared by the integration tests: a PRNG and patterns (every
//! platform), readers of the kernel's view of memory (Linux `/proc`; a
//! portable `peek` for Linux and Windows), and child-process isolation.
#![allow(dead_code)]

/// Resident set size of this process in bytes.
#[cfg(target_os = "linux")]
pub fn rss() -> usize {
    let s = std::fs::read_to_string("/proc/self/statm").expect("statm");
    let pages: usize = s.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// Minor page faults of this process so far.
#[cfg(target_os = "linux")]
pub fn minor_faults() -> u64 {
    let s = std::fs::read_to_string("/proc/self/stat").expect("stat");
    // Fields after the parenthesised command name; minflt is field 10.
    let rest = &s[s.rfind(')').unwrap() + 2..];
    rest.split_whitespace().nth(7).unwrap().parse().unwrap()
}

/// xorshift64*: deterministic, allocation-free randomness.
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Fills a block with a pattern derived from `seed`.
pub fn fill(p: *mut u8, len: usize, seed: u64) {
    for i in 0..len {
        // SAFETY: callers pass blocks of at least `len` bytes.
        unsafe { *p.add(i) = (seed as usize).wrapping_mul(31).wrapping_add(i) as u8 };
    }
}

/// Checks the pattern written by `fill`.
pub fn check(p: *const u8, len: usize, seed: u64) -> bool {
    (0..len).all(|i| {
        // SAFETY: as in `fill`.
        unsafe { *p.add(i) == (seed as usize).wrapping_mul(31).wrapping_add(i) as u8 }
    })
}

/// The `/proc/self/smaps` entry (header line and fields) of the mapping
/// that contains `addr`.
#[cfg(target_os = "linux")]
pub fn smaps_entry(addr: usize) -> Option<String> {
    let smaps = std::fs::read_to_string("/proc/self/smaps").expect("smaps");
    let mut current: Option<String> = None;
    let mut found = None;
    for line in smaps.lines() {
        if let Some((lo, hi)) = vma_range(line) {
            if let Some(c) = current.take() {
                if found.is_none() && c.starts_with("HIT") {
                    found = Some(c[3..].to_string());
                }
            }
            let hit = lo <= addr && addr < hi;
            current = Some(format!("{}{}\n", if hit { "HIT" } else { "" }, line));
        } else if let Some(c) = current.as_mut() {
            c.push_str(line);
            c.push('\n');
        }
    }
    if let Some(c) = current {
        if found.is_none() && c.starts_with("HIT") {
            found = Some(c[3..].to_string());
        }
    }
    found
}

/// `lo-hi perms ...` → (lo, hi).
#[cfg(target_os = "linux")]
pub fn vma_range(line: &str) -> Option<(usize, usize)> {
    let range = line.split_whitespace().next()?;
    let (a, b) = range.split_once('-')?;
    Some((usize::from_str_radix(a, 16).ok()?, usize::from_str_radix(b, 16).ok()?))
}

/// The VmFlags of the mapping containing `addr`.
#[cfg(target_os = "linux")]
pub fn vm_flags(addr: usize) -> Vec<String> {
    let e = smaps_entry(addr).expect("no mapping");
    e.lines()
        .find(|l| l.starts_with("VmFlags:"))
        .map(|l| l[8..].split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

/// (previous, containing, next) lines of /proc/self/maps around `addr`.
#[cfg(target_os = "linux")]
pub fn maps_neighbours(addr: usize) -> (String, String, String) {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let lines: Vec<&str> = maps.lines().collect();
    let i = lines
        .iter()
        .position(|l| vma_range(l).is_some_and(|(lo, hi)| lo <= addr && addr < hi))
        .expect("mapping");
    (lines[i - 1].to_string(), lines[i].to_string(), lines[i + 1].to_string())
}

/// The committed stretch of memory around `addr`: the adjacent read-write
/// mappings merged (the kernel may keep one run of blocks as several
/// mappings, e.g. after a partial `mlock`), with the mapping lines directly
/// before and after it.
#[cfg(target_os = "linux")]
#[derive(Debug)]
pub struct Run {
    pub start: usize,
    pub end: usize,
    pub before: String,
    pub after: String,
}

#[cfg(target_os = "linux")]
pub fn fenced_run(addr: usize) -> Run {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let lines: Vec<&str> = maps.lines().collect();
    let mut i = lines
        .iter()
        .position(|l| vma_range(l).is_some_and(|(lo, hi)| lo <= addr && addr < hi))
        .expect("mapping");
    let mut j = i;
    let rw_adjacent = |a: &str, b: &str| {
        a.contains(" rw-p ") && b.contains(" rw-p ") && vma_range(a).unwrap().1 == vma_range(b).unwrap().0
    };
    while i > 0 && rw_adjacent(lines[i - 1], lines[i]) {
        i -= 1;
    }
    while j + 1 < lines.len() && rw_adjacent(lines[j], lines[j + 1]) {
        j += 1;
    }
    let adjacent = |line: &str, at: usize, before: bool| {
        let (lo, hi) = vma_range(line).unwrap();
        if (before && hi == at) || (!before && lo == at) {
            line.to_string()
        } else {
            String::from("(nothing mapped)")
        }
    };
    let (start, end) = (vma_range(lines[i]).unwrap().0, vma_range(lines[j]).unwrap().1);
    Run {
        start,
        end,
        before: adjacent(lines[i - 1], start, true),
        after: adjacent(lines[j + 1], end, false),
    }
}

/// Reads `len` bytes at `addr` through /proc/self/mem: how a debugger or an
/// attacker with ptrace rights sees memory, without Rust-level access to a
/// freed block. `None` if the kernel refuses (e.g. inaccessible pages).
#[cfg(target_os = "linux")]
pub fn peek(addr: usize, len: usize) -> Option<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open("/proc/self/mem").ok()?;
    let mut buf = vec![0u8; len];
    f.read_exact_at(&mut buf, addr as u64).ok()?;
    Some(buf)
}

/// Reads `len` bytes at `addr` with `ReadProcessMemory` on this process: the
/// debugger's view on Windows, as `/proc/self/mem` is on Linux. `None` if
/// the system refuses the read (on Windows: pages not committed or
/// no-access; Wine reads them through `/proc/<pid>/mem`, as zeros).
#[cfg(windows)]
pub fn peek(addr: usize, len: usize) -> Option<Vec<u8>> {
    use windows_sys::Win32::System::Diagnostics::Debug::ReadProcessMemory;
    use windows_sys::Win32::System::Threading::GetCurrentProcess;
    let mut buf = vec![0u8; len];
    let mut read = 0usize;
    // SAFETY: `buf` is valid for `len` bytes of writes; the source is read
    // by the kernel, which checks it and fails on inaccessible pages.
    let ok = unsafe {
        ReadProcessMemory(
            GetCurrentProcess(),
            addr as *const _,
            buf.as_mut_ptr().cast(),
            len,
            &mut read,
        )
    };
    (ok != 0 && read == len).then_some(buf)
}

/// Number of mappings of this process.
#[cfg(target_os = "linux")]
pub fn mapping_count() -> usize {
    std::fs::read_to_string("/proc/self/maps").unwrap().lines().count()
}

/// A command that runs this test binary again: directly, or through the
/// runner in `NALLOC_TEST_RUNNER` (words split on spaces), which the
/// emulated test runs set (`.ci/aarch64.sh`: `qemu-aarch64 -L
/// /usr/aarch64-linux-gnu`), since there the binary cannot be executed
/// directly.
pub fn this_test_binary() -> std::process::Command {
    let exe = std::env::current_exe().unwrap();
    match std::env::var("NALLOC_TEST_RUNNER") {
        Ok(runner) if !runner.trim().is_empty() => {
            let mut words = runner.split_whitespace();
            let mut cmd = std::process::Command::new(words.next().unwrap());
            cmd.args(words).arg(exe);
            cmd
        }
        _ => std::process::Command::new(exe),
    }
}

/// Makes `cmd`'s child run without address-space randomisation, so that
/// two runs place the same blocks at the same addresses: how the tests show
/// that a check value is keyed per process, not by address alone.
#[cfg(target_os = "linux")]
pub fn without_aslr(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: personality(2) only changes how the exec'd image is laid
    // out; no allocation or lock between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::personality(libc::ADDR_NO_RANDOMIZE as libc::c_ulong);
            Ok(())
        })
    };
}

/// Runs the calling test's body in a process of its own: re-executes this
/// test binary for the one test `name` and asserts that it passed there.
/// For checks of process-wide state — the number of mappings, a released
/// address range staying unused — that tests running on other threads of
/// the same process would disturb (they showed up as failures with
/// `--test-threads=16`). Returns true in the child, where the body runs.
pub fn isolated(name: &str) -> bool {
    const VAR: &str = "NALLOC_ISOLATED_TEST";
    if std::env::var_os(VAR).is_some_and(|v| v == name) {
        return true;
    }
    let out = this_test_binary()
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(VAR, name)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{name} in its own process: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    false
}

/// A child process's end, for the misuse and crash tests.
#[cfg(unix)]
pub struct ChildEnd {
    /// The signal that ended it, if one did.
    pub signal: Option<i32>,
    /// Its exit code, if it exited.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Re-executes this test binary for its test `child` with `var=case` (the
/// test runs the case named there) and `envs`; with `memlock`, the child
/// runs under that `RLIMIT_MEMLOCK` and without `CAP_IPC_LOCK` (which lets
/// root lock past the limit), so `mlock` failures can be provoked.
#[cfg(unix)]
pub fn run_case(var: &str, case: &str, envs: &[(&str, &str)], memlock: Option<u64>) -> ChildEnd {
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    let mut cmd = this_test_binary();
    cmd.args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env(var, case)
        .envs(envs.iter().copied());
    if let Some(limit) = memlock {
        // SAFETY: prctl and setrlimit only change this (forked) process's
        // limits; no allocation or lock between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                #[cfg(target_os = "linux")]
                {
                    const CAP_IPC_LOCK: libc::c_ulong = 14;
                    // Fails without CAP_SETPCAP (not root): then the caller
                    // has no CAP_IPC_LOCK to drop either.
                    libc::prctl(libc::PR_CAPBSET_DROP, CAP_IPC_LOCK, 0, 0, 0);
                }
                let r = libc::rlimit {
                    rlim_cur: limit as libc::rlim_t,
                    rlim_max: limit as libc::rlim_t,
                };
                if libc::setrlimit(libc::RLIMIT_MEMLOCK, &r) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            })
        };
    }
    let out = cmd.output().unwrap();
    ChildEnd {
        signal: out.status.signal(),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
