//! The memory budget and container limits end to end, each case in a
//! child process with its own environment: `NALLOC_BUDGET=64M` refuses a
//! request past it (`try_reserve` gets `Err`, one documented line on
//! stderr, earlier data intact, later requests that fit succeed) and a
//! plain `vec!` past it ends in `handle_alloc_error` (SIGABRT with Rust's
//! message, not the OOM killer's SIGKILL); a bad value is one clear line
//! and no budget; `auto` and the cgroup limit, in a real cgroup where the
//! machine lets us make one. Linux (cgroups, signals).
#![cfg(target_os = "linux")]

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Output};

use zk_nalloc::NAlloc;

mod common;

#[global_allocator]
static ALLOC: NAlloc = NAlloc::new();

const CASE_VAR: &str = "NALLOC_BUDGET_CASE";
const MIB: usize = 1 << 20;

fn child_cmd(case: &str, env: &[(&str, &str)]) -> Command {
    let mut cmd = common::this_test_binary();
    cmd.args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env(CASE_VAR, case)
        .env_remove("NALLOC_BUDGET")
        .env_remove("NALLOC_POOL_CAP")
        .env_remove("NALLOC_STATS");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

fn run(case: &str, env: &[(&str, &str)]) -> Output {
    child_cmd(case, env).output().unwrap()
}

fn ok(case: &str, out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success() && stdout.contains("budget case ok"),
        "{case}: {}\n{stdout}\n{stderr}",
        out.status
    );
    stderr
}

fn checksum(v: &[u8]) -> u64 {
    v.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// The cases; run only inside a child (the env var names the case).
#[test]
fn child() {
    let Ok(case) = std::env::var(CASE_VAR) else {
        return;
    };
    match case.as_str() {
        "refuse" => {
            assert_eq!(ALLOC.budget(), Some(64 * MIB));
            let mut kept: Vec<u8> = (0..8 * MIB).map(|i| (i * 7 + i / 4096) as u8).collect();
            let sum = checksum(&kept);
            {
                let _p = ALLOC.phase("commit");
                let mut big: Vec<u8> = Vec::new();
                assert!(big.try_reserve_exact(100 * MIB).is_err());
            }
            assert_eq!(checksum(&kept), sum, "earlier data changed");
            // A request that fits still succeeds, as do small ones.
            let mut later = vec![3u8; 16 * MIB];
            later[16 * MIB - 1] = 4;
            assert_eq!(later.iter().map(|&b| b as usize).sum::<usize>(), 3 * 16 * MIB + 1);
            let small: Vec<Box<u64>> = (0..10_000).map(Box::new).collect();
            assert_eq!(*small[9_999], 9_999);
            kept[0] ^= 1;
        }
        "setter" => {
            assert_eq!(ALLOC.budget(), None);
            let before = ALLOC.stats().mapped;
            ALLOC.set_budget(Some(before + 32 * MIB));
            let mut v: Vec<u8> = Vec::new();
            assert!(v.try_reserve_exact(64 * MIB).is_err());
            ALLOC.set_budget(None);
            assert!(v.try_reserve_exact(64 * MIB).is_ok());
        }
        "cached" => {
            // Spans freed into this thread's span cache are given back
            // before the budget refuses a request of another size: 30 x 192
            // KiB cached, then 30 x 224 KiB under a budget that holds one
            // set but not both. (A larger peak before, so that retention
            // alone would let the cache keep them.)
            drop(vec![1u8; 64 * MIB]);
            ALLOC.trim();
            let before = ALLOC.stats().mapped;
            ALLOC.set_budget(Some(before + 8 * MIB));
            let mut second = Vec::with_capacity(30);
            let first: Vec<Vec<u8>> = (0..30).map(|i| vec![i as u8; 192 << 10]).collect();
            drop(first);
            let mut refused = None;
            for i in 0..30 {
                let mut v: Vec<u8> = Vec::new();
                if v.try_reserve_exact(224 << 10).is_err() {
                    refused = Some(i);
                    break;
                }
                v.resize(224 << 10, i as u8);
                second.push(v);
            }
            // Lifted before any assertion: a failing one allocates its message.
            ALLOC.set_budget(None);
            assert_eq!(refused, None, "refused under the budget");
            assert!(second.iter().enumerate().all(|(i, v)| v[v.len() - 1] == i as u8));
        }
        "abort" => {
            let v = vec![0u8; 100 << 20];
            println!("not reached: {}", v.len());
        }
        "bad" => {
            assert_eq!(ALLOC.budget(), None);
            drop(vec![1u8; 100 * MIB]);
        }
        "auto" => {
            let base = ALLOC.memory_limit().unwrap_or_else(|| {
                // SAFETY: `sysinfo` is plain data, valid when zeroed.
                let mut s: libc::sysinfo = unsafe { std::mem::zeroed() };
                // SAFETY: `s` is a writable sysinfo.
                let rc = unsafe { libc::sysinfo(&mut s) };
                assert_eq!(rc, 0);
                s.totalram as usize * s.mem_unit as usize
            });
            assert_eq!(ALLOC.budget(), Some(base / 100 * 90));
        }
        "cgroup" => {
            let want: usize = std::env::var("NALLOC_TEST_LIMIT").unwrap().parse().unwrap();
            assert_eq!(ALLOC.memory_limit(), Some(want));
            assert_eq!(ALLOC.pool_cap(), want / 8);
            assert_eq!(ALLOC.budget(), Some(want / 100 * 90));
        }
        other => panic!("unknown case {other}"),
    }
    println!("budget case ok");
}

#[test]
fn a_request_past_the_budget_is_refused_cleanly() {
    let out = run("refuse", &[("NALLOC_BUDGET", "64M")]);
    let stderr = ok("refuse", &out);
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("nalloc:")).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    // nalloc: memory budget exceeded: request=R budget=B committed=C live=L phase=P
    let line = lines[0];
    let rest = line
        .strip_prefix("nalloc: memory budget exceeded: request=104857600 budget=67108864 committed=")
        .unwrap_or_else(|| panic!("{line}"));
    let (committed, rest) = rest.split_once(" live=").unwrap();
    let (live, phase) = rest.split_once(" phase=").unwrap();
    assert_eq!(phase, "commit", "{line}");
    let committed: usize = committed.parse().unwrap();
    let live: usize = live.parse().unwrap();
    assert!((8 * MIB..=64 * MIB).contains(&committed), "{line}");
    assert!(live >= 8 * MIB && live <= committed, "{line}");
}

#[test]
fn the_setter_sets_and_removes_a_budget() {
    let out = run("setter", &[]);
    let stderr = ok("setter", &out);
    assert_eq!(
        stderr.lines().filter(|l| l.contains("budget exceeded")).count(),
        1,
        "{stderr}"
    );
    assert!(stderr.contains("phase=-"), "{stderr}");
}

#[test]
fn cached_spans_give_way_before_the_budget_refuses() {
    let out = run("cached", &[]);
    let stderr = ok("cached", &out);
    assert!(!stderr.contains("budget exceeded"), "{stderr}");
}

#[test]
fn vec_past_the_budget_ends_in_handle_alloc_error() {
    let out = run("abort", &[("NALLOC_BUDGET", "64M")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.signal(), Some(libc::SIGABRT), "{}\n{stderr}", out.status);
    assert!(
        stderr.contains("memory allocation of 104857600 bytes failed"),
        "{stderr}"
    );
    assert!(
        stderr.contains("nalloc: memory budget exceeded: request=104857600 budget=67108864"),
        "{stderr}"
    );
}

/// `NALLOC_STATS=1` prints the phase table at exit for a Rust program too
/// (the C front's test is `budget_refuses_with_enomem` in capi).
#[test]
fn the_phase_table_is_printed_at_exit() {
    let out = run("refuse", &[("NALLOC_BUDGET", "64M"), ("NALLOC_STATS", "1")]);
    let stderr = ok("refuse", &out);
    let table = stderr
        .split("nalloc: phases\n")
        .nth(1)
        .unwrap_or_else(|| panic!("no phase table: {stderr}"));
    let mut lines = table.lines();
    assert!(lines.next().is_some_and(|h| h.starts_with("phase ")), "{table}");
    let commit = lines
        .find(|l| l.starts_with("commit "))
        .unwrap_or_else(|| panic!("no commit row: {table}"));
    // Entered once; the refused reservation allocated nothing.
    let cols: Vec<&str> = commit.split_whitespace().collect();
    assert_eq!((cols[1], cols[3], cols[4]), ("1", "0", "B"), "{table}");
}

#[test]
fn a_bad_budget_is_one_clear_line_and_no_budget() {
    let out = run("bad", &[("NALLOC_BUDGET", "12Q")]);
    let stderr = ok("bad", &out);
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("nalloc:")).collect();
    assert_eq!(
        lines,
        ["nalloc: NALLOC_BUDGET=\"12Q\" not understood: expected bytes with an optional K, M, G or T suffix (12G, 12GiB, 800M, 1048576), auto or off; running without a budget"],
        "{stderr}"
    );
}

#[test]
fn auto_is_a_fraction_of_the_limit() {
    let out = run("auto", &[("NALLOC_BUDGET", "auto")]);
    ok("auto", &out);
}

/// Makes a memory cgroup with a 256 MiB limit (v2 if the unified hierarchy
/// is mounted at /sys/fs/cgroup, else v1's memory controller) and runs the
/// `cgroup` case inside it. Skipped, with the reason, where the machine
/// does not let us (not root, read-only sysfs, no memory controller).
#[test]
fn limits_follow_a_real_cgroup() {
    const LIMIT: usize = 256 << 20;
    let name = format!("nalloc-test-{}", std::process::id());
    let v2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let (dir, file) = if v2 {
        (format!("/sys/fs/cgroup/{name}"), "memory.max")
    } else {
        (format!("/sys/fs/cgroup/memory/{name}"), "memory.limit_in_bytes")
    };
    if let Err(e) = std::fs::create_dir(&dir) {
        println!("skipped: cannot create the cgroup {dir}: {e}");
        return;
    }
    let result = (|| {
        std::fs::write(format!("{dir}/{file}"), LIMIT.to_string()).map_err(|e| format!("cannot set {file}: {e}"))?;
        // The child joins the cgroup before it execs the test binary, so
        // nalloc starts inside it.
        let cmd = child_cmd("cgroup", &[("NALLOC_BUDGET", "auto")]);
        // This test binary, or the emulator that runs it (NALLOC_TEST_RUNNER).
        let exe = cmd.get_program().to_owned();
        let args: Vec<String> = cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        let script = format!("echo $$ > {dir}/cgroup.procs && exec \"$0\" \"$@\"");
        let mut sh = Command::new("sh");
        sh.arg("-c").arg(script).arg(&exe).args(&args);
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => sh.env(k, v),
                None => sh.env_remove(k),
            };
        }
        sh.env("NALLOC_TEST_LIMIT", LIMIT.to_string());
        Ok::<Output, String>(sh.output().unwrap())
    })();
    let _ = std::fs::remove_dir(&dir);
    match result {
        Ok(out) => {
            ok("cgroup", &out);
        }
        Err(e) => println!("skipped: {e}"),
    }
}
