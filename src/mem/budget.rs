//! The memory budget: a request that would take nalloc's committed memory
//! past `NALLOC_BUDGET` / `NAlloc::set_budget` gets null instead of memory
//! (see docs/design/phases-and-budget.md).
//!
//! **Where.** Only where memory is committed: a span mapped or grown, a
//! segment committed. Never on the small-object fast path, which hands out
//! memory already committed. "Committed" is `stats::MAPPED`: segments,
//! spans, the warm pool and heap metadata. Witness chunks (locked memory,
//! bounded by `RLIMIT_MEMLOCK`) and heap metadata mappings are not checked.
//!
//! **Before refusing** nalloc frees what it holds for reuse: the warm pool
//! first (only as much as needed), then what the layer above hands down
//! ([`set_reclaim`]: cached empty segments and the pages of exited threads'
//! heaps), and checks again. Still over, it writes one line to stderr,
//! formatted on the stack:
//!
//! ```text
//! nalloc: memory budget exceeded: request=104857600 budget=67108864 committed=8388608 live=4194304 phase=commit
//! ```
//!
//! `request` is the bytes asked of the engine (for the C library's large
//! blocks, the caller's size plus its 16-byte header), `committed` what nalloc had mapped,
//! `live` the program's live bytes (live spans and written small-object
//! memory), `phase` the innermost open phase (`-`: none, or the phase table
//! was busy at a boundary that instant: the report never waits). The check is not a
//! reservation: threads that commit at the same instant may each pass it,
//! overshooting by at most one request each.

use core::sync::atomic::{AtomicPtr, Ordering};

use crate::base::config;
use crate::base::stats;
use crate::mem::pool;

/// What the layer above can give back (set once at start-up; null: none).
static RECLAIM: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());

/// Hands down the upper layer's reclaim step (the small layer's cached
/// segments and exited threads' pages); it must not wait on any lock its
/// callers may hold.
pub(crate) fn set_reclaim(f: fn()) {
    RECLAIM.store(f as *mut (), Ordering::Release);
}

fn reclaim_above() {
    let f = RECLAIM.load(Ordering::Acquire);
    if !f.is_null() {
        // SAFETY: only `set_reclaim` stores here, and it stores a `fn()`.
        let f: fn() = unsafe { core::mem::transmute::<*mut (), fn()>(f) };
        f();
    }
}

/// True if committing `extra` more bytes stays within the budget (no
/// reclaiming, no report): for paths with a fallback of their own.
#[inline]
pub(crate) fn fits(extra: usize) -> bool {
    let b = config::budget();
    b == usize::MAX || stats::MAPPED.get().saturating_add(extra) <= b
}

/// May `extra` more bytes be committed for a request of `request` bytes?
/// Reclaims and checks again when over; on refusal writes the one-line
/// report. One relaxed load when no budget is set.
#[inline]
pub(crate) fn admit(request: usize, extra: usize) -> bool {
    if fits(extra) {
        return true;
    }
    admit_slow(request, extra)
}

#[cold]
#[inline(never)]
fn admit_slow(request: usize, extra: usize) -> bool {
    let budget = config::budget();
    // The warm pool first: just enough of it.
    let over = stats::MAPPED.get().saturating_add(extra).saturating_sub(budget);
    pool::shrink_to(pool::bytes().saturating_sub(over));
    if fits(extra) {
        return true;
    }
    pool::trim();
    reclaim_above();
    if fits(extra) {
        return true;
    }
    report(request, budget);
    false
}

/// The one line of a refusal (see the module docs), written without
/// allocating.
fn report(request: usize, budget: usize) {
    use core::fmt::Write;
    let mut name = [0u8; crate::policy::PHASE_NAME_LEN];
    let n = crate::base::phase::current(&mut name);
    let phase = match core::str::from_utf8(&name[..n]) {
        Ok("") | Err(_) => "-",
        Ok(s) => s,
    };
    let mut line = crate::base::check::Fixed::<200>::new();
    let _ = writeln!(
        line,
        "nalloc: memory budget exceeded: request={request} budget={budget} committed={} live={} phase={phase}",
        stats::MAPPED.get(),
        stats::NEED.get(),
    );
    crate::os::write_stderr(line.as_bytes());
}
