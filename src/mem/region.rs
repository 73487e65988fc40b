//! Regions: big ranges of address space reserved once and cut into equal
//! slots. Segments (small objects) and witness chunks each live in their own
//! region, which buys two things:
//!
//! * **Pointer classification in one comparison.** `p - base < size` tells
//!   whether a pointer is a small block (segment region) or a secret
//!   (witness region), without any lookup — used by `dealloc` for witness
//!   blocks and by the C ABI's `free`, which gets no size.
//! * **Guard gaps for free.** Slots are committed one by one; whatever is
//!   not committed stays inaccessible.
//!
//! The full size is asked for first (1 TiB for segments); where the address
//! space is limited (`ulimit -v`, valgrind, 32-bit) the reservation halves
//! until it succeeds, down to a few slots. `contains` compares against the
//! size actually reserved (zero until then), so it never claims foreign
//! memory.

use core::ptr;
use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use crate::base::sync::SpinLock;
use crate::os;

/// A reserved range of `SLOTS` slots of `slot` bytes each.
pub(crate) struct Region<const WORDS: usize> {
    /// Start of the reservation (0 until reserved).
    base: AtomicUsize,
    /// Bytes reserved (0 until reserved): `contains` ⇔ `p - base < len`.
    len: AtomicUsize,
    slot: usize,
    /// Most slots wanted (at most `WORDS * 64`).
    max_slots: usize,
    map: SpinLock<SlotMap<WORDS>>,
}

struct SlotMap<const WORDS: usize> {
    reserved: bool,
    /// The reservation, with its provenance: slot pointers are derived
    /// from it (strict provenance), `Region::base` is only for comparisons.
    base: *mut u8,
    /// Slots actually reserved.
    slots: usize,
    /// Bit set: slot in use.
    bits: [u64; WORDS],
    /// Where the next single-slot search starts.
    hint: usize,
}

// SAFETY: `base` is the address of our own reservation, never dereferenced
// through the map; the lock serialises every access.
unsafe impl<const WORDS: usize> Send for SlotMap<WORDS> {}

impl<const WORDS: usize> Region<WORDS> {
    /// A region of `slots` (at most `WORDS * 64`) slots of `slot` bytes (a
    /// power of two).
    pub(crate) const fn new(slot: usize, slots: usize) -> Self {
        assert!(slots <= WORDS * 64);
        Self {
            base: AtomicUsize::new(0),
            len: AtomicUsize::new(0),
            slot,
            max_slots: slots,
            map: SpinLock::new(SlotMap {
                reserved: false,
                base: ptr::null_mut(),
                slots: 0,
                bits: [0; WORDS],
                hint: 0,
            }),
        }
    }

    /// True if `p` lies in the region.
    #[inline(always)]
    pub(crate) fn contains(&self, p: *const u8) -> bool {
        p.addr().wrapping_sub(self.base.load(Relaxed)) < self.len.load(Relaxed)
    }

    /// The region's first byte (0 before it is reserved).
    pub(crate) fn base_addr(&self) -> usize {
        self.base.load(Relaxed)
    }

    /// Index of the slot holding `p` (which must be in the region).
    pub(crate) fn slot_of(&self, p: *const u8) -> usize {
        (p.addr() - self.base.load(Relaxed)) / self.slot
    }

    /// Claims `n` consecutive free slots and returns a pointer to the first
    /// (not yet committed). Null when the address space is exhausted or
    /// cannot be reserved.
    pub(crate) fn claim(&self, n: usize) -> *mut u8 {
        let mut m = self.map.lock();
        if !m.reserved {
            let mut slots = self.max_slots;
            let base = loop {
                let base = os::reserve(slots * self.slot, self.slot);
                if !base.is_null() {
                    break base;
                }
                if slots <= 4 {
                    return base;
                }
                slots /= 2;
            };
            self.base.store(base.addr(), Relaxed);
            m.base = base;
            self.len.store(slots * self.slot, Relaxed);
            m.slots = slots;
            m.reserved = true;
        }
        let slots = m.slots;
        let start = if n == 1 { m.hint } else { 0 };
        let mut run = 0;
        for k in 0..slots {
            let i = (start + k) % slots;
            if i == 0 {
                run = 0;
            }
            if m.bits[i / 64] & (1 << (i % 64)) == 0 {
                run += 1;
                if run == n {
                    let first = i + 1 - n;
                    for j in first..=i {
                        m.bits[j / 64] |= 1 << (j % 64);
                    }
                    if n == 1 {
                        m.hint = (i + 1) % slots;
                    }
                    return m.base.wrapping_add(first * self.slot);
                }
            } else {
                run = 0;
            }
        }
        ptr::null_mut()
    }

    /// Holds the slot map's lock across `fork` (see `raw::fork_prepare`).
    pub(crate) fn fork_lock(&self) {
        self.map.acquire_raw();
    }

    /// Undoes [`fork_lock`](Self::fork_lock).
    ///
    /// # Safety
    /// Only after `fork_lock`, in the same process image.
    pub(crate) unsafe fn fork_unlock(&self) {
        // SAFETY: caller contract.
        unsafe { self.map.release_raw() }
    }

    /// Returns `n` slots starting at `p` (already decommitted).
    pub(crate) fn release(&self, p: *mut u8, n: usize) {
        let first = self.slot_of(p);
        let mut m = self.map.lock();
        for j in first..first + n {
            m.bits[j / 64] &= !(1 << (j % 64));
        }
        if n == 1 && first < m.hint {
            m.hint = first;
        }
    }
}
