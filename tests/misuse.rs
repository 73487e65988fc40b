//! Misuse through the Rust front, each case in its own child process: the
//! process must stop with one line naming the misuse (`cargo test`; the C
//! front's cases are in capi/tests/c_programs.rs). Default build: what is
//! checked without the `hardened` feature (which reports more, in its own
//! words: tests/hardened.rs).
#![cfg(any(unix, windows))]

use std::alloc::{GlobalAlloc, Layout};
use std::process::ExitStatus;
use zk_nalloc::NAlloc;

mod common;

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
    // it corrupts anything; the child aborts (SIGABRT on Unix).
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
            "forwarded" => {
                // With forwarding registered, a foreign pointer goes to the
                // registered functions instead of stopping the process.
                static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
                unsafe extern "C" fn free(_: *mut core::ffi::c_void) {
                    CALLS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                unsafe extern "C" fn realloc(_: *mut core::ffi::c_void, _: usize) -> *mut core::ffi::c_void {
                    CALLS.fetch_add(10, std::sync::atomic::Ordering::SeqCst);
                    core::ptr::null_mut()
                }
                unsafe extern "C" fn usable(_: *mut core::ffi::c_void) -> usize {
                    CALLS.fetch_add(100, std::sync::atomic::Ordering::SeqCst);
                    77
                }
                static FOREIGN: zk_nalloc::raw::Foreign = zk_nalloc::raw::Foreign {
                    free,
                    realloc,
                    usable_size: usable,
                };
                zk_nalloc::raw::forward_foreign(&FOREIGN);
                // Not zero below the pointer (a zero check value reads as
                // "freed already", which is reported, not forwarded) — as a
                // C library's block carries its own header there.
                let mut local = [0x5A5A_5A5A_5A5A_5A5Au64; 8];
                let p = std::hint::black_box(local.as_mut_ptr().add(2).cast::<u8>());
                zk_nalloc::raw::free(p);
                assert!(zk_nalloc::raw::realloc(p, 10).is_null());
                assert_eq!(zk_nalloc::raw::usable_size(p), 77);
                assert_eq!(CALLS.load(std::sync::atomic::Ordering::SeqCst), 111);
                println!("forwarded ok");
                return;
            }
            "seal" => {
                // The check value of this process's first large C block.
                let p = zk_nalloc::raw::alloc(1 << 20, 16, false);
                println!("\nseal {:x} {:x}", p as usize, p.sub(8).cast::<usize>().read());
                return;
            }
            "witness-double-free-large" => {
                // The chunk is gone after the first free: the second must be
                // recognised without touching it (a read there would fault).
                let p = zk_nalloc::raw::witness_alloc(100_000);
                zk_nalloc::raw::witness_free(p);
                zk_nalloc::raw::witness_free(std::hint::black_box(p));
            }
            "witness-double-free-small" => {
                let p = zk_nalloc::raw::witness_alloc(100);
                let keep = zk_nalloc::raw::witness_alloc(100);
                zk_nalloc::raw::witness_free(p);
                zk_nalloc::raw::witness_free(std::hint::black_box(p));
                zk_nalloc::raw::witness_free(keep);
            }
            "witness-stale-free" | "witness-stale-free-3m" => {
                // A stale free after the same size was allocated again: the
                // new block lies elsewhere (the witness region rotates), so
                // the stale pointer finds its released chunk, and the new
                // owner's block is never freed.
                let n = if case == "witness-stale-free" { 100_000 } else { 3 << 20 };
                let p = zk_nalloc::raw::witness_alloc(n);
                zk_nalloc::raw::witness_free(p);
                let again = zk_nalloc::raw::witness_alloc(n);
                again.write_bytes(2, n);
                zk_nalloc::raw::witness_free(std::hint::black_box(p));
                // Not reached if the stale free was caught. `again` is not
                // freed: its free would be reported if the stale free had
                // freed it, and hide that it did.
                assert_eq!(again.add(n - 1).read(), 2);
            }
            "witness-free-gap" => {
                // A pointer into the gap page after a run: never committed.
                let p = zk_nalloc::raw::witness_alloc(100);
                let run_end = (p as usize + 4096) & !4095;
                zk_nalloc::raw::witness_free(std::hint::black_box((run_end + 64) as *mut u8));
                zk_nalloc::raw::witness_free(p);
            }
            "witness-overflow" | "witness-overflow-large" | "witness-overflow-secret-vec" => {
                // One byte past the requested bytes (into the canary), set
                // to a value it cannot hold; reported at free. Portable
                // twins of tests/witness_fences.rs's Linux cases, so that
                // the canary is checked under Windows too.
                let n = if case == "witness-overflow-large" { 100_001 } else { 40 };
                let at = if case == "witness-overflow-secret-vec" {
                    let mut v = zk_nalloc::SecretVec::<u8>::with_capacity(ALLOC.witness(), n).unwrap();
                    v.extend_from_slice(&[7; 40]);
                    let q = v.as_ptr().cast_mut();
                    q.add(40).write_volatile(!q.add(40).read_volatile());
                    drop(v);
                    return;
                } else {
                    ALLOC.witness().alloc(n, 8)
                };
                at.write_bytes(7, n);
                at.add(n).write_volatile(!at.add(n).read_volatile());
                ALLOC.witness().dealloc(at, n, 8);
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

/// Runs `case` in a child and returns (exit status, stderr).
fn run_case(case: &str) -> (ExitStatus, String) {
    let out = common::this_test_binary()
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env(CASE_VAR, case)
        .output()
        .unwrap();
    (out.status, String::from_utf8_lossy(&out.stderr).into_owned())
}

fn assert_stops(case: &str, message: &str) {
    let (status, stderr) = run_case(case);
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("nalloc:")).collect();
    assert!(aborted(status), "{case}: not aborted ({status}): {stderr}");
    assert_eq!(lines.len(), 1, "{case}: {stderr}");
    assert!(lines[0].starts_with(message), "{case}: {stderr}");
}

#[test]
fn witness_double_frees_stop_the_process() {
    assert_stops(
        "witness-double-free-large",
        "nalloc: nalloc_witness_free(): double free at 0x",
    );
    assert_stops(
        "witness-double-free-small",
        "nalloc: nalloc_witness_free(): double free at 0x",
    );
}

/// A stale free of a large witness block whose size was allocated again
/// since: reported as a double free, never a free of the new owner's block
/// (blocks of 64 KiB or less are reused at once from their class: see
/// docs/design/misuse.md for what is caught there).
#[test]
fn stale_witness_frees_stop_the_process() {
    for case in ["witness-stale-free", "witness-stale-free-3m"] {
        assert_stops(case, "nalloc: nalloc_witness_free(): double free at 0x");
    }
}

#[test]
#[cfg(target_os = "linux")]
fn a_witness_pointer_off_every_block_is_reported_not_read() {
    // Reported as the free of a freed block (an unreadable witness address
    // is what a released chunk leaves): the point is that it is not read.
    assert_stops("witness-free-gap", "nalloc: nalloc_witness_free(): double free at 0x");
}

/// A witness block's canary, checked at free on every platform: an
/// overflow by one byte is reported with the block's address and size.
#[test]
fn a_witness_overflow_stops_the_process() {
    const OVERFLOW: &str = "nalloc: witness block overflowed (canary overwritten) at 0x";
    for (case, size) in [
        ("witness-overflow", 40),
        ("witness-overflow-large", 100_001),
        ("witness-overflow-secret-vec", 40),
    ] {
        let (status, stderr) = run_case(case);
        let line = stderr.lines().find(|l| l.starts_with("nalloc:")).unwrap_or_default();
        assert!(aborted(status), "{case}: not aborted ({status}): {stderr}");
        assert!(line.starts_with(OVERFLOW), "{case}: {stderr}");
        assert!(line.ends_with(&format!(" ({size} bytes)")), "{case}: {stderr}");
    }
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
/// trusted) right after the first free is caught by the thread's span
/// cache, which still holds it, in every build — before the range could be
/// handed out twice. (One that has gone on to the warm pool meanwhile is
/// caught by the pool's check in debug builds only.)
#[test]
fn a_span_freed_twice_stops_the_process() {
    assert_stops(
        "double-free-large",
        "nalloc: free(): double free of a large block at 0x",
    );
}

#[test]
fn foreign_pointers_can_be_forwarded() {
    let out = common::this_test_binary()
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env(CASE_VAR, "forwarded")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("forwarded ok"),
        "{}: {stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The C front's header check value is keyed per process: two runs that
/// place the same block at the same address (address randomisation off)
/// still seal it differently, so a header cannot be forged from another
/// run's.
#[test]
#[cfg(target_os = "linux")]
fn header_seals_are_keyed_per_process() {
    let seal = || {
        let mut cmd = common::this_test_binary();
        cmd.args(["--exact", "child", "--nocapture", "--test-threads=1"])
            .env(CASE_VAR, "seal");
        common::without_aslr(&mut cmd);
        let out = cmd.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let line = stdout
            .lines()
            .find_map(|l| l.strip_prefix("seal "))
            .unwrap_or_else(|| panic!("no seal printed: {stdout}"));
        let (addr, seal) = line.split_once(' ').expect("address and seal");
        (addr.to_owned(), seal.to_owned())
    };
    let ((addr_a, a), (addr_b, b)) = (seal(), seal());
    assert_eq!(
        addr_a, addr_b,
        "address randomisation was not turned off: nothing to compare"
    );
    assert_ne!(a, b, "two processes sealed the same block alike: the key is not random");
}
