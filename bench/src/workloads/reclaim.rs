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

use super::{ms, timed, Ctx};
use crate::result::WorkloadOutput;

/// `sparse-zeroed`.
pub fn sparse_zeroed(ctx: &Ctx) -> Result<WorkloadOutput, String> {
    let bytes = ctx.pick(100usize << 20, 256 << 20);
    let rounds = ctx.pick(20, 40);
    // Default alignment, so that glibc is asked through `calloc` (the Rust
    // standard library memsets over-aligned zeroed blocks itself).
    let layout = Layout::from_size_align(bytes, 16).map_err(|e| e.to_string())?;
    let mut out = WorkloadOutput::default();
    let mut times = Vec::with_capacity(rounds);
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
    out.phase("first", times[0]);
    out.phase("rest", times[1..].iter().sum());
    Ok(out)
}

/// `orphans`.
pub fn orphans(ctx: &Ctx) -> Result<WorkloadOutput, String> {
    let per_thread = ctx.pick(1usize << 20, 4 << 20);
    let threads = 4;
    let mut out = WorkloadOutput::default();
    let (blocks, t) = timed(|| {
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
    out.phase("threads", t);
    // The threads have exited: their heaps hold the blocks.
    let ((), t) = timed(|| {
        for (t, v) in blocks.into_iter().enumerate() {
            for (i, b) in v.into_iter().enumerate() {
                assert_eq!(b[7], (t * per_thread + i) as u64, "block contents lost");
            }
        }
    });
    out.phase("free", t);
    let (trimmed, t) = timed(|| trim(ctx));
    if trimmed {
        out.phase("trim", t);
    } else {
        out.absent("trim", "no trim call for this allocator (it purges on its own)");
    }
    let start = std::time::Instant::now();
    let again: Vec<Box<[u64; 8]>> = (0..threads * per_thread).map(|i| Box::new([i as u64; 8])).collect();
    if again.iter().enumerate().any(|(i, b)| b[3] != i as u64) {
        return Err("block contents lost".into());
    }
    drop(again);
    out.phase("reuse", ms(start.elapsed()));
    Ok(out)
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
