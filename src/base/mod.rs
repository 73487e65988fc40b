//! Layer `base`: process-wide basics that carry no allocation policy — fatal
//! reports and debug invariant checks (`check`), per-process secret keys
//! (`key`), the
//! spin lock of the slow paths (`sync`), the lock-free once flag (`once`),
//! the slow-path counters behind `stats()` (`stats`), the run-time
//! settings read from the environment without allocating (`config`) and the
//! table of proof phases fed by counter snapshots (`phase`).

pub(crate) mod check;
pub(crate) mod config;
pub(crate) mod key;
pub(crate) mod once;
pub(crate) mod phase;
pub(crate) mod stats;
pub(crate) mod sync;
