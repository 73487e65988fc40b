//! A small STARK (Winterfell 0.13): the prover knows two secret starting
//! values `a_0`, `b_0` and proves that `n` steps of the Fibonacci-like map
//! `(a, b) -> (b, a + b)` end at a public value. Shared by
//! `examples/stark_fibonacci.rs` and the bench's `stark` workload.

use winterfell::crypto::hashers::Blake3_256;
use winterfell::crypto::{DefaultRandomCoin, MerkleTree};
use winterfell::math::fields::f128::BaseElement;
use winterfell::math::{FieldElement, ToElements};
use winterfell::matrix::ColMatrix;
use winterfell::{
    AcceptableOptions, Air, AirContext, Assertion, AuxRandElements, BatchingMethod, CompositionPoly,
    CompositionPolyTrace, ConstraintCompositionCoefficients, DefaultConstraintCommitment, DefaultConstraintEvaluator,
    DefaultTraceLde, EvaluationFrame, FieldExtension, PartitionOptions, Proof, ProofOptions, Prover, StarkDomain,
    Trace, TraceInfo, TracePolyTable, TraceTable, TransitionConstraintDegree,
};

/// The field the trace lives in (Winterfell's 128-bit prime field).
pub use winterfell::math::fields::f128::BaseElement as Felt;

/// The hash of the commitments.
pub type Hash = Blake3_256<BaseElement>;
/// The vector commitment.
pub type Commit = MerkleTree<Hash>;

/// The public statement: the last value of the sequence.
#[derive(Clone, Copy)]
pub struct Statement {
    /// The sequence's last value.
    pub result: BaseElement,
}

impl ToElements<BaseElement> for Statement {
    fn to_elements(&self) -> Vec<BaseElement> {
        vec![self.result]
    }
}

/// Two columns `(a, b)`; each row is one step of the map.
pub struct FibAir {
    context: AirContext<BaseElement>,
    result: BaseElement,
}

impl Air for FibAir {
    type BaseField = BaseElement;
    type PublicInputs = Statement;

    fn new(trace_info: TraceInfo, statement: Statement, options: ProofOptions) -> Self {
        // Both transition constraints are linear (degree 1); one assertion:
        // the last `b` is the public result.
        let degrees = vec![TransitionConstraintDegree::new(1), TransitionConstraintDegree::new(1)];
        Self {
            context: AirContext::new(trace_info, degrees, 1, options),
            result: statement.result,
        }
    }

    fn context(&self) -> &AirContext<BaseElement> {
        &self.context
    }

    fn evaluate_transition<E: FieldElement<BaseField = BaseElement>>(
        &self,
        frame: &EvaluationFrame<E>,
        _periodic_values: &[E],
        result: &mut [E],
    ) {
        let (now, next) = (frame.current(), frame.next());
        // a' = b, b' = a + b
        result[0] = next[0] - now[1];
        result[1] = next[1] - (now[0] + now[1]);
    }

    fn get_assertions(&self) -> Vec<Assertion<BaseElement>> {
        let last = self.trace_length() - 1;
        vec![Assertion::single(1, last, self.result)]
    }
}

/// The prover of [`FibAir`].
pub struct FibProver {
    options: ProofOptions,
}

impl Prover for FibProver {
    type BaseField = BaseElement;
    type Air = FibAir;
    type Trace = TraceTable<BaseElement>;
    type HashFn = Hash;
    type VC = Commit;
    type RandomCoin = DefaultRandomCoin<Hash>;
    type TraceLde<E: FieldElement<BaseField = BaseElement>> = DefaultTraceLde<E, Hash, Commit>;
    type ConstraintEvaluator<'a, E: FieldElement<BaseField = BaseElement>> = DefaultConstraintEvaluator<'a, FibAir, E>;
    type ConstraintCommitment<E: FieldElement<BaseField = BaseElement>> = DefaultConstraintCommitment<E, Hash, Commit>;

    fn get_pub_inputs(&self, trace: &Self::Trace) -> Statement {
        Statement {
            result: trace.get(1, trace.length() - 1),
        }
    }

    fn options(&self) -> &ProofOptions {
        &self.options
    }

    fn new_trace_lde<E: FieldElement<BaseField = BaseElement>>(
        &self,
        trace_info: &TraceInfo,
        main_trace: &ColMatrix<BaseElement>,
        domain: &StarkDomain<BaseElement>,
        partition_options: PartitionOptions,
    ) -> (Self::TraceLde<E>, TracePolyTable<E>) {
        DefaultTraceLde::new(trace_info, main_trace, domain, partition_options)
    }

    fn new_evaluator<'a, E: FieldElement<BaseField = BaseElement>>(
        &self,
        air: &'a FibAir,
        aux_rand_elements: Option<AuxRandElements<E>>,
        composition_coefficients: ConstraintCompositionCoefficients<E>,
    ) -> Self::ConstraintEvaluator<'a, E> {
        DefaultConstraintEvaluator::new(air, aux_rand_elements, composition_coefficients)
    }

    fn build_constraint_commitment<E: FieldElement<BaseField = BaseElement>>(
        &self,
        composition_poly_trace: CompositionPolyTrace<E>,
        num_constraint_composition_columns: usize,
        domain: &StarkDomain<BaseElement>,
        partition_options: PartitionOptions,
    ) -> (Self::ConstraintCommitment<E>, CompositionPoly<E>) {
        DefaultConstraintCommitment::new(
            composition_poly_trace,
            num_constraint_composition_columns,
            domain,
            partition_options,
        )
    }
}

/// The execution trace of `steps` steps from the secret start `(a0, b0)`.
pub fn trace(a0: BaseElement, b0: BaseElement, steps: usize) -> TraceTable<BaseElement> {
    let mut t = TraceTable::new(2, steps);
    t.fill(
        |row| {
            row[0] = a0;
            row[1] = b0;
        },
        |_, row| {
            let (a, b) = (row[0], row[1]);
            row[0] = b;
            row[1] = a + b;
        },
    );
    t
}

/// True if `proof` shows that the sequence ends at `result`.
pub fn verify(proof: Proof, result: BaseElement) -> bool {
    let acceptable = AcceptableOptions::MinConjecturedSecurity(63);
    winterfell::verify::<FibAir, Hash, DefaultRandomCoin<Hash>, Commit>(proof, Statement { result }, &acceptable)
        .is_ok()
}

impl FibProver {
    /// 28 queries at blowup 8 (3 bits each) and 16 bits of grinding: about
    /// 100 bits of conjectured security, in the 128-bit base field.
    pub fn new() -> Self {
        Self {
            options: ProofOptions::new(
                28,
                8,
                16,
                FieldExtension::None,
                8,
                31,
                BatchingMethod::Linear,
                BatchingMethod::Linear,
            ),
        }
    }
}

impl Default for FibProver {
    fn default() -> Self {
        Self::new()
    }
}

/// Proves that `trace` ends at its last `b`, checks that the proof verifies
/// and that a wrong result is rejected; returns the proof's size in bytes.
pub fn prove_and_check(prover: &FibProver, trace: TraceTable<BaseElement>) -> Result<usize, String> {
    let result = trace.get(1, trace.length() - 1);
    let proof = prover.prove(trace).map_err(|e| format!("stark prover failed: {e}"))?;
    let size = proof.to_bytes().len();
    if !verify(proof.clone(), result) {
        return Err("stark proof did not verify".into());
    }
    if verify(proof, result + BaseElement::ONE) {
        return Err("stark proof verified a wrong result".into());
    }
    Ok(size)
}
