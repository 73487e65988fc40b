//! Model checks (loom) of the allocator's two lock-free protocols:
//!
//! * `RemoteMarks` (src/small/remote.rs): the remote-free marks every remote
//!   `free` (or batch of them) sets and the owning heap takes with
//!   `collect`;
//! * `Once` (src/base/once.rs): the lazy initialisation flag.
//!
//! Both modules are self-contained and switch to loom's atomics under
//! `cfg(loom)`, so they are compiled here verbatim. Block payloads live in
//! `loom::cell::UnsafeCell`s: loom then reports every non-atomic access that
//! is not ordered by a happens-before edge, which is exactly what a missing
//! Release/Acquire would cause. A control test runs the same checks against
//! a copy of the marks with Relaxed orderings and expects loom to catch it,
//! so the harness itself is known to be sensitive.
//!
//! Run (as `.ci/reliability.sh` does): `RUSTFLAGS="--cfg nalloc_loom" cargo
//! rustc --release --test loom -- --cfg loom`, then the binary it builds.
//! `--cfg nalloc_loom` pulls in the `loom` dev-dependency
//! (`[target.'cfg(nalloc_loom)'.dev-dependencies]`); `--cfg loom` reaches
//! this test crate only, so the library is built as usual.
#![cfg(loom)]

#[allow(dead_code)]
#[path = "../src/small/remote.rs"]
mod remote;

#[allow(dead_code)]
#[path = "../src/base/once.rs"]
mod once;

use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;

use once::Once;
use remote::RemoteMarks;

/// Blocks of the model's page: indices in two mark words (0-63, 64-127).
const BLOCKS: [usize; 5] = [0, 1, 64, 2, 65];

/// A page as the protocol sees it: block payloads (written by the freeing
/// thread before it frees, read by the owner after it collects), the marks
/// and the published count.
struct Page<M> {
    payload: Vec<UnsafeCell<u64>>,
    marks: M,
    published: AtomicU32,
}
// SAFETY: payloads are handed from one thread to another by the protocol
// under test, which loom checks.
unsafe impl<M: Sync> Sync for Page<M> {}
// SAFETY: as above.
unsafe impl<M: Send> Send for Page<M> {}

/// What both the real marks and the broken control implement.
trait Marks: Send + Sync + 'static {
    fn new() -> Self;
    fn publish(&self, blocks: &[usize], published: &AtomicU32);
    fn collect(&self, f: impl FnMut(usize, u64)) -> u32;
}

impl Marks for RemoteMarks<2, 1> {
    fn new() -> Self {
        RemoteMarks::new()
    }
    fn publish(&self, blocks: &[usize], published: &AtomicU32) {
        RemoteMarks::publish(self, blocks.iter().copied(), published);
    }
    fn collect(&self, f: impl FnMut(usize, u64)) -> u32 {
        RemoteMarks::collect(self, f)
    }
}

/// `RemoteMarks` with every ordering weakened to Relaxed: the planted bug.
struct Broken {
    summary: AtomicU64,
    words: [AtomicU64; 2],
}

impl Marks for Broken {
    fn new() -> Self {
        Broken {
            summary: AtomicU64::new(0),
            words: [AtomicU64::new(0), AtomicU64::new(0)],
        }
    }
    fn publish(&self, blocks: &[usize], published: &AtomicU32) {
        for &i in blocks {
            self.words[i / 64].fetch_or(1 << (i % 64), Ordering::Relaxed);
            self.summary.fetch_or(1 << (i / 64), Ordering::Relaxed);
        }
        published.fetch_add(blocks.len() as u32, Ordering::Relaxed);
    }
    fn collect(&self, mut f: impl FnMut(usize, u64)) -> u32 {
        let mut flagged = self.summary.swap(0, Ordering::Relaxed);
        let mut n = 0;
        while flagged != 0 {
            let w = flagged.trailing_zeros() as usize;
            flagged &= flagged - 1;
            let m = self.words[w].swap(0, Ordering::Relaxed);
            n += m.count_ones();
            if m != 0 {
                f(w, m);
            }
        }
        n
    }
}

fn payload_of(i: usize) -> u64 {
    1000 + i as u64
}

/// Takes the marks and checks each block's payload; returns the indices.
fn collect_checked<M: Marks>(page: &Page<M>, taken: &mut u32) -> Vec<usize> {
    let mut got = Vec::new();
    let n = page.marks.collect(|w, mut mask| {
        while mask != 0 {
            let i = w * 64 + mask.trailing_zeros() as usize;
            mask &= mask - 1;
            let slot = BLOCKS.iter().position(|&b| b == i).expect("a mark for no block");
            // The property under test: the payload write happened-before.
            // SAFETY: the block was handed over by its marker.
            let v = page.payload[slot].with(|p| unsafe { *p });
            assert_eq!(v, payload_of(i), "a collected block's contents are not visible");
            got.push(i);
        }
    });
    assert_eq!(n as usize, got.len(), "collect's count does not match its marks");
    *taken = taken.wrapping_add(n);
    got
}

/// Two threads free blocks into the page (one a batch spanning both mark
/// words, one two single blocks) while the owner collects twice; the owner
/// collects once more after they are done: every block arrives exactly
/// once with its contents, and the owner's count of taken marks then
/// equals the published count (the page may be released).
fn remote_marks_model<M: Marks>() {
    let mut builder = loom::model::Builder::new();
    // 4 preemptions, as for the other models here; `LOOM_MAX_PREEMPTIONS`
    // overrides.
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(4);
    }
    builder.check(|| {
        let page = Arc::new(Page {
            payload: BLOCKS.iter().map(|_| UnsafeCell::new(0)).collect(),
            marks: M::new(),
            published: AtomicU32::new(0),
        });
        let write = |page: &Page<M>, i: usize| {
            let slot = BLOCKS.iter().position(|&b| b == i).unwrap();
            // SAFETY: the block is the writer's until it is marked.
            page.payload[slot].with_mut(|p| unsafe { *p = payload_of(i) });
        };
        let batch = {
            let page = page.clone();
            thread::spawn(move || {
                for i in [0, 1, 64] {
                    write(&page, i);
                }
                page.marks.publish(&[0, 1, 64], &page.published);
            })
        };
        let singles = {
            let page = page.clone();
            thread::spawn(move || {
                for i in [2, 65] {
                    write(&page, i);
                    page.marks.publish(&[i], &page.published);
                }
            })
        };
        // The yields let the freeing threads run first (loom 0.7 does not
        // reorder this thread's first relaxed load on its own).
        let mut taken = 0u32;
        thread::yield_now();
        let mut got = collect_checked(&page, &mut taken);
        thread::yield_now();
        got.extend(collect_checked(&page, &mut taken));
        batch.join().unwrap();
        singles.join().unwrap();
        got.extend(collect_checked(&page, &mut taken));
        got.sort_unstable();
        assert_eq!(got, [0, 1, 2, 64, 65], "a block was lost or received twice");
        assert_eq!(
            page.published.load(Ordering::Acquire),
            taken,
            "published count out of step"
        );
        assert!(RemoteMarks::<2, 1>::quiescent(&page.published, taken));
        assert_eq!(page.marks.collect(|_, _| {}), 0, "marks left after the last collection");
    });
}

#[test]
fn remote_marks_every_block_arrives_once_intact() {
    remote_marks_model::<RemoteMarks<2, 1>>();
}

/// Control: the same model against a Relaxed copy must fail (loom reports
/// the unsynchronised read of a block's payload).
#[test]
#[should_panic(expected = "Causality violation")]
fn control_relaxed_remote_marks_are_caught() {
    remote_marks_model::<Broken>();
}

struct Shared {
    once: Once,
    data: UnsafeCell<u64>,
    runs: AtomicUsize,
}
// SAFETY: `data` is written only inside the initialiser and read only after
// `call` returned, which is the property under test.
unsafe impl Sync for Shared {}
// SAFETY: as above.
unsafe impl Send for Shared {}

/// `threads` threads call `call` at once; the initialiser must run once and
/// its write be visible to every caller after `call` returns.
///
/// Waiters spin (with loom's `yield_now`). Two threads are checked
/// exhaustively. With three, two waiters can hand the processor to each
/// other indefinitely between yields, which loom cannot bound; one
/// preemption (the winner stopped between its CAS and its `DONE` store
/// while both others spin) is what it can explore.
fn once_model(threads: usize, preemption_bound: Option<usize>) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = preemption_bound;
    builder.check(move || {
        let s = Arc::new(Shared {
            once: Once::new(),
            data: UnsafeCell::new(0),
            runs: AtomicUsize::new(0),
        });
        let body = |s: &Shared| {
            s.once.call(|| {
                s.runs.fetch_add(1, Ordering::Relaxed);
                // SAFETY: only the initialiser writes, once.
                s.data.with_mut(|d| unsafe { *d = 42 });
            });
            // SAFETY: after `call` the initialiser's write happened-before.
            let v = s.data.with(|d| unsafe { *d });
            assert_eq!(v, 42, "initialiser's write not visible after call");
        };
        let hs: Vec<_> = (1..threads)
            .map(|_| {
                let s = s.clone();
                thread::spawn(move || body(&s))
            })
            .collect();
        body(&s);
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(s.runs.load(Ordering::Relaxed), 1, "initialiser ran more than once");
    });
}

#[test]
fn once_runs_exactly_once_two_threads() {
    once_model(2, None);
}

#[test]
fn once_runs_exactly_once_three_threads() {
    once_model(3, Some(1));
}
