//! The warm pool: freed span memory kept mapped (its pages stay faulted in)
//! for reuse, as a small set of free address ranges.
//!
//! **Coalescing.** Where the platform can unmap part of a mapping and
//! unmap adjacent mappings together ([`os::CAN_TRIM`]: every Unix), a range
//! put back merges with the free ranges right before and after it, and a
//! request is served by cutting the best-fitting range (the shortest one
//! that holds the request at its alignment); the pieces before and after
//! the cut stay pooled. So a program that frees a 20 MiB block and then asks
//! for 8 MiB and 12 MiB gets both from the same warm pages, and when it
//! frees them the 20 MiB range is whole again. (Without coalescing, cut-off
//! pieces were rarely the right size: see
//! docs/design/spans-and-warm-pool.md.) Elsewhere (Windows, Miri) and under
//! the explicit huge-page policy (see [`can_cut`]) a range is exactly one
//! mapping and only an exact fit is reused.
//!
//! **Bounds.** At most [`SLOTS`] ranges and `config::pool_cap()` bytes; when
//! either bound is hit, the oldest range (the one put back or merged
//! longest ago) is released first — only as much of it as needed, where the
//! platform can release part of a mapping. Unmapping happens outside the
//! lock: `munmap` of a big range takes milliseconds.
//!
//! The pool knows nothing of live spans; `span` decides when to retain
//! and how much (its retention budget) and keeps the statistics of live
//! memory.

use core::ptr;
use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use crate::base::check::invariant;
use crate::base::config;
use crate::base::stats;
use crate::base::sync::SpinLock;
use crate::os;

/// Most free ranges the pool holds (see docs/design/spans-and-warm-pool.md).
pub(crate) const SLOTS: usize = crate::policy::POOL_SLOTS;

/// A free address range: whole pages, mapped read-write, owned by the pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Range {
    pub(crate) ptr: *mut u8,
    pub(crate) len: usize,
}

impl Range {
    fn end(&self) -> usize {
        self.ptr.addr() + self.len
    }
}

/// Checks, in debug builds, ranges held for reuse (the pool's, a span
/// cache's): each non-empty, page-aligned and whole pages, no two
/// overlapping, nor touching unless `may_touch`. Returns their byte sum.
pub(crate) fn check_ranges(live: &[Range], may_touch: bool) -> usize {
    let mut sum = 0usize;
    for (i, r) in live.iter().enumerate() {
        let a = r.ptr.addr();
        invariant!(
            a != 0 && r.len != 0 && a % os::page() == 0 && r.len % os::page() == 0,
            "ranges: a range is empty or not whole pages",
            a
        );
        sum = sum.wrapping_add(r.len);
        for q in &live[i + 1..] {
            let apart = if may_touch {
                q.end() <= a || r.end() <= q.ptr.addr()
            } else {
                q.end() < a || r.end() < q.ptr.addr()
            };
            invariant!(apart, "ranges: two ranges overlap (or touch where they must merge)", a);
        }
    }
    sum
}

struct Pool {
    /// Oldest first.
    ranges: [Range; SLOTS],
    len: usize,
    bytes: usize,
    /// Whether the pooled ranges may be cut and joined ([`can_cut`] when
    /// they were pooled). The huge-page policy can change at any time
    /// (`NAlloc::set_huge_pages`); ranges pooled under one mode are
    /// released when the mode changes, never cut or joined under the other
    /// (a `MAP_HUGETLB` mapping cut off a 2 MiB boundary cannot be unmapped,
    /// and ranges pooled unjoined would break the no-touching invariant).
    cuttable: bool,
}
// SAFETY: pooled ranges are unowned memory; the lock serialises access.
unsafe impl Send for Pool {}

static POOL: SpinLock<Pool> = SpinLock::new(Pool {
    ranges: [Range {
        ptr: ptr::null_mut(),
        len: 0,
    }; SLOTS],
    len: 0,
    bytes: 0,
    cuttable: true,
});

/// The pool's `bytes`, readable without the lock (stored under it).
static BYTES: AtomicUsize = AtomicUsize::new(0);
/// The length of the pool's longest range, readable without the lock
/// (stored under it): a request longer than it misses without taking the
/// lock. Most requests that miss a thread's span cache miss the pool too
/// (docs/design/scaling.md). A range pooled meanwhile is missed, as it
/// would be a moment earlier under the lock.
static LONGEST: AtomicUsize = AtomicUsize::new(0);

/// Runs `f` on the process-wide pool under its lock, and publishes its byte
/// count after.
fn locked<R>(f: impl FnOnce(&mut Pool) -> R) -> R {
    let mut pool = POOL.lock();
    pool.follow_policy();
    let r = f(&mut pool);
    pool.check();
    BYTES.store(pool.bytes, Relaxed);
    LONGEST.store(
        pool.ranges[..pool.len].iter().map(|r| r.len).max().unwrap_or(0),
        Relaxed,
    );
    r
}

impl Pool {
    /// Releases every range if the cut mode has changed since they were
    /// pooled (a huge-page policy switch to or from `Explicit`: rare, so the
    /// unmaps run under the lock).
    fn follow_policy(&mut self) {
        let now = can_cut();
        if now != self.cuttable {
            while self.len > 0 {
                release(self.remove(0));
            }
            self.cuttable = now;
        }
    }

    /// Checks the pool's invariants in debug builds (see `base/check.rs`):
    /// at most `SLOTS` ranges, each non-empty, page-aligned and whole
    /// pages; `bytes` is their sum; no two overlap, and where mappings can
    /// be joined no two touch (neighbours are always merged).
    fn check(&self) {
        if !cfg!(debug_assertions) {
            return;
        }
        let at = self as *const Pool as usize;
        invariant!(self.len <= SLOTS, "pool: more ranges than slots", at);
        let sum = check_ranges(&self.ranges[..self.len.min(SLOTS)], !self.cuttable);
        invariant!(sum == self.bytes, "pool: byte count differs from its ranges", at);
    }

    fn remove(&mut self, i: usize) -> Range {
        let r = self.ranges[i];
        self.ranges.copy_within(i + 1..self.len, i);
        self.len -= 1;
        self.bytes -= r.len;
        r
    }

    /// Appends (as the newest) a range that fits in a free slot.
    fn push(&mut self, r: Range) {
        debug_assert!(self.len < SLOTS);
        self.ranges[self.len] = r;
        self.len += 1;
        self.bytes += r.len;
    }

    /// Detaches up to `want` bytes from the oldest range: all of it, or —
    /// where a mapping can be cut — its last `want` bytes (rounded to pages).
    fn evict_oldest(&mut self, want: usize) -> Range {
        let r = self.ranges[0];
        let cut = want.checked_next_multiple_of(os::page()).unwrap_or(usize::MAX);
        if self.cuttable && cut < r.len {
            self.ranges[0].len -= cut;
            self.bytes -= cut;
            Range {
                ptr: r.ptr.wrapping_add(r.len - cut),
                len: cut,
            }
        } else {
            self.remove(0)
        }
    }

    /// Removes the free neighbours of `r` (the pool's ranges are never
    /// adjacent to each other, so at most one on each side) and returns `r`
    /// grown over them. Only where mappings can be cut and joined.
    fn merge(&mut self, mut r: Range) -> Range {
        if !self.cuttable {
            return r;
        }
        let mut i = 0;
        while i < self.len {
            let q = self.ranges[i];
            if q.end() == r.ptr.addr() {
                self.remove(i);
                r = Range {
                    ptr: q.ptr,
                    len: q.len + r.len,
                };
            } else if r.end() == q.ptr.addr() {
                self.remove(i);
                r.len += q.len;
            } else {
                i += 1;
            }
        }
        r
    }

    /// Adds `r` as the newest range if the bounds allow; otherwise returns
    /// what must be released first: part or all of the oldest range, or `r`
    /// itself when it exceeds the cap on its own.
    fn admit(&mut self, r: Range, cap: usize) -> Option<Range> {
        if self.len < SLOTS && self.bytes + r.len <= cap {
            self.push(r);
            return None;
        }
        if self.len == 0 || r.len > cap {
            // Too big to keep even alone: release it, not the warm rest.
            return Some(r);
        }
        // A full pool frees a slot: the whole oldest range.
        let want = if self.len >= SLOTS {
            usize::MAX
        } else {
            self.bytes + r.len - cap
        };
        Some(self.evict_oldest(want))
    }

    /// Cuts `len` bytes at an `align`-aligned address out of the shortest
    /// range that holds them (the newest among equals: likelier to be in
    /// cache). The rest of the range stays pooled on either side, except a
    /// tail that finds no free slot, returned for release. Exact fits only
    /// where ranges cannot be cut.
    fn cut(&mut self, len: usize, align: usize) -> Option<(*mut u8, Option<Range>)> {
        let mut best: Option<(usize, usize)> = None; // (index, start)
        for i in (0..self.len).rev() {
            let r = self.ranges[i];
            let start = r.ptr.addr().next_multiple_of(align);
            let fits = if self.cuttable {
                start.checked_add(len).is_some_and(|e| e <= r.end())
            } else {
                r.len == len && start == r.ptr.addr()
            };
            if fits && best.is_none_or(|(b, _)| self.ranges[b].len > r.len) {
                best = Some((i, start));
                if r.len == len {
                    break;
                }
            }
        }
        let (i, start) = best?;
        let r = self.remove(i);
        let head = start - r.ptr.addr();
        let tail = r.len - head - len;
        // `head + len + tail == r.len`: both cuts are inside `r`.
        let p = r.ptr.wrapping_add(head);
        let after = r.ptr.wrapping_add(head + len);
        if head > 0 {
            self.push(Range { ptr: r.ptr, len: head });
        }
        let mut spill = None;
        if tail > 0 {
            let t = Range { ptr: after, len: tail };
            if self.len < SLOTS {
                self.push(t);
            } else {
                spill = Some(t);
            }
        }
        Some((p, spill))
    }

    /// Cuts the first `len` bytes off the range starting at `at`.
    fn cut_at(&mut self, at: *mut u8, len: usize) -> bool {
        let Some(i) = (0..self.len).find(|&i| self.ranges[i].ptr == at) else {
            return false;
        };
        let r = self.ranges[i];
        if r.len < len {
            return false;
        }
        if r.len == len {
            self.remove(i);
        } else {
            self.ranges[i].ptr = r.ptr.wrapping_add(len);
            self.ranges[i].len -= len;
            self.bytes -= len;
        }
        true
    }

    /// Cuts the largest piece of at most `max` bytes that starts on a
    /// `unit` boundary and is whole units long, if it is at least `min`
    /// bytes (see [`take_piece`]). Only where ranges can be cut.
    fn piece(&mut self, max: usize, unit: usize, min: usize) -> Option<(*mut u8, usize, Option<Range>)> {
        if !self.cuttable {
            return None;
        }
        let usable = |r: &Range| {
            let start = r.ptr.addr().next_multiple_of(unit);
            r.end().saturating_sub(start) / unit * unit
        };
        let largest = self.ranges[..self.len].iter().map(usable).max()?;
        let len = largest.min(max / unit * unit);
        if len < min.max(unit) {
            return None;
        }
        let (p, spill) = self.cut(len, unit)?;
        Some((p, len, spill))
    }
}

/// Whether pooled memory may be cut and joined: where the platform can
/// unmap part of a mapping (every Unix), and not under the explicit
/// huge-page policy, whose `MAP_HUGETLB` mappings can only be cut at 2 MiB
/// boundaries (they are then reused by exact fit only).
#[inline]
pub(crate) fn can_cut() -> bool {
    os::CAN_TRIM && config::huge_pages() != config::HugePages::Explicit
}

/// Takes the pool lock before `fork`.
pub(crate) fn fork_lock() {
    POOL.acquire_raw();
}

/// Releases the lock of [`fork_lock`].
///
/// # Safety
/// Only after `fork_lock`.
pub(crate) unsafe fn fork_unlock() {
    // SAFETY: caller contract.
    unsafe { POOL.release_raw() }
}

/// Bytes held in the pool now.
pub(crate) fn bytes() -> usize {
    BYTES.load(Relaxed)
}

/// Releases a range that left the pool.
fn release(r: Range) {
    // SAFETY: `r` is whole pages of pool memory nobody references; where
    // it is not a whole mapping, the platform can trim (CAN_TRIM).
    unsafe { os::unmap(r.ptr, r.len) };
    stats::unmapped(r.len);
}

/// Puts unused span memory back into the pool, merged with its free
/// neighbours; releases the oldest ranges if the pool is over its bounds
/// (or the memory itself if it exceeds the cap alone).
///
/// # Safety
/// `p`/`len` must be whole pages of span memory (a whole mapping, or on
/// [`os::CAN_TRIM`] platforms any part of one) that nobody references.
pub(crate) unsafe fn put(p: *mut u8, len: usize) {
    // SAFETY: caller contract.
    unsafe { put_all(&mut [Range { ptr: p, len }]) }
}

/// [`put`] for several ranges, in one trip under the lock unless ranges
/// must be released to make room (each released outside the lock, then
/// the next trip goes on where this one stopped). `rs` is left in an
/// unspecified state.
///
/// # Safety
/// As for [`put`], for every range in `rs`.
pub(crate) unsafe fn put_all(rs: &mut [Range]) {
    let cap = config::pool_cap();
    let mut i = 0;
    while i < rs.len() {
        let victim = locked(|pool| {
            while let Some(r) = rs.get_mut(i) {
                if r.len == 0 {
                    i += 1;
                    continue;
                }
                *r = pool.merge(*r);
                match pool.admit(*r, cap) {
                    None => i += 1,
                    Some(v) => {
                        if v == *r {
                            i += 1;
                        }
                        return Some(v);
                    }
                }
            }
            None
        });
        if let Some(v) = victim {
            release(v);
        }
    }
}

/// Takes `len` bytes starting at an `align`-aligned address from the
/// best-fitting range (see [`Pool::cut`]). Null if no range fits.
pub(crate) fn take(len: usize, align: usize) -> *mut u8 {
    if len > LONGEST.load(Relaxed) {
        return ptr::null_mut();
    }
    let Some((p, spill)) = locked(|pool| pool.cut(len, align)) else {
        return ptr::null_mut();
    };
    if let Some(t) = spill {
        release(t);
    }
    p
}

/// Takes the first `len` bytes of the range that starts exactly at `at`
/// (so a live span ending at `at` can grow in place). False if there is
/// none or it is too short; always false where ranges cannot be cut.
pub(crate) fn take_at(at: *mut u8, len: usize) -> bool {
    if len > LONGEST.load(Relaxed) {
        return false;
    }
    locked(|pool| pool.cuttable && pool.cut_at(at, len))
}

/// Takes the largest pooled piece of at most `max` bytes (and at least
/// `min`) that starts on a `unit` boundary and is whole units long, for the
/// caller to move into a larger span it is building (`span::map_fresh`): when
/// no range holds a request, the warm pages of several smaller ones still
/// save its page faults. `None` when no range has such a piece, or where
/// ranges cannot be cut.
pub(crate) fn take_piece(max: usize, unit: usize, min: usize) -> Option<Range> {
    if min.max(unit) > LONGEST.load(Relaxed) {
        return None;
    }
    let (p, len, spill) = locked(|pool| pool.piece(max, unit, min))?;
    if let Some(t) = spill {
        release(t);
    }
    Some(Range { ptr: p, len })
}

/// Releases the oldest pooled memory until at most `keep` bytes remain.
/// Returns the bytes released.
pub(crate) fn shrink_to(keep: usize) -> usize {
    // The common case (within bounds) without the lock: every span that
    // misses the pool asks, and the lock is the one prover workloads take
    // most (docs/design/scaling.md). A racing `put` that pushes the pool
    // over is trimmed by the next call.
    if bytes() <= keep {
        return 0;
    }
    let mut released = 0;
    loop {
        // Every range to release in one trip under the lock (unmapped
        // outside it), and a second trip only if more than a batch is due.
        let mut victims = [Range {
            ptr: ptr::null_mut(),
            len: 0,
        }; crate::policy::POOL_SHRINK_BATCH];
        let mut n = 0;
        let done = locked(|pool| {
            while n < crate::policy::POOL_SHRINK_BATCH && pool.bytes > keep && pool.len > 0 {
                victims[n] = pool.evict_oldest(pool.bytes - keep);
                n += 1;
            }
            pool.bytes <= keep || pool.len == 0
        });
        for &r in &victims[..n] {
            released += r.len;
            release(r);
        }
        if done {
            return released;
        }
    }
}

/// Releases every pooled range; returns the bytes released.
pub(crate) fn trim() -> usize {
    shrink_to(0)
}

#[cfg(test)]
mod tests {
    //! The pool's bookkeeping on a private `Pool` of made-up addresses (no
    //! memory is touched; the process-wide pool is shared with other tests).

    use super::*;

    const MIB: usize = 1 << 20;

    fn empty() -> Pool {
        Pool {
            ranges: [Range {
                ptr: ptr::null_mut(),
                len: 0,
            }; SLOTS],
            len: 0,
            bytes: 0,
            cuttable: can_cut(),
        }
    }

    fn at(addr: usize, len: usize) -> Range {
        Range {
            ptr: ptr::without_provenance_mut(addr),
            len,
        }
    }

    fn put(pool: &mut Pool, r: Range) {
        let r = pool.merge(r);
        assert_eq!(pool.admit(r, usize::MAX), None);
    }

    fn ranges(pool: &Pool) -> Vec<Range> {
        let mut v = pool.ranges[..pool.len].to_vec();
        v.sort_by_key(|r| r.ptr.addr());
        v
    }

    const BASE: usize = 1 << 40;

    #[test]
    fn neighbours_coalesce_in_any_order() {
        if !can_cut() {
            return;
        }
        let mut pool = empty();
        put(&mut pool, at(BASE + 4 * MIB, 2 * MIB));
        put(&mut pool, at(BASE, 2 * MIB));
        assert_eq!(pool.len, 2);
        put(&mut pool, at(BASE + 2 * MIB, 2 * MIB));
        assert_eq!(ranges(&pool), vec![at(BASE, 6 * MIB)]);
        assert_eq!(pool.bytes, 6 * MIB);
    }

    #[test]
    fn best_fit_cut_keeps_both_sides_pooled() {
        if !can_cut() {
            return;
        }
        let mut pool = empty();
        // A page-aligned range that is not 2 MiB aligned at its start.
        put(&mut pool, at(BASE + os::page(), 12 * MIB));
        put(&mut pool, at(BASE + 64 * MIB, 40 * MIB));
        let (p, spill) = pool.cut(4 * MIB, 2 * MIB).unwrap();
        assert_eq!(spill, None);
        // The shorter range is the best fit; the cut is 2 MiB aligned.
        assert_eq!(p.addr(), BASE + 2 * MIB);
        assert_eq!(
            ranges(&pool),
            vec![
                at(BASE + os::page(), 2 * MIB - os::page()),
                at(BASE + 6 * MIB, 6 * MIB + os::page()),
                at(BASE + 64 * MIB, 40 * MIB)
            ]
        );
        assert_eq!(pool.bytes, 52 * MIB - 4 * MIB);
        // Freed again, the range is whole.
        put(&mut pool, at(p.addr(), 4 * MIB));
        assert_eq!(
            ranges(&pool),
            vec![at(BASE + os::page(), 12 * MIB), at(BASE + 64 * MIB, 40 * MIB)]
        );
        // Nothing holds 48 MiB.
        assert!(pool.cut(48 * MIB, os::page()).is_none());
    }

    #[test]
    fn growth_in_place_takes_the_front_of_the_following_range() {
        if !can_cut() {
            return;
        }
        let mut pool = empty();
        put(&mut pool, at(BASE + 8 * MIB, 8 * MIB));
        assert!(!pool.cut_at(ptr::without_provenance_mut(BASE + 8 * MIB), 9 * MIB));
        assert!(pool.cut_at(ptr::without_provenance_mut(BASE + 8 * MIB), 2 * MIB));
        assert_eq!(ranges(&pool), vec![at(BASE + 10 * MIB, 6 * MIB)]);
        assert!(!pool.cut_at(ptr::without_provenance_mut(BASE + 8 * MIB), os::page()));
        assert!(pool.cut_at(ptr::without_provenance_mut(BASE + 10 * MIB), 6 * MIB));
        assert_eq!(pool.len, 0);
        assert_eq!(pool.bytes, 0);
    }

    #[test]
    fn bounds_evict_the_oldest_first_and_only_what_is_needed() {
        if !can_cut() {
            return;
        }
        let mut pool = empty();
        put(&mut pool, at(BASE, 8 * MIB));
        put(&mut pool, at(BASE + 32 * MIB, 8 * MIB));
        // Over a 20 MiB cap by 4 MiB: the last 4 MiB of the oldest go.
        let r = pool.merge(at(BASE + 64 * MIB, 8 * MIB));
        assert_eq!(pool.admit(r, 20 * MIB), Some(at(BASE + 4 * MIB, 4 * MIB)));
        assert_eq!(pool.admit(r, 20 * MIB), None);
        assert_eq!(pool.bytes, 20 * MIB);
        // Alone over the cap: released itself, and nothing else.
        let mut small = empty();
        assert_eq!(small.admit(at(BASE, 8 * MIB), 4 * MIB), Some(at(BASE, 8 * MIB)));
        put(&mut small, at(BASE + 64 * MIB, 2 * MIB));
        assert_eq!(small.admit(at(BASE, 8 * MIB), 4 * MIB), Some(at(BASE, 8 * MIB)));
        assert_eq!(small.bytes, 2 * MIB);
        // A full pool gives up its whole oldest range for a slot.
        let mut full = empty();
        for i in 0..SLOTS {
            put(&mut full, at(BASE + i * 4 * MIB, MIB));
        }
        let r = full.merge(at(BASE + 1024 * MIB, MIB));
        assert_eq!(full.admit(r, usize::MAX), Some(at(BASE, MIB)));
        assert_eq!(full.admit(r, usize::MAX), None);
        assert_eq!(full.len, SLOTS);
    }

    #[test]
    fn pieces_are_the_largest_whole_units_at_most_max() {
        if !can_cut() {
            return;
        }
        let mut pool = empty();
        put(&mut pool, at(BASE + 100 * MIB, 3 * MIB));
        put(&mut pool, at(BASE + 200 * MIB, 6 * MIB));
        // Starts one page past a 2 MiB boundary: 4 whole units inside.
        put(&mut pool, at(BASE + 300 * MIB + os::page(), 10 * MIB));
        let unit = 2 * MIB;
        // The largest: 8 MiB from the third range's first 2 MiB boundary.
        let (p, len, spill) = pool.piece(usize::MAX, unit, unit).unwrap();
        assert_eq!((p.addr(), len, spill), (BASE + 302 * MIB, 8 * MIB, None));
        // Its unaligned head and its tail stay pooled.
        assert!(ranges(&pool).contains(&at(BASE + 300 * MIB + os::page(), 2 * MIB - os::page())));
        // At most `max`, cut from the start of the range that holds it.
        let (p, len, _) = pool.piece(5 * MIB, unit, unit).unwrap();
        assert_eq!((p.addr(), len), (BASE + 200 * MIB, 4 * MIB));
        // Nothing of at least `min` is left: 3 MiB, 2 MiB, 2 MiB ranges.
        assert!(pool.piece(usize::MAX, unit, 4 * MIB).is_none());
        let (_, len, _) = pool.piece(usize::MAX, unit, unit).unwrap();
        assert_eq!(len, 2 * MIB);
        assert_eq!(pool.bytes, ranges(&pool).iter().map(|r| r.len).sum::<usize>());
        pool.check();
    }
}
