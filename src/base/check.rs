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
    report(what, addr, None)
}

/// Writes `nalloc: WHAT at 0xADDR (SIZE bytes)` to stderr and aborts: a
/// misuse of a block whose size the report should name.
#[cold]
#[inline(never)]
pub(crate) fn fail_block(what: &str, addr: usize, size: usize) -> ! {
    report(what, addr, Some(size))
}

fn report(what: &str, addr: usize, size: Option<usize>) -> ! {
    let mut line = Line { buf: [0; 200], len: 0 };
    line.push(b"nalloc: ");
    line.push(what.as_bytes());
    line.push(b" at 0x");
    line.number(addr, 16);
    if let Some(size) = size {
        line.push(b" (");
        line.number(size, 10);
        line.push(b" bytes)");
    }
    line.push(b"\n");
    crate::os::write_stderr(&line.buf[..line.len]);
    std::process::abort()
}

/// A report line built on the stack (nothing here may allocate).
struct Line {
    buf: [u8; 200],
    len: usize,
}

impl Line {
    fn push(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if self.len < self.buf.len() {
                self.buf[self.len] = b;
                self.len += 1;
            }
        }
    }

    fn number(&mut self, mut v: usize, radix: usize) {
        let mut digits = [0u8; 64];
        let mut n = 0;
        loop {
            digits[n] = b"0123456789abcdef"[v % radix];
            n += 1;
            v /= radix;
            if v == 0 {
                break;
            }
        }
        digits[..n].reverse();
        self.push(&digits[..n]);
    }
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
