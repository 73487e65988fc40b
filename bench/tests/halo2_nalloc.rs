//! A real Halo2 proof created and verified with `zk_nalloc::NAlloc` as the
//! global allocator of the whole test process.

use halo2_proofs::pasta::Fp;
use halo2_proofs::plonk::{keygen_pk, keygen_vk, Circuit};
use halo2_proofs::poly::commitment::Params;
use nalloc_bench::workloads::halo2::{prove, prove_and_verify, verify, ChainCircuit};

#[global_allocator]
static A: zk_nalloc::NAlloc = zk_nalloc::NAlloc::new();

/// Small enough to stay fast in debug builds.
const K: u32 = 6;

#[test]
fn halo2_proof_verifies_under_nalloc() {
    let params = Params::new(K);
    let (circuit, out) = ChainCircuit::random(ChainCircuit::rows_for(K), 42);
    let empty = circuit.without_witnesses();
    let vk = keygen_vk(&params, &empty).expect("keygen_vk");
    let pk = keygen_pk(&params, vk, &empty).expect("keygen_pk");

    let proof = prove(&params, &pk, circuit, out, 7).expect("create_proof");
    assert!(!proof.is_empty());
    assert!(verify(&params, &pk, &proof, out).is_ok(), "proof must verify");
    assert!(
        verify(&params, &pk, &proof, out + Fp::from(1)).is_err(),
        "proof must not verify against a wrong public input"
    );
    let mut tampered = proof.clone();
    let mid = tampered.len() / 2;
    tampered[mid] ^= 1;
    assert!(
        verify(&params, &pk, &tampered, out).is_err(),
        "a tampered proof must not verify"
    );

    // The allocator's statistics are readable while the prover's memory is live.
    let _stats = A.stats();
}

#[test]
fn workload_entry_point_proves_twice() {
    let (_setup, _keygen, times) = prove_and_verify(K, 2).expect("prove_and_verify");
    assert_eq!(times.len(), 2);
}
