//! nalloc.h's list of environment variables against the code that reads
//! them, so the header cannot go stale: every `NALLOC_*` name read by the
//! engine (`os::env_var(b"NALLOC_…")` in the core crate) or by the C
//! library (`getenv(c"NALLOC_…")`) must be documented in the header's
//! "Environment" list, and the list must name nothing that no code reads.
//! Both sides are extracted, not listed here, so a variable added later is
//! checked as soon as it is read.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Every `NALLOC_[A-Z0-9_]+` name that starts a byte or C string literal
/// (`b"NALLOC_X"`, `c"NALLOC_X"`): how the code names a variable it reads
/// (messages start with `nalloc:`, so they do not count).
fn names_read(source: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for prefix in ["b\"NALLOC_", "c\"NALLOC_"] {
        for (i, _) in source.match_indices(prefix) {
            let rest = &source[i + 2..];
            let end = rest
                .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
                .unwrap_or(rest.len());
            if rest[end..].starts_with('"') {
                names.insert(rest[..end].to_owned());
            }
        }
    }
    names
}

/// The names of the header's "Environment" comment block: lines
/// ` *   NALLOC_X = …`.
fn names_documented(header: &str) -> BTreeSet<String> {
    let start = header.find("Environment").expect("nalloc.h has an Environment list");
    let block = &header[start..header[start..].find("*/").map_or(header.len(), |e| start + e)];
    block
        .lines()
        .filter_map(|l| {
            let t = l.trim_start().strip_prefix('*')?.trim_start();
            let name: String = t
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            (name.starts_with("NALLOC_") && t[name.len()..].trim_start().starts_with('=')).then_some(name)
        })
        .collect()
}

fn rust_sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn header_lists_exactly_the_variables_the_code_reads() {
    let capi = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_sources(&capi.join("src"), &mut files);
    rust_sources(&capi.join("../src"), &mut files);
    let mut read = BTreeSet::new();
    for f in &files {
        read.extend(names_read(&std::fs::read_to_string(f).unwrap()));
    }
    // The extraction itself must find the variables known to be read, or
    // an empty set on both sides would pass.
    for known in [
        "NALLOC_HUGE_PAGES",
        "NALLOC_POOL_CAP",
        "NALLOC_STATS",
        "NALLOC_FOREIGN_FREE",
    ] {
        assert!(read.contains(known), "extraction missed {known}: {read:?}");
    }
    let header = std::fs::read_to_string(capi.join("include/nalloc.h")).unwrap();
    let documented = names_documented(&header);
    let undocumented: Vec<_> = read.difference(&documented).collect();
    let stale: Vec<_> = documented.difference(&read).collect();
    assert!(
        undocumented.is_empty() && stale.is_empty(),
        "nalloc.h's Environment list is out of date: read but not listed: {undocumented:?}; \
         listed but never read: {stale:?}"
    );
}

#[test]
fn extraction_of_both_sides() {
    let src = r#"env_var(b"NALLOC_A", &mut b); getenv(c"NALLOC_B2".as_ptr()); write(b"nalloc: NALLOC_C: bad");"#;
    assert_eq!(names_read(src), ["NALLOC_A", "NALLOC_B2"].map(String::from).into());
    let h = "/* x\n * Environment:\n *   NALLOC_A   = on | off\n *                NALLOC_Z text\n *   NALLOC_B2 = 1\n */\n#define NALLOC_H\n";
    assert_eq!(names_documented(h), ["NALLOC_A", "NALLOC_B2"].map(String::from).into());
}
