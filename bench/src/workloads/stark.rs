//! A STARK prover (Winterfell 0.13, the prover of
//! `examples/stark_fibonacci.rs`): the trace of `2^n` steps of a
//! Fibonacci-like map from two secret starting values, proved (low-degree
//! extensions, Merkle commitments, FRI) and verified, several times in one
//! process; a wrong public result must be rejected.

use std::time::Instant;

use nalloc_examples::stark::{self, Felt, FibProver};

use super::{label, ms, standard, timed, Ctx};
use crate::result::WorkloadOutput;

/// Entry point: phases `setup` (the prover's options), `cold` (first
/// proof: trace, prove, verify) and `warm` (median of the rest). Quick:
/// 2^16 steps x 4; full: 2^18 x 5.
pub fn run(ctx: &Ctx) -> Result<WorkloadOutput, String> {
    let steps = 1usize << ctx.size(6, 16, 18);
    let proofs = ctx.size(2, 4, 5);
    let (prover, setup_ms) = timed(FibProver::new);
    let mut times = Vec::with_capacity(proofs);
    for i in 0..proofs {
        let t = Instant::now();
        let witness = label("witness");
        let trace = stark::trace(Felt::new(3 + i as u128), Felt::new(5 + 7 * i as u128), steps);
        drop(witness);
        let proving = label("prove");
        stark::prove_and_check(&prover, trace).map_err(|e| format!("proof {i}: {e}"))?;
        drop(proving);
        times.push(ms(t.elapsed()));
    }
    let mut out = WorkloadOutput::default();
    standard(&mut out, setup_ms, &times);
    Ok(out)
}
