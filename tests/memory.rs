//! Memory is reused and returned: bounded RSS over many rounds and many
//! threads, emptied small-object pages given back after a delay, warm spans
//! without page faults, trim, warm spans released as small objects grow,
//! fresh zeroed memory not touched, growth by mremap, sparse zeroed blocks not faulted in, a trim that reaches live threads' heaps. One test function runs the phases in order so that RSS figures
//! are not disturbed by other tests of this binary.
//!
//! Linux only: the evidence is the kernel's RSS and fault counts from
//! `/proc`. (Wine reports no page-fault count, so under it the warm-pool
//! phase would pass without proving anything.) On Windows, tests/windows.rs
//! checks `trim` and short-lived threads through `VirtualQuery` and `stats`.
#![cfg(target_os = "linux")]

use std::alloc::{GlobalAlloc, Layout};
use zk_nalloc::NAlloc;

mod common;
use common::{minor_faults, rss};

#[global_allocator]
static ALLOC: NAlloc = NAlloc::new();

/// One "proof": many small field elements, a few large vectors, cross-thread
/// work, everything freed at the end.
fn proving_round(round: u64) -> u64 {
    let elems: Vec<Box<[u64; 4]>> = (0..20_000).map(|i| Box::new([i, round, i ^ round, 1])).collect();
    let mut poly = vec![0u64; 1 << 20];
    for (i, x) in poly.iter_mut().enumerate() {
        *x = i as u64 ^ round;
    }
    let evals: Vec<u64> = std::thread::scope(|s| {
        let h = s.spawn(|| poly.iter().step_by(3).copied().collect::<Vec<u64>>());
        h.join().unwrap()
    });
    let strings: Vec<String> = (0..2000).map(|i| format!("wire-{i}-{round}")).collect();
    elems.iter().map(|e| e[0] + e[2]).sum::<u64>() + evals[7] + strings.len() as u64
}

#[test]
fn memory_is_reused_and_returned() {
    // -- 1,000 proving rounds, scaled: RSS after the last stays within 1.5x
    //    of RSS after the first.
    proving_round(0);
    let after_first = rss();
    for r in 1..200 {
        proving_round(r);
    }
    let after_last = rss();
    assert!(
        (after_last as f64) <= after_first as f64 * 1.5,
        "RSS grew from {after_first} to {after_last} over 200 rounds"
    );

    // -- Thousands of short-lived threads: heaps are reused, RSS bounded.
    let before_threads = rss();
    for batch in 0..500 {
        let hs: Vec<_> = (0..20)
            .map(|i| {
                std::thread::spawn(move || {
                    let v: Vec<Vec<u8>> = (0..50).map(|k| vec![k as u8; 100 + i + batch]).collect();
                    v.len()
                })
            })
            .collect();
        for h in hs {
            assert_eq!(h.join().unwrap(), 50);
        }
    }
    let after_threads = rss();
    let stats = ALLOC.stats();
    assert!(
        stats.heaps <= 64,
        "10,000 short-lived threads (20 at a time) made {} heaps",
        stats.heaps
    );
    assert!(
        after_threads < before_threads + (64 << 20),
        "RSS grew from {before_threads} to {after_threads} over 10,000 threads"
    );

    // -- A phase of many small blocks: once freed, their pages go back to the
    //    OS after a few milliseconds (the purge delay) while the thread goes
    //    on working — also the empty segments kept for reuse — with no trim.
    //    With purging off (`set_purge_delay(None)`) it stays resident.
    let small_phase = || {
        std::thread::spawn(|| {
            let base = rss();
            let v: Vec<Box<[u64; 32]>> = (0..200_000).map(|i| Box::new([i as u64; 32])).collect();
            let peak = rss();
            assert!(v.iter().enumerate().all(|(i, b)| b[31] == i as u64));
            drop(v);
            let t = std::time::Instant::now();
            while t.elapsed() < std::time::Duration::from_millis(60) {
                // Work that takes the slow paths now and then: large blocks.
                drop(std::hint::black_box(vec![1u8; 256 << 10]));
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            assert!(
                peak >= base + (40 << 20),
                "RSS {base} -> {peak} for 51 MB of small blocks"
            );
            (peak, rss())
        })
        .join()
        .unwrap()
    };
    assert_eq!(ALLOC.purge_delay(), Some(std::time::Duration::from_millis(5)));
    // Warm spans of the phases before would give way to the small blocks
    // (see below) and blur the figures.
    ALLOC.trim();
    let (peak, after) = small_phase();
    assert!(
        after + (40 << 20) <= peak,
        "RSS {peak} -> {after} 60 ms after freeing 51 MB of small blocks"
    );
    ALLOC.set_purge_delay(None);
    let (peak, after) = small_phase();
    assert!(after + (20 << 20) > peak, "RSS {peak} -> {after} with purging off");
    ALLOC.trim();
    ALLOC.set_purge_delay(Some(std::time::Duration::from_millis(5)));

    // -- A trim is process-wide: a live thread that was idle while another
    //    thread trimmed gives its free small-object memory back at its next
    //    slow path.
    live_thread_trims_at_its_next_slow_path();

    // -- Rounds of short-lived threads: what one round's threads leave free
    //    when they exit (in their retired heaps, and as empty segments in
    //    the cache), the next round's threads take over without faulting it
    //    in again, although the surviving thread kept working (and tidying)
    //    for longer than the purge delay in between; once no thread takes it,
    //    it goes back after the longer delay of memory no thread owns.
    thread_rounds_reuse_then_return();

    // -- Warm pool: a 32 MiB vector allocated, filled and dropped 50 times
    //    faults its pages in only once.
    ALLOC.set_pool_cap(1 << 30);
    let fill_once = || {
        let mut v = vec![0u8; 32 << 20];
        for i in (0..v.len()).step_by(4096) {
            v[i] = i as u8;
        }
        std::hint::black_box(&v);
    };
    fill_once();
    let f0 = minor_faults();
    for _ in 0..50 {
        fill_once();
    }
    let faults = minor_faults() - f0;
    // 32 MiB is 8,192 small pages; 50 cold rounds would be ~400,000 faults.
    assert!(faults < 2_000, "{faults} minor faults over 50 warm rounds");
    let s = ALLOC.stats();
    assert!(s.pool_hits >= 50 && s.pool_retained >= 32 << 20);

    // -- trim gives the warm memory back.
    let before_trim = rss();
    let released = ALLOC.trim();
    let after_trim = rss();
    assert!(released >= 32 << 20, "trim released {released} bytes");
    assert!(
        after_trim + (30 << 20) <= before_trim,
        "RSS {before_trim} -> {after_trim} after trim"
    );
    assert_eq!(ALLOC.stats().pool_retained, 0);

    // -- Pool cap: with a 16 MiB cap a freed 32 MiB span is not retained.
    ALLOC.set_pool_cap(16 << 20);
    drop(vec![1u8; 32 << 20]);
    assert_eq!(ALLOC.stats().pool_retained, 0);
    ALLOC.set_pool_cap(1 << 30);

    // -- Warm spans give way to small objects: once a program's vectors
    //    shrink and its small objects grow, the pooled spans are released
    //    as the small-object memory is written, so retention does not raise
    //    the peak (without it: +32 MiB here). Twice: with a span made after
    //    the vectors shrink (the list of small blocks, grown by `collect`),
    //    and with none (the list made first), when the freed vectors sit in
    //    the thread's own span cache and the heap's tidy puts them back.
    for list_first in [false, true] {
        ALLOC.trim();
        let mut elems: Vec<Box<[u64; 32]>> = Vec::with_capacity(if list_first { 131_072 } else { 0 });
        let mut vecs: Vec<Vec<u8>> = (0..4).map(|i| vec![i as u8 + 1; 16 << 20]).collect();
        let at_peak = rss();
        vecs.truncate(2);
        assert!(
            ALLOC.stats().pool_retained >= 32 << 20,
            "the freed vectors were not kept warm"
        );
        if list_first {
            elems.extend((0..131_072).map(|i| Box::new([i as u64; 32])));
        } else {
            elems = (0..131_072).map(|i| Box::new([i as u64; 32])).collect();
        }
        let with_small = rss();
        assert!(elems.iter().enumerate().all(|(i, b)| b[31] == i as u64));
        assert!(vecs.iter().all(|v| v[v.len() - 1] == v[0]));
        assert!(
            with_small <= at_peak + (8 << 20),
            "list first: {list_first}: RSS {at_peak} with 64 MiB of vectors, {with_small} with 32 MiB of them \
             and 32 MiB of small blocks (retained {} bytes)",
            ALLOC.stats().pool_retained
        );
        drop((vecs, elems));
    }
    ALLOC.trim();

    // -- A thread's span cache: a vector freed and made again at the same
    //    size comes back at the same address without the pool's lock; a thread
    //    that exits puts its cached spans into the pool, where another
    //    thread finds them; trim gives the caller's cache back.
    let locks = || ALLOC.stats().events.lock_acquisitions;
    let v = vec![1u8; 1 << 20];
    let addr = v.as_ptr() as usize;
    drop(v);
    let before = locks();
    for round in 0..100u8 {
        let v = vec![round; 1 << 20];
        assert_eq!(v.as_ptr() as usize, addr, "round {round}: not the cached span");
        assert_eq!(v[v.len() - 1], round);
    }
    // Through the pool, each reuse takes its lock twice (take and put): 200.
    // What remains is the heap's own housekeeping (its tidy, which large
    // allocations bring forward, looks at exited threads' heaps).
    let taken = locks() - before;
    assert!(taken < 25, "{taken} locks taken by 100 cached reuses");
    let exited = std::thread::spawn(|| {
        let v = vec![3u8; 3 << 20];
        v.as_ptr() as usize
    })
    .join()
    .unwrap();
    let v = vec![4u8; 3 << 20];
    assert_eq!(
        v.as_ptr() as usize,
        exited,
        "an exited thread's cached span was not pooled"
    );
    drop(v);
    assert!(ALLOC.stats().pool_retained >= 4 << 20);
    ALLOC.trim();
    assert_eq!(ALLOC.stats().pool_retained, 0, "trim left cached spans");

    // -- Spans that no warm range holds take no lock to find that out, and
    //    a thread whose cache overflows puts spans back in batches. 64 live
    //    1 MiB vectors after a trim (nothing pooled or cached): through the
    //    pool's lock each would take it once for nothing (64). Then all
    //    freed: 8 MiB stay cached, 56 go to the pool, one lock trip each
    //    without batching (56).
    let mut vecs: Vec<Vec<u8>> = Vec::with_capacity(64);
    let before = locks();
    for i in 0..64u8 {
        vecs.push(vec![i; 1 << 20]);
    }
    let taken = locks() - before;
    assert!(taken < 8, "{taken} locks taken by 64 spans that missed an empty pool");
    let before = locks();
    drop(vecs);
    let taken = locks() - before;
    assert!(taken < 28, "{taken} locks taken to cache or pool 64 freed spans");
    ALLOC.trim();
    // The same where the cache's slot bound (32 spans) is reached before
    // its byte bound: 32 of 64 freed 128 KiB spans overflow, a batch of 8
    // per trip (one trip each without batching: 32).
    let vecs: Vec<Vec<u8>> = (0..64u8).map(|i| vec![i; 128 << 10]).collect();
    let before = locks();
    drop(vecs);
    let taken = locks() - before;
    assert!(
        taken < 16,
        "{taken} locks taken to cache or pool 64 freed 128 KiB spans"
    );
    ALLOC.trim();

    // -- Cached spans that retention must give up (the small objects grew
    //    while they sat in the cache) go straight to the OS, not through
    //    the pool (a put and a cut under its lock), and the growth does not
    //    take the pool's lock page by page. Peaks restarted: retention is
    //    bounded by the peak of what the program needed, here the 8 MiB of
    //    vectors and then the small blocks. The list is made first so that
    //    no span call puts the cached vectors into the pool.
    ALLOC.reset_peaks();
    let mut elems: Vec<Box<[u64; 32]>> = Vec::with_capacity(65_536);
    let vecs: Vec<Vec<u8>> = (0..8u8).map(|i| vec![i; 1 << 20]).collect();
    drop(vecs);
    assert!(
        ALLOC.stats().pool_retained >= 8 << 20,
        "the freed vectors were not kept"
    );
    let before = locks();
    elems.extend((0..65_536).map(|i| Box::new([i as u64; 32])));
    // A span call that the cache could serve (an exact fit): the cache
    // settles first and releases what retention cannot keep.
    drop(vec![1u8; 1 << 20]);
    let taken = locks() - before;
    assert!(
        ALLOC.stats().pool_retained <= 1 << 20,
        "cached spans kept beside 16 MiB of new small blocks: {} bytes",
        ALLOC.stats().pool_retained
    );
    assert!(taken < 32, "{taken} locks taken while retention released cached spans");
    assert!(elems.iter().enumerate().all(|(i, b)| b[31] == i as u64));
    drop(elems);
    ALLOC.trim();

    // -- The same with the vector in the pool (12 MiB: too large for a
    //    thread's cache): the pool is cut back as the small blocks grow, a
    //    lock trip per growth of 1/64 of the budget, not per page written
    //    (4,096 pages here).
    ALLOC.reset_peaks();
    let mut elems: Vec<Box<[u64; 32]>> = Vec::with_capacity(65_536);
    drop(vec![7u8; 12 << 20]);
    assert!(
        ALLOC.stats().pool_retained >= 12 << 20,
        "the freed vector was not pooled"
    );
    let before = locks();
    elems.extend((0..65_536).map(|i| Box::new([i as u64; 32])));
    let taken = locks() - before;
    assert!(
        ALLOC.stats().pool_retained < 1 << 20,
        "pooled span kept beside 16 MiB of new small blocks: {} bytes",
        ALLOC.stats().pool_retained
    );
    assert!(
        taken < 100,
        "{taken} locks taken while the pool made room for small blocks"
    );
    assert!(elems.iter().enumerate().all(|(i, b)| b[31] == i as u64));
    drop(elems);
    ALLOC.trim();

    // -- A vector grows in place into the pooled range right after it:
    //    4 MiB cut from a pooled 16 MiB range, then grown to 12 MiB.
    drop(vec![9u8; 16 << 20]);
    let mut v: Vec<u8> = Vec::with_capacity(4 << 20);
    v.resize(4 << 20, 5);
    let at = v.as_ptr() as usize;
    v.reserve_exact(8 << 20);
    assert_eq!(v.as_ptr() as usize, at, "did not grow into the pooled range after it");
    assert!(v.iter().all(|&b| b == 5));
    drop(v);
    ALLOC.trim();

    // -- alloc_zeroed of fresh memory does not touch it (no memset).
    let l = Layout::from_size_align(512 << 20, 64).unwrap();
    let before = rss();
    // SAFETY: valid layout; freed below.
    let p = unsafe { ALLOC.alloc_zeroed(l) };
    assert!(!p.is_null());
    let touched = rss().saturating_sub(before);
    assert!(
        touched < 8 << 20,
        "alloc_zeroed touched {touched} bytes of fresh memory"
    );
    // SAFETY: reading zeroed memory of the live block.
    assert_eq!(unsafe { *p.add(300 << 20) }, 0);
    // SAFETY: live block.
    unsafe { ALLOC.dealloc(p, l) };
    ALLOC.trim();

    // -- A span no pooled range holds is built from the warm pages of
    //    smaller freed ones (moved, not faulted afresh), and is zero where
    //    it must be.
    #[cfg(target_os = "linux")]
    {
        ALLOC.trim();
        let gathered = ALLOC.stats().span_gathered_bytes;
        let small = Layout::from_size_align(12 << 20, 16).unwrap();
        let large = Layout::from_size_align(24 << 20, 16).unwrap();
        // SAFETY: valid layout; filled, then freed into the pool.
        let a = unsafe { ALLOC.alloc(small) };
        assert!(!a.is_null());
        common::fill(a, small.size(), 41);
        // SAFETY: live block.
        unsafe { ALLOC.dealloc(a, small) };
        // SAFETY: valid layout; freed below.
        let b = unsafe { ALLOC.alloc(large) };
        assert!(!b.is_null());
        assert!(
            ALLOC.stats().span_gathered_bytes >= gathered + small.size() as u64,
            "the freed 12 MiB was not moved into the 24 MiB span"
        );
        // The first piece sits at the span's start: the old block's bytes,
        // untouched since (read through /proc/self/mem, not the pointer).
        let head = common::peek(b as usize, 4096).expect("/proc/self/mem readable");
        let mut want = vec![0u8; 4096];
        common::fill(want.as_mut_ptr(), 4096, 41);
        assert_eq!(head, want, "the span's first page is not the freed block's");
        common::fill(b, large.size(), 42);
        assert!(common::check(b, large.size(), 42));
        // SAFETY: live block.
        unsafe { ALLOC.dealloc(b, large) };
        // The same through alloc_zeroed: the moved pages are cleared.
        ALLOC.trim();
        // SAFETY: valid layout; filled, then freed into the pool.
        let a = unsafe { ALLOC.alloc(small) };
        common::fill(a, small.size(), 43);
        // SAFETY: live block.
        unsafe { ALLOC.dealloc(a, small) };
        let gathered = ALLOC.stats().span_gathered_bytes;
        // SAFETY: valid layout; freed below.
        let z = unsafe { ALLOC.alloc_zeroed(large) };
        assert!(ALLOC.stats().span_gathered_bytes > gathered);
        // SAFETY: `z` is live and `large.size()` bytes long.
        let bytes = unsafe { std::slice::from_raw_parts(z, large.size()) };
        assert!(bytes.iter().all(|&x| x == 0), "alloc_zeroed handed out old bytes");
        // SAFETY: live block.
        unsafe { ALLOC.dealloc(z, large) };
        // A small warm piece at the front of a large zeroed span is cleared
        // in place, not judged by the span's fresh rest (which would make it
        // look sparse, 2 of 24 MiB resident) and handed back to the kernel.
        ALLOC.trim();
        let piece = Layout::from_size_align(2 << 20, 16).unwrap();
        // SAFETY: valid layout; filled, then freed into the pool.
        let a = unsafe { ALLOC.alloc(piece) };
        common::fill(a, piece.size(), 44);
        // SAFETY: live block.
        unsafe { ALLOC.dealloc(a, piece) };
        let gathered = ALLOC.stats().span_gathered_bytes;
        // SAFETY: valid layout; freed below.
        let z = unsafe { ALLOC.alloc_zeroed(large) };
        assert!(ALLOC.stats().span_gathered_bytes >= gathered + piece.size() as u64);
        let faults = minor_faults();
        // SAFETY: `z` is live, the first 2 MiB are zeroed memory of it.
        let front = unsafe { std::slice::from_raw_parts(z, piece.size()) };
        assert!(front.iter().all(|&x| x == 0), "alloc_zeroed handed out old bytes");
        let refaulted = minor_faults() - faults;
        assert!(
            refaulted < 64,
            "the warm piece was purged: {refaulted} faults reading it"
        );
        // SAFETY: live block.
        unsafe { ALLOC.dealloc(z, large) };
        ALLOC.trim();
    }

    // -- A large vector grows by moving page tables (`mremap`), not bytes,
    //    when no warm span can take it.
    #[cfg(target_os = "linux")]
    {
        ALLOC.trim();
        let remaps = ALLOC.stats().span_remaps;
        let mut v: Vec<u64> = Vec::with_capacity(8 << 20);
        v.resize(8 << 20, 3);
        ALLOC.trim(); // nothing warm to grow into
        v.reserve_exact(24 << 20);
        assert!(
            ALLOC.stats().span_remaps > remaps,
            "a 64 -> 256 MiB growth copied its bytes"
        );
        assert!(v.iter().all(|&x| x == 3), "contents lost in the remap");
        drop(v);
        ALLOC.trim();
    }

    // -- alloc_zeroed of a recycled block its last user barely touched is
    //    not faulted in to be cleared: 20 rounds of 100 MiB, two bytes
    //    written each, stay far below one block's size.
    let l = Layout::from_size_align(100 << 20, 16).unwrap();
    let before = rss();
    let mut highest = before;
    for round in 0..20usize {
        // SAFETY: valid layout; freed below.
        let p = unsafe { ALLOC.alloc_zeroed(l) };
        assert!(!p.is_null());
        // SAFETY: two bytes of the live, zeroed block.
        unsafe {
            let a = p.add(round * 4096 % l.size());
            assert_eq!((*a, *p.add(l.size() - 1)), (0, 0), "round {round}: not zeroed");
            *a = 1;
            *p.add(l.size() - 1) = 2;
        }
        highest = highest.max(rss());
        // SAFETY: live block.
        unsafe { ALLOC.dealloc(p, l) };
    }
    assert!(
        highest - before < 24 << 20,
        "sparse alloc_zeroed rounds raised RSS by {} MiB",
        (highest - before) >> 20
    );
    ALLOC.trim();
}

/// The phase "Rounds of short-lived threads" of
/// [`memory_is_reused_and_returned`]. Purge delay 50 ms, so memory no thread
/// owns waits 400 ms: the survivor works 100 ms between the rounds (twice
/// the purge delay, a quarter of the wait), then 1.2 s after them.
fn thread_rounds_reuse_then_return() {
    use std::time::{Duration, Instant};
    const THREADS: u64 = 4;
    const BYTES: u64 = 4 << 20; // per thread
    ALLOC.set_purge_delay(Some(Duration::from_millis(50)));
    ALLOC.trim();
    // One round: THREADS fresh threads fill and free 4 MiB of blocks of
    // `words` words each, but hand one block (their first) to this thread,
    // so that their heaps retire with a segment in use; their other
    // segments go to the cache empty. The second round's blocks are of
    // another size: its threads cannot take the first round's pages as they
    // were, they set up the slots afresh, over many slow paths (and tidies).
    // Returns the round's minor faults and the blocks handed over.
    // All of a round's threads live at once (a barrier before they free), so
    // each has a heap of its own.
    let round = |seed: u64, words: usize| -> (u64, Vec<Box<[u64]>>) {
        let f0 = minor_faults();
        let all_made = std::sync::Arc::new(std::sync::Barrier::new(THREADS as usize));
        let kept: Vec<Box<[u64]>> = (0..THREADS)
            .map(|t| {
                let all_made = all_made.clone();
                std::thread::spawn(move || {
                    let n = BYTES / (words as u64 * 8);
                    let mut v: Vec<Box<[u64]>> = (0..n)
                        .map(|i| vec![seed ^ (t << 20) ^ i; words].into_boxed_slice())
                        .collect();
                    all_made.wait();
                    assert!(v.iter().zip(0..).all(|(b, i)| b[words - 1] == seed ^ (t << 20) ^ i));
                    let first = v.swap_remove(0);
                    drop(v);
                    first
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect();
        (minor_faults() - f0, kept)
    };
    // The survivor's work: large blocks count towards its heap's tidies,
    // which look at the exited threads' heaps and the segment cache.
    let work = |ms: u64| {
        let t = Instant::now();
        while t.elapsed() < Duration::from_millis(ms) {
            drop(std::hint::black_box(vec![1u8; 256 << 10]));
            std::thread::sleep(Duration::from_millis(1));
        }
    };
    let (first, kept_a) = round(1, 64);
    work(100);
    let (second, kept_b) = round(2, 128);
    assert!(
        second * 4 < first,
        "the second round took {second} minor faults, the first {first}: what the first left was given back"
    );
    // The handed-over blocks stay live, so the exited threads' heaps keep
    // segments in use: what is free there goes back from the heaps (the
    // segment cache alone gave back about half), the rest from the cache.
    let returned = ALLOC.stats().returned_to_os;
    work(1200);
    let back = ALLOC.stats().returned_to_os - returned;
    assert!(
        back >= (2 * THREADS * BYTES * 3 / 4) as usize,
        "{back} bytes of the two rounds' {} given back 1.2 s after their threads exited",
        2 * THREADS * BYTES
    );
    assert!(kept_a.iter().chain(&kept_b).all(|b| b[0] == b[b.len() - 1]));
    drop((kept_a, kept_b));
    ALLOC.trim();
    ALLOC.set_purge_delay(Some(Duration::from_millis(5)));
}

/// The phase "A trim is process-wide" of [`memory_is_reused_and_returned`].
/// Purging is off, so that nothing but the trim gives the worker's memory
/// back: its own tidies only release pages to their segments. The threads
/// hand over turns through an atomic, not a channel: a blocking receive may
/// allocate, which is a slow path of its own, taken while the other thread
/// measures.
fn live_thread_trims_at_its_next_slow_path() {
    use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
    use std::sync::Arc;
    use std::time::Duration;
    let wait_for = |turn: &AtomicU32, stage: u32| {
        while turn.load(SeqCst) != stage {
            std::thread::sleep(Duration::from_millis(1));
        }
    };
    ALLOC.set_purge_delay(None);
    ALLOC.trim();
    let turn = Arc::new(AtomicU32::new(0));
    let worker = {
        let turn = turn.clone();
        std::thread::spawn(move || {
            let v: Vec<Box<[u64; 32]>> = (0..200_000).map(|i| Box::new([i as u64; 32])).collect();
            assert!(v.iter().enumerate().all(|(i, b)| b[31] == i as u64));
            drop(v);
            turn.store(1, SeqCst);
            // Idle while the main thread trims.
            wait_for(&turn, 2);
            // The next slow path: the first block of a class this thread has
            // not used (its refill), no large block.
            let b = std::hint::black_box(Box::new([7u8; 20_000]));
            assert_eq!(b[19_999], 7);
            turn.store(3, SeqCst);
            // Alive until the main thread has measured.
            wait_for(&turn, 4);
        })
    };
    wait_for(&turn, 1);
    let (returned, resident) = (ALLOC.stats().returned_to_os, rss());
    ALLOC.trim();
    let by_trim = ALLOC.stats().returned_to_os - returned;
    turn.store(2, SeqCst);
    wait_for(&turn, 3);
    let by_worker = ALLOC.stats().returned_to_os - returned - by_trim;
    let after = rss();
    turn.store(4, SeqCst);
    worker.join().unwrap();
    ALLOC.set_purge_delay(Some(Duration::from_millis(5)));
    // The trim itself takes what the worker's tidies put in the shared
    // segment cache (17 MB); the rest, the empty segments and pages the
    // worker's heap keeps (40 MB), only its owner can give back.
    assert!(
        by_worker >= 24 << 20 && after + (40 << 20) <= resident,
        "after another thread's trim, the worker's next slow path gave back {by_worker} bytes of its 51 MB \
         of freed small blocks (the trim itself {by_trim}; RSS {resident} -> {after})"
    );
    ALLOC.trim();
}
