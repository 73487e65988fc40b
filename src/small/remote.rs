//! Cross-thread frees: a page's remote-free marks, one bit per block, that
//! any thread may set and only the owner takes, with a count of the blocks
//! published.
//!
//! This is the whole protocol between threads on the small-object paths. A
//! freeing thread sets its blocks' bits (`fetch_or` with Release, one per
//! run of blocks in the same 64-bit word), then the summary bits of the
//! words it touched (bit `w` of the summary: word `w` may have marks), then
//! adds its number of blocks to the page's published count (Release) — its
//! last touch of the page. The owner swaps the summary words it finds set
//! and then each flagged word (Acquire), and counts what it took.
//!
//! Why bits rather than a list linked through the freed blocks (what nalloc
//! had, as mimalloc has): the owner learns which blocks came back without
//! reading them. A linked list is taken in one swap but then walked block by
//! block, each link a cache miss on a line another core wrote, and whoever
//! walks it — the owner collecting, or its allocations popping one block at
//! a time — waits on every miss in turn. With the bits, the owner links the
//! blocks lowest address first with stores only, which do not wait on each
//! other (see `Page::collect_remote`).
//!
//! **When may the owner let the page go?** A thread's bits can be taken by
//! the owner before its summary bits or its count are set (the owner swaps a
//! whole word that another thread flagged). So the owner may release a page
//! only when every block is free *and* its count of blocks taken equals the
//! published count ([`RemoteMarks::quiescent`]): every thread whose bits it
//! took has then finished with the page. A summary bit set after the owner
//! took the word is harmless: the next collection finds the word empty.
//!
//! Self-contained (no `crate::` paths) so that `tests/loom.rs` can compile
//! it against loom's model-checked atomics.

#[cfg(not(loom))]
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
#[cfg(loom)]
use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Remote-free marks for up to `64 * W` blocks, with `S` summary words
/// (`S * 64 >= W`). All zero is the empty state: the marks live in segment
/// headers, which come from the OS zeroed.
pub(crate) struct RemoteMarks<const W: usize, const S: usize> {
    summary: [AtomicU64; S],
    words: [AtomicU64; W],
}

impl<const W: usize, const S: usize> RemoteMarks<W, S> {
    /// Empty marks (the segment header's are zeroed memory instead).
    #[cfg(loom)]
    pub(crate) fn new() -> Self {
        Self {
            summary: core::array::from_fn(|_| AtomicU64::new(0)),
            words: core::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// Marks the blocks whose indices `blocks` yields (each once, each `<
    /// 64 * W`) as freed, then adds their number to `published`. Consecutive
    /// indices in the same word are set with one atomic operation.
    ///
    /// The caller hands each block over as its bit is set: it must have read
    /// whatever it needs from a block before `blocks` yields the next index
    /// (the owner may take and reuse the blocks of a word as soon as it is
    /// set), and it touches neither the marks nor `published` afterwards.
    ///
    /// Returns the number of atomic read-modify-writes it made (for the
    /// statistics: their cost per block is what batching saves).
    pub(crate) fn publish(&self, blocks: impl Iterator<Item = usize>, published: &AtomicU32) -> u32 {
        let mut summary = [0u64; S];
        let (mut word, mut mask, mut n) = (usize::MAX, 0u64, 0u32);
        let mut rmw = 1;
        for i in blocks {
            let w = i / 64;
            if w != word {
                if mask != 0 {
                    // Release: the blocks' contents, written before they
                    // were freed, are visible to the owner that takes them.
                    self.words[word].fetch_or(mask, Ordering::Release);
                    rmw += 1;
                }
                word = w;
                mask = 0;
                summary[w / 64] |= 1 << (w % 64);
            }
            mask |= 1 << (i % 64);
            n += 1;
        }
        if mask != 0 {
            self.words[word].fetch_or(mask, Ordering::Release);
            rmw += 1;
        }
        for (s, bits) in self.summary.iter().zip(summary) {
            if bits != 0 {
                s.fetch_or(bits, Ordering::Release);
                rmw += 1;
            }
        }
        // Last: once the owner sees this count its marks are all set.
        published.fetch_add(n, Ordering::Release);
        rmw
    }

    /// Takes every mark set so far (owner only): calls `f(word, mask)` for
    /// each word with marks, lowest word first, and returns how many marks
    /// were taken. Cheap when nothing is flagged (`S` relaxed loads).
    pub(crate) fn collect(&self, mut f: impl FnMut(usize, u64)) -> u32 {
        let mut n = 0;
        for (i, s) in self.summary.iter().enumerate() {
            if s.load(Ordering::Relaxed) == 0 {
                continue;
            }
            let mut flagged = s.swap(0, Ordering::Acquire);
            while flagged != 0 {
                let w = i * 64 + flagged.trailing_zeros() as usize;
                flagged &= flagged - 1;
                // Acquire pairs with `publish`'s Release on the word.
                let mask = self.words[w].swap(0, Ordering::Acquire);
                if mask != 0 {
                    n += mask.count_ones();
                    f(w, mask);
                }
            }
        }
        n
    }

    /// True if every thread that published into these marks is done with
    /// them, given the owner's running count of marks `taken` (see the
    /// module docs): the page may be released.
    pub(crate) fn quiescent(published: &AtomicU32, taken: u32) -> bool {
        published.load(Ordering::Acquire) == taken
    }

    /// Blocks published and not taken yet, given the owner's count `taken`
    /// (a hint: 0 while the owner has taken marks whose count is not
    /// published yet).
    pub(crate) fn waiting(published: &AtomicU32, taken: u32) -> usize {
        (published.load(Ordering::Relaxed).wrapping_sub(taken) as i32).max(0) as usize
    }
}
