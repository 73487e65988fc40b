//! `nalloc-bench`: runs the allocator benchmark suite (see `--help`).

fn main() {
    std::process::exit(nalloc_bench::runner::main());
}
