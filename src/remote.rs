//! The cross-thread free list: a lock-free LIFO stack that any thread may
//! push a freed block onto and that only the owner drains, all at once.
//!
//! This is the whole protocol between threads on the small-object paths:
//! `push` (one node) and `push_chain` (a chain the pusher linked privately)
//! are a CAS loop with Release (the link words are published with it),
//! `take_all` is one swap with Acquire. There is no ABA problem: nodes are
//! only ever pushed and removed all together by a single consumer.
//!
//! The head word also counts the nodes on the list, in its top 16 bits
//! (user-space addresses fit in 48 bits on every platform nalloc runs on),
//! so `take_all` returns the list and its length from one swap, always
//! consistent with each other. The owner needs the length (a page's live
//! count drops by it) and used to walk the whole list for it: a cache miss
//! per node, on lines that another thread had just written (7 % of a
//! Python program's time under `LD_PRELOAD`).
//!
//! Self-contained (no `crate::` paths) so that `tests/loom.rs` can compile
//! it against loom's model-checked atomics.

#[cfg(not(loom))]
use core::sync::atomic::{AtomicPtr, Ordering};
#[cfg(loom)]
use loom::sync::atomic::{AtomicPtr, Ordering};

/// A multi-producer, single-consumer stack of intrusively linked nodes.
pub(crate) struct RemoteList<T> {
    head: AtomicPtr<T>,
}

impl<T> RemoteList<T> {
    /// An empty list.
    #[cfg(not(loom))]
    pub(crate) const fn new() -> Self {
        Self {
            head: AtomicPtr::new(core::ptr::null_mut()),
        }
    }

    /// An empty list.
    #[cfg(loom)]
    pub(crate) fn new() -> Self {
        Self {
            head: AtomicPtr::new(core::ptr::null_mut()),
        }
    }

    /// True if nothing is waiting (a relaxed hint, may be stale).
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.head.load(Ordering::Relaxed).is_null()
    }

    /// How many nodes are waiting (a relaxed hint, may be stale: it can only
    /// be lower than the truth, as nodes are only added until the owner
    /// takes them all).
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.head.load(Ordering::Relaxed).addr() >> COUNT_SHIFT
    }

    /// Pushes `node`; `set_link(node, next)` must store `next` in the node.
    ///
    /// # Safety
    /// `node` must be valid for writes and owned by the caller until this
    /// returns; afterwards it belongs to the list.
    #[inline]
    pub(crate) unsafe fn push(&self, node: *mut T, set_link: impl Fn(*mut T, *mut T)) {
        // SAFETY: forwarded caller contract (a chain of one node).
        unsafe { self.push_chain(node, node, 1, set_link) }
    }

    /// Pushes the chain `first ..= last` of `n` nodes (already linked by the
    /// caller, `first` nearest the head) with one CAS; `set_link(last,
    /// next)` must store `next` in `last`.
    ///
    /// # Safety
    /// Every node of the chain must be valid for writes and owned by the
    /// caller until this returns; afterwards they belong to the list. The
    /// list may never hold more than `MAX_COUNT` nodes.
    #[inline]
    pub(crate) unsafe fn push_chain(&self, first: *mut T, last: *mut T, n: usize, set_link: impl Fn(*mut T, *mut T)) {
        debug_assert!(first.addr() & !ADDR_MASK == 0, "node address beyond 48 bits");
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            set_link(last, untag(head));
            let count = (head.addr() >> COUNT_SHIFT) + n;
            debug_assert!(count <= MAX_COUNT);
            let new = first.map_addr(|a| a | count << COUNT_SHIFT);
            // Release publishes the links of the whole chain, written by
            // this thread before the CAS.
            match self
                .head
                .compare_exchange_weak(head, new, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(h) => head = h,
            }
        }
    }

    /// Takes every node pushed so far, with their number (null and 0 if
    /// none). Only one thread (the owner) may call this.
    #[inline]
    pub(crate) fn take_all(&self) -> (*mut T, usize) {
        if self.is_empty() {
            return (core::ptr::null_mut(), 0);
        }
        // Acquire pairs with `push`'s Release: the links are visible.
        let head = self.head.swap(core::ptr::null_mut(), Ordering::Acquire);
        (untag(head), head.addr() >> COUNT_SHIFT)
    }
}

/// Where the node count starts in the head word.
#[cfg(target_pointer_width = "64")]
const COUNT_SHIFT: u32 = 48;
#[cfg(not(target_pointer_width = "64"))]
compile_error!("the remote free list keeps its length in the head pointer's top 16 bits: 64-bit targets only");
/// The address bits of the head word.
const ADDR_MASK: usize = (1 << COUNT_SHIFT) - 1;
/// The most nodes a list may hold.
pub(crate) const MAX_COUNT: usize = (1 << (usize::BITS - COUNT_SHIFT)) - 1;

/// The node address of a head word (its provenance kept).
#[inline(always)]
fn untag<T>(head: *mut T) -> *mut T {
    head.map_addr(|a| a & ADDR_MASK)
}
