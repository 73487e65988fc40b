//! # nalloc — a memory allocator for zero-knowledge provers
//!
//! `NAlloc` is a Rust global allocator tuned for what provers do — millions
//! of small field elements, multi-GB FFT/NTT vectors freed and re-made every
//! proof, and secret witness data — plus three arenas that no general-purpose
//! allocator offers: wiped, locked, guard-fenced **witness** memory;
//! huge-page-aware **polynomial** memory; and **scratch** memory with an O(1)
//! reset that the borrow checker keeps from dangling.
//!
//! ```
//! use zk_nalloc::NAlloc;
//!
//! #[global_allocator]
//! static ALLOC: NAlloc = NAlloc::new();
//!
//! fn main() {
//!     let v = vec![0u64; 1 << 20];          // a warm, huge-page-friendly span
//!     let secret = ALLOC.witness_scope(|| vec![42u8; 32]); // wiped on free
//!     drop((v, secret));
//!     let s = ALLOC.stats();
//!     assert!(s.small_allocs + s.large_allocs > 0);
//! }
//! ```
//!
//! ## Map of the source
//!
//! The layers, the rule that they import one way (checked by
//! `tests/layers.rs`) and every file's role are in `src/README.md`,
//! included at the end of this page.
//!
//! ## How a request is routed
//!
//! Every entry point that must decide where a request goes — `GlobalAlloc`
//! and the C front ([`raw`]) — goes through one routing function
//! (`src/front/route.rs`), so each rule below is written once. The arena
//! handles (`witness()`, `polynomial()`, `scratch()`) need no decision: a
//! request made through one names its arena and goes straight to it.
//!
//! * **Small** (≤ 64 KiB, alignment ≤ 64 KiB): a size class, then the calling
//!   thread's heap pops a block from the class's current page — no lock, no
//!   atomic read-modify-write, no system call. Blocks freed by another
//!   thread are batched per page by that thread and marked in the page's
//!   remote-free bits (one atomic OR per word of blocks, a bit per block);
//!   the owner takes the marks when it runs dry and links those blocks
//!   lowest address first, without reading them. The freeing thread may
//!   instead keep full batches of line-sized blocks for its own
//!   allocations (bounded; handed back when unused or at exit). An emptied
//!   page slot keeps its blocks linked for the next page of the same
//!   class. Each heap tidies now and then:
//!   pages whose blocks are all free are released, and page slots free
//!   for 5 ms while the heap kept working are purged (their memory goes
//!   back to the OS) — at once if other threads' frees emptied them. A
//!   page's free top left by a burst (many blocks of one size, allocated
//!   and freed) goes back too, at the first tidy after the page grew.
//! * **Large** (> 64 KiB): a span mapped from the OS, 2 MiB aligned from
//!   2 MiB up (huge pages). A freed span up to 8 MiB stays in the freeing
//!   thread's span cache (in its heap), from which that thread takes exact
//!   fits without a lock; otherwise (and on a miss) it is kept warm in a
//!   bounded pool after free, where
//!   freed neighbours coalesce and later requests are cut from the
//!   best-fitting range; grown in place from the pool or with `mremap` on
//!   Linux. A span no pooled range holds is built from smaller pooled
//!   pieces whose pages are moved into it (Linux), so a prover's growing
//!   vectors reuse the warm pages of the smaller ones instead of faulting
//!   fresh memory (`FirstTouch`, docs/design/first-touch.md). Pool and
//!   caches hold no more than what the program's own need (live spans plus
//!   written small-object pages) has fallen below its peak, give or take
//!   1/64 of it (so that small-object growth cuts them back in steps, not
//!   page by page under the pool's lock), so keeping spans warm does not
//!   raise the peak RSS.
//! * **Witness**: `dealloc` first asks, with one range comparison, whether
//!   the pointer lies in the witness region; if so the block is wiped and
//!   returned to its arena — to the freeing thread's cache in that arena,
//!   without a lock or atomic read-modify-write; caches trade whole batches
//!   with the arena's shared lists under its lock. Inside
//!   [`NAlloc::witness_scope`] every global allocation of the thread is
//!   routed there. What is fenced by guard pages, what carries a canary,
//!   how free-list links are kept and what happens when `mlock` fails:
//!   [`WitnessArena`].
//!
//! ## Undefined cases
//!
//! As with every allocator, freeing a pointer that this allocator did not
//! hand out, freeing twice, or passing a `Layout` different from the one
//! used to allocate is undefined behaviour (the block's size class or span
//! length is recomputed from the layout). nalloc never panics or allocates
//! through itself inside `alloc`/`dealloc`/`realloc`: failures return null.
//! What it can detect cheaply it reports in one line on stderr and then
//! aborts, as glibc does: a small block freed twice in a row (always), a
//! small-block `dealloc` outside the segment region (debug builds), every
//! invalid, double or misaligned free and overflow into a block's slack
//! (feature `hardened`). The C front ([`raw`]) checks every pointer it is
//! given: blocks outside the segment region carry a sealed header, so a
//! foreign or already-freed pointer is reported ("free(): invalid pointer")
//! rather than trusted.

#![doc = include_str!("README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

mod arenas;
mod base;
mod front;
mod mem;
mod os;
mod policy;
mod small;

#[cfg(test)]
mod miri_tests;

pub use allocator_api2;
#[cfg(feature = "bytemuck")]
pub use arenas::fields::Bytemuck;
pub use arenas::polynomial::{PolynomialArena, StdVecError};
pub use arenas::scratch::ScratchArena;
pub use arenas::secret::{SecretBox, SecretVec, Zeroable};
pub use arenas::witness::{WitnessArena, WitnessStats};
pub use base::config::{FirstTouch, HugePages, WitnessLock};
pub use base::phase::{PhaseReport, PhaseRow};
pub use front::global::{EventCounts, NAlloc, Stats};
pub use front::phase::PhaseGuard;
pub use front::raw;
#[cfg(feature = "fault-injection")]
pub use os::fault;

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
