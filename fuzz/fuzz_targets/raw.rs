//! `zk_nalloc::raw` (the unsized interface under the C ABI): alloc (plain,
//! zeroed, inside a witness scope) / free / realloc / usable_size against a
//! model: blocks (their whole usable size) never overlap, alignment holds,
//! the usable tail is writable, contents survive realloc.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zk_nalloc::{raw, NAlloc};

#[path = "common.rs"]
mod common;
use common::{check, fill, first_nonzero, Input, Model};

static A: NAlloc = NAlloc::new();

const MAX_LIVE: usize = 64;
const MAX_SIZE: usize = (2 << 20) + (1 << 19);

fn usable(p: *mut u8) -> usize {
    // SAFETY: callers pass live blocks from `raw`.
    unsafe { raw::usable_size(p) }
}

fn run(data: &[u8]) -> Option<()> {
    let mut inp = Input::new(data);
    let mut m = Model::default();
    let result = (|| -> Option<()> {
        loop {
            let op = inp.byte()? % 10;
            match op {
                // alloc (plain, zeroed, or inside a witness scope)
                0..=3 if m.live.len() < MAX_LIVE => {
                    let size = inp.size(MAX_SIZE)?;
                    let align = inp.align(1 << 20)?;
                    let zeroed = op == 1;
                    let p = if op == 3 {
                        A.witness_scope(|| raw::alloc(size, align, false))
                    } else {
                        raw::alloc(size, align, zeroed)
                    };
                    assert!(!p.is_null(), "raw::alloc({size}, {align}) failed");
                    // Witness blocks are always zero when handed out.
                    if zeroed || op == 3 {
                        if let Some(off) = first_nonzero(p, size) {
                            panic!("raw::alloc({size}, {align}, zeroed) = {p:?}: byte {off} not zero");
                        }
                    }
                    let u = usable(p);
                    assert!(u >= size, "usable_size {u} < {size}");
                    // The whole usable size is the caller's: write all of it.
                    fill(p, u, 0xA5);
                    assert!(check(p, u, u, 0xA5).is_none());
                    m.add("raw::alloc", p, size, u.max(1), align.max(16));
                }
                // free
                4..=6 if !m.live.is_empty() => {
                    let i = inp.index(m.live.len())?;
                    let b = m.take("raw::free", i);
                    assert_eq!(usable(b.p).max(1), b.span, "usable_size changed while live");
                    // SAFETY: a live block from raw, freed once.
                    unsafe { raw::free(b.p) };
                }
                // realloc (blocks of alignment <= 16 only, as documented)
                7..=8 => {
                    let Some(i) = m.live.iter().position(|b| b.align <= 16) else {
                        continue;
                    };
                    let new_size = inp.size(MAX_SIZE)?;
                    let b = m.live.swap_remove(i);
                    m.verify("before raw::realloc", &b);
                    // SAFETY: a live block from raw with alignment <= 16.
                    let q = unsafe { raw::realloc(b.p, new_size) };
                    if q.is_null() {
                        m.verify("failed raw::realloc", &b);
                        m.live.push(b);
                        continue;
                    }
                    if let Some(off) = check(q, b.size, b.size.min(new_size), b.seed) {
                        panic!(
                            "raw::realloc {:?} ({} -> {new_size}) = {q:?}: byte {off} lost",
                            b.p, b.size
                        );
                    }
                    let u = usable(q);
                    assert!(u >= new_size, "usable_size {u} < {new_size} after realloc");
                    m.add("raw::realloc", q, new_size, u.max(1), 16);
                }
                9 => {
                    // SAFETY: null is ignored.
                    unsafe { raw::free(core::ptr::null_mut()) };
                    if inp.byte()? == 0 {
                        A.trim();
                    }
                }
                _ => {}
            }
        }
    })();
    for b in std::mem::take(&mut m.live) {
        m.verify("at the end", &b);
        // SAFETY: live blocks from raw.
        unsafe { raw::free(b.p) };
    }
    result
}

fuzz_target!(|data: &[u8]| {
    let _ = run(data);
});
