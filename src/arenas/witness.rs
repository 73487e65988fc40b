//! The witness arena: memory for secrets.
//!
//! Every witness block lives in one process-wide *witness region*: 64 GiB
//! of address space reserved inaccessible once, cut into 1 MiB slots. An
//! arena claims *chunks* (runs of slots) inside it and commits only the
//! parts that hold blocks:
//!
//! ```text
//! small chunk: | guard | run (class A) | gap | run (class B) | gap | ... unused ... | guard |
//! large chunk: | guard | ... unused ... | canary bytes | block ........................| guard |
//!                 every guard, gap and unused page: never committed, PROT_NONE
//! ```
//!
//! * **Fences.** The page directly before the first block of every run and
//!   directly after its last block is inaccessible: a run is committed on
//!   its own, its blocks placed so that the last ends at the run's end, and
//!   a *gap* page of the reserve separates it from the next run. A large
//!   block ends at its chunk's trailing guard (up to 15 bytes of rounding to
//!   16-byte alignment); the bytes between the page start and the block are
//!   canary bytes, as is that rounding. Guards cost address space, not
//!   memory; each run costs two mappings, so runs of a class in steady use
//!   grow to 256 KiB (`policy::WITNESS_RUN_GROWN_MAX`; see
//!   docs/design/witness-arena.md).
//! * **No metadata beside secrets.** Chunk bookkeeping lives out of line in
//!   a static table indexed by slot ([`CHUNKS`]), which commit state in a
//!   static bitmap ([`COMMITTED`]): nothing the allocator reads as a
//!   pointer or length sits in the witness region except the free-list
//!   links of free blocks, and those are encoded (next point).
//! * **Encoded links.** A free block's link (its first word; a batch's
//!   first block also its second) is stored XORed with a per-process key
//!   and the word's own address; a decoded link that points outside the
//!   region or off a 16-byte boundary is reported and the process stops, so
//!   an overflow into a free block cannot steer the next allocation. A zero
//!   word reads as "end of list" (wipe-on-fork zeroes links in a child).
//! * **Canaries.** Every small block carries an 8-byte canary right after
//!   the requested bytes (the class is chosen for `size + 8`), keyed per
//!   process and by the block's address; free and in-place resize check it,
//!   and a broken canary is reported — `nalloc: witness block overflowed
//!   (canary overwritten) at 0x… (N bytes)` — and the process aborts. A
//!   1-byte linear overflow is caught at the block's free; an overflow past
//!   a run's last block faults at once.
//! * **Locking** is per committed run or large block and lasts its
//!   lifetime, so freeing one of two secrets on a page never unlocks the
//!   other. When the OS refuses (`RLIMIT_MEMLOCK`), one notice goes to
//!   stderr and `stats` says so; with [`WitnessLock::Require`]
//!   (`NALLOC_WITNESS_LOCK=require`) the allocation returns null instead.
//! * Blocks are zero when handed out and wiped (with a write the optimiser
//!   cannot remove) on every free, canary included; the encoded link is the
//!   only non-zero word of a free block, and it is cleared on hand-out.
//! * Small requests use the allocator's size classes. Fresh blocks are cut
//!   from a per-class *run* of the current chunk, so a class's blocks are
//!   neighbours as in a heap's page, and freed blocks are recycled LIFO per
//!   class. Larger requests (over 64 KiB) get a chunk of their own.
//!   `secure_wipe` keeps small chunks (wiped, committed) for reuse.
//! * **Per-thread caches.** The shared free lists and chunks sit behind one
//!   lock. Each arena also keeps, for the first [`CACHES`] threads (by heap
//!   index, see `heap::owned_index`), a private cache per class: a list of
//!   wiped blocks plus one full batch in reserve (a magazine pair). Alloc
//!   and free touch only the caller's cache, with plain loads and stores,
//!   and trade whole batches (linked through their first block, O(1), no
//!   list walk) with the shared stack under the lock. A cache is used by one
//!   thread at a time (a heap's owner), so it needs no lock or atomic
//!   read-modify-write; `secure_wipe` empties every cache, hence its
//!   contract that no other thread uses the arena meanwhile. Accounting is
//!   per class in the same entry; `stats` sums it exactly and the peak is
//!   sampled at trades. Runs and caches are what bring the arena's cost down
//!   to that of plain alloc + memset + free (see docs/design/witness-arena.md).
//! * One range comparison (`contains`) tells the global `dealloc` whether a
//!   pointer is witness memory, which is how blocks allocated inside
//!   `witness_scope` are recognised when freed anywhere, on any thread.

use core::cell::UnsafeCell;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicUsize, Ordering::Relaxed};

use crate::base::check::{fail, fail_block, invariant};
use crate::base::config::{self, WitnessLock};
use crate::base::key::Key;
use crate::base::sync::SpinLock;
use crate::mem::region::Region;
use crate::os;
use crate::small::heap;
use crate::small::page::Block;
use crate::small::size_class::{self, CLASS_SIZE, NUM_CLASSES};

/// Size of one slot of the witness region.
pub(crate) const SLOT: usize = crate::policy::WITNESS_SLOT;
/// Slots in the region (64 GiB of address space on 64-bit targets; 8 MiB
/// under Miri, where "reserving" allocates).
const SLOTS: usize = crate::policy::WITNESS_SLOTS;
/// The page: the unit of commit, guards and gaps (and inaccessible bytes
/// before and after every chunk).
#[inline(always)]
fn page() -> usize {
    os::page()
}
/// Bytes of canary after a small block's requested bytes.
pub(crate) const CANARY: usize = 8;

/// Where every witness chunk lives. Claims rotate through a window of
/// slots, so a released chunk's slots stay uncommitted while the window is
/// gone round: a stale pointer into them is reported, not taken for the
/// block allocated next (see `mem/region.rs`).
static REGION: Region<{ SLOTS.div_ceil(64) }> = Region::rotating(SLOT, SLOTS, crate::policy::WITNESS_ROTATE_SLOTS);

/// True if `p` points into the witness region.
#[inline(always)]
pub(crate) fn contains(p: *const u8) -> bool {
    REGION.contains(p)
}

/// Granule of the commit bitmap (the smallest page size of any platform).
const UNIT: usize = 4096;
/// One bit per [`UNIT`] of the region: set while that page is committed
/// (read-write). Out of line, so that a pointer can be checked without
/// touching the region, and so that wipes and releases visit only
/// committed pages.
static COMMITTED: [AtomicU64; SLOTS * (SLOT / UNIT) / 64] = [const { AtomicU64::new(0) }; SLOTS * (SLOT / UNIT) / 64];

/// Bit index of the page holding `p` (inside the region).
fn unit_of(p: usize) -> usize {
    (p - REGION.base_addr()) / UNIT
}

/// Records `[p, p + len)` (page aligned, inside the region) as committed
/// (`on`) or not.
fn mark_committed(p: usize, len: usize, on: bool) {
    for u in unit_of(p)..unit_of(p) + len / UNIT {
        let (w, bit) = (u / 64, 1u64 << (u % 64));
        if let Some(word) = COMMITTED.get(w) {
            if on {
                word.fetch_or(bit, Relaxed);
            } else {
                word.fetch_and(!bit, Relaxed);
            }
        }
    }
}

/// True if the page holding `p` (inside the region) is committed.
fn is_committed(p: usize) -> bool {
    let u = unit_of(p);
    COMMITTED
        .get(u / 64)
        .is_some_and(|w| w.load(Relaxed) & (1 << (u % 64)) != 0)
}

/// Calls `f(start, len)` for each maximal committed stretch in `[p, p + len)`
/// (page aligned, inside the region), in address order.
fn for_each_committed(p: usize, len: usize, mut f: impl FnMut(usize, usize)) {
    let mut run: Option<usize> = None;
    let mut a = p;
    while a < p + len {
        match (is_committed(a), run) {
            (true, None) => run = Some(a),
            (false, Some(s)) => {
                f(s, a - s);
                run = None;
            }
            _ => {}
        }
        a += UNIT;
    }
    if let Some(s) = run {
        f(s, p + len - s);
    }
}

/// True if `[p, p + len)` (inside the witness region, `len` ≤ a page) lies
/// in committed witness memory, so it can be read without a fault: the
/// check a free of a witness pointer makes before it reads the block's
/// header (a freed chunk, a gap or a guard is not committed).
pub(crate) fn readable(p: *const u8, len: usize) -> bool {
    let last = p.wrapping_add(len.max(1) - 1);
    contains(p) && contains(last) && is_committed(p.addr()) && is_committed(last.addr())
}

/// Bookkeeping of a chunk (not secret), kept out of line in [`CHUNKS`].
#[repr(C)]
struct ChunkHeader {
    /// Next chunk of the same arena and kind.
    next: *mut ChunkHeader,
    /// The chunk's first byte (one guard into its first slot).
    base: *mut u8,
    /// Slots the chunk spans.
    slots: usize,
    /// Bytes from `base` to the trailing guard.
    len: usize,
    /// Bytes committed now (for `stats`).
    committed: usize,
    /// For a large chunk: the block and its length to the chunk's end.
    block: *mut u8,
    block_len: usize,
}

/// The chunk headers, indexed by a chunk's first slot: out of the witness
/// region, so that no write that strays from a secret reaches them (as
/// hardened_malloc keeps its metadata out of line). 48 bytes a slot, in
/// `.bss`: only the entries of slots ever used are touched.
struct ChunkTable([UnsafeCell<ChunkHeader>; SLOTS]);

// SAFETY: an entry is written by the thread that claims its slots (before
// the chunk is published) and afterwards only under the owning arena's lock.
unsafe impl Sync for ChunkTable {}

static CHUNKS: ChunkTable = ChunkTable(
    [const {
        UnsafeCell::new(ChunkHeader {
            next: ptr::null_mut(),
            base: ptr::null_mut(),
            slots: 0,
            len: 0,
            committed: 0,
            block: ptr::null_mut(),
            block_len: 0,
        })
    }; SLOTS],
);

/// The per-process keys of the canaries and of the encoded links, chosen
/// when the first chunk is made (before any block exists).
static CANARY_KEY: Key = Key::new();
static LINK_KEY: Key = Key::new();

/// The canary of the small block at `p`.
#[inline(always)]
fn canary(p: *const u8) -> u64 {
    (CANARY_KEY.peek() ^ p.addr().rotate_left(17)) as u64
}

/// Writes the canary of the small block `p` of `size` requested bytes.
///
/// # Safety
/// `p` must be a block of the witness class of `size`.
#[inline(always)]
unsafe fn set_canary(p: *mut u8, size: usize) {
    // SAFETY: caller contract: the class holds `size + CANARY` bytes.
    unsafe { p.add(size).cast::<u64>().write_unaligned(canary(p)) }
}

/// Checks the canary of the small block `p` of `size` requested bytes, and
/// stops the process with a report if a write overran the block.
///
/// # Safety
/// As for [`set_canary`], on a live block.
#[inline(always)]
unsafe fn check_canary(p: *mut u8, size: usize) {
    // SAFETY: caller contract.
    if unsafe { p.add(size).cast::<u64>().read_unaligned() } != canary(p) {
        overflowed(p, size);
    }
}

#[cold]
#[inline(never)]
fn overflowed(p: *mut u8, size: usize) -> ! {
    fail_block("witness block overflowed (canary overwritten)", p.addr(), size)
}

/// The canary byte at address `a` (fills a large block's slack).
fn canary_byte(a: usize) -> u8 {
    (CANARY_KEY.peek() >> ((a % 8) * 8)) as u8
}

/// Fills `[at, at + len)` with canary bytes.
///
/// # Safety
/// The range must be committed memory of a large chunk of ours, outside
/// its block.
unsafe fn fill_canary(at: *mut u8, len: usize) {
    for i in 0..len {
        // SAFETY: caller contract.
        unsafe { at.add(i).write(canary_byte(at.addr() + i)) };
    }
}

/// True if `[at, at + len)` still holds the canary bytes of [`fill_canary`].
///
/// # Safety
/// As for [`fill_canary`].
unsafe fn canary_intact(at: *const u8, len: usize) -> bool {
    // SAFETY: caller contract.
    (0..len).all(|i| unsafe { at.add(i).read() } == canary_byte(at.addr() + i))
}

/// The mask a link stored at the word `at` is XORed with.
#[inline(always)]
fn link_mask(at: *const *mut Block) -> usize {
    LINK_KEY.peek() ^ at.addr().rotate_left(29)
}

/// Stores the link `next` in the free block word `at`, encoded (null stays
/// zero).
///
/// # Safety
/// `at` must be a word of a free block of ours.
#[inline(always)]
unsafe fn store_link(at: *mut *mut Block, next: *mut Block) {
    let v = if next.is_null() { 0 } else { next.addr() ^ link_mask(at) };
    // SAFETY: caller contract.
    unsafe { at.cast::<usize>().write(v) }
}

/// Loads and checks the link stored in the free block word `at`: null for
/// a zero word, else a 16-byte aligned address in the witness region, or
/// the process stops with a report (the word was overwritten).
///
/// # Safety
/// As for [`store_link`].
#[inline(always)]
unsafe fn load_link(at: *mut *mut Block) -> *mut Block {
    // SAFETY: caller contract.
    let v = unsafe { at.cast::<usize>().read() };
    if v == 0 {
        return ptr::null_mut();
    }
    let next = v ^ link_mask(at);
    if !contains(ptr::without_provenance(next)) || next % 16 != 0 {
        bad_link(at);
    }
    at.cast::<Block>().with_addr(next)
}

#[cold]
#[inline(never)]
fn bad_link(at: *mut *mut Block) -> ! {
    fail(
        "witness free list corrupted (a write past a neighbouring block?)",
        at.addr(),
    )
}

/// The second link word of a batch's first block (the next batch).
#[inline(always)]
fn batch_link(h: *mut BatchHead) -> *mut *mut Block {
    h.cast::<*mut Block>().wrapping_add(1)
}

/// The link word of block `b`.
#[inline(always)]
fn link(b: *mut Block) -> *mut *mut Block {
    b.cast()
}

/// The witness class of a small request: the canary's bytes included.
#[inline(always)]
pub(crate) fn class_of(size: usize, align: usize) -> usize {
    size_class::class_for(size + CANARY, align)
}

/// True if a request is served by size classes (its canary included).
#[inline(always)]
pub(crate) fn is_small(size: usize, align: usize) -> bool {
    size <= size_class::SMALL_MAX - CANARY && align <= size_class::SMALL_ALIGN_MAX
}

impl ChunkHeader {
    /// Checks a chunk's invariants in debug builds (see `base/check.rs`):
    /// it sits in its slot's table entry, starts one guard into that slot,
    /// spans `slots` slots less the two guards, and its recorded block (a
    /// large chunk's block, or how far a small chunk was used) lies inside it.
    ///
    /// # Safety
    /// `h` must be a chunk made by `new_chunk` and not yet dropped.
    unsafe fn check(h: *const ChunkHeader) {
        if !cfg!(debug_assertions) {
            return;
        }
        // SAFETY: caller contract: a live chunk header.
        let (base, slots, len, block, block_len) =
            unsafe { ((*h).base, (*h).slots, (*h).len, (*h).block, (*h).block_len) };
        let at = base.addr();
        invariant!(
            contains(base) && (at - REGION.base_addr()) % SLOT == page() && ptr::eq(header_of(base), h),
            "witness chunk: not at a slot of the region",
            at
        );
        invariant!(
            (1..=SLOTS).contains(&slots) && len == slots * SLOT - 2 * page(),
            "witness chunk: length differs from its slots",
            at
        );
        if block.is_null() {
            // A small-block chunk: `block_len` is how far it was used.
            invariant!(block_len <= len, "witness chunk: used past its end", at);
        } else {
            invariant!(
                block.addr() >= at && block.addr() + block_len == at + len,
                "witness chunk: block not at the chunk's end",
                at
            );
        }
    }
}

/// The header of the chunk starting at `base`.
fn header_of(base: *const u8) -> *mut ChunkHeader {
    CHUNKS.0[REGION.slot_of(base)].get()
}

impl Inner {
    /// Checks the small-block state in debug builds: the newest small
    /// chunk's used part is within it, and every class's current run lies in
    /// the witness region with its cursor inside it.
    fn check(&self) {
        if !cfg!(debug_assertions) {
            return;
        }
        let at = self as *const Inner as usize;
        if !self.small.is_null() {
            // SAFETY: `small` is a live chunk of ours (the caller holds the
            // lock).
            let (base, len) = unsafe {
                ChunkHeader::check(self.small);
                ((*self.small).base.addr(), (*self.small).len)
            };
            invariant!(
                self.bump + page() >= base && self.bump <= base + len,
                "witness arena: bump outside the newest chunk",
                at
            );
        }
        for (run, &end) in self.run.iter().zip(&self.run_end) {
            invariant!(
                run.is_null() || (contains(run.cast()) && run.addr() <= end),
                "witness arena: a class's run outside the region",
                at
            );
        }
    }
}

/// What happened when memory was committed: feeds the arena's stats.
#[derive(Default)]
struct Protection {
    dont_dump: bool,
    wipe_on_fork: bool,
}

/// Set once the "could not lock" notice was written.
static LOCK_NOTICE: AtomicBool = AtomicBool::new(false);

/// Claims a chunk of `slots` slots with its secret advice (no dump, wiped
/// in a forked child) but nothing committed. Null when the address space or
/// a protection call fails unexpectedly.
fn new_chunk(slots: usize, prot: &mut Protection) -> *mut ChunkHeader {
    // Before any block exists: the fast paths only peek at the keys.
    CANARY_KEY.get();
    LINK_KEY.get();
    let slot = REGION.claim(slots);
    if slot.is_null() {
        return ptr::null_mut();
    }
    let len = slots * SLOT - 2 * page();
    // SAFETY: inside the claimed slots.
    let base = unsafe { slot.add(page()) };
    // The advice applies to the reserved (inaccessible) range as a whole;
    // runs committed in it later keep it.
    // SAFETY: page aligned, inside our reservation, claimed by us alone.
    match unsafe { os::protect_secret(base, len) } {
        Ok(f) => {
            prot.dont_dump = f.dont_dump;
            prot.wipe_on_fork = f.wipe_on_fork;
        }
        Err(os::OsError(12)) => {} // ENOMEM: out of VMAs; the memory itself works.
        Err(_) => {
            REGION.release(slot, slots);
            return ptr::null_mut();
        }
    }
    // SAFETY: as above.
    unsafe { os::name(base, len, c"nalloc-witness") };
    let h = header_of(base);
    // SAFETY: the entry of our freshly claimed slot: nobody else reads it.
    unsafe {
        ptr::write(
            h,
            ChunkHeader {
                next: ptr::null_mut(),
                base,
                slots,
                len,
                committed: 0,
                block: ptr::null_mut(),
                block_len: 0,
            },
        );
        ChunkHeader::check(h);
    };
    h
}

/// Wipes and gives back a chunk (all its blocks must be dead); wipes its
/// committed pages first if `wipe`.
///
/// # Safety
/// `h` must be a chunk made by `new_chunk` that nobody uses any more.
unsafe fn drop_chunk(h: *mut ChunkHeader, wipe: bool) {
    // SAFETY: caller contract.
    unsafe {
        ChunkHeader::check(h);
        let (base, slots, len) = ((*h).base, (*h).slots, (*h).len);
        if wipe {
            for_each_committed(base.addr(), len, |p, n| os::secure_zero(base.with_addr(p), n));
        }
        // The slots go back to the region: clear the secret's advice, or a
        // later chunk's pages there would read as zero in a forked child.
        os::unprotect_secret(base, len);
        mark_committed(base.addr(), len, false);
        os::unlock(base, len);
        os::decommit(base, len);
        (*h).base = ptr::null_mut();
        REGION.release(base.sub(page()), slots);
    }
}

/// Makes `[p, p + len)` of chunk `h` (page aligned) read-write and locks
/// it. `Ok` gives the bytes newly committed: the range less the pages a
/// reused chunk had committed already (counted then), so that the arena's
/// `committed` stays the sum of committed pages. `Err` when the OS refuses
/// memory, or refuses the lock under [`WitnessLock::Require`]: nothing of
/// the range is committed then, and it gives the bytes that were committed
/// before and are not now. `locked` tells whether it was locked.
///
/// # Safety
/// The range must lie in the live chunk `h`, owned by the caller, and hold
/// no live block.
unsafe fn commit_range(h: *mut ChunkHeader, p: *mut u8, len: usize, locked: &mut bool) -> Result<usize, usize> {
    let mut had = 0;
    for_each_committed(p.addr(), len, |_, n| had += n);
    // SAFETY: caller contract: inside our chunk's reservation.
    if unsafe { os::commit(p, len) }.is_err() {
        return Err(0);
    }
    // SAFETY: as above, committed now.
    *locked = match unsafe { os::lock(p, len) } {
        Ok(()) => true,
        Err(os::OsError(e)) => {
            let require = config::witness_lock() == WitnessLock::Require;
            lock_notice(e, require);
            if require {
                // SAFETY: caller contract: holds nothing (what a reused
                // chunk had committed there was wiped and is unused, and
                // may be locked from before: unlocked first, as make_guard
                // does, or the kernel keeps locked pages resident).
                unsafe {
                    os::unlock(p, len);
                    os::decommit(p, len);
                    (*h).committed -= had;
                }
                mark_committed(p.addr(), len, false);
                return Err(had);
            }
            false
        }
    };
    mark_committed(p.addr(), len, true);
    // SAFETY: caller contract: we own the chunk.
    unsafe { (*h).committed += len - had };
    Ok(len - had)
}

/// Writes, once per process, why witness memory is not locked.
#[cold]
fn lock_notice(errno: i32, require: bool) {
    if LOCK_NOTICE.swap(true, Relaxed) {
        return;
    }
    let mut buf = [0u8; 240];
    let mut n = 0;
    let mut push = |s: &[u8]| {
        for &b in s {
            if n < buf.len() {
                buf[n] = b;
                n += 1;
            }
        }
    };
    push(b"nalloc: witness memory could not be locked in RAM (mlock: ");
    push(if errno == 12 || errno == 1 {
        b"RLIMIT_MEMLOCK reached"
    } else {
        b"refused"
    });
    push(if require {
        b"); NALLOC_WITNESS_LOCK=require: the allocation fails\n"
    } else {
        b"); secrets may be swapped to disk (NALLOC_WITNESS_LOCK=require refuses instead)\n"
    });
    os::write_stderr(&buf[..n]);
}

/// Unlocks and decommits the committed pages of `[p, p + len)` of chunk
/// `h`, which hold nothing (zero): a page that must be a guard or gap now
/// in a chunk reused with a new layout.
///
/// # Safety
/// The range must lie in the live chunk `h`, owned by the caller, and hold
/// no live block.
unsafe fn make_guard(h: *mut ChunkHeader, p: usize, len: usize) -> usize {
    let mut freed = 0;
    for_each_committed(p, len, |a, n| {
        // SAFETY: caller contract: committed pages of our chunk, no data.
        unsafe {
            let q = (*h).base.with_addr(a);
            os::unlock(q, n);
            os::decommit(q, n);
            (*h).committed -= n;
        }
        mark_committed(a, n, false);
        freed += n;
    });
    freed
}

/// Bytes of a new run for a class of `bs`-byte blocks, the class's
/// `grown`-th run since the last wipe: [`RUN_BLOCKS`] blocks within
/// [`RUN_MIN`]..[`RUN_MAX`], doubling per run up to
/// [`RUN_GROWN_MAX`](crate::policy::WITNESS_RUN_GROWN_MAX); rounded to a
/// whole number of both pages and blocks where that fits a chunk twice (so
/// the last block ends at the run's end, against the guard), else to pages.
fn run_len(bs: usize, grown: u8) -> usize {
    let first = (bs * RUN_BLOCKS).clamp(RUN_MIN, RUN_MAX);
    let target = (first << grown.min(8))
        .min(crate::policy::WITNESS_RUN_GROWN_MAX.max(first))
        .max(bs);
    let lcm = bs / gcd(bs, page()) * page();
    let unit = if lcm <= (SLOT - 2 * page()) / 2 { lcm } else { page() };
    target.div_ceil(unit) * unit
}

const fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// The first block of a batch (see `Inner::batches`): its usual link, then
/// the link to the next batch. Every class holds at least two words.
#[repr(C)]
struct BatchHead {
    next: *mut Block,
    next_batch: *mut BatchHead,
}

const _: () = assert!(core::mem::size_of::<BatchHead>() <= crate::small::size_class::MIN_ALIGN);

struct Inner {
    /// Per-class lists of wiped free blocks, one by one (frees from threads
    /// without a cache, remainders of split batches).
    free: [*mut Block; NUM_CLASSES],
    /// Per-class stacks of *batches*: chains of exactly `batch(class)`
    /// wiped blocks that a thread cache handed back (see `spill`), linked
    /// through the second word of each chain's first block. A cache refills
    /// with a whole batch in O(1): walking a list block by block would be a
    /// chain of dependent cache misses on memory that a prover has long
    /// evicted.
    batches: [*mut BatchHead; NUM_CLASSES],
    /// Small-block chunks, newest first.
    small: *mut ChunkHeader,
    /// End of the newest run in the newest small chunk (its base less a
    /// page before its first run): the next run starts a gap page later.
    bump: usize,
    /// Per class, the next fresh block of its current run and the run's end
    /// (see `take_locked`).
    run: [*mut u8; NUM_CLASSES],
    run_end: [usize; NUM_CLASSES],
    /// Per class, runs made since the last wipe (their length grows).
    grown: [u8; NUM_CLASSES],
    /// Small-block chunks wiped by `secure_wipe` and kept (committed,
    /// locked) for reuse before any new chunk is claimed.
    spare: *mut ChunkHeader,
    /// Large-block chunks.
    large: *mut ChunkHeader,
    /// Bytes handed out under the lock, net (wrapping: blocks allocated
    /// through a thread cache may be freed here), and the highest total
    /// (with the caches' figures) seen at a locked allocation.
    used: usize,
    peak: usize,
    /// Thread caches that were ever refilled (bit `i` for cache `i`): the
    /// sums behind `peak` visit only these — every cache is its own cache
    /// line or more, and a prover streaming through memory evicts them all.
    /// (A cache only ever freed into is missed there, which can only lower
    /// the peak estimate; `stats` sums every cache for `used`.)
    active: u64,
}

// SAFETY: the lock serialises access; pointers are to our own chunks.
unsafe impl Send for Inner {}

/// Threads (heap indices `0..CACHES`) with a private block cache in every
/// arena; later ones use the locked lists directly. A cache is 1,440 bytes
/// (44 entries of 32), so an arena carries 45 KiB of them, all zero until
/// used (`.bss` for a static arena).
pub(crate) const CACHES: usize = crate::policy::WITNESS_CACHES;
const _: () = assert!(CACHES <= 64, "Inner::active is a u64");
/// A cache refills / hands back this many bytes' worth of blocks per lock
/// (at least one block, at most [`BATCH_MAX`]); it keeps at most two batches
/// per class, so what one thread can hold back is bounded.
use crate::policy::{WITNESS_BATCH_BYTES as BATCH_BYTES, WITNESS_BATCH_MAX as BATCH_MAX};
/// A class's run of fresh blocks (see `take_locked`) holds [`RUN_BLOCKS`]
/// blocks, but at least a page (the span a hardware prefetcher follows) and
/// at most 64 KiB (the largest classes get one block): touching every class
/// once then commits about 1 MiB, one chunk.
use crate::policy::{WITNESS_RUN_BLOCKS as RUN_BLOCKS, WITNESS_RUN_MAX as RUN_MAX, WITNESS_RUN_MIN as RUN_MIN};

/// Blocks per refill / hand-back for blocks of class `c`.
const fn batch(c: usize) -> u16 {
    let n = BATCH_BYTES / CLASS_SIZE[c] as usize;
    if n < 1 {
        1
    } else if n > BATCH_MAX {
        BATCH_MAX as u16
    } else {
        n as u16
    }
}

/// Blocks per batch, per class ([`batch`]), read on the free path.
static BATCH: [u16; NUM_CLASSES] = {
    let mut t = [0u16; NUM_CLASSES];
    let mut c = 0;
    while c < NUM_CLASSES {
        t[c] = batch(c);
        c += 1;
    }
    t
};

/// One class in a thread's cache, a *magazine* pair (as in Bonwick's
/// magazine allocator): `head`, a list of up to `batch` wiped free blocks
/// that alloc pops and free pushes, and `full`, one complete batch held in
/// reserve. Blocks are linked through their first word, the only non-zero
/// word of a wiped block. Both lists are handed over whole, in O(1), so no
/// path ever walks a list.
///
/// Alloc and free touch this entry and nothing else of the arena: a prover
/// streaming through memory evicts the arena's lines between calls, so one
/// more line per call (a per-thread byte counter) costs measurably (see
/// docs/design/witness-arena.md). So the accounting is per class, in blocks
/// (`net`), here.
/// Fields are written by the owning thread only, through raw pointers (no
/// reference to the entry), so that `stats` may read `net` meanwhile.
#[repr(C, align(32))]
struct ClassCache {
    head: *mut Block,
    /// A batch of exactly `batch` blocks, or null.
    full: *mut Block,
    /// Blocks handed out through this entry minus blocks freed into it
    /// (wraps below zero when this thread frees blocks that others
    /// allocated; the sum over every cache and the locked lists is what is
    /// live). Owner-written with plain load + store, read by `stats`.
    net: AtomicI32,
    /// `net` at the owner's last batch trade (see `WitnessArena::sample`).
    traded: i32,
    /// Blocks in `head`.
    len: u16,
    /// Blocks per batch ([`batch`]); 0 until the entry's first use, so
    /// that the caches start all-zero (in `.bss`, not in the binary).
    batch: u16,
}

const _: () = assert!(core::mem::size_of::<ClassCache>() == 32);

/// A thread's cache in one arena (see the module docs).
struct ThreadCache {
    /// Bytes handed out through this cache as of the owner's last batch
    /// trades (per class, see `WitnessArena::sample`): what other threads
    /// add to the arena's total when they sample the peak.
    sample: AtomicUsize,
    /// Only the owning thread writes these (and `secure_wipe`, by contract).
    classes: UnsafeCell<[ClassCache; NUM_CLASSES]>,
}

impl ThreadCache {
    const fn new() -> Self {
        Self {
            sample: AtomicUsize::new(0),
            classes: UnsafeCell::new(
                [const {
                    ClassCache {
                        head: ptr::null_mut(),
                        full: ptr::null_mut(),
                        net: AtomicI32::new(0),
                        traded: 0,
                        len: 0,
                        batch: 0,
                    }
                }; NUM_CLASSES],
            ),
        }
    }

    /// The entry of `class` (a raw pointer: see [`ClassCache`]).
    #[inline(always)]
    fn entry(&self, class: usize) -> *mut ClassCache {
        // Callers pass size classes (`class < NUM_CLASSES`), so the pointer
        // stays inside the array; `wrapping_add` keeps this function safe
        // and costs no bounds check on the fast paths.
        debug_assert!(class < NUM_CLASSES);
        self.classes.get().cast::<ClassCache>().wrapping_add(class)
    }

    /// Bytes handed out through this cache now (exact; for `stats`).
    fn used(&self) -> usize {
        (0..NUM_CLASSES).fold(0usize, |sum, c| {
            // SAFETY: a shared reference to an atomic field only; nobody
            // holds a reference to the entry (see `ClassCache`).
            let net = unsafe { (*self.entry(c)).net.load(Relaxed) };
            sum.wrapping_add((net as isize as usize).wrapping_mul(CLASS_SIZE[c] as usize))
        })
    }
}

/// An arena of witness (secret) memory. Obtain one with
/// [`crate::NAlloc::witness`] or [`WitnessArena::new`].
///
/// What every witness block gets, through every front (this arena,
/// [`crate::SecretBox`] / [`crate::SecretVec`], [`crate::NAlloc::witness_scope`]
/// and the C front's `nalloc_witness_alloc`):
///
/// * **Guard pages at both ends of every run.** Blocks of one size class
///   are cut from a *run* of pages committed on its own, the last block
///   ending at the run's end: the page directly before the first block and
///   directly after the last is inaccessible (never committed), so a stray
///   access off either end of a run faults. A large block (over 64 KiB) has
///   a chunk of its own and ends at its trailing guard page (up to 15 bytes
///   of rounding to 16-byte alignment); the page before its first page is a
///   guard too.
/// * **A canary on every block.** Blocks that share a run have no page
///   between them, so each carries an 8-byte canary right after its
///   requested bytes, keyed per process and by address. Free and in-place
///   resize check it; a broken canary prints `nalloc: witness block
///   overflowed (canary overwritten) at 0x… (N bytes)` and aborts. A large
///   block's bytes between its page start and its first byte, and its
///   rounding after its last, are canary bytes, checked at free the same
///   way.
/// * **No metadata beside secrets; encoded links.** Chunk bookkeeping lives
///   out of line, in a table outside the witness region. Besides the
///   canaries, the only allocator data in the region are free blocks'
///   free-list links (a free block's first word; the first block of a
///   batch of them also its second), each stored XORed with a per-process
///   key and the word's address; a link
///   that decodes outside the region or off a 16-byte boundary prints
///   `nalloc: witness free list corrupted (a write past a neighbouring
///   block?) at 0x…` and aborts, so an overflow cannot steer the next
///   allocation.
/// * **Locked, or refused.** Memory is `mlock`ed per run or large block.
///   When the OS refuses (`RLIMIT_MEMLOCK`), one notice per process goes to
///   stderr (written without allocating), the memory is handed out
///   unlocked and [`WitnessStats::locked`] turns false; with
///   `NALLOC_WITNESS_LOCK=require` or [`WitnessLock::Require`] (see
///   [`crate::NAlloc::set_witness_lock`]) the allocation returns null
///   instead.
/// * Zeroed when handed out, wiped on every free and growth, excluded from
///   core dumps (`MADV_DONTDUMP`), zero in forked children
///   (`MADV_WIPEONFORK`).
///
/// A block from the C front's `nalloc_witness_alloc` carries a sealed
/// 16-byte header right before it (inside the witness block): a write just
/// before the block breaks the seal, and its `free` or
/// `nalloc_witness_free` reports `invalid pointer` and aborts rather than
/// faulting.
///
/// **Cost:** 8 bytes of canary per small block (a 32-byte secret takes a
/// 48-byte block, a 64-byte one an 80-byte block; a C block 16 more for its
/// header). Guards cost address space, not memory; each run costs two
/// mappings, which is why runs of a class in steady use grow to 256 KiB.
pub struct WitnessArena {
    inner: SpinLock<Inner>,
    caches: [ThreadCache; CACHES],
    committed: AtomicUsize,
    lock_failed: AtomicBool,
    locked_any: AtomicBool,
    dump_excluded: AtomicBool,
    fork_wiped: AtomicBool,
}

/// A snapshot of a witness arena's state, part of [`crate::Stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WitnessStats {
    /// Bytes in live blocks (small ones rounded to size classes, large ones
    /// to whole pages).
    pub used: usize,
    /// Highest `used` seen. Sampled, so that alloc and free stay lock- and
    /// atomic-free: at every batch trade between a thread's cache and the
    /// arena, every locked operation and every `stats` call; between
    /// samples a thread's cache can hand out up to one batch per class
    /// (32 KiB or 64 blocks) unseen.
    pub peak: usize,
    /// Bytes committed (read-write) for the arena's runs and large blocks.
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
                batches: [ptr::null_mut(); NUM_CLASSES],
                small: ptr::null_mut(),
                bump: 0,
                run: [ptr::null_mut(); NUM_CLASSES],
                run_end: [0; NUM_CLASSES],
                grown: [0; NUM_CLASSES],
                spare: ptr::null_mut(),
                large: ptr::null_mut(),
                used: 0,
                peak: 0,
                active: 0,
            }),
            caches: [const { ThreadCache::new() }; CACHES],
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
    #[inline]
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
    #[inline]
    pub unsafe fn dealloc(&self, ptr: *mut u8, size: usize, align: usize) {
        // SAFETY: forwarded caller contract.
        unsafe { self.dealloc_raw(ptr, size, align) }
    }

    /// Allocates a zeroed block for any layout (small or large).
    #[inline]
    pub(crate) fn alloc_raw(&self, size: usize, align: usize) -> *mut u8 {
        if is_small(size, align) {
            let p = self.alloc_class(class_of(size, align));
            if !p.is_null() {
                // SAFETY: a block of the witness class of `size`.
                unsafe { set_canary(p, size) };
            }
            p
        } else {
            self.alloc_large(size, align)
        }
    }

    /// Allocates one zeroed block of a size class, without its canary (the
    /// caller writes it): from the calling thread's cache when it has one,
    /// else under the lock.
    #[inline]
    fn alloc_class(&self, class: usize) -> *mut u8 {
        let i = heap::owned_index();
        if let Some(c) = self.caches.get(i) {
            // SAFETY: cache `i` belongs to the calling thread, the owner of
            // heap `i` (module docs); its blocks are wiped free blocks of
            // ours whose encoded link is their only non-zero word.
            unsafe {
                let cc = c.entry(class);
                if (*cc).head.is_null() && !(*cc).full.is_null() {
                    (*cc).head = (*cc).full;
                    (*cc).len = (*cc).batch;
                    (*cc).full = ptr::null_mut();
                }
                let b = (*cc).head;
                if !b.is_null() {
                    (*cc).head = load_link(link(b));
                    // `len` may overstate the list (never understate it) in
                    // a forked child, where wipe-on-fork zeroed the links:
                    // wrapping keeps that harmless and panic-free.
                    (*cc).len = (*cc).len.wrapping_sub(1);
                    (*b).next = ptr::null_mut();
                    let net = &(*cc).net;
                    net.store(net.load(Relaxed).wrapping_add(1), Relaxed);
                    return b.cast();
                }
                return self.refill(i, class);
            }
        }
        self.alloc_locked(class)
    }

    /// Allocates a block of `class` under the lock (threads without a cache).
    #[cold]
    #[inline(never)]
    fn alloc_locked(&self, class: usize) -> *mut u8 {
        let mut g = self.inner.lock();
        let p = self.take_locked(&mut g, class, true);
        if !p.is_null() {
            self.account_locked(&mut g, CLASS_SIZE[class] as isize);
        }
        p
    }

    /// Takes a zeroed block of `class` from the shared lists or the current
    /// chunk's fresh space (committing a new run, in a new chunk if `grow`).
    /// Null when there is none.
    fn take_locked(&self, g: &mut Inner, class: usize, grow: bool) -> *mut u8 {
        let bs = CLASS_SIZE[class] as usize;
        let b = g.free[class];
        if !b.is_null() {
            // SAFETY: `b` is a wiped free block of ours; clearing its link
            // makes it entirely zero again.
            unsafe {
                g.free[class] = load_link(link(b));
                (*b).next = ptr::null_mut();
            }
            return b.cast();
        }
        let h = g.batches[class];
        if !h.is_null() {
            // SAFETY: `h` heads a batch of wiped blocks of ours; its block is
            // handed out (both link words cleared) and the rest of its chain,
            // which ends in null, becomes the one-by-one list (empty here).
            unsafe {
                g.batches[class] = load_link(batch_link(h)).cast();
                g.free[class] = load_link(link(h.cast()));
                (*h).next = ptr::null_mut();
                (*h).next_batch = ptr::null_mut();
            }
            return h.cast();
        }
        // Fresh blocks come from the class's current *run*: a stretch of
        // the chunk that holds only this class (as a page does in a heap).
        // Blocks of one class are then neighbours, and a prover that frees
        // and re-allocates the same sequence walks each class in address
        // order; blocks of every class interleaved in one bump region cost
        // cache and TLB misses (see docs/design/witness-arena.md).
        if (g.run[class].is_null() || g.run[class].addr() + bs > g.run_end[class]) && !self.new_run(g, class, grow) {
            return ptr::null_mut();
        }
        let p = g.run[class];
        // SAFETY: `p + bs <= run_end`, inside the current run.
        g.run[class] = unsafe { p.add(bs) };
        p
    }

    /// Starts a new run for `class` in the current chunk (in a new chunk if
    /// it has no room and `grow`): commits and locks it, with the page
    /// before and after it inaccessible, and places its blocks so that the
    /// last one ends at the run's end.
    fn new_run(&self, g: &mut Inner, class: usize, grow: bool) -> bool {
        let bs = CLASS_SIZE[class] as usize;
        // Power-of-two classes need their own alignment (as in pages); the
        // rest need 16, which every run start has.
        let align = if bs.is_power_of_two() { bs.max(page()) } else { page() };
        let len = run_len(bs, g.grown[class]);
        let start_after = |bump: usize| (bump + page()).next_multiple_of(align);
        let fits = |g: &Inner, start: usize| {
            // SAFETY: a non-null `small` is a live chunk of ours; the
            // caller holds the lock.
            !g.small.is_null() && start + len <= unsafe { (*g.small).base.addr() + (*g.small).len }
        };
        let mut start = start_after(g.bump);
        if !fits(g, start) {
            if !grow || !self.grow_small(g) {
                return false;
            }
            start = start_after(g.bump);
            if !fits(g, start) {
                return false;
            }
        }
        let h = g.small;
        // SAFETY: `h` is our live current chunk (it fits the run).
        let (base, end) = unsafe { ((*h).base, (*h).base.addr() + (*h).len) };
        // A reused chunk may still have pages committed where the new layout
        // puts the gaps: make them guards again.
        let after = (start + len + page()).min(end);
        // SAFETY: both ranges lie in our chunk, outside every run still in
        // use (runs are laid out in address order from the chunk's start).
        let freed = unsafe {
            make_guard(h, g.bump.max(base.addr()), start - g.bump.max(base.addr()))
                + make_guard(h, start + len, after - (start + len))
        };
        self.committed_sub(freed);
        let mut committed = true;
        let mut a = start;
        while a < start + len {
            committed &= is_committed(a);
            a += UNIT;
        }
        if !committed {
            let mut locked = false;
            // SAFETY: inside our chunk, not committed to anything live.
            match unsafe { commit_range(h, base.with_addr(start), len, &mut locked) } {
                Ok(added) => self.committed.fetch_add(added, Relaxed),
                Err(lost) => {
                    self.committed_sub(lost);
                    return false;
                }
            };
            self.note_lock(locked);
        }
        let first = start + len % bs;
        g.run[class] = base.with_addr(first);
        g.run_end[class] = start + len;
        g.grown[class] = g.grown[class].saturating_add(1);
        g.bump = start + len;
        // The chunk records how far it was used, so that `secure_wipe`
        // knows what to wipe.
        // SAFETY: `h` is our live current chunk; we hold the lock.
        unsafe { (*h).block_len = g.bump - base.addr() };
        g.check();
        true
    }

    /// The arena's total as far as the lock holder can see it cheaply: the
    /// locked lists' bytes plus every active cache's last sample.
    fn sampled_total(&self, g: &Inner) -> usize {
        let mut sum = g.used;
        let mut bits = g.active;
        while bits != 0 {
            let j = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            sum = sum.wrapping_add(self.caches[j].sample.load(Relaxed));
        }
        sum
    }

    /// Raises the peak to `total` if higher (both may have wrapped below
    /// zero transiently: compared as signed).
    fn raise_peak(g: &mut Inner, total: usize) {
        if (total as isize) > (g.peak as isize) {
            g.peak = total;
        }
    }

    /// At a batch trade of cache `i` for `class` (lock held): folds the
    /// class's change since its last trade into the cache's sample and
    /// samples the peak. So `peak` is the highest total seen at batch
    /// trades, locked operations and `stats` calls: it can miss what a
    /// thread's cache handed out since its last trade (at most a batch per
    /// class), a price for alloc and free touching one line only.
    ///
    /// # Safety
    /// Cache `i` must belong to the calling thread.
    unsafe fn sample(&self, g: &mut Inner, i: usize, class: usize) {
        let c = &self.caches[i];
        let cc = c.entry(class);
        // SAFETY: caller contract: the entry is ours to write.
        let delta = unsafe {
            let net = (*cc).net.load(Relaxed);
            let d = net.wrapping_sub((*cc).traded);
            (*cc).traded = net;
            d
        };
        let bytes = (delta as isize as usize).wrapping_mul(CLASS_SIZE[class] as usize);
        c.sample.store(c.sample.load(Relaxed).wrapping_add(bytes), Relaxed);
        g.active |= 1 << i;
        let total = self.sampled_total(g);
        Self::raise_peak(g, total);
    }

    /// Accounts `delta` bytes taken or given back under the lock.
    fn account_locked(&self, g: &mut Inner, delta: isize) {
        g.used = g.used.wrapping_add_signed(delta);
        if delta > 0 {
            let total = self.sampled_total(g);
            Self::raise_peak(g, total);
        }
    }

    /// An empty cache `i` of the calling thread: takes a whole batch under
    /// the lock (O(1)), hands its first block out and keeps the rest; with
    /// no batch it takes a block as the locked path does, plus what fits of
    /// a batch from the class's current run of fresh blocks.
    ///
    /// A batch keeps its order and [`spill`](Self::spill) hands back the
    /// older of a cache's two lists, so the cache stays the top of one LIFO
    /// stack per class, as if there were no cache; fresh blocks are listed
    /// in address order. That matters: a prover repeating the same
    /// allocation sequence then walks each class's blocks in address order,
    /// which the hardware prefetcher follows (see
    /// docs/design/witness-arena.md).
    ///
    /// # Safety
    /// Cache `i` must belong to the calling thread.
    #[cold]
    #[inline(never)]
    unsafe fn refill(&self, i: usize, class: usize) -> *mut u8 {
        let c = &self.caches[i];
        let mut g = self.inner.lock();
        let h = g.batches[class];
        let (p, rest, n) = if h.is_null() {
            let p = self.take_locked(&mut g, class, true);
            if p.is_null() {
                return p;
            }
            let bs = CLASS_SIZE[class] as usize;
            let (mut head, mut tail) = (ptr::null_mut::<Block>(), ptr::null_mut::<Block>());
            let mut n = 0u16;
            while n + 1 < batch(class) && !g.run[class].is_null() && g.run[class].addr() + bs <= g.run_end[class] {
                let b = g.run[class].cast::<Block>();
                // SAFETY: `b + bs <= run_end`: a fresh (zero) block of the
                // run, inside the current chunk; its zero link ends the list.
                unsafe {
                    g.run[class] = g.run[class].add(bs);
                    if tail.is_null() {
                        head = b;
                    } else {
                        store_link(link(tail), b);
                    }
                }
                tail = b;
                n += 1;
            }
            (p, head, n)
        } else {
            // SAFETY: `h` heads a batch of `batch(class)` wiped blocks of
            // ours, its chain ending in null; we hold the lock. The handed-
            // out block gets both link words cleared.
            unsafe {
                g.batches[class] = load_link(batch_link(h)).cast();
                let rest = load_link(link(h.cast()));
                (*h).next = ptr::null_mut();
                (*h).next_batch = ptr::null_mut();
                (h.cast::<u8>(), rest, batch(class) - 1)
            }
        };
        // SAFETY: caller contract: the cache is ours; this class's lists
        // were both empty.
        unsafe {
            let cc = c.entry(class);
            (*cc).head = rest;
            (*cc).len = n;
            (*cc).batch = BATCH[class];
            let net = &(*cc).net;
            net.store(net.load(Relaxed).wrapping_add(1), Relaxed);
            self.sample(&mut g, i, class);
        }
        drop(g);
        p
    }

    /// Hands a cache's reserve batch (`batch(class)` blocks, its chain
    /// ending in null) to the shared stack of batches: a free into a cache
    /// whose current list and reserve are both full. The reserve is the
    /// older of the two, so the cache stays the top of one LIFO stack per
    /// class (see [`refill`](Self::refill)).
    ///
    /// # Safety
    /// `first` must head such a batch, taken out of the calling thread's
    /// cache `i`.
    #[cold]
    #[inline(never)]
    unsafe fn spill(&self, i: usize, first: *mut Block, class: usize) {
        let first = first.cast::<BatchHead>();
        let mut g = self.inner.lock();
        // SAFETY: caller contract; the batch's first block gets its second
        // word set (cleared again when it is handed out).
        unsafe {
            store_link(batch_link(first), g.batches[class].cast());
            self.sample(&mut g, i, class);
        }
        g.batches[class] = first;
    }

    /// Makes a new current chunk for small blocks: a spare one if there is
    /// one, else a newly claimed one (committed run by run).
    fn grow_small(&self, g: &mut Inner) -> bool {
        let h = if g.spare.is_null() {
            let mut prot = Protection::default();
            let h = new_chunk(1, &mut prot);
            if h.is_null() {
                return false;
            }
            self.note_chunk(&prot);
            h
        } else {
            let h = g.spare;
            // SAFETY: spare chunks are ours, wiped and unused.
            g.spare = unsafe { (*h).next };
            h
        };
        // SAFETY: `h` is a fresh or spare chunk of ours, unused.
        unsafe {
            (*h).next = g.small;
            (*h).block_len = 0;
            g.small = h;
            g.bump = (*h).base.addr() - page();
        }
        true
    }

    /// Records a new chunk's protections.
    fn note_chunk(&self, prot: &Protection) {
        self.dump_excluded.store(prot.dont_dump, Relaxed);
        self.fork_wiped.store(prot.wipe_on_fork, Relaxed);
    }

    /// Records whether newly committed memory was locked.
    fn note_lock(&self, locked: bool) {
        if locked {
            self.locked_any.store(true, Relaxed);
        } else {
            self.lock_failed.store(true, Relaxed);
        }
    }

    /// Lowers the committed figure; saturating, because a forked child may
    /// release chunks that its own counters never saw.
    fn committed_sub(&self, n: usize) {
        let _ = self
            .committed
            .fetch_update(Relaxed, Relaxed, |c| Some(c.saturating_sub(n)));
    }

    /// A large block: a chunk of its own, the block placed against the
    /// trailing guard and only the pages from the block's first on
    /// committed, so the page before it is a guard too; the bytes between
    /// that page's start and the block, and the rounding after it, are
    /// canary bytes.
    fn alloc_large(&self, size: usize, align: usize) -> *mut u8 {
        if align > SLOT {
            return ptr::null_mut();
        }
        let Some(block_len) = size.max(1).checked_next_multiple_of(page()) else {
            return ptr::null_mut();
        };
        // block + alignment slack + two guards, in slots. The chunk's first
        // byte is page aligned, so only an alignment above the page needs
        // slack (the block is placed down from the chunk's end).
        let slack = if align > page() { align } else { 0 };
        let Some(need) = block_len.checked_add(slack + 2 * page()) else {
            return ptr::null_mut();
        };
        // More slots than the region holds: `new_chunk`'s claim refuses.
        let slots = need.div_ceil(SLOT);
        let mut prot = Protection::default();
        let h = new_chunk(slots, &mut prot);
        if h.is_null() {
            return h.cast();
        }
        self.note_chunk(&prot);
        // SAFETY: `h` is a fresh chunk of ours; the block and its first page
        // lie inside it (the chunk has room for the block's pages plus the
        // alignment).
        unsafe {
            let base = (*h).base;
            let end = base.addr() + (*h).len;
            let start = (end - size.max(1)) & !(align.max(16) - 1);
            let from = start & !(page() - 1);
            let mut locked = false;
            // A fresh chunk: nothing was committed in it before.
            let Ok(added) = commit_range(h, base.with_addr(from), end - from, &mut locked) else {
                drop_chunk(h, false);
                return ptr::null_mut();
            };
            self.note_lock(locked);
            self.committed.fetch_add(added, Relaxed);
            let p = base.with_addr(start);
            fill_canary(base.with_addr(from), start - from);
            fill_canary(p.add(size), end - start - size);
            (*h).block = p;
            (*h).block_len = end - start;
            ChunkHeader::check(h);
            let mut g = self.inner.lock();
            (*h).next = g.large;
            g.large = h;
            self.account_locked(&mut g, (end - from) as isize);
            p
        }
    }

    /// Wipes and frees a block of `size` bytes and alignment `align`,
    /// first checking its canary.
    ///
    /// # Safety
    /// `p` must be a live block of this arena allocated with that layout.
    #[inline]
    pub(crate) unsafe fn dealloc_raw(&self, p: *mut u8, size: usize, align: usize) {
        if !is_small(size, align) {
            // SAFETY: forwarded caller contract.
            return unsafe { self.dealloc_large(p, size) };
        }
        let class = class_of(size, align);
        // Only the requested bytes and the canary can hold data: the block
        // was zero when handed out and the rest of it belongs to no one.
        // (An in-place shrink wipes what it cuts off.)
        // The canary is read first and compared after the wipe: the read
        // is often a cache miss (the block's tail), and this way it overlaps
        // with the wipe instead of stalling before it (see
        // docs/design/witness-arena.md).
        // SAFETY: caller contract: a live block of the witness class of
        // `size`, which holds `size + CANARY` bytes.
        unsafe {
            let seen = p.add(size).cast::<u64>().read_unaligned();
            os::secure_zero(p, size + CANARY);
            if seen != canary(p) {
                overflowed(p, size);
            }
        }
        let b = p.cast::<Block>();
        let i = heap::owned_index();
        let Some(c) = self.caches.get(i) else {
            // SAFETY: `b` is a wiped block of `class`.
            return unsafe { self.free_locked(b, class) };
        };
        // SAFETY: cache `i` belongs to the calling thread (module docs); `b`
        // is wiped, and its encoded link becomes its only non-zero word.
        unsafe {
            let cc = c.entry(class);
            if (*cc).len == (*cc).batch {
                if (*cc).batch == 0 {
                    (*cc).batch = BATCH[class];
                } else {
                    if !(*cc).full.is_null() {
                        self.spill(i, (*cc).full, class);
                    }
                    (*cc).full = (*cc).head;
                    (*cc).head = ptr::null_mut();
                    (*cc).len = 0;
                }
            }
            store_link(link(b), (*cc).head);
            (*cc).head = b;
            (*cc).len += 1;
            let net = &(*cc).net;
            net.store(net.load(Relaxed).wrapping_sub(1), Relaxed);
        }
    }

    /// Resizes the small block `p` of `old` requested bytes to `new` in
    /// place if both sizes share a witness class: checks the canary, wipes
    /// what the block no longer holds and writes the canary at the new end.
    /// False (nothing done) otherwise.
    ///
    /// # Safety
    /// `p` must be a live block of this arena allocated with `old` bytes and
    /// alignment `align`.
    pub(crate) unsafe fn resize_in_place(&self, p: *mut u8, old: usize, new: usize, align: usize) -> bool {
        if !is_small(old, align) || !is_small(new, align) || class_of(old, align) != class_of(new, align) {
            return false;
        }
        // SAFETY: caller contract: the class holds `max(old, new) + CANARY`
        // bytes; the bytes from `new` on are no longer the caller's.
        unsafe {
            check_canary(p, old);
            if new < old {
                os::secure_zero(p.add(new), old - new + CANARY);
            } else {
                os::secure_zero(p.add(old), CANARY);
            }
            set_canary(p, new);
        }
        true
    }

    /// Frees a wiped small block under the lock (threads without a cache).
    ///
    /// # Safety
    /// `b` must be a wiped block of `class` of this arena, no longer used.
    #[cold]
    #[inline(never)]
    unsafe fn free_locked(&self, b: *mut Block, class: usize) {
        let mut g = self.inner.lock();
        // SAFETY: caller contract: the link becomes its only non-zero word.
        unsafe { store_link(link(b), g.free[class]) };
        g.free[class] = b;
        self.account_locked(&mut g, -(CLASS_SIZE[class] as isize));
    }

    /// Frees a large block of `size` bytes: its canary bytes are checked,
    /// its chunk wiped and returned to the OS.
    ///
    /// # Safety
    /// `p` must be a live large block of this arena.
    #[cold]
    #[inline(never)]
    unsafe fn dealloc_large(&self, p: *mut u8, size: usize) {
        let mut g = self.inner.lock();
        let mut link: *mut *mut ChunkHeader = &mut g.large;
        // SAFETY: we walk our own list of large chunks under the lock.
        unsafe {
            while !(*link).is_null() {
                let h = *link;
                if (*h).block == p {
                    let end = p.addr() + (*h).block_len;
                    let head = p.addr() % page();
                    if !canary_intact(p.sub(head), head) || !canary_intact(p.add(size), end - p.addr() - size) {
                        overflowed(p, size);
                    }
                    *link = (*h).next;
                    let committed = (*h).committed;
                    self.account_locked(&mut g, -(committed as isize));
                    drop(g);
                    drop_chunk(h, true);
                    self.committed_sub(committed);
                    return;
                }
                link = &mut (*h).next;
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
    /// arena may still be alive). No other thread may allocate from or free
    /// into the arena while this runs, and their earlier and later uses of
    /// it must be ordered with this call (threads joined, or synchronised
    /// through a lock or channel): the call empties every thread's cache.
    pub unsafe fn secure_wipe(&self) {
        for c in &self.caches {
            // SAFETY: caller contract: no thread uses its cache meanwhile.
            unsafe {
                for class in 0..NUM_CLASSES {
                    let cc = c.entry(class);
                    (*cc).head = ptr::null_mut();
                    (*cc).full = ptr::null_mut();
                    (*cc).len = 0;
                    (*cc).batch = 0;
                    (*cc).traded = 0;
                    (*cc).net.store(0, Relaxed);
                }
            }
            c.sample.store(0, Relaxed);
        }
        let mut g = self.inner.lock();
        // SAFETY: caller contract: no block is in use; the chunks are ours.
        unsafe {
            let mut h = g.small;
            while !h.is_null() {
                let base = (*h).base;
                for_each_committed(base.addr(), (*h).block_len, |p, n| {
                    os::secure_zero(base.with_addr(p), n)
                });
                (*h).block_len = 0;
                h = (*h).next;
            }
            g.free = [ptr::null_mut(); NUM_CLASSES];
            g.batches = [ptr::null_mut(); NUM_CLASSES];
            g.run = [ptr::null_mut(); NUM_CLASSES];
            g.run_end = [0; NUM_CLASSES];
            g.grown = [0; NUM_CLASSES];
            let mut h = g.large;
            g.large = ptr::null_mut();
            drop(g);
            while !h.is_null() {
                let next = (*h).next;
                let committed = (*h).committed;
                drop_chunk(h, true);
                self.committed_sub(committed);
                h = next;
            }
        }
        // The oldest small chunk is the bump target again and the newer
        // ones (zero now) become spares, reused in the order they were first
        // used before any new chunk is claimed: a prover that wipes after
        // every proof repeats its layout, finds its runs committed and does
        // not fault or lock its chunks again.
        let mut g = self.inner.lock();
        // SAFETY: the chunks are ours and hold no live block.
        unsafe {
            let mut h = g.small;
            let mut oldest = ptr::null_mut();
            while !h.is_null() {
                let next = (*h).next;
                if next.is_null() {
                    oldest = h;
                } else {
                    (*h).next = g.spare;
                    g.spare = h;
                }
                h = next;
            }
            g.small = oldest;
            if !oldest.is_null() {
                (*oldest).next = ptr::null_mut();
                g.bump = (*oldest).base.addr() - page();
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
            let mut g = self.inner.lock();
            // Every cache, not only the active ones: a thread that only
            // freed into its cache holds a negative share.
            let used = self.caches.iter().fold(g.used, |sum, c| sum.wrapping_add(c.used()));
            // Figures read while other threads work may be momentarily
            // inconsistent (a block counted by neither or both caches).
            let used = if (used as isize) < 0 { 0 } else { used };
            let peak = g.peak;
            let peak = peak.max(used);
            g.peak = peak;
            (used, peak)
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
        let (small, spare) = (g.small, g.spare);
        drop(g);
        for mut h in [small, spare] {
            while !h.is_null() {
                // SAFETY: wiped above and no longer referenced; the link is
                // read before the chunk goes.
                unsafe {
                    let next = (*h).next;
                    self.committed_sub((*h).committed);
                    drop_chunk(h, false);
                    h = next;
                }
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A run's length: a whole number of pages and, where that fits a chunk
    /// twice, of blocks too (so its last block ends against the guard);
    /// `RUN_BLOCKS` blocks within `RUN_MIN..RUN_MAX` at first, doubling with
    /// each run up to `WITNESS_RUN_GROWN_MAX`, never less than one block.
    #[test]
    fn run_lengths_follow_the_policy() {
        let pg = page();
        for bs in [16, 48, 80, 4096, 4104, 40_000, 65_536] {
            let first = run_len(bs, 0);
            assert_eq!(first % pg, 0, "{bs}: not whole pages");
            assert!(first >= bs, "{bs}: shorter than a block");
            let lcm = bs / gcd(bs, pg) * pg;
            if lcm <= (SLOT - 2 * pg) / 2 {
                assert_eq!(first % bs, 0, "{bs}: not whole blocks");
            }
            // At least the policy's blocks, as far as RUN_MAX allows, and
            // no more than one rounding unit above it.
            let want = (bs * RUN_BLOCKS).clamp(RUN_MIN, RUN_MAX).max(bs);
            assert!(first >= want && first < want + lcm.max(pg), "{bs}: {first} for {want}");
            let mut prev = first;
            for g in 1..=10u8 {
                let n = run_len(bs, g);
                let cap = crate::policy::WITNESS_RUN_GROWN_MAX.max(want);
                assert!(n >= prev, "{bs}/{g}: runs shrink");
                assert!(n >= (want << g).min(cap), "{bs}/{g}: {n} does not double");
                assert!(n < cap + lcm.max(pg), "{bs}/{g}: {n} over the cap {cap}");
                prev = n;
            }
        }
        // Two concrete cases (4 KiB pages): 48-byte blocks get 3 pages (the
        // least common multiple of 48 and 4096); 4 KiB blocks 16 of them.
        if pg == 4096 {
            assert_eq!(run_len(48, 0), 12_288);
            assert_eq!(run_len(4096, 0), 65_536);
            assert_eq!(run_len(4096, 1), 131_072);
        }
        // The bound itself: a block of 16 x odd m bytes has a least common
        // multiple with the page of m pages. The largest such m within the
        // bound gives whole blocks; the smallest beyond it, pages only.
        let bound = (SLOT - 2 * pg) / 2;
        let odd_at_most = |m: usize| m - (m + 1) % 2;
        let (below, above) = (16 * odd_at_most(bound / pg), 16 * odd_at_most(bound / pg + 2));
        assert!(below / 16 * pg <= bound && above / 16 * pg > bound);
        assert_eq!(run_len(below, 0) % below, 0, "{below}: whole blocks within the bound");
        let want = (above * RUN_BLOCKS).clamp(RUN_MIN, RUN_MAX).max(above);
        assert!(run_len(above, 0) < want + pg, "{above}: rounded past a page");
    }

    /// Blocks a cache trades per batch: `BATCH_BYTES` worth, at least one,
    /// at most `BATCH_MAX`; the table the free path reads holds them all.
    #[test]
    fn batches_follow_the_policy() {
        for c in 0..NUM_CLASSES {
            let want = (BATCH_BYTES / CLASS_SIZE[c] as usize).clamp(1, BATCH_MAX);
            assert_eq!(batch(c) as usize, want, "class {c}");
            assert_eq!(BATCH[c], batch(c), "class {c}");
        }
    }

    /// Runs stay inside their chunk: once a chunk has no room for the next
    /// run, a new chunk is made, never a run over the chunk's end (its
    /// trailing guard and the slots beyond).
    #[test]
    fn runs_stay_inside_their_chunks() {
        let w = WitnessArena::new();
        let size = 20_000;
        let blocks: Vec<*mut u8> = (0..200).map(|_| w.alloc(size, 8)).collect();
        assert!(blocks.iter().all(|p| !p.is_null()));
        let mut chunks = Vec::new();
        {
            let g = w.inner.lock();
            let mut h = g.small;
            while !h.is_null() {
                // SAFETY: the arena's live chunk list, read under its lock.
                unsafe {
                    chunks.push(((*h).base.addr(), (*h).base.addr() + (*h).len));
                    h = (*h).next;
                }
            }
        }
        assert!(chunks.len() >= 2, "{} chunks", chunks.len());
        for p in &blocks {
            let inside = chunks
                .iter()
                .any(|&(lo, hi)| p.addr() >= lo && p.addr() + size + CANARY <= hi);
            assert!(inside, "block {p:?} is outside every chunk {chunks:x?}");
        }
        for p in blocks {
            // SAFETY: blocks just allocated with this layout, freed once.
            unsafe { w.dealloc(p, size, 8) };
        }
    }

    /// `capacity` is the committed memory, page for page, through new runs,
    /// a wipe, a second layout over the wiped chunks (whose old runs must
    /// become gaps again) and large blocks coming and going.
    #[test]
    fn capacity_counts_the_committed_pages() {
        fn committed_pages(w: &WitnessArena) -> usize {
            let g = w.inner.lock();
            let mut total = 0;
            for mut h in [g.small, g.spare, g.large] {
                while !h.is_null() {
                    // SAFETY: the arena's live chunk lists, read under its lock.
                    unsafe {
                        for_each_committed((*h).base.addr(), (*h).len, |_, n| total += n);
                        h = (*h).next;
                    }
                }
            }
            total
        }
        let w = WitnessArena::new();
        let check = |what: &str| assert_eq!(w.stats().capacity, committed_pages(&w), "{what}");
        let take = |sizes: &[usize], n: usize| -> Vec<(*mut u8, usize)> {
            let v: Vec<_> = (0..n).flat_map(|_| sizes.iter().map(|&s| (w.alloc(s, 8), s))).collect();
            assert!(v.iter().all(|b| !b.0.is_null()));
            v
        };
        let give = |v: Vec<(*mut u8, usize)>| {
            for (p, s) in v {
                // SAFETY: blocks of this arena with this layout, freed once.
                unsafe { w.dealloc(p, s, 8) };
            }
        };
        let first = take(&[24, 100, 3000, 9000, 40_000], 40);
        check("first layout");
        give(first);
        // SAFETY: no block of the arena is in use.
        unsafe { w.secure_wipe() };
        check("after the wipe");
        let second = take(&[5000, 60, 20_000, 16, 1500], 50);
        check("second layout over the wiped chunks");
        let large = take(&[100_000, 3 << 20], 3);
        check("with large blocks");
        give(large);
        check("large blocks freed");
        give(second);
        check("all freed");
    }

    /// The peak remembers the high-water mark after everything is freed:
    /// it is sampled at batch trades and locked operations, so it may miss
    /// at most a batch per class of what a cache handed out since its last
    /// trade.
    #[test]
    fn the_peak_outlives_the_blocks() {
        let w = WitnessArena::new();
        let (size, n) = (1000, 400);
        let blocks: Vec<*mut u8> = (0..n).map(|_| w.alloc(size, 8)).collect();
        assert!(blocks.iter().all(|p| !p.is_null()));
        for p in blocks {
            // SAFETY: blocks just allocated with this layout, freed once.
            unsafe { w.dealloc(p, size, 8) };
        }
        let st = w.stats();
        assert_eq!(st.used, 0);
        let bs = CLASS_SIZE[class_of(size, 8)] as usize;
        let high = n * bs;
        assert!(
            st.peak <= high && st.peak + BATCH_MAX * bs >= high,
            "peak {} for {high}",
            st.peak
        );
    }

    /// A large block takes the fewest slots that hold it, its alignment
    /// slack (above the page only) and two guards, and lies inside its
    /// chunk, aligned; `used` counts its committed pages while it lives and
    /// nothing after. Alignments up to a slot are served, larger ones not.
    #[test]
    fn large_blocks_take_the_fewest_slots_and_stay_inside_them() {
        let w = WitnessArena::new();
        let pg = page();
        let mut live = Vec::new();
        for align in [16, pg, 4 * pg, SLOT] {
            let slack = if align > pg { align } else { 0 };
            let first = if slack == SLOT { 2 } else { 1 };
            for k in first..=first + 1 {
                let edge = k * SLOT - 2 * pg - slack;
                for size in [
                    edge - pg - 1,
                    edge - 16,
                    edge - 1,
                    edge,
                    edge + 1,
                    edge + 16,
                    edge + pg + 1,
                ] {
                    let p = w.alloc(size, align);
                    assert!(!p.is_null(), "size {size} align {align}");
                    assert_eq!(p.addr() % align, 0, "size {size} align {align}");
                    let g = w.inner.lock();
                    let h = g.large;
                    // SAFETY: the newest large chunk, read under the lock.
                    let (base, len, slots, committed) =
                        unsafe { ((*h).base.addr(), (*h).len, (*h).slots, (*h).committed) };
                    drop(g);
                    assert!(
                        p.addr() >= base && p.addr() + size <= base + len,
                        "size {size} align {align}"
                    );
                    let want = (size.next_multiple_of(pg) + slack + 2 * pg).div_ceil(SLOT);
                    assert_eq!(slots, want, "size {size} align {align}");
                    live.push((p, size, align, committed));
                }
            }
        }
        // No `stats` call before the frees: the peak must come from the
        // allocations' own accounting.
        let committed: usize = live.iter().map(|b| b.3).sum();
        for (p, size, align, _) in live {
            // SAFETY: blocks just allocated with this layout, freed once.
            unsafe { w.dealloc(p, size, align) };
        }
        let st = w.stats();
        assert_eq!((st.used, st.peak), (0, committed));
        let p = w.alloc(100_000, 16);
        // SAFETY: the newest large chunk, read under the lock.
        let one = unsafe { (*w.inner.lock().large).committed };
        assert_eq!(w.stats().used, one);
        // SAFETY: as above.
        unsafe { w.dealloc(p, 100_000, 16) };
        assert_eq!(w.stats().used, 0);
        assert!(w.alloc(100_000, 2 * SLOT).is_null());
        assert!(w.alloc(SLOTS * SLOT, 16).is_null(), "more than the region");
    }

    /// Dropping an arena gives its chunks back: none of its pages stays
    /// committed.
    #[test]
    fn a_dropped_arena_gives_its_chunks_back() {
        let w = WitnessArena::new();
        let blocks: Vec<usize> = [24, 3000, 40_000, 200_000]
            .iter()
            .map(|&s| w.alloc(s, 8).addr())
            .collect();
        assert!(blocks.iter().all(|&p| p != 0 && is_committed(p)));
        drop(w);
        for p in blocks {
            assert!(!is_committed(p), "{p:#x} still committed");
        }
    }

    /// `fork_lock` holds the scope arena's lock (and the region's) until
    /// `fork_unlock`: a fork must not split either.
    #[test]
    fn fork_lock_holds_the_scope_arena() {
        fork_lock();
        let held = SCOPE_ARENA.inner.try_lock().is_none();
        // SAFETY: after fork_lock, in this process.
        unsafe { fork_unlock() };
        assert!(held);
    }

    /// A fresh run of one class is used up to its last block before the
    /// next run starts (the last block ends against the guard); the lock's
    /// path (this test's thread has no cache) counts every block in `used`.
    #[test]
    fn a_run_is_filled_to_its_end_and_counted() {
        let w = WitnessArena::new();
        let class = class_of(40, 8);
        let bs = CLASS_SIZE[class] as usize;
        let per_run = run_len(bs, 0) / bs;
        let blocks: Vec<*mut u8> = (0..per_run + 1).map(|_| w.alloc(40, 8)).collect();
        assert!(blocks.iter().all(|p| !p.is_null()));
        for i in 1..per_run {
            assert_eq!(blocks[i].addr(), blocks[i - 1].addr() + bs, "block {i} left its run");
        }
        assert_ne!(
            blocks[per_run].addr(),
            blocks[per_run - 1].addr() + bs,
            "the run ran past its end"
        );
        assert!(w.stats().used >= (per_run + 1) * bs, "{:?}", w.stats().used);
        for p in blocks {
            // SAFETY: blocks just allocated with this layout, freed once.
            unsafe { w.dealloc(p, 40, 8) };
        }
        assert_eq!(w.stats().used, 0);
    }

    /// Requests up to 64 KiB less the canary are small, larger ones not.
    #[test]
    fn small_requests_leave_room_for_the_canary() {
        assert!(is_small(1, 8) && is_small(10_000, 8));
        assert!(is_small(size_class::SMALL_MAX - CANARY, 8));
        assert!(!is_small(size_class::SMALL_MAX - CANARY + 1, 8));
    }

    /// A large block's slack is filled with the key's bytes in address
    /// order, so any eight aligned slack bytes read back as the key.
    #[test]
    fn canary_bytes_spell_the_key() {
        let _ = CANARY_KEY.get();
        let bytes: [u8; 8] = core::array::from_fn(|i| canary_byte(4096 + i));
        assert_eq!(u64::from_le_bytes(bytes), CANARY_KEY.peek() as u64);
    }

    /// `readable` says whether a range is committed witness memory: the
    /// bytes of a live large block up to its end, which lies against the
    /// trailing guard, but not a range that runs into the guard or the
    /// page before the block.
    #[test]
    fn readable_stops_at_the_guards() {
        let w = WitnessArena::new();
        let size = 16 * page();
        let p = w.alloc(size, 8);
        assert!(!p.is_null());
        let end = p.wrapping_add(size);
        assert!(readable(p, 16));
        assert!(readable(end.wrapping_sub(16), 16));
        assert!(readable(end.wrapping_sub(1), 1));
        assert!(!readable(end.wrapping_sub(8), 16), "runs into the trailing guard");
        assert!(!readable(end, 1), "the trailing guard");
        assert!(!readable(p.wrapping_sub(1), 2), "the page before the block");
        // SAFETY: the block just allocated, with its layout.
        unsafe { w.dealloc(p, size, 8) };
        assert!(!readable(p, 16), "a released chunk");
    }
}
