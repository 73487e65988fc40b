//! Run-time policy: huge pages and the warm pool cap.
//!
//! Defaults can be overridden by environment variables, read once — without
//! allocating — when the first heap is created, and by `NAlloc` setters at
//! any time:
//!
//! * `NALLOC_HUGE_PAGES` = `auto` (default) | `on` | `off` | `explicit`
//! * `NALLOC_POOL_CAP` = bytes kept warm, with optional `K`/`M`/`G` suffix
//! * `NALLOC_PURGE_DELAY` = milliseconds a free small-object page slot is
//!   kept before its memory goes back to the OS (default 5), or `never`
//! * `NALLOC_WITNESS_LOCK` = `best-effort` (default) | `require`: what
//!   witness memory does when the OS refuses to lock it in RAM

use core::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};

use crate::base::once::Once;

/// When spans are backed by transparent huge pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HugePages {
    /// Ask for huge pages on spans of 32 MiB and more — FFT/NTT vectors,
    /// where fewer page faults and TLB misses clearly pay for the at most
    /// 2 MiB of rounding (< 7 %).
    Auto,
    /// Ask for huge pages on every span of 2 MiB and more.
    On,
    /// Explicit 2 MiB pages (`MAP_HUGETLB`, from the kernel's pre-reserved
    /// pool, `vm.nr_hugepages`) for spans of 2 MiB and more; where the pool
    /// is empty or the platform has none, transparent huge pages as with
    /// `On`.
    Explicit,
    /// Never use huge pages for spans, even where the system default
    /// (`/sys/kernel/mm/transparent_hugepage/enabled = always`) would.
    Off,
}

impl HugePages {
    const fn to_u8(self) -> u8 {
        match self {
            HugePages::Auto => 0,
            HugePages::On => 1,
            HugePages::Off => 2,
            HugePages::Explicit => 3,
        }
    }
    const fn from_u8(v: u8) -> Self {
        match v {
            1 => HugePages::On,
            2 => HugePages::Off,
            3 => HugePages::Explicit,
            _ => HugePages::Auto,
        }
    }
}

/// Default cap of the warm span pool, from the policy table: a fraction of
/// physical memory within bounds, enough to keep a prover's largest
/// per-proof vectors warm on a 16 GiB machine (see
/// docs/design/spans-and-warm-pool.md).
fn default_pool_cap() -> usize {
    use crate::policy::{POOL_CAP_DIVISOR, POOL_CAP_MAX, POOL_CAP_MIN, POOL_CAP_UNKNOWN};
    let phys = crate::os::physical_memory();
    if phys == 0 {
        POOL_CAP_UNKNOWN
    } else {
        (phys / POOL_CAP_DIVISOR).clamp(POOL_CAP_MIN, POOL_CAP_MAX)
    }
}

/// What witness memory does when the OS refuses to lock it in RAM (`mlock`
/// fails: `RLIMIT_MEMLOCK` is 8 MiB on many distributions, 64 KiB in some
/// containers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WitnessLock {
    /// Hand the memory out anyway; `stats().witness.locked` turns false and
    /// one notice goes to stderr (the default).
    BestEffort,
    /// Refuse: the witness allocation returns null (so `SecretBox::try_new`
    /// and `Vec::try_reserve` fail and other paths call
    /// `handle_alloc_error`) rather than hand out memory that may be
    /// swapped.
    Require,
}

static HUGE: AtomicU8 = AtomicU8::new(0);
/// 0: best effort, 1: require.
static WITNESS_LOCK: AtomicU8 = AtomicU8::new(0);
/// The purge delay in microseconds; `u64::MAX`: never purge.
static PURGE_DELAY_US: AtomicU64 = AtomicU64::new(crate::policy::PURGE_DELAY_US);
static POOL_CAP: AtomicUsize = AtomicUsize::new(usize::MAX);
static INIT: Once = Once::new();

/// Reads the environment once. Lock-free: a thread that loses the race waits
/// for the winner, which never allocates and so cannot wait on anyone.
#[cold]
pub(crate) fn ensure_init() {
    INIT.call(|| {
        let mut buf = [0u8; 32];
        if let Some(n) = crate::os::env_var(b"NALLOC_HUGE_PAGES", &mut buf) {
            if let Some(p) = parse_huge(&buf[..n]) {
                HUGE.store(p.to_u8(), Ordering::Relaxed);
            }
        }
        let cap = crate::os::env_var(b"NALLOC_POOL_CAP", &mut buf)
            .and_then(|n| parse_bytes(&buf[..n]))
            .unwrap_or_else(default_pool_cap);
        if let Some(d) = crate::os::env_var(b"NALLOC_PURGE_DELAY", &mut buf).and_then(|n| parse_delay(&buf[..n])) {
            PURGE_DELAY_US.store(d, Ordering::Relaxed);
        }
        if let Some(n) = crate::os::env_var(b"NALLOC_WITNESS_LOCK", &mut buf) {
            match parse_witness_lock(&buf[..n]) {
                Some(l) => set_witness_lock(l),
                None => crate::os::write_stderr(
                    b"nalloc: NALLOC_WITNESS_LOCK: expected `require` or `best-effort`; using best-effort\n",
                ),
            }
        }
        // A setter may have run before the first allocation: keep its value.
        let _ = POOL_CAP.compare_exchange(usize::MAX, cap, Ordering::Relaxed, Ordering::Relaxed);
    });
}

/// The huge-page policy in force.
pub(crate) fn huge_pages() -> HugePages {
    HugePages::from_u8(HUGE.load(Ordering::Relaxed))
}

pub(crate) fn set_huge_pages(p: HugePages) {
    HUGE.store(p.to_u8(), Ordering::Relaxed);
}

/// The warm pool cap in force.
pub(crate) fn pool_cap() -> usize {
    ensure_init();
    POOL_CAP.load(Ordering::Relaxed)
}

pub(crate) fn set_pool_cap(bytes: usize) {
    POOL_CAP.store(bytes.min(usize::MAX - 1), Ordering::Relaxed);
}

/// How long a free page slot waits before it is purged, in microseconds
/// (`u64::MAX`: never).
pub(crate) fn purge_delay_us() -> u64 {
    PURGE_DELAY_US.load(Ordering::Relaxed)
}

pub(crate) fn set_purge_delay_us(us: u64) {
    PURGE_DELAY_US.store(us, Ordering::Relaxed);
}

/// The witness locking policy in force.
pub(crate) fn witness_lock() -> WitnessLock {
    ensure_init();
    if WITNESS_LOCK.load(Ordering::Relaxed) == 1 {
        WitnessLock::Require
    } else {
        WitnessLock::BestEffort
    }
}

pub(crate) fn set_witness_lock(l: WitnessLock) {
    WITNESS_LOCK.store(u8::from(l == WitnessLock::Require), Ordering::Relaxed);
}

/// `require` / `best-effort` (also `strict`, `1` / `0`).
pub(crate) fn parse_witness_lock(s: &[u8]) -> Option<WitnessLock> {
    match s {
        b"require" | b"strict" | b"1" => Some(WitnessLock::Require),
        b"best-effort" | b"0" => Some(WitnessLock::BestEffort),
        _ => None,
    }
}

/// Milliseconds (`0`, `5`, `250`) or `never` / `off`, as microseconds.
pub(crate) fn parse_delay(s: &[u8]) -> Option<u64> {
    if s == b"never" || s == b"off" {
        return Some(u64::MAX);
    }
    let ms = parse_bytes(s).filter(|_| s.iter().all(u8::is_ascii_digit))?;
    (ms as u64).checked_mul(1000)
}

/// `auto` / `on` / `off` / `explicit` (also `1`/`0`, `always`/`never`,
/// `hugetlb`).
pub(crate) fn parse_huge(s: &[u8]) -> Option<HugePages> {
    match s {
        b"auto" => Some(HugePages::Auto),
        b"on" | b"1" | b"always" => Some(HugePages::On),
        b"off" | b"0" | b"never" => Some(HugePages::Off),
        b"explicit" | b"hugetlb" => Some(HugePages::Explicit),
        _ => None,
    }
}

/// `123`, `64K`, `512M`, `2G` (case-insensitive suffix).
pub(crate) fn parse_bytes(s: &[u8]) -> Option<usize> {
    let (digits, mul) = match s.last()? {
        b'k' | b'K' => (&s[..s.len() - 1], 1usize << 10),
        b'm' | b'M' => (&s[..s.len() - 1], 1 << 20),
        b'g' | b'G' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    if digits.is_empty() {
        return None;
    }
    let mut v = 0usize;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((c - b'0') as usize)?;
    }
    v.checked_mul(mul)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sizes_and_policies() {
        assert_eq!(parse_bytes(b"64K"), Some(64 << 10));
        assert_eq!(parse_bytes(b"2g"), Some(2 << 30));
        assert_eq!(parse_bytes(b"17"), Some(17));
        assert_eq!(parse_bytes(b""), None);
        assert_eq!(parse_bytes(b"M"), None);
        assert_eq!(parse_bytes(b"1x"), None);
        assert_eq!(parse_bytes(b"99999999999999999999G"), None);
        assert_eq!(parse_delay(b"5"), Some(5_000));
        assert_eq!(parse_delay(b"0"), Some(0));
        assert_eq!(parse_delay(b"never"), Some(u64::MAX));
        assert_eq!(parse_delay(b"5ms"), None);
        assert_eq!(parse_delay(b"5K"), None);
        assert_eq!(parse_delay(b""), None);
        assert_eq!(parse_huge(b"on"), Some(HugePages::On));
        assert_eq!(parse_huge(b"off"), Some(HugePages::Off));
        assert_eq!(parse_huge(b"auto"), Some(HugePages::Auto));
        assert_eq!(parse_huge(b"explicit"), Some(HugePages::Explicit));
        assert_eq!(parse_huge(b"maybe"), None);
        assert_eq!(parse_witness_lock(b"require"), Some(WitnessLock::Require));
        assert_eq!(parse_witness_lock(b"best-effort"), Some(WitnessLock::BestEffort));
        assert_eq!(parse_witness_lock(b"yes"), None);
    }
}
