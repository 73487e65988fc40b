//! `nalloc-bench`: runs the allocator benchmark suite (see `--help`), or
//! `--cmd "<command>"` under each allocator.

fn main() {
    // `--cmd "<command>"`: the user's own program under each allocator
    // (nalloc_bench::cmd); otherwise the built-in suite.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--cmd") {
        std::process::exit(nalloc_bench::cmd::main(&args));
    }
    std::process::exit(nalloc_bench::runner::main());
}
