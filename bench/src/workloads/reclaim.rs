//! Memory that must come back: zeroed blocks a program barely touches, and
//! the blocks of threads that have exited.
//!
//! * `sparse-zeroed`: `alloc_zeroed` of 100 MiB (full: 256 MiB), two bytes
//!   written, freed — repeated. An allocator that clears a recycled block
//!   with memset faults all of it in every round; the peak RSS column shows
//!   it.
//! * `orphans`: four threads each allocate 1M (full: 4M) 64-byte blocks,
//!   hand them to the main thread and exit; the main thread frees them all,
//!   calls the allocator's trim where it has one (`malloc_trim(0)` for
//!   glibc, `NAlloc::trim` for nalloc; mimalloc and jemalloc purge on their
//!   own), then allocates a new working set of the same size. Memory the
//!   exited threads' heaps kept adds to the peak RSS.

use std::alloc::{alloc_zeroed, dealloc, handle_alloc_error, Layout};

use super::{ms, standard, timed, Ctx};
use crate::result::WorkloadOutput;

/// `sparse-zeroed`: phases `setup` (the layout and the list of round
/// times: near 0), `cold` (the first round), `warm` (median of the rest)
/// and `rest` (all rounds after the first).
pub fn sparse_zeroed(ctx: &Ctx) -> Result<WorkloadOutput, String> {
    let bytes = ctx.size(1usize << 20, 100 << 20, 256 << 20);
    let rounds = ctx.size(2, 20, 40);
    let (setup, setup_ms) = timed(|| {
        // Default alignment, so that glibc is asked through `calloc` (the
        // Rust standard library memsets over-aligned zeroed blocks itself).
        let layout = Layout::from_size_align(bytes, 16).map_err(|e| e.to_string());
        (layout, Vec::with_capacity(rounds))
    });
    let (layout, mut times) = (setup.0?, setup.1);
    let mut out = WorkloadOutput::default();
    for round in 0..rounds {
        let (ok, t) = timed(|| {
            // SAFETY: a valid layout of non-zero size.
            let p = std::hint::black_box(unsafe { alloc_zeroed(layout) });
            if p.is_null() {
                handle_alloc_error(layout);
            }
            // SAFETY: `p` has `bytes` bytes; two of them (in a page that
            // moves each round, and the last) are read, then written.
            unsafe {
                let (a, b) = (p.add(round * 4096 % bytes), p.add(bytes - 1));
                let ok = a.read_volatile() == 0 && b.read_volatile() == 0;
                a.write_volatile(1);
                b.write_volatile(2);
                dealloc(std::hint::black_box(p), layout);
                ok
            }
        });
        if !ok {
            return Err(format!("round {round}: alloc_zeroed returned a non-zero byte"));
        }
        times.push(t);
    }
    standard(&mut out, setup_ms, &times);
    out.phase("rest", times[1..].iter().sum());
    Ok(out)
}

/// `orphans`, in rounds, each the whole story (threads, free, trim, reuse):
/// phases `setup` (nothing to prepare but the list of round times: near
/// 0), `cold` (the first round), `warm` (median of the rest), and
/// `threads`, `free`, `trim` and `reuse`, each summed over the rounds.
pub fn orphans(ctx: &Ctx) -> Result<WorkloadOutput, String> {
    let per_thread = ctx.size(1usize << 10, 1 << 20, 4 << 20);
    let rounds = ctx.size(2, 3, 3);
    let (mut times, setup_ms) = timed(|| Vec::with_capacity(rounds));
    // Per-phase totals: threads, free, trim, reuse.
    let mut sums = [0.0f64; 4];
    let mut trimmed = false;
    for _ in 0..rounds {
        let start = std::time::Instant::now();
        let (phases, did_trim) = orphans_round(ctx, per_thread)?;
        times.push(ms(start.elapsed()));
        for (sum, t) in sums.iter_mut().zip(phases) {
            *sum += t;
        }
        trimmed = did_trim;
    }
    let mut out = WorkloadOutput::default();
    standard(&mut out, setup_ms, &times);
    out.phase("threads", sums[0]);
    out.phase("free", sums[1]);
    if trimmed {
        out.phase("trim", sums[2]);
    } else {
        out.absent("trim", "no trim call for this allocator (it purges on its own)");
    }
    out.phase("reuse", sums[3]);
    Ok(out)
}

/// One round of `orphans`: the times of its threads, free, trim and reuse
/// steps, and whether the allocator has a trim call.
fn orphans_round(ctx: &Ctx, per_thread: usize) -> Result<([f64; 4], bool), String> {
    let threads = 4;
    let (blocks, threads_ms) = timed(|| {
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    s.spawn(move || {
                        (0..per_thread)
                            .map(|i| Box::new([(t * per_thread + i) as u64; 8]))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join()).collect::<Result<Vec<_>, _>>()
        })
    });
    let blocks = blocks.map_err(|_| "a worker thread panicked".to_owned())?;
    // The threads have exited: their heaps hold the blocks.
    let ((), free_ms) = timed(|| {
        for (t, v) in blocks.into_iter().enumerate() {
            for (i, b) in v.into_iter().enumerate() {
                assert_eq!(b[7], (t * per_thread + i) as u64, "block contents lost");
            }
        }
    });
    let (trimmed, trim_ms) = timed(|| trim(ctx));
    let start = std::time::Instant::now();
    let again: Vec<Box<[u64; 8]>> = (0..threads * per_thread).map(|i| Box::new([i as u64; 8])).collect();
    if again.iter().enumerate().any(|(i, b)| b[3] != i as u64) {
        return Err("block contents lost".into());
    }
    drop(again);
    Ok(([threads_ms, free_ms, trim_ms, ms(start.elapsed())], trimmed))
}

/// The allocator's own "give memory back" call, where the worker has one.
fn trim(ctx: &Ctx) -> bool {
    if ctx.is_nalloc() {
        // Process-wide: any handle trims the global engine.
        zk_nalloc::NAlloc::new().trim();
        true
    } else if ctx.allocator == "glibc" {
        // SAFETY: malloc_trim has no preconditions.
        unsafe { libc::malloc_trim(0) };
        true
    } else {
        false
    }
}
