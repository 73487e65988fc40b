//! Fatal reports: a broken allocator invariant or a detected misuse is
//! written to stderr in one line and the process aborts — never an unwind,
//! never an allocation (the allocator may be the one that is broken).
//!
//! [`invariant!`] checks a structural invariant in debug builds (and so in
//! the Miri, loom, fuzz and soak runs, which build with debug assertions);
//! release builds compile it away. Each structure has a `check()` that uses
//! it, in the spirit of mimalloc's `mi_page_is_valid`, called where the
//! structure can break.

/// A fixed-capacity text buffer on the stack, for reports written without
/// allocating; what does not fit is dropped.
pub(crate) struct Fixed<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> Fixed<N> {
    pub(crate) const fn new() -> Self {
        Self { buf: [0; N], len: 0 }
    }
    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[])
    }
    pub(crate) fn as_str(&self) -> &str {
        core::str::from_utf8(self.as_bytes()).unwrap_or("")
    }
}

impl<const N: usize> core::fmt::Write for Fixed<N> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for &b in s.as_bytes() {
            if self.len < N {
                self.buf[self.len] = b;
                self.len += 1;
            }
        }
        Ok(())
    }
}

/// Writes `nalloc: WHAT at 0xADDR` to stderr and aborts.
#[cold]
#[inline(never)]
pub(crate) fn fail(what: &str, addr: usize) -> ! {
    let mut buf = [0u8; 200];
    let mut n = 0;
    for &b in b"nalloc: ".iter().chain(what.as_bytes()).chain(b" at 0x") {
        if n < buf.len() {
            buf[n] = b;
            n += 1;
        }
    }
    let digits = (usize::BITS as usize / 4) - (addr.leading_zeros() as usize / 4).min(usize::BITS as usize / 4 - 1);
    for i in (0..digits).rev() {
        let d = (addr >> (i * 4)) & 0xF;
        if n < buf.len() {
            buf[n] = b"0123456789abcdef"[d];
            n += 1;
        }
    }
    if n < buf.len() {
        buf[n] = b'\n';
        n += 1;
    }
    crate::os::write_stderr(&buf[..n]);
    std::process::abort()
}

/// In debug builds: if `cond` is false, reports `invariant broken: WHAT`
/// for the structure at `addr` and aborts. Nothing in release
/// builds (the condition is not evaluated).
macro_rules! invariant {
    ($cond:expr, $what:literal, $addr:expr) => {
        if cfg!(debug_assertions) && !$cond {
            $crate::base::check::fail(concat!("invariant broken: ", $what), $addr)
        }
    };
}
pub(crate) use invariant;
