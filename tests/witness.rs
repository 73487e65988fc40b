//! Witness memory: every security property, with the kernel's evidence.
//! Linux and Windows: bytes are read back as a debugger would (`peek`). The
//! tests that read `/proc/self/maps` or fork are Linux only; Windows' own
//! evidence (guards, locking, decommit) is in tests/windows.rs.
#![cfg(any(target_os = "linux", windows))]

use std::alloc::Layout;
use zk_nalloc::allocator_api2::vec::Vec as AVec;
use zk_nalloc::{NAlloc, SecretBox, SecretVec, WitnessArena};

mod common;
use common::peek;
#[cfg(target_os = "linux")]
use common::{isolated, mapping_count, maps_neighbours, vm_flags};

#[global_allocator]
static ALLOC: NAlloc = NAlloc::new();

/// True if the kernel marks the page at `addr` with `flag`, a VmFlag of
/// witness memory (`lo`: locked, `dd`: excluded from core dumps). Windows
/// has no per-page query for either: there it is whether `addr` lies in the
/// witness region, whose chunks are all locked or counted in `stats` (see
/// tests/windows.rs).
fn witness_flag(addr: usize, flag: &str) -> bool {
    #[cfg(target_os = "linux")]
    {
        vm_flags(addr).iter().any(|f| f == flag)
    }
    #[cfg(windows)]
    {
        let _ = flag;
        zk_nalloc::raw::is_witness(addr as *const u8)
    }
}

/// Runs `child` in a forked child (which must only do raw memory accesses)
/// and returns its wait status.
#[cfg(target_os = "linux")]
fn in_child(child: impl FnOnce() -> i32) -> i32 {
    // SAFETY: the child runs only `child` (raw reads/writes) and `_exit`;
    // it never allocates or takes locks, so forking a threaded test is fine.
    unsafe {
        let pid = libc::fork();
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            libc::alarm(10);
            let code = child();
            libc::_exit(code);
        }
        let mut status = 0;
        assert_eq!(libc::waitpid(pid, &mut status, 0), pid);
        status
    }
}

#[test]
#[cfg(target_os = "linux")]
fn witness_memory_is_zeroed_locked_undumpable_wiped_on_fork_and_fenced() {
    let w = ALLOC.witness();
    let p = w.alloc(200, 16);
    assert!(!p.is_null());
    // SAFETY: 200 live bytes.
    assert!(unsafe { std::slice::from_raw_parts(p, 200) }.iter().all(|&b| b == 0));
    let flags = vm_flags(p as usize);
    for f in ["dd", "wf", "lo"] {
        assert!(flags.iter().any(|x| x == f), "VmFlags {flags:?} lack {f}");
    }
    // The run holding the block is fenced: an inaccessible mapping directly
    // before and after it, no bookkeeping page (it is out of line).
    let run = common::fenced_run(p as usize);
    assert!(run.before.contains(" ---p "), "no guard before the run: {run:?}");
    assert!(run.after.contains(" ---p "), "no guard after the run: {run:?}");
    let s = w.stats();
    assert!(s.locked && s.dump_excluded && s.fork_wiped, "{s:?}");
    assert!(s.used >= 200 && s.capacity >= s.used);

    // MADV_WIPEONFORK: a forked child sees zeros where the parent has data.
    // SAFETY: 200 live bytes.
    unsafe { p.write_bytes(0x5A, 200) };
    let addr = p as usize;
    let status = in_child(move || {
        // Every byte of the secret, not just the first: the child must see
        // none of them.
        let seen = (0..200).fold(0u8, |acc, i| {
            // SAFETY: the mapping exists in the child (zero-filled).
            acc | unsafe { std::ptr::read_volatile((addr + i) as *const u8) }
        });
        i32::from(seen != 0)
    });
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "child saw the secret"
    );
    // SAFETY: allocated above with this size and alignment.
    unsafe { w.dealloc(p, 200, 16) };
}

/// True if this kernel names anonymous mappings (`PR_SET_VMA_ANON_NAME`,
/// Linux 5.17 with `CONFIG_ANON_VMA_NAME`), tried on a page of our own.
#[cfg(target_os = "linux")]
fn kernel_names_anonymous_mappings() -> bool {
    const PR_SET_VMA: libc::c_int = 0x5356_4d41;
    const PR_SET_VMA_ANON_NAME: libc::c_ulong = 0;
    // SAFETY: a fresh private anonymous page, named, then unmapped; nothing
    // else refers to it.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        assert_ne!(p, libc::MAP_FAILED);
        let ok = libc::prctl(
            PR_SET_VMA,
            PR_SET_VMA_ANON_NAME,
            p as libc::c_ulong,
            4096,
            c"probe".as_ptr(),
        ) == 0;
        libc::munmap(p, 4096);
        ok
    }
}

#[test]
#[cfg(target_os = "linux")]
fn witness_mappings_are_named_where_the_kernel_allows() {
    let w = WitnessArena::new();
    let p = w.alloc(64, 8);
    assert!(!p.is_null());
    let (_, this, _) = maps_neighbours(p as usize);
    if kernel_names_anonymous_mappings() {
        assert!(this.ends_with("[anon:nalloc-witness]"), "{this}");
    } else {
        // The arena works unnamed: naming is cosmetic (see os::name).
        eprintln!("kernel without PR_SET_VMA_ANON_NAME: {this}");
        assert!(!this.contains("nalloc-witness"), "{this}");
    }
    // SAFETY: allocated above.
    unsafe { w.dealloc(p, 64, 8) };
}

#[test]
#[cfg(target_os = "linux")]
fn overflow_past_a_witness_block_faults() {
    let w = WitnessArena::new();
    let size = 100_000; // a large witness block: its own chunk, ending at a guard page
    let p = w.alloc(size, 16);
    assert!(!p.is_null());
    let end = p as usize + size;
    let status = in_child(move || {
        // SAFETY: deliberately one byte past the block: must fault.
        unsafe { std::ptr::write_volatile(end as *mut u8, 1) };
        0
    });
    assert!(
        libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGSEGV,
        "overflow did not fault: status {status:#x}"
    );
    let status = in_child(move || {
        // SAFETY: the last byte of the block is valid.
        unsafe { std::ptr::write_volatile((end - 1) as *mut u8, 1) };
        0
    });
    assert!(libc::WIFEXITED(status), "in-bounds write faulted");
    // SAFETY: allocated above.
    unsafe { w.dealloc(p, size, 16) };
}

#[test]
fn freed_secrets_are_wiped_and_recycled_blocks_are_zero() {
    let w = WitnessArena::new();
    for size in [24usize, 256, 4000, 60_000] {
        let p = w.alloc(size, 8);
        // SAFETY: `size` live bytes.
        unsafe { p.write_bytes(0xAA, size) };
        // SAFETY: allocated above.
        unsafe { w.dealloc(p, size, 8) };
        let bytes = peek(p as usize, size).expect("small witness chunks stay mapped");
        // The first word of a free block holds the free-list link: an
        // address, never user data (any of its bytes may happen to be 0xAA,
        // so it is not compared byte by byte); everything else is zero.
        let link = u64::from_ne_bytes(bytes[..8].try_into().unwrap());
        assert_ne!(link, 0xAAAA_AAAA_AAAA_AAAA, "secret bytes survived free (size {size})");
        assert!(
            bytes[8..].iter().all(|&b| b == 0),
            "freed block not wiped (size {size})"
        );
        let q = w.alloc(size, 8);
        assert_eq!(q, p, "block not recycled");
        // SAFETY: `size` live bytes.
        assert!(unsafe { std::slice::from_raw_parts(q, size) }.iter().all(|&b| b == 0));
        // SAFETY: allocated above.
        unsafe { w.dealloc(q, size, 8) };
    }
}

// A large secret's wipe before its chunk is released cannot be seen from
// here (decommitted memory reads as zero with or without it): see
// tests/wipe_evidence.rs, which keeps released chunks readable.

#[test]
fn secure_wipe_erases_everything_handed_out() {
    // The brief's snippet.
    let nalloc = NAlloc::new();
    let witness = nalloc.witness();
    let secret = witness.alloc(1024, 64);
    assert_eq!(secret as usize % 64, 0);
    let other = witness.alloc(77, 8);
    // SAFETY: live blocks.
    unsafe {
        secret.write_bytes(0x42, 1024);
        other.write_bytes(0x43, 77);
    }
    // SAFETY: neither block is used afterwards.
    unsafe { witness.secure_wipe() };
    assert!(peek(secret as usize, 1024).unwrap().iter().all(|&b| b == 0));
    assert!(peek(other as usize, 77).unwrap().iter().all(|&b| b == 0));
    assert_eq!(witness.stats().used, 0);
}

#[test]
#[cfg(target_os = "linux")]
fn mappings_grow_with_chunks_not_with_secrets() {
    // The mapping count is process-wide: other tests' arenas must not run.
    if !isolated("mappings_grow_with_chunks_not_with_secrets") {
        return;
    }
    let w = WitnessArena::new();
    let first = w.alloc(64, 8);
    let before = mapping_count();
    let blocks: Vec<*mut u8> = (0..20_000).map(|_| w.alloc(64, 8)).collect();
    assert!(blocks.iter().all(|p| !p.is_null()));
    let after = mapping_count();
    // 20,000 x (64 B + canary) = 1.6 MB: every run is fenced (two mappings
    // each) and runs grow to 256 KiB, so about ten runs — not one mapping
    // per secret (libsodium-style guards would add 40,000).
    assert!(after <= before + 30, "{before} -> {after} mappings for 20,000 secrets");
    // Locking is per chunk: freeing one of two secrets on a page keeps the
    // other locked.
    // SAFETY: allocated above.
    unsafe { w.dealloc(blocks[0], 64, 8) };
    assert!(vm_flags(blocks[1] as usize).iter().any(|f| f == "lo"));
    for p in &blocks[1..] {
        // SAFETY: allocated above.
        unsafe { w.dealloc(*p, 64, 8) };
    }
    // SAFETY: allocated above.
    unsafe { w.dealloc(first, 64, 8) };
}

#[test]
fn witness_scope_protects_third_party_vectors() {
    let (addr, grown_from, v) = ALLOC.witness_scope(|| {
        let mut v: Vec<u64> = Vec::with_capacity(4);
        v.extend_from_slice(&[0xDEAD_BEEF; 4]);
        let first = v.as_ptr() as usize;
        // Growth inside the scope: the old buffer must be wiped.
        v.extend(std::iter::repeat_n(0xDEAD_BEEF_u64, 100));
        (v.as_ptr() as usize, first, v)
    });
    assert!(
        witness_flag(addr, "lo") && witness_flag(addr, "dd"),
        "scoped block not in witness memory"
    );
    let old = peek(grown_from, 32).unwrap();
    assert!(old[8..].iter().all(|&b| b == 0), "old buffer not wiped after growth");
    // Freed outside the scope, on another thread: still wiped.
    std::thread::spawn(move || drop(v)).join().unwrap();
    let bytes = peek(addr, 104 * 8).unwrap();
    assert!(
        bytes[8..].iter().all(|&b| b == 0),
        "scoped block not wiped when freed outside"
    );

    // Nested scopes, large blocks, and the way back to normal memory.
    let inner_addr = ALLOC.witness_scope(|| {
        let outer = Box::new([1u8; 10]);
        let inner = ALLOC.witness_scope(|| vec![2u8; 200_000]);
        let after_inner = Box::new([3u8; 10]);
        let r = (inner.as_ptr() as usize, after_inner.as_ptr() as usize);
        assert!(witness_flag(outer.as_ptr() as usize, "dd"));
        r
    });
    assert!(witness_flag(inner_addr.1, "dd"), "scope ended early");
    let normal = Box::new([4u8; 10]);
    assert!(!witness_flag(normal.as_ptr() as usize, "dd"));
    // A block allocated in the scope keeps its protection when it is grown
    // outside of it.
    let mut s = ALLOC.witness_scope(|| vec![9u8; 16]);
    s.resize(100_000, 9);
    assert!(witness_flag(s.as_ptr() as usize, "dd"));
    assert!(ALLOC.stats().witness_scope.used > 0);
}

#[test]
fn secret_types_init_in_place_and_wipe_on_growth_and_drop() {
    let w = ALLOC.witness();
    let key = SecretBox::new_with(w, |k: &mut [u8; 32]| {
        for (i, b) in k.iter_mut().enumerate() {
            *b = i as u8 + 1;
        }
    })
    .unwrap();
    assert_eq!(key[31], 32);
    let key_addr = &*key as *const [u8; 32] as usize;
    assert!(witness_flag(key_addr, "lo"));
    drop(key);
    assert!(peek(key_addr, 32).unwrap()[8..].iter().all(|&b| b == 0));

    let mut v = SecretVec::<u64>::new(w);
    assert!(v.push(7));
    let first = v.as_ptr() as usize;
    for i in 0..1000 {
        assert!(v.push(i));
    }
    assert_ne!(v.as_ptr() as usize, first);
    assert!(
        peek(first, 32).unwrap()[8..].iter().all(|&b| b == 0),
        "growth left a copy"
    );
    assert_eq!(v.len(), 1001);
    assert_eq!(v[1000], 999);
    assert_eq!(format!("{v:?}"), "SecretVec(<1001 redacted>)");
}

#[test]
fn allocator_api_vectors_in_witness_memory() {
    let w = WitnessArena::new();
    let mut v: AVec<u32, &WitnessArena> = AVec::new_in(&w);
    for i in 0..10_000 {
        v.push(i);
    }
    assert_eq!(v.iter().map(|&x| x as u64).sum::<u64>(), 49_995_000);
    let addr = v.as_ptr() as usize;
    assert!(witness_flag(addr, "dd"));
    let layout = Layout::array::<u32>(v.capacity()).unwrap();
    drop(v);
    // A 64 KiB block: small witness chunks stay mapped, so it must be
    // readable. Its first two words may hold free-list links (addresses).
    let bytes = peek(addr, layout.size()).expect("small witness chunks stay mapped");
    assert!(bytes[16..].iter().all(|&b| b == 0), "freed vector not wiped");
}

/// A pattern byte for block `seed` at offset `i`.
fn pattern(seed: usize, i: usize) -> u8 {
    (seed.wrapping_mul(31).wrapping_add(i) % 251) as u8 + 1
}

#[test]
fn threads_share_an_arena_through_their_caches() {
    // Eight threads, each with its own block cache in the arena, pass their
    // blocks round a ring: every block is allocated by one thread and freed
    // by the next, so caches fill with other threads' blocks, spill and
    // refill. Contents are checked on both sides, hand-outs must be zero.
    const THREADS: usize = 8;
    const ROUNDS: usize = 120;
    const PER_ROUND: usize = 48;
    let arena = WitnessArena::new();
    let (txs, rxs): (Vec<_>, Vec<_>) = (0..THREADS)
        .map(|_| std::sync::mpsc::sync_channel::<Vec<(usize, usize, usize)>>(2))
        .unzip();
    let capacity_mid = std::sync::Mutex::new(0usize);
    // No barrier, and only the threads hold senders: a thread that fails
    // drops its sender, so the next one's `recv` fails too and the test
    // ends (a barrier would wait for the failed thread forever). The
    // bounded channels keep the threads within a few rounds of each other.
    let mut txs: Vec<_> = txs.into_iter().map(Some).collect();
    std::thread::scope(|s| {
        for (t, rx) in rxs.into_iter().enumerate() {
            let tx = txs[(t + 1) % THREADS].take().unwrap();
            let (arena, capacity_mid) = (&arena, &capacity_mid);
            s.spawn(move || {
                for round in 0..ROUNDS {
                    let mut batch = Vec::with_capacity(PER_ROUND);
                    for k in 0..PER_ROUND {
                        let size = 16 + (t * 977 + round * 131 + k * 59) % 6000;
                        let p = arena.alloc(size, 8);
                        assert!(!p.is_null());
                        let seed = (t << 32) | (round << 16) | k;
                        // SAFETY: a live block of `size` bytes.
                        let bytes = unsafe { std::slice::from_raw_parts_mut(p, size) };
                        assert!(bytes.iter().all(|&b| b == 0), "witness block not zero");
                        for (i, b) in bytes.iter_mut().enumerate() {
                            *b = pattern(seed, i);
                        }
                        batch.push((p as usize, size, seed));
                    }
                    tx.send(batch).unwrap();
                    for (p, size, seed) in rx.recv().unwrap() {
                        // SAFETY: a live block of `size` bytes handed over.
                        let bytes = unsafe { std::slice::from_raw_parts(p as *const u8, size) };
                        assert!(
                            bytes.iter().enumerate().all(|(i, &b)| b == pattern(seed, i)),
                            "block corrupted"
                        );
                        // SAFETY: from this arena with (size, 8), freed once.
                        unsafe { arena.dealloc(p as *mut u8, size, 8) };
                    }
                    if round == ROUNDS / 2 && t == 0 {
                        *capacity_mid.lock().unwrap() = arena.stats().capacity;
                    }
                }
            });
        }
    });
    let st = arena.stats();
    assert_eq!(st.used, 0, "every block was freed");
    assert!(st.peak >= PER_ROUND * 16, "peak {}", st.peak);
    // Blocks are reused across threads: after warm-up the arena stops
    // growing (at most one more chunk).
    let mid = *capacity_mid.lock().unwrap();
    assert!(
        st.capacity <= mid + (1 << 20),
        "capacity grew from {mid} to {}",
        st.capacity
    );
}

#[test]
fn secure_wipe_keeps_small_chunks_for_reuse() {
    // Several chunks' worth of secrets, wiped after every "proof": the chunks
    // stay committed (and locked), come back zero, and are reused instead of
    // new ones being committed.
    let arena = WitnessArena::new();
    let mut capacity = 0;
    for round in 0..4 {
        let blocks: Vec<(*mut u8, usize)> = (0..2500)
            .map(|i| {
                let size = 16 + (i * 37) % 4000;
                let p = arena.alloc(size, 8);
                assert!(!p.is_null());
                // SAFETY: a live block of `size` bytes.
                unsafe { p.write_bytes(0xA5, size) };
                (p, size)
            })
            .collect();
        let st = arena.stats();
        assert!(st.capacity > 2 << 20, "expected several chunks, got {}", st.capacity);
        if round == 0 {
            capacity = st.capacity;
        }
        assert_eq!(st.capacity, capacity, "round {round} committed new chunks");
        // SAFETY: no block is used after the wipe (they are only read back
        // through /proc/self/mem).
        unsafe { arena.secure_wipe() };
        for &(p, size) in blocks.iter().step_by(97) {
            assert!(
                peek(p as usize, size).unwrap().iter().all(|&b| b == 0),
                "secret survived secure_wipe"
            );
        }
        assert_eq!(arena.stats().used, 0);
    }
}
