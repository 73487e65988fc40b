//! A STARK prover (Winterfell 0.13) on nalloc.
//!
//! The prover knows two secret starting values `a_0`, `b_0` and proves that
//! `n` steps of the Fibonacci-like map `(a, b) -> (b, a + b)` end at a
//! public value, without revealing the start. The execution trace (the
//! witness) is built inside `ALLOC.witness_scope`, so its columns are
//! witness memory: locked, out of core dumps, wiped when the prover frees
//! them. The low-degree extensions, Merkle trees and FRI layers that
//! `prove` builds run outside the scope, on nalloc's ordinary and
//! polynomial memory (large vectors: warm spans reused from proof to proof).
//!
//! Run: `cargo run --release -p nalloc-examples --example stark_fibonacci [log2(n)] [proofs]`
//! (default 2^14 steps, 3 proofs; CI runs 2^10 steps, 2 proofs).

use nalloc_examples::stark::{self, Felt, FibProver};
use zk_nalloc::NAlloc;

#[global_allocator]
static ALLOC: NAlloc = NAlloc::new();

fn main() {
    let mut args = std::env::args().skip(1);
    let log_steps: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(14);
    let proofs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(3);
    let steps = 1usize << log_steps;
    let prover = FibProver::new();
    for i in 0..proofs {
        let (a0, b0) = (Felt::new(3 + i as u128), Felt::new(5 + 7 * i as u128));
        // The witness (the whole trace) in witness memory.
        let witness = ALLOC.witness_scope(|| stark::trace(a0, b0, steps));
        let size = stark::prove_and_check(&prover, witness).unwrap_or_else(|e| panic!("proof {i}: {e}"));
        println!("proof {i}: 2^{log_steps} steps, {size} bytes, verified (a wrong result is rejected)");
    }
    let s = ALLOC.stats();
    // The trace lived in the scope arena (witness_scope's).
    assert!(
        s.witness_scope.peak >= 2 * 16 * steps,
        "the trace was not witness memory"
    );
    println!(
        "trace in witness memory: peak {} KiB, locked {}; peak mapped {} MiB",
        s.witness_scope.peak >> 10,
        s.witness_scope.locked,
        s.peak_mapped >> 20
    );
}
