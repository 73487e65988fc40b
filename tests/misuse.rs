//! Misuse through the Rust front, each case in its own child process: the
//! process must stop with one line naming the misuse (`cargo test`; the C
//! front's cases are in capi/tests/c_programs.rs). Default build: what is
//! checked without the `hardened` feature (which reports more, in its own
//! words: tests/hardened.rs).
#![cfg(unix)]

use std::alloc::{GlobalAlloc, Layout};
use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use zk_nalloc::NAlloc;

#[global_allocator]
static ALLOC: NAlloc = NAlloc::new();

const CASE_VAR: &str = "NALLOC_MISUSE_CASE";

/// The cases; run only inside a child (the env var names the case).
#[test]
fn child() {
    let Ok(case) = std::env::var(CASE_VAR) else {
        return;
    };
    let l = |n| Layout::from_size_align(n, 8).unwrap();
    // SAFETY: each case is a deliberate misuse that must be stopped before
    // it corrupts anything; the child dies with SIGABRT.
    unsafe {
        match case.as_str() {
            "double-free" => {
                let p = ALLOC.alloc(l(48));
                let keep = ALLOC.alloc(l(48));
                ALLOC.dealloc(p, l(48));
                ALLOC.dealloc(std::hint::black_box(p), l(48));
                ALLOC.dealloc(keep, l(48));
            }
            "double-free-large" => {
                let p = ALLOC.alloc(l(1 << 20));
                ALLOC.dealloc(p, l(1 << 20));
                ALLOC.dealloc(std::hint::black_box(p), l(1 << 20));
            }
            "foreign" => {
                let mut local = [0u64; 8];
                ALLOC.dealloc(std::hint::black_box(local.as_mut_ptr().cast()), l(64));
            }
            _ => return,
        }
    }
    println!("misuse: not detected");
}

/// Runs `case` in a child and returns (signal, stderr).
fn run_case(case: &str) -> (Option<i32>, String) {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe)
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env(CASE_VAR, case)
        .output()
        .unwrap();
    (out.status.signal(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn assert_stops(case: &str, message: &str) {
    let (signal, stderr) = run_case(case);
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("nalloc:")).collect();
    assert_eq!(signal, Some(libc::SIGABRT), "{case}: {stderr}");
    assert_eq!(lines.len(), 1, "{case}: {stderr}");
    assert!(lines[0].starts_with(message), "{case}: {stderr}");
}

#[test]
fn an_immediate_double_free_stops_the_process() {
    assert_stops("double-free", "nalloc: double free at 0x");
}

#[test]
#[cfg(all(debug_assertions, not(feature = "hardened")))]
fn a_foreign_pointer_stops_a_debug_build() {
    assert_stops("foreign", "nalloc: dealloc(): invalid pointer at 0x");
}

/// A span freed twice through the Rust front (no header: the layout is
/// trusted) is caught by the warm pool's check in debug builds, before the
/// range could be handed out twice.
#[test]
#[cfg(debug_assertions)]
fn a_span_freed_twice_stops_a_debug_build() {
    assert_stops(
        "double-free-large",
        "nalloc: invariant broken: pool: two ranges overlap or touch at 0x",
    );
}
