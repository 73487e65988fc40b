//! The runner's command-line handling and its FAILED reporting.

use std::process::{Command, Output};

fn runner(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nalloc-bench"))
        .args(args)
        .output()
        .expect("run nalloc-bench")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn unknown_workload_names_the_valid_choices() {
    let out = runner(&["--workload", "nope"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("unknown workload `nope`"), "{err}");
    for name in ["halo2", "fft", "small", "zeroed", "larson", "realloc"] {
        assert!(err.contains(name), "stderr should list `{name}`: {err}");
    }
    for name in ["nalloc", "glibc", "mimalloc", "jemalloc", "nalloc-hardened (opt-in)"] {
        assert!(err.contains(name), "stderr should list `{name}`: {err}");
    }
}

#[test]
fn malformed_flags_fail() {
    for args in [
        &["--allocator", "tcmalloc"][..],
        &["--runs", "0"],
        &["--runs"],
        &["--bogus"],
        &["--workload", "halo2,nope"],
    ] {
        let out = runner(args);
        assert!(!out.status.success(), "{args:?} should fail");
        let err = text(&out.stderr);
        assert!(err.contains("error:"), "{args:?}: {err}");
        assert!(err.contains("valid allocators:"), "{args:?}: {err}");
    }
}

#[test]
fn list_succeeds() {
    let out = runner(&["--list"]);
    assert!(out.status.success());
    let s = text(&out.stdout);
    assert!(s.contains("cache-scratch") && s.contains("jemalloc"), "{s}");
    // The hardened build is listed, in the opt-in section after the default allocators.
    let opt_in = s.find("opt-in allocators").expect("an opt-in section");
    let hardened = s.find("nalloc-hardened").expect("nalloc-hardened listed");
    assert!(
        hardened > opt_in && s.find("jemalloc").is_some_and(|j| j < opt_in),
        "{s}"
    );
}

#[test]
fn help_says_opt_in_allocators_are_not_in_the_default_set() {
    let out = runner(&["--help"]);
    assert!(out.status.success());
    let s = text(&out.stdout);
    assert!(s.contains("default: all but the opt-in ones"), "{s}");
    assert!(s.contains("nalloc-hardened (opt-in)"), "{s}");
}

#[test]
fn crashed_worker_is_reported_as_failed_not_as_a_number() {
    let dir = std::env::temp_dir().join(format!("nalloc-bench-cli-{}", std::process::id()));
    let json = dir.join("report.json");
    let out = Command::new(env!("CARGO_BIN_EXE_nalloc-bench"))
        .args([
            "--workload",
            "batch",
            "--allocator",
            "nalloc",
            "--runs",
            "1",
            "--no-build",
            "--no-svg",
            "--json",
        ])
        .arg(&json)
        .env("NALLOC_BENCH_INJECT_FAILURE", "nalloc")
        .output()
        .expect("run nalloc-bench");
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("FAILED 1/1"), "{stdout}");
    assert!(stdout.contains("SIGABRT"), "{stdout}");
    assert!(stdout.contains("injected failure"), "{stdout}");
    let report = std::fs::read_to_string(&json).expect("json report");
    assert!(report.contains("\"median_ms\": null"), "{report}");
    let _ = std::fs::remove_dir_all(&dir);
}
