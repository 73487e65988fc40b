//! Library constructor, `fork` handlers and the `NALLOC_STATS` exit report.
//!
//! The constructor (an `.init_array` entry, run when the library is loaded)
//!
//! 1. initialises the engine: it reads `NALLOC_HUGE_PAGES` and
//!    `NALLOC_POOL_CAP` and registers the engine's `pthread_atfork` handlers
//!    (private to the engine), which hold every
//!    allocator lock across `fork` so that a child never inherits a lock
//!    held by a thread that does not exist there;
//! 2. registers this library's handlers for its witness lock. They are
//!    registered *after* the engine's, so their *prepare* runs *before* the
//!    engine's (POSIX runs prepare handlers in reverse order of
//!    registration): a thread inside a witness call, holding our lock and
//!    waiting for an engine lock, finishes before the engine's locks are
//!    taken;
//! 3. if `NALLOC_STATS` is set (and not empty or `0`), registers with
//!    `atexit` a report that prints the allocator's figures to stderr.
//!
//! Many programs close stderr at exit before our `atexit` handler runs
//! (coreutils' and tar's `close_stdout` closes both standard streams; our
//! handler, registered first, runs last). So the constructor also keeps a
//! close-on-exec duplicate of stderr, and the report goes to fd 2 if it is
//! still the file it was at start-up, else to the duplicate if that still is
//! — never to a descriptor that now names some other file.
//!
//! Nothing here allocates through `malloc` except what libc itself does
//! inside `pthread_atfork`/`atexit`, which is served by the engine, already
//! initialised by then.

use core::fmt::Write as _;
use core::sync::atomic::{AtomicI32, AtomicU64, Ordering::Relaxed};

use crate::extras::{NallocCounters, NallocStats, WITNESS_LOCK};
use crate::fmt::StackBuf;
use crate::{KeepErrno, ALLOC};

/// The library constructor (see the module docs). Its `.init_array` entry
/// is in [`crate::malloc`].
pub(crate) extern "C" fn nalloc_init() {
    let _keep = KeepErrno::new();
    // Reads the environment and registers the engine's fork handlers (once,
    // whichever of this call or the first allocation comes first).
    let _ = ALLOC.huge_pages();
    // SAFETY: plain functions without captured state; no other precondition.
    unsafe { libc::pthread_atfork(Some(fork_prepare), Some(fork_parent), Some(fork_child)) };
    if foreign_forwarded() {
        forward_foreign();
    }
    if stats_requested() {
        if let Some((dev, ino)) = identity(2) {
            STDERR_DEV.store(dev, Relaxed);
            STDERR_INO.store(ino, Relaxed);
            // A high number, out of the way of programs that expect the
            // lowest free descriptors (lower ones if RLIMIT_NOFILE is small).
            let fd = [1000, 200, 3]
                .into_iter()
                // SAFETY: fcntl on a descriptor we just checked is open.
                .map(|min| unsafe { libc::fcntl(2, libc::F_DUPFD_CLOEXEC, min) })
                .find(|&fd| fd >= 0)
                .unwrap_or(-1);
            STDERR_DUP.store(fd, Relaxed);
            // SAFETY: `report` is a plain function that stays loaded until
            // exit (a preloaded or linked library is not unloaded before).
            unsafe { libc::atexit(report) };
        }
    }
}

/// True if `NALLOC_FOREIGN_FREE=forward`: pointers the engine did not hand
/// out go to the C library's functions instead of stopping the process.
fn foreign_forwarded() -> bool {
    // SAFETY: a NUL-terminated name; getenv's result is read before any
    // call that could change the environment.
    let v = unsafe { libc::getenv(c"NALLOC_FOREIGN_FREE".as_ptr()) };
    // SAFETY: non-null results of getenv are NUL-terminated strings.
    !v.is_null() && unsafe { core::ffi::CStr::from_ptr(v) }.to_bytes() == b"forward"
}

/// Registers the next `free`, `realloc` and `malloc_usable_size` in symbol
/// order after this library's (the C library's) as the engine's handlers of
/// foreign pointers. Nothing changes if any is missing.
fn forward_foreign() {
    static FOREIGN: std::sync::OnceLock<zk_nalloc::raw::Foreign> = std::sync::OnceLock::new();
    let sym = |name: &core::ffi::CStr| {
        // SAFETY: a NUL-terminated name; RTLD_NEXT is a valid pseudo-handle.
        unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr()) }
    };
    let (free, realloc, usable) = (sym(c"free"), sym(c"realloc"), sym(c"malloc_usable_size"));
    if free.is_null() || realloc.is_null() || usable.is_null() {
        return;
    }
    // SAFETY: the C library's functions with these C signatures.
    let f = FOREIGN.get_or_init(|| unsafe {
        zk_nalloc::raw::Foreign {
            free: core::mem::transmute::<*mut libc::c_void, unsafe extern "C" fn(*mut libc::c_void)>(free),
            realloc: core::mem::transmute::<
                *mut libc::c_void,
                unsafe extern "C" fn(*mut libc::c_void, usize) -> *mut libc::c_void,
            >(realloc),
            usable_size: core::mem::transmute::<*mut libc::c_void, unsafe extern "C" fn(*mut libc::c_void) -> usize>(
                usable,
            ),
        }
    });
    // SAFETY: the C library's functions accept the C library's blocks, which
    // are the only foreign pointers a correct program passes us.
    unsafe { zk_nalloc::raw::forward_foreign(f) };
}

/// Device and inode of the file stderr named at start-up.
static STDERR_DEV: AtomicU64 = AtomicU64::new(0);
/// See [`STDERR_DEV`].
static STDERR_INO: AtomicU64 = AtomicU64::new(0);
/// Our close-on-exec duplicate of start-up stderr (-1 if none).
static STDERR_DUP: AtomicI32 = AtomicI32::new(-1);

/// The (device, inode) of the file open at `fd`, if any.
fn identity(fd: libc::c_int) -> Option<(u64, u64)> {
    if fd < 0 {
        return None;
    }
    // SAFETY: an all-zero `stat` is a valid value of the plain C struct.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    // SAFETY: `st` is a valid out-pointer; fstat only reports EBADF on a
    // closed descriptor.
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return None;
    }
    Some((st.st_dev as u64, st.st_ino as u64))
}

/// Where the report may go: fd 2 or our duplicate, whichever still names
/// start-up stderr.
fn report_fd() -> Option<libc::c_int> {
    let want = Some((STDERR_DEV.load(Relaxed), STDERR_INO.load(Relaxed)));
    let dup = STDERR_DUP.load(Relaxed);
    [2, dup].into_iter().find(|&fd| identity(fd) == want)
}

/// Before `fork`: take the witness lock.
unsafe extern "C" fn fork_prepare() {
    WITNESS_LOCK.acquire();
}

/// After `fork`, in the parent: release the witness lock.
unsafe extern "C" fn fork_parent() {
    // SAFETY: `fork_prepare` took it in this thread just before the fork.
    unsafe { WITNESS_LOCK.release() };
}

/// After `fork`, in the child: release the inherited witness lock.
unsafe extern "C" fn fork_child() {
    // SAFETY: the child's only thread is the one that took it in
    // `fork_prepare`.
    unsafe { WITNESS_LOCK.release() };
}

/// True if `NALLOC_STATS` is set to something other than "" or "0"
/// (`getenv` does not allocate).
fn stats_requested() -> bool {
    // SAFETY: the name is NUL-terminated; getenv only reads it.
    let v = unsafe { libc::getenv(c"NALLOC_STATS".as_ptr()) };
    if v.is_null() {
        return false;
    }
    // SAFETY: getenv returns a NUL-terminated string; we read at most its
    // first two bytes, stopping at the NUL.
    let (a, b) = unsafe {
        let a = *v;
        (a, if a == 0 { 0 } else { *v.add(1) })
    };
    !(a == 0 || (a == b'0' as libc::c_char && b == 0))
}

/// Writes `n` bytes both exactly and in a readable unit: `123 (0.1 KiB)`.
fn bytes<const N: usize>(out: &mut StackBuf<N>, name: &str, n: usize) {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut unit = 0;
    let mut whole = n as u64;
    let mut rem = 0u64;
    while whole >= 1024 && unit + 1 < UNITS.len() {
        rem = whole % 1024;
        whole /= 1024;
        unit += 1;
    }
    let tenth = rem * 10 / 1024;
    let u = UNITS.get(unit).copied().unwrap_or("B");
    let _ = write!(out, " {name}={n} ({whole}.{tenth} {u})");
}

/// The `NALLOC_STATS` report: a few lines on stderr, formatted on the stack
/// and written with `write(2)` (usable at exit, never allocating).
extern "C" fn report() {
    let _keep = KeepErrno::new();
    let Some(fd) = report_fd() else {
        return;
    };
    let s = NallocStats::current();
    let c = NallocCounters::current();
    // SAFETY: getpid has no preconditions and cannot fail.
    let pid = unsafe { libc::getpid() };
    let mut out = StackBuf::<2048>::new();
    let _ = writeln!(
        out,
        "nalloc: pid={pid} small_allocs={} small_frees={} large_allocs={} large_frees={} pool_hits={} heaps={}",
        s.small_allocs, s.small_frees, s.large_allocs, s.large_frees, s.pool_hits, s.heaps
    );
    let _ = write!(out, "nalloc:");
    bytes(&mut out, "peak_mapped", s.peak_mapped);
    bytes(&mut out, "mapped", s.mapped);
    bytes(&mut out, "pool_retained", s.pool_retained);
    bytes(&mut out, "returned_to_os", s.returned_to_os);
    // Warm pooled pages moved into larger blocks instead of fresh faults
    // (not in `struct nalloc_stats`, whose layout is the ABI).
    bytes(&mut out, "gathered", ALLOC.stats().span_gathered_bytes as usize);
    let _ = writeln!(out);
    let _ = write!(out, "nalloc:");
    bytes(&mut out, "large_peak", s.large_peak);
    bytes(&mut out, "witness_peak", s.witness_peak);
    bytes(&mut out, "witness_capacity", s.witness_capacity);
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "nalloc: events lock_acquisitions={} lock_contended={} remote_batches={} remote_blocks={} \
         remote_atomics={} remote_kept={} remote_collects={} remote_collected={}",
        c.lock_acquisitions,
        c.lock_contended,
        c.remote_batches,
        c.remote_blocks,
        c.remote_atomics,
        c.remote_kept,
        c.remote_collects,
        c.remote_collected
    );
    let _ = writeln!(
        out,
        "nalloc: os_calls map={} unmap={} remap={} advise={} purge={} protect={} query={}",
        c.os_map, c.os_unmap, c.os_remap, c.os_advise, c.os_purge, c.os_protect, c.os_query
    );
    out.write_to_fd(fd);
}
