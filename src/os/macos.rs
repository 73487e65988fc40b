//! macOS (and other non-Linux Unix): POSIX `mmap` family; no huge-page,
//! dump-exclusion or remap calls, which report "not supported".

use super::{posix, HugeAdvice, OsError, SecretFlags};
use core::ffi::c_void;
use rustix::mm::{self, Advice, MapFlags};

/// The kernel's page size: 16 KiB on Apple silicon, 4 KiB on x86-64.
pub(super) fn page_size() -> usize {
    rustix::param::page_size()
}

pub(super) fn map(len: usize, align: usize) -> *mut u8 {
    posix::map_rw(len, align, page_size(), MapFlags::empty())
}

pub(super) fn map_explicit_huge(_len: usize) -> *mut u8 {
    core::ptr::null_mut()
}

pub(super) fn reserve(len: usize, align: usize) -> *mut u8 {
    posix::reserve(len, align, page_size())
}

pub(super) unsafe fn decommit(ptr: *mut u8, len: usize) {
    // SAFETY: caller contract.
    unsafe {
        let _ = mm::madvise(ptr.cast::<c_void>(), len, Advice::DontNeed);
        posix::protect_none(ptr, len);
    }
}

pub(super) unsafe fn purge(_ptr: *mut u8, _len: usize) -> bool {
    // macOS's MADV_FREE keeps contents until memory pressure: the range does
    // not reliably read as zero, so report "not purged" and let the caller
    // keep treating it as dirty.
    false
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

pub(super) unsafe fn resident_sample(_ptr: *mut u8, _len: usize) -> Option<(usize, usize)> {
    None
}

pub(super) unsafe fn unprotect_secret(_ptr: *mut u8, _len: usize) {}

pub(super) unsafe fn protect_secret(_ptr: *mut u8, _len: usize) -> Result<SecretFlags, OsError> {
    Ok(SecretFlags::default())
}

pub(super) unsafe fn name(_ptr: *mut u8, _len: usize, _name: &'static core::ffi::CStr) {}

extern "C" {
    fn memset_s(s: *mut c_void, smax: usize, c: i32, n: usize) -> i32;
}

pub(super) unsafe fn secure_zero(ptr: *mut u8, len: usize) {
    // SAFETY: caller contract; C11 Annex K memset_s may not be optimised
    // away.
    let _ = unsafe { memset_s(ptr.cast::<c_void>(), len, 0, len) };
}

pub(super) fn physical_memory() -> usize {
    0
}

pub(super) fn huge_backed_bytes(_ptr: usize, _len: usize) -> Option<usize> {
    None
}

pub(super) fn memory_limit() -> Option<usize> {
    None
}

pub(super) fn minor_faults() -> u64 {
    posix::minor_faults()
}

// What macOS shares with every POSIX system, used as is.
pub(super) use super::posix::{
    at_exit, commit, env_var, init_thread_exit, lock, now_us, random, register_fork_handlers, unlock, unmap,
    watch_thread_exit, write_stderr,
};
