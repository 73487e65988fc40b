//! Benchmark worker with the system allocator (glibc malloc) as the global allocator.

#[global_allocator]
static GLOBAL: std::alloc::System = std::alloc::System;

fn main() {
    nalloc_bench::worker_main("glibc")
}
