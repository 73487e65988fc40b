//! Benchmark worker with `zk_nalloc::NAlloc` as the global allocator.
//!
//! Built plainly it is the `nalloc` worker; the runner also builds it with
//! `--features hardened` (zk-nalloc's misuse detection) into a target
//! directory of its own, where it reports itself as `nalloc-hardened`.
//!
//! With `NALLOC_STATS` set (not empty or `0`) it prints nalloc's counters at
//! exit in the lines `libnalloc.so` prints (`nalloc: pid=...`,
//! `nalloc: events ...`, `nalloc: os_calls ...`), so that the prover
//! workloads' lock, cross-thread and OS-call counts per operation can be
//! read as the C programs' are (see `docs/design/scaling.md`).

#[global_allocator]
static GLOBAL: zk_nalloc::NAlloc = zk_nalloc::NAlloc::new();

/// The counters' exit report (registered with `atexit` when asked for).
extern "C" fn print_counters() {
    let s = GLOBAL.stats();
    let e = s.events;
    eprintln!(
        "nalloc: pid={} small_allocs={} small_frees={} large_allocs={} large_frees={} pool_hits={} heaps={}\n\
         nalloc: events lock_acquisitions={} lock_contended={} remote_batches={} remote_blocks={} \
         remote_atomics={} remote_kept={} remote_collects={} remote_collected={}\n\
         nalloc: os_calls map={} unmap={} remap={} advise={} purge={} protect={} query={}",
        std::process::id(),
        s.small_allocs,
        s.small_frees,
        s.large_allocs,
        s.large_frees,
        s.pool_hits,
        s.heaps,
        e.lock_acquisitions,
        e.lock_contended,
        e.remote_batches,
        e.remote_blocks,
        e.remote_atomics,
        e.remote_kept,
        e.remote_collects,
        e.remote_collected,
        e.os_map,
        e.os_unmap,
        e.os_remap,
        e.os_advise,
        e.os_purge,
        e.os_protect,
        e.os_query
    );
}

fn main() {
    if std::env::var("NALLOC_STATS").is_ok_and(|v| !v.is_empty() && v != "0") {
        // SAFETY: `print_counters` is a plain function of this binary, loaded
        // until exit; atexit only records it.
        unsafe { libc::atexit(print_counters) };
    }
    // `--phases`: the workloads' phase labels become nalloc phases.
    nalloc_bench::workloads::set_phase_hooks(nalloc_bench::workloads::PhaseHooks {
        begin: |name| zk_nalloc::raw::phase_begin(name.as_bytes()),
        end: zk_nalloc::raw::phase_end,
        report: || GLOBAL.phase_report().to_string(),
    });
    nalloc_bench::worker_main(if cfg!(feature = "hardened") {
        "nalloc-hardened"
    } else {
        "nalloc"
    })
}
