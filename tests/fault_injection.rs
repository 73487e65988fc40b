//! The OS refuses memory: nalloc returns null, stays consistent, leaks
//! nothing, and works again once the OS does. Needs `--features
//! fault-injection` (CI runs it); one test function so that no other test
//! consumes the injected failures.
#![cfg(feature = "fault-injection")]

use std::alloc::{GlobalAlloc, Layout};
use zk_nalloc::{fault, NAlloc, WitnessArena};

mod common;

#[global_allocator]
static ALLOC: NAlloc = NAlloc::new();

#[test]
fn refused_mappings_give_null_and_nothing_breaks() {
    let big = Layout::from_size_align(8 << 20, 8).unwrap();
    let before = ALLOC.stats();

    // A span: the next mapping fails.
    ALLOC.trim(); // no warm span may satisfy the request
    fault::fail_nth_mapping(1, 1);
    // SAFETY: valid layout; null is checked.
    let p = unsafe { ALLOC.alloc(big) };
    assert!(p.is_null(), "refused mapping must give null");
    let after = ALLOC.stats();
    assert_eq!(after.mapped, before.mapped, "a failed span leaked mapped bytes");
    assert_eq!(after.polynomial_used, before.polynomial_used);
    // SAFETY: as above.
    let p = unsafe { ALLOC.alloc(big) };
    assert!(!p.is_null(), "allocation works again once the OS does");
    // SAFETY: live block.
    unsafe {
        p.write_bytes(9, 8 << 20);
        ALLOC.dealloc(p, big);
    }

    // realloc whose remap and fallback mapping both fail keeps the block.
    let l = Layout::from_size_align(1 << 20, 8).unwrap();
    // SAFETY: valid layout.
    let p = unsafe { ALLOC.alloc(l) };
    // SAFETY: live block.
    unsafe { p.write_bytes(5, 1 << 20) };
    ALLOC.trim();
    fault::fail_nth_mapping(1, 2);
    // SAFETY: live block with layout `l`.
    let q = unsafe { ALLOC.realloc(p, l, 64 << 20) };
    assert!(q.is_null());
    // SAFETY: the old block is still live.
    assert!(unsafe { std::slice::from_raw_parts(p, 1 << 20) }
        .iter()
        .all(|&b| b == 5));
    // SAFETY: live block.
    unsafe { ALLOC.dealloc(p, l) };

    // A span built from warm pooled pieces (Linux): the kernel refuses the
    // first move, and the piece arrives in parts; refusing every move
    // leaves the pieces pooled and the span fresh. Nothing is lost either way.
    #[cfg(target_os = "linux")]
    {
        let small = Layout::from_size_align(12 << 20, 16).unwrap();
        let large = Layout::from_size_align(24 << 20, 16).unwrap();
        let pooled_piece = |seed: u8| {
            ALLOC.trim();
            // SAFETY: valid layout; filled, then freed into the pool.
            unsafe {
                let a = ALLOC.alloc(small);
                assert!(!a.is_null());
                a.write_bytes(seed, small.size());
                ALLOC.dealloc(a, small);
            }
        };
        pooled_piece(7);
        let gathered = ALLOC.stats().span_gathered_bytes;
        // Request 1 is the span's mapping, 2 the first move.
        fault::fail_nth_mapping(2, 1);
        // SAFETY: valid layout; freed below.
        let b = unsafe { ALLOC.alloc(large) };
        fault::reset();
        assert!(!b.is_null());
        assert_eq!(ALLOC.stats().span_gathered_bytes, gathered + small.size() as u64);
        let head = common::peek(b as usize, small.size()).unwrap();
        assert!(head.iter().all(|&x| x == 7), "a piece moved in parts lost bytes");
        // SAFETY: live block.
        unsafe { ALLOC.dealloc(b, large) };

        pooled_piece(8);
        let gathered = ALLOC.stats().span_gathered_bytes;
        fault::fail_nth_mapping(2, usize::MAX);
        // SAFETY: valid layout; freed below.
        let b = unsafe { ALLOC.alloc(large) };
        fault::reset();
        assert!(!b.is_null());
        assert_eq!(ALLOC.stats().span_gathered_bytes, gathered);
        assert!(
            ALLOC.stats().pool_retained >= small.size(),
            "refused pieces must go back to the pool"
        );
        let all = common::peek(b as usize, large.size()).unwrap();
        assert!(all.iter().all(|&x| x == 0), "an unbuilt span must be fresh");
        // SAFETY: live block.
        unsafe { ALLOC.dealloc(b, large) };
        ALLOC.trim();
    }

    // Small objects: a fresh thread needs a heap and a segment; refuse its
    // segment. Its allocation fails cleanly, the next one succeeds.
    let r = std::thread::spawn(|| {
        let small = Layout::from_size_align(48, 8).unwrap();
        // A size class nothing else in this binary uses, so the request
        // needs new memory whether this thread makes a heap or adopts one.
        let odd = Layout::from_size_align(40_000, 8).unwrap();
        fault::fail_nth_mapping(1, 8);
        // SAFETY: valid layout.
        let p = unsafe { ALLOC.alloc(odd) };
        fault::reset();
        // SAFETY: valid layout.
        let q = unsafe { ALLOC.alloc(odd) };
        assert!(!q.is_null());
        // SAFETY: live blocks.
        unsafe {
            q.write_bytes(1, 40_000);
            if !p.is_null() {
                ALLOC.dealloc(p, odd);
            }
            ALLOC.dealloc(q, odd);
            let s = ALLOC.alloc(small);
            assert!(!s.is_null());
            ALLOC.dealloc(s, small);
        }
        p.is_null()
    })
    .join()
    .unwrap();
    assert!(r, "a refused segment must give null");

    // Witness region: the first (64 GiB) reservation is refused, as under a
    // tight `ulimit -v` or valgrind: nalloc reserves less and carries on.
    let w = WitnessArena::new();
    fault::fail_nth_mapping(1, 1);
    let first = w.alloc(64, 8);
    assert!(!first.is_null(), "a smaller witness region must be reserved");
    // A refused chunk commit gives null; the arena keeps working.
    let big = 300_000; // a large witness block needs a chunk of its own
    fault::fail_nth_mapping(1, 1);
    assert!(w.alloc(big, 8).is_null());
    // SAFETY: allocated above.
    unsafe { w.dealloc(first, 64, 8) };
    let p = w.alloc(64, 8);
    assert!(!p.is_null());
    // SAFETY: allocated above.
    unsafe { w.dealloc(p, 64, 8) };
    assert_eq!(w.stats().used, 0);
    fault::reset();
}
