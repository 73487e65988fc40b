//! The cross-thread free list: a lock-free LIFO stack that any thread may
//! push a freed block onto and that only the owner drains, all at once.
//!
//! This is the whole protocol between threads on the small-object paths:
//! `push` (one node) and `push_chain` (a chain the pusher linked privately)
//! are a CAS loop with Release (the link words are published with it),
//! `take_all` is one swap with Acquire. There is no ABA problem: nodes are
//! only ever pushed and removed all together by a single consumer.
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

    /// Pushes `node`; `set_link(node, next)` must store `next` in the node.
    ///
    /// # Safety
    /// `node` must be valid for writes and owned by the caller until this
    /// returns; afterwards it belongs to the list.
    #[inline]
    pub(crate) unsafe fn push(&self, node: *mut T, set_link: impl Fn(*mut T, *mut T)) {
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            set_link(node, head);
            match self
                .head
                .compare_exchange_weak(head, node, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(h) => head = h,
            }
        }
    }

    /// Pushes the chain `first ..= last` (already linked by the caller,
    /// `first` nearest the head) with one CAS; `set_link(last, next)` must
    /// store `next` in `last`.
    ///
    /// # Safety
    /// Every node of the chain must be valid for writes and owned by the
    /// caller until this returns; afterwards they belong to the list.
    #[inline]
    pub(crate) unsafe fn push_chain(&self, first: *mut T, last: *mut T, set_link: impl Fn(*mut T, *mut T)) {
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            set_link(last, head);
            // Release publishes the links of the whole chain, written by
            // this thread before the CAS.
            match self
                .head
                .compare_exchange_weak(head, first, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(h) => head = h,
            }
        }
    }

    /// Takes every node pushed so far (null if none). Only one thread (the
    /// owner) may call this.
    #[inline]
    pub(crate) fn take_all(&self) -> *mut T {
        if self.is_empty() {
            return core::ptr::null_mut();
        }
        // Acquire pairs with `push`'s Release: the links are visible.
        self.head.swap(core::ptr::null_mut(), Ordering::Acquire)
    }
}
