//! The bench crate keeps the layers of `bench/src/README.md`, with the
//! workspace's checker (`tests/layering/mod.rs`, tested in `tests/layers.rs`).

#[path = "../../tests/layering/mod.rs"]
mod layering;

#[test]
fn source_tree_is_layered() {
    layering::assert_layered(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
}
