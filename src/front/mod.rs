//! Layer `front`: the entry points. `NAlloc` and its `GlobalAlloc` impl
//! (`global`), the C front without layouts (`raw`), both on the one route
//! that holds every routing policy (`route`), and start-up and `fork`
//! (`lifecycle`).

pub(crate) mod global;
pub(crate) mod lifecycle;
pub mod raw;
pub(crate) mod route;
