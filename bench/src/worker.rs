//! The worker side: runs one workload in this process and prints its result.

use crate::result::{rusage, WorkerResult, RESULT_PREFIX};
use crate::workloads::{self, Ctx};

fn usage(allocator: &str) -> String {
    let names: Vec<&str> = workloads::WORKLOADS.iter().map(|w| w.name).collect();
    // The executable's own name: `nalloc-hardened` runs `nalloc-bench-worker-nalloc`.
    let program = std::env::args()
        .next()
        .and_then(|a| Some(std::path::Path::new(&a).file_name()?.to_string_lossy().into_owned()))
        .unwrap_or_else(|| format!("nalloc-bench-worker-{allocator}"));
    format!(
        "usage: {program} --workload NAME [--full] [--phases]\n\
         (the {allocator} worker, normally launched by `nalloc-bench`)\nworkloads: {}",
        names.join(", ")
    )
}

/// Entry point of every worker binary. `allocator` is the name of the
/// `#[global_allocator]` the calling binary installed.
///
/// Arguments: `--workload NAME [--full] [--phases]`; with `--phases` (only
/// where the binary registered [`workloads::PhaseHooks`]) the workload's
/// phases are labelled and the allocator's per-phase table is printed first. Prints one line starting with
/// [`RESULT_PREFIX`] followed by a JSON [`WorkerResult`] and exits 0; on a
/// failed check prints the error to stderr and exits 1; on bad arguments exits 2.
pub fn worker_main(allocator: &'static str) -> ! {
    let mut args = std::env::args().skip(1);
    let mut workload = None;
    let mut full = false;
    let mut phases = false;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--workload" => workload = args.next(),
            "--full" => full = true,
            "--phases" => phases = true,
            "-h" | "--help" => {
                println!("{}", usage(allocator));
                std::process::exit(0);
            }
            other => {
                eprintln!("error: unexpected argument `{other}`\n{}", usage(allocator));
                std::process::exit(2);
            }
        }
    }
    let Some(name) = workload else {
        eprintln!("error: --workload is required\n{}", usage(allocator));
        std::process::exit(2);
    };
    let Some(info) = workloads::find(&name) else {
        eprintln!("error: unknown workload `{name}`\n{}", usage(allocator));
        std::process::exit(2);
    };

    // Test hook: `NALLOC_BENCH_INJECT_FAILURE=<allocator>` makes that
    // allocator's worker abort, so the runner's FAILED reporting can be tested.
    if std::env::var("NALLOC_BENCH_INJECT_FAILURE").is_ok_and(|v| v == allocator) {
        eprintln!("injected failure: aborting {allocator} worker for `{name}`");
        std::process::abort();
    }

    let hooks = if phases {
        match workloads::enable_phases() {
            Some(h) => Some(h),
            None => {
                eprintln!("error: the {allocator} worker cannot label phases");
                std::process::exit(2);
            }
        }
    } else {
        None
    };

    // Test hook: `NALLOC_BENCH_TINY=1` runs the tests' tiny sizes, so that
    // `tests/cli.rs` can run the whole runner in a debug build in seconds.
    let ctx = if std::env::var("NALLOC_BENCH_TINY").is_ok_and(|v| v == "1") {
        Ctx::tiny(allocator)
    } else {
        Ctx::new(full, allocator)
    };
    let output = match (info.run)(&ctx) {
        Ok(output) => output,
        Err(e) => {
            eprintln!("error: workload `{name}` under {allocator} failed: {e}");
            std::process::exit(1);
        }
    };
    // The work every allocator does, where the workload ran nalloc-only
    // phases after it (see `WorkloadOutput::common_wall_ms`).
    let wall_ms = output
        .common_wall_ms
        .unwrap_or_else(|| workloads::ms(ctx.started.elapsed()));
    if let Some(h) = hooks {
        print!("{}", (h.report)());
    }
    let (maxrss_kib, minflt) = rusage(libc::RUSAGE_SELF);
    let result = WorkerResult {
        workload: name,
        allocator: allocator.to_owned(),
        full,
        wall_ms,
        output,
        maxrss_kib,
        minflt,
    };
    match serde_json::to_string(&result) {
        Ok(json) => println!("{RESULT_PREFIX}{json}"),
        Err(e) => {
            eprintln!("error: cannot serialize result: {e}");
            std::process::exit(1);
        }
    }
    std::process::exit(0);
}
