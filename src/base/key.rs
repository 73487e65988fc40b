//! Per-process secret keys: the values that make a forged check value (a C
//! header's seal, a witness block's canary, an encoded free-list link)
//! unlikely. Each key is chosen on first use from the OS's randomness and
//! the address-space layout (either alone suffices), never 0, and the same
//! for every thread: the first writer wins.

use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};

/// One process-wide secret word (see the module docs).
pub(crate) struct Key(AtomicUsize);

impl Key {
    /// A key not chosen yet.
    pub(crate) const fn new() -> Self {
        Self(AtomicUsize::new(0))
    }

    /// The key, choosing it on first use.
    #[inline]
    pub(crate) fn get(&self) -> usize {
        let k = self.0.load(Relaxed);
        if k != 0 {
            return k;
        }
        self.choose()
    }

    /// The key as it is now, 0 if not chosen yet: for fast paths that run
    /// only after a slow path called [`get`](Self::get).
    #[inline(always)]
    pub(crate) fn peek(&self) -> usize {
        self.0.load(Relaxed)
    }

    #[cold]
    fn choose(&self) -> usize {
        let mut buf = [0u8; core::mem::size_of::<usize>()];
        crate::os::random(&mut buf);
        let k = (usize::from_ne_bytes(buf) ^ (self as *const Self).addr().rotate_left(29)) | 1;
        match self.0.compare_exchange(0, k, Relaxed, Relaxed) {
            Ok(_) => k,
            Err(won) => won,
        }
    }
}
