//! Polynomial and scratch arenas.

use std::alloc::Layout;
use zk_nalloc::allocator_api2::vec::Vec as AVec;
use zk_nalloc::{NAlloc, PolynomialArena, ScratchArena};

#[global_allocator]
static ALLOC: NAlloc = NAlloc::new();

#[test]
fn polynomial_blocks_are_simd_page_and_huge_page_aligned() {
    let poly = ALLOC.polynomial();
    let (page, huge) = (ALLOC.page_size(), ALLOC.huge_page_size());
    assert!(page.is_power_of_two() && (4096..=65536).contains(&page), "{page}");
    for n in [8usize, 100, 4096, 10_000, 1 << 20, 3 << 20, 40 << 20, huge] {
        let p = poly.alloc_fft_friendly(n);
        assert!(!p.is_null());
        assert_eq!(p as usize % 64, 0, "{n}");
        if n >= page {
            assert_eq!(p as usize % page, 0, "{n}");
        }
        if n >= huge {
            assert_eq!(p as usize % huge, 0, "{n}");
        }
        // SAFETY: `n` live bytes.
        unsafe { p.write_bytes(1, n) };
        // SAFETY: allocated above with `n`.
        unsafe { poly.dealloc_fft(p, n) };
    }
    let z = poly.alloc_fft_friendly_zeroed(1 << 20);
    // SAFETY: 1 MiB live.
    assert!(unsafe { std::slice::from_raw_parts(z, 1 << 20) }
        .iter()
        .all(|&b| b == 0));
    // SAFETY: allocated above.
    unsafe { poly.dealloc_fft(z, 1 << 20) };
}

#[test]
fn polynomial_vectors_through_the_allocator_api() {
    let poly = PolynomialArena::new();
    let mut v: AVec<u64, &PolynomialArena> = poly.vec_with_capacity(1000);
    assert_eq!(v.as_ptr() as usize % 64, 0);
    v.extend(0..100_000u64);
    assert_eq!(v.iter().sum::<u64>(), 4_999_950_000);
    assert!(poly.used() >= 800_000);
    drop(v);
    assert_eq!(poly.used(), 0);
    assert!(poly.peak() >= 800_000);
    // SAFETY: zero is a valid u64.
    let z = unsafe { poly.zeroed_vec::<u64>(1 << 18) };
    assert!(z.iter().all(|&x| x == 0));
}

#[cfg(target_os = "linux")]
#[test]
fn huge_pages_are_reported_as_really_backed() {
    use zk_nalloc::HugePages;
    let thp = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").unwrap_or_default();
    let poly = PolynomialArena::new();
    let nalloc = NAlloc::new();
    nalloc.set_huge_pages(HugePages::On);
    let n = 64 << 20;
    let p = poly.alloc_fft_friendly(n);
    // SAFETY: `n` live bytes.
    unsafe { p.write_bytes(7, n) };
    let backed = poly.huge_page_bytes().expect("Linux reports AnonHugePages");
    assert!(backed <= n);
    if nalloc.huge_page_size() > n {
        // A simulated 64 KiB page (test builds only) makes the huge page
        // 512 MiB: this span is too small to be advised at all.
        println!("skipped: huge page of {} bytes > the span", nalloc.huge_page_size());
    } else if !thp.contains("[never]") {
        assert!(
            backed >= 2 << 20,
            "no huge page backs a touched 64 MiB span (THP: {thp})"
        );
    }
    // SAFETY: allocated above.
    unsafe { poly.dealloc_fft(p, n) };
    assert_eq!(poly.huge_page_bytes(), Some(0), "freed spans are no longer counted");

    // Explicit MAP_HUGETLB pages: used when the kernel's pool has pages,
    // otherwise the allocation falls back and still succeeds.
    nalloc.set_huge_pages(HugePages::Explicit);
    let before = nalloc.stats().explicit_huge_bytes;
    let p = poly.alloc_fft_friendly(4 << 20);
    assert!(!p.is_null());
    // SAFETY: live bytes.
    unsafe { p.write_bytes(3, 4 << 20) };
    let pool: usize = std::fs::read_to_string("/proc/sys/vm/nr_hugepages")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    if pool == 0 {
        assert_eq!(nalloc.stats().explicit_huge_bytes, before, "no pool, no explicit pages");
    }
    // SAFETY: allocated above.
    unsafe { poly.dealloc_fft(p, 4 << 20) };
    nalloc.set_huge_pages(HugePages::Auto);
}

#[test]
fn scratch_scope_resets_in_o1_and_keeps_its_chunks() {
    let mut arena = ALLOC.scratch();
    let total = arena.scope(|s| {
        let mut sum = 0u64;
        for i in 0..10_000u64 {
            let x = s.alloc_val(i);
            sum += *x;
        }
        let big = s.alloc_slice_fill_with(1 << 20, |i| i as u32);
        sum + big[12345] as u64
    });
    assert_eq!(total, 49_995_000 + 12345);
    assert_eq!(arena.used(), 0);
    let cap = arena.capacity();
    assert!(cap >= 4 << 20);
    // The next round reuses the same chunks: no new memory.
    arena.scope(|s| {
        let a = s.alloc_slice_copy(&[1u8, 2, 3]);
        let b = s.alloc_val([0u64; 8]);
        assert_eq!(a, &[1, 2, 3]);
        assert_eq!(b.as_ptr() as usize % 8, 0);
    });
    assert_eq!(arena.capacity(), cap);
}

#[test]
fn scratch_alignment_allocator_api_and_raw_reset() {
    let arena = ScratchArena::new();
    // Alignment padding larger than what is left in the chunk must move on
    // to a new chunk, never past the end (a planted overflow here corrupted
    // neighbouring spans).
    let mut blocks = Vec::new();
    for round in 0..50 {
        for align in [1usize, 8, 64, 4096, 1 << 16] {
            let size = 24 + round * 1000;
            let p = arena.alloc(Layout::from_size_align(size, align).unwrap()).unwrap();
            assert_eq!(p.as_ptr() as usize % align, 0);
            // SAFETY: `size` bytes just allocated.
            unsafe { p.as_ptr().write_bytes(round as u8, size) };
            blocks.push((p.as_ptr() as usize, size));
        }
    }
    blocks.sort();
    for w in blocks.windows(2) {
        assert!(w[0].0 + w[0].1 <= w[1].0, "scratch blocks overlap");
    }
    {
        let mut v: AVec<u64, &ScratchArena> = AVec::new_in(&arena);
        v.extend(0..10_000u64);
        assert_eq!(v[9_999], 9_999);
        assert!(arena.used() > 80_000, "used {}", arena.used());
    }
    // Dropping the vector rolled back its final (most recent) buffer.
    assert!(arena.used() > 0);
    // SAFETY: nothing allocated from the arena is used afterwards.
    unsafe { arena.reset() };
    assert_eq!(arena.used(), 0);
    // Independent arenas on independent threads.
    let hs: Vec<_> = (0..4u64)
        .map(|t| {
            std::thread::spawn(move || {
                let mut a = ScratchArena::new();
                a.scope(|s| (0..1000u64).map(|i| *s.alloc_val(i * t)).sum::<u64>())
            })
        })
        .collect();
    for (t, h) in hs.into_iter().enumerate() {
        assert_eq!(h.join().unwrap(), 499_500 * t as u64);
    }
    let s = ALLOC.stats();
    assert!(s.scratch_capacity > 0);
}

/// A reset walks nothing and keeps every chunk: after blocks spread over
/// many chunks, `clear` makes the arena empty with the same capacity, and
/// the next allocation lands where the very first one did — the reset only
/// moved the arena back to its first chunk (its time cannot depend on what
/// was allocated; the bench's `batch` row times it).
#[test]
fn scratch_reset_keeps_chunks_and_starts_over_at_the_first() {
    let mut arena = ScratchArena::new();
    let first = arena.alloc_val(1u64) as *mut u64 as usize;
    for i in 0..200_000u64 {
        arena.alloc_val(i);
    }
    let (used, capacity) = (arena.used(), arena.capacity());
    assert!(
        used >= 200_000 * 8 && capacity >= used,
        "used {used}, capacity {capacity}"
    );
    arena.clear();
    assert_eq!(arena.used(), 0);
    assert_eq!(arena.capacity(), capacity, "reset gave chunks back");
    assert_eq!(
        arena.alloc_val(2u64) as *mut u64 as usize,
        first,
        "reset did not start over at the first chunk"
    );
}
