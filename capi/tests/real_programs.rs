//! Real programs under `LD_PRELOAD=libnalloc.so`: their output must equal
//! the output without nalloc, and nalloc's exit report (`NALLOC_STATS=1`)
//! must show it served their allocations.

mod common;

use common::{command, run, scratch_dir, which, without_reports, Rng};
use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(300);

/// Runs `make()` with and without nalloc; asserts equal stdout and stderr
/// (less nalloc's report) and returns the nalloc run's stderr.
fn same_with_and_without(dir: &Path, what: &str, make: impl Fn(bool) -> Command) -> String {
    let plain = run(make(false), dir, LIMIT).ok(&format!("{what} without nalloc"));
    assert!(
        common::reports(&plain.stderr).is_empty(),
        "nalloc reported without preload"
    );
    let with = run(make(true), dir, LIMIT).ok(&format!("{what} with nalloc"));
    assert!(
        plain.stdout == with.stdout,
        "{what}: stdout differs with nalloc ({} vs {} bytes)",
        plain.stdout.len(),
        with.stdout.len()
    );
    assert_eq!(
        without_reports(&plain.stderr),
        without_reports(&with.stderr),
        "{what}: stderr differs"
    );
    with.stderr
}

const PYTHON_SCRIPT: &str = r#"
import hashlib, json, threading

def work(seed):
    h = hashlib.sha256()
    d = {}
    for i in range(30000):
        k = "key-%d-%d" % (seed, i)
        d[k] = [k * (i % 5), i, str(i) * (i % 11), {"n": i}]
        if i % 3 == 0:
            d.pop("key-%d-%d" % (seed, i // 2), None)
    for k in sorted(d):
        h.update(k.encode())
        h.update(repr(d[k]).encode())
    chunks = [bytes([(seed + i) % 256]) * (i * 37 % 200000) for i in range(300)]
    for c in chunks:
        h.update(c)
    s = "".join(str(x) for x in range(60000))
    h.update(s.encode())
    ba = bytearray()
    for i in range(20000):
        ba += bytes([i % 251]) * (i % 97)
    h.update(ba)
    grow = []
    for i in range(400000):
        grow.append(i * seed)
    h.update(str(sum(grow)).encode())
    return h.hexdigest()

results = {}
lock = threading.Lock()

def run(seed):
    r = work(seed)
    with lock:
        results[seed] = r

threads = [threading.Thread(target=run, args=(s,)) for s in range(6)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps(results, sort_keys=True))
"#;

/// The real interpreter behind `python3` (not a pyenv-style shim script),
/// so the report counts come from Python itself.
fn python() -> Option<String> {
    which("python3")?;
    let o = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .ok()?;
    let exe = String::from_utf8(o.stdout).ok()?.trim().to_string();
    (o.status.success() && !exe.is_empty()).then_some(exe)
}

/// Whether a test whose tool is missing may be skipped: on a developer's
/// machine yes, with a note; in CI (`CI` set) never — `.ci/run` installs the
/// tools, so a missing one is a failure, not a silent pass.
fn skip_missing(tool: &str) -> bool {
    assert!(
        std::env::var_os("CI").is_none(),
        "{tool} not found, and CI must run this test (.ci/run installs it)"
    );
    eprintln!("skipped: {tool} not found");
    true
}

#[test]
fn python_threads_dicts_lists_strings() {
    let Some(py) = python() else {
        skip_missing("python3");
        return;
    };
    let dir = scratch_dir("python");
    let script = dir.join("alloc_heavy.py");
    fs::write(&script, PYTHON_SCRIPT).unwrap();
    let stderr = same_with_and_without(&dir, "python3", |preload| {
        let mut c = command(&py, preload);
        // Every object through malloc (not pymalloc's arenas), same hashes.
        c.env("PYTHONMALLOC", "malloc").env("PYTHONHASHSEED", "0").arg(&script);
        c
    });
    common::assert_served(&stderr, 1, 1_000_000);
}

#[test]
fn sort_large_file() {
    if which("sort").is_none() && skip_missing("sort") {
        return;
    }
    let dir = scratch_dir("sort");
    let input = dir.join("input.txt");
    let mut text = String::with_capacity(16 << 20);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for i in 0..300_000u64 {
        let r = rng.next();
        let len = 5 + (r % 60) as usize;
        let _ = write!(text, "{:016x}-{i}-", r);
        for j in 0..len {
            text.push((b'a' + ((r >> (j % 48)) % 26) as u8) as char);
        }
        text.push('\n');
    }
    fs::write(&input, &text).unwrap();
    let tmp = dir.join("sort-tmp");
    fs::create_dir_all(&tmp).unwrap();

    // In-memory sort, then an external merge sort through temporary files.
    for extra in [&[][..], &["-S", "1M", "--parallel=2", "-T"][..]] {
        let stderr = same_with_and_without(&dir, "sort", |preload| {
            let mut c = command("sort", preload);
            c.env("LC_ALL", "C").args(extra);
            if !extra.is_empty() {
                c.arg(&tmp);
            }
            c.arg(&input);
            c
        });
        // sort does its work in one big buffer (a single large block).
        common::assert_served(&stderr, 1, 10);
    }
}

#[test]
fn tar_gzip_tree() {
    if (which("tar").is_none() || which("gzip").is_none() || which("sh").is_none()) && skip_missing("tar/gzip/sh") {
        return;
    }
    let dir = scratch_dir("tar");
    let tree = dir.join("tree");
    let mut rng = Rng(42);
    for d in 0..30 {
        let sub = tree.join(format!("dir{d:02}")).join(format!("sub{}", d % 4));
        fs::create_dir_all(&sub).unwrap();
        for f in 0..20 {
            let r = rng.next();
            let len = (r % 200_000) as usize;
            let body: Vec<u8> = (0..len)
                .map(|i| {
                    if r % 3 == 0 {
                        (i % 251) as u8
                    } else {
                        b"nalloc zk prover "[i % 17]
                    }
                })
                .collect();
            fs::write(sub.join(format!("file{f:02}.bin")), body).unwrap();
        }
    }
    let archive = dir.join("tree.tar.gz");
    let pack = "tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf - tree | gzip -n -6";
    let stderr = same_with_and_without(&dir, "tar | gzip", |preload| {
        let mut c = command("sh", preload);
        c.current_dir(&dir).args(["-c", pack]);
        c
    });
    // tar and gzip each report (dash leaves with _exit; gzip may not
    // allocate at all, its buffers are static).
    common::assert_served(&stderr, 2, 100);

    // Pack with nalloc to a file, unpack with nalloc, compare the trees.
    let mut c = command("sh", true);
    c.current_dir(&dir)
        .args(["-c", &format!("{pack} > {}", archive.display())]);
    run(c, &dir, LIMIT).ok("pack");
    let out = dir.join("out");
    fs::create_dir_all(&out).unwrap();
    let mut c = command("sh", true);
    c.current_dir(&dir).args([
        "-c",
        &format!("gzip -dc {} | tar -xf - -C {}", archive.display(), out.display()),
    ]);
    let unpacked = run(c, &dir, LIMIT).ok("unpack");
    common::assert_served(&unpacked.stderr, 2, 10);
    let mut n = 0;
    for d in fs::read_dir(&tree).unwrap() {
        let d = d.unwrap().path();
        for s in fs::read_dir(&d).unwrap() {
            let s = s.unwrap().path();
            for f in fs::read_dir(&s).unwrap() {
                let f = f.unwrap().path();
                let rel = f.strip_prefix(&dir).unwrap();
                assert_eq!(
                    fs::read(&f).unwrap(),
                    fs::read(out.join(rel)).unwrap(),
                    "{}",
                    rel.display()
                );
                n += 1;
            }
        }
    }
    assert_eq!(n, 30 * 20);
}
