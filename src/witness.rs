//! The witness arena: memory for secrets.
//!
//! Every witness block lives in one process-wide *witness region*: 64 GiB
//! of address space reserved inaccessible once, cut into 1 MiB slots. An
//! arena commits *chunks* (runs of slots) inside it:
//!
//! ```text
//! | guard | header page | blocks ................................ | guard | guard | next chunk ...
//!   4 KiB   committed, mlock'ed;  blocks also MADV_DONTDUMP, MADV_WIPEONFORK   4 KiB
//! ```
//!
//! * The guards are simply the parts of the slot never committed, so every
//!   chunk is fenced without extra mappings: the number of mappings grows
//!   with chunks, not with allocations (per-object guard pages, as in
//!   libsodium, exhaust `vm.max_map_count` after ~16k secrets).
//! * Locking is per chunk and lasts the chunk's lifetime, so freeing one of
//!   two secrets on a page never unlocks the other. When `RLIMIT_MEMLOCK`
//!   forbids locking, the arena keeps working and `stats` says so.
//! * Blocks are zero when handed out and wiped (with a write the optimiser
//!   cannot remove) on every free; the link of the free list is the only
//!   non-zero word of a free block, and it is cleared on hand-out.
//! * Small requests use the allocator's size classes, bump-allocated from
//!   the arena's current chunk and recycled through per-class free lists;
//!   larger ones (over 64 KiB) get a chunk of their own, placed so that the
//!   block ends as close to the trailing guard page as its alignment allows.
//! * One range comparison (`contains`) tells the global `dealloc` whether a
//!   pointer is witness memory, which is how blocks allocated inside
//!   `witness_scope` are recognised when freed anywhere, on any thread.

use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};

use crate::os::{self, OS_PAGE};
use crate::page::Block;
use crate::region::Region;
use crate::size_class::{self, CLASS_SIZE, NUM_CLASSES};
use crate::sync::SpinLock;

/// Size of one slot of the witness region.
pub(crate) const SLOT: usize = 1 << 20;
/// Slots in the region (64 GiB of address space on 64-bit targets; 8 MiB
/// under Miri, where "reserving" allocates).
const SLOTS: usize = if cfg!(miri) {
    8
} else if usize::BITS >= 64 {
    65536
} else {
    64
};
/// Inaccessible bytes before and after every chunk.
const GUARD: usize = if OS_PAGE > 4096 { OS_PAGE } else { 4096 };
/// The chunk header (non-secret bookkeeping) owns the chunk's first page,
/// which is *not* marked wipe-on-fork or dump-excluded: a forked child must
/// still read valid headers (to wipe or release its copy of the chunks),
/// and only the pages after it can hold secrets.
const HEADER: usize = OS_PAGE;

/// Where every witness chunk lives.
static REGION: Region<{ SLOTS.div_ceil(64) }> = Region::new(SLOT, SLOTS);

/// True if `p` points into the witness region.
#[inline(always)]
pub(crate) fn contains(p: *const u8) -> bool {
    REGION.contains(p)
}

/// Bookkeeping at the start of every chunk (not secret).
#[repr(C)]
struct ChunkHeader {
    /// Next chunk of the same arena and kind.
    next: *mut ChunkHeader,
    /// Slots the chunk spans.
    slots: usize,
    /// Committed bytes from the header on.
    len: usize,
    /// For a large chunk: the block and its length.
    block: *mut u8,
    block_len: usize,
}

const _: () = assert!(core::mem::size_of::<ChunkHeader>() <= HEADER);

/// What happened when a chunk was committed: feeds the arena's stats.
#[derive(Default)]
struct Protection {
    locked: bool,
    dont_dump: bool,
    wipe_on_fork: bool,
}

/// Commits a chunk of `slots` slots with all protections. Null when the OS
/// refuses memory or a protection call fails unexpectedly.
fn new_chunk(slots: usize, prot: &mut Protection) -> *mut ChunkHeader {
    let base = REGION.claim(slots);
    if base.is_null() {
        return ptr::null_mut();
    }
    let len = slots * SLOT - 2 * GUARD;
    // SAFETY: inside the claimed slots.
    let p = unsafe { base.add(GUARD) };
    // SAFETY: the range is inside our reservation, page aligned, and
    // claimed by us alone.
    let ok = unsafe { os::commit(p, len) }.is_ok();
    if !ok {
        REGION.release(base, slots);
        return ptr::null_mut();
    }
    // SAFETY: committed just now, page aligned, ours; the secret part starts
    // after the header page.
    match unsafe { os::protect_secret(p.add(HEADER), len - HEADER) } {
        Ok(f) => {
            prot.dont_dump = f.dont_dump;
            prot.wipe_on_fork = f.wipe_on_fork;
        }
        Err(os::OsError(12)) => {} // ENOMEM: out of VMAs; the memory itself works.
        Err(_) => {
            // SAFETY: ours, holds nothing yet.
            unsafe { os::decommit(p, len) };
            REGION.release(base, slots);
            return ptr::null_mut();
        }
    }
    // SAFETY: as above.
    prot.locked = unsafe { os::lock(p, len) }.is_ok();
    // SAFETY: as above.
    unsafe { os::name(p, len, c"nalloc-witness") };
    let h = p.cast::<ChunkHeader>();
    // SAFETY: the header fits at the start of the committed range.
    unsafe {
        ptr::write(
            h,
            ChunkHeader {
                next: ptr::null_mut(),
                slots,
                len,
                block: ptr::null_mut(),
                block_len: 0,
            },
        )
    };
    h
}

/// Wipes and gives back a chunk (all its blocks must be dead).
///
/// # Safety
/// `h` must be a chunk made by `new_chunk` that nobody uses any more.
unsafe fn drop_chunk(h: *mut ChunkHeader, wipe_len: usize) {
    // SAFETY: caller contract.
    unsafe {
        let slots = (*h).slots;
        let len = (*h).len;
        let p = h.cast::<u8>();
        os::secure_zero(p, wipe_len.min(len));
        os::unlock(p, len);
        os::decommit(p, len);
        REGION.release(p.sub(GUARD), slots);
    }
}

struct Inner {
    /// Per-class free lists of wiped blocks.
    free: [*mut Block; NUM_CLASSES],
    /// Small-block chunks, newest first; `bump..end` is the newest's rest.
    small: *mut ChunkHeader,
    bump: *mut u8,
    end: *mut u8,
    /// Large-block chunks.
    large: *mut ChunkHeader,
    /// Bytes in live blocks, and their high-water mark (kept under the lock
    /// the allocation takes anyway: no extra atomic operations).
    used: usize,
    peak: usize,
}

impl Inner {
    fn account(&mut self, delta: isize) {
        if delta >= 0 {
            self.used += delta as usize;
            self.peak = self.peak.max(self.used);
        } else {
            self.used = self.used.saturating_sub(delta.unsigned_abs());
        }
    }
}
// SAFETY: the lock serialises access; pointers are to our own chunks.
unsafe impl Send for Inner {}

/// An arena of witness (secret) memory. See the module docs for what it
/// guarantees. Obtain one with [`crate::NAlloc::witness`] or
/// [`WitnessArena::new`].
pub struct WitnessArena {
    inner: SpinLock<Inner>,
    committed: AtomicUsize,
    lock_failed: AtomicBool,
    locked_any: AtomicBool,
    dump_excluded: AtomicBool,
    fork_wiped: AtomicBool,
}

/// A snapshot of a witness arena's state, part of [`crate::Stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WitnessStats {
    /// Bytes in live blocks (rounded to size classes).
    pub used: usize,
    /// Highest `used` seen.
    pub peak: usize,
    /// Bytes committed for the arena (its capacity before new chunks).
    pub capacity: usize,
    /// Every chunk so far was locked in RAM (`mlock`); false if any chunk
    /// could not be locked (e.g. `RLIMIT_MEMLOCK`) or none exists yet.
    pub locked: bool,
    /// Chunks are excluded from core dumps (`MADV_DONTDUMP`).
    pub dump_excluded: bool,
    /// Chunks read as zero in forked children (`MADV_WIPEONFORK`).
    pub fork_wiped: bool,
}

impl Default for WitnessArena {
    fn default() -> Self {
        Self::new()
    }
}

impl WitnessArena {
    /// An empty arena; no memory is reserved until the first allocation.
    pub const fn new() -> Self {
        Self {
            inner: SpinLock::new(Inner {
                free: [ptr::null_mut(); NUM_CLASSES],
                small: ptr::null_mut(),
                bump: ptr::null_mut(),
                end: ptr::null_mut(),
                large: ptr::null_mut(),
                used: 0,
                peak: 0,
            }),
            committed: AtomicUsize::new(0),
            lock_failed: AtomicBool::new(false),
            locked_any: AtomicBool::new(false),
            dump_excluded: AtomicBool::new(false),
            fork_wiped: AtomicBool::new(false),
        }
    }

    /// Allocates `size` zeroed bytes aligned to `align` (the brief's API).
    /// Returns null when `align` is not a power of two, the request is too
    /// large, or memory cannot be had.
    pub fn alloc(&self, size: usize, align: usize) -> *mut u8 {
        if !align.is_power_of_two() {
            return ptr::null_mut();
        }
        self.alloc_raw(size, align)
    }

    /// Wipes and frees a block from [`alloc`](Self::alloc).
    ///
    /// # Safety
    /// `ptr` must come from this arena's `alloc(size, align)` with the same
    /// `size` and `align`, and not be used afterwards.
    pub unsafe fn dealloc(&self, ptr: *mut u8, size: usize, align: usize) {
        // SAFETY: forwarded caller contract.
        unsafe { self.dealloc_raw(ptr, size, align) }
    }

    pub(crate) fn alloc_raw(&self, size: usize, align: usize) -> *mut u8 {
        if size_class::is_small(size, align) {
            self.alloc_class(size_class::class_for(size, align))
        } else {
            self.alloc_large(size, align)
        }
    }

    /// Allocates one zeroed block of a size class.
    pub(crate) fn alloc_class(&self, class: usize) -> *mut u8 {
        let bs = CLASS_SIZE[class] as usize;
        let mut g = self.inner.lock();
        let b = g.free[class];
        let p = if !b.is_null() {
            // SAFETY: `b` is a wiped free block of ours; clearing its link
            // makes it entirely zero again.
            unsafe {
                g.free[class] = (*b).next;
                (*b).next = ptr::null_mut();
            }
            b.cast::<u8>()
        } else {
            // Power-of-two classes need their own alignment (as in pages);
            // the rest need 16.
            let align = if bs.is_power_of_two() { bs } else { 16 };
            let mut start = (g.bump.addr() + align - 1) & !(align - 1);
            if g.bump.is_null() || start + bs > g.end.addr() {
                if !self.grow_small(&mut g) {
                    return ptr::null_mut();
                }
                start = (g.bump.addr() + align - 1) & !(align - 1);
                if start + bs > g.end.addr() {
                    return ptr::null_mut();
                }
            }
            let p = g.bump.with_addr(start);
            // SAFETY: `start + bs <= end`, inside the current chunk.
            g.bump = unsafe { p.add(bs) };
            // SAFETY: the current chunk's header records how far it was used,
            // so secure_wipe knows what to wipe.
            unsafe { (*g.small).block_len = g.bump.addr() - g.small.addr() };
            p
        };
        g.account(bs as isize);
        drop(g);
        p
    }

    fn grow_small(&self, g: &mut Inner) -> bool {
        let mut prot = Protection::default();
        let h = new_chunk(1, &mut prot);
        if h.is_null() {
            return false;
        }
        self.note_chunk(&prot, SLOT - 2 * GUARD);
        // SAFETY: `h` is a fresh chunk of ours.
        unsafe {
            (*h).next = g.small;
            (*h).block_len = HEADER;
            g.small = h;
            g.bump = h.cast::<u8>().add(HEADER);
            g.end = h.cast::<u8>().add((*h).len);
        }
        true
    }

    fn note_chunk(&self, prot: &Protection, len: usize) {
        self.committed.fetch_add(len, Relaxed);
        if prot.locked {
            self.locked_any.store(true, Relaxed);
        } else {
            self.lock_failed.store(true, Relaxed);
        }
        self.dump_excluded.store(prot.dont_dump, Relaxed);
        self.fork_wiped.store(prot.wipe_on_fork, Relaxed);
    }

    /// Lowers the committed figure; saturating, because a forked child may
    /// release chunks that its own counters never saw.
    fn committed_sub(&self, n: usize) {
        let _ = self
            .committed
            .fetch_update(Relaxed, Relaxed, |c| Some(c.saturating_sub(n)));
    }

    fn alloc_large(&self, size: usize, align: usize) -> *mut u8 {
        if align > SLOT {
            return ptr::null_mut();
        }
        let Some(block_len) = size.max(1).checked_add(OS_PAGE - 1).map(|v| v & !(OS_PAGE - 1)) else {
            return ptr::null_mut();
        };
        // header page + block + alignment slack + two guards, in slots.
        let Some(need) = block_len.checked_add(OS_PAGE + align + 2 * GUARD) else {
            return ptr::null_mut();
        };
        let slots = need.div_ceil(SLOT);
        if slots > SLOTS {
            return ptr::null_mut();
        }
        let mut prot = Protection::default();
        let h = new_chunk(slots, &mut prot);
        if h.is_null() {
            return h.cast();
        }
        self.note_chunk(&prot, slots * SLOT - 2 * GUARD);
        // SAFETY: `h` is a fresh chunk; the block is placed so that it ends at
        // most `align - 1` (or a page's rounding) before the trailing guard.
        let p = unsafe {
            let end = h.addr() + (*h).len;
            let start = (end - size.max(1)) & !(align.max(16) - 1);
            let p = h.cast::<u8>().with_addr(start);
            (*h).block = p;
            (*h).block_len = end - start;
            let mut g = self.inner.lock();
            (*h).next = g.large;
            g.large = h;
            g.account((slots * SLOT) as isize);
            p
        };
        p
    }

    pub(crate) unsafe fn dealloc_raw(&self, p: *mut u8, size: usize, align: usize) {
        if size_class::is_small(size, align) {
            let class = size_class::class_for(size, align);
            let bs = CLASS_SIZE[class] as usize;
            // Only the requested bytes can hold data: the block was zero when
            // handed out and the rest of it belongs to no one. (A same-class
            // shrinking `realloc` wipes what it cuts off.)
            // SAFETY: caller contract: a live block of `bs >= size` bytes.
            unsafe { os::secure_zero(p, size.max(1).min(bs)) };
            let mut g = self.inner.lock();
            let b = p.cast::<Block>();
            // SAFETY: as above; the link is the only non-zero word left.
            unsafe { (*b).next = g.free[class] };
            g.free[class] = b;
            g.account(-(bs as isize));
            drop(g);
        } else {
            let mut g = self.inner.lock();
            let mut link: *mut *mut ChunkHeader = &mut g.large;
            // SAFETY: we walk our own list of large chunks under the lock.
            unsafe {
                while !(*link).is_null() {
                    let h = *link;
                    if (*h).block == p {
                        *link = (*h).next;
                        let slots = (*h).slots;
                        g.account(-((slots * SLOT) as isize));
                        drop(g);
                        let len = (*h).len;
                        drop_chunk(h, len);
                        self.committed_sub(slots * SLOT - 2 * GUARD);
                        return;
                    }
                    link = &mut (*h).next;
                }
            }
        }
    }

    /// Zeroes every byte this arena ever handed out — live or freed — and
    /// forgets all its blocks, in time proportional to what was used. Large
    /// blocks' chunks are wiped and returned to the OS; small-block chunks
    /// stay committed (and locked) for reuse.
    ///
    /// # Safety
    /// Every block of the arena becomes invalid: none may be used afterwards
    /// (for the `Allocator` API this means no collection allocated in the
    /// arena may still be alive).
    pub unsafe fn secure_wipe(&self) {
        let mut g = self.inner.lock();
        // SAFETY: caller contract: no block is in use; the chunks are ours.
        unsafe {
            let mut h = g.small;
            while !h.is_null() {
                let used = (*h).block_len;
                let base = h.cast::<u8>();
                os::secure_zero(base.add(HEADER), used.saturating_sub(HEADER));
                (*h).block_len = HEADER;
                h = (*h).next;
            }
            g.free = [ptr::null_mut(); NUM_CLASSES];
            if !g.small.is_null() {
                let h = g.small;
                g.bump = h.cast::<u8>().add(HEADER);
            }
            let mut h = g.large;
            g.large = ptr::null_mut();
            drop(g);
            while !h.is_null() {
                let next = (*h).next;
                let slots = (*h).slots;
                drop_chunk(h, (*h).len);
                self.committed_sub(slots * SLOT - 2 * GUARD);
                h = next;
            }
        }
        // Older small chunks are no longer bump targets; their memory is
        // zero and simply unused until the arena is dropped. Keep only the
        // newest one by releasing the rest.
        let mut g = self.inner.lock();
        // SAFETY: the chunks are ours and hold no live block.
        unsafe {
            if !g.small.is_null() {
                let mut h = (*g.small).next;
                (*g.small).next = ptr::null_mut();
                while !h.is_null() {
                    let next = (*h).next;
                    drop_chunk(h, 0);
                    self.committed_sub(SLOT - 2 * GUARD);
                    h = next;
                }
            }
        }
        g.used = 0;
        drop(g);
    }

    /// A snapshot of the arena's figures.
    pub fn stats(&self) -> WitnessStats {
        // One lock for both figures (a guard temporary lives to the end of
        // the statement: locking twice in one expression would self-deadlock).
        let (used, peak) = {
            let g = self.inner.lock();
            (g.used, g.peak)
        };
        WitnessStats {
            used,
            peak,
            capacity: self.committed.load(Relaxed),
            locked: self.locked_any.load(Relaxed) && !self.lock_failed.load(Relaxed),
            dump_excluded: self.dump_excluded.load(Relaxed),
            fork_wiped: self.fork_wiped.load(Relaxed),
        }
    }
}

impl Drop for WitnessArena {
    fn drop(&mut self) {
        // SAFETY: `&mut self` proves no borrow of the arena — hence no
        // collection allocated in it — is alive; raw `alloc` users were told
        // blocks die with the arena.
        unsafe { self.secure_wipe() };
        let g = self.inner.lock();
        let h = g.small;
        drop(g);
        if !h.is_null() {
            // SAFETY: wiped above and no longer referenced.
            unsafe { drop_chunk(h, 0) };
        }
    }
}

/// The arena behind `witness_scope`: process-wide, because blocks made in a
/// scope may be freed anywhere, at any time, through the global allocator.
pub(crate) static SCOPE_ARENA: WitnessArena = WitnessArena::new();

/// Takes the scope arena's and the region's locks before `fork` (the order
/// `alloc_class` nests them in).
pub(crate) fn fork_lock() {
    SCOPE_ARENA.inner.acquire_raw();
    REGION.fork_lock();
}

/// Releases the locks of [`fork_lock`].
///
/// # Safety
/// Only after `fork_lock`.
pub(crate) unsafe fn fork_unlock() {
    // SAFETY: caller contract: we hold both locks.
    unsafe {
        REGION.fork_unlock();
        SCOPE_ARENA.inner.release_raw();
    }
}

/// Small allocation made inside a witness scope.
pub(crate) fn scope_alloc_class(class: usize, _zeroed: bool) -> *mut u8 {
    // Witness blocks are always zero when handed out.
    SCOPE_ARENA.alloc_class(class)
}

// SAFETY: all mutable state is behind the spin lock or atomic.
unsafe impl Sync for WitnessArena {}
// SAFETY: as above; chunks are process-wide memory, not tied to a thread.
unsafe impl Send for WitnessArena {}

// SAFETY: blocks are valid until deallocated or the arena is wiped/dropped,
// which needs `&mut` or `unsafe`; every method is internally synchronised.
// `&WitnessArena` gets the trait through allocator-api2's blanket impl, so
// `Vec::new_in(&arena)` works.
unsafe impl allocator_api2::alloc::Allocator for WitnessArena {
    fn allocate(&self, layout: core::alloc::Layout) -> Result<NonNull<[u8]>, allocator_api2::alloc::AllocError> {
        let p = self.alloc_raw(layout.size(), layout.align());
        NonNull::new(p)
            .map(|p| NonNull::slice_from_raw_parts(p, layout.size()))
            .ok_or(allocator_api2::alloc::AllocError)
    }

    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: core::alloc::Layout) {
        // SAFETY: the Allocator contract: `ptr` came from `allocate(layout)`.
        unsafe { self.dealloc_raw(ptr.as_ptr(), layout.size(), layout.align()) }
    }
}
