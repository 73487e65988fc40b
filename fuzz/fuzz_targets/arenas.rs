//! The arenas: witness (alloc/dealloc/secure_wipe; blocks zero when handed
//! out, wiped on free), scratch (alloc, scope, reset, `Vec` in the arena),
//! polynomial (`alloc_fft_friendly` placement), and `NAlloc::witness_scope`
//! around `Vec` operations made through the allocator.
#![no_main]

use std::alloc::{GlobalAlloc, Layout};
use std::ptr::NonNull;

use libfuzzer_sys::fuzz_target;
use zk_nalloc::allocator_api2::alloc::{AllocError, Allocator};
use zk_nalloc::allocator_api2::vec::Vec as AVec;
use zk_nalloc::{NAlloc, ScratchArena, WitnessArena};

#[path = "common.rs"]
mod common;
use common::{check, fill, first_nonzero, Input, Model};

static A: NAlloc = NAlloc::new();

const MAX_LIVE: usize = 48;

/// `NAlloc`'s `GlobalAlloc` methods as an `Allocator`, so that a `Vec`
/// goes through the engine (and through `witness_scope` routing) while the
/// fuzzer's own global allocator stays the system one.
#[derive(Clone, Copy)]
struct Engine;

// SAFETY: forwards to NAlloc, whose blocks are valid until deallocated.
unsafe impl Allocator for Engine {
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: `Vec` never asks for zero bytes through an allocator
        // (it uses a dangling pointer instead); the engine serves it anyway.
        let p = unsafe { A.alloc(layout) };
        NonNull::new(p)
            .map(|p| NonNull::slice_from_raw_parts(p, layout.size()))
            .ok_or(AllocError)
    }

    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: the Allocator contract: allocated here with `layout`.
        unsafe { A.dealloc(ptr.as_ptr(), layout) }
    }

    unsafe fn grow(&self, ptr: NonNull<u8>, old: Layout, new: Layout) -> Result<NonNull<[u8]>, AllocError> {
        debug_assert_eq!(old.align(), new.align());
        // SAFETY: the Allocator contract: live with `old`, new size larger.
        let p = unsafe { A.realloc(ptr.as_ptr(), old, new.size()) };
        NonNull::new(p)
            .map(|p| NonNull::slice_from_raw_parts(p, new.size()))
            .ok_or(AllocError)
    }
}

/// Alignment the polynomial arena promises for `size` bytes.
fn fft_align(size: usize) -> usize {
    if size >= 2 << 20 {
        2 << 20
    } else if size >= 4096 {
        4096
    } else {
        64
    }
}

fn run(data: &[u8]) -> Option<()> {
    let mut inp = Input::new(data);
    let witness = WitnessArena::new();
    let mut scratch = ScratchArena::new();
    let mut wit = Model::default();
    let mut scr = Model::default();
    let mut poly = Model::default();
    let result = (|| -> Option<()> {
        loop {
            match inp.byte()? % 12 {
                // witness alloc: zero when handed out
                0 | 1 if wit.live.len() < MAX_LIVE => {
                    let size = inp.size(1536 << 10)?;
                    let align = inp.align(4096)?;
                    if inp.byte()? == 0 {
                        assert!(witness.alloc(size, align + 1 + (align == 1) as usize).is_null());
                        continue;
                    }
                    let p = witness.alloc(size, align);
                    assert!(!p.is_null(), "witness alloc({size}, {align}) failed");
                    if let Some(off) = first_nonzero(p, size) {
                        panic!("witness block {p:?} (size {size}) not zero at {off}");
                    }
                    wit.add("witness alloc", p, size, size.max(1), align);
                }
                // witness dealloc
                2 if !wit.live.is_empty() => {
                    let i = inp.index(wit.live.len())?;
                    let b = wit.take("witness dealloc", i);
                    // SAFETY: from this arena with (size, align), freed once.
                    unsafe { witness.dealloc(b.p, b.size, b.align) };
                }
                // witness secure_wipe: every small block handed out reads zero
                3 => {
                    if inp.byte()? % 8 != 0 {
                        continue;
                    }
                    // SAFETY: no block of the arena is used after this
                    // (they are forgotten below; small ones are only read
                    // to check the wipe: their chunk stays committed).
                    unsafe { witness.secure_wipe() };
                    for b in std::mem::take(&mut wit.live) {
                        // Small witness blocks: up to 64 KiB less the
                        // 8-byte canary (larger ones have a chunk of their
                        // own, released by the wipe).
                        if b.size <= (64 << 10) - 8 {
                            if let Some(off) = first_nonzero(b.p, b.size) {
                                panic!("secure_wipe left block {:?} non-zero at {off}", b.p);
                            }
                        }
                    }
                    assert_eq!(witness.stats().used, 0);
                }
                // scratch alloc
                4 | 5 if scr.live.len() < MAX_LIVE => {
                    let size = inp.size(1 << 20)?;
                    let align = inp.align(4096)?;
                    let layout = Layout::from_size_align(size, align).ok()?;
                    let p = scratch.alloc(layout).expect("scratch alloc").as_ptr();
                    scr.add("scratch alloc", p, size, size, align);
                    assert!(scratch.used() >= size);
                }
                // scratch reset (safe `clear`, or the raw reset)
                6 => {
                    for b in std::mem::take(&mut scr.live) {
                        scr.verify("before scratch reset", &b);
                    }
                    if inp.byte()? % 2 == 0 {
                        scratch.clear();
                    } else {
                        // SAFETY: every block was forgotten just above.
                        unsafe { scratch.reset() };
                    }
                    assert_eq!(scratch.used(), 0);
                }
                // scratch scope and a Vec in the arena
                7 => {
                    for b in std::mem::take(&mut scr.live) {
                        scr.verify("before scratch scope", &b);
                    }
                    let n = inp.u16()? as usize % 5000;
                    let seed = inp.byte()? as u64;
                    scratch.scope(|s| {
                        let xs = s.alloc_slice_fill_with(n, |i| i as u64 ^ seed);
                        let mut v = AVec::new_in(s);
                        for i in 0..n / 2 {
                            v.push(i as u32);
                        }
                        let ys = s.alloc_slice_copy(&xs[..n / 3]);
                        assert!(xs.iter().enumerate().all(|(i, &x)| x == i as u64 ^ seed));
                        assert!(v.iter().enumerate().all(|(i, &x)| x == i as u32));
                        assert_eq!(ys, &xs[..n / 3]);
                    });
                    assert_eq!(scratch.used(), 0);
                }
                // polynomial alloc (zeroed or not): FFT-friendly placement
                8 if poly.live.len() < MAX_LIVE => {
                    let size = inp.size(4 << 20)?;
                    let zeroed = inp.byte()? % 2 == 0;
                    let arena = A.polynomial();
                    let p = if zeroed {
                        arena.alloc_fft_friendly_zeroed(size)
                    } else {
                        arena.alloc_fft_friendly(size)
                    };
                    if zeroed && !p.is_null() {
                        if let Some(off) = first_nonzero(p, size) {
                            panic!("alloc_fft_friendly_zeroed({size}) not zero at {off}");
                        }
                    }
                    poly.add("alloc_fft_friendly", p, size, size.max(1), fft_align(size));
                }
                // polynomial dealloc
                9 if !poly.live.is_empty() => {
                    let i = inp.index(poly.live.len())?;
                    let b = poly.take("dealloc_fft", i);
                    // SAFETY: from this arena with `size`, freed once.
                    unsafe { A.polynomial().dealloc_fft(b.p, b.size) };
                }
                // witness_scope around Vec operations through the engine
                10 | 11 => {
                    let n = inp.u16()? as usize % 40_000;
                    let grow_outside = inp.byte()? % 2 == 0;
                    let before = A.stats().witness_scope.used;
                    let mut v: AVec<u64, Engine> = A.witness_scope(|| {
                        let mut v = AVec::new_in(Engine);
                        for i in 0..n {
                            v.push(i as u64 * 3);
                        }
                        v
                    });
                    if n > 0 {
                        assert!(A.stats().witness_scope.used > before, "scope Vec not in witness memory");
                    }
                    if grow_outside {
                        // Growth outside the scope keeps a secret a secret
                        // (an empty Vec had no block yet: it gets a normal one).
                        v.extend((n..n + 1000).map(|i| i as u64 * 3));
                        if n > 0 {
                            assert!(A.stats().witness_scope.used > before, "grown Vec left witness memory");
                        }
                    }
                    assert!(v.iter().enumerate().all(|(i, &x)| x == i as u64 * 3));
                    let mut bytes = AVec::new_in(Engine);
                    bytes.resize(v.len() % 300, 0u8);
                    fill(bytes.as_mut_ptr(), bytes.len(), 1);
                    assert!(check(bytes.as_ptr(), bytes.len(), bytes.len(), 1).is_none());
                    drop((v, bytes));
                    assert_eq!(A.stats().witness_scope.used, before, "witness bytes not released");
                }
                _ => {}
            }
        }
    })();
    for b in std::mem::take(&mut wit.live) {
        wit.verify("witness at the end", &b);
        // SAFETY: from this arena with (size, align).
        unsafe { witness.dealloc(b.p, b.size, b.align) };
    }
    assert_eq!(witness.stats().used, 0, "witness bytes still counted after freeing all");
    for b in std::mem::take(&mut scr.live) {
        scr.verify("scratch at the end", &b);
    }
    for b in std::mem::take(&mut poly.live) {
        poly.verify("polynomial at the end", &b);
        // SAFETY: from this arena with `size`.
        unsafe { A.polynomial().dealloc_fft(b.p, b.size) };
    }
    drop(scratch);
    drop(witness);
    result
}

fuzz_target!(|data: &[u8]| {
    let _ = run(data);
});
