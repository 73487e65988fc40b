//! Layer `mem`: address space and large blocks. Reserved ranges cut into
//! slots (`region`: segments, witness chunks), large blocks mapped from the
//! OS with class-rounded lengths, huge-page advice and `mremap` growth
//! (`span`), and the warm pool of freed spans that coalesces neighbours and
//! serves best-fit cuts within a cap (`pool`), and the memory budget that
//! every new commitment asks first (`budget`).

pub(crate) mod budget;
pub(crate) mod pool;
pub(crate) mod region;
pub(crate) mod span;
