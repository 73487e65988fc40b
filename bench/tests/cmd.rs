//! `nalloc-bench --cmd "<command>"`: a table and SVG for a real program
//! (`sort` of a generated file, `python3 -c`), FAILED for a run that exits
//! non-zero or prints a different stdout, exit code 2 for a command that
//! does not exist.
//!
//! nalloc is preloaded from the `libnalloc.so` that `cargo test --workspace`
//! builds (the capi crate's cdylib); without one (e.g. `cargo test -p
//! nalloc-bench` alone) these tests run under glibc only, except in CI
//! (`CI` set), where a missing library fails them.

use std::path::PathBuf;
use std::process::{Command, Output};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A `libnalloc.so` of this target dir, if one was built. `cargo test`
/// leaves the capi cdylib in `<profile>/deps/` (a dependency of the tests,
/// not a root, so it is not copied up); `cargo build` puts it in
/// `<profile>/`. The one in `deps/` is the fresh one when both exist.
fn nalloc_lib() -> Option<PathBuf> {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_nalloc-bench"));
    let target = exe.parent()?.parent()?.to_path_buf();
    let found = ["debug/deps", "debug", "release/deps", "release"]
        .iter()
        .map(|p| target.join(p).join("libnalloc.so"))
        .find(|p| p.is_file());
    if found.is_none() && std::env::var_os("CI").is_some() {
        panic!(
            "no libnalloc.so under {}: run `cargo test --workspace`",
            target.display()
        );
    }
    found
}

fn have(tool: &str) -> bool {
    let ok = Command::new("sh")
        .args(["-c", "command -v -- \"$1\"", "sh", tool])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok && std::env::var_os("CI").is_some() {
        panic!("{tool} is missing (CI installs it)");
    }
    ok
}

/// Runs `nalloc-bench --cmd <command> --runs <runs>` under glibc and, when
/// there is a library, nalloc.
fn bench(command: &str, runs: &str, extra: &[&str]) -> (Output, bool) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_nalloc-bench"));
    c.args(["--cmd", command, "--runs", runs]).args(extra);
    let with_nalloc = match nalloc_lib() {
        Some(lib) => {
            c.arg("--allocator").arg("glibc,nalloc").arg("--nalloc-lib").arg(lib);
            true
        }
        None => {
            c.args(["--allocator", "glibc"]);
            false
        }
    };
    (c.output().expect("run nalloc-bench"), with_nalloc)
}

/// The table row of `allocator`, if any.
fn row<'a>(out: &'a str, allocator: &str) -> Option<&'a str> {
    out.lines()
        .find(|l| l.split_whitespace().take(2).eq(["cmd", allocator]))
}

#[test]
fn sort_of_a_big_file_gives_a_table_and_an_svg() {
    if !have("sort") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("nalloc-cmd-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("big.txt");
    // 200,000 pseudo-random lines (~3 MB): sort keeps them all in memory.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut s = String::new();
    for i in 0..200_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.push_str(&format!("{x:016x} {i}\n"));
    }
    std::fs::write(&file, s).unwrap();
    let svg = dir.join("cmd.svg");
    let cmd = format!("sort {}", file.display());
    let (out, with_nalloc) = bench(&cmd, "2", &["--svg", svg.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    let glibc = row(&stdout, "glibc").expect("a glibc row");
    // median, min, max, ratio 1.00, peak RSS, median RSS, minflt.
    assert!(glibc.contains("1.00") && glibc.contains("MiB"), "{glibc}");
    if with_nalloc {
        let nalloc = row(&stdout, "nalloc").expect("a nalloc row");
        assert!(!nalloc.contains("FAILED"), "{stdout}");
    }
    let chart = std::fs::read_to_string(&svg).expect("the SVG was written");
    assert!(chart.starts_with("<svg") || chart.starts_with("<?xml"), "{chart:.80}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_python_program_gives_a_row_per_allocator_and_an_svg() {
    if !have("python3") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("nalloc-cmd-py-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let svg = dir.join("python.svg");
    let mut c = Command::new(env!("CARGO_BIN_EXE_nalloc-bench"));
    c.args([
        "--cmd",
        "python3 -c 'print(sum(i * i for i in range(200000)))'",
        "--runs",
        "1",
    ])
    .arg("--svg")
    .arg(&svg);
    // No allocator named: every one the machine has. nalloc only from a
    // library already built, so that the test never builds one.
    let lib = nalloc_lib();
    match &lib {
        Some(lib) => c.arg("--nalloc-lib").arg(lib),
        None => c.args(["--allocator", "glibc,mimalloc,jemalloc,tcmalloc"]),
    };
    let out = c.output().expect("run nalloc-bench");
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let present: Vec<&str> = ["glibc", "mimalloc", "jemalloc", "tcmalloc", "nalloc"]
        .into_iter()
        .filter(|a| !stderr.contains(&format!("skipping {a}:")) && (*a != "nalloc" || lib.is_some()))
        .collect();
    assert!(stdout.contains("x glibc"), "the ratio column: {stdout}");
    for a in &present {
        let r = row(&stdout, a).unwrap_or_else(|| panic!("a {a} row: {stdout}\n{stderr}"));
        assert!(!r.contains("FAILED"), "{r}");
        // cmd, allocator, median, min, max, then the ratio to glibc.
        let ratio: f64 = r.split_whitespace().nth(5).and_then(|x| x.parse().ok()).unwrap_or(0.0);
        assert!(ratio > 0.0, "a ratio to glibc: {r}");
        if *a == "glibc" {
            assert_eq!(ratio, 1.0, "{r}");
        }
    }
    let chart = std::fs::read_to_string(&svg).expect("the SVG was written");
    assert!(chart.starts_with("<svg") || chart.starts_with("<?xml"), "{chart:.80}");
    assert!(present.iter().all(|a| chart.contains(a)), "every allocator in the SVG");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_run_that_exits_non_zero_is_failed_not_averaged() {
    if !have("python3") {
        return;
    }
    let (out, _) = bench("python3 -c 'import sys; print(42); sys.exit(3)'", "1", &["--no-svg"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(row(&stdout, "glibc").unwrap().contains("FAILED 1/1"), "{stdout}");
    assert!(stdout.contains("run 1: exit 3"), "{stdout}");
}

#[test]
fn a_run_whose_stdout_differs_from_glibc_is_failed() {
    if !have("python3") {
        return;
    }
    // A different stdout in every run: glibc's second run already differs
    // from its first.
    let (out, _) = bench("python3 -c 'import time; print(time.time_ns())'", "2", &["--no-svg"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("run 2: stdout differs from glibc's run"), "{stdout}");
    assert!(
        !row(&stdout, "glibc").unwrap().contains("1.00"),
        "no numbers for a failed pair: {stdout}"
    );
}

#[test]
fn a_command_that_does_not_exist_is_an_error_with_code_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_nalloc-bench"))
        .args(["--cmd", "no-such-prover-4242 --k 17"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("command not found: `no-such-prover-4242`"), "{err}");
    assert!(text(&out.stdout).is_empty(), "nothing ran");
}
