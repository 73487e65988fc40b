//! Tests of the allocator's data structures that also run under Miri
//! (`cargo +nightly miri test --lib miri_tests`), where the OS layer takes
//! its memory from `std::alloc::System`.
