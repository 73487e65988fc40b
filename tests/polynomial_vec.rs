//! Polynomial memory as a `std::vec::Vec`, with NAlloc as the global
//! allocator: handed to arkworks' `DensePolynomial::from_coefficients_vec`
//! as is. (The refusal without NAlloc as the global allocator is a unit
//! test in src/arenas/polynomial.rs, whose test binary runs on the system
//! allocator.)

use ark_bn254::Fr;
use ark_poly::polynomial::univariate::DensePolynomial;
use ark_poly::{DenseUVPolynomial, Polynomial};
use zk_nalloc::NAlloc;

#[global_allocator]
static ALLOC: NAlloc = NAlloc::new();

#[test]
fn dense_polynomial_in_polynomial_memory() {
    let n = 1 << 16; // 2 MiB of 32-byte coefficients
    let mut coeffs: Vec<Fr> = ALLOC.polynomial().std_vec_with_capacity(n).unwrap();
    let addr = coeffs.as_ptr() as usize;
    let huge = ALLOC.huge_page_size();
    if n * 32 >= huge {
        assert_eq!(addr % huge, 0, "huge-page placement from one huge page");
    }
    coeffs.extend((0..n as u64).map(|i| Fr::from(i + 1)));
    assert_eq!(coeffs.as_ptr() as usize, addr, "filled in place");
    let live = ALLOC.stats().polynomial_used;
    assert!(live >= n * 32);

    let p = DensePolynomial::from_coefficients_vec(coeffs);
    assert_eq!(p.coeffs.as_ptr() as usize, addr, "arkworks keeps the vector, no copy");
    // p(1) = 1 + 2 + ... + n.
    let n64 = n as u64;
    assert_eq!(p.evaluate(&Fr::from(1u64)), Fr::from(n64 * (n64 + 1) / 2));
    drop(p);
    assert!(ALLOC.stats().polynomial_used <= live - n * 32);

    // The freed span is warm: the next vector of that size reuses it.
    let again: Vec<Fr> = ALLOC.polynomial().std_vec_with_capacity(n).unwrap();
    assert_eq!(again.as_ptr() as usize, addr, "warm reuse of the freed span");
    drop(again);

    // (In the same test: a test running beside it could take the warm span.)
    let v: Vec<u64> = ALLOC.polynomial().std_vec_with_capacity(10).unwrap();
    assert!(v.capacity() * 8 > 64 << 10, "raised to a span");
    assert_eq!(v.as_ptr() as usize % 4096, 0);
    let z: Vec<()> = ALLOC.polynomial().std_vec_with_capacity(10).unwrap();
    assert!(z.capacity() >= 10);
}
