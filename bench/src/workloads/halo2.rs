//! `halo2`: real Halo2 proofs (zcash `halo2_proofs` 0.3, Pasta curves, IPA
//! commitments).
//!
//! The circuit is a chain of alternating multiplications and additions,
//! `c_i = a_i * b_i` / `c_i = a_i + b_i` with `a_{i+1} = c_i` enforced by copy
//! constraints, filling almost all `2^k` rows; the final `c` is the public
//! input. Every proof is verified, and the first one is also checked to be
//! *rejected* against a wrong public input.

use std::time::Instant;

use halo2_proofs::circuit::{AssignedCell, Layouter, SimpleFloorPlanner, Value};
use halo2_proofs::pasta::{EqAffine, Fp};
use halo2_proofs::plonk::{
    create_proof, keygen_pk, keygen_vk, verify_proof, Advice, Circuit, Column, ConstraintSystem, Error, Instance,
    ProvingKey, Selector, SingleVerifier,
};
use halo2_proofs::poly::commitment::Params;
use halo2_proofs::poly::Rotation;
use halo2_proofs::transcript::{Blake2bRead, Blake2bWrite, Challenge255};

use super::{label, ms, standard, Ctx};
use crate::result::WorkloadOutput;
use crate::rng::XorShift;

/// Rows left unused at the bottom of the table (blinding rows + margin).
const RESERVED_ROWS: usize = 16;

/// Column and selector layout of [`ChainCircuit`].
#[derive(Clone, Debug)]
pub struct ChainConfig {
    a: Column<Advice>,
    b: Column<Advice>,
    c: Column<Advice>,
    s_mul: Selector,
    s_add: Selector,
    instance: Column<Instance>,
}

/// A chain of `rows` alternating mul/add steps starting from a private `x`.
#[derive(Clone, Debug)]
pub struct ChainCircuit {
    x: Value<Fp>,
    ys: Vec<Value<Fp>>,
}

impl ChainCircuit {
    /// A circuit with `rows` steps and deterministic pseudo-random witnesses.
    /// Returns the circuit and its public output.
    pub fn random(rows: usize, seed: u64) -> (Self, Fp) {
        let mut rng = XorShift::new(seed);
        let x = Fp::from(rng.next_u64());
        let ys: Vec<Fp> = (0..rows).map(|_| Fp::from(rng.next_u64())).collect();
        let mut out = x;
        for (i, y) in ys.iter().enumerate() {
            out = if i % 2 == 0 { out * y } else { out + y };
        }
        let circuit = Self {
            x: Value::known(x),
            ys: ys.into_iter().map(Value::known).collect(),
        };
        (circuit, out)
    }

    /// The largest chain that fits in a `2^k`-row table.
    pub fn rows_for(k: u32) -> usize {
        (1usize << k) - RESERVED_ROWS
    }
}

impl Circuit<Fp> for ChainCircuit {
    type Config = ChainConfig;
    type FloorPlanner = SimpleFloorPlanner;

    fn without_witnesses(&self) -> Self {
        Self {
            x: Value::unknown(),
            ys: vec![Value::unknown(); self.ys.len()],
        }
    }

    fn configure(meta: &mut ConstraintSystem<Fp>) -> ChainConfig {
        let a = meta.advice_column();
        let b = meta.advice_column();
        let c = meta.advice_column();
        let instance = meta.instance_column();
        meta.enable_equality(a);
        meta.enable_equality(c);
        meta.enable_equality(instance);
        let s_mul = meta.selector();
        let s_add = meta.selector();
        meta.create_gate("mul", |meta| {
            let s = meta.query_selector(s_mul);
            let a = meta.query_advice(a, Rotation::cur());
            let b = meta.query_advice(b, Rotation::cur());
            let c = meta.query_advice(c, Rotation::cur());
            vec![s * (a * b - c)]
        });
        meta.create_gate("add", |meta| {
            let s = meta.query_selector(s_add);
            let a = meta.query_advice(a, Rotation::cur());
            let b = meta.query_advice(b, Rotation::cur());
            let c = meta.query_advice(c, Rotation::cur());
            vec![s * (a + b - c)]
        });
        ChainConfig {
            a,
            b,
            c,
            s_mul,
            s_add,
            instance,
        }
    }

    fn synthesize(&self, config: ChainConfig, mut layouter: impl Layouter<Fp>) -> Result<(), Error> {
        let out = layouter.assign_region(
            || "chain",
            |mut region| {
                let mut prev: Option<AssignedCell<Fp, Fp>> = None;
                let mut acc = self.x;
                for (row, &y) in self.ys.iter().enumerate() {
                    let is_mul = row % 2 == 0;
                    if is_mul {
                        config.s_mul.enable(&mut region, row)?;
                    } else {
                        config.s_add.enable(&mut region, row)?;
                    }
                    match &prev {
                        None => {
                            region.assign_advice(|| "a", config.a, row, || self.x)?;
                        }
                        Some(p) => {
                            p.copy_advice(|| "a", &mut region, config.a, row)?;
                        }
                    }
                    region.assign_advice(|| "b", config.b, row, || y)?;
                    acc = if is_mul { acc * y } else { acc + y };
                    prev = Some(region.assign_advice(|| "c", config.c, row, || acc)?);
                }
                prev.ok_or(Error::Synthesis)
            },
        )?;
        layouter.constrain_instance(out.cell(), config.instance, 0)
    }
}

/// Creates one proof for `circuit` with public output `out`.
pub fn prove(
    params: &Params<EqAffine>,
    pk: &ProvingKey<EqAffine>,
    circuit: ChainCircuit,
    out: Fp,
    seed: u64,
) -> Result<Vec<u8>, String> {
    let mut transcript = Blake2bWrite::<_, _, Challenge255<_>>::init(vec![]);
    create_proof(
        params,
        pk,
        &[circuit],
        &[&[&[out]]],
        XorShift::new(seed),
        &mut transcript,
    )
    .map_err(|e| format!("halo2 create_proof failed: {e:?}"))?;
    Ok(transcript.finalize())
}

/// Verifies `proof` against public output `out`.
pub fn verify(params: &Params<EqAffine>, pk: &ProvingKey<EqAffine>, proof: &[u8], out: Fp) -> Result<(), Error> {
    let strategy = SingleVerifier::new(params);
    let mut transcript = Blake2bRead::<_, _, Challenge255<_>>::init(proof);
    verify_proof(params, pk.get_vk(), strategy, &[&[&[out]]], &mut transcript)
}

/// Generates keys for a `2^k` chain circuit, then creates and verifies
/// `proofs` proofs. Returns per-stage times in ms: `(setup, keygen, per-proof)`.
pub fn prove_and_verify(k: u32, proofs: usize) -> Result<(f64, f64, Vec<f64>), String> {
    let rows = ChainCircuit::rows_for(k);
    let t = Instant::now();
    let setup = label("setup");
    let params: Params<EqAffine> = Params::new(k);
    drop(setup);
    let setup_ms = ms(t.elapsed());

    let t = Instant::now();
    let keygen = label("keygen");
    let (shape, _) = ChainCircuit::random(rows, 0);
    let empty = shape.without_witnesses();
    let vk = keygen_vk(&params, &empty).map_err(|e| format!("halo2 keygen_vk failed: {e:?}"))?;
    let pk = keygen_pk(&params, vk, &empty).map_err(|e| format!("halo2 keygen_pk failed: {e:?}"))?;
    drop(keygen);
    let keygen_ms = ms(t.elapsed());

    let mut times = Vec::with_capacity(proofs);
    let timeline = super::timeline_proofs().is_some();
    for i in 0..proofs {
        if timeline {
            super::reset_peak_rss();
        }
        let t = Instant::now();
        let witness = label("witness");
        let (circuit, out) = ChainCircuit::random(rows, 1 + i as u64);
        drop(witness);
        let proving = label("prove");
        let proof = prove(&params, &pk, circuit, out, 100 + i as u64)?;
        drop(proving);
        let verifying = label("verify");
        verify(&params, &pk, &proof, out).map_err(|e| format!("halo2 proof {i} did not verify: {e:?}"))?;
        drop(verifying);
        times.push(ms(t.elapsed()));
        if timeline {
            let peak = super::peak_rss_kib().unwrap_or(0);
            println!("{}proof {i} peak_kib {peak}", super::TIMELINE_PREFIX);
        }
        if i == 0 && verify(&params, &pk, &proof, out + Fp::from(1)).is_ok() {
            return Err("halo2 proof verified against a wrong public input".into());
        }
    }
    Ok((setup_ms, keygen_ms, times))
}

/// Entry point: phases `setup` (IPA params and keygen), `cold` (first
/// witness+prove+verify), `warm` (median of the rest), and `keygen` (the
/// vk + pk part of `setup`).
pub fn run(ctx: &Ctx) -> Result<WorkloadOutput, String> {
    let k = ctx.size(6, 11, 14);
    let proofs = super::timeline_proofs().unwrap_or(ctx.size(2, 4, 6));
    let (params, keygen, times) = prove_and_verify(k, proofs)?;
    let mut out = WorkloadOutput::default();
    standard(&mut out, params + keygen, &times);
    out.phase("keygen", keygen);
    Ok(out)
}
