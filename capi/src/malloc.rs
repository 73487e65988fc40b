//! The C allocation API, with glibc's behaviour on every edge case:
//!
//! | call | on failure | notes |
//! | --- | --- | --- |
//! | `malloc(n)` | NULL, `ENOMEM` | `malloc(0)` is a unique pointer |
//! | `calloc(n, m)` | NULL, `ENOMEM` | `n * m` overflow fails |
//! | `realloc(p, n)` | NULL, `ENOMEM`, `p` intact | `realloc(NULL, n)` = `malloc(n)`; `realloc(p, 0)` frees `p`, returns NULL |
//! | `reallocarray(p, n, m)` | NULL, `ENOMEM`, `p` intact | overflow-checked `realloc` |
//! | `posix_memalign(&p, a, n)` | returns `EINVAL`/`ENOMEM`, `p` and `errno` untouched | `a` a power of two and a multiple of `sizeof(void *)` |
//! | `aligned_alloc(a, n)` | NULL, `EINVAL` (bad `a`) / `ENOMEM` | `a` a power of two (glibc ≥ 2.38) |
//! | `memalign(a, n)` | NULL, `EINVAL` (`a` > `SIZE_MAX / 2 + 1`) / `ENOMEM` | other `a` rounded up to a power of two |
//! | `valloc(n)`, `pvalloc(n)` | NULL, `ENOMEM` | page aligned; `pvalloc` rounds `n` up to pages |
//! | `malloc_usable_size(p)` | — | 0 for NULL |
//! | `free(p)`, `cfree(p)` | — | NULL ignored; `errno` preserved |
//! | `free_sized(p, n)`, `free_aligned_sized(p, a, n)` (C23) | — | `free(p)`: the size hint is not needed |
//!
//! Blocks are 16-byte aligned (as glibc's on x86-64 and AArch64) unless an
//! aligned call asked for more.

use core::ffi::{c_int, c_void};
use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use zk_nalloc::raw;

use crate::{set_errno, KeepErrno};

/// The library constructor's `.init_array` entry. It lives in this module,
/// so in the object file that defines `malloc`: a program linked with
/// `libnalloc.a` pulls that object in, and with it the constructor (an entry
/// in a separate, otherwise unreferenced object would be left out).
#[used]
#[link_section = ".init_array"]
static INIT: extern "C" fn() = crate::init::nalloc_init;

/// The alignment of `malloc`'s blocks (glibc's `MALLOC_ALIGNMENT`).
const MIN_ALIGN: usize = 16;

/// The largest alignment `memalign` accepts (glibc: `SIZE_MAX / 2 + 1`).
const MAX_ALIGN: usize = usize::MAX / 2 + 1;

/// Allocation with `ENOMEM` on failure.
#[inline(always)]
fn alloc_or_enomem(size: usize, align: usize, zeroed: bool) -> *mut c_void {
    let p = raw::alloc(size, align, zeroed);
    if p.is_null() {
        set_errno(libc::ENOMEM);
    }
    p.cast()
}

/// Allocates `size` bytes, 16-byte aligned; NULL and `ENOMEM` on failure.
/// `malloc(0)` returns a unique pointer that may be passed to `free`.
///
/// # Safety
/// None beyond C's: the block must be released with `free`/`realloc` of
/// this library.
#[no_mangle]
pub unsafe extern "C" fn malloc(size: usize) -> *mut c_void {
    alloc_or_enomem(size, MIN_ALIGN, false)
}

/// Frees a block from any allocation function of this library; NULL is
/// ignored. `errno` is preserved.
///
/// # Safety
/// `p` must be NULL or a live block of this library, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn free(p: *mut c_void) {
    // SAFETY: caller contract.
    unsafe { raw::free(p.cast()) }
}

/// Same as [`free`] (a historical alias, still exported by glibc for old
/// binaries).
///
/// # Safety
/// As for [`free`].
#[no_mangle]
pub unsafe extern "C" fn cfree(p: *mut c_void) {
    // SAFETY: caller contract.
    unsafe { raw::free(p.cast()) }
}

/// C23's `free_sized`: frees `p`, a block of `size` bytes from `malloc`,
/// `calloc` or `realloc`; NULL is ignored; `errno` is preserved. The size
/// is not needed: a block's page (or header) is found from its address, so
/// this is [`free`]. Exported because glibc before 2.41 has no
/// `free_sized`, so C23 programs that call it find it here under
/// `LD_PRELOAD`.
///
/// # Safety
/// As for [`free`]; C23 makes a wrong `size` undefined behaviour.
#[no_mangle]
pub unsafe extern "C" fn free_sized(p: *mut c_void, _size: usize) {
    // SAFETY: caller contract.
    unsafe { raw::free(p.cast()) }
}

/// C23's `free_aligned_sized`: frees `p`, a block of `size` bytes from
/// `aligned_alloc(alignment, size)`; NULL is ignored; `errno` is
/// preserved. Like [`free_sized`], this is [`free`].
///
/// # Safety
/// As for [`free`]; C23 makes a wrong `alignment` or `size` undefined
/// behaviour.
#[no_mangle]
pub unsafe extern "C" fn free_aligned_sized(p: *mut c_void, _alignment: usize, _size: usize) {
    // SAFETY: caller contract.
    unsafe { raw::free(p.cast()) }
}

/// Allocates zeroed memory for `n` objects of `size` bytes; NULL and
/// `ENOMEM` if the product overflows or memory cannot be had.
///
/// # Safety
/// As for [`malloc`].
#[no_mangle]
pub unsafe extern "C" fn calloc(n: usize, size: usize) -> *mut c_void {
    match n.checked_mul(size) {
        Some(total) => alloc_or_enomem(total, MIN_ALIGN, true),
        None => {
            set_errno(libc::ENOMEM);
            core::ptr::null_mut()
        }
    }
}

/// Resizes `p` to `size` bytes, keeping its contents up to the smaller size.
/// `realloc(NULL, n)` is `malloc(n)`; `realloc(p, 0)` frees `p` and returns
/// NULL (glibc's choice). On failure returns NULL with `ENOMEM` and `p` is
/// left intact.
///
/// The result is 16-byte aligned; a block from an aligned call keeps its
/// alignment only when resized in place (as with glibc).
///
/// # Safety
/// `p` must be NULL or a live block of this library; on success it must not
/// be used afterwards.
#[no_mangle]
pub unsafe extern "C" fn realloc(p: *mut c_void, size: usize) -> *mut c_void {
    if p.is_null() {
        return alloc_or_enomem(size, MIN_ALIGN, false);
    }
    if size == 0 {
        // SAFETY: caller contract: `p` is a live block.
        unsafe { raw::free(p.cast()) };
        return core::ptr::null_mut();
    }
    // SAFETY: caller contract: `p` is a live block of the engine. Over-aligned
    // blocks (from posix_memalign & co.) are fine too: the engine either
    // resizes a span in place keeping its alignment and header, or keeps a
    // small block whose class still fits, or moves the contents to a new
    // default-aligned block and frees the old one by its own record.
    let q = unsafe { raw::realloc(p.cast(), size) };
    if q.is_null() {
        set_errno(libc::ENOMEM);
    }
    q.cast()
}

/// `realloc(p, n * size)` with the product overflow-checked (NULL and
/// `ENOMEM` on overflow, `p` intact).
///
/// # Safety
/// As for [`realloc`].
#[no_mangle]
pub unsafe extern "C" fn reallocarray(p: *mut c_void, n: usize, size: usize) -> *mut c_void {
    match n.checked_mul(size) {
        // SAFETY: forwarded caller contract.
        Some(total) => unsafe { realloc(p, total) },
        None => {
            set_errno(libc::ENOMEM);
            core::ptr::null_mut()
        }
    }
}

/// Allocates `size` bytes aligned to `align` into `*memptr`. Returns 0, or
/// `EINVAL` if `align` is not a power of two multiple of `sizeof(void *)`,
/// or `ENOMEM`; on failure `*memptr` is not written. `errno` is never
/// changed.
///
/// # Safety
/// `memptr` must be valid for a pointer write.
#[no_mangle]
pub unsafe extern "C" fn posix_memalign(memptr: *mut *mut c_void, align: usize, size: usize) -> c_int {
    if !align.is_power_of_two() || align % core::mem::size_of::<*mut c_void>() != 0 {
        return libc::EINVAL;
    }
    let p = raw::alloc(size, align, false);
    if p.is_null() {
        return libc::ENOMEM;
    }
    // SAFETY: caller contract: `memptr` is writable.
    unsafe { memptr.write(p.cast()) };
    0
}

/// C11 `aligned_alloc`: `size` bytes aligned to `align`, which must be a
/// power of two (NULL and `EINVAL` otherwise, as glibc ≥ 2.38 does); NULL and
/// `ENOMEM` when memory cannot be had.
///
/// # Safety
/// As for [`malloc`].
#[no_mangle]
pub unsafe extern "C" fn aligned_alloc(align: usize, size: usize) -> *mut c_void {
    if !align.is_power_of_two() {
        set_errno(libc::EINVAL);
        return core::ptr::null_mut();
    }
    alloc_or_enomem(size, align, false)
}

/// Obsolete `memalign`: `size` bytes aligned to `align`. Alignments up to 16
/// give a `malloc` block; others are rounded up to a power of two; more than
/// `SIZE_MAX / 2 + 1` fails with `EINVAL`. NULL and `ENOMEM` on exhaustion.
///
/// # Safety
/// As for [`malloc`].
#[no_mangle]
pub unsafe extern "C" fn memalign(align: usize, size: usize) -> *mut c_void {
    match memalign_align(align) {
        Some(a) => alloc_or_enomem(size, a, false),
        None => {
            set_errno(libc::EINVAL);
            core::ptr::null_mut()
        }
    }
}

/// glibc's reading of a `memalign` alignment.
fn memalign_align(align: usize) -> Option<usize> {
    if align <= MIN_ALIGN {
        Some(MIN_ALIGN)
    } else if align > MAX_ALIGN {
        None
    } else {
        // ≤ MAX_ALIGN, so the next power of two exists.
        align.checked_next_power_of_two()
    }
}

/// The system page size (cached; `sysconf` is called once).
fn page_size() -> usize {
    static PAGE: AtomicUsize = AtomicUsize::new(0);
    let p = PAGE.load(Relaxed);
    if p != 0 {
        return p;
    }
    let _keep = KeepErrno::new();
    // SAFETY: sysconf has no preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let p = if v > 0 && (v as usize).is_power_of_two() {
        v as usize
    } else {
        4096
    };
    PAGE.store(p, Relaxed);
    p
}

/// Obsolete `valloc`: `size` bytes aligned to the page size.
///
/// # Safety
/// As for [`malloc`].
#[no_mangle]
pub unsafe extern "C" fn valloc(size: usize) -> *mut c_void {
    alloc_or_enomem(size, page_size(), false)
}

/// Obsolete `pvalloc`: `size` rounded up to whole pages (at least one), page
/// aligned; NULL and `ENOMEM` if the rounding overflows.
///
/// # Safety
/// As for [`malloc`].
#[no_mangle]
pub unsafe extern "C" fn pvalloc(size: usize) -> *mut c_void {
    let page = page_size();
    match size.max(1).checked_add(page - 1) {
        Some(s) => alloc_or_enomem(s & !(page - 1), page, false),
        None => {
            set_errno(libc::ENOMEM);
            core::ptr::null_mut()
        }
    }
}

/// Bytes usable in the block at `p` (at least what was asked for); 0 for
/// NULL.
///
/// # Safety
/// `p` must be NULL or a live block of this library.
#[no_mangle]
pub unsafe extern "C" fn malloc_usable_size(p: *mut c_void) -> usize {
    if p.is_null() {
        return 0;
    }
    // SAFETY: caller contract.
    unsafe { raw::usable_size(p.cast()) }
}
