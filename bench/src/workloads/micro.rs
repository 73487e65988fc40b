//! Micro workloads: `small`, `large` and `batch`.

use std::time::Instant;

use super::{ms, standard, Ctx};
use crate::block::Block;
use crate::result::WorkloadOutput;
use crate::rng::XorShift;

/// Blocks per round in `small` and `batch`.
const BATCH: usize = 10_000;

/// `small`: 10k blocks of 16–512 B allocated, then freed (FIFO on even
/// rounds, LIFO on odd rounds), repeated. Phases: `setup` (the sizes and
/// the vector of live blocks), `cold` (first round), `warm` (median of the
/// rest), and the total `alloc` and `free` time of all rounds.
pub fn small(ctx: &Ctx) -> Result<WorkloadOutput, String> {
    let rounds = ctx.size(2, 500, 3000);
    let t = Instant::now();
    let mut rng = XorShift::new(0x5a11);
    let sizes: Vec<usize> = (0..BATCH).map(|_| rng.range(16, 512)).collect();
    let mut live: Vec<Block> = Vec::with_capacity(BATCH);
    let mut times = Vec::with_capacity(rounds);
    let setup_ms = ms(t.elapsed());
    let (mut alloc_ms, mut free_ms) = (0.0, 0.0);
    for round in 0..rounds {
        let t = Instant::now();
        // `extend` writes each `Block` straight into the vector. A `push` loop
        // built it on the stack first and copied it with 16-byte loads that
        // straddle two 8-byte stores: the load cannot be forwarded and waits
        // for every earlier store, including the stamps into the fresh block,
        // to reach the cache, so the loop measured store latency rather than
        // the allocator (perf: 75 % of the loop's samples on that load;
        // full run, medians of 3: nalloc 583 -> 478 ms, mimalloc 697 -> 551,
        // glibc 1466 -> 1451).
        live.extend(
            sizes
                .iter()
                .enumerate()
                .map(|(i, &size)| Block::new(size, (round * BATCH + i) as u64)),
        );
        let allocated = ms(t.elapsed());
        alloc_ms += allocated;
        let t = Instant::now();
        if round % 2 == 0 {
            for b in live.drain(..) {
                b.free_checked()?;
            }
        } else {
            while let Some(b) = live.pop() {
                b.free_checked()?;
            }
        }
        let freed = ms(t.elapsed());
        free_ms += freed;
        times.push(allocated + freed);
    }
    let mut out = WorkloadOutput::default();
    standard(&mut out, setup_ms, &times);
    out.phase("alloc", alloc_ms);
    out.phase("free", free_ms);
    Ok(out)
}

/// `large`: a 32 MiB (tiny: 1 MiB) `Vec<u64>` is allocated, filled,
/// verified and freed, repeated. Phases: `setup` (nothing to prepare but
/// the list of round times: near 0), `cold` (first iteration), `warm`
/// (median of the rest).
pub fn large(ctx: &Ctx) -> Result<WorkloadOutput, String> {
    let words: usize = ctx.size(1 << 20, 32 << 20, 32 << 20) >> 3;
    let iterations = ctx.size(2, 40, 200);
    let t = Instant::now();
    let mut times = Vec::with_capacity(iterations);
    let setup_ms = ms(t.elapsed());
    for it in 0..iterations {
        let seed = (it as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let t = Instant::now();
        let mut v: Vec<u64> = Vec::with_capacity(words);
        v.extend((0..words as u64).map(|i| i ^ seed));
        let bad = v.iter().enumerate().position(|(i, &x)| x != i as u64 ^ seed);
        drop(v);
        times.push(ms(t.elapsed()));
        if let Some(i) = bad {
            return Err(format!("large: content mismatch at word {i} (iteration {it})"));
        }
    }
    let mut out = WorkloadOutput::default();
    standard(&mut out, setup_ms, &times);
    Ok(out)
}

/// `batch`: 10k blocks of 32–256 B allocated then freed one by one, repeated
/// (`setup`: the sizes and the vector of live blocks; `cold`: the first
/// round; `warm`: the median of the rest; `free-each`: all rounds). For
/// nalloc, a scratch-arena variant (allocate the same batch from a
/// `ScratchArena`, then reset it in O(1)) is phase `scratch-reset`; it
/// runs after the rounds above, so it is in none of the standard figures
/// nor in the row's peak RSS.
pub fn batch(ctx: &Ctx) -> Result<WorkloadOutput, String> {
    let rounds = ctx.size(2, 500, 3000);
    let t = Instant::now();
    let mut rng = XorShift::new(0xba7c);
    let sizes: Vec<usize> = (0..BATCH).map(|_| rng.range(32, 256)).collect();
    let mut live: Vec<Block> = Vec::with_capacity(BATCH);
    let mut times = Vec::with_capacity(rounds);
    let setup_ms = ms(t.elapsed());
    for round in 0..rounds {
        let t = Instant::now();
        for (i, &size) in sizes.iter().enumerate() {
            live.push(Block::new(size, (round * BATCH + i) as u64));
        }
        for b in live.drain(..) {
            b.free_checked()?;
        }
        times.push(ms(t.elapsed()));
    }
    let mut out = WorkloadOutput::default();
    standard(&mut out, setup_ms, &times);
    out.phase("free-each", times.iter().sum());
    // The scratch arena's memory is not compared with other allocators'.
    out.common_work_done(ctx.started);

    if ctx.is_nalloc() {
        // The same batches from a scratch arena: stamp and check each block
        // like `Block` does, then one O(1) reset per round instead of 10k frees.
        let mut arena = zk_nalloc::ScratchArena::new();
        let mut blocks: Vec<(std::ptr::NonNull<u8>, usize, u64)> = Vec::with_capacity(BATCH);
        let t = Instant::now();
        for round in 0..rounds {
            for (i, &size) in sizes.iter().enumerate() {
                let layout = std::alloc::Layout::from_size_align(size, 8).map_err(|e| e.to_string())?;
                let p = arena.alloc(layout).ok_or("batch: scratch arena out of memory")?;
                let tag = (round * BATCH + i) as u64;
                // SAFETY: `p` is a fresh, 8-aligned block of `size >= 32` bytes.
                unsafe {
                    p.as_ptr().cast::<u64>().write(tag);
                    p.as_ptr().add(size - 1).write(tag as u8);
                }
                blocks.push((p, size, tag));
            }
            for (p, size, tag) in blocks.drain(..) {
                // SAFETY: the block is live until the reset below.
                let ok =
                    unsafe { p.as_ptr().cast::<u64>().read() == tag && p.as_ptr().add(size - 1).read() == tag as u8 };
                if !ok {
                    return Err(format!("batch: scratch block corrupted (round {round})"));
                }
            }
            arena.clear();
        }
        out.phase("scratch-reset", ms(t.elapsed()));
    }
    Ok(out)
}

/// `witness`: the cost of wiping secrets. Every allocator runs
/// `memset+free`: 10k secrets of 32-4096 B allocated, filled, zeroed with a
/// memset the compiler must keep, freed — what a careful user does by hand.
/// Its slices of [`WITNESS_SLICE`] rounds give the standard figures:
/// `setup` (the sizes), `cold` (the first slice, the first work in the
/// process) and `warm` (the median of the others); the row's peak RSS is
/// taken when they are done.
///
/// nalloc then runs the comparison: the same rounds again, alternating in
/// slices, in ABBA order, between `memset+free` and phase `witness` (the
/// same secrets through a `WitnessArena`, whose `dealloc` wipes). Target:
/// `witness` no slower than `memset+free`. Interleaved so that both see
/// the same machine: run one after the other, the second phase met a
/// different CPU clock and cache state, and the per-run ratio of two 1.8 s
/// phases moved by ±3 %. After the standard figures, so that the witness
/// arena's memory is not counted in a peak RSS compared with allocators
/// that do not run it.
pub fn witness(ctx: &Ctx) -> Result<WorkloadOutput, String> {
    let rounds = ctx.size(2 * WITNESS_SLICE, 200, 1000);
    let t = Instant::now();
    let mut rng = XorShift::new(0x5ec7);
    let sizes: Vec<usize> = (0..BATCH).map(|_| rng.range(32, 4096)).collect();
    let mut ptrs: Vec<*mut u8> = Vec::with_capacity(BATCH);
    let setup_ms = ms(t.elapsed());
    let mut slices = Vec::with_capacity(rounds.div_ceil(WITNESS_SLICE));
    for start in (0..rounds).step_by(WITNESS_SLICE) {
        let t = Instant::now();
        memset_rounds(&sizes, &mut ptrs, start..rounds.min(start + WITNESS_SLICE))?;
        slices.push(ms(t.elapsed()));
    }
    let mut out = WorkloadOutput::default();
    standard(&mut out, setup_ms, &slices);
    out.common_work_done(ctx.started);
    if !ctx.is_nalloc() {
        out.phase("memset+free", slices.iter().sum());
        return Ok(out);
    }
    let arena = zk_nalloc::WitnessArena::new();
    let (mut memset_ms, mut witness_ms) = (0.0, 0.0);
    for (slice, start) in (0..rounds).step_by(WITNESS_SLICE).enumerate() {
        let range = start..rounds.min(start + WITNESS_SLICE);
        let witness_first = slice % 2 == 1;
        for step in 0..2 {
            let t = Instant::now();
            if (step == 0) == witness_first {
                witness_rounds(&arena, &sizes, &mut ptrs, range.clone())?;
                witness_ms += ms(t.elapsed());
            } else {
                memset_rounds(&sizes, &mut ptrs, range.clone())?;
                memset_ms += ms(t.elapsed());
            }
        }
    }
    out.phase("memset+free", memset_ms);
    out.phase("witness", witness_ms);
    Ok(out)
}

/// Rounds per slice of `witness` (see there).
const WITNESS_SLICE: usize = 10;

/// Rounds of one `witness` phase: each round allocates every size of
/// `sizes` with `alloc`, fills the block, then checks and frees them in the
/// same order with `free`. Both phases run this same loop, so they differ
/// only in their allocator calls.
fn secret_rounds(
    sizes: &[usize],
    ptrs: &mut Vec<*mut u8>,
    rounds: std::ops::Range<usize>,
    what: &str,
    mut alloc: impl FnMut(usize) -> *mut u8,
    mut free: impl FnMut(*mut u8, usize),
) -> Result<(), String> {
    for round in rounds {
        for &size in sizes {
            let p = alloc(size);
            if p.is_null() {
                return Err(format!("witness: {what} out of memory"));
            }
            // SAFETY: `size` bytes just allocated.
            unsafe { p.write_bytes(round as u8 | 1, size) };
            ptrs.push(p);
        }
        for (p, &size) in ptrs.drain(..).zip(sizes) {
            // SAFETY: a live block of `size >= 32` bytes.
            if unsafe { p.read() } != round as u8 | 1 {
                return Err(format!("witness: {what} block corrupted"));
            }
            free(p, size);
        }
    }
    Ok(())
}

/// Rounds of `witness`'s `memset+free` phase: the global allocator plus a
/// manual wipe.
fn memset_rounds(sizes: &[usize], ptrs: &mut Vec<*mut u8>, rounds: std::ops::Range<usize>) -> Result<(), String> {
    // 32-4096 bytes at alignment 8: always a valid layout.
    let layout = |size| std::alloc::Layout::from_size_align(size, 8).expect("valid layout");
    secret_rounds(
        sizes,
        ptrs,
        rounds,
        "heap",
        // SAFETY: non-zero size.
        |size| unsafe { std::alloc::alloc(layout(size)) },
        |p, size| {
            // SAFETY: `p` is a live block of `size` bytes from `alloc`
            // above, not used after this; black_box keeps the wipe.
            unsafe {
                p.write_bytes(0, size);
                std::hint::black_box(p);
                std::alloc::dealloc(p, layout(size));
            }
        },
    )
}

/// Rounds of `witness`'s `witness` phase: a witness arena, which hands out
/// zeroed blocks and wipes them on free.
fn witness_rounds(
    arena: &zk_nalloc::WitnessArena,
    sizes: &[usize],
    ptrs: &mut Vec<*mut u8>,
    rounds: std::ops::Range<usize>,
) -> Result<(), String> {
    secret_rounds(
        sizes,
        ptrs,
        rounds,
        "witness arena",
        |size| arena.alloc(size, 8),
        // SAFETY: `p` is a live block of this arena allocated with `size`
        // bytes at alignment 8, not used after this.
        |p, size| unsafe { arena.dealloc(p, size, 8) },
    )
}
