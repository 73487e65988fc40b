//! Under Miri there are no system calls: "mappings" come from
//! `std::alloc::System` so that the data structures above can be checked for
//! undefined behaviour. Reservations are committed up front.

use super::{HugeAdvice, OsError, SecretFlags};
use std::alloc::{GlobalAlloc, Layout, System};

pub(super) fn page_size() -> usize {
    4096
}

/// Every "mapping" uses this alignment (or more), so that `unmap`, which is
/// not told the alignment, can rebuild the layout Miri checks.
const MAP_ALIGN: usize = 4 << 20;

pub(super) fn map(len: usize, align: usize) -> *mut u8 {
    if align > MAP_ALIGN {
        return core::ptr::null_mut();
    }
    match Layout::from_size_align(len, MAP_ALIGN) {
        // SAFETY: non-zero size (callers never map 0 bytes).
        Ok(l) if len > 0 => unsafe { System.alloc_zeroed(l) },
        _ => core::ptr::null_mut(),
    }
}

pub(super) fn map_explicit_huge(_len: usize) -> *mut u8 {
    core::ptr::null_mut()
}

pub(super) unsafe fn unmap(ptr: *mut u8, len: usize) {
    // SAFETY: caller contract (a whole mapping: CAN_TRIM is false under
    // Miri); every mapping was made with MAP_ALIGN. Miri validates the call.
    unsafe { System.dealloc(ptr, Layout::from_size_align_unchecked(len, MAP_ALIGN)) }
}

pub(super) fn reserve(len: usize, align: usize) -> *mut u8 {
    map(len, align)
}

pub(super) unsafe fn commit(_ptr: *mut u8, _len: usize) -> Result<(), OsError> {
    Ok(())
}

pub(super) unsafe fn decommit(ptr: *mut u8, len: usize) {
    // SAFETY: caller contract.
    unsafe { core::ptr::write_bytes(ptr, 0, len) }
}

pub(super) unsafe fn purge(ptr: *mut u8, len: usize) -> bool {
    // SAFETY: caller contract.
    unsafe { core::ptr::write_bytes(ptr, 0, len) };
    true
}

pub(super) unsafe fn advise_huge(_ptr: *mut u8, _len: usize, _advice: HugeAdvice) {}

pub(super) unsafe fn remap(_ptr: *mut u8, _old: usize, _new: usize, _align: usize) -> *mut u8 {
    core::ptr::null_mut()
}

/// Not supported here ([`super::CAN_REMAP`] is false).
///
/// # Safety
/// None needed: nothing is touched.
pub(super) unsafe fn move_pages(_src: *mut u8, _len: usize, _dst: *mut u8) -> bool {
    false
}

pub(super) unsafe fn lock(_ptr: *mut u8, _len: usize) -> Result<(), OsError> {
    Ok(())
}

pub(super) unsafe fn unlock(_ptr: *mut u8, _len: usize) {}

pub(super) unsafe fn resident_sample(_ptr: *mut u8, _len: usize) -> Option<(usize, usize)> {
    None
}

pub(super) unsafe fn unprotect_secret(_ptr: *mut u8, _len: usize) {}

pub(super) unsafe fn protect_secret(_ptr: *mut u8, _len: usize) -> Result<SecretFlags, OsError> {
    Ok(SecretFlags::default())
}

pub(super) unsafe fn name(_ptr: *mut u8, _len: usize, _name: &'static core::ffi::CStr) {}

pub(super) unsafe fn secure_zero(ptr: *mut u8, len: usize) {
    // Under Miri there is no optimiser to defeat, and a volatile loop is
    // interpreted byte by byte (minutes per MiB): a plain fill is enough.
    // SAFETY: caller contract — `ptr` is valid for writes of `len` bytes.
    unsafe { core::ptr::write_bytes(ptr, 0, len) };
}

pub(super) fn physical_memory() -> usize {
    0
}

/// A deterministic clock: every reading is a millisecond after the last, so
/// that time-based housekeeping runs under Miri as it would over time. It
/// starts at one second, as a real clock is well past zero.
pub(super) fn now_us() -> u64 {
    use core::sync::atomic::{AtomicU64, Ordering};
    static T: AtomicU64 = AtomicU64::new(1_000_000);
    T.fetch_add(1000, Ordering::Relaxed)
}

pub(super) fn env_var(_name: &[u8], _buf: &mut [u8]) -> Option<usize> {
    None
}

pub(super) fn huge_backed_bytes(_ptr: usize, _len: usize) -> Option<usize> {
    None
}

/// No cgroups here.
pub(super) fn memory_limit() -> Option<usize> {
    None
}

/// Not counted here.
pub(super) fn minor_faults() -> u64 {
    0
}

/// Nothing runs at exit here: the `NALLOC_STATS` phase table is a Unix
/// feature.
pub(super) fn at_exit(_f: extern "C" fn()) {}

/// No `fork` here.
pub(super) fn register_fork_handlers(_: super::ForkHandler, _: super::ForkHandler, _: super::ForkHandler) {}

pub(super) fn init_thread_exit() {}

pub(super) use super::tls_exit_guard as watch_thread_exit;

#[cfg_attr(not(feature = "hardened"), allow(dead_code))]
pub(super) fn random(_buf: &mut [u8]) {}

#[cfg_attr(not(feature = "hardened"), allow(dead_code))]
pub(super) fn write_stderr(msg: &[u8]) {
    use std::io::Write;
    let _ = std::io::stderr().write_all(msg);
}
