//! A layering checker for a crate's source tree (std only), shared by the
//! `layers` tests of `zk-nalloc` (`tests/layers.rs`) and of `nalloc-bench`
//! (`bench/tests/layers.rs`), which include this file with `#[path]`.
//!
//! The rule is written once, in a README next to the source (`src/README.md`):
//! the first markdown table after a `## Layers` heading lists the layers,
//! bottom to top, one row per path:
//!
//! ```text
//! ## Layers
//!
//! | layer | path    | role            |
//! | ----- | ------- | --------------- |
//! | `mem` | `mem/`  | large blocks    |
//! | `lib` | `lib.rs`| the crate root  |
//! ```
//!
//! The first cell names the layer (the name of its crate-root module), the
//! second holds its path relative to the source folder: a folder (`mem/`) or
//! a file (`policy.rs`). Several rows may name the same layer. A file belongs
//! to the layer with the longest path that is equal to or a prefix of its own.
//!
//! [`check`] reports:
//! * a file that belongs to no layer;
//! * a `crate::x` path (in a `use`, braced or not, or inline in code) from a
//!   file whose layer is below the layer of `x`. `x` is the name of a layer
//!   or of a top-level module listed in the table; any other name (an item of
//!   `lib.rs` such as `crate::NAlloc`) counts as the layer of `lib.rs`;
//! * a `super::` chain that climbs to the crate root and names a layer or
//!   top-level module above the file's (`super::super::front` from
//!   `mem/pool.rs`), as the `crate::` path it stands for;
//! * a source file whose path (e.g. `small/heap.rs`) the README never writes,
//!   and a path ending in `.rs` written in backticks in the README that does
//!   not exist (relative to the source folder or to the folder above it).
//!
//! Comments, string and character literals are blanked out before the
//! search, so documentation that mentions `crate::x` does not count.

use std::fs;
use std::path::{Path, PathBuf};

/// One layer of the table.
struct Layer {
    name: String,
    /// Names of the crate-root modules in it (from its top-level paths).
    modules: Vec<String>,
}

/// One row of the table: a path and the index of its layer (its rank).
struct Row {
    path: String,
    layer: usize,
}

struct Table {
    layers: Vec<Layer>,
    rows: Vec<Row>,
}

impl Table {
    /// The layer of a file, by the longest row path that covers it.
    fn layer_of(&self, rel: &str) -> Option<usize> {
        self.rows
            .iter()
            .filter(|r| covers(&r.path, rel))
            .max_by_key(|r| r.path.len())
            .map(|r| r.layer)
    }

    /// Whether `name` is a layer or a crate-root module of the table.
    fn names_module(&self, name: &str) -> bool {
        self.layers
            .iter()
            .any(|l| l.name == name || l.modules.iter().any(|m| m == name))
    }

    /// The layer that `crate::segment` refers to (unknown names: that of `lib.rs`).
    fn layer_of_segment(&self, segment: &str) -> Option<usize> {
        self.layers
            .iter()
            .position(|l| l.name == segment || l.modules.iter().any(|m| m == segment))
            .or_else(|| self.layer_of("lib.rs"))
    }
}

/// Checks the `.rs` files under `src_dir` against the layers and the map in
/// `readme`; returns the violations, one message each (empty: all is well).
pub fn check(src_dir: &Path, readme: &Path) -> Vec<String> {
    let shown_readme = shown(src_dir, readme);
    let text = match fs::read_to_string(readme) {
        Ok(t) => t,
        Err(e) => return vec![format!("cannot read {shown_readme}: {e}")],
    };
    let mut violations = Vec::new();
    let table = match parse_table(&text) {
        Ok(t) => t,
        Err(e) => return vec![format!("{shown_readme}: {e}")],
    };
    let mut files = Vec::new();
    if let Err(e) = rust_files(src_dir, src_dir, &mut files) {
        return vec![format!("cannot list {}: {e}", src_dir.display())];
    }
    files.sort();
    let src_name = src_dir
        .file_name()
        .map_or(String::new(), |n| n.to_string_lossy().into_owned());
    for rel in &files {
        let shown_file = format!("{src_name}/{rel}");
        if !mentions(&text, rel) {
            violations.push(format!("file {shown_file} is missing from {shown_readme}"));
        }
        let Some(layer) = table.layer_of(rel) else {
            violations.push(format!("file {shown_file} is in no layer"));
            continue;
        };
        let source = match fs::read_to_string(src_dir.join(rel)) {
            Ok(s) => s,
            Err(e) => {
                violations.push(format!("cannot read {shown_file}: {e}"));
                continue;
            }
        };
        let code = code_only(&source);
        // `super::` chains that climb to the crate root name a top-level
        // module as `crate::` would; a chain that ends lower stays inside
        // the file's own top-level module. Only names of modules in the table
        // count: from an inline module (`mod tests { use super::*; }`) the
        // chain is one step shorter than counted, and an item it names there
        // is no layer's.
        let climbed = super_refs(&code, module_depth(rel))
            .into_iter()
            .filter(|(_, name)| table.names_module(name));
        for (line, segment) in crate_refs(&code).into_iter().chain(climbed) {
            match table.layer_of_segment(&segment) {
                Some(to) if to > layer => violations.push(format!(
                    "{shown_file}:{line} uses crate::{segment} (layer {} is above {})",
                    table.layers[to].name, table.layers[layer].name
                )),
                Some(_) => {}
                None => violations.push(format!(
                    "{shown_file}:{line} uses crate::{segment}, which is in no layer (nor is lib.rs)"
                )),
            }
        }
    }
    let parent = src_dir.parent().unwrap_or(src_dir);
    for path in backticked_rs_paths(&text) {
        if !src_dir.join(&path).exists() && !parent.join(&path).exists() {
            violations.push(format!("{shown_readme} names `{path}`, which does not exist"));
        }
    }
    violations
}

/// Panics, listing every violation one per line, unless the tree under
/// `src_dir` keeps the layers of `src_dir/README.md`.
pub fn assert_layered(src_dir: &Path) {
    let violations = check(src_dir, &src_dir.join("README.md"));
    assert!(
        violations.is_empty(),
        "{} layering violation(s) in {}:\n{}",
        violations.len(),
        src_dir.display(),
        violations.join("\n")
    );
}

/// `path` as shown in messages: relative to the folder above `src_dir` if it
/// can be, `/`-separated on every platform (as `rust_files` lists files).
fn shown(src_dir: &Path, path: &Path) -> String {
    let base = src_dir.parent().unwrap_or(src_dir);
    let parts: Vec<String> = path
        .strip_prefix(base)
        .unwrap_or(path)
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    parts.join("/")
}

/// Whether the table path `layer_path` covers the file `rel`.
fn covers(layer_path: &str, rel: &str) -> bool {
    let dir = layer_path.trim_end_matches('/');
    rel == dir || rel.strip_prefix(dir).is_some_and(|rest| rest.starts_with('/'))
}

/// Parses the first table after the `## Layers` heading.
fn parse_table(text: &str) -> Result<Table, String> {
    let mut lines = text
        .lines()
        .enumerate()
        .skip_while(|(_, l)| !l.trim().starts_with("## Layers"));
    if lines.next().is_none() {
        return Err("no `## Layers` heading".into());
    }
    let mut table = Table {
        layers: Vec::new(),
        rows: Vec::new(),
    };
    let mut rows_seen = 0;
    for (i, line) in lines {
        let line = line.trim();
        if !line.starts_with('|') {
            if rows_seen > 0 {
                break;
            }
            if line.starts_with("#") {
                return Err("no table after the `## Layers` heading".into());
            }
            continue;
        }
        rows_seen += 1;
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        if rows_seen == 1 || cells.iter().all(|c| c.chars().all(|ch| matches!(ch, '-' | ':' | ' '))) {
            continue; // the header and the separator
        }
        let (Some(name), Some(path)) = (
            cells.first().and_then(|c| first_code_span(c)),
            cells.get(1).and_then(|c| first_code_span(c)),
        ) else {
            return Err(format!(
                "line {}: a row needs `layer` and `path` in its first two cells",
                i + 1
            ));
        };
        let layer = match table.layers.iter().position(|l| l.name == name) {
            Some(l) => l,
            None => {
                table.layers.push(Layer {
                    name: name.to_owned(),
                    modules: Vec::new(),
                });
                table.layers.len() - 1
            }
        };
        let top = path.trim_end_matches('/');
        let module = top.strip_suffix(".rs").unwrap_or(top);
        if !module.contains('/') && module != "lib" && module != "main" {
            table.layers[layer].modules.push(module.to_owned());
        }
        table.rows.push(Row {
            path: path.to_owned(),
            layer,
        });
    }
    if table.rows.is_empty() {
        return Err("the `## Layers` table has no rows".into());
    }
    Ok(table)
}

/// The text of the first `` `code span` `` in a table cell.
fn first_code_span(cell: &str) -> Option<&str> {
    cell.split('`').nth(1).map(str::trim).filter(|s| !s.is_empty())
}

/// Collects the `.rs` files under `dir`, as `/`-separated paths relative to `root`.
fn rust_files(root: &Path, dir: &Path, out: &mut Vec<String>) -> std::io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let path: PathBuf = entry?.path();
        if path.is_dir() {
            rust_files(root, &path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path.strip_prefix(root).unwrap_or(&path);
            let parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            out.push(parts.join("/"));
        }
    }
    Ok(())
}

/// Whether the README writes the path `rel` on its own: not as the tail of
/// a longer path (`preload/cli.rs` does not name `cli.rs`), though `src/rel`
/// does.
fn mentions(text: &str, rel: &str) -> bool {
    let path_char = |c: char| c.is_alphanumeric() || matches!(c, '_' | '.' | '/' | '-');
    text.match_indices(rel).any(|(at, _)| {
        let before = &text[..at];
        let after = text[at + rel.len()..].chars().next();
        let starts = before.chars().next_back().is_none_or(|c| !path_char(c)) || before.ends_with("src/");
        starts && after.is_none_or(|c| !(c.is_alphanumeric() || c == '_'))
    })
}

/// The paths ending in `.rs` written in backticks outside fenced code blocks.
fn backticked_rs_paths(text: &str) -> Vec<String> {
    let mut paths = Vec::new();
    let mut fenced = false;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        for span in line.split('`').skip(1).step_by(2) {
            let span = span.trim();
            let plain = !span.contains(|c: char| c.is_whitespace() || c == '*' || c == ':');
            if plain && span.len() > 3 && span.ends_with(".rs") && !paths.iter().any(|p| p == span) {
                paths.push(span.to_owned());
            }
        }
    }
    paths
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// `source` with comments and the contents of string and character literals
/// replaced by spaces; line breaks are kept, so line numbers still hold.
fn code_only(source: &str) -> String {
    let s: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let blank = |out: &mut String, chars: &[char]| {
        out.extend(chars.iter().map(|&c| if c == '\n' { '\n' } else { ' ' }));
    };
    let at = |i: usize| s.get(i).copied().unwrap_or('\0');
    // Whether a token starts at `k`; a raw string's `r` may follow `b` or `c`.
    let token_start = |k: usize| k == 0 || !is_ident(s[k - 1]);
    let raw_start = |k: usize| token_start(k) || (matches!(s[k - 1], 'b' | 'c') && token_start(k - 1));
    let mut i = 0;
    while i < s.len() {
        let c = s[i];
        let end = if c == '/' && at(i + 1) == '/' {
            // Line comment (doc comments included).
            (i..s.len()).find(|&j| s[j] == '\n').unwrap_or(s.len())
        } else if c == '/' && at(i + 1) == '*' {
            // Block comment, nested.
            let (mut j, mut depth) = (i + 2, 1);
            while j < s.len() && depth > 0 {
                if s[j] == '/' && at(j + 1) == '*' {
                    depth += 1;
                    j += 1;
                } else if s[j] == '*' && at(j + 1) == '/' {
                    depth -= 1;
                    j += 1;
                }
                j += 1;
            }
            j
        } else if c == 'r' && raw_start(i) && matches!(at(i + 1), '"' | '#') {
            // Raw string r"..", r#".."#, br"..": ends at `"` and as many `#`.
            let hashes = s[i + 1..].iter().take_while(|&&h| h == '#').count();
            if at(i + 1 + hashes) != '"' {
                // A raw identifier, r#name.
                out.push(c);
                i += 1;
                continue;
            }
            let closes = |j: usize| {
                s[j] == '"'
                    && s.get(j + 1..j + 1 + hashes)
                        .is_some_and(|t| t.iter().all(|&h| h == '#'))
            };
            let j = (i + 2 + hashes..s.len()).find(|&j| closes(j)).unwrap_or(s.len());
            (j + 1 + hashes).min(s.len())
        } else if c == '"' {
            let mut j = i + 1;
            while j < s.len() && s[j] != '"' {
                j += if s[j] == '\\' { 2 } else { 1 };
            }
            (j + 1).min(s.len())
        } else if c == '\'' && at(i + 1) == '\\' {
            // Escaped character literal: '\n', '\'', '\u{..}'.
            (i + 3..s.len()).find(|&j| s[j] == '\'').map_or(s.len(), |j| j + 1)
        } else if c == '\'' && at(i + 2) == '\'' {
            i + 3
        } else {
            // Code, a lifetime or a label.
            out.push(c);
            i += 1;
            continue;
        };
        blank(&mut out, &s[i..end]);
        i = end;
    }
    out
}

/// How many `super::` steps lead from the file `rel` to the crate root:
/// `lib.rs` 0, `policy.rs` and `small/mod.rs` 1, `small/heap.rs` 2.
fn module_depth(rel: &str) -> usize {
    let parts = rel.split('/').count();
    match rel.rsplit('/').next() {
        Some("mod.rs") => parts - 1,
        _ if rel == "lib.rs" || rel == "main.rs" => 0,
        _ => parts,
    }
}

/// Every chain of at least `depth` `super::` steps in `code`, with the
/// name that follows the last step: `super::super::front::x` from
/// `small/heap.rs` gives `front`, the module it reaches at the root.
fn super_refs(code: &str, depth: usize) -> Vec<(usize, String)> {
    let s: Vec<char> = code.chars().collect();
    let at = |i: usize| s.get(i).copied().unwrap_or('\0');
    let word_at = |i: usize, w: &str| {
        (i == 0 || !is_ident(s[i - 1]))
            && w.chars().enumerate().all(|(k, c)| at(i + k) == c)
            && !is_ident(at(i + w.len()))
    };
    let path_sep = |mut i: usize| {
        while at(i).is_whitespace() {
            i += 1;
        }
        (at(i) == ':' && at(i + 1) == ':').then(|| {
            i += 2;
            while at(i).is_whitespace() {
                i += 1;
            }
            i
        })
    };
    let mut refs = Vec::new();
    let mut i = 0;
    while i < s.len() {
        if !word_at(i, "super") {
            i += 1;
            continue;
        }
        let (mut steps, mut j) = (0, i);
        while word_at(j, "super") {
            match path_sep(j + 5) {
                Some(next) => {
                    steps += 1;
                    j = next;
                }
                None => break,
            }
        }
        if steps >= depth.max(1) && (at(j).is_ascii_alphabetic() || at(j) == '_') {
            let end = (j..=s.len()).find(|&k| !is_ident(at(k))).unwrap_or(s.len());
            let line = 1 + s[..j].iter().filter(|&&c| c == '\n').count();
            refs.push((line, s[j..end].iter().collect()));
        }
        i = j.max(i + 5);
    }
    refs
}

/// Every `crate::x` in `code` (see [`code_only`]): the line of `x` and `x`
/// itself; `crate::{a, b::c}` gives `a` and `b`, over several lines if need be.
fn crate_refs(code: &str) -> Vec<(usize, String)> {
    let s: Vec<char> = code.chars().collect();
    let at = |i: usize| s.get(i).copied().unwrap_or('\0');
    let line_of = |i: usize| 1 + s[..i].iter().filter(|&&c| c == '\n').count();
    let skip_space = |mut i: usize| {
        while at(i).is_whitespace() {
            i += 1;
        }
        i
    };
    let ident_at = |i: usize| -> Option<(String, usize)> {
        if !(at(i).is_ascii_alphabetic() || at(i) == '_') {
            return None;
        }
        let end = (i..=s.len()).find(|&j| !is_ident(at(j))).unwrap_or(s.len());
        Some((s[i..end].iter().collect(), end))
    };
    let mut refs = Vec::new();
    let mut i = 0;
    while i + 5 <= s.len() {
        let word = (i == 0 || !is_ident(s[i - 1])) && s[i..i + 5].iter().copied().eq("crate".chars());
        if !word || is_ident(at(i + 5)) {
            i += 1;
            continue;
        }
        let mut j = skip_space(i + 5);
        if !(at(j) == ':' && at(j + 1) == ':') {
            i += 5;
            continue;
        }
        j = skip_space(j + 2);
        if let Some((name, _)) = ident_at(j) {
            refs.push((line_of(j), name));
        } else if at(j) == '{' {
            // A braced list: the first name of each item at depth 1.
            let (mut depth, mut item_start) = (1, true);
            j += 1;
            while j < s.len() && depth > 0 {
                match s[j] {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 1 => item_start = true,
                    c if c.is_whitespace() => {}
                    _ if depth == 1 && item_start => {
                        item_start = false;
                        if let Some((name, end)) = ident_at(j) {
                            if name != "self" {
                                refs.push((line_of(j), name));
                            }
                            j = end;
                            continue;
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
        }
        i = j.max(i + 5);
    }
    refs
}
