//! Layer `small`: small objects (≤ 64 KiB) in per-thread heaps.
//!
//! Size classes (`size_class`) → 256 KiB pages with intrusive free lists
//! (`page`) inside 4 MiB aligned segments (`segment`, found from a pointer
//! by masking) → one heap per thread (`heap`), with cross-thread frees
//! marked in per-page bits (`remote`) and optional misuse checks
//! (`hardened`). Besides the heap's own entry points, this module offers the
//! *plain engine*: a block of any layout, small from the heap or large from
//! a span (`mem`), with no witness policy — the arenas build on it, and the
//! front adds the witness routing in front of it.

#[cfg(feature = "hardened")]
pub(crate) mod hardened;
pub(crate) mod heap;
pub(crate) mod page;
pub(crate) mod remote;
pub(crate) mod segment;
pub(crate) mod size_class;

use crate::base::config;
use crate::base::once::Once;
use crate::mem::span;
use crate::os;
use size_class::{class_for, is_small};

static INIT: Once = Once::new();

/// What must be ready before the first heap exists: the run-time settings,
/// hardened mode's secret, and the OS's thread-exit hook pointing at
/// [`heap::thread_exit`] (registered downward: the OS layer names no heap).
/// Never allocates, so it cannot wait on itself.
#[cold]
pub(crate) fn ensure_init() {
    INIT.call(|| {
        config::ensure_init();
        #[cfg(feature = "hardened")]
        hardened::init();
        // Before the flag is set, so that no thread can arm the hook before
        // it exists.
        os::init_thread_exit(heap::thread_exit);
        // Handed down: the budget (in `mem`) frees these before refusing.
        crate::mem::budget::set_reclaim(reclaim);
    });
}

/// What this layer holds for reuse and can give back without waiting on a
/// lock: cached empty segments and the emptied pages of exited threads'
/// heaps (skipped if the registry is busy).
fn reclaim() {
    segment::Segment::trim_cache();
    heap::trim_retired(false, None);
    // Every thread's cached spans (this one's at its next span call, which
    // the refused request is about to make).
    span::release_caches();
}

/// A block of the plain engine: small from the calling thread's heap, large
/// from a span. Zero-filled if `zeroed`; null on failure.
pub(crate) fn alloc_plain(size: usize, align: usize, zeroed: bool) -> *mut u8 {
    if is_small(size, align) {
        // SAFETY: `class_for` returns a valid class for small layouts.
        return unsafe { heap::alloc_class(class_for(size, align), size, zeroed) };
    }
    heap::tidy_hint();
    heap::with_span_cache(|cache| span::alloc(size, align, zeroed, cache))
}

/// Frees a block of [`alloc_plain`].
///
/// # Safety
/// `p` must be a live block of the plain engine allocated with `size` and
/// `align`.
#[inline]
pub(crate) unsafe fn dealloc_plain(p: *mut u8, size: usize, align: usize) {
    if is_small(size, align) {
        // Debug builds check what the layout cannot tell (release builds
        // trust the `GlobalAlloc` contract; hardened mode checks always).
        if cfg!(debug_assertions) && !cfg!(feature = "hardened") && !segment::contains(p) {
            crate::base::check::fail("dealloc(): invalid pointer", p.addr());
        }
        // The class is only computed where hardened mode checks it.
        let class = if cfg!(feature = "hardened") {
            class_for(size, align)
        } else {
            0
        };
        // SAFETY: caller contract: a live small block.
        unsafe { heap::free(p, size, class) };
    } else {
        // SAFETY: caller contract: a live span of this layout.
        heap::with_span_cache(|cache| unsafe { span::dealloc(p, size, align, cache) });
    }
}
