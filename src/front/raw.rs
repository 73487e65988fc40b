//! The C front: `malloc`, `free` and `realloc` without a `Layout`, which the
//! C library (crate `nalloc-capi`) exports. Rust code should use
//! [`crate::NAlloc`] through `GlobalAlloc`, which is faster because the
//! layout travels with every call.
//!
//! Every function here goes through the same route as the Rust front
//! (`front/route.rs`); what this module adds is only how a block is found
//! again without a layout:
//!
//! * in the **segment region** → a small block; its page knows its size;
//! * anything else carries a 16-byte **header** just below the pointer
//!   recording the layout it was allocated with: spans (large blocks) and
//!   witness blocks (made inside a witness scope or by [`witness_alloc`]).
//!   The header sits in the alignment padding, so large C blocks are 16-byte
//!   aligned (as glibc's are), or aligned as asked by `posix_memalign`.
//!
//! A witness block stays witness memory through [`realloc`], and every
//! place it leaves is wiped, exactly as through `GlobalAlloc::realloc`.
//!
//! The allocator's `fork` handlers are not part of this interface (nor of any
//! other public one): safe code cannot take the allocator's locks.
//!
//! ```compile_fail,E0425
//! zk_nalloc::raw::fork_prepare();
//! ```

use core::ptr;

use super::route::{self, Block, Front};
use crate::arenas::witness;
use crate::small::segment;
use crate::small::size_class::{class_for, is_small};

#[repr(C)]
struct Header {
    /// Size of the underlying allocation (header and padding included).
    size: usize,
    /// Its alignment.
    align: usize,
}

const HEADER: usize = core::mem::size_of::<Header>();

/// Allocates `size` bytes aligned to `align` (a power of two); null on
/// failure. Zero-filled if `zeroed`.
///
/// Inlined into the C entry points (another crate), so that `malloc` of a
/// small block is the heap's fast path with no call in between.
#[inline]
pub fn alloc(size: usize, align: usize, zeroed: bool) -> *mut u8 {
    let align = align.max(HEADER);
    if is_small(size, align) {
        let class = class_for(size, align);
        // SAFETY: `class_for` gives the class of a small request.
        if let Some(p) = unsafe { route::alloc_small_in_heap(class, size, zeroed) } {
            return p;
        }
    }
    alloc_with_header(size, align, zeroed, false)
}

/// Allocates `size` zeroed bytes of witness memory, 16-byte aligned: wiped
/// when freed (by [`free`] or [`witness_free`]) and kept secret by
/// [`realloc`]. Null on failure.
pub fn witness_alloc(size: usize) -> *mut u8 {
    alloc_with_header(size, HEADER, true, true)
}

/// The header path of [`alloc`]: large blocks, and every witness block.
#[inline(never)]
fn alloc_with_header(size: usize, align: usize, zeroed: bool, witness: bool) -> *mut u8 {
    // The block starts `align` (≥ 16) bytes in, so the header fits just
    // below it and the block keeps the alignment.
    // `size.max(1)`: a zero-size request must still get a pointer *inside*
    // its span (one past the end could be another allocation's memory —
    // fuzzing found one landing on a segment header).
    let Some(total) = size.max(1).checked_add(align) else {
        return ptr::null_mut();
    };
    // A valid layout: the size rounded up to the alignment fits in isize.
    if align > isize::MAX as usize || total > isize::MAX as usize - align {
        return ptr::null_mut();
    }
    let base = if witness {
        route::alloc_witness(total, align)
    } else {
        route::alloc(total, align, zeroed)
    };
    if base.is_null() {
        return base;
    }
    // SAFETY: `base` has `total = size + align` bytes.
    unsafe { with_header(base, total, align) }
}

/// Writes the header of the block `base` (`size` bytes, `align`) and
/// returns the caller's pointer, `align` bytes in.
///
/// # Safety
/// `base` must be a live block of at least `align + 1` bytes, `align ≥ 16`.
unsafe fn with_header(base: *mut u8, size: usize, align: usize) -> *mut u8 {
    // SAFETY: caller contract: the header occupies the 16 bytes below
    // `base + align`, inside the block.
    unsafe {
        let p = base.add(align);
        p.sub(HEADER).cast::<Header>().write(Header { size, align });
        p
    }
}

/// The engine's view of a live block of this front.
///
/// # Safety
/// `p` must be a live block from [`alloc`] / [`witness_alloc`] /
/// [`realloc`].
unsafe fn block_of(p: *mut u8) -> Block {
    if segment::contains(p) {
        // SAFETY: caller contract: a live small block; its page is valid.
        let size = unsafe { (*segment::page_of(p)).block_size } as usize;
        Block {
            base: p,
            size,
            align: HEADER,
            offset: 0,
        }
    } else {
        // SAFETY: caller contract: the header is right below `p`.
        let h = unsafe { p.sub(HEADER).cast::<Header>().read() };
        Block {
            // SAFETY: as above: the block starts `align` bytes below `p`.
            base: unsafe { p.sub(h.align) },
            size: h.size,
            align: h.align,
            offset: h.align,
        }
    }
}

/// Frees a block from [`alloc`] / [`witness_alloc`] / [`realloc`] (null is
/// ignored). A witness block is wiped.
///
/// # Safety
/// `p` must be null or a live block of this interface.
#[inline]
pub unsafe fn free(p: *mut u8) {
    if segment::contains(p) {
        // SAFETY: caller contract: a live small block.
        unsafe { route::dealloc_small_unsized(p) };
    } else if !p.is_null() {
        // SAFETY: caller contract: a live header block.
        unsafe { free_with_header(p) };
    }
}

/// # Safety
/// `p` must be a live header block.
#[inline(never)]
unsafe fn free_with_header(p: *mut u8) {
    // SAFETY: caller contract.
    unsafe {
        let b = block_of(p);
        route::dealloc(b.base, b.size, b.align);
    }
}

/// Frees `p` if it is witness memory of this interface (wiping it) and
/// returns true; returns false and leaves `p` alone otherwise. Null is
/// ignored (false).
///
/// # Safety
/// `p` must be null, a pointer outside the witness region, or a live
/// witness block of this interface.
pub unsafe fn witness_free(p: *mut u8) -> bool {
    if p.is_null() || !witness::contains(p) {
        return false;
    }
    // SAFETY: caller contract: a live witness header block.
    unsafe { free_with_header(p) };
    true
}

/// True if `p` lies in witness memory.
pub fn is_witness(p: *const u8) -> bool {
    witness::contains(p)
}

/// Wipes every witness block of the process-wide witness arena — those of
/// [`witness_alloc`] and those made inside `witness_scope` — live or
/// freed, and forgets them all.
///
/// # Safety
/// No witness block of that arena may be used or freed afterwards, and no
/// other thread may use the arena meanwhile.
pub unsafe fn witness_wipe_all() {
    // SAFETY: forwarded caller contract.
    unsafe { route::wipe_witness() }
}

/// Bytes usable at `p` (at least what was asked for).
///
/// # Safety
/// `p` must be a live block from [`alloc`] / [`witness_alloc`] /
/// [`realloc`].
pub unsafe fn usable_size(p: *mut u8) -> usize {
    // SAFETY: caller contract.
    let b = unsafe { block_of(p) };
    b.size - b.offset
}

/// The C front's side of a resize: moved blocks are C blocks (16-byte
/// aligned, with a header outside the segment region), and a header follows
/// its block's new size.
struct CFront;

impl Front for CFront {
    fn alloc_moved(&self, size: usize, _align: usize, witness: bool) -> *mut u8 {
        if witness {
            witness_alloc(size)
        } else {
            alloc(size, HEADER, false)
        }
    }

    unsafe fn resized(&self, base: *mut u8, size: usize, align: usize) {
        if !segment::contains(base) {
            // SAFETY: caller contract: a live header block of `size` bytes.
            unsafe { with_header(base, size, align) };
        }
    }
}

/// Resizes `p` to `new_size` bytes keeping its contents. The result keeps
/// the block's alignment when it is resized in place (same size class, or a
/// span remapped); a moved block is 16-byte aligned (C `realloc` semantics).
/// A witness block stays witness memory. Null on failure, the old block
/// intact.
///
/// # Safety
/// `p` must be a live block from [`alloc`] / [`witness_alloc`] /
/// [`realloc`].
pub unsafe fn realloc(p: *mut u8, new_size: usize) -> *mut u8 {
    // SAFETY: caller contract.
    let b = unsafe { block_of(p) };
    // SAFETY: caller contract: `b` describes a live block of the route.
    unsafe { route::realloc(&CFront, b, new_size) }
}
