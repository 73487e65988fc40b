//! `NAlloc` through `GlobalAlloc` (called directly, not installed as the
//! global allocator): alloc / alloc_zeroed / realloc / dealloc with odd
//! sizes (0 ..= ~2.5 MiB) and alignments (1 ..= 64 KiB, sometimes up to
//! 4 MiB), checked against a model: live blocks never overlap, alignment
//! holds, contents survive realloc, zeroed blocks are zero.
#![no_main]

use std::alloc::{GlobalAlloc, Layout};

use libfuzzer_sys::fuzz_target;
use zk_nalloc::NAlloc;

#[path = "common.rs"]
mod common;
use common::{check, first_nonzero, Input, Model};

static A: NAlloc = NAlloc::new();

/// Most blocks alive at once.
const MAX_LIVE: usize = 64;
const MAX_SIZE: usize = (2 << 20) + (1 << 19);
const MAX_ALIGN: usize = 4 << 20;

fn layout(size: usize, align: usize) -> Layout {
    Layout::from_size_align(size, align).expect("valid layout")
}

fn run(data: &[u8]) -> Option<()> {
    let mut inp = Input::new(data);
    let mut m = Model::default();
    let result = (|| -> Option<()> {
        loop {
            let op = inp.byte()? % 10;
            match op {
                // alloc / alloc_zeroed
                0..=3 if m.live.len() < MAX_LIVE => {
                    let (size, align) = (inp.size(MAX_SIZE)?, inp.align(MAX_ALIGN)?);
                    let zeroed = op == 3;
                    // SAFETY: a valid layout (size 0 included: the engine
                    // serves it as a small block).
                    let p = unsafe {
                        if zeroed {
                            A.alloc_zeroed(layout(size, align))
                        } else {
                            A.alloc(layout(size, align))
                        }
                    };
                    if zeroed && !p.is_null() {
                        if let Some(off) = first_nonzero(p, size) {
                            panic!("alloc_zeroed({size}, {align}) = {p:?}: byte {off} is not zero");
                        }
                    }
                    m.add(
                        if zeroed { "alloc_zeroed" } else { "alloc" },
                        p,
                        size,
                        size.max(1),
                        align,
                    );
                }
                // dealloc
                4..=6 if !m.live.is_empty() => {
                    let i = inp.index(m.live.len())?;
                    let b = m.take("dealloc", i);
                    // SAFETY: a live block with its layout, freed once.
                    unsafe { A.dealloc(b.p, layout(b.size, b.align)) };
                }
                // realloc
                7..=8 if !m.live.is_empty() => {
                    let i = inp.index(m.live.len())?;
                    let new_size = inp.size(MAX_SIZE)?;
                    let b = m.live.swap_remove(i);
                    m.verify("before realloc", &b);
                    // SAFETY: a live block with its layout; the new size
                    // rounded to the alignment does not overflow.
                    let q = unsafe { A.realloc(b.p, layout(b.size, b.align), new_size) };
                    if q.is_null() {
                        // Failure leaves the old block untouched.
                        m.verify("failed realloc", &b);
                        m.live.push(b);
                        continue;
                    }
                    let keep = b.size.min(new_size);
                    if let Some(off) = check(q, b.size, keep, b.seed) {
                        panic!(
                            "realloc {:?} ({} -> {new_size}, align {}) = {q:?}: byte {off} lost",
                            b.p, b.size, b.align
                        );
                    }
                    m.add("realloc", q, new_size, new_size.max(1), b.align);
                }
                // give retained memory back now and then
                9 if inp.byte()? == 0 => {
                    A.trim();
                }
                _ => {}
            }
        }
    })();
    for b in std::mem::take(&mut m.live) {
        m.verify("at the end", &b);
        // SAFETY: live blocks with their layouts.
        unsafe { A.dealloc(b.p, layout(b.size, b.align)) };
    }
    result
}

fuzz_target!(|data: &[u8]| {
    let _ = run(data);
});
