//! Tests of the allocator's data structures that also run under Miri
//! (`cargo +nightly miri test --lib miri_tests`), where the OS layer takes
//! its memory from `std::alloc::System`.
//!
//! They drive the engine through crate-internal APIs — a local `NAlloc`
//! called through `GlobalAlloc` (it is *not* the global allocator of the
//! test binary), the arenas and `raw` — so that Miri checks every pointer
//! the engine derives, every cross-thread hand-over and every byte it
//! hands out. Sizes are small: under Miri the segment region has 4 slots
//! of 4 MiB and the witness region 8 slots of 1 MiB, and Miri interprets
//! every byte touched.
//!
//! The same tests run in the normal `cargo test --lib`, concurrently with
//! the other unit tests, so nothing here asserts exact process-wide
//! counters; a few placement checks only hold when tests run one at a
//! time (as under Miri) and are guarded by `cfg!(miri)`.
//!
//! The small-object path keeps no `&mut Page` / `&mut Segment` / `&mut
//! Heap` across accesses that other pointers make (block writes through
//! pointers derived from the segment, remote frees CAS-ing a page's
//! `thread_free`): its methods take raw-pointer receivers. Miri found the
//! earlier `&mut self` versions to be undefined behaviour under both borrow
//! models, which these tests now guard against.
//!
//! Large witness blocks are not made under Miri: each takes a 1 MiB chunk
//! that is zeroed and wiped whole, and Miri tracks every byte of it.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr;

use crate::arenas::witness;
use crate::front::raw;
use crate::small::size_class::{CLASS_SIZE, SMALL_MAX};
use crate::small::{heap, segment};
use crate::{NAlloc, ScratchArena, WitnessArena};

/// A byte of the pattern for `seed` at offset `i`.
fn pat(seed: u64, i: usize) -> u8 {
    (seed as usize).wrapping_mul(131).wrapping_add(i.wrapping_mul(7)) as u8
}

/// Writes the pattern over the first and last `edge` bytes of `p[..len]`
/// (all of it when short): enough to catch overlap without Miri
/// interpreting every byte of large blocks.
fn fill(p: *mut u8, len: usize, seed: u64) {
    for i in touched(len) {
        // SAFETY: callers pass blocks of at least `len` bytes.
        unsafe { p.add(i).write(pat(seed, i)) };
    }
}

/// Checks what [`fill`] wrote (up to `len` bytes).
fn check(p: *const u8, len: usize, seed: u64) -> bool {
    touched(len).all(|i| {
        // SAFETY: as in `fill`.
        unsafe { p.add(i).read() == pat(seed, i) }
    })
}

/// The offsets [`fill`] writes: all of a short block, both ends of a long one.
fn touched(len: usize) -> impl Iterator<Item = usize> {
    const EDGE: usize = 64;
    let head = len.min(EDGE);
    let tail_from = len.saturating_sub(EDGE).max(head);
    (0..head).chain(tail_from..len)
}

/// True if `len` bytes at `p` are all zero.
fn zero(p: *const u8, len: usize) -> bool {
    // SAFETY: callers pass a live block of at least `len` bytes.
    unsafe { core::slice::from_raw_parts(p, len) }.iter().all(|&b| b == 0)
}

fn layout(size: usize, align: usize) -> Layout {
    Layout::from_size_align(size, align).unwrap()
}

/// A live block of the local allocator, checked and freed on drop.
struct Live<'a> {
    a: &'a NAlloc,
    p: *mut u8,
    l: Layout,
    seed: u64,
}

impl<'a> Live<'a> {
    fn new(a: &'a NAlloc, l: Layout, seed: u64) -> Self {
        // SAFETY: non-zero sizes only (callers).
        let p = unsafe { a.alloc(l) };
        assert!(!p.is_null(), "alloc {l:?}");
        assert_eq!(p.addr() % l.align(), 0, "misaligned {l:?}");
        fill(p, l.size(), seed);
        Live { a, p, l, seed }
    }
}

// SAFETY: a `Live` owns its block alone, and blocks may be freed by any
// thread (the allocator is `Sync`).
unsafe impl Send for Live<'_> {}

impl Drop for Live<'_> {
    fn drop(&mut self) {
        assert!(check(self.p, self.l.size(), self.seed), "block {:?} corrupted", self.l);
        // SAFETY: allocated with `self.l` by `self.a`, freed once.
        unsafe { self.a.dealloc(self.p, self.l) };
    }
}

/// Asserts that no two of `blocks` (address, length) overlap.
fn assert_disjoint(blocks: &mut [(usize, usize)]) {
    blocks.sort_unstable();
    for w in blocks.windows(2) {
        assert!(w[0].0 + w[0].1 <= w[1].0, "blocks overlap: {:x?} and {:x?}", w[0], w[1]);
    }
}

#[test]
fn small_blocks_of_many_classes() {
    let a = NAlloc::new();
    // One size per class band, plus class edges; a handful of blocks each.
    let sizes = [
        1usize, 8, 16, 17, 33, 64, 100, 128, 129, 200, 256, 300, 511, 512, 1000, 2048, 3000, 4096, 5000, 8192, 12_000,
        16_384, 30_000, 40_000, SMALL_MAX,
    ];
    let mut live = Vec::new();
    for (k, &s) in sizes.iter().enumerate() {
        for j in 0..3 {
            live.push(Live::new(&a, layout(s, 1 << (k % 5)), (k * 10 + j) as u64));
        }
    }
    let mut spans: Vec<(usize, usize)> = live.iter().map(|b| (b.p.addr(), b.l.size())).collect();
    assert_disjoint(&mut spans);
    for b in &live {
        assert!(segment::contains(b.p), "small block outside the segment region");
    }
    // Free every other block, then reuse: freed blocks come back first.
    let mut keep = Vec::new();
    for (i, b) in live.into_iter().enumerate() {
        if i % 2 == 0 {
            drop(b);
        } else {
            keep.push(b);
        }
    }
    let again: Vec<Live> = sizes.iter().map(|&s| Live::new(&a, layout(s, 1), 99)).collect();
    let mut spans: Vec<(usize, usize)> = keep
        .iter()
        .chain(again.iter())
        .map(|b| (b.p.addr(), b.l.size()))
        .collect();
    assert_disjoint(&mut spans);
    drop(keep);
    drop(again);
    // Many blocks of one class: several free-list extensions of one page.
    let many: Vec<Live> = (0..600).map(|i| Live::new(&a, layout(24, 8), i)).collect();
    let mut spans: Vec<(usize, usize)> = many.iter().map(|b| (b.p.addr(), 24)).collect();
    assert_disjoint(&mut spans);
}

#[test]
fn alignment_of_small_blocks() {
    let a = NAlloc::new();
    let mut align = 1usize;
    while align <= 64 << 10 {
        for size in [1usize, align / 2 + 1, align, align + 1] {
            let b = Live::new(&a, layout(size.min(SMALL_MAX), align), size as u64);
            assert!(segment::contains(b.p));
        }
        align *= 2;
    }
    // Small polynomial blocks: 64-byte aligned, page aligned from 4 KiB.
    let poly = a.polynomial();
    for n in [1usize, 100, 5000, SMALL_MAX] {
        let p = poly.alloc_fft_friendly(n);
        assert!(!p.is_null());
        assert_eq!(p.addr() % crate::arenas::polynomial::fft_align(n, 64), 0);
        fill(p, n, 4);
        assert!(check(p, n, 4));
        // SAFETY: from this arena with size `n`.
        unsafe { poly.dealloc_fft(p, n) };
    }
}

#[test]
fn alignment_of_spans() {
    let a = NAlloc::new();
    // Page aligned by default, more when asked (Miri maps at most
    // 4 MiB-aligned).
    for (size, align) in [
        (SMALL_MAX + 1, 16usize),
        (100_000, 128 << 10),
        (70_000, 1 << 20),
        (3 << 20, 4 << 20),
    ] {
        let b = Live::new(&a, layout(size, align), align as u64);
        assert!(!segment::contains(b.p));
        assert_eq!(b.p.addr() % crate::os::page(), 0);
    }
    a.trim();
}

#[test]
fn zero_sized_requests() {
    let a = NAlloc::new();
    for align in [1usize, 16, 4096] {
        // Not allowed by GlobalAlloc's contract for the global allocator,
        // but the engine serves it (size classes map 0 to the first class).
        // SAFETY: the engine handles size 0 (see `class_of`).
        let p = unsafe { a.alloc(layout(0, align)) };
        assert!(!p.is_null());
        assert_eq!(p.addr() % align, 0);
        if align <= 16 {
            // The smallest class, not the wrap of `0 - 1` to 128 bytes.
            // SAFETY: a live small block: its page is valid.
            assert_eq!(unsafe { (*segment::page_of(p)).block_size }, 16);
        }
        // SAFETY: allocated just now with this layout.
        unsafe { a.dealloc(p, layout(0, align)) };
    }
}

#[test]
fn realloc_between_small_and_large() {
    let a = NAlloc::new();
    let l = layout(100, 16);
    // SAFETY: non-zero size.
    let mut p = unsafe { a.alloc(l) };
    assert!(!p.is_null());
    fill(p, 100, 7);
    let mut size = 100;
    // Same class, other class, span, bigger span (> 2 MiB: huge-page
    // aligned), smaller span, back to small, tiny.
    for new in [
        110usize,
        120,
        300,
        5000,
        70_000,
        200_000,
        (2 << 20) + 10,
        90_000,
        65_536,
        2000,
        24,
    ] {
        // SAFETY: `p` is live with `size` bytes at 16.
        let q = unsafe { a.realloc(p, layout(size, 16), new) };
        assert!(!q.is_null(), "realloc {size} -> {new}");
        assert_eq!(q.addr() % 16, 0);
        let keep = size.min(new);
        // The pattern survives in the kept prefix: check its head (the
        // tail of `fill` may lie beyond the new size).
        assert!(check(q, keep.min(64), 7), "contents lost {size} -> {new}");
        fill(q, new, 7);
        p = q;
        size = new;
    }
    // SAFETY: live with this layout.
    unsafe { a.dealloc(p, layout(size, 16)) };
    // Aligned small block moved to a span and back keeps its alignment.
    let l = layout(1000, 4096);
    // SAFETY: non-zero size.
    let p = unsafe { a.alloc(l) };
    fill(p, 1000, 3);
    // SAFETY: live with `l`.
    let q = unsafe { a.realloc(p, l, 100_000) };
    assert_eq!(q.addr() % 4096, 0);
    assert!(check(q, 64, 3));
    // SAFETY: live with (100_000, 4096).
    let r = unsafe { a.realloc(q, layout(100_000, 4096), 500) };
    assert_eq!(r.addr() % 4096, 0);
    assert!(check(r, 64, 3));
    // SAFETY: live with (500, 4096).
    unsafe { a.dealloc(r, layout(500, 4096)) };
    a.trim();
}

#[test]
fn alloc_zeroed_is_zero_even_when_recycled() {
    let a = NAlloc::new();
    for size in [8usize, 48, 200, 1500, 4096, 20_000] {
        let l = layout(size, 16);
        // Dirty a few blocks of the class, free them, then ask for zeroed.
        let dirty: Vec<*mut u8> = (0..4)
            .map(|_| {
                // SAFETY: non-zero size.
                let p = unsafe { a.alloc(l) };
                // SAFETY: `size` live bytes.
                unsafe { ptr::write_bytes(p, 0xAB, size) };
                p
            })
            .collect();
        for p in dirty {
            // SAFETY: live with `l`.
            unsafe { a.dealloc(p, l) };
        }
        for _ in 0..5 {
            // SAFETY: non-zero size.
            let z = unsafe { a.alloc_zeroed(l) };
            assert!(!z.is_null());
            assert!(zero(z, size), "alloc_zeroed({size}) not zero");
            // SAFETY: live with `l`.
            unsafe { ptr::write_bytes(z, 0xCD, size) };
            // SAFETY: live with `l`.
            unsafe { a.dealloc(z, l) };
        }
    }
}

#[test]
fn recycled_span_is_zeroed() {
    let a = NAlloc::new();
    // A span recycled from the warm pool is cleared too.
    let l = layout(100_000, 16);
    // SAFETY: non-zero size.
    let p = unsafe { a.alloc(l) };
    // SAFETY: live.
    unsafe { ptr::write_bytes(p, 0xEE, 100_000) };
    // SAFETY: live with `l`.
    unsafe { a.dealloc(p, l) };
    // SAFETY: non-zero size.
    let z = unsafe { a.alloc_zeroed(l) };
    if cfg!(miri) {
        // Tests run one at a time under Miri: the pool gives the span back.
        assert_eq!(z, p, "warm pool did not return the freed span");
    }
    assert!(zero(z, 100_000), "recycled span not zeroed");
    // SAFETY: live with `l`.
    unsafe { a.dealloc(z, l) };
    a.trim();
}

/// A block pointer (with its size and fill seed) that can cross threads,
/// keeping its provenance (Miri runs with strict provenance).
#[derive(Clone, Copy)]
struct Addr(*mut u8, usize, u64);
// SAFETY: the tests hand each block to exactly one other thread, which
// then owns it; the allocator under test is thread-safe.
unsafe impl Send for Addr {}
// SAFETY: shared `Addr`s are only read (compared, copied).
unsafe impl Sync for Addr {}

impl Addr {
    /// The pointer (a method, so that closures capture the whole `Addr`).
    fn ptr(self) -> *mut u8 {
        self.0
    }
}

#[test]
fn cross_thread_frees_while_the_owner_allocates() {
    const N: usize = 200;
    let a = NAlloc::new();
    let (tx, rx) = std::sync::mpsc::channel::<Addr>();
    std::thread::scope(|s| {
        let a = &a;
        // Producer/owner: allocates, keeps allocating while the consumer
        // frees its earlier blocks remotely (refills collect them).
        s.spawn(move || {
            let mut own = Vec::new();
            for i in 0..N {
                let size = [24usize, 24, 200, 3000][i % 4];
                // SAFETY: non-zero size.
                let p = unsafe { a.alloc(layout(size, 8)) };
                assert!(!p.is_null());
                fill(p, size, i as u64);
                if i % 3 == 0 {
                    own.push(Addr(p, size, i as u64));
                } else {
                    tx.send(Addr(p, size, i as u64)).unwrap();
                }
            }
            drop(tx);
            for Addr(p, size, seed) in own {
                assert!(check(p, size, seed));
                // SAFETY: our own live block.
                unsafe { a.dealloc(p, layout(size, 8)) };
            }
        });
        // Consumer: frees every block it gets (remote frees), and allocates
        // a little of its own.
        s.spawn(move || {
            let mut mine = Vec::new();
            for Addr(p, size, seed) in rx {
                assert!(check(p, size, seed), "block corrupted in transit");
                // SAFETY: a live block handed over by the producer.
                unsafe { a.dealloc(p, layout(size, 8)) };
                if mine.len() < 16 {
                    mine.push(Live::new(a, layout(24, 8), seed));
                }
            }
            drop(mine);
        });
    });
}

#[test]
fn foreign_blocks_are_kept_reused_and_handed_back() {
    // Three full batches (32 blocks each) of line-sized blocks freed by a
    // thread with a heap: kept on its stand-in page, taken by its fast
    // path, freed again (kept again), and handed back at its exit.
    const N: usize = 96;
    let a = NAlloc::new();
    let l = layout(128, 8);
    let blocks: Vec<Addr> = (0..N as u64)
        .map(|i| {
            // SAFETY: non-zero size.
            let p = unsafe { a.alloc(l) };
            fill(p, 128, i);
            Addr(p, 128, i)
        })
        .collect();
    let olds: Vec<usize> = blocks.iter().map(|b| b.0.addr()).collect();
    // One block per page of the batch, and what waits in each page's
    // remote-free list now.
    let mut pages: Vec<*mut u8> = Vec::new();
    for b in &blocks {
        if !pages
            .iter()
            .any(|&p| p.addr() >> segment::PAGE_SHIFT == b.0.addr() >> segment::PAGE_SHIFT)
        {
            pages.push(b.0);
        }
    }
    let waiting = || -> usize {
        pages
            .iter()
            .map(|&p| {
                // Only this thread, the page's owner, releases the page and
                // reads its count of marks taken; the published count is atomic.
                // SAFETY: a block of a live page of this thread's heap.
                unsafe { crate::small::page::Page::remote_waiting(segment::page_of(p)) }
            })
            .sum()
    };
    let before = waiting();
    let reused = std::thread::scope(|s| {
        s.spawn(|| {
            let own = Live::new(&a, layout(24, 8), 1); // this thread's heap
            for Addr(p, size, seed) in blocks {
                assert!(check(p, size, seed));
                // SAFETY: a live block of the main thread's heap.
                unsafe { a.dealloc(p, l) };
            }
            let mine: Vec<*mut u8> = (0..N)
                .map(|i| {
                    // SAFETY: non-zero size.
                    let p = unsafe { a.alloc(l) };
                    fill(p, 128, 500 + i as u64);
                    p
                })
                .collect();
            let reused = mine.iter().filter(|p| olds.contains(&p.addr())).count();
            for (i, &p) in mine.iter().enumerate() {
                assert!(check(p, 128, 500 + i as u64), "kept blocks overlap");
                // SAFETY: our live block (of the main thread's pages).
                unsafe { a.dealloc(p, l) };
            }
            drop(own);
            reused
        })
        .join()
        .unwrap()
    });
    assert_eq!(reused, N, "the freeing thread did not reuse the batches it kept");
    // Handed back at that thread's exit: every block waits in its page's
    // remote-free list for the owner (which has not allocated since).
    // (Whether the owner then reuses them or releases the page they
    // emptied depends on when its next tidy comes: both are right.)
    assert_eq!(waiting() - before, N, "kept blocks were not handed back to their owner");
    let again: Vec<Live<'_>> = (0..2 * N).map(|i| Live::new(&a, l, 1000 + i as u64)).collect();
    let mut spans: Vec<(usize, usize)> = again.iter().map(|b| (b.p.addr(), 128)).collect();
    assert_disjoint(&mut spans);
}

#[test]
fn emptied_page_slots_serve_their_class_again_or_a_new_one() {
    // An emptied page slot keeps its blocks linked and goes back to the same
    // class as it was; claimed by another class it is set up afresh. Blocks
    // of 16000 B: 16 per 256 KiB page, so 50 blocks fill three pages and
    // freeing them empties at least two that are not current.
    const N: usize = 50;
    let a = NAlloc::new();
    std::thread::scope(|s| {
        s.spawn(|| {
            let round = |size: usize, seed: u64| -> Vec<Live<'_>> {
                (0..N)
                    .map(|i| Live::new(&a, layout(size, 8), seed + i as u64))
                    .collect()
            };
            let spans =
                |v: &[Live<'_>]| -> Vec<(usize, usize)> { v.iter().map(|b| (b.p.addr(), b.l.size())).collect() };
            let first = round(16_000, 0);
            let mut old = spans(&first);
            drop(first);
            // The same class again: the same memory, except what the current
            // page (kept, not released) still has in its never-used tail.
            let again = round(16_000, 1000);
            let mut new = spans(&again);
            assert_disjoint(&mut new);
            assert_disjoint(&mut old);
            let reused = new.iter().filter(|b| old.binary_search(b).is_ok()).count();
            assert!(
                reused >= N - 16,
                "only {reused} of {N} blocks came back from the freed pages"
            );
            drop(again);
            // Another class over the emptied slots: every block in bounds of
            // its own slot's new layout, none overlapping.
            let other = round(12_000, 2000);
            let mut spans_other = spans(&other);
            assert_disjoint(&mut spans_other);
            drop(other);
            // And the first class once more, after the slots served another.
            let last = round(16_000, 3000);
            let mut spans_last = spans(&last);
            assert_disjoint(&mut spans_last);
            for b in &last {
                assert!(segment::contains(b.p));
            }
        });
    });
}

/// Runs the calling thread's tidy every millisecond or so (under Miri
/// every clock reading is a millisecond later) until `done`, at most 100
/// times, with `work` slow paths counted as taken before each (a heap's
/// free memory ages only while it works); returns whether `done` became
/// true.
fn tidy_until(work: u32, done: impl Fn() -> bool) -> bool {
    for _ in 0..100 {
        if !cfg!(miri) {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        heap::count_slow_paths(work);
        heap::tidy_current_thread();
        if done() {
            return true;
        }
    }
    false
}

/// True if the page slot holding `p` (a block this thread's heap made and
/// freed) has been purged — its memory given back, to be set up as fresh
/// memory — or its whole segment has left the heap (every slot free: to
/// the segment cache, purged after the same delay, or to the OS).
fn slot_purged(p: *mut u8) -> bool {
    let seg = p
        .map_addr(|a| a & !(segment::SEGMENT_SIZE - 1))
        .cast::<segment::Segment>();
    if !heap::owns_segment(seg) {
        return true;
    }
    let i = (p.addr() - seg.addr()) >> segment::PAGE_SHIFT;
    // SAFETY: a segment of this thread's heap, whose masks only this thread
    // writes.
    unsafe { (*seg).free_mask & (1 << i) != 0 && (*seg).dirty_mask & (1 << i) == 0 }
}

/// True if the written mark of `p`'s page slot (what the warm pool's budget
/// counts as resident, `Page::note_written`) covers `p .. p + len`.
fn counted_as_written(p: *mut u8, len: usize) -> bool {
    let end = (p.addr() & (segment::SEGMENT_SIZE - 1)) + len;
    // SAFETY: `p` is a block in a live segment of this thread's heap, whose
    // page headers only this thread writes.
    unsafe { (*segment::page_of(p)).written as usize >= end }
}

#[test]
fn free_page_slots_go_back_to_the_os_after_the_delay() {
    // 16000-B blocks: 50 fill at least three pages. Freed, every page is
    // empty, the current one too, so a tidy releases them all; a tidy at
    // least the purge delay later purges them. Blocks made again on them
    // are set up afresh: right contents, no overlap. A small block made
    // first keeps the segment in the heap (a segment whose pages are all
    // free leaves it whole).
    const N: usize = 50;
    let a = NAlloc::new();
    std::thread::scope(|s| {
        s.spawn(|| {
            // (The thread's heap may be an adopted one, with pages of its
            // own: counts are relative.)
            let anchor = Live::new(&a, layout(64, 8), 999);
            let before = heap::pages_owned();
            let blocks: Vec<Live<'_>> = (0..N).map(|i| Live::new(&a, layout(16_000, 8), i as u64)).collect();
            let ptrs: Vec<*mut u8> = blocks.iter().map(|b| b.p).collect();
            assert!(ptrs.iter().all(|&p| counted_as_written(p, 16_000)));
            if cfg!(miri) {
                // One test at a time: a heap of its own, which grew.
                assert!(heap::pages_owned() >= before + 3, "{} pages", heap::pages_owned());
            }
            drop(blocks);
            heap::tidy_current_thread();
            assert!(heap::pages_owned() <= before, "emptied pages kept after a tidy");
            let anchor_seg = anchor.p.map_addr(|a| a & !(segment::SEGMENT_SIZE - 1));
            let beside = ptrs
                .iter()
                .filter(|p| p.map_addr(|a| a & !(segment::SEGMENT_SIZE - 1)) == anchor_seg);
            assert!(beside.count() > 0, "no block in the anchor's segment");
            assert!(
                ptrs.iter().all(|&p| !slot_purged(p)
                    || !heap::owns_segment(p.map_addr(|a| a & !(segment::SEGMENT_SIZE - 1)).cast())),
                "purged before the delay"
            );
            let owned_purged = || {
                ptrs.iter().any(|&p| {
                    let seg = p.map_addr(|a| a & !(segment::SEGMENT_SIZE - 1));
                    heap::owns_segment(seg.cast()) && slot_purged(p)
                })
            };
            // Time passes, the heap does nothing: its free slots stay.
            assert!(!tidy_until(0, owned_purged), "purged while the heap was idle");
            assert!(
                tidy_until(64, || ptrs.iter().all(|&p| slot_purged(p))),
                "only {} of {N} blocks' slots purged",
                ptrs.iter().filter(|&&p| slot_purged(p)).count()
            );
            // Purged memory is no longer counted as resident.
            assert!(ptrs.iter().all(|&p| {
                let seg = p.map_addr(|a| a & !(segment::SEGMENT_SIZE - 1));
                !heap::owns_segment(seg.cast()) || !counted_as_written(p, 1)
            }));
            if !cfg!(miri) {
                // What the OS gives back reads as zero.
                for &p in &ptrs {
                    if p.map_addr(|a| a & !(segment::SEGMENT_SIZE - 1)) == anchor_seg {
                        assert!(zero(p, 64), "purged memory still holds data");
                    }
                }
            }
            let again: Vec<Live<'_>> = (0..N)
                .map(|i| Live::new(&a, layout(16_000, 8), 100 + i as u64))
                .collect();
            let mut spans: Vec<(usize, usize)> = again.iter().map(|b| (b.p.addr(), 16_000)).collect();
            assert_disjoint(&mut spans);
            // Zeroed blocks on purged memory are zero.
            let z = layout(12_000, 8);
            // SAFETY: non-zero size; freed below.
            let q = unsafe { a.alloc_zeroed(z) };
            assert!(!q.is_null() && zero(q, 12_000));
            // SAFETY: allocated above with `z`.
            unsafe { a.dealloc(q, z) };
        });
    });
}

#[test]
fn pages_emptied_by_other_threads_frees_are_released() {
    // Another thread frees every block of this thread's pages: nothing in
    // the owner notices (its frees never touch them), until its tidy
    // releases them, the current page included, and purges them at once:
    // their memory went to the other thread's work, no delay is waited.
    const N: usize = 40;
    let a = NAlloc::new();
    std::thread::scope(|s| {
        s.spawn(|| {
            // (The thread's heap may be an adopted one, with pages of its
            // own: counts are relative.)
            let before = heap::pages_owned();
            let blocks: Vec<Live<'_>> = (0..N).map(|i| Live::new(&a, layout(16_000, 8), i as u64)).collect();
            let ptrs: Vec<*mut u8> = blocks.iter().map(|b| b.p).collect();
            let grown = heap::pages_owned();
            if cfg!(miri) {
                // One test at a time: a heap of its own, which grew.
                assert!(grown >= before + 3, "{before} -> {grown} pages");
            }
            // The freeing thread exits before the join returns: its batched
            // remote frees are handed over by then.
            std::thread::scope(|s2| {
                s2.spawn(move || drop(blocks));
            });
            assert_eq!(heap::pages_owned(), grown, "released before the owner's tidy");
            // The class has not been used for a while (else its pages
            // would age first: see the next test).
            heap::count_slow_paths(crate::policy::GROWING_PATHS);
            heap::tidy_current_thread();
            assert!(heap::pages_owned() <= before, "pages emptied by remote frees kept");
            assert!(
                ptrs.iter().all(|&p| slot_purged(p)),
                "only {} of {N} blocks' slots purged",
                ptrs.iter().filter(|&&p| slot_purged(p)).count()
            );
            // The slots serve another class: right contents, no overlap.
            let other: Vec<Live<'_>> = (0..N)
                .map(|i| Live::new(&a, layout(12_000, 8), 500 + i as u64))
                .collect();
            let mut spans: Vec<(usize, usize)> = other.iter().map(|b| (b.p.addr(), 12_000)).collect();
            assert_disjoint(&mut spans);
        });
    });
}

#[test]
fn pages_emptied_by_other_threads_age_while_their_class_grows() {
    // A producer whose blocks another thread frees: while the class still
    // takes fresh memory, its emptied pages are released but not purged,
    // and the class's next pages are those, unfaulted.
    const N: usize = 40;
    let a = NAlloc::new();
    std::thread::scope(|s| {
        s.spawn(|| {
            let before = heap::pages_owned();
            let blocks: Vec<Live<'_>> = (0..N).map(|i| Live::new(&a, layout(16_000, 8), i as u64)).collect();
            let ptrs: Vec<*mut u8> = blocks.iter().map(|b| b.p).collect();
            std::thread::scope(|s2| {
                s2.spawn(move || drop(blocks));
            });
            heap::tidy_current_thread();
            assert!(heap::pages_owned() <= before, "pages emptied by remote frees kept");
            assert!(
                ptrs.iter().all(|&p| !slot_purged(p)),
                "{} of {N} blocks' slots purged while the class grows",
                ptrs.iter().filter(|&&p| slot_purged(p)).count()
            );
            // The next blocks of the class come from those slots.
            let again: Vec<Live<'_>> = (0..N)
                .map(|i| Live::new(&a, layout(16_000, 8), 900 + i as u64))
                .collect();
            let reused = again.iter().filter(|b| ptrs.contains(&b.p)).count();
            assert!(reused >= N / 2, "only {reused} of {N} blocks reused");
        });
    });
}

#[test]
fn a_heap_that_refaults_what_it_purged_keeps_pages_other_threads_empty() {
    // A producer whose consumer frees everything, in rounds, with the class
    // not growing by the per-class rule: at first each round's pages are
    // purged at the tidy that releases them, and the next round faults
    // fresh slots. Once the heap has refaulted `REFAULT_SLOTS` slots soon
    // after its purges, emptied pages age instead (the next round takes
    // them back without faults), and after the purge delay they still go
    // back to the OS.
    const N: usize = 40;
    let a = NAlloc::new();
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut purged_rounds = 0;
            let mut kept = None;
            for round in 0..3 * crate::policy::REFAULT_SLOTS as usize {
                let blocks: Vec<Live<'_>> = (0..N)
                    .map(|i| Live::new(&a, layout(16_000, 8), (round * N + i) as u64))
                    .collect();
                let ptrs: Vec<*mut u8> = blocks.iter().map(|b| b.p).collect();
                std::thread::scope(|s2| {
                    s2.spawn(move || drop(blocks));
                });
                heap::count_slow_paths(crate::policy::GROWING_PATHS);
                heap::tidy_current_thread();
                if ptrs.iter().all(|&p| slot_purged(p)) {
                    purged_rounds += 1;
                } else if ptrs.iter().all(|&p| !slot_purged(p)) {
                    kept = Some(ptrs);
                    break;
                }
            }
            assert!(purged_rounds >= 1, "emptied pages kept before any refault");
            let ptrs = kept.unwrap_or_else(|| panic!("purged in all {purged_rounds} rounds: refaults not noticed"));
            assert!(
                tidy_until(64, || ptrs.iter().all(|&p| slot_purged(p))),
                "kept pages not purged after the delay: {} of {N} blocks' slots purged",
                ptrs.iter().filter(|&&p| slot_purged(p)).count()
            );
        });
    });
}

#[test]
fn a_bursts_memory_at_a_page_top_goes_back() {
    // A class with a few live blocks allocates a burst of 80 more (the
    // page grows) and frees it: the next look of a tidy gives the page's
    // free top back to the OS (not counted as written any more, counted as
    // returned), and the class serves the next burst from it again: right
    // contents, no overlap with the blocks that stayed live.
    const SIZE: usize = 1700;
    let a = NAlloc::new();
    std::thread::scope(|s| {
        s.spawn(|| {
            let live: Vec<Live<'_>> = (0..16).map(|i| Live::new(&a, layout(SIZE, 8), i)).collect();
            heap::count_slow_paths(64);
            heap::tidy_current_thread();
            let returned = a.stats().returned_to_os;
            let mut burst: Vec<Live<'_>> = (0..80).map(|i| Live::new(&a, layout(SIZE, 8), 100 + i)).collect();
            let top = burst.iter().map(|b| b.p).max_by_key(|p| p.addr()).unwrap();
            assert!(counted_as_written(top, SIZE));
            while let Some(b) = burst.pop() {
                drop(b);
            }
            heap::count_slow_paths(64);
            heap::tidy_current_thread();
            assert!(!counted_as_written(top, SIZE), "the burst's top is still resident");
            let back = a.stats().returned_to_os - returned;
            assert!(back >= crate::small::page::TRIM_MIN, "{back} bytes returned");
            let again: Vec<Live<'_>> = (0..80).map(|i| Live::new(&a, layout(SIZE, 8), 200 + i)).collect();
            let mut spans: Vec<(usize, usize)> = live.iter().chain(&again).map(|b| (b.p.addr(), SIZE)).collect();
            assert_disjoint(&mut spans);
        });
    });
}

#[test]
fn remote_frees_come_back_lowest_address_first() {
    // A thread allocates blocks of 48 bytes (not line-sized, so a freeing
    // thread hands them back rather than keep them), keeps every eighth
    // and has another thread free the rest in a scrambled order. Once its
    // free list runs dry it collects them: each page hands its collected
    // blocks out again lowest address first, whatever the order of the
    // frees, with the right contents and no overlap.
    const N: usize = 256;
    let a = NAlloc::new();
    let l = layout(48, 8);
    assert_eq!(CLASS_SIZE[crate::small::size_class::class_of(48)], 48);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut kept: Vec<Live<'_>> = Vec::new();
            let mut freed: Vec<Live<'_>> = Vec::new();
            for i in 0..N {
                let b = Live::new(&a, l, i as u64);
                if i % 8 == 0 {
                    kept.push(b);
                } else {
                    freed.push(b);
                }
            }
            // Scrambled: every 37th block (37 is prime to the count, 224).
            let m = freed.len();
            let mut order: Vec<Option<Live<'_>>> = freed.into_iter().map(Some).collect();
            let scrambled: Vec<Live<'_>> = (0..m).map(|i| order[i * 37 % m].take().unwrap()).collect();
            let addrs: Vec<usize> = scrambled.iter().map(|b| b.p.addr()).collect();
            std::thread::scope(|s| {
                s.spawn(|| {
                    let own = Live::new(&a, layout(24, 8), 7); // a heap of its own: batched frees
                    drop(scrambled);
                    drop(own);
                });
            });
            // Allocate until every freed block came back (the blocks still
            // threaded on the free list come first).
            let mut again: Vec<Live<'_>> = Vec::new();
            let mut back: Vec<usize> = Vec::new();
            while back.len() < m && again.len() < 4 * N {
                let b = Live::new(&a, l, 1000 + again.len() as u64);
                if addrs.contains(&b.p.addr()) {
                    back.push(b.p.addr());
                }
                again.push(b);
            }
            assert_eq!(back.len(), m, "the freed blocks were not all reused");
            for pg in back.iter().map(|p| p >> segment::PAGE_SHIFT) {
                let of_page: Vec<usize> = back
                    .iter()
                    .copied()
                    .filter(|p| p >> segment::PAGE_SHIFT == pg)
                    .collect();
                assert!(
                    of_page.windows(2).all(|w| w[0] < w[1]),
                    "a page's collected blocks came back out of address order"
                );
            }
            let mut spans: Vec<(usize, usize)> = kept.iter().chain(&again).map(|b| (b.p.addr(), 48)).collect();
            assert_disjoint(&mut spans);
        });
    });
}

#[test]
fn refill_prefers_fuller_pages_to_sparse_ones() {
    // Pages P1 (oldest), P2, P3 (current) of 16000-B blocks. P2 is left
    // with one live block (sparse), P1 with all but two. When P3 runs dry,
    // the next blocks come from P1 although P2 is first in the list, so
    // that P2 can empty out.
    let a = NAlloc::new();
    std::thread::scope(|s| {
        s.spawn(|| {
            let page = |p: *mut u8| p.addr() >> segment::PAGE_SHIFT;
            let mut blocks: Vec<Live<'_>> = Vec::new();
            // Fill pages until a third one is current.
            let mut pages: Vec<usize> = Vec::new();
            let mut seed = 0;
            loop {
                let b = Live::new(&a, layout(16_000, 8), seed);
                seed += 1;
                if !pages.contains(&page(b.p)) {
                    pages.push(page(b.p));
                }
                blocks.push(b);
                if pages.len() == 3 {
                    break;
                }
            }
            let (p1, p2, p3) = (pages[0], pages[1], pages[2]);
            // P2: free all but one; P1: free two.
            let mut kept_in_p2 = false;
            let mut freed_in_p1 = 0;
            blocks.retain(|b| {
                let pg = page(b.p);
                if pg == p2 {
                    let keep = !kept_in_p2;
                    kept_in_p2 = true;
                    keep
                } else if pg == p1 && freed_in_p1 < 2 {
                    freed_in_p1 += 1;
                    false
                } else {
                    true
                }
            });
            // Run P3 dry.
            loop {
                let b = Live::new(&a, layout(16_000, 8), seed);
                seed += 1;
                let pg = page(b.p);
                blocks.push(b);
                if pg != p3 {
                    assert_eq!(pg, p1, "refill took a block from page {pg:x}, not from the fuller page");
                    break;
                }
            }
        });
    });
}

#[test]
fn heap_retired_at_thread_exit_is_adopted() {
    let a = NAlloc::new();
    // A thread makes blocks, keeps half live, and exits: its heap is
    // retired with pages that still hold live blocks.
    let (live, freed): (Vec<Addr>, Vec<Addr>) = std::thread::scope(|s| {
        s.spawn(|| {
            let v: Vec<Addr> = (0..40u64)
                .map(|i| {
                    // SAFETY: non-zero size.
                    let p = unsafe { a.alloc(layout(48, 16)) };
                    fill(p, 48, i);
                    Addr(p, 48, i)
                })
                .collect();
            let (live, dead): (Vec<Addr>, Vec<Addr>) = v.into_iter().partition(|b| b.2 % 2 == 0);
            for b in &dead {
                // SAFETY: our own live block.
                unsafe { a.dealloc(b.0, layout(48, 16)) };
            }
            (live, dead)
        })
        .join()
        .unwrap()
    });
    // This thread frees the survivors into the retired heap (remote frees,
    // no owner).
    for b in &live[..10] {
        let p = b.0;
        assert!(check(p, 48, b.2));
        // SAFETY: live block of the exited thread.
        unsafe { a.dealloc(p, layout(48, 16)) };
    }
    // A new thread adopts the retired heap and reuses its blocks.
    let reused = std::thread::scope(|s| {
        s.spawn(|| {
            let v: Vec<*mut u8> = (0..30)
                .map(|_| {
                    // SAFETY: non-zero size.
                    let p = unsafe { a.alloc(layout(48, 16)) };
                    fill(p, 48, 5);
                    p
                })
                .collect();
            let olds: Vec<*mut u8> = live.iter().chain(freed.iter()).map(|b| b.0).collect();
            let reused = v.iter().filter(|p| olds.contains(p)).count();
            for &p in &v {
                // SAFETY: our own live blocks.
                unsafe { a.dealloc(p, layout(48, 16)) };
            }
            reused
        })
        .join()
        .unwrap()
    });
    if cfg!(miri) {
        // One test at a time: the retired heap is the newest, so the new
        // thread adopts it and gets the freed blocks back.
        assert!(reused > 0, "the new thread did not adopt the retired heap");
    }
    // The rest of the old blocks are intact and freed from here.
    for b in &live[10..] {
        let p = b.0;
        assert!(check(p, 48, b.2), "live block of a retired heap corrupted");
        // SAFETY: live block.
        unsafe { a.dealloc(p, layout(48, 16)) };
    }
}

#[test]
fn span_pool_alloc_free_realloc() {
    let a = NAlloc::new();
    let sizes = [SMALL_MAX + 1, 80_000, 100_000, 150_000, 300_000];
    let blocks: Vec<Live> = sizes.iter().map(|&s| Live::new(&a, layout(s, 16), s as u64)).collect();
    let mut spans: Vec<(usize, usize)> = blocks.iter().map(|b| (b.p.addr(), b.l.size())).collect();
    assert_disjoint(&mut spans);
    let addrs: Vec<*mut u8> = blocks.iter().map(|b| b.p).collect();
    drop(blocks); // into the warm pool
    let again: Vec<Live> = sizes.iter().rev().map(|&s| Live::new(&a, layout(s, 16), 1)).collect();
    if cfg!(miri) {
        // Exact-length reuse from the pool (newest first).
        for b in &again {
            assert!(addrs.contains(&b.p), "span of {} not reused from the pool", b.l.size());
        }
    }
    drop(again);
    // Growth and shrink of spans (copying under Miri, mremap on Linux).
    let mut size = 70_000;
    // SAFETY: non-zero size.
    let mut p = unsafe { a.alloc(layout(size, 64)) };
    fill(p, size, 9);
    for new in [90_000usize, 400_000, 1 << 20, 120_000, 70_001] {
        // SAFETY: live with (size, 64).
        let q = unsafe { a.realloc(p, layout(size, 64), new) };
        assert!(!q.is_null());
        assert_eq!(q.addr() % 64, 0);
        assert!(check(q, 64, 9), "span contents lost {size} -> {new}");
        fill(q, new, 9);
        p = q;
        size = new;
    }
    // SAFETY: live with (size, 64).
    unsafe { a.dealloc(p, layout(size, 64)) };
    // Polynomial arena: FFT placement over spans.
    let poly = a.polynomial();
    for n in [70_000usize, 2 << 20] {
        let p = poly.alloc_fft_friendly(n);
        assert!(!p.is_null());
        assert_eq!(p.addr() % crate::arenas::polynomial::fft_align(n, 64), 0);
        fill(p, n, 4);
        assert!(check(p, n, 4));
        // SAFETY: from this arena with size `n`.
        unsafe { poly.dealloc_fft(p, n) };
    }
    assert!(a.trim() > 0 || !cfg!(miri));
}

#[test]
fn scratch_arena_scope_slices_and_reset() {
    let mut s = ScratchArena::new();
    s.scope(|s| {
        let v = s.alloc_val(41u64);
        *v += 1;
        let xs = s.alloc_slice_fill_with(100, |i| i as u32 * 3);
        let ys = s.alloc_slice_copy(&[1u8, 2, 3]);
        assert_eq!(*v, 42);
        assert!(xs.iter().enumerate().all(|(i, &x)| x == i as u32 * 3));
        assert_eq!(ys, &[1, 2, 3]);
        // Past the first 64 KiB chunk: a second chunk.
        let big = s.alloc(layout(80_000, 64)).unwrap().as_ptr();
        fill(big, 80_000, 2);
        assert!(check(big, 80_000, 2));
        assert!(s.used() >= 80_000);
    });
    assert_eq!(s.used(), 0);
    let cap = s.capacity();
    assert!(cap >= (64 << 10) + 80_000);
    // After the reset the kept chunks serve again: no new chunk.
    s.scope(|s| {
        let big = s.alloc(layout(80_000, 64)).unwrap().as_ptr();
        fill(big, 80_000, 3);
        assert_eq!(*s.alloc_val(7u64), 7);
        assert!(check(big, 80_000, 3));
    });
    assert_eq!(s.capacity(), cap);
    // The raw reset and the Allocator impl (Vec growth rolls back the
    // latest block in place).
    {
        let mut v = allocator_api2::vec::Vec::new_in(&s);
        for i in 0..500u32 {
            v.push(i);
        }
        assert_eq!(v.iter().sum::<u32>(), 499 * 500 / 2);
    }
    // SAFETY: no block of the arena is used after this.
    unsafe { s.reset() };
    let x = s.alloc(layout(8, 8)).unwrap();
    // SAFETY: as above.
    unsafe { s.reset() };
    let y = s.alloc(layout(8, 8)).unwrap();
    assert_eq!(x, y, "reset did not rewind to the first chunk");
    s.clear();
}

#[test]
fn witness_arena_alloc_dealloc_wipe() {
    let w = WitnessArena::new();
    let mut blocks = Vec::new();
    for (i, size) in [1usize, 16, 100, 1000, 4096, 20_000].into_iter().enumerate() {
        let p = w.alloc(size, 16);
        assert!(!p.is_null());
        assert!(witness::contains(p));
        assert!(zero(p, size), "witness block not zero when handed out");
        fill(p, size, i as u64);
        blocks.push((p, size, i as u64));
    }
    assert!(w.alloc(8, 3).is_null(), "non-power-of-two alignment accepted");
    // Free and re-allocate: the recycled block is wiped.
    let (p, size, seed) = blocks.swap_remove(2);
    assert!(check(p, size, seed));
    // SAFETY: from this arena with (size, 16).
    unsafe { w.dealloc(p, size, 16) };
    let q = w.alloc(size, 16);
    assert_eq!(q, p, "free list did not recycle the block");
    assert!(zero(q, size), "recycled witness block not wiped");
    // SAFETY: as above.
    unsafe { w.dealloc(q, size, 16) };
    // A large block has a chunk of its own, 4 KiB aligned here (not under
    // Miri: see the module docs).
    if !cfg!(miri) {
        let big = w.alloc(100_000, 4096);
        assert!(!big.is_null());
        assert_eq!(big.addr() % 4096, 0);
        assert!(zero(big, 100_000));
        fill(big, 100_000, 77);
        let used = w.stats().used;
        assert!(used >= 100_000);
        // SAFETY: from this arena with (100_000, 4096).
        unsafe { w.dealloc(big, 100_000, 4096) };
        assert!(w.stats().used < used);
    }
    for &(p, size, seed) in &blocks {
        assert!(check(p, size, seed), "witness block corrupted");
    }
    // SAFETY: none of the blocks is used after the wipe.
    unsafe { w.secure_wipe() };
    assert_eq!(w.stats().used, 0);
    let p = w.alloc(100, 16);
    assert!(zero(p, 100));
    drop(w);
}

#[test]
fn witness_thread_caches_batch_spill_reuse_and_cross_thread_frees() {
    let a = NAlloc::new();
    let w = WitnessArena::new();
    // A heap of its own gives this thread a block cache in every arena.
    let heap_block = Live::new(&a, layout(8, 8), 9);
    // More blocks of one class than a cache holds (two batches of 64 blocks
    // of 48 B): fresh batches, then spilled batches and their reuse.
    const N: usize = 200;
    // 40 bytes and the 8-byte canary: the 48-byte class.
    const SIZE: usize = 40;
    const CLASS: usize = 48;
    let first: Vec<*mut u8> = (0..N).map(|_| w.alloc(SIZE, 8)).collect();
    let mut addrs: Vec<(usize, usize)> = first.iter().map(|p| (p.addr(), SIZE)).collect();
    assert_disjoint(&mut addrs);
    for (i, &p) in first.iter().enumerate() {
        assert!(!p.is_null() && zero(p, SIZE), "witness block not zero when handed out");
        fill(p, SIZE, i as u64);
    }
    assert_eq!(w.stats().used, N * CLASS);
    for (i, &p) in first.iter().enumerate() {
        assert!(check(p, SIZE, i as u64), "witness block corrupted");
        // SAFETY: from this arena with (SIZE, 8), freed once.
        unsafe { w.dealloc(p, SIZE, 8) };
    }
    assert_eq!(w.stats().used, 0);
    // The same blocks come back (cache, then spilled batches), wiped.
    let again: Vec<*mut u8> = (0..N).map(|_| w.alloc(SIZE, 8)).collect();
    let mut a1: Vec<usize> = first.iter().map(|p| p.addr()).collect();
    let mut a2: Vec<usize> = again.iter().map(|p| p.addr()).collect();
    a1.sort_unstable();
    a2.sort_unstable();
    assert_eq!(a1, a2, "freed blocks were not reused");
    assert!(again.iter().all(|&p| zero(p, SIZE)), "recycled witness block not wiped");
    // Another thread, with a heap and cache of its own, frees half of them
    // (into its cache, which spills) and allocates from what it freed.
    let handed: Vec<Addr> = again[..N / 2].iter().map(|&p| Addr(p, SIZE, 0)).collect();
    std::thread::scope(|s| {
        s.spawn(|| {
            let _own_heap = Live::new(&a, layout(8, 8), 3);
            for h in handed {
                // SAFETY: live witness blocks with (SIZE, 8), handed over.
                unsafe { w.dealloc(h.ptr(), SIZE, 8) };
            }
            let q = w.alloc(SIZE, 8);
            assert!(zero(q, SIZE));
            // SAFETY: just allocated with (SIZE, 8).
            unsafe { w.dealloc(q, SIZE, 8) };
        });
    });
    for &p in &again[N / 2..] {
        // SAFETY: live witness blocks with (SIZE, 8).
        unsafe { w.dealloc(p, SIZE, 8) };
    }
    let st = w.stats();
    assert_eq!(st.used, 0);
    // `stats` samples the peak too: the call at the high point above saw it.
    assert_eq!(st.peak, N * CLASS, "peak missed the sampled high point");
    drop(heap_block);
}

#[test]
fn witness_scope_routes_and_survives_realloc_and_other_threads() {
    let a = NAlloc::new();
    let l = layout(64, 8);
    // SAFETY: non-zero size; freed below.
    let p = a.witness_scope(|| unsafe { a.alloc(l) });
    assert!(witness::contains(p));
    assert!(zero(p, 64));
    fill(p, 64, 1);
    // Large blocks made in a scope are witness memory too (not under Miri:
    // see the module docs).
    if !cfg!(miri) {
        let big_l = layout(70_000, 16);
        // SAFETY: non-zero size.
        let big = a.witness_scope(|| unsafe { a.alloc_zeroed(big_l) });
        assert!(witness::contains(big) && zero(big, 70_000));
        // SAFETY: live with `big_l`.
        unsafe { a.dealloc(big, big_l) };
    }
    // Outside the scope: a normal block (a span here, which is
    // Miri-clean; small blocks are tested in `small_blocks_of_many_classes`).
    let n = Live::new(&a, layout(SMALL_MAX + 1, 8), 2);
    assert!(!witness::contains(n.p));
    drop(n);
    // A witness block stays witness memory when it grows.
    // SAFETY: live with `l`.
    let q = unsafe { a.realloc(p, l, 300) };
    assert!(witness::contains(q));
    assert!(check(q, 64, 1));
    // Freed on another thread: still recognised, and wiped: the same block
    // comes back zeroed.
    let handed = Addr(q, 300, 0);
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: live witness block with (300, 8), handed over.
            unsafe { a.dealloc(handed.ptr(), layout(300, 8)) };
        });
    });
    // Scopes nest and restore.
    a.witness_scope(|| {
        a.witness_scope(|| {});
        // SAFETY: non-zero size.
        let p = unsafe { a.alloc(layout(300, 8)) };
        assert!(witness::contains(p), "inner scope ended the outer one");
        assert!(zero(p, 300), "witness block not wiped after a remote free");
        // SAFETY: live with (300, 8).
        unsafe { a.dealloc(p, layout(300, 8)) };
    });
    let n = Live::new(&a, layout(SMALL_MAX + 1, 8), 3);
    assert!(!witness::contains(n.p), "scope not restored");
}

/// `raw` round trips: alloc (plain and zeroed), usable size, free.
fn raw_round_trips(cases: &[(usize, usize)]) {
    for &(size, align) in cases {
        for zeroed in [false, true] {
            let p = raw::alloc(size, align, zeroed);
            assert!(!p.is_null());
            assert_eq!(p.addr() % align.max(16), 0);
            if zeroed {
                assert!(zero(p, size));
            }
            // SAFETY: live.
            let usable = unsafe { raw::usable_size(p) };
            assert!(usable >= size, "usable {usable} < {size}");
            // The usable tail is really usable.
            fill(p, usable, 5);
            assert!(check(p, usable, 5));
            // SAFETY: live, freed once.
            unsafe { raw::free(p) };
        }
    }
}

/// `raw::realloc` through `sizes`, checking the kept prefix each time.
fn raw_realloc_chain(first: usize, sizes: &[usize]) {
    let mut p = raw::alloc(first, 16, false);
    fill(p, first, 6);
    let mut size = first;
    for &new in sizes {
        // SAFETY: live, alignment 16.
        let q = unsafe { raw::realloc(p, new) };
        assert!(!q.is_null());
        assert_eq!(q.addr() % 16, 0);
        assert!(
            check(q, size.min(new).min(64), 6),
            "raw realloc lost contents {size} -> {new}"
        );
        // SAFETY: live.
        assert!(unsafe { raw::usable_size(q) } >= new);
        fill(q, new, 6);
        p = q;
        size = new;
    }
    // SAFETY: live.
    unsafe { raw::free(p) };
}

#[test]
fn raw_small_blocks() {
    raw_round_trips(&[(1, 1), (24, 16), (100, 64), (4000, 4096), (SMALL_MAX, 16)]);
    // Across the small/header boundary and back.
    raw_realloc_chain(10, &[12, 40, 5000, 65_537, 200_000, 80_000, 3000, 8]);
    // A same-class shrink keeps the block.
    let p = raw::alloc(40, 16, false);
    // SAFETY: live.
    assert_eq!(unsafe { raw::realloc(p, 35) }, p);
    // SAFETY: live.
    unsafe { raw::free(p) };
}

#[test]
fn raw_header_blocks() {
    raw_round_trips(&[(SMALL_MAX + 1, 16), (70_000, 16), (100_000, 4096), (80_000, 1 << 20)]);
    // Span to span (in place where the OS can).
    raw_realloc_chain(65_537, &[200_000, 80_000, 1 << 20, 70_000]);
    // SAFETY: null is ignored.
    unsafe { raw::free(ptr::null_mut()) };
    assert!(raw::alloc(usize::MAX - 8, 16, false).is_null());
    // Blocks made inside a witness scope carry a header and are witness
    // memory.
    let a = NAlloc::new();
    let w = a.witness_scope(|| raw::alloc(50, 16, false));
    assert!(witness::contains(w));
    assert!(zero(w, 50));
    // SAFETY: live.
    assert!(unsafe { raw::usable_size(w) } >= 50);
    fill(w, 50, 8);
    // SAFETY: live.
    unsafe { raw::free(w) };
    a.trim();
}

#[test]
fn class_sizes_cover_what_tests_use() {
    // Guards the sizes above against a change of the class table.
    assert_eq!(CLASS_SIZE[0], 16);
    assert_eq!(*CLASS_SIZE.last().unwrap() as usize, SMALL_MAX);
}
