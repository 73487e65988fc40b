//! Segments: 4 MiB, 4 MiB-aligned mappings cut into 16 pages of 256 KiB.
//!
//! ```text
//!  segment base (4 MiB aligned)
//!  ├─ 0 .. 64 KiB     segment header: Page[16], owner heap, page-slot
//!  │                  masks, remote-free marks (2 KiB per slot)
//!  ├─ 64K .. 256K     page 0's blocks (the header takes the rest of slot 0)
//!  ├─ 256K .. 512K    page 1's blocks
//!  │  ...
//!  └─ 3.75M .. 4M     page 15's blocks
//! ```
//!
//! Because segments are aligned to their size, the metadata of any small
//! block is found with arithmetic only: `segment = ptr & !(4 MiB - 1)`,
//! `page = segment.pages[(ptr - segment) >> 18]`. Block areas start on
//! 64 KiB boundaries, which gives power-of-two classes their alignment.
//!
//! Segments are slots of one reserved region (see `region.rs`), so
//! `segment::contains(p)` tells a small block from any other pointer.
//!
//! A page slot released by its heap (every block free) keeps its blocks
//! linked and is marked *intact*; the next claim for the same class takes it
//! as it was, any other class sets it up afresh. A slot that stays free for
//! the purge delay (and `PURGE_AFTER_PATHS` of the owner's slow paths;
//! checked at the owner's tidy) is purged: its memory goes back to the OS
//! and the slot counts as fresh again. (The owner skips the delay for a slot
//! that other threads' frees emptied: see `Heap::release_page`.) Why these
//! delays: docs/design/heap-tidy.md.
//!
//! A segment belongs to one heap, which keeps a few of its segments even
//! when all their slots are free. Beyond those, or when the heap's thread
//! exits, a segment whose last page is released goes to a small global
//! cache (so that a new thread or a new phase does not map again; its
//! memory is purged after the same delay) and beyond that back to the OS.

use core::ptr;
use core::sync::atomic::{AtomicBool, Ordering::Relaxed};

use crate::base::stats;
use crate::base::sync::SpinLock;
use crate::mem::region::Region;
use crate::os;
use crate::small::heap::Heap;
use crate::small::page::Page;

pub(crate) use crate::policy::{PAGE_SHIFT, SEGMENT_SIZE};
pub(crate) const PAGE_SIZE: usize = 1 << PAGE_SHIFT;
pub(crate) const PAGES_PER_SEGMENT: usize = SEGMENT_SIZE / PAGE_SIZE;
/// Offset of page 0's block area: the header lives below it.
pub(crate) const FIRST_AREA: usize = 64 << 10;
const ALL_PAGES: u32 = u32::MAX >> (32 - PAGES_PER_SEGMENT);
/// Empty segments kept committed for reuse (see docs/design/heap-tidy.md).
const CACHE_SLOTS: usize = crate::policy::SEGMENT_CACHE;
/// Segment slots (see the policy table).
const REGION_SLOTS: usize = crate::policy::SEGMENT_SLOTS;

/// Where every segment lives.
static REGION: Region<{ REGION_SLOTS.div_ceil(64) }> = Region::new(SEGMENT_SIZE, REGION_SLOTS);

/// True if `p` points into segment memory (a small block or its metadata).
#[inline(always)]
pub(crate) fn contains(p: *const u8) -> bool {
    REGION.contains(p)
}

/// What a segment's best free slot for a class is (`Segment::slot_for`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum SlotKind {
    /// One that last served the class and kept its blocks linked.
    Intact,
    /// One written before: resident memory, set up afresh.
    Written,
    /// Neither: only never written (or purged) slots, or none.
    Other,
}

/// Segment header, at the segment base.
#[repr(C)]
pub(crate) struct Segment {
    pub(crate) pages: [Page; PAGES_PER_SEGMENT],
    /// Owning heap.
    pub(crate) heap: *mut Heap,
    /// Links in the owning heap's segment list.
    pub(crate) next: *mut Segment,
    pub(crate) prev: *mut Segment,
    /// Bit i set: page slot i is unused.
    pub(crate) free_mask: u32,
    /// Bit i set: page slot i's area has been written since it was mapped
    /// (or last purged).
    pub(crate) dirty_mask: u32,
    /// Per page slot, its remote-free marks (see `remote.rs`). Never written
    /// when the header is set up: they are zero in a new mapping, and a
    /// segment's slots are released only when every mark was taken.
    pub(crate) remote: [crate::small::page::Marks; PAGES_PER_SEGMENT],
}

const _: () = assert!(core::mem::size_of::<Segment>() <= FIRST_AREA);
// Read from outside the process by `bench/python/segment_census.py`.
const _: () = {
    assert!(core::mem::offset_of!(Segment, heap) == PAGES_PER_SEGMENT * 192);
    assert!(core::mem::offset_of!(Segment, free_mask) == PAGES_PER_SEGMENT * 192 + 24);
};

/// Offset and length of page slot `i`'s block area (slot 0's is shorter:
/// the header takes its start).
#[inline]
fn slot_area(i: usize) -> (usize, usize) {
    let start = if i == 0 { FIRST_AREA } else { i * PAGE_SIZE };
    (start, (i + 1) * PAGE_SIZE - start)
}

/// Bytes written (by the marks of `Page::note_written`) in the slots of
/// `seg` in `mask`, all of them written slots; with `clear`, their marks
/// are reset as for memory given back.
///
/// # Safety
/// Owner only (or a segment nobody owns, under the cache's lock).
unsafe fn written_bytes(seg: *mut Segment, mask: u32, clear: bool) -> usize {
    let mut bytes = 0;
    let mut bits = mask;
    while bits != 0 {
        let i = bits.trailing_zeros() as usize;
        bits &= bits - 1;
        let start = slot_area(i).0 as u32;
        // SAFETY: caller contract; raw accesses as in `claim_page`.
        unsafe {
            let page = ptr::addr_of_mut!((*seg).pages).cast::<Page>().add(i);
            bytes += (*page).written.saturating_sub(start) as usize;
            if clear {
                (*page).written = start;
            }
        }
    }
    bytes
}

/// The page that a small block belongs to.
///
/// # Safety
/// `p` must point into a live segment.
#[inline(always)]
pub(crate) unsafe fn page_of(p: *mut u8) -> *mut Page {
    let seg = p.map_addr(|a| a & !(SEGMENT_SIZE - 1)).cast::<Segment>();
    let idx = (p.addr() - seg.addr()) >> PAGE_SHIFT;
    // SAFETY: `seg` is the segment's base (provenance from `p`, which points
    // into the same mapping); `idx < PAGES_PER_SEGMENT` by construction.
    unsafe { ptr::addr_of_mut!((*seg).pages).cast::<Page>().add(idx) }
}

/// The block area of `page`, one of a segment's page slots: its start
/// (with the segment's provenance) and length.
#[inline]
pub(crate) fn area_of(page: *mut Page) -> (*mut u8, usize) {
    let seg = segment_of(page);
    let i = (page.addr() - seg.addr() - core::mem::offset_of!(Segment, pages)) / core::mem::size_of::<Page>();
    let (start, len) = slot_area(i);
    (page.with_addr(seg.addr() + start).cast(), len)
}

/// The segment holding `page`.
#[inline]
pub(crate) fn segment_of(page: *mut Page) -> *mut Segment {
    page.map_addr(|a| a & !(SEGMENT_SIZE - 1)).cast()
}

struct Cache {
    slots: [*mut Segment; CACHE_SLOTS],
    /// When each was cached (`os::now_us`).
    since: [u64; CACHE_SLOTS],
    /// The releasing heap's slow-path count then (see `purge_cached`).
    path: [u32; CACHE_SLOTS],
    len: usize,
}
// SAFETY: the cached segments are unowned memory; the lock serialises access.
unsafe impl Send for Cache {}

/// True while a cached segment may hold written memory that
/// [`Segment::purge_cached`] could give back: set when one is cached,
/// recomputed by each purge. Read without the lock (a hint: a stale value
/// delays a purge to the next tidy, or costs one needless lock), so that
/// every heap's tidy does not take the cache's lock for nothing: it was
/// most of the lock acquisitions of the threaded workloads (see
/// docs/design/scaling.md).
static CACHE_DIRTY: AtomicBool = AtomicBool::new(false);

static CACHE: SpinLock<Cache> = SpinLock::new(Cache {
    slots: [ptr::null_mut(); CACHE_SLOTS],
    since: [0; CACHE_SLOTS],
    path: [0; CACHE_SLOTS],
    len: 0,
});

/// Takes this module's locks before `fork` (order: cache, region).
pub(crate) fn fork_lock() {
    CACHE.acquire_raw();
    REGION.fork_lock();
}

/// Releases the locks of [`fork_lock`] (reverse order).
///
/// # Safety
/// Only after `fork_lock`.
pub(crate) unsafe fn fork_unlock() {
    // SAFETY: caller contract: we hold both locks.
    unsafe {
        REGION.fork_unlock();
        CACHE.release_raw();
    }
}

/// Decommits a segment and frees its slot.
///
/// # Safety
/// The segment must be unused and unreferenced.
unsafe fn give_back(seg: *mut Segment) {
    // SAFETY: caller contract; the slot is committed memory of ours, its
    // header still readable.
    unsafe {
        stats::NEED.sub(written_bytes(seg, (*seg).dirty_mask, false));
        os::decommit(seg.cast(), SEGMENT_SIZE);
    }
    REGION.release(seg.cast(), 1);
    stats::unmapped(SEGMENT_SIZE);
}

impl Segment {
    /// A segment for `heap`, from the cache or fresh from the OS. Null when
    /// the OS refuses. `path`: the heap's slow-path count; the written slots
    /// of a cached segment count as released now (see `purge_idle`).
    pub(crate) fn acquire(heap: *mut Heap, path: u32) -> *mut Segment {
        let cached = {
            let mut c = CACHE.lock();
            if c.len > 0 {
                c.len -= 1;
                let i = c.len;
                c.slots[i]
            } else {
                ptr::null_mut()
            }
        };
        // A cached segment's written slots keep their marks (their memory
        // is still resident and counted in `stats::NEED`).
        let mut marks = [0u32; PAGES_PER_SEGMENT];
        let (seg, dirty) = if cached.is_null() {
            // A new segment commits memory: the budget's check (see
            // docs/design/phases-and-budget.md).
            if !crate::mem::budget::admit(SEGMENT_SIZE, SEGMENT_SIZE) {
                return ptr::null_mut();
            }
            let p = REGION.claim(1);
            if p.is_null() {
                return p.cast();
            }
            // SAFETY: a freshly claimed slot of our reservation, aligned.
            if unsafe { os::commit(p, SEGMENT_SIZE) }.is_err() {
                REGION.release(p, 1);
                return ptr::null_mut();
            }
            stats::mapped(SEGMENT_SIZE);
            (p.cast::<Segment>(), 0)
        } else {
            // SAFETY: a cached segment is a whole, unowned segment, its
            // header intact.
            unsafe {
                for (i, m) in marks.iter_mut().enumerate() {
                    *m = (*ptr::addr_of_mut!((*cached).pages).cast::<Page>().add(i)).written;
                }
                (cached, (*cached).dirty_mask)
            }
        };
        // The remote-free marks are left as they are (see `Segment::remote`):
        // writing them would make 32 KiB of every segment resident.
        // SAFETY: `seg` is a mapping of SEGMENT_SIZE bytes that nobody else
        // references; the header fits below FIRST_AREA (checked above).
        unsafe {
            ptr::addr_of_mut!((*seg).pages).write([const { Page::empty() }; PAGES_PER_SEGMENT]);
            ptr::addr_of_mut!((*seg).heap).write(heap);
            ptr::addr_of_mut!((*seg).next).write(ptr::null_mut());
            ptr::addr_of_mut!((*seg).prev).write(ptr::null_mut());
            ptr::addr_of_mut!((*seg).free_mask).write(ALL_PAGES);
            ptr::addr_of_mut!((*seg).dirty_mask).write(dirty);
        }
        if dirty != 0 {
            // Without this, the written slots of a segment that went through
            // the cache looked free since time 0 and were purged at the next
            // tidy, then faulted in again (see docs/design/heap-tidy.md).
            let now = os::now_us();
            for (i, mark) in marks.into_iter().enumerate() {
                // SAFETY: the header just written; raw accesses as in
                // `claim_page`.
                unsafe {
                    let page = ptr::addr_of_mut!((*seg).pages).cast::<Page>().add(i);
                    (*page).freed_at = now;
                    (*page).freed_at_path = path;
                    (*page).written = mark;
                }
            }
        }
        seg
    }

    /// Gives an empty segment back (to the cache or the OS). `path`: the
    /// owner's slow-path count (see `purge_cached`).
    ///
    /// # Safety
    /// No page of `seg` may be in use, and nobody may reference it after.
    pub(crate) unsafe fn release(seg: *mut Segment, path: u32) {
        let now = os::now_us();
        {
            let mut c = CACHE.lock();
            if c.len < CACHE_SLOTS {
                let i = c.len;
                c.slots[i] = seg;
                c.since[i] = now;
                c.path[i] = path;
                c.len += 1;
                // SAFETY: (of the read) the segment is ours until cached,
                // and the lock is held.
                if unsafe { (*seg).dirty_mask } != 0 {
                    CACHE_DIRTY.store(true, Relaxed);
                }
                return;
            }
        }
        // SAFETY: caller contract: the whole segment is unused.
        unsafe { give_back(seg) };
    }

    /// Gives back to the OS the written memory of cached segments that
    /// have waited at least `delay` microseconds — and, those that `heap`
    /// released, while it took `paths` slow paths (its count is `path_now`)
    /// — as [`Segment::purge_idle`] does for page slots. They stay mapped
    /// and cached.
    ///
    /// Without the second condition a program that frees every small block
    /// and starts again after a pause (the `witness` benchmark's slices)
    /// found the segments it had just released purged, and faulted them in
    /// again (see docs/design/heap-tidy.md).
    pub(crate) fn purge_cached(now: u64, delay: u64, heap: *mut Heap, path_now: u32, paths: u32) {
        if !CACHE_DIRTY.load(Relaxed) {
            return;
        }
        let c = CACHE.lock();
        let mut dirty_left = false;
        for i in 0..c.len {
            let seg = c.slots[i];
            // SAFETY: (of the read) a cached segment's header stays valid.
            let own = unsafe { (*seg).heap } == heap;
            if now.wrapping_sub(c.since[i]) < delay || (own && path_now.wrapping_sub(c.path[i]) < paths) {
                // SAFETY: as above.
                dirty_left |= unsafe { (*seg).dirty_mask } != 0;
                continue;
            }
            // SAFETY: a cached segment is unowned and unused; the lock keeps
            // it ours. Block areas hold nothing live (the header, below
            // FIRST_AREA, is kept).
            unsafe {
                let dirty = (*seg).dirty_mask;
                if dirty != 0 && os::purge(seg.cast::<u8>().add(FIRST_AREA), SEGMENT_SIZE - FIRST_AREA) {
                    (*seg).dirty_mask = 0;
                    stats::NEED.sub(written_bytes(seg, dirty, true));
                    stats::purged(SEGMENT_SIZE - FIRST_AREA);
                }
                dirty_left |= (*seg).dirty_mask != 0;
            }
        }
        CACHE_DIRTY.store(dirty_left, Relaxed);
    }

    /// Unmaps every cached segment (part of `NAlloc::trim`).
    pub(crate) fn trim_cache() {
        loop {
            let seg = {
                let mut c = CACHE.lock();
                if c.len == 0 {
                    return;
                }
                c.len -= 1;
                let i = c.len;
                c.slots[i]
            };
            // SAFETY: cached segments are unowned and unused.
            unsafe { give_back(seg) };
        }
    }

    /// True if every page slot of `seg` is free.
    ///
    /// # Safety
    /// Owner only.
    pub(crate) unsafe fn is_empty(seg: *mut Segment) -> bool {
        // SAFETY: caller contract.
        unsafe { (*seg).free_mask == ALL_PAGES }
    }

    /// The best free slot this segment has for `class` (see `claim_page`).
    ///
    /// # Safety
    /// Owner only.
    pub(crate) unsafe fn slot_for(seg: *mut Segment, class: usize) -> SlotKind {
        // SAFETY: owner only; raw accesses as in `claim_page`.
        unsafe {
            let dirty_free = (*seg).free_mask & (*seg).dirty_mask;
            let pages = ptr::addr_of_mut!((*seg).pages).cast::<Page>();
            let mut bits = dirty_free;
            while bits != 0 {
                let page = pages.add(bits.trailing_zeros() as usize);
                bits &= bits - 1;
                if (*page).intact && (*page).class as usize == class {
                    return SlotKind::Intact;
                }
            }
            if dirty_free != 0 {
                SlotKind::Written
            } else {
                SlotKind::Other
            }
        }
    }

    /// Claims a free page slot and sets it up for blocks of `block_size`.
    /// Returns null if the segment is full.
    ///
    /// # Safety
    /// Owner only.
    pub(crate) unsafe fn claim_page(seg: *mut Segment, class: usize, block_size: usize) -> *mut Page {
        // SAFETY: (whole body) owner only. Every pointer is derived from
        // `seg`, which carries the provenance of the whole segment mapping;
        // no reference to the segment or a page is made, because other
        // threads may mark the remote frees of any page meanwhile.
        unsafe {
            let free_mask = (*seg).free_mask;
            if free_mask == 0 {
                return ptr::null_mut();
            }
            let pages = ptr::addr_of_mut!((*seg).pages).cast::<Page>();
            // A slot written before is preferred: its memory is resident
            // already, a fresh one would add to the RSS.
            let dirty_free = free_mask & (*seg).dirty_mask;
            // Best of all, a slot that last served this class and still holds
            // its blocks, linked: a program that frees a batch and allocates
            // the same batch again gets its pages back as they were, instead
            // of threading 256 KiB of blocks again, 4 KiB per refill (see
            // docs/design/small-object-layout.md).
            let mut bits = dirty_free;
            while bits != 0 {
                let i = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let page = pages.add(i);
                if (*page).intact && (*page).class as usize == class {
                    (*seg).free_mask = free_mask & !(1 << i);
                    (*page).intact = false;
                    (*page).block_size = block_size as u32;
                    (*page).next = ptr::null_mut();
                    (*page).prev = ptr::null_mut();
                    return page;
                }
            }
            let i = if dirty_free != 0 { dirty_free } else { free_mask }.trailing_zeros() as usize;
            (*seg).free_mask = free_mask & !(1 << i);
            let fresh = (*seg).dirty_mask & (1 << i) == 0;
            (*seg).dirty_mask |= 1 << i;
            let base = seg.cast::<u8>();
            let (start, len) = slot_area(i);
            let blocks = len / block_size;
            let page = pages.add(i);
            if fresh {
                (*page).written = start as u32;
            }
            (*page).intact = false;
            (*page).bump_seen = 0;
            (*page).free = ptr::null_mut();
            (*page).used = 0;
            (*page).block_size = block_size as u32;
            (*page).heap = (*seg).heap;
            (*page).remote = ptr::addr_of!((*seg).remote).cast::<crate::small::page::Marks>().add(i);
            (*page).recip = (1u64 << 40).div_ceil(block_size as u64);
            (*page).area_off = start as u32;
            // `start + blocks * block_size <= SEGMENT_SIZE`.
            (*page).bump = base.add(start);
            (*page).bump_left = (blocks * block_size) as u32;
            (*page).next = ptr::null_mut();
            (*page).prev = ptr::null_mut();
            (*page).class = class as u8;
            (*page).in_full = false;
            (*page).area_fresh = fresh;
            #[cfg(feature = "hardened")]
            if !fresh {
                // Hardened mode expects every never-handed-out byte to be
                // zero (write-after-free check); a recycled slot holds old
                // links and markers at the previous class's block offsets.
                ptr::write_bytes((*page).bump, 0, blocks * block_size);
                Page::note_written_to(page, (start + blocks * block_size) as u32);
            }
            page
        }
    }

    /// Gives back to the OS the memory of the written page slots that have
    /// been free for `delay` microseconds or more at `now` and while the
    /// owner took `paths` slow paths or more (its count is `path_now`; 0 and
    /// 0: every free slot). The owner calls it from its tidy; the bytes
    /// purged go to the statistics (`returned_to_os`) and are returned (the
    /// heap notes when it last purged: see `Heap::note_fresh_claim`).
    ///
    /// Why: a heap's pages swell when other threads hold many of its blocks
    /// at once (a consumer that is descheduled while its producer runs on)
    /// or in a phase of many small objects, and empty out when those come
    /// back. Kept resident, every heap's swell adds to the process's peak,
    /// although they rarely coincide; given back, they share the same
    /// physical pages. The delay keeps a program that frees and re-allocates
    /// a batch (the `small` benchmark) on warm pages (see
    /// docs/design/heap-tidy.md).
    ///
    /// # Safety
    /// Owner only.
    pub(crate) unsafe fn purge_idle(seg: *mut Segment, now: u64, delay: u64, path_now: u32, paths: u32) -> usize {
        // SAFETY: (whole body) owner only; raw accesses as in `claim_page`.
        unsafe {
            let pages = ptr::addr_of_mut!((*seg).pages).cast::<Page>();
            let mut bits = (*seg).free_mask & (*seg).dirty_mask;
            let mut purged = 0;
            while bits != 0 {
                let i = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let page = pages.add(i);
                if now.wrapping_sub((*page).freed_at) < delay || path_now.wrapping_sub((*page).freed_at_path) < paths {
                    continue;
                }
                let (start, len) = slot_area(i);
                // SAFETY: (purge) a free slot's area holds no live block;
                // start and length are multiples of 64 KiB.
                if os::purge(seg.cast::<u8>().add(start), len) {
                    stats::NEED.sub(written_bytes(seg, 1 << i, true));
                    (*seg).dirty_mask &= !(1 << i);
                    // Its links are gone: a claim must set it up afresh.
                    (*pages.add(i)).intact = false;
                    purged += len;
                }
            }
            stats::purged(purged);
            purged
        }
    }

    /// Counts every free slot of `seg` as released at `now` and slow path
    /// `path`. For a heap adopted by a new thread: like a segment taken
    /// from the cache, what it inherits gets the whole purge delay of its
    /// new owner's work (see docs/design/heap-tidy.md).
    ///
    /// # Safety
    /// Owner only (the adopting thread, under the registry's lock).
    pub(crate) unsafe fn restart_aging(seg: *mut Segment, now: u64, path: u32) {
        // SAFETY: (whole body) caller contract; raw accesses as in
        // `claim_page`.
        unsafe {
            let pages = ptr::addr_of_mut!((*seg).pages).cast::<Page>();
            let mut bits = (*seg).free_mask;
            while bits != 0 {
                let i = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                (*pages.add(i)).freed_at = now;
                (*pages.add(i)).freed_at_path = path;
            }
        }
    }

    /// Returns a page slot; true if the segment is now entirely unused.
    /// `linked`: every block of the page is on its free list or in its fresh
    /// tail, so the next claim for the same class may take it as it is.
    /// `now` and `path`: the time (`os::now_us`) and the owner's slow-path
    /// count, from which the purge delay runs.
    ///
    /// # Safety
    /// Owner only; the page must have no live block.
    pub(crate) unsafe fn release_page(seg: *mut Segment, page: *mut Page, linked: bool, now: u64, path: u32) -> bool {
        // SAFETY: owner only; raw accesses as in `claim_page`; `page` is one
        // of this segment's pages.
        unsafe {
            let i = page.offset_from(ptr::addr_of_mut!((*seg).pages).cast::<Page>()) as usize;
            (*page).block_size = 0;
            // Growth in this life is no burst for an intact reclaim (see
            // `Page::trim_burst`).
            (*page).bump_seen = ((*page).bump.addr() - area_of(page).0.addr()) as u32;
            // Every block handed out is back on `free` (`used == 0`, so no
            // remote free is pending either); nothing writes into a free
            // slot, so the list stays valid until the slot is claimed again
            // (hardened mode re-zeroes recycled slots instead).
            (*page).intact = linked && !cfg!(feature = "hardened");
            (*page).freed_at = now;
            (*page).freed_at_path = path;
            (*seg).free_mask |= 1 << i;
            (*seg).free_mask == ALL_PAGES
        }
    }
}
