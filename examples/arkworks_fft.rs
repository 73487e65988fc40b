//! arkworks FFTs (BN254 `Fr`, `ark-poly` radix-2 domain) on polynomial
//! memory, with a scratch arena per round.
//!
//! Each round is what a prover's commit phase does: take a polynomial's
//! coefficients, evaluate them on a domain (FFT), combine with a random
//! challenge, interpolate back (inverse FFT). The coefficient and evaluation
//! vectors are `std::vec::Vec`s of polynomial memory
//! (`PolynomialArena::std_vec_with_capacity`: huge-page placed, warm after the
//! first round, so later rounds take no page faults for them), handed to
//! arkworks as they are. The round's temporaries (challenge powers) go to a
//! scratch arena reset in O(1) at the end of the round.
//!
//! Run: `cargo run --release -p nalloc-examples --example arkworks_fft [log_n] [rounds]`
//! (default 2^16 points, 4 rounds; CI runs 2^12, 2 rounds).

use ark_bn254::Fr;
use ark_ff::{Field, UniformRand};
use ark_poly::univariate::DensePolynomial;
use ark_poly::{DenseUVPolynomial, EvaluationDomain, Polynomial, Radix2EvaluationDomain};
use nalloc_examples::SplitMix;
use zk_nalloc::NAlloc;

#[global_allocator]
static ALLOC: NAlloc = NAlloc::new();

fn main() {
    let mut args = std::env::args().skip(1).map(|s| s.parse::<usize>().expect("a number"));
    let log_n = args.next().unwrap_or(16);
    let rounds = args.next().unwrap_or(4);
    let n = 1usize << log_n;
    let domain = Radix2EvaluationDomain::<Fr>::new(n).expect("a radix-2 domain of that size");
    let mut rng = SplitMix(2024);
    let mut scratch = ALLOC.scratch();
    let mut first_addr = None;
    let mut faults = Vec::new();

    for round in 0..rounds {
        let faults_before = minor_faults();
        // Coefficients in polynomial memory, as a std Vec arkworks accepts.
        let mut coeffs: Vec<Fr> = ALLOC
            .polynomial()
            .std_vec_with_capacity(n)
            .expect("NAlloc is the global allocator");
        coeffs.extend((0..n).map(|_| Fr::rand(&mut rng)));
        let poly = DensePolynomial::from_coefficients_vec(coeffs);
        let addr = poly.coeffs.as_ptr() as usize;
        // The huge page is the kernel's PMD size (2 MiB with 4 KiB pages,
        // 32 MiB with 16 KiB, 512 MiB with 64 KiB), not a constant.
        let huge = ALLOC.huge_page_size();
        if n * 32 >= huge {
            assert_eq!(addr % huge, 0, "huge-page placement");
        }
        first_addr.get_or_insert(addr);

        // Evaluations: the FFT works in place on another polynomial-memory vector.
        let mut evals: Vec<Fr> = ALLOC.polynomial().std_vec_with_capacity(n).unwrap();
        evals.extend_from_slice(&poly.coeffs);
        domain.fft_in_place(&mut evals);
        let z = domain.element(3);
        assert_eq!(evals[3], poly.evaluate(&z), "FFT agrees with direct evaluation");

        // The round's temporaries: scratch memory, gone in O(1) at the scope's end.
        let challenge = Fr::rand(&mut rng);
        let check = scratch.scope(|s| {
            let powers = s.alloc_slice_fill_with(64, |_| Fr::ONE);
            for i in 1..powers.len() {
                powers[i] = powers[i - 1] * challenge;
            }
            // Scale the evaluations by 1 + challenge, using the powers.
            let factor = Fr::ONE + powers[1];
            for e in evals.iter_mut() {
                *e *= factor;
            }
            factor
        });

        // Inverse FFT: back to coefficients, which must be the input scaled.
        domain.ifft_in_place(&mut evals);
        for (i, (a, b)) in poly.coeffs.iter().zip(&evals).enumerate().step_by(n / 16) {
            assert_eq!(*a * check, *b, "round {round}: coefficient {i} after fft/ifft");
        }
        faults.push(minor_faults() - faults_before);
        drop((poly, evals)); // back to the warm pool for the next round
    }
    let s = ALLOC.stats();
    println!(
        "arkworks fft: {rounds} rounds of 2^{log_n} BN254 points, fft/ifft verified; minor faults per round: {faults:?}; polynomial memory peak {} MiB",
        s.polynomial_peak >> 20
    );
}

/// Minor page faults of this process so far (`/proc/self/stat`; 0 where
/// there is none).
fn minor_faults() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Field 10 (minflt), counted after the parenthesised command name.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(7))
        .and_then(|f| f.parse().ok())
        .unwrap_or(0)
}
