//! Fork safety: `fork()` while other threads allocate must leave the child
//! with a working allocator.
//!
//! A forked child has only the forking thread; any allocator lock another
//! thread held at the moment of the fork stays locked forever in the child.
//! nalloc registers `pthread_atfork` handlers at its first allocation
//! (`raw::fork_prepare` takes every process-wide lock, `fork_parent` /
//! `fork_child` release them), so the child always finds them free.
//!
//! Four threads churn every locked path (span pool, segment cache and
//! region, heap registry through short-lived threads, the witness arena)
//! while the main thread forks repeatedly. Each child allocates and frees
//! on those paths, spawns a thread, and `_exit(0)`s; `alarm(10)` turns a
//! deadlock into SIGALRM, which the parent reports as a failure.
#![cfg(target_os = "linux")]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use zk_nalloc::NAlloc;

#[global_allocator]
static ALLOC: NAlloc = NAlloc::new();

const FORKS: usize = 150;

/// Allocator traffic on every locked path, `rounds` times.
fn churn(seed: u64, rounds: u64, spawn_threads: bool) -> u64 {
    let mut x = seed | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut sum = 0u64;
    let mut keep: Vec<Vec<u8>> = Vec::new();
    for r in 0..rounds {
        // Small objects of many classes; some kept to fill pages and take
        // new segments.
        let v: Vec<Box<[u64]>> = (0..32)
            .map(|i| vec![r ^ i; 1 + (next() % 200) as usize].into_boxed_slice())
            .collect();
        sum = sum.wrapping_add(v.iter().map(|b| b[0]).sum::<u64>());
        if keep.len() < 64 {
            keep.push(vec![r as u8; 16 + (next() % 4000) as usize]);
        } else {
            let i = (next() % 64) as usize;
            keep[i] = vec![r as u8; 16 + (next() % 4000) as usize];
        }
        // Large vectors: the span pool (take, put back, evict, unmap).
        let big = vec![r as u8; (64 << 10) + (next() % (3 << 20)) as usize];
        sum = sum.wrapping_add(big[big.len() - 1] as u64);
        drop(big);
        // Witness memory: the scope arena and the witness region (blocks
        // over 1 MiB span several slots: a longer search under the
        // region's lock).
        let secret = ALLOC.witness_scope(|| vec![7u8; 24 + (next() % 100_000) as usize]);
        let big_secret = ALLOC.witness_scope(|| vec![9u8; (1 << 20) + (next() % (1 << 20)) as usize]);
        sum = sum.wrapping_add(secret[0] as u64 + big_secret[1] as u64);
        drop((secret, big_secret));
        // Thread start and exit: the heap registry (acquire, retire).
        if spawn_threads && r % 8 == 0 {
            let h = std::thread::spawn(move || vec![r; 100].iter().sum::<u64>());
            sum = sum.wrapping_add(h.join().unwrap_or(0));
        }
        drop(v);
    }
    for k in &keep {
        sum = sum.wrapping_add(k[0] as u64);
    }
    sum
}

/// What a child does: allocate and free on every path, then `_exit`.
fn child() -> ! {
    // SAFETY: alarm only arms a timer; a deadlock below ends in SIGALRM.
    unsafe { libc::alarm(10) };
    let ok = std::panic::catch_unwind(|| {
        let s = churn(0xC0FFEE, 8, true);
        let big: Vec<u64> = (0..(1 << 20)).collect();
        assert_eq!(big[(1 << 20) - 1], (1 << 20) - 1);
        let t = std::thread::spawn(|| churn(0xBEEF, 4, false));
        let s2 = t.join().expect("thread in the child");
        std::hint::black_box(s ^ s2);
        ALLOC.trim();
    })
    .is_ok();
    // SAFETY: _exit ends the child at once, without running the parent's
    // atexit handlers or flushing its (copied) stdio buffers.
    unsafe { libc::_exit(if ok { 0 } else { 3 }) }
}

#[test]
fn fork_while_threads_allocate() {
    let stop = Arc::new(AtomicBool::new(false));
    let work = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..4u64)
        .map(|t| {
            let stop = stop.clone();
            let work = work.clone();
            std::thread::spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    std::hint::black_box(churn(t * 1000 + i, 4, true));
                    work.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                }
            })
        })
        .collect();
    // Let the workers get going so that forks land inside their traffic.
    while work.load(Ordering::Relaxed) < 4 {
        std::thread::yield_now();
    }
    let mut failures = Vec::new();
    for i in 0..FORKS {
        // SAFETY: the child only runs `child`, which uses the allocator (the
        // point of the test), spawns a thread and leaves with `_exit`.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed: {}", std::io::Error::last_os_error());
        if pid == 0 {
            child();
        }
        let mut status = 0;
        loop {
            // SAFETY: waiting for our own child with a valid out-pointer.
            let r = unsafe { libc::waitpid(pid, &mut status, 0) };
            if r == pid {
                break;
            }
            assert_eq!(
                std::io::Error::last_os_error().raw_os_error(),
                Some(libc::EINTR),
                "waitpid failed"
            );
        }
        if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
            let what = if libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGALRM {
                "deadlocked (killed by SIGALRM after 10 s)".to_owned()
            } else if libc::WIFSIGNALED(status) {
                format!("killed by signal {}", libc::WTERMSIG(status))
            } else {
                format!("exited with {}", libc::WEXITSTATUS(status))
            };
            failures.push(format!("fork {i}: child {what}"));
        }
        // Give the workers a moment between forks.
        let seen = work.load(Ordering::Relaxed);
        while work.load(Ordering::Relaxed) == seen {
            std::thread::yield_now();
        }
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    assert!(
        failures.is_empty(),
        "{} of {FORKS} children failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
