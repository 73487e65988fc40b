//! The policy table: every tuning constant of the allocator, in one place.
//!
//! Each entry gives its unit, what it trades, and a link to the design note
//! in `docs/design/` that measured it. The code reads these names; no other
//! module hard-codes a threshold, budget, period or cap. Run-time settings
//! that users may change (huge pages, pool cap, purge delay) start from the
//! defaults here and live in `base/config.rs`.
//!
//! | name | unit | trades | note |
//! | --- | --- | --- | --- |
//! | [`SMALL_MAX`] | bytes | size-class waste vs span overhead | small-object-layout |
//! | [`SEGMENT_SIZE`], [`PAGE_SHIFT`] | bytes, log2 bytes | metadata per byte vs memory held per class | small-object-layout |
//! | [`SEGMENT_SLOTS`] | segments | address space reserved vs most small-object memory | small-object-layout |
//! | [`EXTEND_BYTES`] | bytes | free-list work per refill vs RSS of a fresh page | small-object-layout |
//! | [`HEAP_SLAB`] | bytes | heap-metadata mappings vs unused metadata | small-object-layout |
//! | [`TIDY_EVERY`] | slow paths | housekeeping cost vs memory given back late | heap-tidy |
//! | [`PURGE_AFTER_PATHS`] | slow paths | page faults after a pause vs idle RSS | heap-tidy |
//! | [`PURGE_DELAY_US`] | µs | refaults of a free-and-reallocate cycle vs idle RSS | heap-tidy |
//! | [`KEEP_EMPTY_SEGMENTS`] | segments | slot drift and refaults vs memory a heap keeps | heap-tidy |
//! | [`SEGMENT_CACHE`] | segments | segment setup cost vs committed empty segments | heap-tidy |
//! | [`RETIRED_TIDY_EVERY`] | tidies | registry lock trips vs exited threads' memory kept | heap-tidy |
//! | [`UNOWNED_DELAY_FACTOR`] | purge delays | refaults of thread churn vs exited threads' memory kept | heap-tidy |
//! | [`LARGE_TIDY_WEIGHT`] | slow paths | small memory held during large-block phases | heap-tidy |
//! | [`TRIM_EVERY`], [`TRIM_MIN`] | slow paths, bytes | free-list walks vs a burst's memory kept | heap-tidy |
//! | [`SPARSE_DIVISOR`] | fraction of a page | refill locality vs pages that never empty | heap-tidy |
//! | [`FULL_SCAN`], [`SEGMENT_SEARCH`] | pages, segments | refill walk length vs fresh memory touched | heap-tidy |
//! | [`PENDING_SLOTS`], [`PENDING_BLOCKS`], [`PENDING_BYTES`] | batches, blocks, bytes | atomics per remote free vs blocks held back | remote-frees |
//! | [`FOREIGN_MIN`], [`FOREIGN_MAX`], [`FOREIGN_STALE`] | bytes | producer/consumer speed vs RSS | remote-frees |
//! | [`GROWING_PATHS`] | slow paths | refaults of a producer's pages vs RSS of a swell | scaling |
//! | [`REFAULT_PATHS`], [`REFAULT_SLOTS`], [`KEEP_PATHS`] | slow paths, page slots | refaults of a heap's purges vs memory it keeps | scaling |
//! | [`ORPHAN_FREES_BEFORE_HEAP`] | frees | atomics per free of a free-only thread vs a heap for it | scaling |
//! | [`AUTO_HUGE_MIN`] | bytes | TLB misses and faults vs 2 MiB rounding | spans-and-warm-pool |
//! | [`ZERO_BY_PURGE_MIN`] | bytes | memset vs refault when zeroing a warm span | spans-and-warm-pool |
//! | [`ZERO_SAMPLE_MIN`], [`ZERO_SPARSE_DIVISOR`] | bytes, fraction | a mincore sample vs faulting in a sparse block | spans-and-warm-pool |
//! | [`ZERO_SAMPLE_WINDOWS`], [`ZERO_SAMPLE_PAGES`] | windows, pages | system calls per sample vs how well it sees a sparse block | spans-and-warm-pool |
//! | [`GATHER_MIN`], [`GATHER_PIECES`], [`GATHER_PIECE_DIVISOR`] | bytes, pieces, fraction | moves per span vs fresh page faults | spans-and-warm-pool |
//! | [`POOL_SLOTS`] | ranges | pool search cost vs fragments kept | spans-and-warm-pool |
//! | [`POOL_SHRINK_BATCH`] | ranges | lock hold time vs lock trips when the pool shrinks | scaling |
//! | [`RETENTION_TOLERANCE_DIVISOR`], [`RETENTION_TOLERANCE_MIN`], [`RETENTION_TOLERANCE_MAX`] | fraction, bytes | pool lock trips vs retained memory over the peak | scaling |
//! | [`SPAN_CACHE_SLOTS`], [`SPAN_CACHE_BYTES`] | spans, bytes | pool lock trips vs memory a thread keeps for itself | scaling |
//! | [`SPAN_CACHE_PUT_BACK`], [`SPAN_CACHE_SETTLE_DIVISOR`] | spans, fraction | pool lock trips vs spans a full cache gives up at once | scaling |
//! | [`POOL_CAP_DIVISOR`], [`POOL_CAP_MIN`], [`POOL_CAP_MAX`], [`POOL_CAP_UNKNOWN`] | fraction, bytes | warm reuse vs memory kept | spans-and-warm-pool |
//! | [`WITNESS_SLOT`], [`WITNESS_SLOTS`] | bytes, slots | address space vs chunk placement | witness-arena |
//! | [`WITNESS_ROTATE_SLOTS`] | slots | how long a stale witness pointer is caught vs page tables kept | misuse |
//! | [`WITNESS_CACHES`], [`WITNESS_BATCH_BYTES`], [`WITNESS_BATCH_MAX`] | threads, bytes, blocks | lock trips vs secrets held per thread | witness-arena |
//! | [`WITNESS_RUN_BLOCKS`], [`WITNESS_RUN_MIN`], [`WITNESS_RUN_MAX`], [`WITNESS_RUN_GROWN_MAX`] | blocks, bytes | locality and mappings vs committed witness memory | witness-arena |
//! | [`SCRATCH_FIRST_CHUNK`], [`SCRATCH_MAX_CHUNK`] | bytes | mappings per arena vs memory of a small arena | scratch-arena |
//! | [`POLYNOMIAL_TRACKED`] | spans | huge-page report coverage vs arena size | spans-and-warm-pool |
//! | [`POOL_CAP_CGROUP_DIVISOR`] | fraction | warm reuse vs a container's memory | phases-and-budget |
//! | [`BUDGET_AUTO_PERCENT`] | percent | memory nalloc may commit vs room for the rest of a container | phases-and-budget |
//! | [`PHASE_NAMES`], [`PHASE_NAME_LEN`], [`PHASE_DEPTH`] | names, bytes, phases | report detail vs a fixed table | phases-and-budget |
//!
//! The notes: `docs/design/small-object-layout.md`, `docs/design/heap-tidy.md`,
//! `docs/design/remote-frees.md`, `docs/design/spans-and-warm-pool.md`,
//! `docs/design/witness-arena.md`, `docs/design/scratch-arena.md`,
//! `docs/design/phases-and-budget.md`, `docs/design/scaling.md`,
//! `docs/design/misuse.md`.

// ---- small objects: layout (docs/design/small-object-layout.md) ----

/// Largest request served by size classes (bytes); larger ones become spans.
pub(crate) const SMALL_MAX: usize = 64 << 10;
/// Size and alignment of a segment (bytes): a pointer's segment is found by
/// masking, so this is also the granule of the segment region.
pub(crate) const SEGMENT_SIZE: usize = 4 << 20;
/// log2 of a page's size (256 KiB): 16 pages per segment, one class each.
pub(crate) const PAGE_SHIFT: usize = 18;
/// Fresh memory threaded onto a page's free list per extension (bytes):
/// lazily, so a page's untouched tail is never faulted in.
pub(crate) const EXTEND_BYTES: usize = 4096;
/// Mapping that heap objects are cut from (bytes).
pub(crate) const HEAP_SLAB: usize = 64 << 10;
/// Slots of the segment region: 1 TiB of address space reserved (never
/// committed) on 64-bit targets, 256 MiB on 32-bit ones, 16 MiB under Miri
/// (where reserving allocates). All small-object memory lives there.
pub(crate) const SEGMENT_SLOTS: usize = if cfg!(miri) {
    4
} else if usize::BITS >= 64 {
    (1 << 40) / SEGMENT_SIZE
} else {
    (256 << 20) / SEGMENT_SIZE
};

// ---- small objects: giving memory back (docs/design/heap-tidy.md) ----

/// Slow paths between two tidies of a heap, at least (a heap with more pages
/// tidies once per page it owns).
pub(crate) const TIDY_EVERY: u32 = 32;
/// Slow paths its heap must take while a page slot stays free, besides the
/// purge delay, before the slot's memory goes back: memory ages only while
/// its heap works.
pub(crate) const PURGE_AFTER_PATHS: u32 = 64;
/// Default time a free page slot waits before it is purged (µs).
pub(crate) const PURGE_DELAY_US: u64 = 5_000;
/// Segments a heap keeps when all their page slots are free.
pub(crate) const KEEP_EMPTY_SEGMENTS: u32 = 8;
/// Empty segments kept committed process-wide for reuse.
pub(crate) const SEGMENT_CACHE: usize = 8;
/// Tidies of a heap between two looks at the heaps of exited threads (which
/// no thread tidies until one is adopted): their emptied pages go back.
pub(crate) const RETIRED_TIDY_EVERY: u32 = 16;
/// Memory no thread owns — free slots of exited threads' heaps, the
/// segment cache — waits this many purge delays before it is purged (time
/// is its only clock): a program that runs its work in rounds of
/// short-lived threads adopts it again a few rounds' milliseconds later.
pub(crate) const UNOWNED_DELAY_FACTOR: u64 = 8;
/// What a large allocation counts towards its thread's next tidy (slow paths).
pub(crate) const LARGE_TIDY_WEIGHT: u32 = 16;
/// Slow paths between two looks of a tidy at one page's free top.
pub(crate) const TRIM_EVERY: u32 = 64;
/// Free bytes at a page's top that a tidy takes back, at least.
pub(crate) const TRIM_MIN: usize = 16 << 10;
/// A page with at most `page size / SPARSE_DIVISOR` live bytes is sparse:
/// refill leaves it alone while fuller pages have room, so it can empty.
pub(crate) const SPARSE_DIVISOR: usize = 3;
/// Full pages a refill checks for other threads' frees, at most.
pub(crate) const FULL_SCAN: usize = 8;
/// Segments with free slots a heap looks at for a new page.
pub(crate) const SEGMENT_SEARCH: usize = 8;

// ---- small objects: cross-thread frees (docs/design/remote-frees.md) ----

/// Batches of remote frees a heap keeps (a direct-mapped table).
pub(crate) const PENDING_SLOTS: usize = 8;
/// A batch is handed over at this many blocks ...
pub(crate) const PENDING_BLOCKS: u32 = 32;
/// ... or this many bytes, which bounds what a thread that stops freeing
/// holds back from the owners.
pub(crate) const PENDING_BYTES: u32 = 64 << 10;
/// Foreign blocks a heap may keep for its own reuse: the bound starts here
/// (bytes) ...
pub(crate) const FOREIGN_MIN: u32 = 64 << 10;
/// ... grows up to this (bytes) ...
pub(crate) const FOREIGN_MAX: u32 = 1 << 20;
/// ... and halves once this many bytes were turned away without any list
/// running empty.
pub(crate) const FOREIGN_STALE: u32 = 4 * FOREIGN_MAX;
/// A page emptied by other threads' frees ages like any free page (instead
/// of being purged at the tidy that releases it) while its class needed
/// fresh memory or a new page within this many of its heap's last slow
/// paths: the class grows and will claim the page back. Longer windows
/// saved more refaults on producer/consumer churn but raised Python's peak
/// RSS; this one kept it (measured in docs/design/scaling.md).
pub(crate) const GROWING_PATHS: u32 = 128;
/// A fresh page slot claimed within this many slow paths of a purge by the
/// same heap is a refault: memory given back and needed again at once.
pub(crate) const REFAULT_PATHS: u32 = 256;
/// Refaulted page slots (4 MiB) after which a heap keeps pages that other
/// threads' frees emptied, as if their class grew: enough that a small
/// program's few refaults keep nothing more (the Rust suite's `xmalloc`
/// kept its peak RSS), few enough that a producer/consumer pair stops
/// refaulting early in its run (docs/design/scaling.md).
pub(crate) const REFAULT_SLOTS: u32 = 16;
/// How long (slow paths) a heap keeps such pages after a refault (each
/// refault meanwhile starts it again); then it purges at once again, and a
/// refault that follows brings it back.
pub(crate) const KEEP_PATHS: u32 = 16384;
/// Frees a thread without a heap of its own makes, one hand-over each,
/// before it takes a heap and batches them (see docs/design/scaling.md).
pub(crate) const ORPHAN_FREES_BEFORE_HEAP: u32 = 64;

// ---- spans and the warm pool (docs/design/spans-and-warm-pool.md) ----

/// Spans at least this large (bytes) get huge pages under `HugePages::Auto`.
pub(crate) const AUTO_HUGE_MIN: usize = 32 << 20;
/// Huge-page spans at least this large (bytes) are zeroed by purging
/// instead of memset.
pub(crate) const ZERO_BY_PURGE_MIN: usize = 128 << 20;
/// Recycled spans of at least this many requested bytes are sampled for
/// residency before `alloc_zeroed` clears them ...
pub(crate) const ZERO_SAMPLE_MIN: usize = 1 << 20;
/// ... and purged instead of memset when less than `1 / ZERO_SPARSE_DIVISOR`
/// of the sampled pages is resident (the last user touched little of it).
pub(crate) const ZERO_SPARSE_DIVISOR: usize = 8;
/// The residency sample reads this many windows, each centred in its share
/// of the span (Linux: other platforms take no sample) ...
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) const ZERO_SAMPLE_WINDOWS: usize = 8;
/// ... of this many pages each (a `mincore` call per window).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) const ZERO_SAMPLE_PAGES: usize = 32;
/// Spans (or realloc growths) of at least this many bytes that no pooled
/// range holds are built from smaller pooled pieces moved into place with
/// `mremap` (Linux), so a prover's growing vectors reuse the warm pages of
/// the smaller ones freed before instead of faulting fresh ones.
pub(crate) const GATHER_MIN: usize = 256 << 10;
/// Freed spans a thread keeps for its own next allocations of the same
/// size, without the pool's lock ...
pub(crate) const SPAN_CACHE_SLOTS: usize = 32;
/// ... holding at most this many bytes (larger spans go to the pool: for
/// them the lock is a vanishing part of the work, and idle threads holding
/// large cached vectors raised a prover's peak RSS; see docs/design/scaling.md).
pub(crate) const SPAN_CACHE_BYTES: usize = 8 << 20;
/// Most cached spans put back into the pool in one trip under its lock ...
pub(crate) const SPAN_CACHE_PUT_BACK: usize = 8;
/// ... and a full cache puts spans back until it is `1 /
/// SPAN_CACHE_SETTLE_DIVISOR` below its bounds, so that the next frees do
/// not each take the pool's lock for one span.
pub(crate) const SPAN_CACHE_SETTLE_DIVISOR: usize = 4;
/// Most pieces one span is built from (a system call each) ...
pub(crate) const GATHER_PIECES: usize = 16;
/// ... each at least `1 / GATHER_PIECE_DIVISOR` of what is still missing.
pub(crate) const GATHER_PIECE_DIVISOR: usize = 64;
/// Most free ranges the warm pool holds.
pub(crate) const POOL_SLOTS: usize = 64;
/// Most ranges the pool detaches per trip under its lock when it shrinks
/// (they are released after the lock is dropped).
pub(crate) const POOL_SHRINK_BATCH: usize = 8;
/// Retained spans may run over the retention budget (the peak of what the
/// program needed) by `1 / RETENTION_TOLERANCE_DIVISOR` of it before the
/// small objects' growth cuts them back, so that it does not take the
/// pool's lock page by page (see docs/design/scaling.md) ...
pub(crate) const RETENTION_TOLERANCE_DIVISOR: usize = 64;
/// ... but by at least this (bytes) ...
pub(crate) const RETENTION_TOLERANCE_MIN: usize = 64 << 10;
/// ... and at most this (bytes).
pub(crate) const RETENTION_TOLERANCE_MAX: usize = 4 << 20;
/// Default pool cap: physical memory / this ...
pub(crate) const POOL_CAP_DIVISOR: usize = 8;
/// ... but at least this (bytes) ...
pub(crate) const POOL_CAP_MIN: usize = 256 << 20;
/// ... and at most this (bytes) ...
pub(crate) const POOL_CAP_MAX: usize = 4 << 30;
/// ... or this where physical memory is unknown (bytes).
pub(crate) const POOL_CAP_UNKNOWN: usize = 1 << 30;
/// Inside a container with a memory limit (cgroup `memory.max`), the pool
/// cap is the limit / this, without the [`POOL_CAP_MIN`] floor: the same
/// eighth as on a host, but a 256 MiB floor would be a quarter of a 1 GiB
/// container, kept warm while the prover may need it (see
/// docs/design/phases-and-budget.md).
pub(crate) const POOL_CAP_CGROUP_DIVISOR: usize = 8;
/// Live polynomial spans of 2 MiB and more remembered for the huge-page
/// report.
pub(crate) const POLYNOMIAL_TRACKED: usize = 256;

// ---- witness memory (docs/design/witness-arena.md) ----

/// A slot of the witness region (bytes): chunks are runs of slots.
pub(crate) const WITNESS_SLOT: usize = 1 << 20;
/// Slots in the witness region: 64 GiB of address space on 64-bit targets,
/// 8 MiB under Miri (where reserving allocates).
pub(crate) const WITNESS_SLOTS: usize = if cfg!(miri) {
    8
} else if usize::BITS >= 64 {
    65536
} else {
    64
};
/// Slots the witness region's claims rotate through before reusing the
/// lowest: 1 GiB of address space on 64-bit targets. A released chunk's
/// slots are claimed again only after a window's worth of claims, so a stale
/// `nalloc_witness_free` finds them uncommitted; a larger window catches
/// staler pointers but leaves more page tables behind (`MADV_DONTNEED` does
/// not free them; see docs/design/misuse.md).
pub(crate) const WITNESS_ROTATE_SLOTS: usize = if usize::BITS >= 64 { 1024 } else { 16 };
/// Threads (heap indices) with a private block cache in every witness arena.
pub(crate) const WITNESS_CACHES: usize = 32;
/// Bytes' worth of blocks a cache trades per lock ...
pub(crate) const WITNESS_BATCH_BYTES: usize = 32 << 10;
/// ... but at most this many blocks.
pub(crate) const WITNESS_BATCH_MAX: usize = 64;
/// Blocks in a class's run of fresh blocks ...
pub(crate) const WITNESS_RUN_BLOCKS: usize = 16;
/// ... but at least this many bytes (a page) ...
pub(crate) const WITNESS_RUN_MIN: usize = 4096;
/// ... and at most this many.
pub(crate) const WITNESS_RUN_MAX: usize = 64 << 10;
/// Largest run of a class in steady use (bytes): each new run of a class
/// doubles its target up to this, because every run is fenced by guard pages
/// and so costs two mappings (`vm.max_map_count` is 65,530 by default: about
/// 8 GiB of small secrets at this size).
pub(crate) const WITNESS_RUN_GROWN_MAX: usize = 256 << 10;

// ---- scratch memory (docs/design/scratch-arena.md) ----

/// A scratch arena's first chunk (bytes); each next one doubles ...
pub(crate) const SCRATCH_FIRST_CHUNK: usize = 64 << 10;
/// ... up to this (bytes).
pub(crate) const SCRATCH_MAX_CHUNK: usize = 64 << 20;

// ---- phases and the memory budget (docs/design/phases-and-budget.md) ----

/// `NALLOC_BUDGET=auto`: this percentage of the container's memory limit
/// (or, outside one, of physical memory). The rest is left for what the
/// kernel charges to the container besides nalloc's mappings: thread
/// stacks, the binary, libc's own memory, page cache and socket buffers;
/// 90 % leaves 1.2 GiB of a 12 GiB container for them.
pub(crate) const BUDGET_AUTO_PERCENT: usize = 90;
/// Distinct phase names with a row of their own; later names share an
/// "(other)" row (a fixed table: phases never allocate).
pub(crate) const PHASE_NAMES: usize = 32;
/// Bytes of a phase name kept (longer names are cut).
pub(crate) const PHASE_NAME_LEN: usize = 31;
/// Open phases tracked at once; deeper ones count towards the innermost
/// tracked phase.
pub(crate) const PHASE_DEPTH: usize = 16;
