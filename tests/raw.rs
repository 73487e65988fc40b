//! The unsized (C-style) interface: free without a layout.

use zk_nalloc::{raw, NAlloc};

mod common;
use common::{check, fill};

#[global_allocator]
static ALLOC: NAlloc = NAlloc::new();

#[test]
fn malloc_free_usable_size_and_alignment() {
    for size in [0usize, 1, 16, 100, 4096, 65_536, 65_537, 1 << 20, 5 << 20] {
        for align in [1usize, 16, 64, 4096, 1 << 16, 1 << 21] {
            let p = raw::alloc(size, align, false);
            assert!(!p.is_null(), "size {size} align {align}");
            assert_eq!(p as usize % align.max(16), 0, "size {size} align {align}");
            // SAFETY: `p` is live.
            let usable = unsafe { raw::usable_size(p) };
            assert!(usable >= size, "usable {usable} < {size}");
            fill(p, size.min(10_000), size as u64);
            assert!(check(p, size.min(10_000), size as u64));
            // SAFETY: `p` is live and not used after.
            unsafe { raw::free(p) };
        }
    }
    // Zero-size blocks with large alignment point inside their own span, so
    // they are never mistaken for (or written over) a neighbour's memory.
    let blocks: Vec<*mut u8> = (0..64).map(|_| raw::alloc(0, 1 << 20, false)).collect();
    for &p in &blocks {
        // SAFETY: live blocks.
        assert_eq!(unsafe { raw::usable_size(p) }, 1);
        fill(p, 1, 9);
    }
    for p in blocks {
        // SAFETY: live blocks, freed once.
        unsafe { raw::free(p) };
    }
    // SAFETY: freeing null is a no-op.
    unsafe { raw::free(std::ptr::null_mut()) };
}

#[test]
fn zeroed_and_realloc_keep_contents() {
    let mut p = raw::alloc(10, 16, true);
    // SAFETY: 10 live bytes.
    assert!(unsafe { std::slice::from_raw_parts(p, 10) }.iter().all(|&b| b == 0));
    fill(p, 10, 1);
    for size in [20usize, 300, 70_000, 3 << 20, 9 << 20, 1000, 5] {
        // SAFETY: `p` is live.
        let q = unsafe { raw::realloc(p, size) };
        assert!(!q.is_null());
        assert!(check(q, 5, 1), "contents lost growing to {size}");
        p = q;
    }
    // SAFETY: live.
    unsafe { raw::free(p) };
    assert!(raw::alloc(usize::MAX - 8, 16, false).is_null());
    assert!(raw::alloc(16, 1 << 62, false).is_null());
}

/// A block shrunk to zero bytes in place keeps the caller's pointer inside
/// it (found by the `raw` fuzz target: a scoped 0-byte witness block
/// realloc'ed to 0 shares its size class with the resized one once the
/// canary is counted, and the shrunk header described an empty block that
/// `usable_size` then rejected as foreign).
#[test]
fn realloc_to_zero_in_place_keeps_a_valid_block() {
    for scoped in [false, true] {
        let alloc = || raw::alloc(0, 1, false);
        let p = if scoped { ALLOC.witness_scope(alloc) } else { alloc() };
        // SAFETY: a live block of the C front.
        let q = unsafe { raw::realloc(p, 0) };
        if !q.is_null() {
            // SAFETY: `q` is live (null would mean it was freed). Before the
            // fix this aborted: "malloc_usable_size(): invalid pointer".
            let u = unsafe { raw::usable_size(q) };
            assert!(u <= 16, "scoped: {scoped}: usable {u}");
            // SAFETY: as above; freed once.
            unsafe { raw::free(q) };
        }
    }
}

/// Sizes and alignments no layout can have are refused with null on both
/// header paths (plain and witness), never wrapped around or passed on.
#[test]
fn impossible_layouts_are_refused() {
    let max = isize::MAX as usize;
    for (size, align) in [
        (usize::MAX, 16),
        (max, 16),
        (max - 16, 16),
        (max - 31, 16),
        (max - 8192, 16),
        (max - (3 << 20), 1 << 21),
        (max - 4096, 4096),
        (max - (1 << 20), 1 << 21),
        (16, 1 << 63),
        (max, 1 << 62),
        (1 << 62, 1 << 62),
    ] {
        assert!(
            raw::alloc(size, align, false).is_null(),
            "size {size:#x} align {align:#x}"
        );
        assert!(
            raw::alloc(size, align, true).is_null(),
            "zeroed: size {size:#x} align {align:#x}"
        );
    }
    for align in [0, 3, 24, 48, 4095, max] {
        assert!(raw::alloc(64, align, false).is_null(), "align {align}");
        assert!(raw::alloc(1 << 20, align, true).is_null(), "align {align}");
    }
    for size in [usize::MAX, usize::MAX - 16, max, max - 16, max - 4096] {
        assert!(raw::witness_alloc(size).is_null(), "witness size {size:#x}");
    }
}

/// The C front's phases (`nalloc_phase_begin`/`_end`) open and close a row
/// of the same table as `NAlloc::phase`: once closed, a phase is charged
/// nothing more.
#[test]
fn c_phases_open_and_close_a_row() {
    raw::phase_begin(b"c-front phase");
    let p = raw::alloc(100_000, 16, false);
    assert!(!p.is_null());
    // SAFETY: live, freed once.
    unsafe { raw::free(p) };
    raw::phase_end();
    let before = *ALLOC.phase_report().get("c-front phase").expect("the phase has a row");
    assert_eq!(before.entries, 1);
    assert!(before.bytes >= 100_000, "{before:?}");
    let blocks: Vec<Box<[u8; 64]>> = (0..1000).map(|_| Box::new([1; 64])).collect();
    drop(blocks);
    let after = *ALLOC.phase_report().get("c-front phase").unwrap();
    assert_eq!(
        (after.entries, after.calls, after.bytes),
        (before.entries, before.calls, before.bytes)
    );
}
