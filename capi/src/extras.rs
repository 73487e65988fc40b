//! nalloc's own C entry points, declared in `include/nalloc.h`: witness
//! (secret) memory, a statistics snapshot and trimming.
//!
//! ## Witness blocks
//!
//! `nalloc_witness_alloc` serves blocks from the engine's process-wide
//! witness arena through its C front ([`zk_nalloc::raw::witness_alloc`]):
//! zeroed when handed out, wiped when freed, locked against swap (`mlock`,
//! within `RLIMIT_MEMLOCK`), excluded from core dumps and read as zero in
//! forked children. They are ordinary blocks of the C front otherwise:
//! `realloc` keeps them in witness memory (wiping every place a block
//! leaves), `malloc_usable_size` knows their size, and `free` wipes them
//! too.
//!
//! The three `nalloc_witness_*` calls are serialised by one lock, so that
//! `nalloc_witness_wipe_all` never runs beside another of them; this
//! library's `fork` handlers hold it across `fork` (see `src/init.rs`).

use core::ffi::{c_int, c_void};

use crate::lock::RawLock;
use zk_nalloc::raw;

use crate::{set_errno, KeepErrno, ALLOC};

/// Serialises the C witness entry points; held across `fork`.
pub(crate) static WITNESS_LOCK: RawLock = RawLock::new();

/// Allocates `size` bytes of zeroed witness memory, 16-byte aligned; NULL
/// and `ENOMEM` on failure. Free it with [`nalloc_witness_free`] (or `free`,
/// which wipes it too); it is invalidated by [`nalloc_witness_wipe_all`].
#[no_mangle]
pub extern "C" fn nalloc_witness_alloc(size: usize) -> *mut c_void {
    let p = {
        let _keep = KeepErrno::new();
        WITNESS_LOCK.with(|| raw::witness_alloc(size))
    };
    if p.is_null() {
        set_errno(libc::ENOMEM);
    }
    p.cast()
}

/// Wipes and frees a block from [`nalloc_witness_alloc`]; NULL is ignored.
/// A pointer outside witness memory, or a block freed already, is reported
/// on stderr in one line and the process aborts — never a free of someone
/// else's block. `errno` is preserved.
///
/// # Safety
/// `p` must be NULL, a live block from [`nalloc_witness_alloc`] not
/// invalidated by [`nalloc_witness_wipe_all`] (and not used afterwards), or
/// a pointer whose 16 bytes below are readable.
#[no_mangle]
pub unsafe extern "C" fn nalloc_witness_free(p: *mut c_void) {
    let _keep = KeepErrno::new();
    WITNESS_LOCK.with(|| {
        // SAFETY: caller contract.
        unsafe { raw::witness_free(p.cast()) }
    });
}

/// Zeroes every byte of witness memory the engine's process-wide witness
/// arena ever handed out (live or freed) and forgets all its blocks: every
/// pointer from [`nalloc_witness_alloc`] becomes invalid (do not free it).
/// Meant for the end of a proof. `errno` is preserved.
///
/// # Safety
/// No block from [`nalloc_witness_alloc`] may be used or freed afterwards.
#[no_mangle]
pub unsafe extern "C" fn nalloc_witness_wipe_all() {
    let _keep = KeepErrno::new();
    WITNESS_LOCK.with(|| {
        // SAFETY: caller contract: no block of the arena is used afterwards;
        // the lock keeps the other witness calls out meanwhile.
        unsafe { raw::witness_wipe_all() }
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
            witness_locked: c_int::from(s.witness_scope.locked),
            witness_dump_excluded: c_int::from(s.witness_scope.dump_excluded),
            witness_fork_wiped: c_int::from(s.witness_scope.fork_wiped),
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

/// The C mirror of [`zk_nalloc::EventCounts`] (`struct nalloc_counters` in
/// `nalloc.h`; keep both in the same order): slow-path events since start.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct NallocCounters {
    /// Spin-lock acquisitions on the slow paths (all locks).
    pub lock_acquisitions: u64,
    /// ... of which the first try found the lock held.
    pub lock_contended: u64,
    /// Batches of cross-thread frees handed to their pages' owners.
    pub remote_batches: u64,
    /// Blocks in those batches.
    pub remote_blocks: u64,
    /// Atomic read-modify-writes those hand-overs took.
    pub remote_atomics: u64,
    /// Batches of other threads' blocks kept for the freeing thread's reuse.
    pub remote_kept: u64,
    /// Owners' collections that found cross-thread frees.
    pub remote_collects: u64,
    /// Blocks those collections took back.
    pub remote_collected: u64,
    /// `mmap` calls (mappings and reservations).
    pub os_map: u64,
    /// `munmap` calls.
    pub os_unmap: u64,
    /// `mremap` calls.
    pub os_remap: u64,
    /// `madvise`/`prctl` hints and flags (huge pages, secrets, names).
    pub os_advise: u64,
    /// Ranges purged or decommitted.
    pub os_purge: u64,
    /// `mprotect` (commits) and `mlock`/`munlock` calls.
    pub os_protect: u64,
    /// `mincore` samples.
    pub os_query: u64,
}

// The layout `nalloc.h` declares (15 × u64).
const _: () = assert!(core::mem::size_of::<NallocCounters>() == 120);

impl NallocCounters {
    /// `ALLOC`'s event counts in C form.
    pub(crate) fn current() -> Self {
        let e = ALLOC.stats().events;
        Self {
            lock_acquisitions: e.lock_acquisitions,
            lock_contended: e.lock_contended,
            remote_batches: e.remote_batches,
            remote_blocks: e.remote_blocks,
            remote_atomics: e.remote_atomics,
            remote_kept: e.remote_kept,
            remote_collects: e.remote_collects,
            remote_collected: e.remote_collected,
            os_map: e.os_map,
            os_unmap: e.os_unmap,
            os_remap: e.os_remap,
            os_advise: e.os_advise,
            os_purge: e.os_purge,
            os_protect: e.os_protect,
            os_query: e.os_query,
        }
    }
}

/// Fills `*out` with the allocator's slow-path event counts (a separate
/// struct from `nalloc_stats`, whose layout stays as it was). Returns 0, or
/// `EINVAL` (without touching `errno`) if `out` is NULL.
///
/// # Safety
/// `out` must be NULL or valid for writing a `struct nalloc_counters`.
#[no_mangle]
pub unsafe extern "C" fn nalloc_counters(out: *mut NallocCounters) -> c_int {
    if out.is_null() {
        return libc::EINVAL;
    }
    let _keep = KeepErrno::new();
    let c = NallocCounters::current();
    // SAFETY: caller contract: `out` is writable.
    unsafe { out.write(c) };
    0
}

/// Returns retained memory to the OS, process-wide: now the warm span pool,
/// cached empty segments, the calling thread's empty pages and those of
/// exited threads' heaps (other threads' frees into them included); every
/// other live thread's heap at its next refill or large allocation. Returns
/// the bytes released now. `errno` is preserved.
#[no_mangle]
pub extern "C" fn nalloc_trim() -> usize {
    let _keep = KeepErrno::new();
    ALLOC.trim()
}

/// glibc's `malloc_trim`: returns free memory to the OS, process-wide, as
/// [`nalloc_trim`] does. `pad` is ignored (nothing is kept at a heap's
/// top here). Returns 1 if memory was released, else 0, as glibc does.
#[no_mangle]
pub extern "C" fn malloc_trim(_pad: usize) -> libc::c_int {
    libc::c_int::from(nalloc_trim() > 0)
}

/// Opens a proof phase named `name` (a NUL-terminated string, cut to 31
/// bytes; NULL: `"(null)"`): what the process allocates until the matching
/// [`nalloc_phase_end`] counts to it (see `zk_nalloc::NAlloc::phase`).
/// Phases are process-wide and nest. `errno` is preserved.
///
/// # Safety
/// `name` must be NULL or a valid NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn nalloc_phase_begin(name: *const libc::c_char) {
    let _keep = KeepErrno::new();
    let name: &[u8] = if name.is_null() {
        b"(null)"
    } else {
        // SAFETY: caller contract: a NUL-terminated string.
        unsafe { core::ffi::CStr::from_ptr(name) }.to_bytes()
    };
    zk_nalloc::raw::phase_begin(name);
}

/// Closes the innermost open phase (nothing if none is open). `errno` is
/// preserved.
#[no_mangle]
pub extern "C" fn nalloc_phase_end() {
    let _keep = KeepErrno::new();
    zk_nalloc::raw::phase_end();
}

/// Restarts every peak of `nalloc_stats` (`peak_mapped`, `large_peak`) at
/// its current value, so that each job's peak can be measured.
#[no_mangle]
pub extern "C" fn nalloc_reset_peaks() {
    let _keep = KeepErrno::new();
    ALLOC.reset_peaks();
}

/// Sets the memory budget in bytes (0: none), overriding `NALLOC_BUDGET`:
/// a `malloc` that would take nalloc's committed memory past it returns
/// NULL with `errno = ENOMEM`.
#[no_mangle]
pub extern "C" fn nalloc_set_budget(bytes: usize) {
    let _keep = KeepErrno::new();
    ALLOC.set_budget(if bytes == 0 { None } else { Some(bytes) });
}
