//! One route for both fronts: the same scenario — a secret grown and shrunk
//! until it moves between size classes, from small to large and back — driven
//! through the C front (`zk_nalloc::raw`, what `realloc` in `libnalloc.so`
//! calls) and through the Rust front (`GlobalAlloc::realloc`, `Vec` growth).
//! Wherever the block starts (a witness scope, or `raw::witness_alloc`), it
//! must stay witness memory at every step, keep its bytes, report a usable
//! size that covers the request, and leave only zeros behind at every place
//! it left. Linux and Windows (bytes read back as a debugger would: `peek`).
#![cfg(any(target_os = "linux", windows))]

use std::alloc::{GlobalAlloc, Layout};

use zk_nalloc::{raw, NAlloc};

mod common;
use common::peek;

#[global_allocator]
static ALLOC: NAlloc = NAlloc::new();

/// Sizes the secret goes through: class to class, small to large, large to
/// large (a new chunk), back to small, a shrink to a smaller class (it
/// moves), and last a shrink within its class ([`SHRINK_IN_PLACE`]).
const STEPS: [usize; 9] = [200, 3000, 40, 100_000, 150_000, 64, 50, 72, 57];

/// The step that must shrink in place, leaving its cut-off tail wiped at
/// once (a free later wipes only the bytes the block then holds). 72 and 57
/// bytes share a witness class through both fronts: with the 8-byte canary,
/// 80 and 65 bytes (the 80-byte class); with the C front's 16-byte header
/// as well, 96 and 81 bytes (the 96-byte class).
const SHRINK_IN_PLACE: (usize, usize) = (72, 57);

/// Asserts that `p` is witness memory: by the allocator's account, and on
/// Linux by the kernel's too (excluded from core dumps, as ordinary heap
/// memory is not; Windows has no such per-page flag).
fn assert_witness(p: *const u8, what: &str) {
    assert!(raw::is_witness(p), "{what}: {p:?} left witness memory");
    #[cfg(target_os = "linux")]
    {
        let flags = common::vm_flags(p as usize);
        assert!(
            flags.iter().any(|f| f == "dd"),
            "{what}: {p:?} not dump-excluded: {flags:?}"
        );
    }
}

/// Asserts that a place a secret left holds no byte of it (each test has its
/// own secret byte: the tests run in parallel, and a released chunk may be
/// reused by another test's block at once). A small block
/// stays mapped in its chunk and must read as zero; a large one's chunk may
/// be gone (then the kernel refuses the read, which is fine: nothing is
/// there to read). The first `words` 8-byte words may hold the allocator's
/// own random-looking words — a freed witness block's encoded free-list
/// links (two words), a shrunk block's moved canary (one) — whose bytes can
/// equal the secret by chance; those words must only not be the secret
/// itself (all eight bytes), as an unwiped block's would be.
fn assert_left_clean(p: *const u8, len: usize, secret: u8, words: usize, what: &str) {
    if let Some(bytes) = peek(p as usize, len) {
        let skip = (words * 8).min(len);
        for (w, word) in bytes[..skip].chunks(8).enumerate() {
            assert!(
                word.len() < 8 || word.iter().any(|&b| b != secret),
                "{what}: word {w} of the old block at {p:?} still holds the secret"
            );
        }
        if let Some(i) = bytes[skip..].iter().position(|&b| b == secret) {
            panic!(
                "{what}: byte {} of the old block at {p:?} still holds the secret",
                skip + i
            );
        }
    } else {
        assert!(len > 64 << 10, "{what}: a small block's chunk cannot be gone");
    }
}

/// Words of allocator data a freed witness block starts with (its encoded
/// links), as seen from the caller's pointer (the C front's blocks start 16
/// bytes earlier, with their header).
const FREED: usize = 2;

/// Bytes of canary after a witness block's requested bytes.
const CANARY: usize = 8;

/// Drives the scenario through `resize`, starting from a 100-byte secret at
/// `p`. `resize(p, old, new)` returns the new pointer; `usable` reports the
/// front's usable size when it has one.
fn grow_and_shrink(
    secret: u8,
    mut p: *mut u8,
    mut resize: impl FnMut(*mut u8, usize, usize) -> *mut u8,
    usable: impl Fn(*mut u8) -> Option<usize>,
    front: &str,
) -> (*mut u8, usize) {
    let mut len = 100;
    // SAFETY: `p` is a live block of `len` bytes.
    unsafe { p.write_bytes(secret, len) };
    for n in STEPS {
        let what = format!("{front}: {len} -> {n}");
        let q = resize(p, len, n);
        assert!(!q.is_null(), "{what}: failed");
        assert_witness(q, &what);
        // SAFETY: `q` is live with `n` bytes.
        let kept = unsafe { std::slice::from_raw_parts(q, len.min(n)) };
        assert!(kept.iter().all(|&b| b == secret), "{what}: contents lost");
        if let Some(u) = usable(q) {
            assert!(u >= n, "{what}: usable size {u} < {n}");
        }
        if (len, n) == SHRINK_IN_PLACE {
            assert_eq!(q, p, "{what}: a shrink within the class moved the block");
            // The canary moved to the new end; everything after it, to the
            // old canary's end, is zero now.
            let tail = peek(p as usize + n + CANARY, len - n).expect("a live block is readable");
            assert!(
                tail.iter().all(|&b| b == 0),
                "{what}: the cut-off tail was not wiped: {tail:02x?}"
            );
        }
        if q != p {
            assert_left_clean(p, len, secret, FREED, &what);
        } else if n < len {
            // Shrunk in place: the cut-off tail is wiped now (but for the
            // canary, moved to the new end).
            assert_left_clean(p.wrapping_add(n), len - n, secret, 1, &what);
        }
        // SAFETY: as above.
        unsafe { q.write_bytes(secret, n) };
        p = q;
        len = n;
    }
    (p, len)
}

fn c_resize(p: *mut u8, _old: usize, new: usize) -> *mut u8 {
    // SAFETY: `p` is a live block of the C front.
    unsafe { raw::realloc(p, new) }
}

fn c_usable(p: *mut u8) -> Option<usize> {
    // SAFETY: `p` is a live block of the C front.
    Some(unsafe { raw::usable_size(p) })
}

#[test]
fn c_realloc_keeps_a_scoped_secret_in_witness_memory() {
    let p = ALLOC.witness_scope(|| raw::alloc(100, 16, false));
    assert_witness(p, "c: scoped block");
    // Resized outside the scope, as a C library handed the buffer would.
    let (q, len) = grow_and_shrink(0xA1, p, c_resize, c_usable, "c realloc of a scoped block");
    // SAFETY: live block of the C front; freed once.
    unsafe { raw::free(q) };
    assert_left_clean(q, len, 0xA1, FREED, "c: free");
}

#[test]
fn plain_blocks_are_not_witness_memory() {
    for size in [10usize, 5000, 200_000] {
        let p = raw::alloc(size, 16, false);
        assert!(!raw::is_witness(p), "{size}-byte plain block counted as witness memory");
        // SAFETY: live block of the C front.
        unsafe { raw::free(p) };
    }
}

#[test]
fn c_realloc_keeps_a_witness_alloc_block_in_witness_memory() {
    let p = raw::witness_alloc(100);
    assert_witness(p, "c: witness_alloc block");
    let (q, len) = grow_and_shrink(0xA2, p, c_resize, c_usable, "c realloc of a witness_alloc block");
    // SAFETY: a live witness block of the C front.
    unsafe { raw::witness_free(q) };
    assert_left_clean(q, len, 0xA2, FREED, "c: witness_free");
}

#[test]
fn rust_realloc_keeps_a_scoped_secret_in_witness_memory() {
    let layout = Layout::from_size_align(100, 8).unwrap();
    // SAFETY: a valid, non-zero layout.
    let p = ALLOC.witness_scope(|| unsafe { ALLOC.alloc(layout) });
    assert!(!p.is_null());
    let resize = |p: *mut u8, old: usize, new: usize| {
        // SAFETY: `p` is live with `old` bytes at align 8.
        unsafe { ALLOC.realloc(p, Layout::from_size_align_unchecked(old, 8), new) }
    };
    let (q, len) = grow_and_shrink(0xA3, p, resize, |_| None, "rust realloc");
    // SAFETY: live with this layout; freed once.
    unsafe { ALLOC.dealloc(q, Layout::from_size_align(len, 8).unwrap()) };
    assert_left_clean(q, len, 0xA3, FREED, "rust: dealloc");
}

#[test]
fn vec_growth_keeps_a_scoped_secret_in_witness_memory() {
    let mut v: Vec<u8> = ALLOC.witness_scope(|| vec![0xA4; 100]);
    let mut places = vec![(v.as_ptr() as usize, v.capacity())];
    // Grown outside the scope, past every size class and into large blocks.
    while v.len() < 300_000 {
        v.push(0xA4);
        let at = v.as_ptr() as usize;
        if at != places.last().unwrap().0 {
            assert_witness(v.as_ptr(), "vec growth");
            places.push((at, v.capacity()));
        }
    }
    assert!(places.len() > 5, "the vector should have moved several times");
    let (last, cap) = places.pop().unwrap();
    for &(at, len) in &places {
        assert_left_clean(at as *const u8, len, 0xA4, FREED, "vec growth");
    }
    v.truncate(10);
    v.shrink_to_fit();
    assert_witness(v.as_ptr(), "vec shrink");
    assert_left_clean(last as *const u8, cap, 0xA4, FREED, "vec shrink");
    assert!(v.iter().all(|&b| b == 0xA4));
}
