//! Model checks (loom) of the allocator's two lock-free protocols:
//!
//! * `RemoteList` (src/remote.rs): the cross-thread free list every remote
//!   `free` (or batch of them, `push_chain`) goes onto and the owning heap
//!   drains with `take_all`;
//! * `Once` (src/once.rs): the lazy initialisation flag.
//!
//! Both modules are self-contained and switch to loom's atomics under
//! `cfg(loom)`, so they are compiled here verbatim. Node links and payloads
//! live in `loom::cell::UnsafeCell`s: loom then reports every non-atomic
//! access that is not ordered by a happens-before edge, which is exactly
//! what a missing Release/Acquire would cause. A control test runs the same
//! checks against a copy of the list with Relaxed orderings and expects
//! loom to catch it, so the harness itself is known to be sensitive.
//!
//! Run: `RUSTFLAGS="--cfg loom" cargo test --release --test loom`
//! (needs `[target.'cfg(loom)'.dev-dependencies] loom = "0.7"`).
#![cfg(loom)]

#[allow(dead_code)]
#[path = "../src/remote.rs"]
mod remote;

#[allow(dead_code)]
#[path = "../src/once.rs"]
mod once;

use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;

use once::Once;
use remote::RemoteList;

/// An intrusively linked node, as a freed block is: the link is written by
/// the pusher, read by the collector.
struct Node {
    next: UnsafeCell<*mut Node>,
    payload: UnsafeCell<u64>,
}

fn new_node(payload: u64) -> *mut Node {
    let n = Box::into_raw(Box::new(Node {
        next: UnsafeCell::new(core::ptr::null_mut()),
        payload: UnsafeCell::new(0),
    }));
    // The payload is written non-atomically before the push, like a block's
    // contents before it is freed.
    // SAFETY: `n` is a fresh node nobody else can see yet.
    unsafe { (*n).payload.with_mut(|p| *p = payload) };
    n
}

fn set_link(node: *mut Node, next: *mut Node) {
    // SAFETY: `node` is owned by the pusher until the push succeeds.
    unsafe { (*node).next.with_mut(|p| *p = next) };
}

/// Walks and frees a list returned by `take_all`, returning the payloads;
/// checks the count the list reported with it (where it reports one).
fn drain((mut n, count): (*mut Node, Option<usize>)) -> Vec<u64> {
    let mut got = Vec::new();
    while !n.is_null() {
        // SAFETY: the list belongs to the collector; each node was pushed
        // once and is freed once, here.
        unsafe {
            got.push((*n).payload.with(|p| *p));
            let next = (*n).next.with(|p| *p);
            drop(Box::from_raw(n));
            n = next;
        }
    }
    if let Some(count) = count {
        assert_eq!(count, got.len(), "the list's count does not match its nodes");
    }
    got
}

/// What both the real list and the broken control implement.
trait Stack: Send + Sync + 'static {
    fn new() -> Self;
    /// # Safety
    /// `node` must be a fresh node owned by the caller.
    unsafe fn push(&self, node: *mut Node);
    /// The nodes and, where the list counts them, their number.
    fn take_all(&self) -> (*mut Node, Option<usize>);
}

/// The list under test.
struct Real(RemoteList<Node>);
// SAFETY: the list only holds an atomic pointer; nodes are handed over by
// the protocol under test.
unsafe impl Send for Real {}
// SAFETY: as above.
unsafe impl Sync for Real {}

impl Stack for Real {
    fn new() -> Self {
        Real(RemoteList::new())
    }
    unsafe fn push(&self, node: *mut Node) {
        // SAFETY: forwarded caller contract.
        unsafe { self.0.push(node, set_link) }
    }
    fn take_all(&self) -> (*mut Node, Option<usize>) {
        let (n, count) = self.0.take_all();
        (n, Some(count))
    }
}

/// `RemoteList` with every ordering weakened to Relaxed: the planted bug.
struct Broken(AtomicPtr<Node>);

impl Stack for Broken {
    fn new() -> Self {
        Broken(AtomicPtr::new(core::ptr::null_mut()))
    }
    unsafe fn push(&self, node: *mut Node) {
        let mut head = self.0.load(Ordering::Relaxed);
        loop {
            set_link(node, head);
            match self
                .0
                .compare_exchange_weak(head, node, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(h) => head = h,
            }
        }
    }
    fn take_all(&self) -> (*mut Node, Option<usize>) {
        (self.0.swap(core::ptr::null_mut(), Ordering::Relaxed), None)
    }
}

/// Two producers push two nodes each; the owner collects twice
/// concurrently and once after they are done: every node arrives exactly
/// once with its payload, and each collection's count matches its nodes.
fn remote_list_model<S: Stack>() {
    let mut builder = loom::model::Builder::new();
    // Exhaustive is too slow (over 13 CPU minutes); 4 preemptions explore
    // ~93,000 executions in about 4 s. `LOOM_MAX_PREEMPTIONS` overrides.
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(4);
    }
    builder.check(|| {
        let list = Arc::new(S::new());
        let producers: Vec<_> = [[1u64, 2], [3, 4]]
            .into_iter()
            .map(|payloads| {
                let list = list.clone();
                thread::spawn(move || {
                    for v in payloads {
                        // SAFETY: a fresh node, ours until pushed.
                        unsafe { list.push(new_node(v)) };
                    }
                })
            })
            .collect();
        // The yields matter: loom 0.7's search does not reorder this
        // thread's first relaxed load (in `take_all`) after the producers'
        // first load + CAS on their own, so without them the concurrent
        // collections would only ever see an empty list (measured: 0 of
        // 837 executions saw a node). A yield lets the producers run first.
        thread::yield_now();
        let mut got = drain(list.take_all());
        thread::yield_now();
        got.extend(drain(list.take_all()));
        for p in producers {
            p.join().unwrap();
        }
        got.extend(drain(list.take_all()));
        got.sort_unstable();
        assert_eq!(got, [1, 2, 3, 4], "a node was lost or received twice");
        assert!(list.take_all().0.is_null());
    });
}

#[test]
fn remote_list_every_node_arrives_once_intact() {
    remote_list_model::<Real>();
}

/// A producer links three nodes privately and hands them over with one
/// `push_chain` while another pushes single nodes and the owner collects
/// concurrently: every node arrives exactly once with its payload (the
/// chain's inner links are published by the one Release CAS).
#[test]
fn remote_list_chain_arrives_whole() {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(4);
    }
    builder.check(|| {
        let list = Arc::new(Real::new());
        let chain = {
            let list = list.clone();
            thread::spawn(move || {
                let (a, b, c) = (new_node(10), new_node(11), new_node(12));
                set_link(a, b);
                set_link(b, c);
                // SAFETY: the three nodes are fresh and ours until pushed.
                unsafe { list.0.push_chain(a, c, 3, set_link) };
            })
        };
        let single = {
            let list = list.clone();
            thread::spawn(move || {
                // SAFETY: a fresh node, ours until pushed.
                unsafe { list.push(new_node(20)) };
            })
        };
        thread::yield_now();
        let mut got = drain(list.take_all());
        chain.join().unwrap();
        single.join().unwrap();
        got.extend(drain(list.take_all()));
        got.sort_unstable();
        assert_eq!(got, [10, 11, 12, 20], "a node was lost or received twice");
    });
}

/// Control: the same model against a Relaxed copy must fail (loom reports
/// the unsynchronised read of a node's link or payload).
#[test]
#[should_panic(expected = "Causality violation")]
fn control_relaxed_remote_list_is_caught() {
    remote_list_model::<Broken>();
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
