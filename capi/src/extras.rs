//! nalloc's own C entry points, declared in `include/nalloc.h`: witness
//! (secret) memory, a statistics snapshot and trimming.
//!
//! ## Witness blocks
//!
//! `nalloc_witness_alloc` serves blocks from the library's witness arena
//! ([`zk_nalloc::WitnessArena`]): zeroed when handed out, wiped when freed,
//! locked against swap (`mlock`, within `RLIMIT_MEMLOCK`), excluded from
//! core dumps and read as zero in forked children. Each block carries a
//! 16-byte header just below the returned pointer holding its size and a
//! tag, so `nalloc_witness_free` needs only the pointer. The header is part
//! of the witness block and is wiped with it.
//!
//! The arena's calls are serialised by one lock that this library's `fork`
//! handlers hold across `fork` (see `src/init.rs`).

use core::ffi::{c_int, c_void};
use core::ptr;

use crate::lock::RawLock;
use crate::{set_errno, KeepErrno, ALLOC};

/// Serialises the C witness entry points; held across `fork`.
pub(crate) static WITNESS_LOCK: RawLock = RawLock::new();

/// Bytes in front of every witness block: `[size, TAG]`.
const WITNESS_HEADER: usize = 16;
/// Alignment of witness blocks (and of their header).
const WITNESS_ALIGN: usize = 16;
/// Marks a live witness header ("nallocWB"); a wiped header reads 0.
const TAG: usize = 0x6e61_6c6c_6f63_5742;

/// Allocates `size` bytes of zeroed witness memory, 16-byte aligned; NULL
/// and `ENOMEM` on failure. Free it with [`nalloc_witness_free`] only.
///
/// The block must be released with [`nalloc_witness_free`] (never `free`)
/// and is invalidated by [`nalloc_witness_wipe_all`].
#[no_mangle]
pub extern "C" fn nalloc_witness_alloc(size: usize) -> *mut c_void {
    let Some(total) = size.checked_add(WITNESS_HEADER) else {
        set_errno(libc::ENOMEM);
        return ptr::null_mut();
    };
    let base = {
        let _keep = KeepErrno::new();
        WITNESS_LOCK.with(|| ALLOC.witness().alloc(total, WITNESS_ALIGN))
    };
    if base.is_null() {
        set_errno(libc::ENOMEM);
        return ptr::null_mut();
    }
    // SAFETY: `base` is a fresh, 16-aligned block of `total` ≥ 16 bytes; the
    // header takes its first 16 bytes, the caller gets the rest.
    unsafe {
        base.cast::<[usize; 2]>().write([size, TAG]);
        base.add(WITNESS_HEADER).cast()
    }
}

/// Wipes and frees a block from [`nalloc_witness_alloc`]; NULL is ignored,
/// and so is a pointer whose header does not carry the witness tag (it is
/// then left untouched rather than risk corrupting the arena). `errno` is
/// preserved.
///
/// # Safety
/// `p` must be NULL or a live block from [`nalloc_witness_alloc`] not
/// invalidated by [`nalloc_witness_wipe_all`], and not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn nalloc_witness_free(p: *mut c_void) {
    if p.is_null() {
        return;
    }
    let _keep = KeepErrno::new();
    // SAFETY: caller contract: `p` is 16 bytes into a live witness block.
    let (base, [size, tag]) = unsafe {
        let base = p.cast::<u8>().sub(WITNESS_HEADER);
        (base, base.cast::<[usize; 2]>().read())
    };
    if tag != TAG {
        return;
    }
    let Some(total) = size.checked_add(WITNESS_HEADER) else {
        return;
    };
    WITNESS_LOCK.with(|| {
        // SAFETY: `base` came from the arena's `alloc(total, WITNESS_ALIGN)`
        // (its header says so) and the caller gives it up.
        unsafe { ALLOC.witness().dealloc(base, total, WITNESS_ALIGN) }
    });
}

/// Zeroes every byte of witness memory this library ever handed out (live
/// or freed) and forgets all its blocks: every pointer from
/// [`nalloc_witness_alloc`] becomes invalid (do not free it). Meant for the
/// end of a proof. `errno` is preserved.
///
/// # Safety
/// No block from [`nalloc_witness_alloc`] may be used or freed afterwards.
#[no_mangle]
pub unsafe extern "C" fn nalloc_witness_wipe_all() {
    let _keep = KeepErrno::new();
    WITNESS_LOCK.with(|| {
        // SAFETY: caller contract: no block of the arena is used afterwards.
        unsafe { ALLOC.witness().secure_wipe() }
    });
}

/// The C mirror of [`zk_nalloc::Stats`] (`struct nalloc_stats` in
/// `nalloc.h`; keep both in the same order).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct NallocStats {
    /// Small-object allocations so far.
    pub small_allocs: u64,
    /// Small-object frees so far.
    pub small_frees: u64,
    /// Large (span) allocations so far.
    pub large_allocs: u64,
    /// Large (span) frees so far.
    pub large_frees: u64,
    /// Span allocations served from the warm pool.
    pub pool_hits: u64,
    /// Thread heaps created (the peak number of live threads).
    pub heaps: usize,
    /// Bytes mapped from the OS now (not witness memory).
    pub mapped: usize,
    /// Highest `mapped` seen.
    pub peak_mapped: usize,
    /// Bytes of freed spans kept warm for reuse.
    pub pool_retained: usize,
    /// Bytes given back to the OS so far.
    pub returned_to_os: usize,
    /// Bytes in live large blocks.
    pub large_used: usize,
    /// Highest `large_used` seen.
    pub large_peak: usize,
    /// Bytes mapped for large blocks: live spans plus the warm pool.
    pub large_capacity: usize,
    /// Bytes in live witness blocks (all witness arenas).
    pub witness_used: usize,
    /// Highest `witness_used` seen.
    pub witness_peak: usize,
    /// Bytes committed for witness memory.
    pub witness_capacity: usize,
    /// 1 if every witness chunk of the C arena is locked in RAM.
    pub witness_locked: c_int,
    /// 1 if witness chunks are excluded from core dumps.
    pub witness_dump_excluded: c_int,
    /// 1 if witness chunks read as zero in forked children.
    pub witness_fork_wiped: c_int,
    /// Reserved; 0.
    pub reserved: c_int,
}

// The layout `nalloc.h` declares (LP64: 5 × u64, 11 × size_t, 4 × int).
#[cfg(target_pointer_width = "64")]
const _: () = assert!(core::mem::size_of::<NallocStats>() == 144);

impl NallocStats {
    /// The snapshot of `ALLOC` in C form.
    pub(crate) fn current() -> Self {
        let s = ALLOC.stats();
        Self {
            small_allocs: s.small_allocs,
            small_frees: s.small_frees,
            large_allocs: s.large_allocs,
            large_frees: s.large_frees,
            pool_hits: s.pool_hits,
            heaps: s.heaps,
            mapped: s.mapped,
            peak_mapped: s.peak_mapped,
            pool_retained: s.pool_retained,
            returned_to_os: s.returned_to_os,
            large_used: s.polynomial_used,
            large_peak: s.polynomial_peak,
            large_capacity: s.polynomial_capacity,
            witness_used: s.witness_used,
            witness_peak: s.witness_peak,
            witness_capacity: s.witness_capacity,
            witness_locked: c_int::from(s.witness.locked),
            witness_dump_excluded: c_int::from(s.witness.dump_excluded),
            witness_fork_wiped: c_int::from(s.witness.fork_wiped),
            reserved: 0,
        }
    }
}

/// Fills `*out` with the allocator's current figures. Returns 0, or
/// `EINVAL` (without touching `errno`) if `out` is NULL.
///
/// # Safety
/// `out` must be NULL or valid for writing a `struct nalloc_stats`.
#[no_mangle]
pub unsafe extern "C" fn nalloc_stats(out: *mut NallocStats) -> c_int {
    if out.is_null() {
        return libc::EINVAL;
    }
    let _keep = KeepErrno::new();
    let s = NallocStats::current();
    // SAFETY: caller contract: `out` is writable.
    unsafe { out.write(s) };
    0
}

/// Returns retained memory to the OS now: the warm span pool, cached empty
/// segments and the calling thread's empty pages. Returns the bytes released
/// from the pool and segment cache. `errno` is preserved.
#[no_mangle]
pub extern "C" fn nalloc_trim() -> usize {
    let _keep = KeepErrno::new();
    ALLOC.trim()
}
