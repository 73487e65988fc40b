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
//! * `NALLOC_BUDGET` = the most bytes nalloc may commit (`12G`, `12GiB`,
//!   `800M`, plain bytes), `auto` (a fraction of the container's limit) or
//!   `off` (the default); a value it cannot read is reported on stderr in
//!   one line and ignored
//! * `NALLOC_STATS` = anything but empty or `0`: print the phase table at
//!   exit
//! * `NALLOC_FIRST_TOUCH` = `reuse` (default) | `fresh`: how span memory is
//!   made ready for first use (see [`FirstTouch`])
//!
//! At the same moment the container's memory limit is read (cgroup v2
//! `memory.max`, v1 `memory.limit_in_bytes`, see `os::memory_limit`); where
//! one is set, the pool cap derives from it instead of physical memory (see
//! docs/design/phases-and-budget.md).

use core::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};

use crate::base::once::Once;

/// When spans are backed by transparent huge pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HugePages {
    /// Ask for huge pages on spans of 32 MiB and more — FFT/NTT vectors,
    /// where fewer TLB misses pay for at most one huge page of rounding —
    /// once they are reused from the warm pool. A span's first use faults
    /// small pages, as glibc's memory does: fresh huge pages are cheap on
    /// some machines and much dearer than small ones on others (see
    /// [`FirstTouch`]; `FirstTouch::Fresh` advises on first use too).
    Auto,
    /// Ask for huge pages on every span of 2 MiB and more, from its first
    /// use.
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

/// How span memory is made ready for its first use (`NALLOC_FIRST_TOUCH`,
/// `NAlloc::set_first_touch`). Measured in docs/design/first-touch.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstTouch {
    /// Warm memory first: a span no pooled range holds is built from
    /// smaller pooled pieces (their pages moved, not faulted afresh); fresh
    /// pages are faulted in as small pages, like glibc's (huge-page advice
    /// comes when a span is reused); a recycled span asked to be zero is
    /// cleared with `memset` (a recycled span its last user barely touched
    /// is handed back to the kernel instead). Page faults on fresh memory
    /// cost several times a memset of resident memory on the machines
    /// measured.
    Reuse,
    /// Kernel-fresh pages: no pieces are moved, spans are advised for huge
    /// pages from their first use (`HugePages::Auto`), and recycled
    /// huge-page spans of 128 MiB and more are zeroed by handing them back
    /// to the kernel, so the threads that fill them fault in zero pages in
    /// parallel. For machines where huge-page faults are cheap and many
    /// threads fill each large zeroed vector.
    Fresh,
}

impl FirstTouch {
    const fn to_u8(self) -> u8 {
        match self {
            FirstTouch::Reuse => 0,
            FirstTouch::Fresh => 1,
        }
    }
    const fn from_u8(v: u8) -> Self {
        match v {
            1 => FirstTouch::Fresh,
            _ => FirstTouch::Reuse,
        }
    }
}

/// Default cap of the warm span pool, from the policy table: a fraction of
/// physical memory within bounds, enough to keep a prover's largest
/// per-proof vectors warm on a 16 GiB machine (see
/// docs/design/spans-and-warm-pool.md).
/// Inside a container with a memory limit the cap is a share of that limit
/// ([`crate::policy::POOL_CAP_CGROUP_DIVISOR`]), not of the host's memory.
fn default_pool_cap(limit: Option<usize>) -> usize {
    use crate::policy::{POOL_CAP_CGROUP_DIVISOR, POOL_CAP_DIVISOR, POOL_CAP_MAX, POOL_CAP_MIN, POOL_CAP_UNKNOWN};
    if let Some(l) = limit {
        return (l / POOL_CAP_CGROUP_DIVISOR).min(POOL_CAP_MAX);
    }
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
static FIRST_TOUCH: AtomicU8 = AtomicU8::new(0);
/// The purge delay in microseconds; `u64::MAX`: never purge.
static PURGE_DELAY_US: AtomicU64 = AtomicU64::new(crate::policy::PURGE_DELAY_US);
static POOL_CAP: AtomicUsize = AtomicUsize::new(usize::MAX);
/// The budget in bytes; `usize::MAX`: none.
static BUDGET: AtomicUsize = AtomicUsize::new(usize::MAX);
/// Set by [`set_budget`], so that start-up keeps a value set before it.
static BUDGET_SET: AtomicBool = AtomicBool::new(false);
/// The container's memory limit; 0: none.
static LIMIT: AtomicUsize = AtomicUsize::new(0);
/// `NALLOC_STATS` asked for the phase table at exit.
static STATS_AT_EXIT: AtomicBool = AtomicBool::new(false);
static INIT: Once = Once::new();

/// What `NALLOC_BUDGET` may say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BudgetSetting {
    /// No budget.
    Off,
    /// [`crate::policy::BUDGET_AUTO_PERCENT`] of the container limit (or of
    /// physical memory outside a container).
    Auto,
    /// A budget in bytes.
    Bytes(usize),
}

/// `auto`, `off` / `none` / `0`, or bytes with an optional binary suffix:
/// `K`, `M`, `G`, `T`, each also as `KB`/`KiB` (case-insensitive);
/// `12G` = `12GiB` = 12 × 2^30.
pub(crate) fn parse_budget(s: &[u8]) -> Option<BudgetSetting> {
    match s {
        b"auto" | b"AUTO" => return Some(BudgetSetting::Auto),
        b"off" | b"none" | b"0" | b"OFF" | b"NONE" => return Some(BudgetSetting::Off),
        _ => {}
    }
    let digits = s.iter().take_while(|c| c.is_ascii_digit()).count();
    let (num, unit) = s.split_at(digits);
    let shift = match unit.to_ascii_lowercase_fixed().as_slice() {
        b"" | b"b" => 0,
        b"k" | b"kb" | b"kib" => 10,
        b"m" | b"mb" | b"mib" => 20,
        b"g" | b"gb" | b"gib" => 30,
        b"t" | b"tb" | b"tib" => 40,
        _ => return None,
    };
    let v = parse_bytes(num)?;
    v.checked_mul(1usize.checked_shl(shift)?).map(BudgetSetting::Bytes)
}

/// Lower-cases a suffix of at most 3 bytes on the stack (longer: empty
/// marker that matches nothing).
trait LowerFixed {
    fn to_ascii_lowercase_fixed(&self) -> Suffix;
}

/// A lower-cased unit suffix.
struct Suffix {
    b: [u8; 3],
    n: usize,
}

impl Suffix {
    fn as_slice(&self) -> &[u8] {
        self.b.get(..self.n).unwrap_or(b"?")
    }
}

impl LowerFixed for [u8] {
    fn to_ascii_lowercase_fixed(&self) -> Suffix {
        let mut out = Suffix { b: [0; 3], n: 0 };
        if self.len() > 3 {
            out.n = usize::MAX;
            return out;
        }
        for (d, c) in out.b.iter_mut().zip(self) {
            *d = c.to_ascii_lowercase();
        }
        out.n = self.len();
        out
    }
}

/// The budget `auto` stands for, given the container limit.
fn auto_budget(limit: Option<usize>) -> usize {
    let base = limit.unwrap_or_else(crate::os::physical_memory);
    if base == 0 {
        return usize::MAX;
    }
    base / 100 * crate::policy::BUDGET_AUTO_PERCENT
}

/// Reports a value of `name` that cannot be read, in one line on stderr
/// (formatted on the stack), and what happens instead.
fn report_bad(name: &str, value: &[u8], expected: &str, instead: &str) {
    use core::fmt::Write;
    let mut line = crate::base::check::Fixed::<320>::new();
    let v = core::str::from_utf8(value).unwrap_or("(not UTF-8)");
    let _ = writeln!(
        line,
        "nalloc: {name}={v:?} not understood: expected {expected}; {instead}"
    );
    crate::os::write_stderr(line.as_bytes());
}

/// Reads the environment once. Lock-free: a thread that loses the race waits
/// for the winner, which never allocates and so cannot wait on anyone.
#[cold]
pub(crate) fn ensure_init() {
    INIT.call(|| {
        let mut buf = [0u8; 32];
        let limit = crate::os::memory_limit();
        LIMIT.store(limit.unwrap_or(0), Ordering::Relaxed);
        if let Some(n) = crate::os::env_var(b"NALLOC_HUGE_PAGES", &mut buf) {
            if let Some(p) = parse_huge(&buf[..n]) {
                HUGE.store(p.to_u8(), Ordering::Relaxed);
            }
        }
        let cap = crate::os::env_var(b"NALLOC_POOL_CAP", &mut buf)
            .and_then(|n| parse_bytes(&buf[..n]))
            .unwrap_or_else(|| default_pool_cap(limit));
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
        if let Some(n) = crate::os::env_var(b"NALLOC_BUDGET", &mut buf) {
            let budget = match parse_budget(&buf[..n]) {
                Some(BudgetSetting::Off) => usize::MAX,
                Some(BudgetSetting::Auto) => auto_budget(limit),
                Some(BudgetSetting::Bytes(b)) => b,
                None => {
                    report_bad(
                        "NALLOC_BUDGET",
                        &buf[..n],
                        "bytes with an optional K, M, G or T suffix (12G, 12GiB, 800M, 1048576), auto or off",
                        "running without a budget",
                    );
                    usize::MAX
                }
            };
            if !BUDGET_SET.load(Ordering::Relaxed) {
                BUDGET.store(budget, Ordering::Relaxed);
            }
        }
        if let Some(n) = crate::os::env_var(b"NALLOC_FIRST_TOUCH", &mut buf) {
            match parse_first_touch(&buf[..n]) {
                Some(f) => set_first_touch(f),
                None => report_bad("NALLOC_FIRST_TOUCH", &buf[..n], "reuse or fresh", "using reuse"),
            }
        }
        if let Some(n) = crate::os::env_var(b"NALLOC_STATS", &mut buf) {
            STATS_AT_EXIT.store(!matches!(&buf[..n], b"" | b"0"), Ordering::Relaxed);
        }
    });
}

/// The memory budget in bytes (`usize::MAX`: none). One relaxed load: read
/// on the slow paths that commit memory.
#[inline]
pub(crate) fn budget() -> usize {
    BUDGET.load(Ordering::Relaxed)
}

/// Sets the budget (`usize::MAX`: none).
pub(crate) fn set_budget(bytes: usize) {
    BUDGET_SET.store(true, Ordering::Relaxed);
    BUDGET.store(bytes, Ordering::Relaxed);
}

/// The container's memory limit read at start-up, if any.
pub(crate) fn memory_limit() -> Option<usize> {
    ensure_init();
    match LIMIT.load(Ordering::Relaxed) {
        0 => None,
        l => Some(l),
    }
}

/// True if `NALLOC_STATS` asked for the phase table at exit.
pub(crate) fn stats_at_exit() -> bool {
    STATS_AT_EXIT.load(Ordering::Relaxed)
}

/// The huge-page policy in force.
pub(crate) fn huge_pages() -> HugePages {
    HugePages::from_u8(HUGE.load(Ordering::Relaxed))
}

pub(crate) fn set_huge_pages(p: HugePages) {
    HUGE.store(p.to_u8(), Ordering::Relaxed);
}

/// The first-touch policy in force.
pub(crate) fn first_touch() -> FirstTouch {
    ensure_init();
    FirstTouch::from_u8(FIRST_TOUCH.load(Ordering::Relaxed))
}

pub(crate) fn set_first_touch(f: FirstTouch) {
    FIRST_TOUCH.store(f.to_u8(), Ordering::Relaxed);
}

/// `reuse` / `fresh`.
pub(crate) fn parse_first_touch(s: &[u8]) -> Option<FirstTouch> {
    match s {
        b"reuse" => Some(FirstTouch::Reuse),
        b"fresh" => Some(FirstTouch::Fresh),
        _ => None,
    }
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
    fn parses_first_touch_policies() {
        assert_eq!(parse_first_touch(b"reuse"), Some(FirstTouch::Reuse));
        assert_eq!(parse_first_touch(b"fresh"), Some(FirstTouch::Fresh));
        assert_eq!(parse_first_touch(b"Fresh"), None);
        assert_eq!(parse_first_touch(b""), None);
    }

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

    #[test]
    fn parses_budgets() {
        use BudgetSetting::*;
        assert_eq!(parse_budget(b"12G"), Some(Bytes(12 << 30)));
        assert_eq!(parse_budget(b"12GiB"), Some(Bytes(12 << 30)));
        assert_eq!(parse_budget(b"12gb"), Some(Bytes(12 << 30)));
        assert_eq!(parse_budget(b"800M"), Some(Bytes(800 << 20)));
        assert_eq!(parse_budget(b"64k"), Some(Bytes(64 << 10)));
        assert_eq!(parse_budget(b"1T"), Some(Bytes(1 << 40)));
        assert_eq!(parse_budget(b"1048576"), Some(Bytes(1 << 20)));
        assert_eq!(parse_budget(b"auto"), Some(Auto));
        assert_eq!(parse_budget(b"off"), Some(Off));
        assert_eq!(parse_budget(b"0"), Some(Off));
        for bad in [
            &b"12Q"[..],
            b"",
            b"G",
            b"12 G",
            b"-5M",
            b"12GiBs",
            b"1.5G",
            b"99999999999999999999T",
        ] {
            assert_eq!(parse_budget(bad), None, "{bad:?}");
        }
        assert_eq!(default_pool_cap(Some(1 << 30)), 128 << 20);
        assert_eq!(default_pool_cap(Some(1 << 50)), crate::policy::POOL_CAP_MAX);
        assert_eq!(auto_budget(Some(1000 << 20)), 900 << 20);
    }
}
