//! Command line of `nalloc-preload-bench`.

use std::path::PathBuf;

use crate::cli::{select, split_list};
use std::time::Duration;

use super::setup::{PreloadAllocator, PreloadWorkload, PRELOAD_ALLOCATORS, PRELOAD_WORKLOADS};

/// Default runs per (workload, allocator): the targets are judged on
/// medians, and on a 2-core machine `c-small`'s runs spread by 10-50 %, so
/// a median of 3 or 7 moves by more than the 5 % the time target allows
/// (about 3.5 minutes in all; `--runs 3` for a quick look).
pub const DEFAULT_RUNS: usize = 11;
/// Default per-run time limit in seconds.
pub const DEFAULT_TIMEOUT_SECS: u64 = 300;

/// Parsed options of a preload benchmark run.
#[derive(Clone, Debug)]
pub struct Options {
    /// Workloads to run, in table order.
    pub workloads: Vec<&'static PreloadWorkload>,
    /// Allocators to compare, in table order.
    pub allocators: Vec<&'static PreloadAllocator>,
    /// Runs per (workload, allocator).
    pub runs: usize,
    /// Where to write the JSON report, if anywhere.
    pub json: Option<PathBuf>,
    /// Rebuild `libnalloc.so` even if it exists.
    pub rebuild: bool,
    /// Use this `libnalloc.so` instead of the workspace build.
    pub nalloc_lib: Option<PathBuf>,
    /// Python interpreter for the `python` workload (`None`: `/usr/bin/python3`, else `python3` on `PATH`).
    pub python: Option<PathBuf>,
    /// Skip the `NALLOC_STATS=1` check that nalloc served the runs.
    pub no_verify: bool,
    /// Per-run time limit; a run taking longer is killed and reported FAILED.
    pub timeout: Duration,
    /// Thread count for the workloads that take one (`None`: each one's own).
    pub threads: Option<usize>,
    /// Print nalloc's slow-path event counts per million operations, per
    /// workload, from the `NALLOC_STATS=1` verification run.
    pub counters: bool,
}

/// What the command line asked for.
pub type Cli = crate::cli::Cli<Options>;

/// Usage text.
pub fn usage() -> String {
    format!(
        "nalloc-preload-bench: C and Python programs under glibc malloc and LD_PRELOADed allocators\n\
         \n\
         usage: cargo run --release -p nalloc-bench --bin nalloc-preload-bench -- [OPTIONS]\n\
         \n\
         options:\n  \
           --workload NAME[,..]   workloads to run (repeatable; default: all)\n  \
           --allocator NAME[,..]  allocators to compare (repeatable; default: all)\n  \
           --runs N               runs per (workload, allocator), round-robin (default {DEFAULT_RUNS})\n  \
           --json FILE            also write the results as JSON\n  \
           --timeout SECS         per-run time limit (default {DEFAULT_TIMEOUT_SECS})\n  \
           --rebuild              rebuild libnalloc.so even if it exists\n  \
           --nalloc-lib PATH      preload this libnalloc.so instead of <target>/release/libnalloc.so\n  \
           --python PATH          python interpreter (default /usr/bin/python3, else python3 on PATH)\n  \
           --no-verify            skip the NALLOC_STATS=1 check that nalloc served the runs\n  \
           --threads N            thread count for the threaded workloads (default: each one's own)\n  \
           --counters             print nalloc's lock, cross-thread and OS-call counts per million\n  \
                                  operations, from the NALLOC_STATS=1 run (implies that run)\n  \
           --list                 list workloads and allocators\n  \
           -h, --help             this help\n\
         \n\
         The python workload runs with PYTHONMALLOC=malloc, so that CPython's small objects go\n\
         through malloc (and the preloaded allocator) instead of pymalloc's arenas.\n\
         Needs /usr/bin/time (package `time`) and a C compiler (`cc`, or $CC).\n\
         \n{}",
        choices()
    )
}

/// The valid workload and allocator names, for error messages.
pub fn choices() -> String {
    let w: Vec<&str> = PRELOAD_WORKLOADS.iter().map(|w| w.name).collect();
    let a: Vec<&str> = PRELOAD_ALLOCATORS.iter().map(|a| a.name).collect();
    format!("valid workloads: {}\nvalid allocators: {}", w.join(", "), a.join(", "))
}

/// Parses the command line (without the program name).
pub fn parse_args<I: IntoIterator<Item = String>>(args: I) -> Result<Cli, String> {
    let mut wanted_workloads: Vec<String> = Vec::new();
    let mut wanted_allocators: Vec<String> = Vec::new();
    let mut runs = DEFAULT_RUNS;
    let mut json = None;
    let mut rebuild = false;
    let mut nalloc_lib = None;
    let mut python = None;
    let mut no_verify = false;
    let mut timeout = Duration::from_secs(DEFAULT_TIMEOUT_SECS);
    let mut list = false;
    let mut threads = None;
    let mut counters = false;

    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        // Accept both `--flag value` and `--flag=value`.
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let takes_value = matches!(
            flag.as_str(),
            "--workload"
                | "--allocator"
                | "--runs"
                | "--json"
                | "--timeout"
                | "--nalloc-lib"
                | "--python"
                | "--threads"
        );
        if inline.is_some() && !takes_value {
            return Err(format!("flag `{flag}` takes no value"));
        }
        let mut value = || -> Result<String, String> {
            match inline.clone().or_else(|| args.next()) {
                Some(v) if !v.is_empty() => Ok(v),
                _ => Err(format!("flag `{flag}` needs a value")),
            }
        };
        match flag.as_str() {
            "--list" => list = true,
            "-h" | "--help" => return Ok(Cli::Help),
            "--rebuild" => rebuild = true,
            "--no-verify" => no_verify = true,
            "--counters" => counters = true,
            "--threads" => {
                let v = value()?;
                threads = Some(
                    v.parse::<usize>()
                        .ok()
                        .filter(|&n| (1..=256).contains(&n))
                        .ok_or_else(|| format!("--threads needs an integer from 1 to 256, got `{v}`"))?,
                );
            }
            "--workload" => wanted_workloads.extend(split_list(&value()?)),
            "--allocator" => wanted_allocators.extend(split_list(&value()?)),
            "--runs" => {
                let v = value()?;
                runs = v
                    .parse::<usize>()
                    .ok()
                    .filter(|&n| n >= 1)
                    .ok_or_else(|| format!("--runs needs a positive integer, got `{v}`"))?;
            }
            "--timeout" => {
                let v = value()?;
                let secs = v
                    .parse::<u64>()
                    .ok()
                    .filter(|&n| n >= 1)
                    .ok_or_else(|| format!("--timeout needs a positive number of seconds, got `{v}`"))?;
                timeout = Duration::from_secs(secs);
            }
            "--json" => json = Some(PathBuf::from(value()?)),
            "--nalloc-lib" => nalloc_lib = Some(PathBuf::from(value()?)),
            "--python" => python = Some(PathBuf::from(value()?)),
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    if list {
        return Ok(Cli::List);
    }
    if rebuild && nalloc_lib.is_some() {
        return Err("--rebuild and --nalloc-lib are mutually exclusive".into());
    }
    if counters && no_verify {
        return Err("--counters reads the NALLOC_STATS=1 run that --no-verify skips".into());
    }
    let workloads = select(&wanted_workloads, PRELOAD_WORKLOADS, |w| w.name, "workload")?;
    let allocators = select(&wanted_allocators, PRELOAD_ALLOCATORS, |a| a.name, "allocator")?;
    Ok(Cli::Run(Options {
        workloads,
        allocators,
        runs,
        json,
        rebuild,
        nalloc_lib,
        python,
        no_verify,
        timeout,
        threads,
        counters,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, String> {
        parse_args(args.iter().map(|s| s.to_string()))
    }

    fn run_opts(args: &[&str]) -> Options {
        match parse(args) {
            Ok(Cli::Run(o)) => o,
            other => panic!("expected Run, got {other:?}"),
        }
    }

    #[test]
    fn defaults() {
        let o = run_opts(&[]);
        assert_eq!(o.runs, DEFAULT_RUNS);
        assert_eq!(o.workloads.len(), PRELOAD_WORKLOADS.len());
        assert_eq!(o.allocators.len(), PRELOAD_ALLOCATORS.len());
        assert!(o.json.is_none() && !o.rebuild && !o.no_verify && !o.counters);
        assert_eq!(o.threads, None);
        assert_eq!(o.timeout, Duration::from_secs(DEFAULT_TIMEOUT_SECS));
    }

    #[test]
    fn lists_keep_table_order() {
        let o = run_opts(&[
            "--workload",
            "python,c-small",
            "--allocator=nalloc",
            "--allocator",
            "glibc",
            "--runs=5",
        ]);
        let w: Vec<&str> = o.workloads.iter().map(|w| w.name).collect();
        let a: Vec<&str> = o.allocators.iter().map(|a| a.name).collect();
        assert_eq!(w, ["c-small", "python"]);
        assert_eq!(a, ["glibc", "nalloc"]);
        assert_eq!(o.runs, 5);
    }

    #[test]
    fn threads_and_counters() {
        let o = run_opts(&["--threads", "32", "--counters", "--workload", "c-xmalloc"]);
        assert_eq!(o.threads, Some(32));
        assert!(o.counters);
        assert_eq!(run_opts(&["--threads=8"]).threads, Some(8));
    }

    #[test]
    fn errors() {
        for bad in [
            &["--workload", "nope"][..],
            &["--allocator", "ptmalloc"],
            &["--runs", "0"],
            &["--runs", "x"],
            &["--runs"],
            &["--timeout", "0"],
            &["--list=1"],
            &["--bogus"],
            &["--rebuild", "--nalloc-lib", "/x.so"],
            &["--threads", "0"],
            &["--threads", "257"],
            &["--threads"],
            &["--counters=1"],
            &["--counters", "--no-verify"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should fail");
        }
        assert!(matches!(parse(&["--list"]), Ok(Cli::List)));
        assert!(matches!(parse(&["-h"]), Ok(Cli::Help)));
        let c = choices();
        assert!(c.contains("c-large") && c.contains("tcmalloc"));
    }
}
