//! Layer `arenas`: the memory kinds no general-purpose allocator offers.
//! Witness memory — guard-fenced, locked, dump-excluded, wiped chunks
//! (`witness`) and the owned secret containers on it (`secret`), with
//! `Zeroable` for prover crates' field types (`fields`, optional features);
//! polynomial memory with huge-page placement and reporting over the plain
//! engine (`polynomial`); scratch memory with an O(1), borrow-checked reset
//! (`scratch`).

pub(crate) mod fields;
pub(crate) mod polynomial;
pub(crate) mod scratch;
pub(crate) mod secret;
pub(crate) mod witness;
