//! A page: one run of memory inside a segment that serves blocks of a single
//! size class.
//!
//! Blocks are handed out from `free` (an intrusive singly linked list whose
//! link lives in the first word of each free block). When it runs dry the
//! page is *extended* — a few KiB of never-touched memory between `bump` and
//! the end of the bump area is threaded onto the list (carving lazily keeps
//! untouched memory out of RSS) — or it *collects* the blocks other threads
//! freed into it: they set one bit per block in the page's remote-free marks
//! (in the segment header, see `remote.rs`), and the owner links the marked
//! blocks lowest address first. A page's free top left by a burst — blocks
//! above the last one in use, all free — can go back to the tail and its
//! memory to the OS (`trim_burst`, from the heap's tidy).
//!
//! Invariants (owner = the thread whose heap is `heap`):
//! * `used` = blocks handed out − blocks freed by the owner − remote frees
//!   collected; so `used == 0` means no block of the page is live, and once
//!   `remote_quiescent` holds too, no other thread touches the page any more.
//! * `bump_left % block_size == 0`; `[bump, bump + bump_left)` lies in the page.
//! * Only the owner touches the plain fields; other threads read line 2
//!   (`heap`, `block_size`, `remote`, `recip`, `area_off`: constant while
//!   blocks are live) and set marks and `remote_published`.

use core::ptr;

use core::sync::atomic::AtomicU32;

use crate::base::check::invariant;
use crate::base::stats;
use crate::small::heap::Heap;
use crate::small::remote::RemoteMarks;
use crate::small::segment::SEGMENT_SIZE;
use crate::small::size_class::{CLASS_SIZE, NUM_CLASSES};

/// A free block: its first word links to the next free block.
#[repr(C)]
pub(crate) struct Block {
    pub(crate) next: *mut Block,
}

impl Block {
    /// The next block of a list (decoded in hardened mode).
    ///
    /// # Safety
    /// `b` must be a free block whose link was written by `set_next`.
    #[inline(always)]
    pub(crate) unsafe fn next(b: *mut Block) -> *mut Block {
        // SAFETY: caller contract.
        let stored = unsafe { (*b).next };
        #[cfg(feature = "hardened")]
        let stored = crate::small::hardened::decode(b, stored);
        stored
    }

    /// Writes the link of a free block (encoded in hardened mode).
    ///
    /// # Safety
    /// `b` must be a block we may write.
    #[inline(always)]
    pub(crate) unsafe fn set_next(b: *mut Block, next: *mut Block) {
        #[cfg(feature = "hardened")]
        let next = crate::small::hardened::encode(b, next);
        // SAFETY: caller contract.
        unsafe { (*b).next = next };
    }
}

use crate::policy::EXTEND_BYTES;
pub(crate) use crate::policy::TRIM_MIN;

/// Page metadata. Lives in the segment header, never inside user memory.
///
/// Three cache lines, by who touches them: the owner's allocation and free
/// state (written on every call), the fields every free reads (`heap`,
/// `block_size`, and what a remote free needs to find its block's mark:
/// written only when the slot is claimed), and the count of remote frees
/// published (written by other threads). A remote free then reads a line
/// that stays shared and writes one that the owner only reads when it
/// collects, and never pulls the owner's hot line away from it (see
/// docs/design/small-object-layout.md).
#[repr(C, align(64))]
pub(crate) struct Page {
    // Line 1: written by the owner on every allocation and free.
    /// Blocks ready to hand out (owner only).
    pub(crate) free: *mut Block,
    /// Live blocks as the owner knows them (see the invariant above).
    pub(crate) used: u32,
    /// Bytes of the never-handed-out tail at `bump` (a whole number of
    /// blocks; a page is at most 256 KiB).
    pub(crate) bump_left: u32,
    /// Start of the never-handed-out tail of the page.
    pub(crate) bump: *mut u8,
    /// Links in the heap's per-class page lists.
    pub(crate) next: *mut Page,
    pub(crate) prev: *mut Page,
    /// Size class index.
    pub(crate) class: u8,
    /// The page sits in its heap's "full" list.
    pub(crate) in_full: bool,
    /// `[bump, bump + bump_left)` has never been written since it came
    /// from the OS, so it reads as zero.
    pub(crate) area_fresh: bool,
    /// The slot is unused but still holds its last class's blocks, all free
    /// and linked on `free` (with `bump`/`bump_left` as they were), so it
    /// can serve that class again without threading its memory anew.
    pub(crate) intact: bool,
    /// The owner's slow-path count when the page slot was last released
    /// (see `freed_at`).
    pub(crate) freed_at_path: u32,
    /// When the page slot was last released (`os::now_us`): a slot free for
    /// the purge delay, while its heap kept working, gives its memory back
    /// (`Segment::purge_idle`).
    pub(crate) freed_at: u64,
    /// Offset in the segment of the end of what this slot's area has had
    /// written since it was last fresh (mapped or purged): the slot's share
    /// of the program's resident need (`stats::NEED`, see `Page::note_written`).
    pub(crate) written: u32,
    /// The owner's slow-path count when [`Page::trim_burst`] last looked at
    /// the page.
    pub(crate) trimmed_at_path: u32,
    // Line 2: read by every free, local or remote; written only when the
    // page slot is claimed.
    /// The owning heap (constant while any block is live).
    pub(crate) heap: *mut Heap,
    /// Bytes per block; 0 while the page slot is unused.
    pub(crate) block_size: u32,
    /// `bump` (an offset in the block area) when [`Page::trim_burst`] last
    /// looked at the page, or when the page was claimed or released.
    /// Written by the owner's tidy only, rarely.
    pub(crate) bump_seen: u32,
    /// The slot's remote-free marks (in the segment header; null for the
    /// sentinel and stand-in pages, which no thread frees into).
    pub(crate) remote: *const Marks,
    /// `2^40 / block_size`, rounded up: a block's index by a multiply (see
    /// [`Page::block_index`]).
    pub(crate) recip: u64,
    /// Offset of the block area in the segment.
    pub(crate) area_off: u32,
    _pad2: [u8; 28],
    // Line 3: written by other threads' frees.
    /// Blocks other threads marked in `remote`, ever (wrapping): each adds
    /// its number after its marks (see `remote.rs`).
    pub(crate) remote_published: AtomicU32,
    /// Marks the owner took from `remote`, ever (wrapping; owner only).
    pub(crate) remote_taken: u32,
    _pad3: [u8; 56],
}

/// A page slot's remote-free marks: one bit per block of the slot (at most
/// 16 K blocks of 16 bytes), 2 KiB, in the segment header.
pub(crate) type Marks = RemoteMarks<MARK_WORDS, { MARK_WORDS / 64 }>;
/// Words of [`Marks`].
pub(crate) const MARK_WORDS: usize = crate::small::segment::PAGE_SIZE / 16 / 64;

const _: () = {
    assert!(core::mem::size_of::<Page>() == 192);
    assert!(core::mem::offset_of!(Page, heap) == 64);
    assert!(core::mem::offset_of!(Page, remote_published) == 128);
    assert!(core::mem::offset_of!(Page, remote_taken) == 132);
    // Read from outside the process by `bench/python/segment_census.py`.
    assert!(core::mem::offset_of!(Page, used) == 8);
    assert!(core::mem::offset_of!(Page, in_full) == 41);
    assert!(core::mem::offset_of!(Page, block_size) == 72);
};

impl Page {
    /// An unused page slot (also the shared "empty page" that the fast path of
    /// an uninitialised heap finds, whose `free` is always null).
    pub(crate) const fn empty() -> Page {
        Page {
            free: ptr::null_mut(),
            used: 0,
            block_size: 0,
            heap: ptr::null_mut(),
            bump: ptr::null_mut(),
            bump_left: 0,
            next: ptr::null_mut(),
            prev: ptr::null_mut(),
            class: 0,
            in_full: false,
            area_fresh: false,
            intact: false,
            freed_at_path: 0,
            freed_at: 0,
            written: 0,
            trimmed_at_path: 0,
            bump_seen: 0,
            remote: ptr::null(),
            recip: 0,
            area_off: 0,
            _pad2: [0; 28],
            remote_published: AtomicU32::new(0),
            remote_taken: 0,
            _pad3: [0; 56],
        }
    }

    /// Pops a block from the free list (the fast path's core).
    ///
    /// # Safety
    /// Owner only; `free` must be non-null.
    #[inline(always)]
    pub(crate) unsafe fn pop(this: *mut Page) -> *mut u8 {
        // SAFETY: (whole body) caller contract; raw accesses only, no `&mut Page`
        // (other threads mark `remote` concurrently).
        #[allow(unused_unsafe)]
        unsafe {
            let b = (*this).free;
            // SAFETY: caller guarantees `b` is a free block of this page, whose
            // first word holds the link.
            let next = unsafe { Block::next(b) };
            #[cfg(feature = "hardened")]
            crate::small::hardened::check_link(&*this, next);
            (*this).free = next;
            (*this).used += 1;
            // The class's next allocation reads the new head's link: a cache
            // miss when the block was freed long ago or by another thread.
            // Fetched now, during the caller's work, the miss is hidden (see
            // docs/design/small-object-layout.md).
            #[cfg(target_arch = "x86_64")]
            // SAFETY: a prefetch never faults, whatever the address (null
            // included).
            unsafe {
                core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(next.cast());
            }
            b.cast()
        }
    }

    /// Pushes a block freed by the owner.
    ///
    /// # Safety
    /// Owner only; `p` must be a live block of this page.
    #[inline(always)]
    pub(crate) unsafe fn push_local(this: *mut Page, p: *mut u8) {
        // SAFETY: (whole body) caller contract; raw accesses only, no `&mut Page`
        // (other threads mark `remote` concurrently).
        #[allow(unused_unsafe)]
        unsafe {
            let b = p.cast::<Block>();
            let head = (*this).free;
            // The immediate double free (the block freed last on this page,
            // freed again) costs one compare to catch, as glibc's tcache
            // check does; linked twice, the block would be handed out twice.
            if b == head {
                crate::base::check::fail("double free", p.addr());
            }
            // SAFETY: the block is ours and at least 16 bytes, enough for a link.
            unsafe { Block::set_next(b, head) };
            (*this).free = b;
            (*this).used -= 1;
        }
    }

    /// Takes one never-used block straight from the fresh tail; used by
    /// `alloc_zeroed` so that fresh memory is not memset.
    ///
    /// # Safety
    /// Owner only.
    pub(crate) unsafe fn take_fresh(this: *mut Page) -> Option<*mut u8> {
        // SAFETY: (whole body) caller contract; raw accesses only, no `&mut Page`
        // (other threads mark `remote` concurrently).
        #[allow(unused_unsafe)]
        unsafe {
            if (*this).area_fresh && (*this).free.is_null() && (*this).bump_left != 0 {
                let b = (*this).bump;
                // SAFETY: at least one whole block remains in the bump area.
                (*this).bump = unsafe { b.add((*this).block_size as usize) };
                (*this).bump_left -= (*this).block_size;
                (*this).used += 1;
                Page::note_written(this);
                Some(b)
            } else {
                None
            }
        }
    }

    /// Threads up to `EXTEND_BYTES` of fresh blocks onto the free list.
    /// Returns false when the page has no fresh tail left.
    ///
    /// # Safety
    /// Owner only.
    pub(crate) unsafe fn extend(this: *mut Page) -> bool {
        // SAFETY: (whole body) caller contract; raw accesses only, no `&mut Page`
        // (other threads mark `remote` concurrently).
        #[allow(unused_unsafe)]
        unsafe {
            let bs = (*this).block_size as usize;
            let left = (*this).bump_left as usize / bs;
            if left == 0 {
                return false;
            }
            let n = (EXTEND_BYTES / bs).clamp(1, left);
            let first = (*this).bump;
            let mut b = first;
            for _ in 1..n {
                // SAFETY: `n <= left`, so every block written lies inside the
                // page's block area, which the segment owns.
                unsafe {
                    let next = b.add(bs);
                    Block::set_next(b.cast(), next.cast());
                    b = next;
                }
            }
            // SAFETY: `b` is the last of the `n` blocks, inside the area.
            unsafe {
                Block::set_next(b.cast(), (*this).free);
                (*this).bump = b.add(bs);
            }
            (*this).bump_left -= (n * bs) as u32;
            (*this).free = first.cast();
            Page::note_written(this);
            true
        }
    }

    /// Counts the memory up to `bump` as written (resident) if it lies
    /// beyond the slot's mark: blocks handed out from the fresh tail are
    /// touched memory the program needs, which the warm pool's budget counts
    /// (`stats::NEED`). A slot set up again for another class keeps its mark,
    /// so memory touched twice counts once.
    ///
    /// # Safety
    /// Owner only; `bump` points into or one past the page's slot.
    #[inline]
    unsafe fn note_written(this: *mut Page) {
        // SAFETY: caller contract.
        unsafe {
            // One past the last byte handed out, as an offset in the segment
            // (the last slot's end masks to 0, hence the -1 / +1).
            let end = (((*this).bump.addr() - 1) & (SEGMENT_SIZE - 1)) as u32 + 1;
            Page::note_written_to(this, end);
        }
    }

    /// Counts the page's slot as written up to `end` (an offset in the
    /// segment inside the slot), as [`Page::note_written`] does.
    ///
    /// # Safety
    /// Owner only.
    #[inline]
    pub(crate) unsafe fn note_written_to(this: *mut Page, end: u32) {
        // SAFETY: caller contract.
        unsafe {
            if end > (*this).written {
                stats::NEED.add((end - (*this).written) as usize);
                (*this).written = end;
                crate::mem::span::fit_pool();
            }
        }
    }

    /// Gives back the memory of a burst: when the page grew since the last
    /// look (see [`Page::grew`]) and [`TRIM_MIN`] bytes or more at its
    /// top are free now — the blocks above its last block in use, all on
    /// the free list — those blocks return to the never-handed-out tail and
    /// their memory (from the first OS page boundary up) to the OS; the
    /// free blocks left are relinked lowest address first, so that the
    /// class's next allocations fill the bottom of the page and its top
    /// can drain. Returns the bytes given back.
    ///
    /// Why: a size-segregated page keeps the memory of its class's largest
    /// burst (a temporary array of small objects) as free blocks for good,
    /// while the class's live blocks sit below; a coalescing allocator
    /// reuses such memory for any size. Given back, it serves any class
    /// again, faulted in only when needed.
    ///
    /// Why only after growth: the look walks the page's free list, which
    /// costs time on every page with a large free list; growth bounds the
    /// walks by the memory threaded. Why not the free top of a page that
    /// was released and claimed again (`Segment::release_page` resets the
    /// mark): a page left partly filled in rounds of many sizes, freed in
    /// the order allocated (`witness`), needs its top again in the next
    /// round. Why not a page still being filled: its free top is the
    /// unthreaded rest of its last 4 KiB extension, under [`TRIM_MIN`].
    /// (Measurements: docs/design/heap-tidy.md.)
    ///
    /// # Safety
    /// Owner only; the page is claimed and `area` is its block area (see
    /// [`crate::small::segment::area_of`]) of `len` bytes.
    pub(crate) unsafe fn trim_burst(this: *mut Page, area: *mut u8, len: usize) -> usize {
        const WORDS: usize = crate::small::segment::PAGE_SIZE / 16 / 64;
        let mut bits = [0u64; WORDS];
        // SAFETY: (whole body) caller contract; raw accesses only, no
        // `&mut Page` (other threads mark `remote` concurrently).
        unsafe {
            let bs = (*this).block_size as usize;
            let handed = ((*this).bump.addr() - area.addr()) / bs;
            (*this).bump_seen = (handed * bs) as u32;
            let mut b = (*this).free;
            while !b.is_null() {
                let i = (b.addr() - area.addr()) / bs;
                bits[i / 64] |= 1 << (i % 64);
                b = Block::next(b);
            }
            // The first block above the last one in use (blocks freed by
            // other threads and not collected count as in use).
            let mut top = handed;
            while top > 0 && bits[(top - 1) / 64] & (1 << ((top - 1) % 64)) != 0 {
                top -= 1;
            }
            let cut = (area.addr() + top * bs).next_multiple_of(crate::os::page()) - area.addr();
            let keep = cut.div_ceil(bs);
            let written_end = ((*this).written as usize)
                .saturating_sub(area.addr() & (SEGMENT_SIZE - 1))
                .next_multiple_of(crate::os::page())
                .min(len);
            if keep >= handed || written_end < cut + TRIM_MIN {
                return 0;
            }
            // Lowest first: the class's next allocations fill the bottom.
            let mut head: *mut Block = ptr::null_mut();
            for i in (0..keep).rev() {
                if bits[i / 64] & (1 << (i % 64)) != 0 {
                    let blk = area.add(i * bs).cast::<Block>();
                    Block::set_next(blk, head);
                    head = blk;
                }
            }
            (*this).free = head;
            (*this).bump = area.add(keep * bs);
            (*this).bump_left += ((handed - keep) * bs) as u32;
            (*this).bump_seen = (keep * bs) as u32;
            // SAFETY: (purge) `[cut, written_end)` lies above every block in
            // use and every link of the free list (a block straddling `cut`
            // is free, its link below `cut`); both ends are OS-page aligned
            // (areas are).
            if crate::os::purge(area.add(cut), written_end - cut) {
                // Zero from `cut` on: the tail reads as fresh memory again.
                (*this).area_fresh = true;
                let written = (area.addr() & (SEGMENT_SIZE - 1)) as u32 + cut as u32;
                stats::NEED.sub(((*this).written - written) as usize);
                (*this).written = written;
                stats::purged(written_end - cut);
                written_end - cut
            } else {
                (*this).area_fresh = false;
                0
            }
        }
    }

    /// True if the page grew by [`TRIM_MIN`] bytes or more since
    /// [`Page::trim_burst`] last looked at it (or since it was claimed or
    /// released).
    ///
    /// # Safety
    /// Owner only; `area` is the page's block area.
    #[inline]
    pub(crate) unsafe fn grew(this: *mut Page, area: *mut u8) -> bool {
        // SAFETY: caller contract.
        unsafe { (*this).bump.addr() - area.addr() >= (*this).bump_seen as usize + TRIM_MIN }
    }

    /// Moves every remotely freed block onto the local free list, lowest
    /// address first, in front of the blocks already there. Returns the
    /// number of blocks collected (0: none).
    ///
    /// The marks say which blocks came back without reading them; linking
    /// them writes each block once, and those stores do not wait on each
    /// other as a walk of a linked list's loads would (see `remote.rs`).
    /// In address order, objects that the program then allocates one after
    /// the other sit side by side, as a bitmap allocator hands them out.
    ///
    /// # Safety
    /// Owner only.
    pub(crate) unsafe fn collect_remote(this: *mut Page) -> u32 {
        // SAFETY: (whole body) caller contract; raw accesses only, no `&mut Page`
        // (other threads mark `remote` concurrently).
        #[allow(unused_unsafe)]
        unsafe {
            let marks = (*this).remote;
            // Nothing published since the last collection (or no marks):
            // the marks' memory is not even read, so a page that no other
            // thread frees into never makes its 2 KiB of marks resident.
            // (Marks whose count is not published yet wait for the next
            // collection, as if they came a moment later.)
            if marks.is_null()
                || (*this).remote_published.load(core::sync::atomic::Ordering::Relaxed) == (*this).remote_taken
            {
                return 0;
            }
            let (area, _) = crate::small::segment::area_of(this);
            let bs = (*this).block_size as usize;
            let (mut head, mut tail): (*mut Block, *mut Block) = (ptr::null_mut(), ptr::null_mut());
            let n = (*marks).collect(|w, mut mask| {
                while mask != 0 {
                    let i = w * 64 + mask.trailing_zeros() as usize;
                    mask &= mask - 1;
                    // SAFETY: a marked block of this page's area: ours to link.
                    let b = unsafe { area.add(i * bs) }.cast::<Block>();
                    if tail.is_null() {
                        head = b;
                    } else {
                        // SAFETY: `tail` is a collected block, ours.
                        unsafe { Block::set_next(tail, b) };
                    }
                    tail = b;
                }
            });
            if n == 0 {
                return 0;
            }
            Block::set_next(tail, (*this).free);
            (*this).free = head;
            (*this).used -= n;
            (*this).remote_taken = (*this).remote_taken.wrapping_add(n);
            n
        }
    }

    /// Blocks other threads freed into this page and the owner has not
    /// collected (a hint, see [`RemoteMarks::waiting`]).
    ///
    /// # Safety
    /// Owner only; the page is a live page slot.
    pub(crate) unsafe fn remote_waiting(this: *const Page) -> usize {
        // SAFETY: caller contract.
        unsafe { Marks::waiting(&(*this).remote_published, (*this).remote_taken) }
    }

    /// True if no other thread is still handing blocks over to this page
    /// (see `remote.rs`): with no block live, the page may be released.
    ///
    /// # Safety
    /// Owner only; the page is a live page slot.
    pub(crate) unsafe fn remote_quiescent(this: *const Page) -> bool {
        // SAFETY: caller contract.
        unsafe { Marks::quiescent(&(*this).remote_published, (*this).remote_taken) }
    }

    /// Checks the page's structural invariants in debug builds (see
    /// `base/check.rs`); aborts with a message naming the page when one is
    /// broken:
    ///
    /// * a page in use has its class's block size and the matching
    ///   reciprocal; its bump tail is a whole number of blocks inside its
    ///   block area;
    /// * every block on its free list lies inside the area below `bump`, on
    ///   a block boundary, and `used + free blocks + bump blocks ≤ blocks
    ///   the area holds` (so the list has no cycle and no foreign block).
    ///
    /// Sentinel and stand-in pages (no remote marks) are not checked: they
    /// own no area.
    ///
    /// # Safety
    /// `this` must be a page slot of a live segment owned by the calling
    /// thread's heap (or being claimed or released by it).
    pub(crate) unsafe fn check(this: *mut Page) {
        if !cfg!(debug_assertions) {
            return;
        }
        // SAFETY: caller contract: the owner reads its own page; the free
        // list holds free blocks of this page whose links it wrote.
        unsafe {
            let bs = (*this).block_size as usize;
            if (*this).remote.is_null() || bs == 0 {
                return;
            }
            let addr = this.addr();
            let class = (*this).class as usize;
            invariant!(
                class < NUM_CLASSES && CLASS_SIZE[class] as usize == bs,
                "page: block size is not its class's",
                addr
            );
            invariant!(
                (*this).recip == (1u64 << 40).div_ceil(bs as u64),
                "page: stale reciprocal",
                addr
            );
            let (area, len) = crate::small::segment::area_of(this);
            let capacity = len / bs;
            let left = (*this).bump_left as usize;
            let bump = (*this).bump.addr();
            invariant!(left % bs == 0, "page: bump tail is not whole blocks", addr);
            invariant!(
                bump >= area.addr() && bump + left <= area.addr() + len && (bump - area.addr()) % bs == 0,
                "page: bump outside its block area",
                addr
            );
            let mut free = 0usize;
            let mut b = (*this).free;
            while !b.is_null() {
                invariant!(
                    b.addr() >= area.addr() && b.addr() < bump && (b.addr() - area.addr()) % bs == 0,
                    "page: free list holds a block outside the page",
                    addr
                );
                free += 1;
                invariant!(free <= capacity, "page: free list longer than the page (a cycle)", addr);
                b = Block::next(b);
            }
            invariant!(
                (*this).used as usize + free + left / bs <= capacity,
                "page: more blocks accounted than the page holds",
                addr
            );
        }
    }

    /// The index of block `p` in the page's area: a multiply by the
    /// reciprocal, exact for offsets below 2^18 (a page) and block sizes up
    /// to 2^16 (the rounding error times the offset stays under 2^40).
    ///
    /// # Safety
    /// `p` is a block of the page, which is claimed.
    #[inline(always)]
    unsafe fn block_index(this: *const Page, p: *const u8) -> usize {
        // SAFETY: caller contract (fields written when the slot was claimed).
        unsafe {
            let off = (p.addr() & (SEGMENT_SIZE - 1)) - (*this).area_off as usize;
            ((off as u64 * (*this).recip) >> 40) as usize
        }
    }

    /// Hands a chain of blocks of this page, freed by a thread that does not
    /// own it and linked with [`Block::set_next`], to the owner: marks them
    /// (see `remote.rs`). Returns the atomic read-modify-writes it took.
    ///
    /// # Safety
    /// Every block of `first ..= last` (`n` blocks) must be a freed block of
    /// `page` that nobody uses any more; the caller touches none of them
    /// afterwards.
    pub(crate) unsafe fn push_remote_chain(page: *const Page, first: *mut Block, last: *mut Block, n: u32) -> u32 {
        let mut b = first;
        let mut left = n;
        let blocks = core::iter::from_fn(|| {
            if left == 0 {
                return None;
            }
            left -= 1;
            let this = b;
            if left != 0 {
                // Read before `this` is marked (the owner may reuse it as
                // soon as it is).
                // SAFETY: a block of the chain, not marked yet.
                b = unsafe { Block::next(this) };
            }
            // SAFETY: caller contract: a block of `page`.
            Some(unsafe { Page::block_index(page, this.cast()) })
        });
        debug_assert!(n > 0 && !first.is_null() && !last.is_null());
        // Once some blocks are marked the owner may take them, but it releases
        // the page only after this thread's count is added, `publish`'s last
        // touch of the page (see `Page::remote_quiescent`).
        // SAFETY: the page outlives its live blocks and this publication.
        unsafe { (*(*page).remote).publish(blocks, &(*page).remote_published) }
    }

    /// Hands one block freed by a thread that is not the owner to the owner.
    ///
    /// # Safety
    /// `p` must be a live block of `page`, not used afterwards.
    pub(crate) unsafe fn push_remote(page: *const Page, p: *mut u8) {
        // SAFETY: forwarded caller contract; the page stays until this
        // thread's count is added, as in `push_remote_chain`.
        unsafe {
            let i = Page::block_index(page, p);
            (*(*page).remote).publish(core::iter::once(i), &(*page).remote_published);
        }
    }
}
