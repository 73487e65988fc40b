//! Benchmark worker with `zk_nalloc::NAlloc` as the global allocator.

#[global_allocator]
static GLOBAL: zk_nalloc::NAlloc = zk_nalloc::NAlloc::new();

fn main() {
    nalloc_bench::worker_main("nalloc")
}
