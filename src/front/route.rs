//! The one route: every entry point that must decide where a request goes —
//! `GlobalAlloc` ([`super::global`]) and the C front ([`super::raw`]) —
//! allocates, frees and resizes through the functions of this module, so that
//! each policy is written once (the arena handles of `NAlloc` name their
//! arena and call it directly):
//!
//! | request | goes to |
//! | --- | --- |
//! | any allocation inside `witness_scope` | witness memory (the process-wide arena) |
//! | small (≤ 64 KiB, alignment ≤ 64 KiB) | the calling thread's heap (`small`) |
//! | large | a span (`mem`), warm pool first |
//! | free of a pointer in the witness region | wiped, back to the witness arena |
//! | resize of a witness block | stays witness memory; every byte it leaves is wiped |
//! | resize within a size class / of a span | in place where possible |
//!
//! A pointer is classified once ([`Home`]) and the answer handed down. The
//! fronts differ only in bookkeeping, which they give the route through
//! [`Front`]: the C front keeps a header in front of blocks outside the
//! segment region (it has no `Layout` on `free`), the Rust front none.

use crate::arenas::witness::{self, SCOPE_ARENA};
use crate::base::check::invariant;
use crate::small::size_class::{class_for, class_of, is_small, MIN_ALIGN, SMALL_MAX};
use crate::small::{self, heap};

use super::lifecycle;

/// Where a live block lives: decided once per call from its address and
/// layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Home {
    /// In the witness region: wiped on every free, kept secret on resize.
    Witness,
    /// A small block of a thread heap.
    Small,
    /// A span (large block).
    Span,
}

impl Home {
    /// Classifies the live block at `p` allocated with `size` and `align`.
    #[inline(always)]
    pub(crate) fn of(p: *const u8, size: usize, align: usize) -> Home {
        Home::given(witness::contains(p), size, align)
    }

    /// As [`Home::of`], for a caller that has asked `witness::contains`
    /// already.
    #[inline(always)]
    pub(crate) fn given(in_witness: bool, size: usize, align: usize) -> Home {
        if in_witness {
            Home::Witness
        } else if is_small(size, align) {
            Home::Small
        } else {
            Home::Span
        }
    }
}

/// A small block of `class` for a request of `size` bytes: the fast path,
/// then [`small_slow`] (witness scope or heap refill).
///
/// # Safety
/// `class` must be `class_for(size, align)` of a small request.
#[inline(always)]
pub(crate) unsafe fn alloc_small(class: usize, size: usize, align: usize, zeroed: bool) -> *mut u8 {
    // SAFETY: forwarded caller contract.
    match unsafe { heap::pop(class, size, zeroed) } {
        Some(b) => b,
        None => small_slow(class, size, align, zeroed),
    }
}

/// Like [`alloc_small`], but `None` inside a witness scope instead of a
/// witness block: for the C front, whose blocks outside the segment region
/// need a header it must write itself (it then asks [`alloc`]).
///
/// # Safety
/// As for [`alloc_small`].
#[inline(always)]
pub(crate) unsafe fn alloc_small_in_heap(class: usize, size: usize, zeroed: bool) -> Option<*mut u8> {
    // SAFETY: forwarded caller contract.
    if let Some(b) = unsafe { heap::pop(class, size, zeroed) } {
        return Some(b);
    }
    if heap::in_scope() {
        return None;
    }
    // SAFETY: forwarded caller contract.
    Some(unsafe { small_refill(class, size, zeroed) })
}

/// The slow path of a small allocation. A thread inside a witness scope
/// always lands here (its heap pointer is a sentinel with empty pages).
#[cold]
#[inline(never)]
fn small_slow(class: usize, size: usize, align: usize, zeroed: bool) -> *mut u8 {
    if heap::in_scope() {
        // Witness blocks are always zero when handed out; their class has
        // room for the canary too.
        return SCOPE_ARENA.alloc_raw(size, align);
    }
    // SAFETY: caller contract of `alloc_small`.
    unsafe { small_refill(class, size, zeroed) }
}

/// # Safety
/// As for [`alloc_small`].
#[cold]
#[inline(never)]
unsafe fn small_refill(class: usize, size: usize, zeroed: bool) -> *mut u8 {
    lifecycle::ensure_init();
    // SAFETY: forwarded caller contract.
    unsafe { heap::refill(class, size, zeroed) }
}

/// Allocates `size` bytes aligned to `align` (a power of two), zero-filled if
/// `zeroed`; null on failure. The entry of every sized allocation.
#[inline(always)]
pub(crate) fn alloc(size: usize, align: usize, zeroed: bool) -> *mut u8 {
    // `size - 1 < SMALL_MAX`: a zero-size request (which `GlobalAlloc`
    // callers may not make) goes to `alloc_any`, so that here the compiler
    // knows the size is not 0 and `class_of` needs no saturation.
    if !zeroed && size.wrapping_sub(1) < SMALL_MAX && align <= MIN_ALIGN {
        // SAFETY: `class_of` of a size ≤ SMALL_MAX is its class.
        return unsafe { alloc_small(class_of(size), size, MIN_ALIGN, false) };
    }
    alloc_any(size, align, zeroed)
}

/// [`alloc`] for every request but a plain small one.
#[cold]
#[inline(never)]
fn alloc_any(size: usize, align: usize, zeroed: bool) -> *mut u8 {
    valid_layout(size, align);
    if is_small(size, align) {
        // SAFETY: `class_for` gives the class of a small layout.
        return unsafe { alloc_small(class_for(size, align), size, align, zeroed) };
    }
    if heap::in_scope() {
        return alloc_witness(size, align);
    }
    lifecycle::ensure_init();
    small::alloc_plain(size, align, zeroed)
}

/// A zeroed block of witness memory (the process-wide arena), whatever the
/// thread's scope.
pub(crate) fn alloc_witness(size: usize, align: usize) -> *mut u8 {
    valid_layout(size, align);
    lifecycle::ensure_init();
    SCOPE_ARENA.alloc_raw(size, align)
}

/// The route's contract, checked in debug builds: every request is a valid
/// `Layout` (a power-of-two alignment, the size rounded up to it within
/// `isize::MAX`). `GlobalAlloc` callers cannot break it; the C front must
/// refuse what breaks it before it gets here.
#[inline(always)]
fn valid_layout(size: usize, align: usize) {
    invariant!(
        align.is_power_of_two() && size <= isize::MAX as usize - (align - 1),
        "route: a request that is no valid layout",
        size
    );
}

/// Frees a block allocated through the route with `size` and `align`.
///
/// # Safety
/// `p` must be a live block of the route with this layout.
#[inline(always)]
pub(crate) unsafe fn dealloc(p: *mut u8, size: usize, align: usize) {
    // SAFETY: forwarded caller contract.
    unsafe { dealloc_at(witness::contains(p), p, size, align) }
}

/// Frees a block that its front has classified already ([`Block::home`]).
///
/// # Safety
/// `b` must describe a live block of the route.
#[inline]
pub(crate) unsafe fn dealloc_block(b: &Block) {
    // SAFETY: forwarded caller contract.
    unsafe { dealloc_at(b.home == Home::Witness, b.base, b.size, b.align) }
}

/// # Safety
/// As for [`dealloc`]; `in_witness` says whether `p` lies in the witness
/// region.
#[inline(always)]
unsafe fn dealloc_at(in_witness: bool, p: *mut u8, size: usize, align: usize) {
    if in_witness {
        // SAFETY: caller contract; witness blocks of the route come from the
        // scope arena.
        unsafe { dealloc_witness(p, size, align) };
    } else {
        // SAFETY: caller contract: a block of the plain engine.
        unsafe { small::dealloc_plain(p, size, align) };
    }
}

/// Wipes and frees a witness block. Kept out of line: inlined, the arena's
/// free path would burden every `dealloc` with its registers.
///
/// # Safety
/// `p` must be a live block of the scope arena with this layout.
#[cold]
#[inline(never)]
unsafe fn dealloc_witness(p: *mut u8, size: usize, align: usize) {
    // SAFETY: forwarded caller contract.
    unsafe { SCOPE_ARENA.dealloc_raw(p, size, align) }
}

/// Frees a small block whose size is unknown (the C front's `free` of a
/// block in the segment region).
///
/// # Safety
/// `p` must be a live small block of a heap.
#[inline(always)]
pub(crate) unsafe fn dealloc_small_unsized(p: *mut u8) {
    // SAFETY: caller contract.
    unsafe { heap::free(p, usize::MAX, 0) }
}

/// Wipes every block of the process-wide witness arena and forgets them.
///
/// # Safety
/// No block of that arena may be used or freed afterwards, and no other
/// thread may use it meanwhile.
pub(crate) unsafe fn wipe_witness() {
    // SAFETY: forwarded caller contract.
    unsafe { SCOPE_ARENA.secure_wipe() }
}

/// A live block as a front sees it: the engine's allocation (`base`, `size`,
/// `align`) and the caller's pointer `offset` bytes into it (the C front's
/// header blocks; 0 otherwise).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Block {
    /// Start of the engine's allocation.
    pub(crate) base: *mut u8,
    /// Its size as allocated (what [`dealloc`] must be given).
    pub(crate) size: usize,
    /// Its alignment.
    pub(crate) align: usize,
    /// Where the caller's bytes start, from `base`.
    pub(crate) offset: usize,
    /// Where it lives: classified once, by the front that found the block.
    pub(crate) home: Home,
}

/// What differs between the fronts when a block is resized.
pub(crate) trait Front {
    /// A new block of `size` caller bytes to move a resized block to, in
    /// witness memory if `witness`; returns the caller's pointer (null on
    /// failure). `align` is the old block's alignment.
    fn alloc_moved(&self, size: usize, align: usize, witness: bool) -> *mut u8;

    /// The block was resized in place to `size` bytes (engine view).
    ///
    /// # Safety
    /// `base` must be the live, resized block.
    unsafe fn resized(&self, base: *mut u8, size: usize, align: usize);

    /// The block has moved and is about to be freed.
    ///
    /// # Safety
    /// `b` must be the live old block.
    unsafe fn retire(&self, b: &Block);
}

/// Resizes `b` to `new_size` caller bytes, keeping its contents; returns the
/// caller's new pointer, or null with `b` untouched. The resize policy of
/// every front:
///
/// 1. within its size class, a small block stays where it is (a witness
///    block's canary is checked and moved to the new end, and its cut-off
///    tail wiped now, since its free wipes only the requested bytes);
/// 2. a span grows or shrinks in place where the pool or `mremap` allow;
/// 3. otherwise the block moves — to witness memory if it was witness
///    memory (a secret stays a secret), and the old block is freed, which
///    wipes it if it was.
///
/// # Safety
/// `b` must describe a live block of the route.
pub(crate) unsafe fn realloc(front: &impl Front, b: Block, new_size: usize) -> *mut u8 {
    // A zero-byte block still holds one byte past its header: the caller's
    // pointer must stay inside the block (as `raw::alloc` made it).
    let Some(new_total) = new_size.max(1).checked_add(b.offset) else {
        return core::ptr::null_mut();
    };
    let home = b.home;
    let old_size = b.size - b.offset;
    // SAFETY: caller contract: `base + offset` is inside the live block.
    let user = unsafe { b.base.add(b.offset) };
    let in_place = match home {
        // SAFETY: caller contract: a live witness block of the route (the
        // scope arena's) of this layout.
        Home::Witness => unsafe { SCOPE_ARENA.resize_in_place(b.base, b.size, new_total, b.align) },
        _ => {
            is_small(b.size, b.align)
                && is_small(new_total, b.align)
                && class_for(b.size, b.align) == class_for(new_total, b.align)
        }
    };
    if in_place {
        #[cfg(feature = "hardened")]
        if home == Home::Small {
            // SAFETY: a live small block of a heap.
            unsafe { small::hardened::on_resize(b.base, b.size, new_total) };
        }
        // SAFETY: the block is live and now `new_total` bytes.
        unsafe { front.resized(b.base, new_total, b.align) };
        return user;
    }
    if home == Home::Span && !is_small(new_total, b.align) {
        // SAFETY: caller contract: a live span of this layout.
        let q = unsafe { crate::mem::span::realloc_in_place(b.base, b.size, b.align, new_total) };
        if !q.is_null() {
            // SAFETY: `q` is the live, resized span.
            unsafe {
                front.resized(q, new_total, b.align);
                return q.add(b.offset);
            }
        }
    }
    let q = front.alloc_moved(new_size, b.align, home == Home::Witness);
    if q.is_null() {
        return q; // the old block is untouched
    }
    // SAFETY: both blocks are live and distinct, with at least
    // `min(old_size, new_size)` caller bytes each; the old one is freed once.
    unsafe {
        core::ptr::copy_nonoverlapping(user, q, old_size.min(new_size));
        front.retire(&b);
        dealloc_block(&b);
    }
    q
}
