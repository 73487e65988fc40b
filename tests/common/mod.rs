//! Helpers shared by the integration tests (Linux /proc readers, PRNG).
#![allow(dead_code)]

/// Resident set size of this process in bytes.
pub fn rss() -> usize {
    let s = std::fs::read_to_string("/proc/self/statm").expect("statm");
    let pages: usize = s.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// Minor page faults of this process so far.
pub fn minor_faults() -> u64 {
    let s = std::fs::read_to_string("/proc/self/stat").expect("stat");
    // Fields after the parenthesised command name; minflt is field 10.
    let rest = &s[s.rfind(')').unwrap() + 2..];
    rest.split_whitespace().nth(7).unwrap().parse().unwrap()
}

/// xorshift64*: deterministic, allocation-free randomness.
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Fills a block with a pattern derived from `seed`.
pub fn fill(p: *mut u8, len: usize, seed: u64) {
    for i in 0..len {
        // SAFETY: callers pass blocks of at least `len` bytes.
        unsafe { *p.add(i) = (seed as usize).wrapping_mul(31).wrapping_add(i) as u8 };
    }
}

/// Checks the pattern written by `fill`.
pub fn check(p: *const u8, len: usize, seed: u64) -> bool {
    (0..len).all(|i| {
        // SAFETY: as in `fill`.
        unsafe { *p.add(i) == (seed as usize).wrapping_mul(31).wrapping_add(i) as u8 }
    })
}
