//! C programs of our own (capi/tests/c), compiled with the system `cc`
//! against `include/nalloc.h` and run against `libnalloc.so`: every entry
//! point's edge cases, cross-thread frees, the nalloc.h extras, and fork.

mod common;

use common::{command, compile_c, run, scratch_dir, Link};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(240);

/// Edge cases of every entry point, with errno after each call. The same
/// program passes under glibc's malloc, which shows the expectations are
/// glibc's.
#[test]
fn edge_cases_match_glibc() {
    let dir = scratch_dir("edge");
    let exe = compile_c("edge", &dir, Link::Plain);

    let glibc = run(command(&exe, false), &dir, LIMIT).ok("edge under glibc");
    assert!(glibc.stdout_str().contains("edge (glibc): ok"));

    let mut cmd = command(&exe, true);
    cmd.arg("expect-nalloc");
    let out = run(cmd, &dir, LIMIT).ok("edge under nalloc");
    assert!(out.stdout_str().contains("edge (nalloc): ok"), "{}", out.stdout_str());
    common::assert_served(&out.stderr, 1, 100);
}

/// A bad setting never stops a host program: preloaded into the `edge`
/// program with `NALLOC_BUDGET=12Q`, nalloc says once what it expected and
/// runs without a budget; the program's checks all pass.
#[test]
fn a_bad_budget_leaves_the_host_program_running() {
    let dir = scratch_dir("bad-budget");
    let exe = compile_c("edge", &dir, Link::Plain);
    let mut cmd = command(&exe, true);
    cmd.arg("expect-nalloc").env("NALLOC_BUDGET", "12Q");
    let out = run(cmd, &dir, LIMIT).ok("edge under nalloc with NALLOC_BUDGET=12Q");
    assert!(out.stdout_str().contains("edge (nalloc): ok"), "{}", out.stdout_str());
    let lines: Vec<&str> = out.stderr.lines().filter(|l| l.contains("NALLOC_BUDGET")).collect();
    assert_eq!(lines.len(), 1, "{}", out.stderr);
    assert!(
        lines[0].starts_with("nalloc: NALLOC_BUDGET=\"12Q\" not understood: "),
        "{}",
        lines[0]
    );
    assert!(lines[0].ends_with("running without a budget"), "{}", lines[0]);
}

/// Blocks made on one thread, checked, grown and freed on another, over
/// several waves of threads (heap retirement and adoption).
#[test]
fn cross_thread_frees_keep_contents() {
    let dir = scratch_dir("threads");
    let exe = compile_c("threads", &dir, Link::Plain);
    let out = run(command(&exe, true), &dir, LIMIT).ok("threads under nalloc");
    assert!(out.stdout_str().contains("threads: ok"), "{}", out.stdout_str());
    common::assert_served(&out.stderr, 1, 6 * 3 * 40_000);
    // The exit report carries the slow-path event counts: this program's
    // cross-thread frees went over in batches, its threads took locks.
    let field = |line: &str, name: &str| -> u64 {
        let key = format!(" {name}=");
        let at = line.find(&key).unwrap_or_else(|| panic!("no {name} in {line}")) + key.len();
        line[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .unwrap()
    };
    let events = out
        .stderr
        .lines()
        .find(|l| l.starts_with("nalloc: events "))
        .expect("events line");
    assert!(field(events, "remote_batches") > 0, "{events}");
    assert!(
        field(events, "remote_blocks") >= field(events, "remote_batches"),
        "{events}"
    );
    assert!(field(events, "lock_acquisitions") > 0, "{events}");
    let os = out
        .stderr
        .lines()
        .find(|l| l.starts_with("nalloc: os_calls "))
        .expect("os_calls line");
    assert!(field(os, "map") > 0, "{os}");
}

/// A doubling vector's larger blocks are built from the freed smaller
/// blocks' pages (Linux moves them): the exit report counts the bytes moved.
#[cfg(target_os = "linux")]
#[test]
fn growing_blocks_reuse_the_freed_pages() {
    let dir = scratch_dir("growing");
    let exe = compile_c("growing", &dir, Link::Plain);
    let out = run(command(&exe, true), &dir, LIMIT).ok("growing under nalloc");
    assert!(out.stdout_str().contains("growing: ok"), "{}", out.stdout_str());
    let line = out
        .stderr
        .lines()
        .find(|l| l.contains(" gathered="))
        .expect("no gathered= in the exit report");
    let at = line.find(" gathered=").unwrap() + " gathered=".len();
    let moved: u64 = line[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap();
    // 1 + 2 + ... + 32 MiB freed before the 2 .. 64 MiB blocks: most of it
    // moved (pieces are whole huge pages for the larger spans).
    assert!(moved >= 32 << 20, "only {moved} bytes moved: {line}");
}

/// nalloc.h: witness memory (zeroed, wiped, thread-safe, fork-wiped),
/// stats, trim — in a program linked with -lnalloc, which also makes nalloc
/// its malloc without LD_PRELOAD.
#[test]
fn extras_api_linked() {
    let dir = scratch_dir("extras");
    let exe = compile_c("extras", &dir, Link::Nalloc);
    let out = run(command(&exe, false), &dir, LIMIT).ok("extras");
    assert!(out.stdout_str().contains("extras: ok"), "{}", out.stdout_str());
}

/// Fork while other threads allocate (every locked slow path, witness
/// memory included); each child allocates, starts a thread and exits. A
/// child stuck on an inherited lock dies by alarm() and fails the test.
#[test]
fn fork_while_threads_allocate() {
    let dir = scratch_dir("fork");
    let exe = compile_c("fork", &dir, Link::Nalloc);
    let mut cmd = command(&exe, false);
    cmd.arg("300");
    let out = run(cmd, &dir, LIMIT).ok("fork");
    assert!(out.stdout_str().contains("fork: ok"), "{}", out.stdout_str());
}

/// Linked statically with libnalloc.a: nalloc serves malloc and the
/// library constructor is linked in (the exit report appears).
#[test]
fn static_library() {
    let dir = scratch_dir("static");
    let exe = compile_c("static_link", &dir, Link::Static);
    let mut cmd = command(&exe, false);
    cmd.env("NALLOC_STATS", "1");
    let out = run(cmd, &dir, LIMIT).ok("static_link");
    assert!(out.stdout_str().contains("static_link: ok"), "{}", out.stdout_str());
    common::assert_served(&out.stderr, 1, 2);
}

/// The exit report never goes to a descriptor 2 that now names another
/// file; it reaches the original stderr through nalloc's duplicate.
#[test]
fn report_skips_reused_stderr_descriptor() {
    let dir = scratch_dir("stderr-reuse");
    let exe = compile_c("stderr_reuse", &dir, Link::Plain);
    let file = dir.join("data.txt");
    let mut cmd = command(&exe, true);
    cmd.arg(&file);
    let out = run(cmd, &dir, LIMIT).ok("stderr_reuse");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "payload\n");
    common::assert_served(&out.stderr, 1, 1);
}

/// A fork child wipes the witness arena while the parent's witness chunks
/// are still listed: the chunk headers live in a page that is not
/// wipe-on-fork, so the child can walk and release its copies (this aborted
/// when headers shared the wiped pages).
#[test]
fn witness_wipe_all_in_fork_child() {
    let dir = scratch_dir("extras-fork-wipe");
    let exe = compile_c("extras", &dir, Link::Nalloc);
    let mut cmd = command(&exe, false);
    cmd.arg("fork-child-wipe");
    let out = run(cmd, &dir, LIMIT).ok("extras fork-child-wipe");
    assert!(out.stdout_str().contains("ok"), "{}", out.stdout_str());
}

/// With the `hardened` feature, a double free through the C ABI aborts
/// with nalloc's one-line diagnosis.
#[cfg(feature = "hardened")]
#[test]
fn hardened_double_free_aborts() {
    let dir = scratch_dir("misuse-hardened");
    let exe = compile_c("misuse", &dir, Link::Nalloc);
    let mut cmd = command(&exe, false);
    cmd.arg("double-free");
    let out = run(cmd, &dir, LIMIT);
    assert_eq!(out.signal, Some(libc::SIGABRT), "stdout: {}", out.stdout_str());
    assert!(out.stderr.contains("nalloc: double free at 0x"), "{}", out.stderr);
}

/// Misuse of the C front stops the process with one line naming the call
/// and the pointer, as glibc does (each case in its own process; the exact
/// message is asserted).
#[test]
fn misuse_is_reported_and_stops_the_process() {
    const OVERFLOW: &str = "nalloc: witness block overflowed (canary overwritten) at 0x";
    let dir = scratch_dir("misuse");
    let exe = compile_c("misuse", &dir, Link::Nalloc);
    let cases = [
        ("double-free", "nalloc: double free at 0x"),
        ("double-free-large", "nalloc: free(): double free at 0x"),
        ("free-stack", "nalloc: free(): invalid pointer at 0x"),
        ("free-stack-misaligned", "nalloc: free(): invalid pointer at 0x"),
        ("free-mmap", "nalloc: free(): invalid pointer at 0x"),
        ("realloc-foreign", "nalloc: realloc(): invalid pointer at 0x"),
        ("usable-foreign", "nalloc: malloc_usable_size(): invalid pointer at 0x"),
        (
            "witness-double-free",
            "nalloc: nalloc_witness_free(): double free at 0x",
        ),
        (
            "witness-double-free-small",
            "nalloc: nalloc_witness_free(): double free at 0x",
        ),
        ("witness-stale-free", "nalloc: nalloc_witness_free(): double free at 0x"),
        (
            "witness-stale-free-3m",
            "nalloc: nalloc_witness_free(): double free at 0x",
        ),
        ("witness-stale-free-plain", "nalloc: free(): double free at 0x"),
        ("witness-header-overwrite", "nalloc: free(): invalid pointer at 0x"),
        ("witness-overflow", OVERFLOW),
        ("witness-overflow-realloc", OVERFLOW),
        ("witness-overflow-free", OVERFLOW),
        (
            "witness-free-plain",
            "nalloc: nalloc_witness_free(): not a witness block at 0x",
        ),
        ("libc-block", "nalloc: realloc(): invalid pointer at 0x"),
    ];
    let mut failures = Vec::new();
    for (case, message) in cases {
        let mut cmd = command(&exe, false);
        cmd.arg(case);
        let out = run(cmd, &dir, LIMIT);
        let lines: Vec<&str> = out.stderr.lines().filter(|l| l.starts_with("nalloc:")).collect();
        let ok = out.signal == Some(libc::SIGABRT) && lines.len() == 1 && lines[0].starts_with(message);
        if !ok {
            failures.push(format!(
                "{case}: signal {:?} code {:?}, stderr {:?}, stdout {:?}",
                out.signal,
                out.code,
                out.stderr,
                out.stdout_str()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// What is not misuse keeps working: `free` of a witness block wipes and
/// frees it (then large blocks are sound), `malloc(0)` costs the smallest
/// class, and with `NALLOC_FOREIGN_FREE=forward` a block of the C library's
/// own `malloc` (as a library opened with `RTLD_DEEPBIND` gets) is resized
/// and freed by the C library.
#[test]
fn legal_edges_work() {
    let dir = scratch_dir("misuse-legal");
    let exe = compile_c("misuse", &dir, Link::Nalloc);
    for (case, forward) in [
        ("free-witness-then-malloc", false),
        ("malloc0", false),
        ("libc-block", true),
    ] {
        let mut cmd = command(&exe, false);
        cmd.arg(case);
        if forward {
            cmd.env("NALLOC_FOREIGN_FREE", "forward");
        }
        let out = run(cmd, &dir, LIMIT);
        assert_eq!(
            out.code,
            Some(0),
            "{case}: signal {:?}, stderr {}",
            out.signal,
            out.stderr
        );
        assert!(
            out.stdout_str().contains("not detected"),
            "{case}: {}",
            out.stdout_str()
        );
    }
}

/// Memory of exited threads comes back: after four threads' blocks are
/// freed by the main thread and `malloc_trim(0)` runs, the resident set is
/// within 1.5x of glibc's in the same situation.
#[test]
fn exited_threads_memory_is_trimmed() {
    let dir = scratch_dir("orphans");
    let exe = compile_c("orphans", &dir, Link::Plain);
    let trimmed = |preload: bool| {
        let out = run(command(&exe, preload), &dir, LIMIT).ok("orphans");
        let text = out.stdout_str();
        let kib = text
            .split_whitespace()
            .find_map(|w| w.strip_prefix("trimmed="))
            .and_then(|v| v.parse::<u64>().ok());
        kib.unwrap_or_else(|| panic!("no figure in {text:?}"))
    };
    let (glibc, nalloc) = (trimmed(false), trimmed(true));
    assert!(
        nalloc * 2 <= glibc * 3,
        "resident after trim: nalloc {nalloc} KiB, glibc {glibc} KiB"
    );
}

/// The memory budget under LD_PRELOAD: `malloc` past `NALLOC_BUDGET=64M`
/// returns NULL with `ENOMEM`, one documented line on stderr names the
/// phase, earlier data is intact and later requests that fit succeed; the
/// phase table is printed at exit (`NALLOC_STATS=1`); `nalloc_reset_peaks`
/// restarts the peak and `nalloc_set_budget` lifts and sets the budget.
#[test]
fn budget_refuses_with_enomem() {
    let dir = scratch_dir("budget");
    let exe = compile_c("budget", &dir, Link::Plain);
    let mut cmd = command(&exe, true);
    cmd.env("NALLOC_BUDGET", "64M").env("NALLOC_STATS", "1");
    let out = run(cmd, &dir, LIMIT).ok("budget under nalloc");
    assert!(out.stdout_str().contains("budget: ok"), "{}", out.stdout_str());
    let lines: Vec<&str> = out.stderr.lines().filter(|l| l.contains("budget exceeded")).collect();
    // The second: after nalloc_set_budget(32 MiB), a 64 MiB request.
    assert_eq!(lines.len(), 2, "{}", out.stderr);
    assert!(
        lines[1].starts_with("nalloc: memory budget exceeded: request=67108880 budget=33554432 committed="),
        "{}",
        lines[1]
    );
    assert!(
        // The C front's large blocks carry a 16-byte header (see
        // src/front/raw.rs): the engine's request is 100 MiB + 16.
        lines[0].starts_with("nalloc: memory budget exceeded: request=104857616 budget=67108864 committed=")
            && lines[0].ends_with(" phase=alloc"),
        "{}",
        lines[0]
    );
    let table = out
        .stderr
        .split("nalloc: phases\n")
        .nth(1)
        .unwrap_or_else(|| panic!("{}", out.stderr));
    assert!(table.starts_with("phase "), "{table}");
    assert!(table.lines().any(|l| l.starts_with("alloc ")), "{table}");
}
