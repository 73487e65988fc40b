//! # nalloc-capi — zk-nalloc as the C allocator
//!
//! This crate builds `libnalloc.so` (and `libnalloc.a`), which exports the C
//! allocation API — `malloc`, `free`, `calloc`, `realloc`, `reallocarray`,
//! `posix_memalign`, `aligned_alloc`, `memalign`, `valloc`, `pvalloc`,
//! `malloc_usable_size`, `cfree`, and C23's `free_sized` and `free_aligned_sized` —
//! with glibc's behaviour, served by the same
//! engine as the Rust global allocator [`zk_nalloc::NAlloc`]. Load it with
//! `LD_PRELOAD=libnalloc.so` or link it with `-lnalloc`.
//!
//! It also exports the extras declared in `include/nalloc.h`: witness
//! (secret) memory, a statistics snapshot and trimming; see [`extras`].
//!
//! ## Rules this crate keeps
//!
//! * **No recursion through `malloc`.** The library's own Rust allocations
//!   go to the same engine through `#[global_allocator]` (never `System`,
//!   which would call `malloc`, that is, us). The engine never allocates
//!   through itself on its paths.
//! * **No unwinding across the C boundary.** Every exported function is
//!   written without a panicking operation (checked arithmetic, no indexing
//!   that can fail, no `unwrap`); a panic in an `extern "C"` function would
//!   abort the process in any case.
//! * **`errno`.** Failures set `ENOMEM` (or `EINVAL` where glibc does);
//!   successful calls and `free` leave `errno` as it was. The engine makes
//!   its system calls through `rustix`'s raw-syscall backend, which never
//!   writes `errno`, so the hot paths need no save/restore; the cold entry
//!   points that call into libc themselves (`nalloc_*`, the constructor,
//!   the exit report) save and restore it.
//! * **`fork`.** The engine registers `pthread_atfork` handlers that hold
//!   every allocator lock across `fork` (triggered from this library's
//!   constructor); this library adds one for its own witness lock, so that
//!   a child never inherits a lock held by a thread that does not exist
//!   there (see `src/init.rs`).
//! * **`NALLOC_STATS=1`** prints a summary to stderr at exit, formatted on
//!   the stack and written with `write(2)`.
//! * **Initial-exec TLS.** The engine is built with its `initial-exec-tls`
//!   feature: on x86-64 Linux the per-thread heap pointer is read without a
//!   `__tls_get_addr` call (c-small under LD_PRELOAD 0.63 -> 0.59 s). The
//!   library is therefore marked `STATIC_TLS`: load it at start-up
//!   (`LD_PRELOAD`, linking), not with a late `dlopen`.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

use core::ffi::c_int;

pub mod extras;
mod fmt;
mod init;
mod lock;
pub mod malloc;

/// The allocator behind every C call and every Rust allocation of this
/// library. One engine: a block from `malloc` may be freed by Rust code of
/// this library and the other way round.
#[global_allocator]
pub static ALLOC: zk_nalloc::NAlloc = zk_nalloc::NAlloc::new();

/// Reads `errno`.
#[inline]
pub(crate) fn errno() -> c_int {
    // SAFETY: `__errno_location` returns the calling thread's errno slot,
    // valid for the thread's lifetime.
    unsafe { *libc::__errno_location() }
}

/// Writes `errno`.
#[inline]
pub(crate) fn set_errno(e: c_int) {
    // SAFETY: as in `errno`.
    unsafe { *libc::__errno_location() = e }
}

/// Saves `errno` and restores it on drop (for cold paths that call libc).
pub(crate) struct KeepErrno(c_int);

impl KeepErrno {
    /// Saves the current `errno`.
    #[inline]
    pub(crate) fn new() -> Self {
        Self(errno())
    }
}

impl Drop for KeepErrno {
    #[inline]
    fn drop(&mut self) {
        set_errno(self.0);
    }
}
