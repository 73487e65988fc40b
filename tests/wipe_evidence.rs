//! Evidence that secrets are wiped where the kernel would hide a missing
//! wipe: a large witness block's chunk is decommitted right after its wipe,
//! and decommitted memory reads as zero whether or not it was wiped. With
//! the OS layer told to keep decommitted memory as it is (`fault` hooks,
//! `--features fault-injection`, run by CI), the bytes the wipe left can be
//! read back. Removing the wipe from `drop_chunk` makes this test fail.
#![cfg(all(feature = "fault-injection", any(target_os = "linux", windows)))]

use zk_nalloc::{fault, raw, NAlloc, WitnessArena};

mod common;
use common::peek;

#[global_allocator]
static ALLOC: NAlloc = NAlloc::new();

#[test]
fn large_secrets_are_wiped_before_their_chunk_is_released() {
    fault::keep_decommitted(true);
    // Through an arena handle, through a witness scope and through the C
    // front: every large witness block ends in `drop_chunk`.
    let w = WitnessArena::new();
    let p = w.alloc(300_000, 16);
    assert!(!p.is_null());
    // SAFETY: 300,000 live bytes.
    unsafe { p.write_bytes(0xAA, 300_000) };
    // SAFETY: allocated above with this size and alignment.
    unsafe { w.dealloc(p, 300_000, 16) };
    let bytes = peek(p as usize, 300_000).expect("kept chunks stay readable");
    assert!(
        bytes.iter().all(|&b| b != 0xAA),
        "a large secret survived its chunk's release"
    );

    let v = ALLOC.witness_scope(|| vec![0xBBu8; 500_000]);
    let at = v.as_ptr() as usize;
    drop(v);
    let bytes = peek(at, 500_000).expect("kept chunks stay readable");
    assert!(bytes.iter().all(|&b| b != 0xBB), "a scoped large secret survived");

    let c = raw::witness_alloc(400_000);
    assert!(!c.is_null());
    // SAFETY: 400,000 live bytes.
    unsafe { c.write_bytes(0xCC, 400_000) };
    // SAFETY: a live witness block of the C front.
    unsafe { raw::witness_free(c) };
    let bytes = peek(c as usize, 400_000).expect("kept chunks stay readable");
    assert!(bytes.iter().all(|&b| b != 0xCC), "a C witness block survived");
    fault::keep_decommitted(false);
}
