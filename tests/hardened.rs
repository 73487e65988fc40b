//! Hardened mode: each misuse, in its own child process, must abort with the
//! exact one-line message (`cargo test --features hardened --test hardened`).
#![cfg(all(feature = "hardened", any(unix, windows)))]

use std::alloc::{GlobalAlloc, Layout};
use std::process::ExitStatus;
use zk_nalloc::NAlloc;

mod common;

#[global_allocator]
static ALLOC: NAlloc = NAlloc::new();

const CASE_VAR: &str = "NALLOC_HARDENED_CASE";

/// The misuse cases; run only inside a child (the env var names the case).
#[test]
fn child() {
    let Ok(case) = std::env::var(CASE_VAR) else {
        return;
    };
    let l = |n| Layout::from_size_align(n, 8).unwrap();
    // SAFETY: each case is a deliberate misuse that hardened mode must stop
    // before it corrupts anything; the child aborts (SIGABRT on Unix).
    unsafe {
        match case.as_str() {
            "double-free" => {
                let p = ALLOC.alloc(l(48));
                ALLOC.dealloc(p, l(48));
                ALLOC.dealloc(p, l(48));
            }
            "double-free-not-latest" => {
                // Not the page's latest free (that one the plain build
                // catches too): only hardened mode's per-block mark sees it.
                let a = ALLOC.alloc(l(48));
                let b = ALLOC.alloc(l(48));
                ALLOC.dealloc(a, l(48));
                ALLOC.dealloc(b, l(48));
                ALLOC.dealloc(a, l(48));
            }
            "foreign" => {
                let mut local = [0u64; 8];
                ALLOC.dealloc(local.as_mut_ptr().cast(), l(64));
            }
            "misaligned" => {
                let p = ALLOC.alloc(l(64));
                ALLOC.dealloc(p.add(16), l(64));
            }
            "wrong-size" => {
                let p = ALLOC.alloc(l(64));
                ALLOC.dealloc(p, l(200));
            }
            "overflow" => {
                let p = ALLOC.alloc(l(40)); // a 48-byte block: 8 bytes of canary
                                            // Two different bytes: the canary is one random byte value
                                            // repeated, which a single written byte matches one time in
                                            // 128 (a CI run hit that).
                p.add(40).write(0x41);
                p.add(41).write(0x42);
                ALLOC.dealloc(p, l(40));
            }
            "use-after-free" => {
                let p = ALLOC.alloc(l(64));
                ALLOC.dealloc(p, l(64));
                p.add(20).write(1);
                let _ = ALLOC.alloc(l(64));
            }
            "corrupt-link" => {
                let a = ALLOC.alloc(l(32));
                let b = ALLOC.alloc(l(32));
                ALLOC.dealloc(b, l(32));
                ALLOC.dealloc(a, l(32));
                // An overflow from a neighbour rewrites the link to point at
                // memory of the attacker's choice.
                let target = [0u8; 64];
                a.cast::<usize>().write(target.as_ptr() as usize);
                let _ = ALLOC.alloc(l(32));
            }
            other => panic!("unknown case {other}"),
        }
    }
    // Reaching here means the misuse went undetected.
    std::process::exit(3);
}

/// True if the child ended in `abort()`: by SIGABRT on Unix; on Windows
/// std's `abort` is `__fastfail`, which ends the process with
/// `STATUS_STACK_BUFFER_OVERRUN`.
fn aborted(status: ExitStatus) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        status.signal() == Some(libc::SIGABRT)
    }
    #[cfg(windows)]
    {
        status.code() == Some(0xC000_0409_u32 as i32)
    }
}

fn run_case(case: &str) -> (ExitStatus, String) {
    let out = common::this_test_binary()
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env(CASE_VAR, case)
        .output()
        .unwrap();
    (out.status, String::from_utf8_lossy(&out.stderr).into_owned())
}

fn expect(case: &str, message: &str) {
    let (status, stderr) = run_case(case);
    assert!(aborted(status), "{case}: not aborted ({status}); stderr:\n{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.starts_with("nalloc: "))
        .unwrap_or_else(|| panic!("{case}: no nalloc message in:\n{stderr}"));
    let (text, addr) = line.rsplit_once(" at 0x").expect("address");
    assert_eq!(text, message, "{case}");
    assert!(
        !addr.is_empty() && addr.chars().all(|c| c.is_ascii_hexdigit()),
        "{line}"
    );
}

#[test]
fn double_free_aborts() {
    expect("double-free", "nalloc: double free");
}

#[test]
fn double_free_of_an_earlier_block_aborts() {
    expect("double-free-not-latest", "nalloc: double free");
}

#[test]
fn foreign_pointer_free_aborts() {
    expect("foreign", "nalloc: free of a pointer not allocated by nalloc");
}

#[test]
fn misaligned_free_aborts() {
    expect("misaligned", "nalloc: free of a misaligned pointer");
}

#[test]
fn wrong_size_free_aborts() {
    expect("wrong-size", "nalloc: free with the wrong size (size class mismatch)");
}

#[test]
fn small_overflow_is_caught_by_the_canary() {
    expect("overflow", "nalloc: heap overflow detected (canary) in block");
}

#[test]
fn write_after_free_is_caught_on_reuse() {
    expect("use-after-free", "nalloc: write after free detected in block");
}

#[test]
fn corrupted_free_list_link_aborts() {
    expect("corrupt-link", "nalloc: corrupted free list in page");
}
