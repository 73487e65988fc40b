//! Windows: `VirtualAlloc` / `VirtualFree` / `VirtualLock`.
//!
//! Run, not only compiled: CI runs the crate's tests for
//! `x86_64-pc-windows-gnu` under Wine (`.ci/windows.sh`), with the evidence
//! of this file's promises — guards, locks, decommit, thread exit — in
//! tests/windows.rs.

use super::{HugeAdvice, OsError, SecretFlags};
use core::ffi::c_void;
use windows_sys::Win32::System::Memory::{
    VirtualAlloc, VirtualFree, VirtualLock, VirtualUnlock, MEM_COMMIT, MEM_DECOMMIT, MEM_RELEASE, MEM_RESERVE,
    PAGE_NOACCESS, PAGE_READWRITE,
};

/// Windows hands out address space in granules of 64 KiB (the allocation
/// granularity, above the 4 KiB page): the unit nalloc works in here.
pub(super) fn page_size() -> usize {
    use windows_sys::Win32::System::SystemInformation::{GetSystemInfo, SYSTEM_INFO};
    // SAFETY: GetSystemInfo fills the structure it is given; all-zero is a
    // valid SYSTEM_INFO to start from.
    let info = unsafe {
        let mut info: SYSTEM_INFO = core::mem::zeroed();
        GetSystemInfo(&mut info);
        info
    };
    (info.dwAllocationGranularity as usize).max(info.dwPageSize as usize)
}

fn last_error() -> OsError {
    // SAFETY: GetLastError has no preconditions.
    OsError(unsafe { windows_sys::Win32::Foundation::GetLastError() } as i32)
}

/// Windows cannot release part of a reservation, so aligned placement is
/// done by reserving an oversized range, releasing it, and re-reserving at
/// the aligned address inside it (retrying if another thread raced us).
fn place(len: usize, align: usize, kind: u32, prot: u32) -> *mut u8 {
    // SAFETY: a null address lets the OS choose; no existing object aliases.
    let p = unsafe { VirtualAlloc(core::ptr::null(), len, kind, prot) }.cast::<u8>();
    if p.is_null() || (p as usize) % align == 0 {
        return p;
    }
    // SAFETY: `p` is the base of the reservation we just made.
    unsafe { VirtualFree(p.cast::<c_void>(), 0, MEM_RELEASE) };
    let Some(total) = len.checked_add(align) else {
        return core::ptr::null_mut();
    };
    for _ in 0..16 {
        // SAFETY: as above.
        let probe = unsafe { VirtualAlloc(core::ptr::null(), total, MEM_RESERVE, PAGE_NOACCESS) };
        if probe.is_null() {
            return core::ptr::null_mut();
        }
        let aligned = ((probe as usize) + align - 1) & !(align - 1);
        // SAFETY: `probe` is the base of our reservation.
        unsafe { VirtualFree(probe, 0, MEM_RELEASE) };
        // SAFETY: we ask for a specific address we just released; if another
        // thread took it the call fails and we retry.
        let p = unsafe { VirtualAlloc(aligned as *const c_void, len, kind, prot) };
        if !p.is_null() {
            return p.cast::<u8>();
        }
    }
    core::ptr::null_mut()
}

pub(super) fn map(len: usize, align: usize) -> *mut u8 {
    place(len, align, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE)
}

pub(super) fn map_explicit_huge(_len: usize) -> *mut u8 {
    core::ptr::null_mut()
}

pub(super) unsafe fn unmap(ptr: *mut u8, _len: usize) {
    // SAFETY: caller contract: `ptr` is the base of a whole mapping.
    unsafe { VirtualFree(ptr.cast::<c_void>(), 0, MEM_RELEASE) };
}

pub(super) fn reserve(len: usize, align: usize) -> *mut u8 {
    place(len, align, MEM_RESERVE, PAGE_NOACCESS)
}

pub(super) unsafe fn commit(ptr: *mut u8, len: usize) -> Result<(), OsError> {
    // SAFETY: caller contract: inside our reservation.
    let p = unsafe { VirtualAlloc(ptr.cast::<c_void>(), len, MEM_COMMIT, PAGE_READWRITE) };
    if p.is_null() {
        Err(last_error())
    } else {
        Ok(())
    }
}

pub(super) unsafe fn decommit(ptr: *mut u8, len: usize) {
    // SAFETY: caller contract: inside our reservation, no live data.
    unsafe { VirtualFree(ptr.cast::<c_void>(), len, MEM_DECOMMIT) };
}

pub(super) unsafe fn purge(ptr: *mut u8, len: usize) -> bool {
    // Decommit + recommit gives zero pages back without releasing the range.
    // SAFETY: caller contract.
    unsafe {
        VirtualFree(ptr.cast::<c_void>(), len, MEM_DECOMMIT);
        !VirtualAlloc(ptr.cast::<c_void>(), len, MEM_COMMIT, PAGE_READWRITE).is_null()
    }
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

pub(super) unsafe fn lock(ptr: *mut u8, len: usize) -> Result<(), OsError> {
    // SAFETY: caller contract.
    if unsafe { VirtualLock(ptr.cast::<c_void>(), len) } == 0 {
        Err(last_error())
    } else {
        Ok(())
    }
}

pub(super) unsafe fn unlock(ptr: *mut u8, len: usize) {
    // SAFETY: caller contract.
    unsafe { VirtualUnlock(ptr.cast::<c_void>(), len) };
}

pub(super) unsafe fn resident_sample(_ptr: *mut u8, _len: usize) -> Option<(usize, usize)> {
    None
}

pub(super) unsafe fn unprotect_secret(_ptr: *mut u8, _len: usize) {}

pub(super) unsafe fn protect_secret(_ptr: *mut u8, _len: usize) -> Result<SecretFlags, OsError> {
    Ok(SecretFlags::default())
}

pub(super) unsafe fn name(_ptr: *mut u8, _len: usize, _name: &'static core::ffi::CStr) {}

pub(super) unsafe fn secure_zero(ptr: *mut u8, len: usize) {
    // Volatile stores plus a fence: what SecureZeroMemory (a header-only
    // inline function, not an export) does.
    for i in 0..len {
        // SAFETY: caller contract: valid for `len` bytes.
        unsafe { core::ptr::write_volatile(ptr.add(i), 0) };
    }
    core::sync::atomic::compiler_fence(core::sync::atomic::Ordering::SeqCst);
}

pub(super) fn physical_memory() -> usize {
    0
}

/// Monotonic microseconds (`GetTickCount64`: millisecond steps).
pub(super) fn now_us() -> u64 {
    // SAFETY: no preconditions.
    unsafe { windows_sys::Win32::System::SystemInformation::GetTickCount64() }.wrapping_mul(1000)
}

pub(super) fn env_var(name: &[u8], buf: &mut [u8]) -> Option<usize> {
    use windows_sys::Win32::System::Environment::GetEnvironmentVariableA;
    let mut cname = [0u8; 64];
    if name.len() >= cname.len() {
        return None;
    }
    cname[..name.len()].copy_from_slice(name);
    // SAFETY: NUL-terminated name; the buffer length is passed.
    let n = unsafe { GetEnvironmentVariableA(cname.as_ptr(), buf.as_mut_ptr(), buf.len() as u32) } as usize;
    if n == 0 || n >= buf.len() {
        None
    } else {
        Some(n)
    }
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

/// Nothing to set up. What retires an exited thread's heap here is the TLS
/// guard that [`watch_thread_exit`] arms (`os::tls_exit_guard`): a Rust
/// `thread_local!` whose destructor runs the exit hook. std runs the
/// destructors of Windows threads from its TLS callback (the PE image's
/// `.CRT$XL*` table, called by the loader with `DLL_THREAD_DETACH` on every
/// thread that exits, Rust-spawned or not), so no `pthread`-key or FLS
/// counterpart is needed. Arming it allocates (std's per-thread list of
/// destructors), which is why the heap layer arms it after `CURRENT` is set.
/// tests/windows.rs checks the effect under Wine: 10,000 short-lived
/// threads reuse a few dozen heaps at most.
pub(super) fn init_thread_exit() {}

pub(super) use super::tls_exit_guard as watch_thread_exit;

#[cfg_attr(not(feature = "hardened"), allow(dead_code))]
pub(super) fn random(buf: &mut [u8]) {
    // Address-space layout randomisation is the entropy here; hardened
    // mode mixes it with stack addresses.
    let seed = (buf.as_ptr() as usize).rotate_left(13) ^ (random as fn(&mut [u8]) as usize);
    for (i, b) in buf.iter_mut().enumerate() {
        *b = (seed >> ((i % 8) * 8)) as u8;
    }
}

#[cfg_attr(not(feature = "hardened"), allow(dead_code))]
pub(super) fn write_stderr(msg: &[u8]) {
    use windows_sys::Win32::Storage::FileSystem::WriteFile;
    use windows_sys::Win32::System::Console::{GetStdHandle, STD_ERROR_HANDLE};
    // SAFETY: plain Win32 calls with a valid buffer and length.
    unsafe {
        let h = GetStdHandle(STD_ERROR_HANDLE);
        let mut written = 0u32;
        WriteFile(h, msg.as_ptr(), msg.len() as u32, &mut written, core::ptr::null_mut());
    }
}
