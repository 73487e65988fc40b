//! `nalloc-preload-bench`: C and Python workloads under glibc malloc and
//! LD_PRELOADed allocators (see `--help` and [`nalloc_bench::preload`]).

fn main() {
    std::process::exit(nalloc_bench::preload::main());
}
