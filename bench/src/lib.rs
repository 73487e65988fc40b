//! `nalloc-bench`: benchmark suite comparing `zk-nalloc` with glibc malloc,
//! mimalloc and jemalloc.
//!
//! The crate has two halves:
//!
//! * **Workers** (`nalloc-bench-worker-<allocator>` binaries): each is a tiny
//!   `main` that installs one allocator as `#[global_allocator]` and calls
//!   [`worker_main`]. A worker runs exactly one [workload](workloads) and
//!   prints one machine-readable [`WorkerResult`](result::WorkerResult) line.
//! * **Runner** (`nalloc-bench` binary, [`runner`]): builds the workers if
//!   needed, launches each (workload, allocator) pair in a fresh process
//!   several times in round-robin order, collects wall time, per-phase times,
//!   peak RSS and page faults, and writes a table, JSON and an SVG chart
//!   ([`report`]).
//!
//! `src/README.md` maps every source file and gives the layers its modules
//! keep: imports between them go one way (checked by `tests/layers.rs`).

#![warn(missing_docs)]

pub mod allocators;
pub mod block;
pub mod cli;
pub mod cmd;
pub mod preload;
pub mod report;
pub mod result;
pub mod rng;
pub mod runner;
pub mod worker;
pub mod workloads;

pub use worker::worker_main;
