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

use core::ffi::c_void;
use core::ptr;
use core::sync::atomic::{AtomicPtr, Ordering};

use super::lifecycle;
use super::route::{self, Block, Front, Home};
use crate::arenas::witness;
use crate::base::check::fail;
use crate::base::key::Key;
use crate::small::segment;
use crate::small::size_class::{class_for, is_small};

/// The 16 bytes just below a header block's pointer.
#[repr(C)]
struct Header {
    /// Size of the underlying allocation (header and padding included).
    size: usize,
    /// [`seal`] of the block: a check value keyed per process, with the
    /// alignment's log2 in its low 6 bits; 0 once the block is freed.
    seal: usize,
}

const HEADER: usize = core::mem::size_of::<Header>();

/// Low bits of a seal that hold log2 of the alignment.
const ALIGN_BITS: usize = 63;

/// The per-process key of [`seal`].
static KEY: Key = Key::new();

#[inline]
fn key() -> usize {
    KEY.get()
}

/// The check value of the header block at `p` (caller's pointer) of `size`
/// bytes aligned to `align`. Never 0 (the low bits hold log2(align) ≥ 4).
#[inline]
fn seal(p: *const u8, size: usize, align: usize) -> usize {
    let h = (p.addr() ^ size.rotate_left(23)).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ key();
    (h.rotate_left(31) & !ALIGN_BITS) | align.trailing_zeros() as usize
}

/// What the C front does with a pointer it did not hand out: the C
/// library's own functions, for programs that mix allocators (a library
/// opened with `RTLD_DEEPBIND` keeps glibc's `malloc`), registered with
/// [`forward_foreign`]. Without them such a pointer stops the process.
#[derive(Clone, Copy, Debug)]
pub struct Foreign {
    /// The C library's `free`.
    pub free: unsafe extern "C" fn(*mut c_void),
    /// The C library's `realloc`.
    pub realloc: unsafe extern "C" fn(*mut c_void, usize) -> *mut c_void,
    /// The C library's `malloc_usable_size`.
    pub usable_size: unsafe extern "C" fn(*mut c_void) -> usize,
}

/// The registered [`Foreign`] functions (null: report and abort).
static FOREIGN: AtomicPtr<Foreign> = AtomicPtr::new(ptr::null_mut());

/// From now on, pointers this front did not hand out go to `f` instead of
/// stopping the process; a bad pointer into witness memory is still
/// reported (nothing there is `f`'s).
///
/// # Safety
/// `f`'s functions must accept every pointer that reaches them: the blocks
/// of the allocator they belong to (and, like any `free`, null).
pub unsafe fn forward_foreign(f: &'static Foreign) {
    FOREIGN.store((f as *const Foreign).cast_mut(), Ordering::Release);
}

/// The registered foreign functions, if any.
fn foreign() -> Option<&'static Foreign> {
    // SAFETY: only `forward_foreign` stores here, a `&'static Foreign`.
    unsafe { FOREIGN.load(Ordering::Acquire).as_ref() }
}

/// Allocates `size` bytes aligned to `align` (a power of two); null on
/// failure, and for an alignment that is not a power of two. Zero-filled
/// if `zeroed`.
///
/// Inlined into the C entry points (another crate), so that `malloc` of a
/// small block is the heap's fast path with no call in between (there the
/// alignment is a constant and its check folds away).
#[inline]
pub fn alloc(size: usize, align: usize, zeroed: bool) -> *mut u8 {
    if !align.is_power_of_two() {
        return ptr::null_mut();
    }
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
    // The route takes valid layouts only (the size rounded up to the
    // alignment fits in isize).
    if core::alloc::Layout::from_size_align(total, align).is_err() {
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
        p.sub(HEADER).cast::<Header>().write(Header {
            size,
            seal: seal(p, size, align),
        });
        p
    }
}

/// What a pointer given to this front is.
enum Found {
    /// A block of this front, as the engine sees it.
    Ours(Block),
    /// A header block already freed (its seal is cleared).
    Freed,
    /// Not a block this front handed out.
    Foreign,
}

/// Classifies `p` (not null) once: a small block if it lies in the segment
/// region; otherwise a header block if the 16 bytes below it carry its seal;
/// otherwise freed or foreign.
///
/// # Safety
/// `p` must be a live block of this front, or a pointer whose 16 bytes
/// below are readable memory.
unsafe fn find(p: *mut u8) -> Found {
    if segment::contains(p) {
        // SAFETY: caller contract: a live small block; its page is valid.
        let size = unsafe { (*segment::page_of(p)).block_size } as usize;
        return Found::Ours(Block {
            base: p,
            size,
            align: HEADER,
            offset: 0,
            home: Home::Small,
        });
    }
    if p.addr() % HEADER != 0 {
        return Found::Foreign; // every C block is at least 16-byte aligned
    }
    let in_witness = witness::contains(p);
    if in_witness && !witness::readable(p.wrapping_sub(HEADER), HEADER) {
        // Its chunk is gone (a large witness block freed already): reading
        // the header would fault.
        return Found::Freed;
    }
    // SAFETY: caller contract: the 16 bytes below `p` are readable.
    let h = unsafe { p.sub(HEADER).cast::<Header>().read() };
    if h.seal == 0 {
        return Found::Freed;
    }
    let align = 1usize << (h.seal & ALIGN_BITS);
    if align < HEADER || h.size <= align || h.seal != seal(p, h.size, align) {
        return Found::Foreign;
    }
    Found::Ours(Block {
        base: p.wrapping_sub(align),
        size: h.size,
        align,
        offset: align,
        home: Home::given(in_witness, h.size, align),
    })
}

/// What an entry point may go on with, once [`checked`] has stopped the
/// process for everything else.
enum Checked {
    /// A live block of this front.
    Ours(Block),
    /// A witness block a `fork` wiped: in a forked child, witness memory
    /// inherited from the parent reads as zero, its header included, so
    /// its size is unknown; its bytes are zero already and it is left alone.
    Inherited,
    /// Not ours, and the C library's functions take such pointers.
    Foreign,
}

/// [`find`] for an entry point that cannot go on with a pointer that is
/// not a live block: reports it in one line and aborts, with the C
/// library's words and the function named (`invalid`: not a block of ours;
/// `freed`: a header block freed already).
///
/// # Safety
/// As for [`find`].
unsafe fn checked(p: *mut u8, invalid: &str, freed: &str) -> Checked {
    // SAFETY: forwarded caller contract.
    match unsafe { find(p) } {
        Found::Ours(b) => Checked::Ours(b),
        Found::Freed if witness::contains(p) && lifecycle::forked() => Checked::Inherited,
        Found::Freed => fail(freed, p.addr()),
        // Nothing in the witness region is the C library's: there a broken
        // seal is a write that strayed into a secret's header, and passing
        // the pointer on would leave the secret unwiped.
        Found::Foreign if foreign().is_some() && !witness::contains(p) => Checked::Foreign,
        Found::Foreign => fail(invalid, p.addr()),
    }
}

/// Clears the seal of a header block about to be freed, so that a second
/// free of it is recognised.
///
/// # Safety
/// `b` must be a live block of this front.
unsafe fn unseal(b: &Block) {
    if b.offset != 0 {
        // SAFETY: caller contract: the header lies inside the live block.
        unsafe { (*b.base.add(b.offset - HEADER).cast::<Header>()).seal = 0 };
    }
}

/// Frees a block from [`alloc`] / [`witness_alloc`] / [`realloc`] (null is
/// ignored). A witness block is wiped. A pointer this front did not hand
/// out, or a header block freed already, is reported on stderr and the
/// process aborts (unless [`forward_foreign`] named the C library's
/// functions for foreign pointers).
///
/// # Safety
/// `p` must be null, a live block of this front, or a pointer whose 16
/// bytes below are readable memory (anything else may fault while it is
/// checked). A small block freed twice is caught only when it is the
/// latest free of its page (the `hardened` feature catches the rest).
#[inline]
pub unsafe fn free(p: *mut u8) {
    if segment::contains(p) {
        // SAFETY: caller contract: a live small block.
        unsafe { route::dealloc_small_unsized(p) };
    } else if !p.is_null() {
        // SAFETY: caller contract.
        unsafe { free_with_header(p) };
    }
}

/// # Safety
/// As for [`free`], outside the segment region.
#[inline(never)]
unsafe fn free_with_header(p: *mut u8) {
    // SAFETY: caller contract.
    unsafe {
        match checked(p, "free(): invalid pointer", "free(): double free") {
            Checked::Ours(b) => {
                unseal(&b);
                route::dealloc_block(&b);
            }
            Checked::Inherited => {}
            Checked::Foreign => forward_free(p),
        }
    }
}

/// Hands a foreign pointer to the C library's `free`.
///
/// # Safety
/// `p` is a block of the registered foreign allocator.
#[cold]
unsafe fn forward_free(p: *mut u8) {
    if let Some(f) = foreign() {
        // SAFETY: caller contract.
        unsafe { (f.free)(p.cast()) }
    }
}

/// Wipes and frees a block from [`witness_alloc`] (or any witness block of
/// this front); null is ignored. A pointer outside witness memory, or a
/// witness block freed already, is reported on stderr and the process
/// aborts: a secret's owner must never free someone else's block.
///
/// # Safety
/// `p` must be null, a live witness block of this front, or a pointer whose
/// 16 bytes below are readable memory.
pub unsafe fn witness_free(p: *mut u8) {
    if p.is_null() {
        return;
    }
    if !witness::contains(p) {
        fail("nalloc_witness_free(): not a witness block", p.addr());
    }
    // SAFETY: caller contract.
    unsafe {
        let found = checked(
            p,
            "nalloc_witness_free(): invalid pointer",
            "nalloc_witness_free(): double free",
        );
        if let Checked::Ours(b) = found {
            unseal(&b);
            route::dealloc_block(&b);
        }
    }
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

/// Bytes usable at `p` (at least what was asked for); a foreign or freed
/// pointer is reported as for [`free`].
///
/// # Safety
/// As for [`free`], with `p` not null.
pub unsafe fn usable_size(p: *mut u8) -> usize {
    // SAFETY: caller contract.
    match unsafe {
        checked(
            p,
            "malloc_usable_size(): invalid pointer",
            "malloc_usable_size(): freed pointer",
        )
    } {
        Checked::Ours(b) => b.size - b.offset,
        Checked::Inherited => 0,
        // SAFETY: a foreign block, with foreign functions registered.
        Checked::Foreign => foreign().map_or(0, |f| unsafe { (f.usable_size)(p.cast()) }),
    }
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

    unsafe fn retire(&self, b: &Block) {
        // SAFETY: caller contract: `b` is live until the route frees it.
        unsafe { unseal(b) }
    }
}

/// Resizes `p` to `new_size` bytes keeping its contents. The result keeps
/// the block's alignment when it is resized in place (same size class, or a
/// span remapped); a moved block is 16-byte aligned (C `realloc` semantics).
/// A witness block stays witness memory. Null on failure, the old block
/// intact.
///
/// A foreign or freed pointer is reported as for [`free`].
///
/// # Safety
/// As for [`free`], with `p` not null.
pub unsafe fn realloc(p: *mut u8, new_size: usize) -> *mut u8 {
    // SAFETY: caller contract.
    let b = match unsafe { checked(p, "realloc(): invalid pointer", "realloc(): freed pointer") } {
        Checked::Ours(b) => b,
        // Its bytes read as zero: so do a new witness block's.
        Checked::Inherited => return witness_alloc(new_size),
        // SAFETY: a foreign block, with foreign functions registered.
        Checked::Foreign => {
            return foreign().map_or(ptr::null_mut(), |f| unsafe { (f.realloc)(p.cast(), new_size).cast() })
        }
    };
    // SAFETY: caller contract: `b` describes a live block of the route.
    unsafe { route::realloc(&CFront, b, new_size) }
}

/// Opens a proof phase named `name` (UTF-8, cut to 31 bytes; other bytes
/// show as `?`) until [`phase_end`]: the C front's counterpart of
/// [`crate::NAlloc::phase`] (`nalloc_phase_begin`), without a guard.
pub fn phase_begin(name: &[u8]) {
    super::phase::begin(name);
}

/// Closes the innermost open phase: the C front's counterpart of dropping a
/// [`crate::PhaseGuard`] (`nalloc_phase_end`), for callers that cannot keep
/// a guard.
pub fn phase_end() {
    super::phase::end(false);
}
