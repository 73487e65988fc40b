//! `cache-scratch`: passive false-sharing test (after Hoard's cache-scratch).
//!
//! The main thread allocates one small object per thread, back to back, and
//! hands them out. Each thread frees its object and then, repeatedly,
//! allocates a small object and writes to it many times. An allocator that
//! recycles the freed objects across threads can give two threads memory on
//! the same cache line, and the write loop slows down dramatically.

use std::time::Instant;

use super::{join, ms, standard, Ctx};
use crate::block::Block;
use crate::result::WorkloadOutput;

const OBJ_SIZE: usize = 16;

fn hammer(given: Block, iterations: usize, repetitions: usize, id: u64) -> Result<(), String> {
    given.free_checked()?;
    for it in 0..iterations {
        let mut b = Block::new(OBJ_SIZE, 0);
        let base = (id << 48) | ((it as u64) << 24);
        for r in 0..repetitions {
            b.restamp(base | r as u64);
        }
        b.check()?;
        if b.tag() != base | (repetitions as u64 - 1) {
            return Err("cache-scratch: object lost its last write".into());
        }
    }
    Ok(())
}

/// Entry point, in rounds: each round the main thread hands fresh objects
/// to fresh threads, which run their share of the write loops. Phases
/// `setup` (the first round's handed objects), `cold` (the first round's
/// write loops), `warm` (median of the other rounds, each with its handed
/// objects) and `write-loop` (the write loops of all rounds).
pub fn run(ctx: &Ctx) -> Result<WorkloadOutput, String> {
    let rounds = ctx.size(2, 4, 5);
    // Per round: the quick and full totals as before the rounds (4000 and
    // 10000 iterations per thread).
    let iterations = ctx.size(20, 1_000, 2_000);
    let repetitions = ctx.size(100, 20_000, 40_000);
    let hand = |round: usize| -> Vec<Block> {
        (0..ctx.threads)
            .map(|i| Block::new(OBJ_SIZE, (round * ctx.threads + i) as u64))
            .collect()
    };
    let t = Instant::now();
    let mut handed = hand(0);
    let setup_ms = ms(t.elapsed());
    let (mut times, mut loops_ms) = (Vec::with_capacity(rounds), 0.0);
    for round in 0..rounds {
        let t = Instant::now();
        if round > 0 {
            handed = hand(round);
        }
        let loops = Instant::now();
        std::thread::scope(|s| {
            let handles: Vec<_> = std::mem::take(&mut handed)
                .into_iter()
                .enumerate()
                .map(|(i, b)| s.spawn(move || hammer(b, iterations, repetitions, i as u64)))
                .collect();
            handles.into_iter().try_for_each(join)
        })?;
        loops_ms += ms(loops.elapsed());
        times.push(ms(t.elapsed()));
    }
    let mut out = WorkloadOutput::default();
    standard(&mut out, setup_ms, &times);
    out.phase("write-loop", loops_ms);
    Ok(out)
}
