//! Shared by the fuzz targets: input decoding, block patterns and the live
//! block model (non-overlap, alignment, contents).
#![allow(dead_code)]

/// Decodes the fuzzer's bytes; reads past the end yield `None`, which ends
/// the op sequence.
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Input { data }
    }

    pub fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.data.split_first()?;
        self.data = rest;
        Some(b)
    }

    pub fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes([self.byte()?, self.byte()?]))
    }

    pub fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes([
            self.byte()?,
            self.byte()?,
            self.byte()?,
            self.byte()?,
        ]))
    }

    /// An index below `n` (`n > 0`).
    pub fn index(&mut self, n: usize) -> Option<usize> {
        Some(self.u16()? as usize % n)
    }

    /// A request size, skewed towards the interesting ones: tiny, size-class
    /// edges, the small/large boundary (64 KiB), spans up to ~2.5 MiB
    /// (`max_large` caps the biggest tier).
    pub fn size(&mut self, max_large: usize) -> Option<usize> {
        const EDGES: [usize; 24] = [
            0,
            1,
            15,
            16,
            17,
            127,
            128,
            129,
            1023,
            1024,
            1025,
            4095,
            4096,
            4097,
            40_960,
            65_535,
            65_536,
            65_537,
            81_920,
            81_921,
            (2 << 20) - 1,
            2 << 20,
            (2 << 20) + 1,
            (2 << 20) + (1 << 19),
        ];
        Some(match self.byte()? % 16 {
            0..=6 => self.byte()? as usize,
            7..=10 => self.u16()? as usize + 1,
            11..=12 => self.u32()? as usize % (512 << 10),
            13 => self.u32()? as usize % max_large.max(1),
            _ => EDGES[self.byte()? as usize % EDGES.len()].min(max_large),
        })
    }

    /// A power-of-two alignment: mostly 1..=16, often up to 64 KiB, rarely
    /// 128 KiB ..= `max_align`.
    pub fn align(&mut self, max_align: usize) -> Option<usize> {
        let b = self.byte()?;
        let a = match b % 8 {
            0..=4 => 1usize << (b / 8 % 5),
            5..=6 => 1usize << (b / 8 % 17),
            _ => 1usize << (17 + b / 8 % 6),
        };
        Some(a.min(max_align))
    }
}

/// The pattern byte at offset `i` of a block filled with `seed`.
#[inline]
pub fn pat(seed: u32, i: usize) -> u8 {
    (seed as usize ^ (i >> 8)).wrapping_mul(0x9E37).wrapping_add(i) as u8
}

/// Blocks up to this size are filled and checked byte by byte; larger ones
/// at their first and last 4 KiB and at one byte per 4 KiB page.
const FULL: usize = 64 << 10;

/// Calls `f` with every offset of `[0, len)` that is filled and checked.
#[inline]
pub fn for_each_offset(len: usize, mut f: impl FnMut(usize)) {
    if len <= FULL {
        (0..len).for_each(f);
        return;
    }
    (0..4096).for_each(&mut f);
    let mut i = 4096 + 123;
    while i < len - 4096 {
        f(i);
        i += 4096;
    }
    (len - 4096..len).for_each(f);
}

/// Writes the pattern of `seed` over `[p, p + len)` (sampled when large).
pub fn fill(p: *mut u8, len: usize, seed: u32) {
    for_each_offset(len, |i| {
        // SAFETY: callers pass a live block of at least `len` bytes.
        unsafe { p.add(i).write(pat(seed, i)) }
    });
}

/// First offset below `upto` where the pattern of `seed` (written over
/// `len` bytes) is not intact.
pub fn check(p: *const u8, len: usize, upto: usize, seed: u32) -> Option<usize> {
    let mut bad = None;
    for_each_offset(len, |i| {
        // SAFETY: callers pass a live block of at least `upto` bytes.
        if bad.is_none() && i < upto && unsafe { p.add(i).read() } != pat(seed, i) {
            bad = Some(i);
        }
    });
    bad
}

/// First non-zero offset of `[p, p + len)`: every byte up to 1 MiB, sampled
/// beyond.
pub fn first_nonzero(p: *const u8, len: usize) -> Option<usize> {
    if len <= 1 << 20 {
        // SAFETY: callers pass a live block of at least `len` bytes.
        let s = unsafe { core::slice::from_raw_parts(p, len) };
        return s.iter().position(|&b| b != 0);
    }
    let mut bad = None;
    for_each_offset(len, |i| {
        // SAFETY: as above.
        if bad.is_none() && unsafe { p.add(i).read() } != 0 {
            bad = Some(i);
        }
    });
    bad
}

/// A live block of the model.
#[derive(Clone, Copy, Debug)]
pub struct Blk {
    pub p: *mut u8,
    /// Requested size.
    pub size: usize,
    /// Bytes the block really covers (≥ `size`; callers give real blocks
    /// of size 0 a span of 1 so that they take part in the overlap check).
    pub span: usize,
    pub align: usize,
    pub seed: u32,
}

/// The live blocks of one allocator under test.
#[derive(Default)]
pub struct Model {
    pub live: Vec<Blk>,
    next_seed: u32,
}

impl Model {
    /// Records a fresh block after checking it against every live one;
    /// fills it with a new pattern (unless `keep_contents`).
    pub fn add(&mut self, what: &str, p: *mut u8, size: usize, span: usize, align: usize) -> Blk {
        assert!(!p.is_null(), "{what}: null for size {size} align {align}");
        assert_eq!(
            p.addr() % align,
            0,
            "{what}: {p:?} not aligned to {align} (size {size})"
        );
        let (lo, hi) = (p.addr(), p.addr() + span);
        for b in &self.live {
            let (blo, bhi) = (b.p.addr(), b.p.addr() + b.span);
            assert!(
                hi <= blo || bhi <= lo,
                "{what}: new block {lo:#x}..{hi:#x} (size {size}) overlaps live {blo:#x}..{bhi:#x} (size {})",
                b.size
            );
        }
        self.next_seed = self.next_seed.wrapping_add(0x9E37_79B9);
        let blk = Blk {
            p,
            size,
            span,
            align,
            seed: self.next_seed,
        };
        fill(p, size, blk.seed);
        self.live.push(blk);
        blk
    }

    /// Removes and returns a live block, checking its contents.
    pub fn take(&mut self, what: &str, i: usize) -> Blk {
        let b = self.live.swap_remove(i);
        self.verify(what, &b);
        b
    }

    /// Checks a block's pattern.
    pub fn verify(&self, what: &str, b: &Blk) {
        if let Some(off) = check(b.p, b.size, b.size, b.seed) {
            panic!("{what}: block {:?} (size {}) corrupted at offset {off}", b.p, b.size);
        }
    }
}
