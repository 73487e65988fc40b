//! A tiny spin lock for this library's cold paths (the witness entry
//! points), which `fork` handlers can hold across the fork.

use core::sync::atomic::{AtomicBool, Ordering};

/// A test-and-test-and-set lock without a protected value.
pub(crate) struct RawLock(AtomicBool);

impl RawLock {
    /// An unlocked lock.
    pub(crate) const fn new() -> Self {
        Self(AtomicBool::new(false))
    }

    /// Spins (yielding the CPU after a while) until the lock is ours.
    pub(crate) fn acquire(&self) {
        loop {
            if self
                .0
                .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return;
            }
            let mut spins = 0u32;
            while self.0.load(Ordering::Relaxed) {
                spins = spins.wrapping_add(1);
                if spins < 64 {
                    core::hint::spin_loop();
                } else {
                    // SAFETY: sched_yield has no preconditions. It cannot
                    // fail on Linux, so errno is left alone.
                    unsafe { libc::sched_yield() };
                }
            }
        }
    }

    /// Releases the lock.
    ///
    /// # Safety
    /// The caller must hold the lock (taken with [`acquire`](Self::acquire)
    /// by this thread, or inherited across `fork`).
    pub(crate) unsafe fn release(&self) {
        self.0.store(false, Ordering::Release);
    }

    /// Runs `f` with the lock held.
    pub(crate) fn with<R>(&self, f: impl FnOnce() -> R) -> R {
        struct Release<'a>(&'a RawLock);
        impl Drop for Release<'_> {
            fn drop(&mut self) {
                // SAFETY: created right after `acquire` below.
                unsafe { self.0.release() }
            }
        }
        self.acquire();
        let _release = Release(self);
        f()
    }
}
