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
//!
//! **Where a claim lands.** The segment region reuses the lowest free slot
//! first, which keeps the address space (and page tables) it touches small.
//! The witness region *rotates* ([`Region::rotating`]): every claim starts
//! where the last one ended, and a released slot is not taken again until
//! claims have gone round a window of slots. So a chunk just released stays
//! uncommitted for a while, and a stale pointer into it (a second
//! `nalloc_witness_free` after the same size was allocated again) finds no
//! committed memory and is reported, instead of landing on the new owner's
//! block at the same address. The window bounds the address space the
//! rotation touches: `MADV_DONTNEED` leaves page tables behind, and
//! rotating through all 64 GiB would keep up to 128 MiB of them (see
//! docs/design/misuse.md).

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
    /// Slots a rotating region's claims go round before starting again at
    /// slot 0; 0 for a region that reuses the lowest free slot first.
    rotate: usize,
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
    /// Where the next search starts: single-slot claims only, unless the
    /// region rotates.
    hint: usize,
}

// SAFETY: `base` is the address of our own reservation, never dereferenced
// through the map; the lock serialises every access.
unsafe impl<const WORDS: usize> Send for SlotMap<WORDS> {}

impl<const WORDS: usize> Region<WORDS> {
    /// A region of `slots` (at most `WORDS * 64`) slots of `slot` bytes (a
    /// power of two).
    pub(crate) const fn new(slot: usize, slots: usize) -> Self {
        Self::with_rotation(slot, slots, 0)
    }

    /// A region like [`new`](Self::new) whose claims rotate through its
    /// first `window` slots (all of them if fewer; see the module docs).
    pub(crate) const fn rotating(slot: usize, slots: usize, window: usize) -> Self {
        assert!(window > 0);
        Self::with_rotation(slot, slots, window)
    }

    const fn with_rotation(slot: usize, slots: usize, rotate: usize) -> Self {
        assert!(slots <= WORDS * 64);
        Self {
            base: AtomicUsize::new(0),
            len: AtomicUsize::new(0),
            slot,
            max_slots: slots,
            rotate,
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
        if n == 0 || n > slots {
            return ptr::null_mut();
        }
        let start = if n == 1 || self.rotate != 0 { m.hint } else { 0 };
        let mut run = 0;
        // `n - 1` slots past a full turn: a free run that straddles `start`
        // is found too (a run never wraps from the last slot to the first).
        for k in 0..slots + n - 1 {
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
                    if self.rotate != 0 {
                        // Past the window (claims went beyond it while it
                        // was full, or it was just gone round): start over.
                        m.hint = if i + 1 >= self.rotate.min(slots) { 0 } else { i + 1 };
                    } else if n == 1 {
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
        // A rotating region leaves its hint alone: the slots wait their turn.
        if n == 1 && first < m.hint && self.rotate == 0 {
            m.hint = first;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SLOT: usize = 64 << 10;

    #[test]
    fn a_lowest_first_region_hands_a_released_slot_out_again() {
        static R: Region<1> = Region::new(SLOT, 16);
        let a = R.claim(2);
        assert!(!a.is_null());
        R.release(a, 2);
        assert_eq!(R.claim(2), a);
        let b = R.claim(1);
        R.release(b, 1);
        assert_eq!(R.claim(1), b);
    }

    #[test]
    fn a_rotating_region_goes_round_its_window_before_reuse() {
        static R: Region<1> = Region::rotating(SLOT, 16, 8);
        let first = R.claim(2);
        assert!(!first.is_null());
        R.release(first, 2);
        // Slots 2-3, 4-5, 6-7, then the window is gone round: 0-1 again.
        for k in 1..4 {
            let p = R.claim(2);
            assert_eq!(p, first.wrapping_add(2 * k * SLOT), "claim {k}");
            R.release(p, 2);
        }
        assert_eq!(R.claim(2), first);
    }

    #[test]
    fn a_free_run_across_the_search_start_is_found() {
        static R: Region<1> = Region::rotating(SLOT, 8, 8);
        let a = R.claim(2); // 0-1, the search starts at 2 next
        let b = R.claim(3); // 2-4
        let c = R.claim(3); // 5-7
        assert!(!a.is_null() && !b.is_null() && !c.is_null());
        R.release(a, 2);
        R.release(b, 3);
        // Free: 0-4; the search starts at 0 again (the window was gone
        // round), so move it into the free run first.
        let d = R.claim(2); // 0-1, next search from 2
        R.release(d, 2);
        // The only run of 5 free slots, 0-4, straddles where the search
        // starts.
        assert_eq!(R.claim(5), a);
    }
}
