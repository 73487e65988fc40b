//! Start-up and the process events that reach the allocator from outside:
//! first use and `fork`. (Thread exit is the small layer's own: it hands
//! `heap::thread_exit` to the OS layer when it starts, see `small::ensure_init`.)
//!
//! The fork handlers take every process-wide allocator lock in one fixed
//! order, so that no other thread holds one at the moment of the fork, and
//! release them in both processes afterwards. They are private and
//! `unsafe`: only `pthread_atfork` calls them, through the OS layer, which
//! receives them here rather than naming this module. Safe code cannot
//! reach them:
//!
//! ```compile_fail,E0425
//! zk_nalloc::raw::fork_prepare(); // gone: no safe door into the locks
//! ```

use core::sync::atomic::{AtomicBool, Ordering};

use crate::arenas::witness;
use crate::base::phase;
use crate::mem::pool;
use crate::os;
use crate::small::{self, heap, segment};

/// Set once [`ensure_init`] has completed.
static READY: AtomicBool = AtomicBool::new(false);

/// Set in a process made by `fork` (after the engine started): its witness
/// memory inherited from the parent reads as zero.
static FORKED: AtomicBool = AtomicBool::new(false);

/// True in a child process of `fork` (see [`FORKED`]).
pub(crate) fn forked() -> bool {
    FORKED.load(Ordering::Relaxed)
}

/// Makes the engine ready for use: the small layer's start-up (settings,
/// hardened mode, the thread-exit hook) and the fork handlers. Called on the
/// front's slow paths; once done it costs one relaxed load.
#[inline]
pub(crate) fn ensure_init() {
    if !READY.load(Ordering::Relaxed) {
        init_slow();
    }
}

#[cold]
#[inline(never)]
fn init_slow() {
    small::ensure_init();
    // After the engine's start-up: registering may allocate (through us,
    // when we are the process's malloc), and that nested call must find the
    // engine ready. The OS layer registers once per process.
    os::register_fork_handlers(fork_prepare, fork_parent, fork_child);
    READY.store(true, Ordering::Release);
    // After READY: `atexit` may allocate through us.
    super::phase::register_exit_report();
}

/// `pthread_atfork` *prepare* handler: takes every process-wide allocator
/// lock, in the order the slow paths nest them.
///
/// # Safety
/// Only as the prepare handler of `fork`, paired with [`fork_parent`] and
/// [`fork_child`]: the locks stay held until one of them runs.
unsafe extern "C" fn fork_prepare() {
    heap::fork_lock();
    segment::fork_lock();
    pool::fork_lock();
    witness::fork_lock();
    phase::fork_lock();
}

/// `pthread_atfork` *parent* handler: releases what [`fork_prepare`] took.
///
/// # Safety
/// Only right after [`fork_prepare`] ran in this process.
unsafe extern "C" fn fork_parent() {
    // SAFETY: caller contract: `fork_prepare` took the locks.
    unsafe { release_all() }
}

/// `pthread_atfork` *child* handler: releases what [`fork_prepare`] took (the
/// child has one thread, ours, which holds them all).
///
/// # Safety
/// Only in the child of a `fork` whose prepare handler was [`fork_prepare`].
unsafe extern "C" fn fork_child() {
    FORKED.store(true, Ordering::Relaxed);
    // SAFETY: caller contract: the child inherited the held locks.
    unsafe { release_all() }
}

/// # Safety
/// The caller holds every lock [`fork_prepare`] takes.
unsafe fn release_all() {
    // SAFETY: caller contract, in the reverse order of taking.
    unsafe {
        phase::fork_unlock();
        witness::fork_unlock();
        pool::fork_unlock();
        segment::fork_unlock();
        heap::fork_unlock();
    }
}
