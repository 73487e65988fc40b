//! Layer `front`: the entry points. `NAlloc` and its `GlobalAlloc` impl
//! (`global`), the C front without layouts (`raw`), both on the one route
//! that holds every routing policy (`route`), start-up and `fork`
//! (`lifecycle`), and proof phases (`phase`).

pub(crate) mod global;
pub(crate) mod lifecycle;
pub(crate) mod phase;
pub mod raw;
pub(crate) mod route;
