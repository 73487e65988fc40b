//! `realloc`: a `Vec<u64>` grown one `push` at a time (exercising the
//! allocator's `realloc` growth path up to hundreds of MiB), verified, freed.

use std::time::Instant;

use super::{ms, standard, Ctx};
use crate::result::WorkloadOutput;

/// Entry point: phases `setup` (nothing to prepare but the list of round
/// times: near 0), `cold` (first growth) and `warm` (median of the rest).
pub fn run(ctx: &Ctx) -> Result<WorkloadOutput, String> {
    let len: usize = 1 << ctx.size(10, 24, 26);
    let reps = ctx.size(2, 5, 5);
    let t = Instant::now();
    let mut times = Vec::with_capacity(reps);
    let setup_ms = ms(t.elapsed());
    for rep in 0..reps {
        let seed = 0xABCD_0000 ^ rep as u64;
        let t = Instant::now();
        let mut v: Vec<u64> = Vec::new();
        for i in 0..len as u64 {
            v.push(std::hint::black_box(i ^ seed));
        }
        let bad = v.iter().enumerate().position(|(i, &x)| x != i as u64 ^ seed);
        drop(v);
        times.push(ms(t.elapsed()));
        if let Some(i) = bad {
            return Err(format!("realloc: content mismatch at element {i}"));
        }
    }
    let mut out = WorkloadOutput::default();
    standard(&mut out, setup_ms, &times);
    Ok(out)
}
