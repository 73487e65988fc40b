//! Proof phases end to end: known allocations in nested phases on several
//! threads give exact call and byte counts per phase, a peak within one
//! page per thread of the truth, and trimming phases count what they gave
//! back; `reset_peaks` restarts the peaks.
//!
//! The figures are process-wide, so nothing else may allocate while a phase
//! is open: this test runs without libtest's harness (`harness = false` in
//! Cargo.toml), whose main thread allocates its bookkeeping (48- and 96-byte
//! blocks) while the test thread it just spawned runs — inside the phases
//! about one run in four on a loaded machine.

use std::alloc::{alloc, dealloc, Layout};
use std::sync::{Arc, Barrier};

use zk_nalloc::NAlloc;

#[global_allocator]
static ALLOC: NAlloc = NAlloc::new();

const THREADS: usize = 4;
/// Per worker: `SMALL_N` blocks of `SMALL` bytes (64 × 64 = one 4 KiB
/// extension of a fresh page) and one span of `LARGE` bytes (an exact span
/// length: no rounding).
const SMALL: usize = 64;
const SMALL_N: usize = 64;
const LARGE: usize = 1 << 20;
/// Main thread, in the outer phase: `MAIN_N` blocks of `MAIN` bytes.
const MAIN: usize = 200;
const MAIN_N: usize = 10;
const PAGE: u64 = 4096;

struct Blocks(Vec<(*mut u8, Layout)>);
// SAFETY (test): raw blocks handed between threads, freed once.
unsafe impl Send for Blocks {}

fn take(size: usize, n: usize, into: &mut Blocks) {
    let l = Layout::from_size_align(size, 8).unwrap();
    for _ in 0..n {
        // SAFETY: non-zero size.
        let p = unsafe { alloc(l) };
        assert!(!p.is_null());
        // SAFETY: `p` has `size` bytes.
        unsafe { p.write_bytes(1, size) };
        into.0.push((p, l));
    }
}

fn give_back(b: &mut Blocks) {
    for (p, l) in b.0.drain(..) {
        // SAFETY: allocated above with `l`, freed once.
        unsafe { dealloc(p, l) };
    }
}

fn main() {
    nested_phases_on_threads_add_up();
    println!("phases: nested_phases_on_threads_add_up ok");
}

fn nested_phases_on_threads_add_up() {
    // Every worker starts (std allocates for a new thread) before the
    // phases open.
    let ready = Arc::new(Barrier::new(THREADS + 1));
    let start = Arc::new(Barrier::new(THREADS + 1));
    let held = Arc::new(Barrier::new(THREADS + 1));
    let done = Arc::new(Barrier::new(THREADS + 1));
    let free = Arc::new(Barrier::new(THREADS + 1));
    let workers: Vec<_> = (0..THREADS)
        .map(|_| {
            let (ready, start, held, done, free) =
                (ready.clone(), start.clone(), held.clone(), done.clone(), free.clone());
            std::thread::spawn(move || {
                // Capacity reserved now: pushes inside the phase do not
                // allocate. A warm-up block of another class makes the heap.
                let mut b = Blocks(Vec::with_capacity(SMALL_N));
                let mut large = Blocks(Vec::with_capacity(1));
                drop(Box::new([0u8; 24]));
                ready.wait();
                start.wait();
                take(SMALL, SMALL_N, &mut b);
                take(LARGE, 1, &mut large);
                held.wait();
                // The spans go before the phase ends: its peak must come
                // from the sampled mark, not from the live bytes at its end.
                held.wait();
                give_back(&mut large);
                done.wait();
                free.wait();
                give_back(&mut b);
            })
        })
        .collect();
    let mut mine = Blocks(Vec::with_capacity(MAIN_N));
    ready.wait();
    // The live bytes before: a phase with nothing in it peaks at them.
    drop(ALLOC.phase("baseline"));
    let base = ALLOC.phase_report().get("baseline").unwrap().peak_live;
    {
        let _outer = ALLOC.phase("outer");
        take(MAIN, MAIN_N, &mut mine);
        {
            let _inner = ALLOC.phase("inner");
            start.wait();
            held.wait();
            held.wait();
            done.wait();
        }
        give_back(&mut mine);
        free.wait();
    }
    for w in workers {
        w.join().unwrap();
    }
    let r = ALLOC.phase_report();
    println!("{r}");
    let outer = r.get("outer").unwrap();
    let inner = r.get("inner").unwrap();
    assert_eq!((outer.entries, inner.entries), (1, 1));
    assert_eq!(inner.calls, (THREADS * (SMALL_N + 1)) as u64, "{r}");
    assert_eq!(inner.bytes, (THREADS * (SMALL_N * SMALL + LARGE)) as u64, "{r}");
    assert_eq!(outer.calls, MAIN_N as u64, "{r}");
    assert_eq!(outer.bytes, (MAIN_N * MAIN) as u64, "{r}");
    // The peak: every worker's span and small blocks live at once. Small
    // memory is counted as pages are first written (4 KiB steps), so the
    // figure may be off by up to a page per thread (the main thread's too).
    let truth = (THREADS * (LARGE + SMALL_N * SMALL)) as u64;
    let seen = inner.peak_live - base;
    let slack = PAGE * (THREADS as u64 + 1);
    assert!(
        seen.abs_diff(truth) <= slack,
        "peak {seen} vs {truth} (base {base})\n{r}"
    );
    // Inclusive: the outer phase saw the inner one's peak.
    assert!(outer.peak_live >= inner.peak_live);
    // Windows' clock here (GetTickCount64) moves in 10-16 ms steps.
    if cfg!(unix) {
        assert!(inner.wall_us > 0 || outer.wall_us > 0);
    }

    // A trimming phase gives the warm pool back and counts it.
    {
        let _t = ALLOC.phase_with_trim("trim");
        // black_box: in a release build the writes of a block dropped at
        // once are dead stores, and LLVM removes them (no fault to count).
        drop(std::hint::black_box(vec![7u8; 8 << 20]));
    }
    let r = ALLOC.phase_report();
    let t = r.get("trim").unwrap();
    assert_eq!((t.calls, t.bytes), (1, 8 << 20), "{r}");
    assert!(t.returned_to_os >= 8 << 20, "{r}");
    // Minor faults come from getrusage, which Linux fills; Wine reports
    // none (the Windows run of this test).
    if cfg!(target_os = "linux") {
        assert!(t.minor_faults > 0, "{r}");
    }

    // Resetting peaks: the next phase's peak is the live bytes now, not the
    // 4 MiB of the workers.
    // The process's peak restarts too: the trim above gave back at least
    // 8 MiB since it was reached.
    let peak_before = ALLOC.stats().peak_mapped;
    ALLOC.reset_peaks();
    let s = ALLOC.stats();
    assert!(s.peak_mapped < peak_before, "{} vs {peak_before}", s.peak_mapped);
    drop(ALLOC.phase("after-reset"));
    let after = ALLOC.phase_report().get("after-reset").unwrap().peak_live;
    assert!(after < inner.peak_live, "{after} vs {}", inner.peak_live);

    // The table: a header and one aligned line per phase.
    let text = r.to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("phase"), "{text}");
    assert_eq!(lines.len(), 1 + r.rows().len());
    let width = lines[0].len();
    assert!(lines.iter().all(|l| l.len() == width), "{text}");

    // Beyond 32 names: one shared row.
    for i in 0..40 {
        drop(ALLOC.phase(&format!("many-{i}")));
    }
    let r = ALLOC.phase_report();
    assert_eq!(r.rows().len(), 33);
    assert_eq!(r.rows().last().unwrap().name(), "(other)");
}
