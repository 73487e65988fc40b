//! The allocators compared, one worker binary each.

/// An allocator under test.
#[derive(Clone, Copy, Debug)]
pub struct AllocatorInfo {
    /// Short name used on the command line and in reports.
    pub name: &'static str,
    /// File name (without extension) of its worker binary.
    pub worker_bin: &'static str,
    /// One-line description.
    pub description: &'static str,
    /// The `nalloc-bench` cargo feature its worker is built with, if any.
    ///
    /// Such a worker comes from a cargo invocation of its own
    /// (`--features <feature> --bin <worker_bin>`) into the target directory
    /// `<target>/<feature>`, so that feature unification never turns the
    /// feature on for the other workers or for `cargo test --workspace`.
    pub feature: Option<&'static str>,
    /// Runs only when named with `--allocator`, not in the default selection.
    pub opt_in: bool,
    /// Its fixed color in the SVG chart, so charts of different selections match.
    pub color: &'static str,
}

/// The baseline every ratio is computed against.
pub const BASELINE: &str = "glibc";

/// All allocators, in report order.
pub const ALLOCATORS: &[AllocatorInfo] = &[
    AllocatorInfo {
        name: "nalloc",
        worker_bin: "nalloc-bench-worker-nalloc",
        description: "zk_nalloc::NAlloc (this crate's allocator)",
        feature: None,
        opt_in: false,
        color: "#d62728",
    },
    AllocatorInfo {
        name: "nalloc-hardened",
        worker_bin: "nalloc-bench-worker-nalloc",
        description: "zk_nalloc::NAlloc built with feature `hardened` (misuse detection), to measure its cost; \
                      its worker is built into <target>/hardened",
        feature: Some("hardened"),
        opt_in: true,
        color: "#ff9896",
    },
    AllocatorInfo {
        name: "glibc",
        worker_bin: "nalloc-bench-worker-glibc",
        description: "std::alloc::System (glibc malloc), the baseline",
        feature: None,
        opt_in: false,
        color: "#7f7f7f",
    },
    AllocatorInfo {
        name: "mimalloc",
        worker_bin: "nalloc-bench-worker-mimalloc",
        description: "mimalloc crate (Microsoft mimalloc)",
        feature: None,
        opt_in: false,
        color: "#1f77b4",
    },
    AllocatorInfo {
        name: "jemalloc",
        worker_bin: "nalloc-bench-worker-jemalloc",
        description: "tikv-jemallocator crate (jemalloc)",
        feature: None,
        opt_in: false,
        color: "#2ca02c",
    },
];

/// Looks an allocator up by name.
pub fn find(name: &str) -> Option<&'static AllocatorInfo> {
    ALLOCATORS.iter().find(|a| a.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_colors_unique() {
        for (i, a) in ALLOCATORS.iter().enumerate() {
            for o in &ALLOCATORS[i + 1..] {
                assert_ne!(a.name, o.name);
                assert_ne!(a.color, o.color, "{} and {} share a color", a.name, o.name);
            }
        }
        assert!(find(BASELINE).is_some_and(|a| !a.opt_in && a.feature.is_none()));
    }

    #[test]
    fn hardened_is_an_opt_in_feature_build_of_the_nalloc_worker() {
        let h = find("nalloc-hardened").expect("nalloc-hardened");
        assert!(h.opt_in);
        assert_eq!(h.feature, Some("hardened"));
        assert_eq!(h.worker_bin, find("nalloc").expect("nalloc").worker_bin);
    }
}
