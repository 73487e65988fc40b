//! Benchmark worker with jemalloc as the global allocator.

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    nalloc_bench::worker_main("jemalloc")
}
