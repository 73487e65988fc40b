//! The source keeps the layers of `src/README.md` (see `tests/layering/mod.rs`),
//! and the checker catches what it should, on small trees of its own.

#[path = "layering/mod.rs"]
mod layering;

use std::fs;
use std::path::{Path, PathBuf};

#[test]
fn source_tree_is_layered() {
    layering::assert_layered(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
}

const README: &str = "\
# A small crate

- `lib.rs`: the root.
- `base/mod.rs`, `base/util.rs`: the bottom.
- `front/mod.rs`: the top.

## Layers

| layer | path | role |
| --- | --- | --- |
| `base` | `base/` | the bottom |
| `front` | `front/` | uses base |
| `lib` | `lib.rs` | the crate root |

`crate::front` in the text, and `not/a/file.txt`, are not checked.
";

const LIB: &str = "pub mod base;\npub mod front;\npub use crate::front::g;\npub struct Root;\n";

const BASE: &str = "\
//! Mentions crate::front in a doc comment.
pub mod util;
/* crate::front in a block comment */
pub fn f() -> &'static str {
    let _c = '\"';
    \"crate::front::g()\" // crate::front in a comment
}
";

const FRONT: &str = "use crate::base::{self, f};\npub fn g() {\n    crate::base::util::u();\n}\n";

/// A fresh tree `<temp>/nalloc-layering-<pid>-<name>/src` holding `files`.
fn tree(name: &str, files: &[(&str, &str)]) -> PathBuf {
    let root = std::env::temp_dir().join(format!("nalloc-layering-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&root);
    let src = root.join("src");
    for (path, text) in files {
        let path = src.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }
    src
}

/// The files of a clean tree, where `base/util.rs` holds `util`.
fn files(util: &str) -> Vec<(&'static str, &str)> {
    vec![
        ("README.md", README),
        ("lib.rs", LIB),
        ("base/mod.rs", BASE),
        ("base/util.rs", util),
        ("front/mod.rs", FRONT),
    ]
}

/// What the checker finds in a tree of `files` (printed, one per line).
fn violations(name: &str, files: &[(&str, &str)]) -> Vec<String> {
    let src = tree(name, files);
    let found = layering::check(&src, &src.join("README.md"));
    fs::remove_dir_all(src.parent().unwrap()).unwrap();
    for v in &found {
        println!("{v}");
    }
    found
}

#[test]
fn a_clean_tree_passes() {
    assert_eq!(violations("clean", &files("pub fn u() {}\n")), Vec::<String>::new());
}

#[test]
fn upward_imports_are_reported_with_file_and_line() {
    let util = "\
use crate::front::g;
pub fn u() {
    crate::front::g(); // inline
    let _ = crate::Root; // an item of lib.rs: the root layer
}
use crate::{
    base::f,
    front::{g as h, self},
};
";
    // `super::` chains count where they climb to the root: one step from
    // `base/mod.rs`, two from `base/util.rs` (line 10); a shorter chain
    // (line 11) stays in its own module, and `front` may name `base`.
    let util = format!("{util}use super::super::front::g as _;\nuse super::util as _;\n");
    let mut files = files(&util);
    files[2].1 = "pub mod util;\nuse super::front as _;\n";
    files[4].1 = "pub fn g() {\n    super::base::f();\n}\n";
    assert_eq!(
        violations("upward", &files),
        [
            "src/base/mod.rs:2 uses crate::front (layer front is above base)",
            "src/base/util.rs:1 uses crate::front (layer front is above base)",
            "src/base/util.rs:3 uses crate::front (layer front is above base)",
            "src/base/util.rs:4 uses crate::Root (layer lib is above base)",
            "src/base/util.rs:8 uses crate::front (layer front is above base)",
            "src/base/util.rs:10 uses crate::front (layer front is above base)",
        ]
    );
}

#[test]
fn unmapped_files_and_missing_map_entries_are_reported() {
    let readme = README.replace(
        "- `lib.rs`: the root.",
        "- `lib.rs`: the root.\n- `base/gone.rs`: moved.",
    );
    let mut files = files("");
    files[0].1 = &readme;
    files.extend([("extra.rs", ""), ("front/util.rs", "")]);
    assert_eq!(
        violations("unmapped", &files),
        [
            "file src/extra.rs is missing from src/README.md",
            "file src/extra.rs is in no layer",
            // `base/util.rs` is written, but not `front/util.rs`.
            "file src/front/util.rs is missing from src/README.md",
            "src/README.md names `base/gone.rs`, which does not exist",
        ]
    );
}
