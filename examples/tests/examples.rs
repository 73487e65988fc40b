//! Every example runs and asserts its result, at a small size: the Rust
//! examples through `cargo run` would rebuild, so they are run from the
//! binaries cargo built for this test (`cargo test` builds examples), and
//! the C example through its Makefile against the `libnalloc.so` of this
//! target dir.

use std::path::{Path, PathBuf};
use std::process::Command;

/// `<target>/<profile>`: this test binary lives in its `deps/`.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().and_then(Path::parent).unwrap().to_path_buf()
}

fn run_example(name: &str, args: &[&str]) -> String {
    let exe = profile_dir().join("examples").join(name);
    assert!(exe.is_file(), "{} was not built", exe.display());
    let out = Command::new(&exe).args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{name} failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn halo2_with_witness_memory() {
    let out = run_example("halo2_witness", &["6"]);
    assert!(out.contains("verified"), "{out}");
}

#[test]
fn arkworks_fft_on_polynomial_memory() {
    let out = run_example("arkworks_fft", &["12", "2"]);
    assert!(out.contains("fft/ifft verified"), "{out}");
}

#[test]
fn stark_with_the_trace_in_witness_memory() {
    let out = run_example("stark_fibonacci", &["10", "2"]);
    assert!(out.contains("proof 1: 2^10 steps") && out.contains("verified"), "{out}");
    assert!(out.contains("locked true") || out.contains("locked false"), "{out}");
}

#[test]
fn c_program_on_nalloc_h() {
    let have_cc = Command::new("sh")
        .args(["-c", "command -v cc && command -v make"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_cc {
        assert!(
            std::env::var_os("CI").is_none(),
            "cc and make are needed (CI installs them)"
        );
        return;
    }
    // The workspace's `cargo test` builds libnalloc.so (nalloc-capi's cdylib)
    // into the profile's deps/ (a test dependency is not copied up to the
    // profile dir; `cargo build` copies it there).
    let libdir = [profile_dir().join("deps"), profile_dir()]
        .into_iter()
        .find(|d| d.join("libnalloc.so").is_file())
        .unwrap_or_else(profile_dir);
    if !libdir.join("libnalloc.so").is_file() {
        assert!(
            std::env::var_os("CI").is_none(),
            "no libnalloc.so in {}: run `cargo test --workspace`",
            libdir.display()
        );
        return;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("c");
    let build = Command::new("make")
        .arg("-C")
        .arg(&dir)
        .arg("-B")
        .arg("prover")
        .arg(format!("LIBDIR={}", libdir.display()))
        .output()
        .unwrap();
    assert!(
        build.status.success(),
        "make failed: {}",
        String::from_utf8_lossy(&build.stderr)
    );
    let out = Command::new(dir.join("prover")).arg("100000").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("ok;"), "{stdout}");
}
