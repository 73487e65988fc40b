//! The polynomial arena: FFT/NTT vectors.
//!
//! Polynomial memory is the allocator's span engine (warm pool, huge pages,
//! `mremap` growth) with stronger placement: always 64-byte aligned (one
//! AVX-512 vector, one cache line), page aligned from one page up, and
//! huge-page aligned from one huge page up (2 MiB on x86-64; the PMD size of
//! the kernel's page size elsewhere) so huge pages can back all of it. The arena
//! keeps its own accounting and remembers its live spans of 2 MiB and more
//! so that [`PolynomialArena::huge_page_bytes`] can report how much really
//! is huge-page backed — "asked for" is not "got".

use core::alloc::Layout;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use crate::base::sync::SpinLock;
use crate::os;
use crate::small;

/// Live huge-page-eligible spans remembered for reporting.
const TRACKED: usize = crate::policy::POLYNOMIAL_TRACKED;

#[derive(Clone, Copy)]
struct Tracked {
    addr: usize,
    len: usize,
}

/// An arena for FFT/NTT vectors. Obtain it with [`crate::NAlloc::polynomial`].
pub struct PolynomialArena {
    used: AtomicUsize,
    peak: AtomicUsize,
    tracked: SpinLock<([Tracked; TRACKED], usize)>,
}

impl Default for PolynomialArena {
    fn default() -> Self {
        Self::new()
    }
}

/// Why [`PolynomialArena::std_vec_with_capacity`] gave no vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StdVecError {
    /// The global allocator is not `NAlloc`: a `std::vec::Vec` from it would
    /// not be polynomial memory. Declare `#[global_allocator] static ALLOC:
    /// NAlloc = NAlloc::new();` in the binary, or use
    /// [`PolynomialArena::vec_with_capacity`] (an `allocator_api2` vector).
    NotGlobalAllocator,
    /// The memory could not be had (or the size overflows).
    OutOfMemory,
}

impl core::fmt::Display for StdVecError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::NotGlobalAllocator => {
                "polynomial std::vec::Vec refused: NAlloc is not the global allocator \
                 (declare #[global_allocator] static ALLOC: NAlloc = NAlloc::new();)"
            }
            Self::OutOfMemory => "polynomial std::vec::Vec: out of memory",
        })
    }
}

impl std::error::Error for StdVecError {}

/// True if the global allocator is nalloc's: a probe block from
/// `std::alloc::alloc` lands in nalloc's small-object segments (or in
/// witness memory, inside a witness scope). The answer cannot change during
/// the process, so it is kept after the first probe.
fn global_is_nalloc() -> bool {
    use core::sync::atomic::{AtomicU8, Ordering};
    static KNOWN: AtomicU8 = AtomicU8::new(0); // 0: not probed, 1: yes, 2: no
    match KNOWN.load(Ordering::Relaxed) {
        1 => return true,
        2 => return false,
        _ => {}
    }
    let layout = Layout::new::<u64>();
    // SAFETY: the layout has a non-zero size.
    let p = unsafe { std::alloc::alloc(layout) };
    if p.is_null() {
        return false; // out of memory: unknown, probe again next time
    }
    let ours = crate::small::segment::contains(p) || crate::arenas::witness::contains(p);
    // SAFETY: `p` was just allocated by the global allocator with `layout`.
    unsafe { std::alloc::dealloc(p, layout) };
    KNOWN.store(if ours { 1 } else { 2 }, Ordering::Relaxed);
    ours
}

/// Alignment given to a polynomial block of `size` bytes.
pub(crate) fn fft_align(size: usize, align: usize) -> usize {
    let natural = if size >= os::huge_page() {
        os::huge_page()
    } else if size >= os::page() {
        os::page()
    } else {
        64
    };
    natural.max(align)
}

impl PolynomialArena {
    /// A new arena (no memory is taken until the first allocation).
    pub const fn new() -> Self {
        Self {
            used: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            tracked: SpinLock::new(([Tracked { addr: 0, len: 0 }; TRACKED], 0)),
        }
    }

    /// Allocates `size` bytes for an FFT/NTT vector: 64-byte aligned, page
    /// aligned from 4 KiB, huge-page aligned (huge-page eligible) from one
    /// huge page (2 MiB on x86-64).
    /// Not zeroed unless the memory is fresh. Null on failure.
    pub fn alloc_fft_friendly(&self, size: usize) -> *mut u8 {
        self.alloc_aligned(size, 64, false)
    }

    /// Like [`alloc_fft_friendly`](Self::alloc_fft_friendly), zero-filled
    /// (fresh memory from the OS is not memset).
    pub fn alloc_fft_friendly_zeroed(&self, size: usize) -> *mut u8 {
        self.alloc_aligned(size, 64, true)
    }

    /// Frees a block from `alloc_fft_friendly(size)`.
    ///
    /// # Safety
    /// `ptr` must come from this arena with the same `size`, and not be used
    /// afterwards.
    pub unsafe fn dealloc_fft(&self, ptr: *mut u8, size: usize) {
        // SAFETY: forwarded caller contract.
        unsafe { self.dealloc_aligned(ptr, size, 64) }
    }

    /// A vector of `n` zeroed `T`s in polynomial memory, for types where all
    /// zero bytes is a valid value (field elements in Montgomery form, plain
    /// integers). `zero_is_valid` is the caller's statement of that.
    ///
    /// # Safety
    /// An all-zero bit pattern must be a valid `T`.
    pub unsafe fn zeroed_vec<T>(&self, n: usize) -> allocator_api2::vec::Vec<T, &Self> {
        let mut v = allocator_api2::vec::Vec::with_capacity_in(n, self);
        // SAFETY: the capacity is at least `n`; zero the bytes, then the
        // caller's contract makes them valid `T`s.
        unsafe {
            ptr::write_bytes(v.as_mut_ptr(), 0, n);
            v.set_len(n);
        }
        v
    }

    /// An empty vector with room for `n` `T`s in polynomial memory.
    pub fn vec_with_capacity<T>(&self, n: usize) -> allocator_api2::vec::Vec<T, &Self> {
        allocator_api2::vec::Vec::with_capacity_in(n, self)
    }

    /// An empty `std::vec::Vec` with room for at least `n` `T`s in
    /// polynomial memory — the type arkworks (`DensePolynomial::
    /// from_coefficients_vec`) and Plonky3 (`RowMajorMatrix::new`) take.
    ///
    /// Valid only where [`NAlloc`](crate::NAlloc) is the global allocator:
    /// a `std::vec::Vec` is freed and grown through the global allocator,
    /// so its memory must come from there. That is checked (a probe
    /// allocation must land in nalloc's memory), and otherwise the call
    /// refuses with [`StdVecError::NotGlobalAllocator`] instead of handing
    /// out memory without the placement asked for.
    ///
    /// The vector is a span: the capacity is raised, where needed, to just
    /// over 64 KiB of bytes, so it is page aligned (so 64-byte aligned),
    /// starts on a huge-page boundary from one huge page (huge pages per
    /// [`HugePages`](crate::HugePages)), is cut from the warm pool when a
    /// freed vector of its size class is there (no page faults), and grows
    /// with `mremap`. The raised capacity costs address space, not memory:
    /// untouched pages are never faulted in. Its bytes count in
    /// `stats().polynomial_used`, not in [`used`](Self::used) (it is freed
    /// by `Vec`'s drop, which does not pass through this arena). Inside
    /// [`witness_scope`](crate::NAlloc::witness_scope) the vector is witness
    /// memory instead, as every allocation there is.
    pub fn std_vec_with_capacity<T>(&self, n: usize) -> Result<std::vec::Vec<T>, StdVecError> {
        if !global_is_nalloc() {
            return Err(StdVecError::NotGlobalAllocator);
        }
        let size = core::mem::size_of::<T>();
        if size == 0 {
            return Ok(std::vec::Vec::new());
        }
        let mut v = std::vec::Vec::new();
        v.try_reserve_exact(n.max(crate::policy::SMALL_MAX / size + 1))
            .map_err(|_| StdVecError::OutOfMemory)?;
        Ok(v)
    }

    fn alloc_aligned(&self, size: usize, align: usize, zeroed: bool) -> *mut u8 {
        let align = fft_align(size, align);
        let Ok(layout) = Layout::from_size_align(size.max(1), align) else {
            return ptr::null_mut();
        };
        let p = small::alloc_plain(layout.size(), layout.align(), zeroed);
        if !p.is_null() {
            let v = self.used.fetch_add(layout.size(), Relaxed) + layout.size();
            self.peak.fetch_max(v, Relaxed);
            if size >= os::huge_page() {
                let mut t = self.tracked.lock();
                if t.1 < TRACKED {
                    let i = t.1;
                    t.0[i] = Tracked {
                        addr: p.addr(),
                        len: size,
                    };
                    t.1 += 1;
                }
            }
        }
        p
    }

    unsafe fn dealloc_aligned(&self, p: *mut u8, size: usize, align: usize) {
        let align = fft_align(size, align);
        if size >= os::huge_page() {
            let mut t = self.tracked.lock();
            let n = t.1;
            if let Some(i) = t.0[..n].iter().position(|e| e.addr == p.addr()) {
                t.0[i] = t.0[n - 1];
                t.1 -= 1;
            }
        }
        self.used.fetch_sub(size.max(1), Relaxed);
        // SAFETY: caller contract: made by `alloc_aligned(size, align)`,
        // which used exactly this layout.
        unsafe { small::dealloc_plain(p, size.max(1), align) }
    }

    /// Bytes in live blocks of this arena.
    pub fn used(&self) -> usize {
        self.used.load(Relaxed)
    }

    /// Highest [`used`](Self::used) seen.
    pub fn peak(&self) -> usize {
        self.peak.load(Relaxed)
    }

    /// Restarts the peak at the current usage (`NAlloc::reset_peaks`).
    pub(crate) fn reset_peak(&self) {
        self.peak.store(self.used(), Relaxed);
    }

    /// Bytes of this arena's live 2 MiB-and-larger blocks that the kernel
    /// actually backs with transparent huge pages (from `/proc/self/smaps`
    /// `AnonHugePages`); `None` where the platform cannot tell.
    pub fn huge_page_bytes(&self) -> Option<usize> {
        let mut spans = [Tracked { addr: 0, len: 0 }; TRACKED];
        let n = {
            let t = self.tracked.lock();
            spans[..t.1].copy_from_slice(&t.0[..t.1]);
            t.1
        };
        let mut total = 0;
        for s in &spans[..n] {
            total += os::huge_backed_bytes(s.addr, s.len)?;
        }
        Some(total)
    }
}

// SAFETY: allocation goes through the plain engine, which is thread-safe;
// blocks stay valid until deallocated.
unsafe impl allocator_api2::alloc::Allocator for PolynomialArena {
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, allocator_api2::alloc::AllocError> {
        let p = self.alloc_aligned(layout.size(), layout.align(), false);
        NonNull::new(p)
            .map(|p| NonNull::slice_from_raw_parts(p, layout.size()))
            .ok_or(allocator_api2::alloc::AllocError)
    }

    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: Allocator contract: `ptr` came from `allocate(layout)`.
        unsafe { self.dealloc_aligned(ptr.as_ptr(), layout.size(), layout.align()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The library's unit tests run on the system allocator, so a
    /// `std::vec::Vec` cannot be polynomial memory: refused, with the fix in
    /// the message. (tests/polynomial_vec.rs covers the accepted case.)
    #[test]
    fn std_vec_refused_when_nalloc_is_not_the_global_allocator() {
        let arena = PolynomialArena::new();
        let e = arena.std_vec_with_capacity::<u64>(1 << 16).unwrap_err();
        assert_eq!(e, StdVecError::NotGlobalAllocator);
        assert!(e.to_string().contains("#[global_allocator]"));
    }
}
