//! `cache-scratch`: passive false-sharing test (after Hoard's cache-scratch).
//!
//! The main thread allocates one small object per thread, back to back, and
//! hands them out. Each thread frees its object and then, repeatedly,
//! allocates a small object and writes to it many times. An allocator that
//! recycles the freed objects across threads can give two threads memory on
//! the same cache line, and the write loop slows down dramatically.

use std::time::Instant;

use super::{join, ms, Ctx};
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

/// Entry point: phase `write-loop` (wall time of the threaded write loops).
pub fn run(ctx: &Ctx) -> Result<WorkloadOutput, String> {
    let iterations = ctx.pick(4_000, 10_000);
    let repetitions = ctx.pick(20_000, 40_000);
    let handed: Vec<Block> = (0..ctx.threads).map(|i| Block::new(OBJ_SIZE, i as u64)).collect();
    let t = Instant::now();
    std::thread::scope(|s| {
        let handles: Vec<_> = handed
            .into_iter()
            .enumerate()
            .map(|(i, b)| s.spawn(move || hammer(b, iterations, repetitions, i as u64)))
            .collect();
        handles.into_iter().try_for_each(join)
    })?;
    let mut out = WorkloadOutput::default();
    out.phase("write-loop", ms(t.elapsed()));
    Ok(out)
}
