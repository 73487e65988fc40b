//! `larson`: server-style churn (after Larson & Krishnan, "Memory allocation
//! for long-running server applications").
//!
//! Each of `threads` slot arrays holds live blocks. In every round, a fresh
//! set of threads is spawned and each takes over a *different* array than in
//! the previous round (arrays rotate), so blocks allocated by one thread are
//! freed by another. A thread repeatedly frees a random slot (checking the
//! block's tags) and refills it with a random-sized block.

use std::time::Instant;

use super::{join, ms, standard, Ctx};
use crate::block::Block;
use crate::result::WorkloadOutput;
use crate::rng::XorShift;

const MIN_SIZE: usize = 16;
const MAX_SIZE: usize = 1024;

fn churn(slots: &mut [Block], ops: usize, seed: u64) -> Result<(), String> {
    let mut rng = XorShift::new(seed);
    for op in 0..ops {
        let i = rng.below(slots.len());
        let fresh = Block::new(rng.range(MIN_SIZE, MAX_SIZE), seed ^ op as u64);
        std::mem::replace(&mut slots[i], fresh).free_checked()?;
    }
    Ok(())
}

/// Entry point: phases `setup` (the initial population of the slot
/// arrays), `cold` (the first churn round), `warm` (median of the other
/// rounds), `churn` (all rounds) and `drain`.
pub fn run(ctx: &Ctx) -> Result<WorkloadOutput, String> {
    let threads = ctx.threads;
    let slots_per_thread = ctx.size(50, 2000, 5000);
    let rounds = ctx.size(2, 20, 60);
    let ops_per_round = ctx.size(1000, 400_000, 1_000_000);
    let mut out = WorkloadOutput::default();

    let t = Instant::now();
    let mut rng = XorShift::new(0x1a750);
    let mut arrays: Vec<Vec<Block>> = (0..threads)
        .map(|a| {
            (0..slots_per_thread)
                .map(|i| Block::new(rng.range(MIN_SIZE, MAX_SIZE), (a * slots_per_thread + i) as u64))
                .collect()
        })
        .collect();
    let mut times = Vec::with_capacity(rounds);
    let setup_ms = ms(t.elapsed());

    for round in 0..rounds {
        let t = Instant::now();
        arrays.rotate_left(1);
        std::thread::scope(|s| {
            let handles: Vec<_> = arrays
                .iter_mut()
                .enumerate()
                .map(|(i, slots)| {
                    let seed = ((round as u64) << 32) | i as u64;
                    s.spawn(move || churn(slots, ops_per_round, seed))
                })
                .collect();
            handles.into_iter().try_for_each(join)
        })?;
        times.push(ms(t.elapsed()));
    }
    standard(&mut out, setup_ms, &times);
    out.phase("churn", times.iter().sum());

    let t = Instant::now();
    for b in arrays.into_iter().flatten() {
        b.free_checked()?;
    }
    out.phase("drain", ms(t.elapsed()));
    Ok(out)
}
