//! The platform layer: every system call nalloc makes goes through here.
//!
//! One file per platform (`linux.rs`, `macos.rs`, `windows.rs`), sharing
//! `posix.rs` for what Linux and macOS have in common. Everything above this
//! module is portable and speaks only in the terms defined here:
//!
//! * **map / unmap** — fresh, zero-filled, read-write memory; always released
//!   whole (Windows cannot release part of a reservation).
//! * **reserve / commit / decommit** — address space first, memory later; the
//!   witness region uses this so that guard pages are simply the parts never
//!   committed.
//! * **purge** — give the physical pages back but keep the range usable; the
//!   range then reads as zero (`MADV_DONTNEED` on Linux).
//! * **advise_huge / remap / lock / protect_secret / name** — the hints and
//!   protections that make polynomial and witness memory special.
//!
//! A test-only switch (`fault-injection` feature) makes the Nth mapping fail
//! so that the layers above can be checked for clean failure handling.

use core::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering, Ordering::Relaxed};

pub(crate) mod cgroup;
#[cfg(all(unix, not(miri)))]
mod posix;

#[cfg(all(target_os = "linux", not(miri)))]
mod linux;
#[cfg(all(target_os = "linux", not(miri)))]
use linux as platform;

#[cfg(all(unix, not(target_os = "linux"), not(miri)))]
mod macos;
#[cfg(all(unix, not(target_os = "linux"), not(miri)))]
use macos as platform;

#[cfg(all(windows, not(miri)))]
mod windows;
#[cfg(all(windows, not(miri)))]
use windows as platform;

#[cfg(miri)]
mod miri;
#[cfg(miri)]
use miri as platform;

/// The largest page size supported (64 KiB: Linux on Arm servers with
/// RHEL's or Oracle's kernels). Structures sized at compile time by the page
/// use this bound; [`page`] is checked against it at start-up.
pub(crate) const PAGE_MAX: usize = 64 << 10;
/// The smallest page size supported (4 KiB).
pub(crate) const PAGE_MIN: usize = 4096;

/// The page size in force (0 until first read).
static PAGE: AtomicUsize = AtomicUsize::new(0);

/// The granule of every mapping, protection and decommit nalloc asks the OS
/// for: the OS's page size (4 KiB on x86-64, 16 KiB on Apple silicon, 4, 16
/// or 64 KiB on aarch64 Linux; Windows' 64 KiB allocation granularity),
/// read once without allocating. Test builds with `--cfg
/// nalloc_sim_page="16384"` (or `"65536"`) use at least that size over the
/// real OS, so that arithmetic that assumes 4 KiB fails their tests (see
/// `.ci/page-sizes.sh`).
#[inline]
pub(crate) fn page() -> usize {
    let p = PAGE.load(Relaxed);
    if p != 0 {
        p
    } else {
        init_page()
    }
}

#[cold]
fn init_page() -> usize {
    let p = simulated_page(platform::page_size());
    if !p.is_power_of_two() || !(PAGE_MIN..=PAGE_MAX).contains(&p) {
        write_stderr(b"nalloc: unsupported page size (expected a power of two from 4 KiB to 64 KiB)\n");
        std::process::abort();
    }
    PAGE.store(p, Relaxed);
    p
}

#[cfg(nalloc_sim_page = "16384")]
fn simulated_page(real: usize) -> usize {
    real.max(16 << 10)
}

#[cfg(nalloc_sim_page = "65536")]
fn simulated_page(real: usize) -> usize {
    real.max(64 << 10)
}

#[cfg(not(any(nalloc_sim_page = "16384", nalloc_sim_page = "65536")))]
fn simulated_page(real: usize) -> usize {
    real
}

/// The size of a transparent/explicit huge page. On Linux what one
/// page-table page of 8-byte entries maps (a PMD entry): 2 MiB with 4 KiB
/// pages, 32 MiB with 16 KiB, 512 MiB with 64 KiB. Elsewhere 2 MiB (Windows'
/// large pages; macOS has none, the placement still suits a later THP-like
/// policy), whatever the allocation granule.
#[inline]
pub(crate) fn huge_page() -> usize {
    if cfg!(all(target_os = "linux", not(miri))) {
        let p = page();
        p * (p / 8)
    } else {
        2 << 20
    }
}

/// In debug builds, stops the process if `ptr` or `len` is not a multiple
/// of the page: every call below that the OS would refuse, or round, on a
/// larger page than the caller assumed.
#[inline(always)]
fn assert_paged(what: &str, ptr: *const u8, len: usize) {
    if cfg!(debug_assertions) && (ptr.addr() % page() != 0 || len % page() != 0) {
        misaligned(what);
    }
}

#[cold]
#[inline(never)]
fn misaligned(what: &str) -> ! {
    write_stderr(b"nalloc: invariant broken: os: range not page aligned in ");
    write_stderr(what.as_bytes());
    write_stderr(b"\n");
    std::process::abort()
}

/// True where part of a mapping can be released ([`unmap`] of a sub-range);
/// Windows releases only whole reservations.
pub(crate) const CAN_TRIM: bool = cfg!(all(unix, not(miri)));

/// True where [`remap`] can resize a mapping without copying (Linux).
pub(crate) const CAN_REMAP: bool = cfg!(all(target_os = "linux", not(miri)));

/// An error number returned by the OS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OsError(pub i32);

/// How spans should be backed: see [`crate::HugePages`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HugeAdvice {
    /// Ask the kernel to back the range with huge pages.
    Huge,
    /// Ask the kernel never to use huge pages for the range.
    NoHuge,
}

/// Flags that [`protect_secret`] managed to set on a range.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SecretFlags {
    /// The range is excluded from core dumps.
    pub dont_dump: bool,
    /// The range reads as zero in a forked child.
    pub wipe_on_fork: bool,
}

/// Counts of the calls this layer makes into the OS, by kind, since start:
/// what `stats()` reports as OS calls. Kept here because every system call
/// passes through this file; the layers above read them through
/// `base/stats.rs`. One relaxed increment per call, next to a system call
/// that costs a thousand times more.
pub(crate) struct OsCalls {
    /// New mappings and reservations (`mmap`, `VirtualAlloc` reserve).
    pub(crate) map: AtomicU64,
    /// Mappings released, whole or a tail (`munmap`, `VirtualFree`).
    pub(crate) unmap: AtomicU64,
    /// Mappings resized or pages moved without copying (`mremap`,
    /// including the moves that build a span from pooled pieces).
    pub(crate) remap: AtomicU64,
    /// Hints and flags on a range: huge-page advice, dump and fork flags
    /// of secrets, mapping names (`madvise`, `prctl`).
    pub(crate) advise: AtomicU64,
    /// Ranges whose pages were given back: purge and decommit
    /// (`MADV_DONTNEED`/`MADV_FREE`, `VirtualFree(MEM_DECOMMIT)`).
    pub(crate) purge: AtomicU64,
    /// Protection changes and locks: commit of reserved memory
    /// (`mprotect`, `VirtualAlloc` commit), `mlock`/`munlock`.
    pub(crate) protect: AtomicU64,
    /// Residency samples (`mincore`).
    pub(crate) query: AtomicU64,
}

/// The OS call counts (see [`OsCalls`]).
pub(crate) static CALLS: OsCalls = OsCalls {
    map: AtomicU64::new(0),
    unmap: AtomicU64::new(0),
    remap: AtomicU64::new(0),
    advise: AtomicU64::new(0),
    purge: AtomicU64::new(0),
    protect: AtomicU64::new(0),
    query: AtomicU64::new(0),
};

/// Counts one call of a kind (relaxed: a statistic, ordered with nothing).
#[inline(always)]
fn count(c: &AtomicU64) {
    c.fetch_add(1, Relaxed);
}

#[cfg(feature = "fault-injection")]
pub mod fault {
    //! Test-only failure injection: make the OS layer refuse mappings, or
    //! keep decommitted memory readable. Never enable the `fault-injection`
    //! feature in a build that holds real secrets.
    use core::sync::atomic::{AtomicUsize, Ordering};

    static COUNTDOWN: AtomicUsize = AtomicUsize::new(0);
    static FAILS: AtomicUsize = AtomicUsize::new(0);

    /// The `n`th mapping request from now (1 = the next one) fails, and so do
    /// the `count - 1` requests after it. `n == 0` disables injection.
    pub fn fail_nth_mapping(n: usize, count: usize) {
        FAILS.store(count, Ordering::SeqCst);
        COUNTDOWN.store(n, Ordering::SeqCst);
    }

    /// Disables injection.
    pub fn reset() {
        COUNTDOWN.store(0, Ordering::SeqCst);
        FAILS.store(0, Ordering::SeqCst);
        KEEP_DECOMMITTED.store(false, Ordering::SeqCst);
    }

    static KEEP_DECOMMITTED: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

    /// While `on`, decommitting leaves memory as it is (readable, backed):
    /// what the allocator wrote into a range just before giving it back can
    /// then be read, which is how a test proves that a secret was wiped
    /// *before* its chunk was released (afterwards it reads as zero anyway).
    pub fn keep_decommitted(on: bool) {
        KEEP_DECOMMITTED.store(on, Ordering::SeqCst);
    }

    pub(crate) fn keeps_decommitted() -> bool {
        KEEP_DECOMMITTED.load(Ordering::SeqCst)
    }

    pub(crate) fn should_fail() -> bool {
        let n = COUNTDOWN.load(Ordering::SeqCst);
        if n == 0 {
            return false;
        }
        if n > 1 {
            COUNTDOWN.store(n - 1, Ordering::SeqCst);
            return false;
        }
        let left = FAILS.load(Ordering::SeqCst);
        if left <= 1 {
            COUNTDOWN.store(0, Ordering::SeqCst);
        }
        FAILS.store(left.saturating_sub(1), Ordering::SeqCst);
        true
    }
}

#[inline]
fn injected_failure() -> bool {
    #[cfg(feature = "fault-injection")]
    {
        fault::should_fail()
    }
    #[cfg(not(feature = "fault-injection"))]
    {
        false
    }
}

/// Maps `len` bytes (a multiple of [`page`]) of fresh zeroed read-write
/// memory aligned to `align` (a power of two). Null on failure.
pub(crate) fn map(len: usize, align: usize) -> *mut u8 {
    if injected_failure() {
        return core::ptr::null_mut();
    }
    assert_paged("map", core::ptr::null(), len);
    count(&CALLS.map);
    platform::map(len, align.max(page()))
}

/// Maps `len` bytes (a multiple of [`huge_page`]) backed by explicit huge
/// pages from the kernel's reserved pool, 2 MiB aligned. Null when the
/// platform has none or the pool is empty (the caller falls back to [`map`]).
pub(crate) fn map_explicit_huge(len: usize) -> *mut u8 {
    if injected_failure() {
        return core::ptr::null_mut();
    }
    count(&CALLS.map);
    platform::map_explicit_huge(len)
}

/// Releases a whole mapping made by [`map`] — or, where [`CAN_TRIM`], a
/// page-aligned tail of one.
///
/// # Safety
/// `ptr`/`len` must be exactly a live mapping returned by [`map`] (or by
/// [`remap`]), or its tail where [`CAN_TRIM`]; no reference into it may be
/// used afterwards.
pub(crate) unsafe fn unmap(ptr: *mut u8, len: usize) {
    // SAFETY: forwarded caller contract.
    count(&CALLS.unmap);
    unsafe { platform::unmap(ptr, len) }
}

/// Reserves `len` bytes of address space aligned to `align`, inaccessible
/// until committed. Null on failure.
pub(crate) fn reserve(len: usize, align: usize) -> *mut u8 {
    if injected_failure() {
        return core::ptr::null_mut();
    }
    assert_paged("reserve", core::ptr::null(), len);
    count(&CALLS.map);
    platform::reserve(len, align.max(page()))
}

/// Makes part of a reservation readable and writable (zero-filled).
///
/// # Safety
/// The range must lie inside a reservation made by [`reserve`] and be page
/// aligned.
pub(crate) unsafe fn commit(ptr: *mut u8, len: usize) -> Result<(), OsError> {
    if injected_failure() {
        return Err(OsError(12));
    }
    assert_paged("commit", ptr, len);
    // SAFETY: forwarded caller contract.
    count(&CALLS.protect);
    unsafe { platform::commit(ptr, len) }
}

/// Returns committed memory to the inaccessible, unbacked state.
///
/// # Safety
/// The range must lie inside a reservation, be page aligned, and hold no live
/// data.
pub(crate) unsafe fn decommit(ptr: *mut u8, len: usize) {
    #[cfg(feature = "fault-injection")]
    if fault::keeps_decommitted() {
        return;
    }
    assert_paged("decommit", ptr, len);
    // SAFETY: forwarded caller contract.
    count(&CALLS.purge);
    unsafe { platform::decommit(ptr, len) }
}

/// Gives the physical pages of a range back to the OS while keeping it mapped.
/// Returns `true` if the range now reads as zero.
///
/// # Safety
/// The range must be page aligned, inside one of our mappings, and hold no
/// live data.
pub(crate) unsafe fn purge(ptr: *mut u8, len: usize) -> bool {
    assert_paged("purge", ptr, len);
    // SAFETY: forwarded caller contract.
    count(&CALLS.purge);
    unsafe { platform::purge(ptr, len) }
}

/// Estimates how much of a range is resident: samples pages spread over
/// `[ptr, ptr + len)` and returns (resident, sampled), or `None` where the
/// platform cannot tell. A hint for choosing between memset and purge —
/// never a proof that a page is zero (a swapped-out page is not resident).
///
/// # Safety
/// The range must be page aligned and inside one of our mappings.
pub(crate) unsafe fn resident_sample(ptr: *mut u8, len: usize) -> Option<(usize, usize)> {
    // SAFETY: forwarded caller contract.
    count(&CALLS.query);
    unsafe { platform::resident_sample(ptr, len) }
}

/// Huge-page advice for a range (a hint; failures are harmless and ignored
/// because the memory stays correct either way).
///
/// # Safety
/// The range must be page aligned and inside one of our mappings.
pub(crate) unsafe fn advise_huge(ptr: *mut u8, len: usize, advice: HugeAdvice) {
    // SAFETY: forwarded caller contract.
    count(&CALLS.advise);
    unsafe { platform::advise_huge(ptr, len, advice) }
}

/// Resizes the mapping `ptr`/`old_len` to `new_len` without copying its
/// pages, keeping the result aligned to `align`. Returns the (possibly moved)
/// mapping, or null when the platform cannot (the caller then copies).
///
/// # Safety
/// `ptr`/`old_len` must be exactly a live mapping from [`map`]; on success the
/// old range must no longer be used.
pub(crate) unsafe fn remap(ptr: *mut u8, old_len: usize, new_len: usize, align: usize) -> *mut u8 {
    if injected_failure() {
        return core::ptr::null_mut();
    }
    // SAFETY: forwarded caller contract.
    count(&CALLS.remap);
    unsafe { platform::remap(ptr, old_len, new_len, align.max(page())) }
}

/// Moves the pages of `src`/`len` to `dst` (replacing what was mapped
/// there) without copying or faulting them: page tables move, so warm
/// pages stay warm at their new address. False where the platform cannot
/// ([`CAN_REMAP`] is false) or the kernel refuses, e.g. when `src` spans
/// several mappings (the caller then tries smaller pieces or leaves the
/// destination fresh); nothing has moved then.
///
/// # Safety
/// `src`/`len` must be page-aligned memory of ours that nobody references;
/// `dst`/`len` a page-aligned range of one of our mappings that nobody
/// references and may lose its contents; the two must not overlap. On
/// success `src` is no longer mapped.
pub(crate) unsafe fn move_pages(src: *mut u8, len: usize, dst: *mut u8) -> bool {
    assert_paged("move_pages", src, len);
    assert_paged("move_pages", dst, len);
    if injected_failure() {
        return false;
    }
    if CAN_REMAP {
        count(&CALLS.remap);
    }
    // SAFETY: forwarded caller contract.
    unsafe { platform::move_pages(src, len, dst) }
}

/// Locks a range into RAM (no swapping).
///
/// # Safety
/// The range must be committed memory of ours.
pub(crate) unsafe fn lock(ptr: *mut u8, len: usize) -> Result<(), OsError> {
    assert_paged("lock", ptr, len);
    // SAFETY: forwarded caller contract.
    count(&CALLS.protect);
    unsafe { platform::lock(ptr, len) }
}

/// Undoes [`lock`].
///
/// # Safety
/// The range must be memory of ours.
pub(crate) unsafe fn unlock(ptr: *mut u8, len: usize) {
    // SAFETY: forwarded caller contract.
    count(&CALLS.protect);
    unsafe { platform::unlock(ptr, len) }
}

/// Excludes a range from core dumps and forked children where the platform
/// can; reports what held. Errors other than "not supported" are returned.
///
/// # Safety
/// The range must be page aligned committed memory of ours.
pub(crate) unsafe fn protect_secret(ptr: *mut u8, len: usize) -> Result<SecretFlags, OsError> {
    assert_paged("protect_secret", ptr, len);
    // SAFETY: forwarded caller contract.
    count(&CALLS.advise);
    unsafe { platform::protect_secret(ptr, len) }
}

/// Undoes [`protect_secret`] on a range about to be decommitted, so that
/// whatever is committed there later (another chunk's header page) is not
/// wiped in forked children or hidden from core dumps by a flag that
/// outlived its secret (best effort).
///
/// # Safety
/// The range must be page aligned committed memory of ours.
pub(crate) unsafe fn unprotect_secret(ptr: *mut u8, len: usize) {
    // SAFETY: forwarded caller contract.
    count(&CALLS.advise);
    unsafe { platform::unprotect_secret(ptr, len) }
}

/// Names a mapping so that it shows in `/proc/self/maps` (best effort).
///
/// # Safety
/// The range must be page aligned memory of ours.
pub(crate) unsafe fn name(ptr: *mut u8, len: usize, name: &'static core::ffi::CStr) {
    // SAFETY: forwarded caller contract.
    count(&CALLS.advise);
    unsafe { platform::name(ptr, len, name) }
}

/// Zeroes memory with a write the optimiser may not remove, even if the
/// memory is never read again.
///
/// # Safety
/// `ptr` must be valid for `len` bytes of writes.
pub(crate) unsafe fn secure_zero(ptr: *mut u8, len: usize) {
    if len == 0 {
        return;
    }
    // SAFETY: forwarded caller contract.
    unsafe { platform::secure_zero(ptr, len) }
}

/// Physical memory of the machine in bytes (0 when unknown).
pub(crate) fn physical_memory() -> usize {
    platform::physical_memory()
}

/// A monotonic clock in microseconds from an arbitrary origin, for
/// housekeeping delays (cheap: no system call on Linux).
pub(crate) fn now_us() -> u64 {
    platform::now_us()
}

/// Fills `buf` with the value of environment variable `name` without
/// allocating; returns the value's length, or `None` when it is unset or
/// too long for `buf`.
pub(crate) fn env_var(name: &[u8], buf: &mut [u8]) -> Option<usize> {
    platform::env_var(name, buf)
}

/// Bytes of `[ptr, ptr+len)` currently backed by transparent huge pages, or
/// `None` where the platform cannot tell.
pub(crate) fn huge_backed_bytes(ptr: usize, len: usize) -> Option<usize> {
    platform::huge_backed_bytes(ptr, len)
}

/// The memory limit of the process's container: the lowest cgroup v2
/// `memory.max` of its cgroup and ancestors, else the v1
/// `memory.limit_in_bytes`; `None` where none is set, readable or valid
/// (and off Linux). Reads a few small files into stack buffers; never
/// allocates.
pub(crate) fn memory_limit() -> Option<usize> {
    platform::memory_limit()
}

/// Minor page faults of the process so far (`getrusage`; 0 where unknown).
/// One system call: for phase boundaries only.
pub(crate) fn minor_faults() -> u64 {
    platform::minor_faults()
}

/// Runs `f` at normal process exit (`atexit`; nothing on Windows and Miri).
pub(crate) fn at_exit(f: extern "C" fn()) {
    platform::at_exit(f)
}

/// A `pthread_atfork` handler. `unsafe`: the allocator's handlers take and
/// release every lock, which only the `fork` protocol may do.
pub(crate) type ForkHandler = unsafe extern "C" fn();

/// Registers the layer above's fork handlers with `pthread_atfork`, once per
/// process (later calls do nothing). The OS layer names no allocator code:
/// the handlers are passed in (see `front/lifecycle.rs`).
pub(crate) fn register_fork_handlers(prepare: ForkHandler, parent: ForkHandler, child: ForkHandler) {
    platform::register_fork_handlers(prepare, parent, child);
}

/// What runs when a thread that armed the hook exits (null: nothing yet).
static THREAD_EXIT_HOOK: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());

/// Prepares the thread-exit hook: `hook` will run on every thread that
/// called [`watch_thread_exit`] when it exits. Called once, by the layer that
/// owns per-thread state (`small`), before any thread arms it; must not
/// allocate.
pub(crate) fn init_thread_exit(hook: fn()) {
    THREAD_EXIT_HOOK.store(hook as *mut (), Ordering::Release);
    platform::init_thread_exit();
}

/// Runs the registered thread-exit hook (from the platform's destructor).
fn run_thread_exit_hook() {
    let h = THREAD_EXIT_HOOK.load(Ordering::Acquire);
    if !h.is_null() {
        // SAFETY: only `init_thread_exit` stores here, and it stores a `fn()`.
        let f: fn() = unsafe { core::mem::transmute::<*mut (), fn()>(h) };
        f();
    }
}

/// Arms the thread-exit hook for the calling thread: the hook given to
/// [`init_thread_exit`] will run when it exits.
pub(crate) fn watch_thread_exit() {
    platform::watch_thread_exit();
}

/// Fills `buf` with random bytes from the OS (best effort: left as is when
/// the platform call fails; callers mix in other entropy).
#[cfg_attr(not(feature = "hardened"), allow(dead_code))]
pub(crate) fn random(buf: &mut [u8]) {
    platform::random(buf)
}

/// Writes `msg` to the standard error stream with one system call and no
/// allocation (for fatal messages).
pub(crate) fn write_stderr(msg: &[u8]) {
    platform::write_stderr(msg)
}

/// Thread-exit hook for platforms without `pthread` keys (Windows, Miri): a
/// Rust TLS guard whose destructor runs the thread-exit hook. (On Unix a `pthread`
/// key is used instead: std forbids a global allocator from registering TLS
/// destructors there, see `small/heap.rs`.)
#[cfg(any(windows, miri))]
pub(crate) fn tls_exit_guard() {
    struct Guard;
    impl Drop for Guard {
        fn drop(&mut self) {
            run_thread_exit_hook();
        }
    }
    thread_local! {
        static GUARD: Guard = const { Guard };
    }
    let _ = GUARD.try_with(|_| ());
}
