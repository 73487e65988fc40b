//! NAlloc as the global allocator: correctness under threads, alignment,
//! cross-thread frees, start-up races, bad input.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::{mpsc, Arc, Barrier};
use zk_nalloc::NAlloc;

mod common;
use common::{check, fill, Rng};

#[global_allocator]
static ALLOC: NAlloc = NAlloc::new();

#[test]
fn concurrent_first_allocation_from_16_threads() {
    let barrier = Arc::new(Barrier::new(16));
    let handles: Vec<_> = (0..16)
        .map(|t| {
            let b = barrier.clone();
            std::thread::spawn(move || {
                b.wait();
                // Each thread's very first allocation happens now, at once.
                let v: Vec<u64> = (0..1000).map(|i| i * t).collect();
                let s = format!("thread {t}");
                assert_eq!(v[999], 999 * t);
                s
            })
        })
        .collect();
    for (t, h) in handles.into_iter().enumerate() {
        assert_eq!(h.join().unwrap(), format!("thread {t}"));
    }
}

#[test]
fn random_alloc_free_realloc_keeps_contents_and_never_overlaps() {
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            std::thread::spawn(move || {
                let mut rng = Rng(0x9E37_79B9 + t);
                let mut live: Vec<(usize, usize, usize, u64)> = Vec::new(); // addr, size, align, seed
                for step in 0..20_000u64 {
                    let op = rng.below(10);
                    if op < 5 || live.is_empty() {
                        let size = match rng.below(10) {
                            0 => 64 * 1024 + rng.below(1 << 20) as usize,
                            1 => rng.below(64 * 1024) as usize + 1,
                            _ => rng.below(512) as usize + 1,
                        };
                        let wide = rng.below(8) == 0;
                        let align = 1usize << rng.below(if wide { 14 } else { 5 });
                        let l = Layout::from_size_align(size, align).unwrap();
                        // SAFETY: non-zero size.
                        let p = unsafe { ALLOC.alloc(l) };
                        assert!(!p.is_null());
                        assert_eq!(p as usize % align, 0, "misaligned size {size} align {align}");
                        let seed = step ^ (t << 32);
                        fill(p, size.min(256), seed);
                        live.push((p as usize, size, align, seed));
                    } else if op < 8 {
                        let i = rng.below(live.len() as u64) as usize;
                        let (p, size, align, seed) = live.swap_remove(i);
                        assert!(check(p as *const u8, size.min(256), seed), "corrupted block");
                        // SAFETY: live block with its layout.
                        unsafe { ALLOC.dealloc(p as *mut u8, Layout::from_size_align(size, align).unwrap()) };
                    } else {
                        let i = rng.below(live.len() as u64) as usize;
                        let (p, size, align, seed) = live[i];
                        let new_size = (rng.below(200_000) as usize).max(1);
                        let l = Layout::from_size_align(size, align).unwrap();
                        // SAFETY: live block with its layout; non-zero new size.
                        let q = unsafe { ALLOC.realloc(p as *mut u8, l, new_size) };
                        assert!(!q.is_null());
                        assert_eq!(q as usize % align, 0, "realloc lost alignment");
                        let keep = size.min(new_size).min(256);
                        assert!(check(q, keep, seed), "realloc lost contents");
                        fill(q, new_size.min(256), seed);
                        live[i] = (q as usize, new_size, align, seed);
                    }
                }
                // No two live blocks overlap.
                let mut spans: Vec<(usize, usize)> = live.iter().map(|&(p, s, _, _)| (p, p + s)).collect();
                spans.sort();
                for w in spans.windows(2) {
                    assert!(w[0].1 <= w[1].0, "overlap {:x?}", w);
                }
                for (p, size, align, seed) in live {
                    assert!(check(p as *const u8, size.min(256), seed));
                    // SAFETY: live block with its layout.
                    unsafe { ALLOC.dealloc(p as *mut u8, Layout::from_size_align(size, align).unwrap()) };
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn every_power_of_two_alignment_up_to_1_gib() {
    for shift in 0..=30 {
        let align = 1usize << shift;
        for size in [1usize, 24, align, 3 * 4096 + 5, 100_000] {
            let l = Layout::from_size_align(size, align).unwrap();
            // SAFETY: non-zero size.
            let p = unsafe { ALLOC.alloc(l) };
            assert!(!p.is_null(), "size {size} align {align}");
            assert_eq!(p as usize % align, 0, "size {size} align {align}");
            fill(p, size.min(4096), 7);
            // Realloc keeps the alignment.
            // SAFETY: live block with layout `l`.
            let q = unsafe { ALLOC.realloc(p, l, size * 2 + 1) };
            assert!(!q.is_null());
            assert_eq!(q as usize % align, 0, "realloc size {size} align {align}");
            assert!(check(q, size.min(4096), 7));
            // SAFETY: live block with the new layout.
            unsafe { ALLOC.dealloc(q, Layout::from_size_align(size * 2 + 1, align).unwrap()) };
        }
    }
}

#[test]
fn simd_and_page_alignment_by_size() {
    for size in [4096usize, 5000, 10_000, 70_000, 1 << 20, (1 << 20) + 3, 5 << 20] {
        let l = Layout::from_size_align(size, 8).unwrap();
        // SAFETY: non-zero size.
        let p = unsafe { ALLOC.alloc(l) };
        assert!(!p.is_null(), "{size} bytes: allocation failed");
        assert_eq!(p as usize % 64, 0, "{size} bytes not 64-byte aligned");
        if size >= 1 << 20 {
            assert_eq!(p as usize % ALLOC.page_size(), 0, "{size} bytes not page aligned");
        }
        if size >= ALLOC.huge_page_size() {
            assert_eq!(
                p as usize % ALLOC.huge_page_size(),
                0,
                "{size} bytes not on a huge-page boundary"
            );
        }
        // SAFETY: live block.
        unsafe { ALLOC.dealloc(p, l) };
    }
}

#[test]
fn cross_thread_frees_producer_consumer() {
    let (tx, rx) = mpsc::sync_channel::<Vec<Box<[u64]>>>(64);
    let producers: Vec<_> = (0..2u64)
        .map(|t| {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for round in 0..200u64 {
                    let batch: Vec<Box<[u64]>> = (0..100u64)
                        .map(|i| {
                            let n = 1 + ((i * 7 + round) % 40) as usize;
                            vec![t << 48 | round << 16 | i; n].into_boxed_slice()
                        })
                        .collect();
                    tx.send(batch).unwrap();
                }
            })
        })
        .collect();
    drop(tx);
    let consumer = std::thread::spawn(move || {
        let mut n = 0;
        for batch in rx {
            for (i, b) in batch.into_iter().enumerate() {
                let v = b[0];
                assert_eq!(v & 0xFFFF, i as u64);
                assert!(b.iter().all(|&x| x == v), "cross-thread block corrupted");
                n += 1;
            }
        }
        n
    });
    for p in producers {
        p.join().unwrap();
    }
    assert_eq!(consumer.join().unwrap(), 2 * 200 * 100);
    // The producers' heaps were retired; their blocks, freed remotely, are
    // reused by later threads.
    let v: Vec<u64> = std::thread::spawn(|| (0..10_000).collect()).join().unwrap();
    assert_eq!(v.iter().sum::<u64>(), 49_995_000);
}

/// What [`hand_over`] saw.
struct HandOver {
    /// A's blocks, freed by B.
    a_blocks: Vec<usize>,
    /// B's own allocations after freeing them.
    b_blocks: Vec<usize>,
    /// `2 * n` blocks A allocated (and held) while B was still alive, then
    /// `2 * n` more after B exited (twice as many: A's pages may hold fresh
    /// blocks of their own first).
    a_again_alive: Vec<usize>,
    a_again_after_exit: Vec<usize>,
}

/// Thread A allocates `n` blocks of `size` bytes and hands them to thread B
/// (a thread with a heap of its own), which frees them all while A waits
/// (so A cannot collect them), then runs `after_free` (its own
/// allocations, returned as addresses). A then allocates again, while B is
/// alive and after B exited.
/// Held by the tests that expect a thread's freed pages to stay where they
/// are (the hand-overs) and by the one that trims: a trim is process-wide,
/// so a heap that takes a slow path after another test's trim gives its
/// free pages back, and its next blocks may come from elsewhere.
static TRIM_EXCLUSIVE: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn trim_exclusive() -> std::sync::MutexGuard<'static, ()> {
    TRIM_EXCLUSIVE.lock().unwrap_or_else(|e| e.into_inner())
}

fn hand_over(n: usize, size: usize, after_free: fn(usize, usize) -> Vec<usize>) -> HandOver {
    let _exclusive = trim_exclusive();
    let layout = Layout::from_size_align(size, 8).unwrap();
    let (to_b, from_a) = mpsc::channel::<Vec<usize>>();
    let (b_to_a, a_from_b) = mpsc::channel::<Vec<usize>>();
    let (a_done, b_wait) = mpsc::channel::<()>();
    let (b_gone, a_wait) = mpsc::channel::<()>();
    // SAFETY: a valid layout; A frees the blocks at the end.
    let allocate_twice =
        move || -> Vec<usize> { (0..2 * n).map(|_| unsafe { ALLOC.alloc(layout) } as usize).collect() };
    let a = std::thread::spawn(move || {
        let a_blocks: Vec<usize> = (0..n)
            .map(|i| {
                // SAFETY: a valid layout; the block is checked and freed by B.
                let p = unsafe { ALLOC.alloc(layout) };
                assert!(!p.is_null());
                fill(p, size, i as u64);
                p as usize
            })
            .collect();
        to_b.send(a_blocks.clone()).unwrap();
        let b_blocks = a_from_b.recv().unwrap(); // B freed them
        let a_again_alive = allocate_twice();
        a_done.send(()).unwrap();
        a_wait.recv().unwrap(); // B exited
        let a_again_after_exit = allocate_twice();
        for &p in a_again_alive.iter().chain(&a_again_after_exit) {
            // SAFETY: allocated above with `layout`, freed once.
            unsafe { ALLOC.dealloc(p as *mut u8, layout) };
        }
        HandOver {
            a_blocks,
            b_blocks,
            a_again_alive,
            a_again_after_exit,
        }
    });
    let b = std::thread::spawn(move || {
        // A first allocation gives B its heap.
        let own = std::hint::black_box(Box::new([0u64; 4]));
        let blocks = from_a.recv().unwrap();
        for (i, &p) in blocks.iter().enumerate() {
            assert!(check(p as *const u8, size, i as u64), "block damaged in transit");
            // SAFETY: A's block, handed over to us.
            unsafe { ALLOC.dealloc(p as *mut u8, layout) };
        }
        drop(own);
        b_to_a.send(after_free(n, size)).unwrap();
        b_wait.recv().unwrap();
    });
    b.join().unwrap();
    b_gone.send(()).unwrap();
    a.join().unwrap()
}

/// Allocates `n` blocks of `size`, checks they hold their own contents
/// (no overlap), frees them; returns their addresses.
fn allocate_and_free(n: usize, size: usize) -> Vec<usize> {
    let layout = Layout::from_size_align(size, 8).unwrap();
    // SAFETY: (all calls) a valid layout; each block is freed once.
    unsafe {
        let ps: Vec<*mut u8> = (0..n).map(|_| ALLOC.alloc(layout)).collect();
        for (i, &p) in ps.iter().enumerate() {
            assert!(!p.is_null());
            fill(p, size, 1000 + i as u64);
        }
        for (i, &p) in ps.iter().enumerate() {
            assert!(check(p, size, 1000 + i as u64), "blocks overlap");
            ALLOC.dealloc(p, layout);
        }
        ps.into_iter().map(|p| p as usize).collect()
    }
}

fn common_count(a: &[usize], b: &[usize]) -> usize {
    let a: std::collections::HashSet<_> = a.iter().collect();
    b.iter().filter(|p| a.contains(p)).count()
}

#[test]
fn a_consumer_reuses_line_sized_blocks_it_freed_for_a_waiting_producer() {
    // 256 blocks of 192 bytes (whole cache lines): B keeps what it freed
    // (A is waiting and could not reuse them) and allocates them itself.
    let h = hand_over(256, 192, allocate_and_free);
    let reused = common_count(&h.a_blocks, &h.b_blocks);
    if cfg!(feature = "hardened") {
        // Hardened mode follows every block through its own page.
        assert_eq!(reused, 0);
        return;
    }
    assert!(reused >= 192, "the consumer reused only {reused} of 256 freed blocks");
}

#[test]
fn blocks_that_share_cache_lines_are_never_reused_by_another_thread() {
    // 48-byte blocks share lines with their neighbours: B must hand them
    // back to A rather than write next to A's other blocks.
    let h = hand_over(256, 48, allocate_and_free);
    assert_eq!(
        common_count(&h.a_blocks, &h.b_blocks),
        0,
        "another thread got a block of A's lines"
    );
    let back = common_count(&h.a_blocks, &h.a_again_alive);
    assert_eq!(back, 256, "the owner got back only {back} of 256 blocks");
}

#[test]
fn a_consumer_that_never_allocates_keeps_little_and_nothing_after_exit() {
    // B frees 4096 of A's 192-byte blocks (768 KiB) and never allocates
    // that size: while alive it keeps at most 64 KiB (341 blocks) of them,
    // after exit none.
    let h = hand_over(4096, 192, |_, _| Vec::new());
    let alive = common_count(&h.a_blocks, &h.a_again_alive);
    assert!(alive >= 4096 - 341, "the owner got back only {alive} of 4096 blocks");
    assert!(
        alive < 4096 || cfg!(feature = "hardened"),
        "the consumer kept none (nothing to hand back at exit)"
    );
    let after = common_count(&h.a_blocks, &h.a_again_after_exit);
    assert_eq!(
        alive + after,
        4096,
        "blocks kept by an exited thread were not handed back"
    );
}

#[test]
fn absurd_requests_return_null_and_failed_realloc_keeps_the_block() {
    // SAFETY: (all calls) layouts are valid; null results are checked.
    unsafe {
        let huge = Layout::from_size_align(isize::MAX as usize - 4096, 8).unwrap();
        assert!(ALLOC.alloc(huge).is_null());
        assert!(ALLOC.alloc_zeroed(huge).is_null());
        let huge_align = Layout::from_size_align(8, 1 << 62).unwrap();
        assert!(ALLOC.alloc(huge_align).is_null());
        let l = Layout::from_size_align(100, 8).unwrap();
        let p = ALLOC.alloc(l);
        fill(p, 100, 3);
        let q = ALLOC.realloc(p, l, isize::MAX as usize - 4096);
        assert!(q.is_null());
        assert!(check(p, 100, 3), "failed realloc damaged the old block");
        let big = Layout::from_size_align(1 << 20, 8).unwrap();
        let b = ALLOC.alloc(big);
        fill(b, 4096, 5);
        assert!(ALLOC.realloc(b, big, isize::MAX as usize - (1 << 21)).is_null());
        assert!(check(b, 4096, 5));
        ALLOC.dealloc(b, big);
        ALLOC.dealloc(p, l);
    }
    // Rust reports the null through handle_alloc_error; try_reserve shows it
    // as an error value instead of a crash.
    let mut v: Vec<u8> = Vec::new();
    assert!(v.try_reserve(isize::MAX as usize - 10).is_err());
}

#[test]
fn large_realloc_grows_and_shrinks_keeping_contents() {
    let mut v: Vec<u64> = Vec::new();
    for i in 0..(1u64 << 22) {
        v.push(i);
    }
    assert!(v.iter().enumerate().all(|(i, &x)| x == i as u64));
    v.truncate(1000);
    v.shrink_to_fit();
    assert_eq!(v.iter().sum::<u64>(), 499_500);
}

#[test]
fn alloc_zeroed_is_zero_for_fresh_and_recycled_memory() {
    for size in [16usize, 100, 4000, 60_000, 200_000, 3 << 20] {
        let l = Layout::from_size_align(size, 16).unwrap();
        for _ in 0..3 {
            // SAFETY: non-zero size; the block is freed below.
            unsafe {
                let p = ALLOC.alloc_zeroed(l);
                assert!(!p.is_null());
                assert!(
                    std::slice::from_raw_parts(p, size).iter().all(|&b| b == 0),
                    "size {size}"
                );
                std::ptr::write_bytes(p, 0xAB, size);
                ALLOC.dealloc(p, l);
            }
        }
    }
}

/// Runs in a child process whose address space is limited to 4 GiB (see
/// `works_with_limited_address_space`); does nothing otherwise.
#[test]
fn limited_child() {
    if std::env::var_os("NALLOC_LIMITED_CHILD").is_none() {
        return;
    }
    let small: Vec<Box<[u64; 4]>> = (0..100_000).map(|i| Box::new([i; 4])).collect();
    let large = vec![7u8; 256 << 20];
    let secret = ALLOC.witness_scope(|| vec![1u8; 4096]);
    assert_eq!(small[99_999][3], 99_999);
    assert_eq!(large[123_456], 7);
    assert_eq!(secret[4095], 1);
}

/// Under `ulimit -v` (or valgrind) the 1 TiB segment reservation and the
/// 64 GiB witness reservation are refused: nalloc must reserve less and work.
#[cfg(target_os = "linux")]
#[test]
fn works_with_limited_address_space() {
    use std::os::unix::process::CommandExt;
    let mut cmd = common::this_test_binary();
    cmd.args(["--exact", "limited_child", "--nocapture", "--test-threads=1"])
        .env("NALLOC_LIMITED_CHILD", "1");
    // SAFETY: setrlimit is async-signal-safe and touches no shared state.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 4 << 30,
                rlim_max: 4 << 30,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "child failed: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 passed"));
}

/// The event counters of `stats()` move when what they count happens: a
/// thread freeing another thread's blocks hands them over in batches (and
/// the owner collects them), a fresh large block is mapped and the pool's
/// lock taken, a trim unmaps. Deltas only: other tests run meanwhile.
#[test]
fn event_counters_move_with_remote_frees_maps_and_locks() {
    let _exclusive = trim_exclusive();
    let before = ALLOC.stats().events;
    // 48-byte blocks do not fill whole cache lines, so the freeing thread
    // never keeps them: every one is handed back to its owner.
    let n = 4096;
    let layout = Layout::from_size_align(48, 16).unwrap();
    let blocks: Vec<usize> = (0..n)
        // SAFETY: non-zero size.
        .map(|_| unsafe { ALLOC.alloc(layout) } as usize)
        .collect();
    assert!(blocks.iter().all(|&p| p != 0));
    std::thread::spawn(move || {
        // A heap of its own first (a thread without one frees block by block).
        let own = std::hint::black_box(vec![1u8; 100]);
        for p in blocks {
            // SAFETY: live blocks of this layout, freed once.
            unsafe { ALLOC.dealloc(p as *mut u8, layout) };
        }
        drop(own);
    })
    .join()
    .unwrap();
    // Allocate again: the refill collects what the other thread handed back.
    let again: Vec<usize> = (0..n)
        // SAFETY: non-zero size.
        .map(|_| unsafe { ALLOC.alloc(layout) } as usize)
        .collect();
    let after_remote = ALLOC.stats().events;
    assert!(after_remote.remote_batches > before.remote_batches, "{after_remote:?}");
    assert!(
        after_remote.remote_blocks >= before.remote_blocks + n as u64,
        "{after_remote:?}"
    );
    assert!(after_remote.remote_atomics >= after_remote.remote_batches - before.remote_batches);
    assert!(
        after_remote.remote_collects > before.remote_collects,
        "{after_remote:?}"
    );
    assert!(
        after_remote.remote_collected > before.remote_collected,
        "{after_remote:?}"
    );
    for p in again {
        // SAFETY: live blocks of this layout, freed once.
        unsafe { ALLOC.dealloc(p as *mut u8, layout) };
    }

    // A large block of an odd size, after a trim emptied the warm pool,
    // is a fresh mapping (span allocations take the pool's lock).
    ALLOC.trim();
    let big = Layout::from_size_align(37 << 20, 64).unwrap();
    let e0 = ALLOC.stats().events;
    // SAFETY: non-zero size.
    let p = unsafe { ALLOC.alloc(big) };
    assert!(!p.is_null());
    // SAFETY: freshly allocated, `big.size()` bytes.
    unsafe { p.write_bytes(1, big.size()) };
    // SAFETY: the live block of `big`.
    unsafe { ALLOC.dealloc(p, big) };
    ALLOC.trim();
    let e1 = ALLOC.stats().events;
    assert!(e1.os_map > e0.os_map, "{e0:?} {e1:?}");
    assert!(e1.os_unmap + e1.os_purge > e0.os_unmap + e0.os_purge, "{e0:?} {e1:?}");
    assert!(e1.lock_acquisitions > e0.lock_acquisitions, "{e0:?} {e1:?}");
    assert!(e1.lock_contended <= e1.lock_acquisitions);
}
