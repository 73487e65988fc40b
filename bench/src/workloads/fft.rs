//! `fft`: arkworks BN254 scalar-field FFTs, the core of polynomial-IOP provers.
//!
//! Each repetition does an FFT + IFFT round trip over a radix-2 domain (the
//! result must equal the input) and a polynomial product `p * q` of two
//! half-size polynomials (checked at a random point).

use std::time::Instant;

use ark_bn254::Fr;
use ark_ff::UniformRand;
use ark_poly::univariate::DensePolynomial;
use ark_poly::{DenseUVPolynomial, EvaluationDomain, Polynomial, Radix2EvaluationDomain};

use super::{label, ms, standard, Ctx};
use crate::result::WorkloadOutput;
use crate::rng::XorShift;

/// One repetition: FFT + IFFT round trip and a polynomial product, verified.
pub fn fft_round(
    domain: &Radix2EvaluationDomain<Fr>,
    coeffs: &[Fr],
    p: &DensePolynomial<Fr>,
    q: &DensePolynomial<Fr>,
    point: Fr,
) -> Result<(), String> {
    let fft = label("fft");
    let evals = domain.fft(coeffs);
    drop(fft);
    let ifft = label("ifft");
    let back = domain.ifft(&evals);
    drop(ifft);
    drop(evals);
    if back != coeffs {
        return Err("fft: IFFT(FFT(x)) != x".into());
    }
    drop(back);
    let _mul = label("mul");
    let pq = p * q;
    if pq.degree() != p.degree() + q.degree() {
        return Err("fft: product has the wrong degree".into());
    }
    if pq.evaluate(&point) != p.evaluate(&point) * q.evaluate(&point) {
        return Err("fft: (p*q)(r) != p(r)*q(r)".into());
    }
    Ok(())
}

/// Entry point: phases `setup` (random inputs), `cold` (first repetition),
/// `warm` (median of the rest).
pub fn run(ctx: &Ctx) -> Result<WorkloadOutput, String> {
    let log_n = ctx.size(8, 20, 22);
    let reps = ctx.size(2, 3, 4);
    let n = 1usize << log_n;
    let mut out = WorkloadOutput::default();

    let t = Instant::now();
    let setup = label("setup");
    let mut rng = XorShift::new(0xff7);
    let domain = Radix2EvaluationDomain::<Fr>::new(n).ok_or("fft: no domain of that size")?;
    let coeffs: Vec<Fr> = (0..n).map(|_| Fr::rand(&mut rng)).collect();
    let half = n / 2;
    let p = DensePolynomial::from_coefficients_vec(coeffs[..half].to_vec());
    let q = DensePolynomial::from_coefficients_vec(coeffs[half..].to_vec());
    let point = Fr::rand(&mut rng);
    drop(setup);
    let setup_ms = ms(t.elapsed());

    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t = Instant::now();
        fft_round(&domain, &coeffs, &p, &q, point)?;
        times.push(ms(t.elapsed()));
    }
    standard(&mut out, setup_ms, &times);
    Ok(out)
}
