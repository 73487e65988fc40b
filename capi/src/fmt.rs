//! Formatting into a fixed stack buffer and writing it with `write(2)`:
//! usable at exit, from `fork` children and anywhere allocation is unwelcome.

use core::fmt;

/// A fixed-capacity text buffer; what does not fit is dropped silently.
pub(crate) struct StackBuf<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> StackBuf<N> {
    /// An empty buffer.
    pub(crate) const fn new() -> Self {
        Self { buf: [0; N], len: 0 }
    }

    /// The bytes written so far.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[])
    }

    /// Writes the contents to file descriptor `fd`, retrying short writes
    /// and `EINTR`; other errors are ignored (there is nobody to tell).
    pub(crate) fn write_to_fd(&self, fd: libc::c_int) {
        let mut rest = self.as_bytes();
        while !rest.is_empty() {
            // SAFETY: `rest` is a valid, initialised byte slice.
            let n = unsafe { libc::write(fd, rest.as_ptr().cast(), rest.len()) };
            if n < 0 {
                if crate::errno() == libc::EINTR {
                    continue;
                }
                return;
            }
            if n == 0 {
                return;
            }
            rest = rest.get(n as usize..).unwrap_or(&[]);
        }
    }
}

impl<const N: usize> fmt::Write for StackBuf<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = N - self.len;
        let take = s.len().min(room);
        if let (Some(dst), Some(src)) = (self.buf.get_mut(self.len..self.len + take), s.as_bytes().get(..take)) {
            dst.copy_from_slice(src);
            self.len += take;
        }
        Ok(())
    }
}
