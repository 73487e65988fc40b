//! The scratch arena: bump allocation with an O(1) reset that cannot dangle.
//!
//! Memory comes in chunks (64 KiB, doubling up to 64 MiB, or one chunk of
//! exactly a large request's size; see docs/design/scratch-arena.md) taken
//! from the span engine. Allocation bumps a pointer; freeing does nothing
//! (except rolling back the most recent block). Reset moves the bump pointer
//! back to the first chunk and *keeps* every chunk up to the high-water
//! mark, so the next round reuses warm memory instead of page-faulting it in
//! again. Reset is O(1) in the number of allocations.
//!
//! Safety comes from lifetimes, not from a phase contract: everything the
//! arena hands out borrows `&self`, and the safe resets —
//! [`ScratchArena::scope`] and [`ScratchArena::clear`] — take `&mut self`, so
//! the borrow checker rejects any reference that would outlive them:
//!
//! ```compile_fail,E0521
//! let mut arena = zk_nalloc::ScratchArena::new();
//! let mut escaped: Option<&mut u64> = None;
//! arena.scope(|s| escaped = Some(s.alloc_val(7u64))); // borrow escapes the scope
//! ```
//!
//! ```compile_fail,E0502
//! let mut arena = zk_nalloc::ScratchArena::new();
//! let v = arena.alloc_val(7u64);
//! arena.clear(); // cannot reset while `v` is alive
//! *v += 1;
//! ```
//!
//! An arena is `Send` but not `Sync`: use one per thread or per task.

use core::alloc::Layout;
use core::cell::Cell;
use core::marker::PhantomData;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use crate::mem::span;

use crate::policy::{SCRATCH_FIRST_CHUNK as FIRST_CHUNK, SCRATCH_MAX_CHUNK as MAX_CHUNK};
const CHUNK_ALIGN: usize = 64;

/// Bytes in all scratch arenas' chunks (process-wide, for `stats`).
pub(crate) static CAPACITY: AtomicUsize = AtomicUsize::new(0);
/// Bytes handed out by all scratch arenas, updated at resets and chunk
/// changes (not per allocation, to keep bumping free of atomics).
pub(crate) static USED: AtomicUsize = AtomicUsize::new(0);
pub(crate) static PEAK: AtomicUsize = AtomicUsize::new(0);

/// Chunk header, at the start of each chunk.
#[repr(C)]
struct Chunk {
    next: *mut Chunk,
    /// Bytes of the whole chunk (header included).
    len: usize,
}

const HEADER: usize = 64;

/// A bump arena. See the module docs.
pub struct ScratchArena {
    first: Cell<*mut Chunk>,
    current: Cell<*mut Chunk>,
    bump: Cell<*mut u8>,
    end: Cell<*mut u8>,
    /// Bytes handed out in chunks before `current`.
    before: Cell<usize>,
    /// Bytes published to `USED` so far.
    published: Cell<usize>,
    /// Start of the most recent allocation (for roll-back on free).
    last: Cell<*mut u8>,
    _not_sync: PhantomData<*mut u8>,
}

// SAFETY: the arena owns its chunks; moving it to another thread moves
// ownership of all its memory (it is not Sync, so never shared).
unsafe impl Send for ScratchArena {}

impl Default for ScratchArena {
    fn default() -> Self {
        Self::new()
    }
}

impl ScratchArena {
    /// An empty arena; the first chunk is mapped on first use.
    pub const fn new() -> Self {
        Self {
            first: Cell::new(ptr::null_mut()),
            current: Cell::new(ptr::null_mut()),
            bump: Cell::new(ptr::null_mut()),
            end: Cell::new(ptr::null_mut()),
            before: Cell::new(0),
            published: Cell::new(0),
            last: Cell::new(ptr::null_mut()),
            _not_sync: PhantomData,
        }
    }

    /// Allocates a block for `layout`; `None` when memory cannot be had.
    /// The block lives until the arena is reset or dropped.
    #[inline]
    pub fn alloc(&self, layout: Layout) -> Option<NonNull<u8>> {
        let b = self.bump.get();
        let start = (b.addr().wrapping_add(layout.align() - 1)) & !(layout.align() - 1);
        // `start` may wrap (huge alignment) or pass `end` (alignment padding
        // bigger than what is left): both must fail the check, hence the
        // checked subtraction.
        let fits = start >= b.addr()
            && self
                .end
                .get()
                .addr()
                .checked_sub(start)
                .is_some_and(|room| layout.size() <= room);
        if !b.is_null() && fits {
            let p = b.with_addr(start);
            // SAFETY: `start + size <= end`, inside the current chunk.
            self.bump.set(unsafe { p.add(layout.size()) });
            self.last.set(p);
            return NonNull::new(p);
        }
        self.alloc_slow(layout)
    }

    /// Moves `value` into the arena and returns a reference to it. Its
    /// destructor is never run (like `bumpalo`).
    #[allow(clippy::mut_from_ref)] // distinct fresh blocks, as above
    pub fn alloc_val<T>(&self, value: T) -> &mut T {
        match self.try_alloc_val(value) {
            Some(r) => r,
            None => alloc_failed(Layout::new::<T>()),
        }
    }

    /// Like [`alloc_val`](Self::alloc_val) but returns `None` when out of memory.
    // Handing out `&mut` from `&self` is the point of a bump arena: each
    // call returns a distinct, fresh block, so the borrows never alias.
    #[allow(clippy::mut_from_ref)]
    pub fn try_alloc_val<T>(&self, value: T) -> Option<&mut T> {
        let p = self.alloc(Layout::new::<T>())?.cast::<T>();
        // SAFETY: fresh, aligned, exclusively ours until reset; reset needs
        // `&mut self`, which cannot coexist with the returned borrow.
        unsafe {
            p.as_ptr().write(value);
            Some(&mut *p.as_ptr())
        }
    }

    /// Allocates `n` values made by `f(i)` as a slice.
    #[allow(clippy::mut_from_ref)] // distinct fresh blocks, as above
    pub fn alloc_slice_fill_with<T>(&self, n: usize, mut f: impl FnMut(usize) -> T) -> &mut [T] {
        let Ok(layout) = Layout::array::<T>(n) else {
            alloc_failed(Layout::new::<T>())
        };
        let Some(p) = self.alloc(layout) else {
            alloc_failed(layout)
        };
        let p = p.cast::<T>().as_ptr();
        for i in 0..n {
            // SAFETY: `i < n`, inside the block sized for `n` values.
            unsafe { p.add(i).write(f(i)) };
        }
        // SAFETY: all `n` values are initialised; borrow tied to `&self`.
        unsafe { core::slice::from_raw_parts_mut(p, n) }
    }

    /// Copies a slice into the arena.
    #[allow(clippy::mut_from_ref)] // distinct fresh blocks, as above
    pub fn alloc_slice_copy<T: Copy>(&self, src: &[T]) -> &mut [T] {
        self.alloc_slice_fill_with(src.len(), |i| src[i])
    }

    #[cold]
    fn alloc_slow(&self, layout: Layout) -> Option<NonNull<u8>> {
        // Move on to the next kept chunk, or map a new one.
        loop {
            let cur = self.current.get();
            // SAFETY: `cur` (if non-null) is a chunk of ours.
            let next = if cur.is_null() {
                self.first.get()
            } else {
                // SAFETY: `cur` is a chunk of ours.
                unsafe { (*cur).next }
            };
            if next.is_null() {
                break;
            }
            self.enter(next);
            if let Some(p) = self.try_here(layout) {
                return Some(p);
            }
        }
        let prev_len = if self.current.get().is_null() {
            0
        } else {
            // SAFETY: chunk of ours.
            unsafe { (*self.current.get()).len }
        };
        let need = layout.size().checked_add(layout.align())?.checked_add(HEADER)?;
        let len = (prev_len * 2).clamp(FIRST_CHUNK, MAX_CHUNK).max(need);
        let c = span::alloc(len, CHUNK_ALIGN, false, None).cast::<Chunk>();
        if c.is_null() {
            return None;
        }
        CAPACITY.fetch_add(len, Relaxed);
        // SAFETY: a fresh span of `len >= HEADER` bytes, 64-byte aligned.
        unsafe {
            c.write(Chunk {
                next: ptr::null_mut(),
                len,
            })
        };
        let cur = self.current.get();
        if cur.is_null() {
            self.first.set(c);
        } else {
            // SAFETY: the last chunk in the chain is `cur` (we walked to it).
            unsafe { (*cur).next = c };
        }
        self.enter(c);
        self.try_here(layout)
    }

    fn enter(&self, c: *mut Chunk) {
        let cur = self.current.get();
        if !cur.is_null() {
            self.before
                .set(self.before.get() + (self.bump.get().addr() - cur.addr()));
        }
        self.current.set(c);
        self.last.set(ptr::null_mut());
        // SAFETY: `c` is a chunk of ours with `len >= HEADER`.
        unsafe {
            self.bump.set(c.cast::<u8>().add(HEADER));
            self.end.set(c.cast::<u8>().add((*c).len));
        }
        self.publish();
    }

    fn try_here(&self, layout: Layout) -> Option<NonNull<u8>> {
        let b = self.bump.get();
        let start = (b.addr() + layout.align() - 1) & !(layout.align() - 1);
        if layout.size() <= self.end.get().addr().saturating_sub(start) {
            let p = b.with_addr(start);
            // SAFETY: fits in the chunk (checked).
            self.bump.set(unsafe { p.add(layout.size()) });
            self.last.set(p);
            NonNull::new(p)
        } else {
            None
        }
    }

    /// Bytes handed out since the last reset (including alignment padding).
    pub fn used(&self) -> usize {
        let cur = self.current.get();
        if cur.is_null() {
            0
        } else {
            self.before.get() + (self.bump.get().addr() - cur.addr() - HEADER)
        }
    }

    /// Bytes of memory the arena holds.
    pub fn capacity(&self) -> usize {
        let mut n = 0;
        let mut c = self.first.get();
        while !c.is_null() {
            // SAFETY: chunks of ours.
            unsafe {
                n += (*c).len;
                c = (*c).next;
            }
        }
        n
    }

    fn publish(&self) {
        let now = self.used();
        let old = self.published.replace(now);
        if now >= old {
            let v = USED.fetch_add(now - old, Relaxed) + (now - old);
            PEAK.fetch_max(v, Relaxed);
        } else {
            USED.fetch_sub(old - now, Relaxed);
        }
    }

    /// Runs `f` with the arena, then resets it. References made inside
    /// cannot escape `f` (the closure's borrow ends with it).
    pub fn scope<R>(&mut self, f: impl FnOnce(&ScratchArena) -> R) -> R {
        let r = f(self);
        self.clear();
        r
    }

    /// Resets the arena in O(1): every block is forgotten, chunks are kept.
    /// Safe because it takes `&mut self`: no block can still be borrowed.
    pub fn clear(&mut self) {
        // SAFETY: `&mut self` proves no outstanding borrow of any block.
        unsafe { self.reset() }
    }

    /// The brief's raw reset: forgets every block in O(1), keeping chunks.
    ///
    /// # Safety
    /// No pointer or reference to memory allocated from this arena (through
    /// `alloc` or the `Allocator` impl) may be used afterwards.
    pub unsafe fn reset(&self) {
        let first = self.first.get();
        self.current.set(ptr::null_mut());
        self.before.set(0);
        self.last.set(ptr::null_mut());
        if first.is_null() {
            self.bump.set(ptr::null_mut());
            self.end.set(ptr::null_mut());
            self.publish();
        } else {
            self.enter(first);
        }
    }
}

impl Drop for ScratchArena {
    fn drop(&mut self) {
        self.clear();
        self.published.set(self.used());
        USED.fetch_sub(self.published.get(), Relaxed);
        let mut c = self.first.get();
        while !c.is_null() {
            // SAFETY: chunks of ours, no longer referenced (we are dropped).
            unsafe {
                let next = (*c).next;
                let len = (*c).len;
                CAPACITY.fetch_sub(len, Relaxed);
                span::dealloc(c.cast(), len, CHUNK_ALIGN, None);
                c = next;
            }
        }
    }
}

// SAFETY: blocks stay valid until a reset, which needs `&mut self` (safe) or
// the caller's promise (`unsafe reset`); deallocate only rolls back the
// latest block, which nobody else can hold once it is freed.
unsafe impl allocator_api2::alloc::Allocator for ScratchArena {
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, allocator_api2::alloc::AllocError> {
        self.alloc(layout)
            .map(|p| NonNull::slice_from_raw_parts(p, layout.size()))
            .ok_or(allocator_api2::alloc::AllocError)
    }

    unsafe fn deallocate(&self, ptr: NonNull<u8>, _layout: Layout) {
        if ptr.as_ptr() == self.last.get() {
            self.bump.set(ptr.as_ptr());
            self.last.set(ptr::null_mut());
        }
    }
}

/// Reports allocation failure for the infallible helpers (`alloc`,
/// `alloc_slice_*`): the standard library's handler, as `Box::new` does.
#[cold]
fn alloc_failed(layout: Layout) -> ! {
    std::alloc::handle_alloc_error(layout)
}
