//! A minimal spin lock for the allocator's *slow* paths.
//!
//! `std::sync::Mutex` may allocate on some platforms and would recurse into
//! the allocator, so the few shared structures (the warm span pool, the heap
//! registry, the segment cache, witness chunk lists) are guarded by this lock.
//! It is never taken on the small-object fast path. Critical sections are a
//! handful of pointer operations — never a system call while another thread
//! could be waiting for long, except where noted at the call site.

use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicBool, Ordering};

use crate::base::stats;

/// A test-and-test-and-set spin lock protecting a `T`.
pub(crate) struct SpinLock<T> {
    locked: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: the lock serialises all access to `value`, so sharing the lock
// between threads is sound whenever `T` itself may be sent between threads.
unsafe impl<T: Send> Sync for SpinLock<T> {}
// SAFETY: moving the lock moves the value; that is fine for `T: Send`.
unsafe impl<T: Send> Send for SpinLock<T> {}

impl<T> SpinLock<T> {
    /// A new, unlocked lock.
    pub(crate) const fn new(value: T) -> Self {
        Self {
            locked: AtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }

    /// Spins until the lock is ours. Counts the acquisition, and whether
    /// its first try failed (contended), in `stats::LOCKS`: from inside the
    /// critical section, so the counters' line moves with the lock's.
    #[inline]
    pub(crate) fn lock(&self) -> SpinGuard<'_, T> {
        let mut contended = false;
        loop {
            if self
                .locked
                .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                stats::lock_taken(contended);
                return SpinGuard { lock: self };
            }
            // (A weak exchange may also fail spuriously on LL/SC machines:
            // counted as contention there, never on x86-64.)
            contended = true;
            let mut spins = 0u32;
            while self.locked.load(Ordering::Relaxed) {
                spins = spins.wrapping_add(1);
                if spins < 64 {
                    core::hint::spin_loop();
                } else {
                    // A holder that was descheduled: give it the core instead
                    // of burning our time slice.
                    std::thread::yield_now();
                }
            }
        }
    }
}

impl<T> SpinLock<T> {
    /// The lock if it is free now, else `None` (for housekeeping that may
    /// as well wait for another occasion).
    #[inline]
    pub(crate) fn try_lock(&self) -> Option<SpinGuard<'_, T>> {
        if self
            .locked
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return None;
        }
        stats::lock_taken(false);
        // A guard only now that the lock is ours: built eagerly (as
        // `bool::then_some`'s argument is) and dropped on failure, it
        // released the lock that another thread held. That let a tidy's
        // look at exited threads' heaps run beside a thread adopting one
        // of them (`c-larson` with 8 threads: blocks of a live page purged).
        Some(SpinGuard { lock: self })
    }

    /// Takes the lock without a guard (for `fork` handlers, which must hold
    /// locks across a call boundary).
    pub(crate) fn acquire_raw(&self) {
        core::mem::forget(self.lock());
    }

    /// Releases a lock taken with [`acquire_raw`](Self::acquire_raw).
    ///
    /// # Safety
    /// The caller must hold the lock through `acquire_raw` and must not
    /// touch the value afterwards without locking again.
    pub(crate) unsafe fn release_raw(&self) {
        self.locked.store(false, Ordering::Release);
    }
}

/// Proof that the lock is held; releases it on drop.
pub(crate) struct SpinGuard<'a, T> {
    lock: &'a SpinLock<T>,
}

impl<T> Deref for SpinGuard<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: holding the guard means we own the lock, so no other
        // reference to the value exists.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for SpinGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, the lock gives exclusive access.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for SpinGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.lock.locked.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::sync::atomic::Ordering::Relaxed;

    /// A `try_lock` that fails leaves the holder's lock held.
    #[test]
    fn failed_try_lock_leaves_the_lock_held() {
        let lock = SpinLock::new(0u32);
        let held = lock.lock();
        assert!(lock.try_lock().is_none());
        assert!(lock.try_lock().is_none(), "the failed try released the lock");
        drop(held);
        let again = lock.try_lock();
        assert!(again.is_some());
        assert!(lock.try_lock().is_none());
    }

    /// An acquisition is counted, and one that had to wait for a holder is
    /// counted as contended (deltas: other tests take locks meanwhile).
    #[test]
    fn acquisitions_and_contention_are_counted() {
        static LOCK: SpinLock<u32> = SpinLock::new(0);
        let taken = stats::LOCKS.taken.load(Relaxed);
        drop(LOCK.lock());
        assert!(stats::LOCKS.taken.load(Relaxed) > taken);

        let contended = stats::LOCKS.contended.load(Relaxed);
        let held = LOCK.lock();
        let waiter = std::thread::spawn(|| *LOCK.lock() += 1);
        // The waiter's first try fails while we hold the lock.
        std::thread::sleep(std::time::Duration::from_millis(50));
        drop(held);
        waiter.join().unwrap();
        assert_eq!(*LOCK.lock(), 1);
        assert!(stats::LOCKS.contended.load(Relaxed) > contended);
    }
}
