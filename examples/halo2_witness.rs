//! Halo2 (zcash `halo2_proofs` 0.3, Pasta curves) with the witness in
//! witness memory.
//!
//! The prover knows secret shares `s_1..s_n` and a secret `x`, and proves
//! that `out = x^3 + x + 5 + sum(s_i)` for a public `out`. The secrets live
//! in a `SecretVec<Fp>` / `SecretBox<Fp>` (feature `pasta`): locked, out of
//! core dumps, wiped when dropped. Synthesis runs inside
//! `ALLOC.witness_scope`, so the copies halo2 makes of the witness while it
//! assigns cells (its column vectors) are witness memory too and are wiped
//! when freed; the FFTs and commitments of `create_proof` run outside it,
//! on polynomial memory.
//!
//! Run: `cargo run --release -p nalloc-examples --example halo2_witness [k]`
//! (default k = 8; CI runs k = 6).

use halo2_proofs::circuit::{Layouter, SimpleFloorPlanner, Value};
use halo2_proofs::pasta::{EqAffine, Fp};
use halo2_proofs::plonk::{
    create_proof, keygen_pk, keygen_vk, verify_proof, Advice, Circuit, Column, ConstraintSystem, Error, Instance,
    Selector, SingleVerifier,
};
use halo2_proofs::poly::commitment::Params;
use halo2_proofs::poly::Rotation;
use halo2_proofs::transcript::{Blake2bRead, Blake2bWrite, Challenge255};
use nalloc_examples::SplitMix;
use zk_nalloc::{NAlloc, SecretBox, SecretVec};

#[global_allocator]
static ALLOC: NAlloc = NAlloc::new();

#[derive(Clone, Debug)]
struct Config {
    acc: Column<Advice>,
    v: Column<Advice>,
    next: Column<Advice>,
    s_add: Selector,
    s_cube: Selector,
    out: Column<Instance>,
}

/// `x` and the shares as halo2 values (copies made inside the witness
/// scope; `Value::unknown` for key generation).
#[derive(Clone, Default)]
struct SecretSum {
    x: Value<Fp>,
    shares: Vec<Value<Fp>>,
}

impl Circuit<Fp> for SecretSum {
    type Config = Config;
    type FloorPlanner = SimpleFloorPlanner;

    fn without_witnesses(&self) -> Self {
        Self {
            x: Value::unknown(),
            shares: vec![Value::unknown(); self.shares.len()],
        }
    }

    fn configure(meta: &mut ConstraintSystem<Fp>) -> Config {
        let (acc, v, next) = (meta.advice_column(), meta.advice_column(), meta.advice_column());
        let out = meta.instance_column();
        meta.enable_equality(acc);
        meta.enable_equality(next);
        meta.enable_equality(out);
        let (s_add, s_cube) = (meta.selector(), meta.selector());
        // next = acc + v
        meta.create_gate("add", |meta| {
            let s = meta.query_selector(s_add);
            let acc = meta.query_advice(acc, Rotation::cur());
            let v = meta.query_advice(v, Rotation::cur());
            let next = meta.query_advice(next, Rotation::cur());
            vec![s * (acc + v - next)]
        });
        // next = v^3 + v + 5 (acc unused)
        meta.create_gate("cube", |meta| {
            let s = meta.query_selector(s_cube);
            let v = meta.query_advice(v, Rotation::cur());
            let next = meta.query_advice(next, Rotation::cur());
            let five = halo2_proofs::plonk::Expression::Constant(Fp::from(5));
            vec![s * (v.clone() * v.clone() * v.clone() + v + five - next)]
        });
        Config {
            acc,
            v,
            next,
            s_add,
            s_cube,
            out,
        }
    }

    fn synthesize(&self, c: Config, mut layouter: impl Layouter<Fp>) -> Result<(), Error> {
        let last = layouter.assign_region(
            || "secret sum",
            |mut region| {
                c.s_cube.enable(&mut region, 0)?;
                region.assign_advice(|| "x", c.v, 0, || self.x)?;
                let mut total = self.x.map(|x| x * x * x + x + Fp::from(5));
                let mut prev = region.assign_advice(|| "x^3+x+5", c.next, 0, || total)?;
                for (i, s) in self.shares.iter().enumerate() {
                    let row = i + 1;
                    c.s_add.enable(&mut region, row)?;
                    prev.copy_advice(|| "acc", &mut region, c.acc, row)?;
                    region.assign_advice(|| "share", c.v, row, || *s)?;
                    total = total + *s;
                    prev = region.assign_advice(|| "sum", c.next, row, || total)?;
                }
                Ok(prev)
            },
        )?;
        layouter.constrain_instance(last.cell(), c.out, 0)
    }
}

fn main() {
    let k: u32 = std::env::args().nth(1).map_or(8, |s| s.parse().expect("k: a number"));
    let n = (1usize << k) - 16; // rows left for halo2's blinding factors
    let mut rng = SplitMix(7);
    let w = ALLOC.witness();

    // The secrets, made in witness memory and never on the heap elsewhere.
    let x = SecretBox::new_with(w, |x: &mut Fp| *x = Fp::from(rand_core::RngCore::next_u64(&mut rng)))
        .expect("witness memory");
    let mut shares = SecretVec::<Fp>::with_capacity(w, n).expect("witness memory");
    for _ in 0..n {
        assert!(shares.push(Fp::from(rand_core::RngCore::next_u64(&mut rng))));
    }
    let out = shares.iter().fold(*x * *x * *x + *x + Fp::from(5), |a, s| a + s);

    let params: Params<EqAffine> = Params::new(k);
    let shape = SecretSum {
        x: Value::unknown(),
        shares: vec![Value::unknown(); n],
    };
    let vk = keygen_vk(&params, &shape).expect("keygen_vk");
    let pk = keygen_pk(&params, vk, &shape).expect("keygen_pk");

    // halo2 takes its witness as owned `Value`s: make those copies inside a
    // witness scope, so they are witness memory and wiped when freed.
    let circuit = ALLOC.witness_scope(|| SecretSum {
        x: Value::known(*x),
        shares: shares.iter().map(|s| Value::known(*s)).collect(),
    });
    let before = ALLOC.stats().witness_used;
    let mut transcript = Blake2bWrite::<_, _, Challenge255<_>>::init(vec![]);
    create_proof(&params, &pk, &[circuit], &[&[&[out]]], SplitMix(99), &mut transcript).expect("create_proof");
    let proof = transcript.finalize();

    let verify = |public: Fp| {
        let mut t = Blake2bRead::<_, _, Challenge255<_>>::init(&proof[..]);
        verify_proof(
            &params,
            pk.get_vk(),
            SingleVerifier::new(&params),
            &[&[&[public]]],
            &mut t,
        )
    };
    assert!(verify(out).is_ok(), "the proof verifies");
    assert!(verify(out + Fp::from(1)).is_err(), "and not against another output");

    let stats = ALLOC.stats();
    assert!(
        before > n * 32,
        "the secrets and halo2's copies of them are witness memory"
    );
    println!(
        "halo2 k={k}: {n} secret shares, proof {} bytes, verified; witness memory in use before proving: {} KiB (locked: {})",
        proof.len(),
        before >> 10,
        stats.witness.locked
    );
    drop((x, shares)); // wiped
}
