//! Field elements as secrets (features `ark-ff`, `pasta`, `plonky3`,
//! `bytemuck`): a `SecretVec` of real field elements, grown and dropped,
//! leaves no copy of them behind. Every buffer it ever had is read back
//! through `/proc/self/mem` (`common::peek`; `ReadProcessMemory` on
//! Windows), as a debugger would see it.
//!
//! Run: `cargo test -p zk-nalloc --features ark-ff,pasta,plonky3,bytemuck --test field_secrets`.
#![cfg(any(target_os = "linux", windows))]
#![cfg(any(feature = "ark-ff", feature = "pasta", feature = "plonky3", feature = "bytemuck"))]

use zk_nalloc::{NAlloc, SecretVec, Zeroable};

mod common;
use common::peek;

#[global_allocator]
static ALLOC: NAlloc = NAlloc::new();

/// Pushes `n` elements made by `make` one by one (so the vector grows many
/// times), checks them, drops the vector, and asserts that every buffer it
/// ever used reads back as zeros. Buffers stay below 64 KiB, so they are
/// small witness blocks whose chunks stay mapped and readable.
fn grown_and_dropped_leaves_no_copy<T: Zeroable + PartialEq + core::fmt::Debug>(n: u64, make: impl Fn(u64) -> T) {
    let size = core::mem::size_of::<T>();
    let mut v = SecretVec::<T>::new(ALLOC.witness());
    // (address, bytes in use) of every buffer the vector let go of.
    let mut buffers: Vec<(usize, usize)> = Vec::new();
    for i in 0..n {
        let (before, len) = (v.as_ptr() as usize, v.len());
        assert!(v.push(make(i)));
        if before != 0 && v.as_ptr() as usize != before {
            buffers.push((before, len * size));
        }
    }
    assert!(buffers.len() >= 5, "the vector must have grown several times");
    for i in 0..n {
        assert_eq!(v[i as usize], make(i));
    }
    // The test is not vacuous: what peek reads at the live buffer is the
    // elements' bytes, and many of them are not zero.
    let (live, live_len) = (v.as_ptr() as usize, v.len() * size);
    assert!(live_len < 64 << 10);
    let bytes = peek(live, live_len).expect("live witness memory is readable");
    // SAFETY: the vector's `len` initialised elements span `live_len` bytes;
    // these field types have no padding (integer limbs).
    let own = unsafe { core::slice::from_raw_parts(v.as_ptr().cast::<u8>(), live_len) };
    assert_eq!(bytes, own);
    assert!(bytes.iter().filter(|&&b| b != 0).count() > live_len / 4);
    drop(v);
    buffers.push((live, live_len));
    for (addr, len) in buffers {
        let bytes = peek(addr, len).expect("small witness chunks stay mapped");
        // A freed block's first word may hold its (encoded) free-list link.
        let left = bytes[16.min(len)..].iter().filter(|&&b| b != 0).count();
        assert_eq!(
            left, 0,
            "{left} non-zero bytes left in a freed buffer of {len} bytes at {addr:#x}"
        );
    }
}

#[cfg(feature = "ark-ff")]
#[test]
fn arkworks_bn254_fr() {
    use ark_bn254::Fr;
    // -(i + 1) = p - i - 1: all four limbs are non-zero.
    grown_and_dropped_leaves_no_copy(1000, |i| -Fr::from(i + 1));
}

#[cfg(feature = "ark-ff")]
#[test]
fn arkworks_bn254_fq() {
    use ark_bn254::Fq;
    grown_and_dropped_leaves_no_copy(1000, |i| -Fq::from(i + 1));
}

#[cfg(feature = "pasta")]
#[test]
fn pasta_fp_and_fq() {
    grown_and_dropped_leaves_no_copy(1000, |i| -pasta_curves::Fp::from(i + 1));
    grown_and_dropped_leaves_no_copy(1000, |i| -pasta_curves::Fq::from(i + 1));
}

#[cfg(feature = "plonky3")]
#[test]
fn plonky3_fields() {
    use p3_baby_bear::BabyBear;
    use p3_goldilocks::Goldilocks;
    use p3_koala_bear::KoalaBear;
    use p3_mersenne_31::Mersenne31;
    // Large residues, so that every byte of the representation is used.
    grown_and_dropped_leaves_no_copy(4000, |i| BabyBear::new(0x7000_0000 - i as u32));
    grown_and_dropped_leaves_no_copy(4000, |i| KoalaBear::new(0x7000_0000 - i as u32));
    grown_and_dropped_leaves_no_copy(4000, |i| Goldilocks::new(u64::MAX / 3 - i));
    grown_and_dropped_leaves_no_copy(4000, |i| Mersenne31::new(0x7000_0000 - i as u32));
}

#[cfg(feature = "bytemuck")]
#[test]
fn any_bytemuck_zeroable_type() {
    use zk_nalloc::Bytemuck;

    #[derive(Clone, Copy, PartialEq, Debug)]
    #[repr(C)]
    struct Share {
        x: u64,
        y: [u32; 2],
    }
    // SAFETY: all fields are integers, so all-zero bytes are a valid Share.
    unsafe impl bytemuck::Zeroable for Share {}

    grown_and_dropped_leaves_no_copy(2000, |i| {
        Bytemuck(Share {
            x: u64::MAX - i,
            y: [0xdead_beef, i as u32 | 0x0101_0101],
        })
    });
}
