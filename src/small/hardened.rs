//! Hardened mode (cargo feature `hardened`, off by default): detection of
//! heap misuse on the small-object paths, at some cost in speed.
//!
//! * **Invalid frees abort.** A small-layout free of a pointer outside the
//!   segment region ("not allocated by nalloc"), not on a block boundary
//!   ("misaligned"), into a page of another size class ("wrong size") or of
//!   a block that is already free ("double free") writes one line to stderr
//!   — with `write(2)`, no allocation — and aborts.
//! * **Free-list links are encoded** with a per-process secret and the
//!   block's own address, and every decoded link must point into the same
//!   page; a heap overflow that overwrites a free block cannot steer the
//!   next allocation to an address of the attacker's choice.
//! * **Freed blocks are zeroed**, except for the link and a "freed" marker
//!   (the marker is how double frees are recognised); on reuse the rest must
//!   still be zero, or a write-after-free is reported.
//! * **A canary** fills the slack between the requested size and the block
//!   size; it is checked on free, catching small overflows.
//!
//! Large spans are checked for placement only (a span pointer must be page
//! aligned and outside the segment region). Frees through the C ABI carry no
//! size, so they skip the canary and size-class checks.

use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use crate::small::page::{Block, Page};
use crate::small::size_class::CLASS_SIZE;

/// The per-process secret (set once at initialisation; odd so it is never 0).
static KEY: AtomicUsize = AtomicUsize::new(0x9E37_79B9_7F4A_7C15_u64 as usize);

/// Chooses the secret. Called once from `config::ensure_init`.
pub(crate) fn init() {
    let mut seed = [0u8; 8];
    crate::os::random(&mut seed);
    let stack = &seed as *const _ as usize;
    let k = usize::from_ne_bytes(seed) ^ stack.rotate_left(29) ^ KEY.load(Relaxed);
    KEY.store(k | 1, Relaxed);
}

#[inline(always)]
fn key() -> usize {
    KEY.load(Relaxed)
}

/// The mask a link stored in block `b` is XORed with.
#[inline(always)]
fn mask(b: *const Block) -> usize {
    key() ^ b.addr().rotate_left(17)
}

/// Encodes the link `next` for storage in block `b`.
#[inline(always)]
pub(crate) fn encode(b: *const Block, next: *mut Block) -> *mut Block {
    next.map_addr(|a| a ^ mask(b))
}

/// Decodes a link stored in block `b`.
#[inline(always)]
pub(crate) fn decode(b: *const Block, stored: *mut Block) -> *mut Block {
    stored.map_addr(|a| a ^ mask(b))
}

/// The "freed" marker kept in a free block's second word.
#[inline(always)]
fn marker(b: *const u8) -> usize {
    (key() ^ b.addr()).rotate_left(31) ^ 0x5A5A_5A5A
}

/// The canary byte for block `b`.
#[inline(always)]
fn canary(b: *const u8) -> u8 {
    (key() ^ b.addr().rotate_right(4)) as u8 | 1
}

/// True if any byte of `bytes` is not `value`. A fold without an early
/// exit, which the compiler turns into wide vector compares: blocks are
/// checked whole on every alloc/free, and a per-byte `any` with an early exit
/// made hardened mode many times slower than the default.
#[inline]
fn differs(bytes: &[u8], value: u8) -> bool {
    bytes.iter().fold(0u8, |acc, &x| acc | (x ^ value)) != 0
}

pub(crate) use crate::base::check::fail;

/// Checks a block handed out by a page and prepares it: the freed marker
/// and link are cleared, the rest must be zero, the slack gets a canary.
///
/// # Safety
/// `b` is a block of `page` just popped; `size` the requested size.
pub(crate) unsafe fn on_alloc(page: *const Page, b: *mut u8, size: usize) {
    // SAFETY: caller contract: the whole block is ours.
    unsafe {
        let bs = (*page).block_size as usize;
        let words = b.cast::<usize>();
        *words = 0;
        *words.add(1) = 0;
        if differs(core::slice::from_raw_parts(b.add(16), bs.saturating_sub(16)), 0) {
            fail("write after free detected in block", b.addr());
        }
        if size < bs {
            core::ptr::write_bytes(b.add(size), canary(b), bs - size);
        }
    }
}

/// Validates a free of `p` with the requested `size` and `class`
/// (`size == usize::MAX`: unknown, from the C ABI), then zeroes the block
/// and marks it freed.
///
/// # Safety
/// `p` must be in the segment region (checked by the caller).
pub(crate) unsafe fn on_free(page: *const Page, p: *mut u8, size: usize, class: usize) {
    // SAFETY: the page metadata of any segment-region address is readable;
    // each check below stops before touching memory it has not validated.
    unsafe {
        let bs = (*page).block_size as usize;
        if bs == 0 {
            fail("free of a pointer not allocated by nalloc", p.addr());
        }
        let seg = crate::small::segment::segment_of(page as *mut Page).addr();
        let offset = p.addr() - seg;
        let area = (*page).bump.addr() + (*page).bump_left as usize - seg;
        let first_area = if offset < crate::small::segment::PAGE_SIZE {
            crate::small::segment::FIRST_AREA
        } else {
            offset & !(crate::small::segment::PAGE_SIZE - 1)
        };
        if (offset - first_area) % bs != 0 || offset >= area {
            fail("free of a misaligned pointer", p.addr());
        }
        if size != usize::MAX && CLASS_SIZE[class] as usize != bs {
            fail("free with the wrong size (size class mismatch)", p.addr());
        }
        let words = p.cast::<usize>();
        if bs >= 16 && *words.add(1) == marker(p) {
            fail("double free", p.addr());
        }
        if size != usize::MAX && size < bs {
            let c = canary(p);
            if differs(core::slice::from_raw_parts(p.add(size), bs - size), c) {
                fail("heap overflow detected (canary) in block", p.addr());
            }
        }
        core::ptr::write_bytes(p, 0, bs);
        *words.add(1) = marker(p);
    }
}

/// Validates a decoded free-list link: null or a block of the same page.
#[inline]
pub(crate) fn check_link(page: *const Page, next: *mut Block) {
    if next.is_null() {
        return;
    }
    // SAFETY: only address arithmetic on `page` metadata.
    let ok = crate::small::segment::contains(next.cast())
        && core::ptr::eq(unsafe { crate::small::segment::page_of(next.cast()) }, page);
    if !ok {
        fail("corrupted free list in page", page.addr());
    }
}

/// A block keeps its place on a same-class `realloc`: move the canary to the
/// new requested size (after checking the old one).
///
/// # Safety
/// `p` is a live small block requested with `old` bytes.
pub(crate) unsafe fn on_resize(p: *mut u8, old: usize, new: usize) {
    // SAFETY: caller contract: `p` is a live block in a segment.
    unsafe {
        let bs = (*crate::small::segment::page_of(p)).block_size as usize;
        let c = canary(p);
        if old < bs && differs(core::slice::from_raw_parts(p.add(old), bs - old), c) {
            fail("heap overflow detected (canary) in block", p.addr());
        }
        if new < bs {
            core::ptr::write_bytes(p.add(new), c, bs - new);
        }
    }
}
