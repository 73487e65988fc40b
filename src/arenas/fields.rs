//! [`Zeroable`] for the field types of prover crates (optional features).
//!
//! A prover's secrets are field elements, and the orphan rule stops a user
//! from implementing our trait for another crate's type, so the impls live
//! here, each behind the feature named after its crate. Every impl rests on
//! the same two facts, checked against each crate's source: the type is
//! `Copy` (no `Drop`), and the all-zero bit pattern is a valid value — the
//! field's zero, as these types keep Montgomery or plain residues, where
//! zero is stored as zero.
//!
//! For any other type there is [`Bytemuck`], a wrapper that accepts every
//! `T: bytemuck::Zeroable`. A blanket `impl<T: bytemuck::Zeroable> Zeroable
//! for T` is not possible: it would overlap the integer impls and any impl a
//! foreign crate's type might later get.

#[cfg(any(feature = "ark-ff", feature = "pasta", feature = "plonky3"))]
use crate::arenas::secret::Zeroable;

// SAFETY: `Fp<P, N>` is a `BigInt<N>` (`[u64; N]`) and a `PhantomData`:
// every bit pattern is a valid value of the type, and with arkworks'
// Montgomery backend (the one every curve in arkworks uses) all-zero limbs
// are exactly `Fp::ZERO`. It is `Copy`.
#[cfg(feature = "ark-ff")]
#[cfg_attr(docsrs, doc(cfg(feature = "ark-ff")))]
unsafe impl<P: ark_ff::FpConfig<N>, const N: usize> Zeroable for ark_ff::Fp<P, N> {}

// SAFETY: pasta's `Fp` and `Fq` are `#[repr(transparent)]` over `[u64; 4]`
// in Montgomery form; zero is `[0; 4]`. Both are `Copy`.
#[cfg(feature = "pasta")]
#[cfg_attr(docsrs, doc(cfg(feature = "pasta")))]
unsafe impl Zeroable for pasta_curves::Fp {}
// SAFETY: as for `pasta_curves::Fp` above.
#[cfg(feature = "pasta")]
#[cfg_attr(docsrs, doc(cfg(feature = "pasta")))]
unsafe impl Zeroable for pasta_curves::Fq {}

// SAFETY: `BabyBear` is `MontyField31<BabyBearParameters>`,
// `#[repr(transparent)]` over a `u32` holding the Montgomery form, where
// zero is 0 (its derived `Default` is that zero). `Copy`.
#[cfg(feature = "plonky3")]
#[cfg_attr(docsrs, doc(cfg(feature = "plonky3")))]
unsafe impl Zeroable for p3_baby_bear::BabyBear {}
// SAFETY: as for `BabyBear`: a `MontyField31` with other parameters.
#[cfg(feature = "plonky3")]
#[cfg_attr(docsrs, doc(cfg(feature = "plonky3")))]
unsafe impl Zeroable for p3_koala_bear::KoalaBear {}
// SAFETY: `Goldilocks` is `#[repr(transparent)]` over a `u64` residue (not
// necessarily reduced); 0 is zero. `Copy`.
#[cfg(feature = "plonky3")]
#[cfg_attr(docsrs, doc(cfg(feature = "plonky3")))]
unsafe impl Zeroable for p3_goldilocks::Goldilocks {}
// SAFETY: `Mersenne31` is `#[repr(transparent)]` over a `u32` residue that
// must fit in 31 bits; 0 does, and is zero. `Copy`.
#[cfg(feature = "plonky3")]
#[cfg_attr(docsrs, doc(cfg(feature = "plonky3")))]
unsafe impl Zeroable for p3_mersenne_31::Mersenne31 {}

/// Any `T: bytemuck::Zeroable` as a secret: `SecretVec<Bytemuck<T>>`.
///
/// `#[repr(transparent)]`, so a `[Bytemuck<T>]` has the layout of a `[T]`;
/// [`Bytemuck::slice`] views it as one.
///
/// ```
/// use zk_nalloc::{Bytemuck, SecretVec, WitnessArena};
///
/// #[derive(Clone, Copy)]
/// #[repr(C)]
/// struct Share { x: u64, y: [u32; 2] }
/// // SAFETY: all fields are integers: all-zero is a valid `Share`.
/// unsafe impl bytemuck::Zeroable for Share {}
///
/// let arena = WitnessArena::new();
/// let mut v = SecretVec::new(&arena);
/// assert!(v.push(Bytemuck(Share { x: 7, y: [1, 2] })));
/// assert_eq!(Bytemuck::slice(&v)[0].x, 7);
/// ```
#[cfg(feature = "bytemuck")]
#[cfg_attr(docsrs, doc(cfg(feature = "bytemuck")))]
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
#[repr(transparent)]
pub struct Bytemuck<T>(pub T);

#[cfg(feature = "bytemuck")]
impl<T> Bytemuck<T> {
    /// Views a slice of wrapped values (a `SecretVec`'s contents) as the
    /// plain values.
    pub fn slice(s: &[Bytemuck<T>]) -> &[T] {
        // SAFETY: `Bytemuck<T>` is `repr(transparent)` over `T`: same size,
        // alignment and validity, so the slice reinterprets exactly.
        unsafe { core::slice::from_raw_parts(s.as_ptr().cast::<T>(), s.len()) }
    }

    /// Views a mutable slice of wrapped values as the plain values.
    pub fn slice_mut(s: &mut [Bytemuck<T>]) -> &mut [T] {
        // SAFETY: as in `slice`; the borrow is unique.
        unsafe { core::slice::from_raw_parts_mut(s.as_mut_ptr().cast::<T>(), s.len()) }
    }
}

// Redacted, as SecretVec's own Debug: a wrapped secret must not leak
// through a log line.
#[cfg(feature = "bytemuck")]
impl<T> core::fmt::Debug for Bytemuck<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Bytemuck(<redacted>)")
    }
}

// SAFETY: `T: bytemuck::Zeroable` promises that all-zero bytes are a valid
// `T` (that trait's own contract), `Bytemuck<T>` is `repr(transparent)`
// over `T`, and `T: Copy` rules out `Drop`.
#[cfg(feature = "bytemuck")]
unsafe impl<T: bytemuck::Zeroable + Copy> crate::arenas::secret::Zeroable for Bytemuck<T> {}
