//! The unsized interface — `free` without a `Layout` — that the C ABI
//! (`malloc`/`free`/`realloc`, crate `nalloc-capi`) is built on. Rust code
//! should use [`crate::NAlloc`] through `GlobalAlloc`, which is faster
//! because the layout travels with every call.
//!
//! How a pointer is recognised on `free`:
//!
//! * in the **segment region** → a small block; its page knows its size;
//! * anything else carries a 16-byte **header** just below the pointer
//!   recording the layout it was allocated with: spans (large blocks) and
//!   blocks made inside a witness scope. The header sits in the alignment
//!   padding, so large C blocks are 16-byte aligned (as glibc's are), or
//!   aligned as asked by `posix_memalign`.

use core::alloc::Layout;
use core::ptr;

use crate::size_class::{class_for, is_small, CLASS_SIZE};
use crate::{heap, segment, witness};

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
        // SAFETY: `class_for` gives a valid class for small requests.
        if let Some(p) = unsafe { heap::alloc_unscoped(class, size, zeroed) } {
            return p;
        }
    }
    alloc_with_header(size, align, zeroed)
}

/// The header path of [`alloc`]: large blocks, and every block made inside
/// a witness scope.
#[inline(never)]
fn alloc_with_header(size: usize, align: usize, zeroed: bool) -> *mut u8 {
    // The block starts `align` (≥ 16) bytes in, so the header fits just
    // below it and the block keeps the alignment.
    // `size.max(1)`: a zero-size request must still get a pointer *inside*
    // its span (one past the end could be another allocation's memory —
    // fuzzing found one landing on a segment header).
    let Some(total) = size.max(1).checked_add(align) else {
        return ptr::null_mut();
    };
    let Ok(layout) = Layout::from_size_align(total, align) else {
        return ptr::null_mut();
    };
    let base = crate::alloc_layout(layout, zeroed);
    if base.is_null() {
        return base;
    }
    // SAFETY: `base` has `total = size + align` bytes; the header occupies
    // the 16 bytes below `base + align`.
    unsafe {
        let p = base.add(align);
        p.sub(HEADER).cast::<Header>().write(Header { size: total, align });
        p
    }
}

/// The layout and base of a header block.
///
/// # Safety
/// `p` must be a live header block from [`alloc`].
unsafe fn header_of(p: *mut u8) -> (*mut u8, Layout) {
    // SAFETY: caller contract: the header is right below `p`.
    unsafe {
        let h = p.sub(HEADER).cast::<Header>().read();
        (p.sub(h.align), Layout::from_size_align_unchecked(h.size, h.align))
    }
}

/// Frees a block from [`alloc`] (null is ignored).
///
/// # Safety
/// `p` must be null or a live block from [`alloc`] / [`realloc`].
#[inline]
pub unsafe fn free(p: *mut u8) {
    if segment::contains(p) {
        // SAFETY: caller contract: a live small block.
        unsafe { heap::free(p, usize::MAX, 0) };
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
        let (base, layout) = header_of(p);
        crate::dealloc_layout(base, layout);
    }
}

/// Bytes usable at `p` (at least what was asked for).
///
/// # Safety
/// `p` must be a live block from [`alloc`] / [`realloc`].
pub unsafe fn usable_size(p: *mut u8) -> usize {
    if segment::contains(p) {
        // SAFETY: caller contract: a live small block; its page is valid.
        unsafe { (*segment::page_of(p)).block_size as usize }
    } else {
        // SAFETY: caller contract.
        let (_, layout) = unsafe { header_of(p) };
        layout.size() - layout.align()
    }
}

/// Resizes `p` to `new_size` bytes keeping its contents. The result keeps
/// the block's alignment when it is resized in place (same size class, or a
/// span remapped); a moved block is 16-byte aligned (C `realloc` semantics).
/// Null on failure, the old block intact.
///
/// # Safety
/// `p` must be a live block from [`alloc`].
pub unsafe fn realloc(p: *mut u8, new_size: usize) -> *mut u8 {
    // SAFETY: caller contract.
    let old = unsafe { usable_size(p) };
    if segment::contains(p) {
        // Keep the block if the new size still fits its class (shrinks by
        // more than a class are moved so the memory can be reused).
        // SAFETY: as above.
        let class = unsafe { (*segment::page_of(p)).class } as usize;
        if new_size <= old && (class == 0 || new_size > CLASS_SIZE[class - 1] as usize) {
            return p;
        }
    } else if !witness::contains(p) && !is_small(new_size, HEADER) {
        // Span to span: let the OS move page tables instead of bytes.
        // SAFETY: caller contract: a live header block.
        unsafe {
            let (base, layout) = header_of(p);
            if let Some(total) = new_size.checked_add(layout.align()) {
                let q = crate::span::realloc_in_place(base, layout.size(), layout.align(), total);
                if !q.is_null() {
                    let np = q.add(layout.align());
                    np.sub(HEADER).cast::<Header>().write(Header {
                        size: total,
                        align: layout.align(),
                    });
                    return np;
                }
            }
        }
    }
    let q = alloc(new_size, HEADER, false);
    if q.is_null() {
        return q;
    }
    // SAFETY: both blocks are live and distinct; `min(old, new_size)` bytes
    // are valid in both.
    unsafe {
        ptr::copy_nonoverlapping(p, q, old.min(new_size));
        free(p);
    }
    q
}

/// `pthread_atfork` *prepare* handler: takes every process-wide allocator
/// lock, in one fixed order, so that no other thread holds one at the
/// moment of the fork. Rust programs get this registered automatically at
/// the first allocation; the C ABI library registers it in its constructor.
pub extern "C" fn fork_prepare() {
    heap::fork_lock();
    segment::fork_lock();
    crate::pool::fork_lock();
    witness::fork_lock();
}

/// `pthread_atfork` *parent* handler: releases what `fork_prepare` took.
pub extern "C" fn fork_parent() {
    // SAFETY: only ever registered together with `fork_prepare`, which ran
    // just before in this process.
    unsafe { release_all() }
}

/// `pthread_atfork` *child* handler: releases what `fork_prepare` took (the
/// child has one thread, ours, which holds them all).
pub extern "C" fn fork_child() {
    // SAFETY: as for `fork_parent`; the child inherited the held locks.
    unsafe { release_all() }
}

unsafe fn release_all() {
    // SAFETY: caller contract: `fork_prepare` took these locks.
    unsafe {
        witness::fork_unlock();
        crate::pool::fork_unlock();
        segment::fork_unlock();
        heap::fork_unlock();
    }
}
