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
}

/// The baseline every ratio is computed against.
pub const BASELINE: &str = "glibc";

/// All allocators, in report order.
pub const ALLOCATORS: &[AllocatorInfo] = &[
    AllocatorInfo {
        name: "nalloc",
        worker_bin: "nalloc-bench-worker-nalloc",
        description: "zk_nalloc::NAlloc (this crate's allocator)",
    },
    AllocatorInfo {
        name: "glibc",
        worker_bin: "nalloc-bench-worker-glibc",
        description: "std::alloc::System (glibc malloc), the baseline",
    },
    AllocatorInfo {
        name: "mimalloc",
        worker_bin: "nalloc-bench-worker-mimalloc",
        description: "mimalloc crate (Microsoft mimalloc)",
    },
    AllocatorInfo {
        name: "jemalloc",
        worker_bin: "nalloc-bench-worker-jemalloc",
        description: "tikv-jemallocator crate (jemalloc)",
    },
];

/// Looks an allocator up by name.
pub fn find(name: &str) -> Option<&'static AllocatorInfo> {
    ALLOCATORS.iter().find(|a| a.name == name)
}
