//! Witness memory at libsodium's standard, with evidence: a guard page
//! directly before and after every run of secret blocks (a stray access
//! faults, shown in child processes), no allocator metadata beside secrets,
//! canaries that report an overflow at free, free-list links that an
//! overflow cannot redirect, and `mlock` failure as a choice — through
//! every front: `WitnessArena`, `NAlloc::witness()`, `SecretBox` /
//! `SecretVec`, `witness_scope` and the C front (`raw::witness_alloc`).
#![cfg(target_os = "linux")]

use zk_nalloc::{NAlloc, SecretBox, SecretVec, WitnessArena, WitnessLock};

mod common;
use common::{fenced_run, run_case};

#[global_allocator]
static ALLOC: NAlloc = NAlloc::new();

const CASE: &str = "NALLOC_WITNESS_FENCE_CASE";

/// Allocates blocks of `size` from `w` until one lands in another run than
/// the first, and returns the first run's blocks (in address order) and the
/// run.
fn fill_first_run(w: &WitnessArena, size: usize) -> (Vec<*mut u8>, common::Run) {
    let first = w.alloc(size, 8);
    let run = fenced_run(first as usize);
    let mut blocks = vec![first];
    loop {
        let p = w.alloc(size, 8);
        assert!(!p.is_null());
        if !(run.start..run.end).contains(&(p as usize)) {
            break;
        }
        blocks.push(p);
    }
    blocks.sort();
    (blocks, run)
}

/// The cases; each runs only inside a child (the env var names it). A case
/// that should have crashed prints "not stopped" and exits normally.
/// Writes one byte past a block: its first canary byte, changed to a value
/// it cannot already have (a fixed value equals the random canary's byte
/// once in 256 runs, and the overflow then goes unseen).
///
/// # Safety
/// `at` is the first byte past a live witness block (its canary).
unsafe fn overflow_by_one(at: *mut u8) {
    // SAFETY: caller contract: the canary is readable and writable memory
    // of the block's run.
    unsafe { at.write_volatile(!at.read_volatile()) };
}

/// The C library's functions, for pointers the C front did not hand out.
static LIBC: zk_nalloc::raw::Foreign = zk_nalloc::raw::Foreign {
    free: libc::free,
    realloc: libc::realloc,
    usable_size: libc::malloc_usable_size,
};

#[test]
fn child() {
    let Ok(case) = std::env::var(CASE) else {
        return;
    };
    let w = WitnessArena::new();
    // SAFETY: each case makes one deliberate stray access or misuse, which
    // must fault or be reported before anything else happens.
    unsafe {
        match case.as_str() {
            "write-before-first-block" => {
                // 56 + 8 canary bytes: the 64-byte class, whose first run
                // starts the chunk: its first block is the first byte after
                // the chunk's leading guard.
                let p = w.alloc(56, 8);
                println!("reached");
                std::ptr::write_volatile(p.sub(1), 1);
            }
            "read-before-first-block" => {
                let p = w.alloc(56, 8);
                println!("reached");
                std::hint::black_box(std::ptr::read_volatile(p.sub(1)));
            }
            "write-after-last-block" => {
                let (blocks, run) = fill_first_run(&w, 56);
                let last = *blocks.last().unwrap();
                assert_eq!(
                    last as usize + 64,
                    run.end,
                    "the last block does not end at the run's end"
                );
                println!("reached");
                std::ptr::write_volatile(last.add(64), 1);
            }
            "write-before-large-block" | "write-after-large-block" => {
                let size = 256 << 10;
                let p = w.alloc(size, 16);
                assert!(!p.is_null());
                p.write_bytes(0xA5, size);
                println!("reached");
                if case == "write-before-large-block" {
                    std::ptr::write_volatile(p.sub(1), 1);
                } else {
                    std::ptr::write_volatile(p.add(size), 1);
                }
            }
            "overflow-arena" => {
                let p = w.alloc(40, 8);
                p.write_bytes(7, 40);
                overflow_by_one(p.add(40));
                println!("reached");
                w.dealloc(p, 40, 8);
            }
            "overflow-large" => {
                let p = w.alloc(100_001, 16);
                p.write_bytes(7, 100_001);
                overflow_by_one(p.add(100_001));
                println!("reached");
                w.dealloc(p, 100_001, 16);
            }
            "underflow-large" => {
                // Not a whole number of pages: the block starts inside its
                // first page, after canary bytes, so the byte before it is
                // committed and a write there does not fault.
                let p = w.alloc(100_001, 16);
                assert!(!p.is_null());
                assert_ne!(p as usize % ALLOC.page_size(), 0, "the block starts a page");
                p.write_bytes(7, 100_001);
                overflow_by_one(p.sub(1));
                println!("reached");
                w.dealloc(p, 100_001, 16);
            }
            "overflow-secret-box" => {
                let mut b = SecretBox::<[u8; 40]>::new_with(&w, |k| k.fill(7)).unwrap();
                overflow_by_one((&mut *b as *mut [u8; 40]).cast::<u8>().add(40));
                println!("reached");
                drop(b);
            }
            "overflow-secret-vec" => {
                let mut v: SecretVec<u64> = SecretVec::with_capacity(&w, 5).unwrap();
                v.extend_from_slice(&[1, 2, 3, 4, 5]);
                v.as_ptr().cast_mut().add(5).write_unaligned(9);
                println!("reached");
                drop(v);
            }
            "overflow-scope" => {
                let v = ALLOC.witness_scope(|| Vec::<u8>::with_capacity(24));
                overflow_by_one(v.as_ptr().cast_mut().add(24));
                println!("reached");
                drop(v);
            }
            "overflow-scope-realloc" => {
                let mut v = ALLOC.witness_scope(|| Vec::<u8>::with_capacity(24));
                overflow_by_one(v.as_mut_ptr().add(24));
                println!("reached");
                // Grows in place within the class: the canary is checked.
                v.reserve_exact(26);
            }
            "overflow-c" => {
                let p = zk_nalloc::raw::witness_alloc(40);
                overflow_by_one(p.add(40));
                println!("reached");
                zk_nalloc::raw::witness_free(p);
            }
            "underflow-c" | "underflow-c-free" | "underflow-c-forwarded" | "underflow-c-free-forwarded" => {
                if case.ends_with("-forwarded") {
                    // As `NALLOC_FOREIGN_FREE=forward` does in libnalloc.so.
                    zk_nalloc::raw::forward_foreign(&LIBC);
                }
                // The byte before a C block is its sealed header's last.
                let p = zk_nalloc::raw::witness_alloc(40);
                overflow_by_one(p.sub(1));
                println!("reached");
                if case.starts_with("underflow-c-free") {
                    zk_nalloc::raw::free(p);
                } else {
                    zk_nalloc::raw::witness_free(p);
                }
            }
            "overflow-c-realloc" => {
                let p = zk_nalloc::raw::witness_alloc(40);
                overflow_by_one(p.add(40));
                println!("reached");
                zk_nalloc::raw::realloc(p, 42);
            }
            "corrupt-link" => {
                // Two neighbours of the 64-byte class; the second is freed
                // (its link is its first word), then a 16-byte overflow of
                // the first — its canary and the free block's link — with a
                // pointer of the attacker's choice.
                let a = w.alloc(56, 8);
                let b = w.alloc(56, 8);
                assert_eq!(b as usize, a as usize + 64);
                w.dealloc(b, 56, 8);
                let target = [0u64; 8];
                let forged = [0u64, target.as_ptr() as u64];
                std::ptr::copy_nonoverlapping(forged.as_ptr().cast::<u8>(), a.add(56), 16);
                println!("reached");
                let c = w.alloc(56, 8); // b again
                let d = w.alloc(56, 8); // would be `target`
                println!("handed out {c:p} {d:p}");
            }
            "zeroed-link" => {
                // A link overwritten with zeros ends the list (blocks leak,
                // nothing is redirected): what wipe-on-fork does in a child.
                let a = w.alloc(56, 8);
                let b = w.alloc(56, 8);
                let c = w.alloc(56, 8);
                w.dealloc(c, 56, 8);
                w.dealloc(b, 56, 8);
                b.cast::<u64>().write(0);
                let x = w.alloc(56, 8);
                let y = w.alloc(56, 8);
                assert_eq!(x, b);
                assert!(y != c && !y.is_null());
                w.dealloc(a, 56, 8);
                println!("zeroed link ok");
                return;
            }
            "keys" => {
                // What a reader of the arena's memory sees of its keys: a
                // small block's canary, a large block's canary bytes (its
                // rounding to 16 bytes after the requested bytes), and a
                // free block's stored link next to the address it encodes.
                let p = w.alloc(40, 8);
                let canary = p.add(40).cast::<u64>().read_unaligned();
                let large = w.alloc(100_001, 16);
                let tail: Vec<u8> = (0..15).map(|i| large.add(100_001 + i).read()).collect();
                let a = w.alloc(40, 8);
                let b = w.alloc(40, 8);
                w.dealloc(a, 40, 8);
                w.dealloc(b, 40, 8);
                let stored = b.cast::<usize>().read();
                println!(
                    "\nkeys {:x} {canary:x} {} {:x} {stored:x}",
                    p as usize,
                    tail.iter().map(|b| format!("{b:02x}")).collect::<String>(),
                    a as usize
                );
                return;
            }
            "lock" => {
                // Under RLIMIT_MEMLOCK = 64 KiB: 1 MiB of secrets.
                let strict = std::env::var("STRICT_BY_SETTER").is_ok();
                if strict {
                    ALLOC.set_witness_lock(WitnessLock::Require);
                }
                let mut blocks = Vec::new();
                for i in 0..256usize {
                    let p = w.alloc(4000, 8);
                    if p.is_null() {
                        break;
                    }
                    p.write_bytes(i as u8, 4000);
                    blocks.push(p);
                }
                let intact = blocks
                    .iter()
                    .enumerate()
                    .all(|(i, p)| std::slice::from_raw_parts(*p, 4000).iter().all(|&b| b == i as u8));
                let boxed = SecretBox::<[u64; 512]>::new_with(&w, |_| {}).is_some();
                println!(
                    "blocks {} intact {intact} locked {} box {boxed}",
                    blocks.len(),
                    w.stats().locked
                );
                for p in blocks {
                    w.dealloc(p, 4000, 8);
                }
                return;
            }
            _ => return,
        }
    }
    println!("not stopped");
}

fn assert_faults(case: &str) {
    let end = run_case(CASE, case, &[], None);
    assert!(
        end.stdout.contains("reached"),
        "{case}: the case did not run: {}",
        end.stderr
    );
    assert_eq!(end.signal, Some(libc::SIGSEGV), "{case}: {}{}", end.stdout, end.stderr);
}

fn assert_reported(case: &str, message: &str) {
    let end = run_case(CASE, case, &[], None);
    assert!(
        end.stdout.contains("reached"),
        "{case}: the case did not run: {}",
        end.stderr
    );
    let lines: Vec<&str> = end.stderr.lines().filter(|l| l.starts_with("nalloc:")).collect();
    assert_eq!(end.signal, Some(libc::SIGABRT), "{case}: {}{}", end.stdout, end.stderr);
    assert_eq!(lines.len(), 1, "{case}: {}", end.stderr);
    assert!(lines[0].starts_with(message), "{case}: {}", end.stderr);
}

#[test]
fn a_stray_access_before_or_after_a_run_faults() {
    assert_faults("write-before-first-block");
    assert_faults("read-before-first-block");
    assert_faults("write-after-last-block");
    assert_faults("write-before-large-block");
    assert_faults("write-after-large-block");
}

const OVERFLOW: &str = "nalloc: witness block overflowed (canary overwritten) at 0x";

/// The overflow report of `case` names the block's size.
fn assert_overflow_names(case: &str, size: usize) {
    let end = run_case(CASE, case, &[], None);
    let line = end
        .stderr
        .lines()
        .find(|l| l.starts_with("nalloc:"))
        .unwrap_or_default();
    assert!(
        line.starts_with(OVERFLOW) && line.ends_with(&format!(" ({size} bytes)")),
        "{case}: {}{}",
        end.stdout,
        end.stderr
    );
}

#[test]
fn an_overflow_into_the_next_block_is_reported_at_free() {
    assert_overflow_names("overflow-arena", 40);
    assert_reported("overflow-arena", OVERFLOW);
    assert_reported("overflow-large", OVERFLOW);
}

/// A write one byte before a large block that does not start on a page
/// (its size is no whole number of pages) lands in the canary bytes that
/// fill its first page up to the block: not a fault, but reported at free,
/// naming the block.
#[test]
fn an_underflow_before_a_large_block_is_reported_at_free() {
    assert_overflow_names("underflow-large", 100001);
    assert_reported("underflow-large", OVERFLOW);
}

/// A block of the C front's `witness_alloc` starts after its sealed
/// 16-byte header: a write one byte before it breaks the seal, and the
/// free reports the pointer and stops instead of trusting the header —
/// also when foreign pointers go to the C library (a pointer into the
/// witness region is never the C library's).
#[test]
fn an_underflow_before_a_c_witness_block_is_reported_at_free() {
    for forwarded in ["", "-forwarded"] {
        assert_reported(
            &format!("underflow-c{forwarded}"),
            "nalloc: nalloc_witness_free(): invalid pointer at 0x",
        );
        assert_reported(
            &format!("underflow-c-free{forwarded}"),
            "nalloc: free(): invalid pointer at 0x",
        );
    }
}

#[test]
fn every_front_checks_the_canary() {
    assert_reported("overflow-secret-box", OVERFLOW);
    assert_reported("overflow-secret-vec", OVERFLOW);
    assert_reported("overflow-scope", OVERFLOW);
    assert_reported("overflow-scope-realloc", OVERFLOW);
    assert_reported("overflow-c", OVERFLOW);
    assert_reported("overflow-c-realloc", OVERFLOW);
}

#[test]
fn a_redirected_free_list_link_is_reported() {
    let end = run_case(CASE, "corrupt-link", &[], None);
    assert!(
        !end.stdout.contains("handed out"),
        "a forged link was followed: {}",
        end.stdout
    );
    assert_reported(
        "corrupt-link",
        "nalloc: witness free list corrupted (a write past a neighbouring block?) at 0x",
    );
    let end = run_case(CASE, "zeroed-link", &[], None);
    assert!(end.stdout.contains("zeroed link ok"), "{}{}", end.stdout, end.stderr);
}

/// Every run of witness blocks, through every front, has an inaccessible
/// mapping directly before and after it, and nothing writable of the
/// allocator's between: the mapping holding a block is read-write witness
/// memory and its neighbours are `---p`.
#[test]
fn every_run_is_fenced_through_every_front() {
    let w = WitnessArena::new();
    let small = w.alloc(100, 8);
    let large = w.alloc(300 << 10, 16);
    let handle = ALLOC.witness().alloc(3000, 64);
    let boxed = SecretBox::<[u64; 4]>::new_with(&w, |v| v[0] = 1).unwrap();
    let mut vec: SecretVec<u32> = SecretVec::new(&w);
    assert!(vec.extend_from_slice(&[7; 10_000]));
    let scoped = ALLOC.witness_scope(|| vec![5u8; 1000]);
    let c = zk_nalloc::raw::witness_alloc(77);
    let c_large = zk_nalloc::raw::witness_alloc(1 << 20);
    let blocks = [
        ("arena small", small as usize),
        ("arena large", large as usize),
        ("NAlloc::witness", handle as usize),
        ("SecretBox", &*boxed as *const _ as usize),
        ("SecretVec", vec.as_ptr() as usize),
        ("witness_scope", scoped.as_ptr() as usize),
        ("C small", c as usize),
        ("C large", c_large as usize),
    ];
    for (front, p) in blocks {
        let run = fenced_run(p);
        assert!(
            run.before.contains(" ---p ") && run.after.contains(" ---p "),
            "{front}: run not fenced: {run:?}"
        );
        assert!(
            common::vm_flags(p).iter().any(|f| f == "dd"),
            "{front}: not excluded from dumps"
        );
    }
    // SAFETY: allocated above with these layouts, not used afterwards.
    unsafe {
        w.dealloc(small, 100, 8);
        w.dealloc(large, 300 << 10, 16);
        ALLOC.witness().dealloc(handle, 3000, 64);
        zk_nalloc::raw::witness_free(c);
        zk_nalloc::raw::witness_free(c_large);
    }
}

/// A stretch of witness memory the test made: where its first block's
/// bytes start (for the C front, its header's), its block size (its class:
/// requested bytes, canary and header), and where its last block ends when
/// the test knows it (a run it filled, or a large block; `None` for a run
/// the test started but did not fill).
#[derive(Debug)]
struct Made {
    front: &'static str,
    start: usize,
    block: usize,
    end: Option<usize>,
}

/// Allocates blocks of `block` bytes through `alloc` (the start of each
/// block's bytes; the block stays live) from a class not used before, so
/// that the first opens a run and the rest follow it in address order,
/// until one lands in another run: records the first run, filled (its last
/// block must end where its writable memory ends), and the run just begun.
fn fill(front: &'static str, block: usize, mut alloc: impl FnMut() -> usize, made: &mut Vec<Made>) {
    let first = alloc();
    let run = fenced_run(first);
    let mut last = first;
    loop {
        let p = alloc();
        if !(run.start..run.end).contains(&p) {
            made.push(Made {
                front,
                start: first,
                block,
                end: Some(last + block),
            });
            made.push(Made {
                front,
                start: p,
                block,
                end: None,
            });
            return;
        }
        assert_eq!(p, last + block, "{front}: blocks of a fresh run out of order");
        last = p;
    }
}

/// `/proc/self/maps` as (start, end, permissions), in address order.
fn mappings() -> Vec<(usize, usize, String)> {
    std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .map(|l| {
            let (lo, hi) = common::vma_range(l).unwrap();
            (lo, hi, l.split_whitespace().nth(1).unwrap().to_owned())
        })
        .collect()
}

/// The whole witness region, after blocks were made through every front:
/// every writable mapping in it belongs to a stretch of read-write pages
/// (adjacent `rw-p` mappings joined: the kernel may split one run, e.g. at
/// a partial `mlock`) that has an inaccessible (`---p`) mapping directly
/// before and after it, starts with the first byte of one of the test's
/// runs (or a large block's first page) and ends with its last block: no
/// writable page of the allocator's own, and no two runs without a guard
/// between them. In a process of its own, so that every run in the region
/// is one the test made.
#[test]
fn every_writable_mapping_of_the_region_is_one_fenced_run() {
    if !common::isolated("every_writable_mapping_of_the_region_is_one_fenced_run") {
        return;
    }
    let page = ALLOC.page_size();
    let w = WitnessArena::new();
    let mut made = Vec::new();
    // Each front on a class of its own, so that each opens its own runs:
    // the arena (108 bytes with the canary: 112), `NAlloc::witness`
    // (64-byte aligned: 4096), SecretBox (40: 48), SecretVec (40_008:
    // 40 KiB), witness_scope (1008: 1024) and the C front (77 + 16 + 8 =
    // 101: 112, in the process-wide arena, not `w`).
    fill("arena", 112, || w.alloc(100, 8) as usize, &mut made);
    fill(
        "NAlloc::witness",
        4096,
        || ALLOC.witness().alloc(3000, 64) as usize,
        &mut made,
    );
    let mut boxes = Vec::new();
    fill(
        "SecretBox",
        48,
        || {
            boxes.push(SecretBox::<[u64; 4]>::new_with(&w, |v| v[0] = 1).unwrap());
            &**boxes.last().unwrap() as *const _ as usize
        },
        &mut made,
    );
    let mut vecs = Vec::new();
    fill(
        "SecretVec",
        40 << 10,
        || {
            vecs.push(SecretVec::<u32>::with_capacity(&w, 10_000).unwrap());
            vecs.last().unwrap().as_ptr() as usize
        },
        &mut made,
    );
    let mut scoped = Vec::new();
    fill(
        "witness_scope",
        1024,
        || {
            let v = ALLOC.witness_scope(|| vec![5u8; 1000]);
            let at = v.as_ptr() as usize;
            scoped.push(v);
            at
        },
        &mut made,
    );
    fill("C", 112, || zk_nalloc::raw::witness_alloc(77) as usize - 16, &mut made);
    // Large blocks: a chunk each, writable from the block's first page to
    // the block's end rounded up to 16 bytes (the trailing guard's start).
    let mut large = |front, at: usize, bytes: usize| {
        assert_ne!(at, 0, "{front}: failed");
        made.push(Made {
            front,
            start: at / page * page,
            block: 0,
            end: Some((at + bytes).next_multiple_of(16)),
        });
    };
    large("arena large", w.alloc(300 << 10, 16) as usize, 300 << 10);
    large("arena large, not whole pages", w.alloc(100_001, 16) as usize, 100_001);
    let c = zk_nalloc::raw::witness_alloc(1 << 20) as usize;
    large("C large", c - 16, (1 << 20) + 16);

    let maps = mappings();
    let in_region = |lo: usize, hi: usize| {
        zk_nalloc::raw::is_witness(lo as *const u8) || zk_nalloc::raw::is_witness((hi - 1) as *const u8)
    };
    let mut found = 0;
    let mut i = 0;
    while i < maps.len() {
        let (lo, hi, perms) = &maps[i];
        if perms == "---p" || !in_region(*lo, *hi) {
            i += 1;
            continue;
        }
        assert_eq!(
            perms, "rw-p",
            "{lo:#x}-{hi:#x}: witness memory neither read-write nor inaccessible"
        );
        let mut j = i;
        while j + 1 < maps.len() && maps[j + 1].2 == "rw-p" && maps[j + 1].0 == maps[j].1 {
            j += 1;
        }
        let (start, end) = (maps[i].0, maps[j].1);
        let before = &maps[i - 1];
        let after = &maps[j + 1];
        assert!(
            before.1 == start && before.2 == "---p",
            "{start:#x}-{end:#x}: no guard directly before: {before:x?}"
        );
        assert!(
            after.0 == end && after.2 == "---p",
            "{start:#x}-{end:#x}: no guard directly after: {after:x?}"
        );
        let runs: Vec<&Made> = made.iter().filter(|m| (start..end).contains(&m.start)).collect();
        assert_eq!(
            runs.len(),
            1,
            "{start:#x}-{end:#x}: writable memory holding {} of the test's runs: {runs:x?}",
            runs.len()
        );
        let run = runs[0];
        assert_eq!(
            run.start,
            start,
            "{}: {:#x} writable bytes before the run's first block",
            run.front,
            run.start - start
        );
        match run.end {
            Some(e) => assert_eq!(
                e, end,
                "{}: the run's writable memory does not end with its last block",
                run.front
            ),
            None => assert_eq!((end - start) % run.block, 0, "{}: a run of part of a block", run.front),
        }
        found += 1;
        i = j + 1;
    }
    assert_eq!(found, made.len(), "runs of the test not found writable: {made:x?}");
    drop((boxes, vecs, scoped));
}

/// The canaries and the free-list links are keyed per process: two runs
/// that place the same blocks at the same addresses (address randomisation
/// off) see different canaries and stored links, none of them trivial (zero,
/// or the plain address of the next free block).
#[test]
fn canaries_and_links_are_keyed_per_process() {
    let run = || {
        let mut cmd = common::this_test_binary();
        cmd.args(["--exact", "child", "--nocapture", "--test-threads=1"])
            .env(CASE, "keys");
        common::without_aslr(&mut cmd);
        let out = cmd.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let line = stdout
            .lines()
            .find_map(|l| l.strip_prefix("keys "))
            .unwrap_or_else(|| panic!("no keys printed: {stdout}"))
            .to_owned();
        let f: Vec<String> = line.split(' ').map(str::to_owned).collect();
        assert_eq!(f.len(), 5, "{line}");
        f
    };
    let (x, y) = (run(), run());
    assert_eq!(
        x[0], y[0],
        "address randomisation was not turned off: nothing to compare"
    );
    assert_eq!(x[3], y[3]);
    for f in [&x, &y] {
        assert_ne!(f[1], "0", "a zero canary");
        // Random bytes: hardly any zero, not all alike.
        let bytes: Vec<&str> = (0..15).map(|i| &f[2][2 * i..2 * i + 2]).collect();
        assert!(
            bytes.iter().filter(|&&b| b == "00").count() <= 3,
            "canary bytes mostly zero: {}",
            f[2]
        );
        assert!(bytes.iter().any(|&b| b != bytes[0]), "canary bytes all alike: {}", f[2]);
        assert_ne!(f[4], f[3], "a free block stores the plain address of the next");
    }
    assert_ne!(x[1], y[1], "two processes have the same canary");
    assert_ne!(x[2], y[2], "two processes have the same canary bytes");
    assert_ne!(x[4], y[4], "two processes store the same encoded link");
}

/// A chunk wiped by `secure_wipe` is reused with another layout: runs now
/// cover pages that were gaps, or start where other runs were. Every block
/// handed out must be committed (written whole here) and every run fenced.
#[test]
fn a_wiped_chunk_reused_with_another_layout_is_committed_and_fenced() {
    let w = WitnessArena::new();
    // First layout: small classes (4 KiB runs, gaps after each).
    for size in [24usize, 40, 56, 100, 200] {
        for _ in 0..20 {
            let p = w.alloc(size, 8);
            // SAFETY: `size` live bytes.
            unsafe { p.write_bytes(0x11, size) };
        }
    }
    // SAFETY: none of the blocks is used afterwards.
    unsafe { w.secure_wipe() };
    // Second layout: a class with long runs over the old runs and gaps.
    let blocks: Vec<*mut u8> = (0..200).map(|_| w.alloc(3000, 8)).collect();
    for &p in &blocks {
        // SAFETY: 3000 live bytes; a block on a page that was a gap and is
        // not committed again would fault here.
        unsafe { p.write_bytes(0x22, 3000) };
        let run = fenced_run(p as usize);
        assert!(
            run.before.contains(" ---p ") && run.after.contains(" ---p "),
            "run not fenced after reuse: {run:?}"
        );
    }
    for p in blocks {
        // SAFETY: allocated above with this layout.
        unsafe { w.dealloc(p, 3000, 8) };
    }
}

fn lock_case(envs: &[(&str, &str)]) -> (String, String) {
    let end = run_case(CASE, "lock", envs, Some(64 << 10));
    assert_eq!(end.code, Some(0), "{}{}", end.stdout, end.stderr);
    // The harness prints `test child ... ` on the same line.
    let line = end
        .stdout
        .lines()
        .find_map(|l| l.find("blocks ").map(|i| &l[i..]))
        .unwrap_or_default()
        .to_owned();
    (line, end.stderr)
}

#[test]
fn an_mlock_failure_is_noticed_once_or_refused_on_request() {
    // Best effort (default): every block is handed out, unlocked, and one
    // notice says so.
    let (line, stderr) = lock_case(&[]);
    assert_eq!(line, "blocks 256 intact true locked false box true", "{stderr}");
    let notices: Vec<&str> = stderr.lines().filter(|l| l.starts_with("nalloc:")).collect();
    assert_eq!(
        notices,
        ["nalloc: witness memory could not be locked in RAM (mlock: RLIMIT_MEMLOCK reached); secrets may be swapped to disk (NALLOC_WITNESS_LOCK=require refuses instead)"]
    );
    // Required, by the environment or by the setter: allocation fails once
    // the limit is reached; what was handed out is intact (and locked).
    for envs in [
        &[("NALLOC_WITNESS_LOCK", "require")][..],
        &[("STRICT_BY_SETTER", "1")][..],
    ] {
        let (line, stderr) = lock_case(envs);
        let n: usize = line
            .strip_prefix("blocks ")
            .and_then(|r| r.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{line}: {stderr}"));
        assert!(n > 0 && n < 256, "{line}");
        assert!(line.ends_with("intact true locked true box false"), "{line}: {stderr}");
        assert!(
            stderr.contains(
                "nalloc: witness memory could not be locked in RAM (mlock: RLIMIT_MEMLOCK reached); NALLOC_WITNESS_LOCK=require: the allocation fails"
            ),
            "{stderr}"
        );
    }
}
