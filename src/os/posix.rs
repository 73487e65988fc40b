//! What Linux and macOS share: `mmap`-family calls through `rustix`.

use super::OsError;
use core::ffi::c_void;
use rustix::mm::{self, MapFlags, MprotectFlags, ProtFlags};

fn err(e: rustix::io::Errno) -> OsError {
    OsError(e.raw_os_error())
}

/// Maps `len + align - page` bytes and trims both ends so that what is left
/// is `len` bytes starting on an `align` boundary. `page` is the kernel's
/// own page size (the alignment every mapping has anyway), which a test
/// build simulating larger pages must not pass for its simulated one.
pub(super) fn map_with(len: usize, align: usize, page: usize, prot: ProtFlags, flags: MapFlags) -> *mut u8 {
    let Some(total) = len.checked_add(align - page) else {
        return core::ptr::null_mut();
    };
    // SAFETY: an anonymous mapping at an address of the kernel's choosing
    // cannot alias any existing Rust object.
    let base = match unsafe { mm::mmap_anonymous(core::ptr::null_mut(), total, prot, flags) } {
        Ok(p) => p.cast::<u8>(),
        Err(_) => return core::ptr::null_mut(),
    };
    if align <= page {
        return base;
    }
    let addr = base as usize;
    let aligned = (addr + align - 1) & !(align - 1);
    let head = aligned - addr;
    let tail = total - head - len;
    // SAFETY: head and tail are page-aligned pieces of the mapping we just
    // made and that nobody else knows about.
    unsafe {
        if head > 0 {
            let _ = mm::munmap(base.cast::<c_void>(), head);
        }
        if tail > 0 {
            let _ = mm::munmap((aligned + len) as *mut c_void, tail);
        }
    }
    base.wrapping_add(head)
}

pub(super) fn map_rw(len: usize, align: usize, page: usize, extra: MapFlags) -> *mut u8 {
    map_with(
        len,
        align,
        page,
        ProtFlags::READ | ProtFlags::WRITE,
        MapFlags::PRIVATE | extra,
    )
}

pub(super) fn reserve(len: usize, align: usize, page: usize) -> *mut u8 {
    map_with(
        len,
        align,
        page,
        ProtFlags::empty(),
        MapFlags::PRIVATE | MapFlags::NORESERVE,
    )
}

/// # Safety
/// `ptr`/`len` must be a whole mapping of ours.
pub(super) unsafe fn unmap(ptr: *mut u8, len: usize) {
    // SAFETY: caller contract. A failure would mean the range was not ours,
    // which the contract rules out; nothing sensible can be done about it.
    let _ = unsafe { mm::munmap(ptr.cast::<c_void>(), len) };
}

/// # Safety
/// The range must be inside a reservation of ours.
pub(super) unsafe fn commit(ptr: *mut u8, len: usize) -> Result<(), OsError> {
    // SAFETY: caller contract.
    unsafe { mm::mprotect(ptr.cast::<c_void>(), len, MprotectFlags::READ | MprotectFlags::WRITE) }.map_err(err)
}

/// # Safety
/// The range must be inside a reservation of ours and hold no live data.
pub(super) unsafe fn protect_none(ptr: *mut u8, len: usize) {
    // SAFETY: caller contract.
    let _ = unsafe { mm::mprotect(ptr.cast::<c_void>(), len, MprotectFlags::empty()) };
}

/// # Safety
/// The range must be committed memory of ours.
pub(super) unsafe fn lock(ptr: *mut u8, len: usize) -> Result<(), OsError> {
    // SAFETY: caller contract.
    unsafe { mm::mlock(ptr.cast::<c_void>(), len) }.map_err(err)
}

/// # Safety
/// The range must be memory of ours.
pub(super) unsafe fn unlock(ptr: *mut u8, len: usize) {
    // SAFETY: caller contract; failure only means it was not locked.
    let _ = unsafe { mm::munlock(ptr.cast::<c_void>(), len) };
}

#[cfg(target_os = "linux")]
type PthreadKey = core::ffi::c_uint;
#[cfg(not(target_os = "linux"))]
type PthreadKey = core::ffi::c_ulong;

extern "C" {
    fn pthread_key_create(key: *mut PthreadKey, dtor: Option<unsafe extern "C" fn(*mut c_void)>) -> i32;
    fn pthread_setspecific(key: PthreadKey, value: *const c_void) -> i32;
    fn pthread_atfork(
        prepare: Option<unsafe extern "C" fn()>,
        parent: Option<unsafe extern "C" fn()>,
        child: Option<unsafe extern "C" fn()>,
    ) -> i32;
    fn getenv(name: *const core::ffi::c_char) -> *const core::ffi::c_char;
    fn getrusage(who: core::ffi::c_int, usage: *mut Rusage) -> core::ffi::c_int;
    fn atexit(f: extern "C" fn()) -> core::ffi::c_int;
}

/// `struct rusage` of Linux and macOS: two `timeval`s (16 bytes each on
/// 64-bit targets, two `long`s on 32-bit Linux), then 14 `long`s, the
/// fifth of which is `ru_minflt`.
#[repr(C)]
struct Rusage {
    utime: [core::ffi::c_long; 2],
    stime: [core::ffi::c_long; 2],
    longs: [core::ffi::c_long; 14],
}

/// Minor page faults of the process so far (`getrusage`; 0 on failure).
pub(super) fn minor_faults() -> u64 {
    let mut u = Rusage {
        utime: [0; 2],
        stime: [0; 2],
        longs: [0; 14],
    };
    // SAFETY: `u` is a writable `struct rusage`; RUSAGE_SELF is 0.
    if unsafe { getrusage(0, &mut u) } != 0 {
        return 0;
    }
    u.longs[4] as u64
}

/// Registers `f` to run at normal process exit (`atexit`).
pub(super) fn at_exit(f: extern "C" fn()) {
    // SAFETY: a plain function without captured state; atexit may allocate
    // (through us when we are malloc), which is fine outside our locks.
    unsafe { atexit(f) };
}

/// Monotonic microseconds (`CLOCK_MONOTONIC`; a vDSO call on Linux, no
/// system call).
pub(super) fn now_us() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    (t.tv_sec as u64)
        .wrapping_mul(1_000_000)
        .wrapping_add(t.tv_nsec as u64 / 1000)
}

/// Reads an environment variable through libc's `getenv`, which returns a
/// pointer into the environment block and does not allocate.
pub(super) fn env_var(name: &[u8], buf: &mut [u8]) -> Option<usize> {
    let mut cname = [0u8; 64];
    if name.len() >= cname.len() {
        return None;
    }
    cname[..name.len()].copy_from_slice(name);
    // SAFETY: `cname` is NUL-terminated; getenv only reads it.
    let v = unsafe { getenv(cname.as_ptr().cast()) };
    if v.is_null() {
        return None;
    }
    let mut n = 0;
    // SAFETY: getenv returns a NUL-terminated string that stays valid while
    // nobody modifies the environment; we copy it out at once.
    while unsafe { *v.add(n) } != 0 {
        if n >= buf.len() {
            return None;
        }
        // SAFETY: `n` is before the terminating NUL.
        buf[n] = unsafe { *v.add(n) } as u8;
        n += 1;
    }
    Some(n)
}

/// Registers the allocator's fork handlers, once per process (the C ABI
/// library's constructor triggers this through its first call into the
/// engine, then registers its own handlers after).
pub(super) fn register_fork_handlers(
    prepare: super::ForkHandler,
    parent: super::ForkHandler,
    child: super::ForkHandler,
) {
    use core::sync::atomic::{AtomicBool, Ordering};
    static DONE: AtomicBool = AtomicBool::new(false);
    // Set before registering: pthread_atfork may allocate through us, and
    // that nested call must find the work done rather than wait for it.
    if DONE.load(Ordering::Relaxed) || DONE.swap(true, Ordering::AcqRel) {
        return;
    }
    // SAFETY: registering plain extern "C" functions with no captured
    // state; pthread_atfork has no other preconditions.
    unsafe { pthread_atfork(Some(prepare), Some(parent), Some(child)) };
}

/// The key whose destructor tells us a thread exits; `usize::MAX` if it
/// could not be created (then exiting threads' heaps are not recycled).
static EXIT_KEY: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(usize::MAX);

unsafe extern "C" fn on_thread_exit(_value: *mut c_void) {
    super::run_thread_exit_hook();
}

pub(super) fn init_thread_exit() {
    let mut key: PthreadKey = 0;
    // SAFETY: `key` is a valid out-pointer; glibc's and macOS's
    // pthread_key_create only scan a static table (no allocation).
    if unsafe { pthread_key_create(&mut key, Some(on_thread_exit)) } == 0 {
        EXIT_KEY.store(key as usize, core::sync::atomic::Ordering::Release);
    }
}

pub(super) fn watch_thread_exit() {
    let key = EXIT_KEY.load(core::sync::atomic::Ordering::Acquire);
    if key != usize::MAX {
        // SAFETY: a key we created; any non-null value arms the destructor.
        unsafe { pthread_setspecific(key as PthreadKey, core::ptr::dangling::<c_void>()) };
    }
}

/// Random bytes from `/dev/urandom` read into the caller's buffer.
#[cfg_attr(not(feature = "hardened"), allow(dead_code))]
pub(super) fn random(buf: &mut [u8]) {
    use rustix::fs::{openat, Mode, OFlags, CWD};
    if let Ok(fd) = openat(CWD, c"/dev/urandom", OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()) {
        let _ = rustix::io::read(&fd, buf);
    }
}

/// `write(2, msg)`.
#[cfg_attr(not(feature = "hardened"), allow(dead_code))]
pub(super) fn write_stderr(msg: &[u8]) {
    // SAFETY: file descriptor 2 is the process's standard error by
    // convention; writing to it does not affect memory safety.
    let fd = unsafe { rustix::fd::BorrowedFd::borrow_raw(2) };
    let _ = rustix::io::write(fd, msg);
}
