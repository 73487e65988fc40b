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

/// Worker runs (at the tests' tiny sizes) report setup, cold and warm, and
/// the table, JSON and SVG show each with its ratio to glibc and the verdict.
#[test]
fn workers_report_setup_cold_and_warm_against_glibc() {
    let dir = std::env::temp_dir().join(format!("nalloc-bench-scw-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (json, svg) = (dir.join("report.json"), dir.join("report.svg"));
    let out = Command::new(env!("CARGO_BIN_EXE_nalloc-bench"))
        .args([
            "--workload",
            "small,larson",
            "--allocator",
            "glibc,nalloc",
            "--runs",
            "1",
            "--no-build",
            "--json",
        ])
        .arg(&json)
        .arg("--svg")
        .arg(&svg)
        .env("NALLOC_BENCH_TINY", "1")
        .output()
        .expect("run nalloc-bench");
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    let header = stdout.lines().find(|l| l.starts_with("workload")).expect("a table");
    for column in ["setup", "cold", "warm", "x glibc", "verdict", "other phases"] {
        assert!(header.contains(column), "no `{column}` column: {header}");
    }
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json report")).expect("valid JSON");
    let summaries = report["summaries"].as_array().expect("summaries");
    assert_eq!(summaries.len(), 4);
    for s in summaries {
        for figure in ["setup", "cold", "warm"] {
            assert!(s[figure]["ms"].as_f64().is_some(), "{figure} of {s}");
            assert!(s[figure]["ratio_to_glibc"].as_f64().is_some(), "{figure} ratio of {s}");
        }
        if s["allocator"] == "glibc" {
            assert_eq!(s["cold"]["ratio_to_glibc"], 1.0, "{s}");
            assert_eq!(s["decided_by"], "baseline", "{s}");
        } else {
            let by = s["decided_by"].as_str().expect("a verdict");
            assert!(["setup", "cold", "warm", "parity", "other"].contains(&by), "{s}");
        }
    }
    let svg = std::fs::read_to_string(&svg).expect("svg");
    for panel in ["setup / glibc", "cold / glibc", "warm / glibc"] {
        assert!(svg.contains(panel), "no `{panel}` panel");
    }
    assert!(
        svg.contains("larson / nalloc: cold "),
        "no cold bar for larson / nalloc"
    );
    let _ = std::fs::remove_dir_all(&dir);
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
