//! A lock-free, allocation-free once-flag for the allocator's lazy
//! initialisation. The first caller runs the initialiser; concurrent callers
//! spin until it is done. The initialiser must neither allocate through the
//! allocator nor call back into it (that would wait on itself) — which is
//! why nalloc's initialiser only reads the environment into stack buffers.
//!
//! Self-contained so that `tests/loom.rs` can model-check it.

#[cfg(not(loom))]
use core::sync::atomic::{AtomicU8, Ordering};
#[cfg(loom)]
use loom::sync::atomic::{AtomicU8, Ordering};

const NEW: u8 = 0;
const RUNNING: u8 = 1;
const DONE: u8 = 2;

/// Runs an initialiser exactly once.
pub(crate) struct Once {
    state: AtomicU8,
}

impl Once {
    /// A flag whose initialiser has not run.
    #[cfg(not(loom))]
    pub(crate) const fn new() -> Self {
        Self {
            state: AtomicU8::new(NEW),
        }
    }

    /// A flag whose initialiser has not run.
    #[cfg(loom)]
    pub(crate) fn new() -> Self {
        Self {
            state: AtomicU8::new(NEW),
        }
    }

    /// Runs `init` if nobody has; returns once it has completed (on any
    /// thread). Everything `init` wrote is visible afterwards.
    #[inline]
    pub(crate) fn call(&self, init: impl FnOnce()) {
        if self.state.load(Ordering::Acquire) == DONE {
            return;
        }
        self.call_slow(init);
    }

    #[cold]
    fn call_slow(&self, init: impl FnOnce()) {
        if self
            .state
            .compare_exchange(NEW, RUNNING, Ordering::Acquire, Ordering::Acquire)
            .is_ok()
        {
            init();
            self.state.store(DONE, Ordering::Release);
            return;
        }
        while self.state.load(Ordering::Acquire) != DONE {
            #[cfg(loom)]
            loom::thread::yield_now();
            #[cfg(not(loom))]
            core::hint::spin_loop();
        }
    }
}
