//! Benchmark worker with `zk_nalloc::NAlloc` as the global allocator.
//!
//! Built plainly it is the `nalloc` worker; the runner also builds it with
//! `--features hardened` (zk-nalloc's misuse detection) into a target
//! directory of its own, where it reports itself as `nalloc-hardened`.

#[global_allocator]
static GLOBAL: zk_nalloc::NAlloc = zk_nalloc::NAlloc::new();

fn main() {
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
