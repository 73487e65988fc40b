//! Proof phases: a fixed table of named phases and the stack of open ones,
//! fed with snapshots of counters that exist anyway (see
//! docs/design/phases-and-budget.md).
//!
//! Nothing here runs per allocation. At every phase boundary (begin, end,
//! report) the front takes a [`Snapshot`] of process-wide cumulative
//! counters (calls and bytes summed over the heaps, bytes returned to the
//! OS, minor faults, the clock) and hands it in; the difference since the
//! previous boundary is credited to the innermost open phase. So each
//! call, byte, fault and microsecond lands in exactly one row ("self"
//! figures: the rows add up to the process's totals while phases were
//! open). The peak is the exception: it is the highest live-byte figure
//! seen while the phase was open at any depth (inclusive), taken from the
//! live-bytes gauge's window mark (`stats::Gauge::take_window`).
//!
//! The table never allocates: 32 names of at most 31 bytes, copied in;
//! later names share one "(other)" row. Its lock is a spin lock held for a
//! few hundred instructions at a boundary, never on an allocation path.

use core::fmt;

use crate::base::check::Fixed;
use crate::base::sync::SpinLock;
use crate::policy::{PHASE_DEPTH, PHASE_NAMES, PHASE_NAME_LEN};

/// Cumulative process-wide figures at one instant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Snapshot {
    /// Allocations (small and span).
    pub(crate) calls: u64,
    /// Bytes requested by those allocations.
    pub(crate) bytes: u64,
    /// Bytes returned to the OS.
    pub(crate) returned: u64,
    /// Minor page faults of the process.
    pub(crate) faults: u64,
    /// A monotonic clock, µs.
    pub(crate) time_us: u64,
}

/// One phase name's figures (accumulated over all its entries).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PhaseRow {
    name: [u8; PHASE_NAME_LEN],
    name_len: u8,
    /// Times the phase was entered.
    pub entries: u64,
    /// Allocations made while this was the innermost open phase.
    pub calls: u64,
    /// Bytes those allocations requested.
    pub bytes: u64,
    /// Highest live bytes (live spans plus written small-object memory)
    /// seen while the phase was open, nested phases included; sampled
    /// where that figure changes (span and page-extension slow paths).
    pub peak_live: u64,
    /// Bytes given back to the OS while this was the innermost phase.
    pub returned_to_os: u64,
    /// Minor page faults of the process while this was the innermost phase.
    pub minor_faults: u64,
    /// Wall time while this was the innermost phase, µs.
    pub wall_us: u64,
}

impl PhaseRow {
    const EMPTY: PhaseRow = PhaseRow {
        name: [0; PHASE_NAME_LEN],
        name_len: 0,
        entries: 0,
        calls: 0,
        bytes: 0,
        peak_live: 0,
        returned_to_os: 0,
        minor_faults: 0,
        wall_us: 0,
    };

    /// The phase's name (cut to 31 bytes at a character boundary;
    /// `(other)` for the row shared by names beyond the table).
    pub fn name(&self) -> &str {
        let b = self.name.get(..self.name_len as usize).unwrap_or(&[]);
        core::str::from_utf8(b).unwrap_or("?")
    }

    /// Wall time while this was the innermost phase.
    pub fn wall(&self) -> core::time::Duration {
        core::time::Duration::from_micros(self.wall_us)
    }

    fn credit(&mut self, d: &Snapshot) {
        self.calls += d.calls;
        self.bytes += d.bytes;
        self.returned_to_os += d.returned;
        self.minor_faults += d.faults;
        self.wall_us += d.time_us;
    }
}

/// The name of the row shared by names beyond the table.
pub(crate) const OTHER: &str = "(other)";

/// The per-phase figures: one row per name, in order of first use, the
/// shared `(other)` row last if used. A plain value (no allocation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PhaseReport {
    rows: [PhaseRow; PHASE_NAMES + 1],
    len: usize,
}

impl PhaseReport {
    /// The rows, in order of first use.
    pub fn rows(&self) -> &[PhaseRow] {
        self.rows.get(..self.len).unwrap_or(&[])
    }

    /// The row of `name`, if that phase ran.
    pub fn get(&self, name: &str) -> Option<&PhaseRow> {
        let n = cut(name.as_bytes());
        self.rows().iter().find(|r| r.name() == n)
    }

    /// True when no phase has run since start (or the last reset).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Writes `n` bytes in a short unit: `812 B`, `12.5 MiB`.
fn bytes(f: &mut fmt::Formatter<'_>, n: u64, width: usize) -> fmt::Result {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let (mut whole, mut rem, mut unit) = (n, 0u64, 0usize);
    while whole >= 1024 && unit + 1 < UNITS.len() {
        rem = whole % 1024;
        whole /= 1024;
        unit += 1;
    }
    let u = UNITS.get(unit).copied().unwrap_or("B");
    // Formatted into a small stack buffer first so that the column can be
    // right-aligned as one piece.
    let mut buf = Fixed::<24>::new();
    if unit == 0 {
        let _ = fmt::write(&mut buf, format_args!("{whole} {u}"));
    } else {
        let _ = fmt::write(&mut buf, format_args!("{whole}.{} {u}", rem * 10 / 1024));
    }
    write!(f, " {:>width$}", buf.as_str())
}

impl fmt::Display for PhaseReport {
    /// An aligned table: one line per phase, a header first.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = self.rows().iter().map(|r| r.name().len()).max().unwrap_or(0).max(5);
        writeln!(
            f,
            "{:<w$} {:>7} {:>12} {:>11} {:>11} {:>11} {:>11} {:>11}",
            "phase", "entries", "calls", "allocated", "peak live", "returned", "minor flt", "wall ms"
        )?;
        for r in self.rows() {
            write!(f, "{:<w$} {:>7} {:>12}", r.name(), r.entries, r.calls)?;
            bytes(f, r.bytes, 11)?;
            bytes(f, r.peak_live, 11)?;
            bytes(f, r.returned_to_os, 11)?;
            writeln!(
                f,
                " {:>11} {:>7}.{:03}",
                r.minor_faults,
                r.wall_us / 1000,
                r.wall_us % 1000
            )?;
        }
        Ok(())
    }
}

/// `name` cut to [`PHASE_NAME_LEN`] bytes at a character boundary.
fn cut(name: &[u8]) -> &str {
    let s = core::str::from_utf8(name).unwrap_or("?");
    let mut end = s.len().min(PHASE_NAME_LEN);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or("")
}

struct Table {
    report: PhaseReport,
    /// Row indices of the open phases, innermost last.
    stack: [u8; PHASE_DEPTH],
    depth: usize,
    /// Phases opened beyond [`PHASE_DEPTH`] and not yet closed.
    deep: usize,
    /// The figures at the last boundary.
    last: Snapshot,
}

static TABLE: SpinLock<Table> = SpinLock::new(Table {
    report: PhaseReport {
        rows: [PhaseRow::EMPTY; PHASE_NAMES + 1],
        len: 0,
    },
    stack: [0; PHASE_DEPTH],
    depth: 0,
    deep: 0,
    last: Snapshot {
        calls: 0,
        bytes: 0,
        returned: 0,
        faults: 0,
        time_us: 0,
    },
});

impl Table {
    /// Credits what happened since the last boundary to the innermost open
    /// phase, and `peak` to every open phase.
    fn settle(&mut self, now: Snapshot, peak: u64) {
        let d = Snapshot {
            calls: now.calls.wrapping_sub(self.last.calls),
            bytes: now.bytes.wrapping_sub(self.last.bytes),
            returned: now.returned.wrapping_sub(self.last.returned),
            faults: now.faults.saturating_sub(self.last.faults),
            time_us: now.time_us.saturating_sub(self.last.time_us),
        };
        self.last = now;
        if self.depth == 0 {
            return;
        }
        let open = self.stack.get(..self.depth).unwrap_or(&[]);
        for &i in open {
            if let Some(r) = self.report.rows.get_mut(i as usize) {
                r.peak_live = r.peak_live.max(peak);
            }
        }
        if let Some(r) = open.last().and_then(|&i| self.report.rows.get_mut(i as usize)) {
            r.credit(&d);
        }
    }

    /// The row of `name`, made if new; the shared row when the table is full.
    fn row_for(&mut self, name: &str) -> usize {
        let n = self.report.len;
        if let Some(i) = self
            .report
            .rows
            .get(..n)
            .and_then(|rows| rows.iter().position(|r| r.name() == name))
        {
            return i;
        }
        let other = PHASE_NAMES;
        // The last free row is kept for the shared one.
        let (i, name) = if n < PHASE_NAMES { (n, name) } else { (other, OTHER) };
        if i == other && n == PHASE_NAMES + 1 {
            return other;
        }
        if let Some(r) = self.report.rows.get_mut(i) {
            *r = PhaseRow::EMPTY;
            r.name[..name.len()].copy_from_slice(name.as_bytes());
            r.name_len = name.len() as u8;
        }
        self.report.len = i + 1;
        i
    }
}

/// Opens phase `name` (cut to 31 bytes) on top of the open ones. `now`:
/// the figures at this instant; `peak`: the live-bytes window mark since
/// the last boundary (inclusive of now).
pub(crate) fn begin(name: &[u8], now: Snapshot, peak: u64) {
    let mut t = TABLE.lock();
    t.settle(now, peak);
    let i = t.row_for(cut(name));
    if let Some(r) = t.report.rows.get_mut(i) {
        r.entries += 1;
        r.peak_live = r.peak_live.max(peak);
    }
    if t.depth < PHASE_DEPTH {
        let d = t.depth;
        t.stack[d] = i as u8;
        t.depth += 1;
    } else {
        t.deep += 1;
    }
}

/// Closes the innermost open phase (nothing if none is open).
pub(crate) fn end(now: Snapshot, peak: u64) {
    let mut t = TABLE.lock();
    t.settle(now, peak);
    if t.deep > 0 {
        t.deep -= 1;
    } else if t.depth > 0 {
        t.depth -= 1;
    }
}

/// The table with the open phases' figures brought up to `now`.
pub(crate) fn report(now: Snapshot, peak: u64) -> PhaseReport {
    let mut t = TABLE.lock();
    t.settle(now, peak);
    t.report
}

/// Forgets every row (open phases keep running, recreated on their next
/// boundary under the shared row if their names are gone).
pub(crate) fn clear(now: Snapshot) {
    let mut t = TABLE.lock();
    t.last = now;
    t.report.len = 0;
    t.depth = 0;
    t.deep = 0;
}

/// Copies the innermost open phase's name into `buf`; its length (0: none).
pub(crate) fn current(buf: &mut [u8; PHASE_NAME_LEN]) -> usize {
    // Never wait here: the budget report calls this on an allocation's slow
    // path, possibly while another thread sits at a boundary.
    let Some(t) = TABLE.try_lock() else {
        return 0;
    };
    let Some(&i) = t.stack.get(..t.depth).and_then(|s| s.last()) else {
        return 0;
    };
    let Some(r) = t.report.rows.get(i as usize) else {
        return 0;
    };
    let n = r.name_len as usize;
    buf[..n].copy_from_slice(&r.name[..n]);
    n
}

/// Takes the table's lock for `fork` (see `front/lifecycle.rs`).
pub(crate) fn fork_lock() {
    TABLE.acquire_raw();
}

/// Releases the lock [`fork_lock`] took.
///
/// # Safety
/// The caller holds it through [`fork_lock`].
pub(crate) unsafe fn fork_unlock() {
    // SAFETY: caller contract.
    unsafe { TABLE.release_raw() };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(calls: u64, bytes: u64, t: u64) -> Snapshot {
        Snapshot {
            calls,
            bytes,
            returned: 0,
            faults: 0,
            time_us: t,
        }
    }

    #[test]
    fn self_figures_and_inclusive_peaks_in_a_private_table() {
        let mut t = Table {
            report: PhaseReport {
                rows: [PhaseRow::EMPTY; PHASE_NAMES + 1],
                len: 0,
            },
            stack: [0; PHASE_DEPTH],
            depth: 0,
            deep: 0,
            last: snap(0, 0, 0),
        };
        t.settle(snap(5, 50, 1), 10);
        let a = t.row_for("outer");
        t.stack[0] = a as u8;
        t.depth = 1;
        t.settle(snap(7, 70, 3), 20);
        let b = t.row_for("inner");
        t.stack[1] = b as u8;
        t.depth = 2;
        t.settle(snap(10, 100, 6), 40);
        t.depth = 1;
        t.settle(snap(11, 101, 10), 15);
        let r = t.report;
        assert_eq!((r.rows()[0].calls, r.rows()[0].bytes, r.rows()[0].wall_us), (3, 21, 6));
        assert_eq!((r.rows()[1].calls, r.rows()[1].bytes, r.rows()[1].wall_us), (3, 30, 3));
        assert_eq!((r.rows()[0].peak_live, r.rows()[1].peak_live), (40, 40));
        for i in 0..40 {
            let mut name = Fixed::<8>::new();
            let _ = fmt::write(&mut name, format_args!("p{i}"));
            t.row_for(core::str::from_utf8(name.as_bytes()).unwrap());
        }
        assert_eq!(t.report.len, PHASE_NAMES + 1);
        assert_eq!(t.report.rows()[PHASE_NAMES].name(), OTHER);
        assert_eq!(cut("a-very-long-phase-name-that-goes-on-and-on".as_bytes()).len(), 31);
        assert_eq!(cut("ééééééééééééééééé".as_bytes()).len(), 30);
    }
}
