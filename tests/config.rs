//! The run-time settings end to end: each `NALLOC_*` variable, set in a
//! child process's environment, is what the allocator then reports and
//! does; huge pages `on` / `off` checked against the kernel's own count
//! (`AnonHugePages` in `/proc/self/smaps`), with the system's THP mode read
//! from sysfs. Linux (reads /proc and /sys).
#![cfg(target_os = "linux")]

use std::time::Duration;

use zk_nalloc::{FirstTouch, HugePages, NAlloc};

mod common;

#[global_allocator]
static ALLOC: NAlloc = NAlloc::new();

const CASE_VAR: &str = "NALLOC_CONFIG_CASE";

/// Runs `case` of [`child`] in a child process with `env` set.
fn in_child(case: &str, env: &[(&str, &str)]) {
    let mut cmd = common::this_test_binary();
    cmd.args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env(CASE_VAR, case)
        .env_remove("NALLOC_HUGE_PAGES")
        .env_remove("NALLOC_POOL_CAP")
        .env_remove("NALLOC_PURGE_DELAY")
        .env_remove("NALLOC_FIRST_TOUCH");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("config case ok"),
        "{case} {env:?}: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The system's transparent huge page mode (`always`, `madvise`, `never`).
fn thp_mode() -> String {
    let s = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").unwrap_or_default();
    s.split_whitespace()
        .find_map(|w| w.strip_prefix('[').and_then(|w| w.strip_suffix(']')))
        .unwrap_or("never")
        .to_owned()
}

/// Bytes of a 64 MiB polynomial vector, written, that the kernel backs with
/// huge pages.
fn huge_bytes_of_a_written_vector() -> usize {
    let poly = ALLOC.polynomial();
    let mut v = poly.vec_with_capacity::<u64>(8 << 20);
    v.resize(8 << 20, 7);
    let bytes = poly.huge_page_bytes().expect("Linux reports AnonHugePages");
    assert!(v.iter().all(|&x| x == 7));
    bytes
}

/// The cases; run only inside a child (the env var names the case).
#[test]
fn child() {
    let Ok(case) = std::env::var(CASE_VAR) else {
        return;
    };
    match case.as_str() {
        "set-a" => {
            assert_eq!(ALLOC.huge_pages(), HugePages::Off);
            assert_eq!(ALLOC.pool_cap(), 16 << 20);
            assert_eq!(ALLOC.purge_delay(), None);
            assert_eq!(ALLOC.first_touch(), FirstTouch::Fresh);
        }
        "set-b" => {
            assert_eq!(ALLOC.huge_pages(), HugePages::On);
            assert_eq!(ALLOC.pool_cap(), 1 << 30);
            assert_eq!(ALLOC.purge_delay(), Some(Duration::from_millis(250)));
        }
        "set-c" => {
            assert_eq!(ALLOC.huge_pages(), HugePages::Explicit);
            assert_eq!(ALLOC.pool_cap(), 300 << 10);
            assert_eq!(ALLOC.purge_delay(), Some(Duration::ZERO));
        }
        "defaults" => {
            assert_eq!(ALLOC.huge_pages(), HugePages::Auto);
            // Inside a container with a memory limit the cap is an eighth
            // of the limit, without the 256 MiB floor of a host.
            match ALLOC.memory_limit() {
                None => assert!(ALLOC.pool_cap() >= 256 << 20, "{}", ALLOC.pool_cap()),
                Some(l) => assert_eq!(ALLOC.pool_cap(), (l / 8).min(4 << 30)),
            }
            assert_eq!(ALLOC.purge_delay(), Some(Duration::from_millis(5)));
            assert_eq!(ALLOC.first_touch(), FirstTouch::Reuse);
        }
        "first-touch" => {
            // A freed 12 MiB block and a 24 MiB request: under `reuse` the
            // span is built from the freed block's pages, under `fresh`
            // from new ones. Linux only (elsewhere pages cannot move).
            let before = ALLOC.stats().span_gathered_bytes;
            drop(std::hint::black_box(vec![1u8; 12 << 20]));
            let v = std::hint::black_box(vec![2u8; 24 << 20]);
            assert!(v.iter().all(|&b| b == 2));
            let gathered = ALLOC.stats().span_gathered_bytes - before;
            match ALLOC.first_touch() {
                FirstTouch::Reuse if cfg!(target_os = "linux") => {
                    assert!(gathered >= 12 << 20, "reuse moved {gathered} bytes")
                }
                _ => assert_eq!(gathered, 0, "{:?} moved pooled pages", ALLOC.first_touch()),
            }
        }
        "pool-cap" => {
            // With a 16 MiB cap a freed 32 MiB vector is not kept warm.
            drop(vec![1u8; 32 << 20]);
            assert!(ALLOC.stats().pool_retained <= 16 << 20, "{:?}", ALLOC.stats());
        }
        "huge-advice" => {
            // Under `auto`, a 40 MiB span is advised for huge pages (`hg` in
            // its VmFlags) once it is reused, not on first use — unless the
            // first-touch policy is `fresh`.
            let advised = |v: &[u8]| common::vm_flags(v.as_ptr() as usize).iter().any(|f| f == "hg");
            let first = vec![1u8; 40 << 20];
            let at_first_use = advised(&first);
            let addr = first.as_ptr() as usize;
            drop(first);
            let again = vec![2u8; 40 << 20];
            assert_eq!(again.as_ptr() as usize, addr, "the span was not reused");
            let on_reuse = advised(&again);
            let fresh = ALLOC.first_touch() == FirstTouch::Fresh;
            assert_eq!((at_first_use, on_reuse), (fresh, true), "{:?}", ALLOC.first_touch());
            drop(again);
            // Zeroed and used sparsely (a fresh span, one page written), a
            // span is purged when reused zeroed and goes without huge pages
            // (`nh`), in one advice call: not advised for huge pages first
            // only to take it back.
            ALLOC.trim();
            let mut z = vec![0u8; 40 << 20];
            let addr = z.as_ptr() as usize;
            z[0] = 1;
            // black_box: a release build drops the write to a block freed
            // at once (a dead store), and the span would look untouched.
            drop(std::hint::black_box(z));
            for round in 1..4 {
                let advice_calls = ALLOC.stats().events.os_advise;
                let mut z = vec![0u8; 40 << 20];
                let calls = ALLOC.stats().events.os_advise - advice_calls;
                assert_eq!(z.as_ptr() as usize, addr, "round {round}: the span was not reused");
                assert_eq!((z[0], z[4096 * (round - 1)]), (0, 0), "round {round}: not zeroed");
                let flags = common::vm_flags(addr);
                let nohuge = flags.iter().any(|f| f == "nh") && !flags.iter().any(|f| f == "hg");
                assert!(nohuge, "round {round}: {flags:?}");
                assert_eq!(calls, 1, "round {round}: advice calls");
                z[4096 * round] = 1;
                drop(std::hint::black_box(z));
            }
        }
        "policy-switch" => {
            // Spans freed under `Explicit` are pooled unjoined (hugetlb
            // mappings cannot be cut); after a switch back to `Auto` the
            // pool must not treat them as joinable (in a debug build its
            // check stopped the process: "two ranges overlap or touch").
            // Neighbouring spans: cut from one warm range.
            drop(vec![0u8; 16 << 20]);
            let spans: Vec<Vec<u8>> = (0..4).map(|i| vec![i as u8; 4 << 20]).collect();
            ALLOC.set_huge_pages(HugePages::Explicit);
            drop(spans);
            ALLOC.set_huge_pages(HugePages::Auto);
            for round in 0..4u8 {
                let v = vec![round; 6 << 20];
                assert!(v.iter().all(|&b| b == round));
            }
        }
        "huge-off" => {
            assert_eq!(
                huge_bytes_of_a_written_vector(),
                0,
                "huge pages despite NALLOC_HUGE_PAGES=off"
            );
        }
        "huge-on" if ALLOC.huge_page_size() > 64 << 20 => {
            // Simulated 64 KiB pages (test builds only): 512 MiB huge pages,
            // more than the vector.
            println!("skipped: huge page of {} bytes", ALLOC.huge_page_size());
        }
        "huge-on" => {
            let bytes = huge_bytes_of_a_written_vector();
            assert!(
                bytes >= 2 << 20,
                "no huge page with NALLOC_HUGE_PAGES=on (THP {})",
                thp_mode()
            );
        }
        other => panic!("unknown case {other}"),
    }
    println!("config case ok");
}

#[test]
fn every_variable_reaches_the_allocator() {
    in_child(
        "set-a",
        &[
            ("NALLOC_HUGE_PAGES", "off"),
            ("NALLOC_POOL_CAP", "16M"),
            ("NALLOC_PURGE_DELAY", "never"),
            ("NALLOC_FIRST_TOUCH", "fresh"),
        ],
    );
    in_child(
        "set-b",
        &[
            ("NALLOC_HUGE_PAGES", "on"),
            ("NALLOC_POOL_CAP", "1G"),
            ("NALLOC_PURGE_DELAY", "250"),
        ],
    );
    in_child(
        "set-c",
        &[
            ("NALLOC_HUGE_PAGES", "explicit"),
            ("NALLOC_POOL_CAP", "300K"),
            ("NALLOC_PURGE_DELAY", "0"),
        ],
    );
    in_child("defaults", &[]);
    in_child("pool-cap", &[("NALLOC_POOL_CAP", "16M")]);
}

#[test]
fn the_first_touch_policy_decides_whether_pooled_pages_are_moved() {
    in_child("first-touch", &[]);
    in_child("first-touch", &[("NALLOC_FIRST_TOUCH", "reuse")]);
    in_child("first-touch", &[("NALLOC_FIRST_TOUCH", "fresh")]);
}

#[cfg(target_os = "linux")]
#[test]
fn huge_page_advice_comes_with_reuse_unless_first_touch_is_fresh() {
    in_child("huge-advice", &[]);
    in_child("huge-advice", &[("NALLOC_FIRST_TOUCH", "fresh")]);
}

#[test]
fn the_pool_survives_a_huge_page_policy_switch() {
    in_child("policy-switch", &[]);
}

#[test]
fn huge_pages_follow_the_setting() {
    // Off holds whatever the system mode (MADV_NOHUGEPAGE overrides
    // `always`); On needs a system that gives huge pages at all.
    in_child("huge-off", &[("NALLOC_HUGE_PAGES", "off")]);
    if thp_mode() != "never" {
        in_child("huge-on", &[("NALLOC_HUGE_PAGES", "on")]);
    }
}
