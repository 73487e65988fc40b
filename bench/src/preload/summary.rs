//! Per-(workload, allocator) statistics, the text table, the nalloc target
//! check and the JSON report.

use std::fmt::Write as _;

use serde::Serialize;

use super::exec::{NallocStats, RunRecord, Vmstat};
use super::setup::{OtherCpu, BASELINE};
use crate::report::MachineInfo;

/// Median of `v` (mean of the middle two for an even count); `None` if empty.
pub fn median(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    Some(if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    })
}

/// The result of one (workload, allocator) pair.
#[derive(Clone, Debug, Serialize)]
pub struct PairSummary {
    /// Workload name.
    pub workload: String,
    /// Allocator name.
    pub allocator: String,
    /// `"ok"`, `"FAILED"` or `"unavailable"`.
    pub status: String,
    /// Why it is unavailable or failed.
    pub reason: Option<String>,
    /// Successful runs / runs attempted.
    pub runs_ok: usize,
    /// Runs attempted.
    pub runs: usize,
    /// Median wall seconds (only when every run succeeded).
    pub median_s: Option<f64>,
    /// Fastest run, seconds.
    pub min_s: Option<f64>,
    /// Slowest run, seconds.
    pub max_s: Option<f64>,
    /// Median divided by the glibc median of the same workload.
    pub ratio_to_glibc: Option<f64>,
    /// Peak RSS, KiB: the maximum over the runs.
    pub peak_rss_kib: Option<u64>,
    /// Peak RSS divided by the lowest peak RSS of the workload.
    pub rss_ratio_to_lowest: Option<f64>,
    /// Median over the runs of their peak RSS, KiB (less swayed by one
    /// run's scheduling than the maximum).
    pub median_rss_kib: Option<u64>,
    /// Median RSS divided by the lowest median RSS of the workload (the RSS
    /// target's measure, as the median time is the time target's).
    pub median_rss_ratio_to_lowest: Option<f64>,
    /// Median over the runs of the most bytes waiting in the program's
    /// cross-thread inboxes at once, KiB (programs that report it).
    pub median_pile_kib: Option<u64>,
    /// Median minor page faults of the program (fresh memory touched).
    pub median_minflt: Option<u64>,
    /// Median transparent huge pages faulted in during a run (system-wide
    /// `/proc/vmstat` delta).
    pub median_thp_faults: Option<u64>,
    /// Median direct-compaction stalls during a run (system-wide).
    pub median_compact_stalls: Option<u64>,
}

/// Builds the summaries, workload-major, allocators in the given order.
/// `unavailable` maps allocator names to the reason they were skipped.
pub fn summarize(
    workloads: &[&str],
    allocators: &[&str],
    unavailable: &[(String, String)],
    setup_failed: &[(String, String)],
    runs: &[RunRecord],
) -> Vec<PairSummary> {
    let mut out = Vec::new();
    for &w in workloads {
        let first = out.len();
        for &a in allocators {
            let mut s = PairSummary {
                workload: w.to_owned(),
                allocator: a.to_owned(),
                status: "ok".into(),
                reason: None,
                runs_ok: 0,
                runs: 0,
                median_s: None,
                min_s: None,
                max_s: None,
                ratio_to_glibc: None,
                peak_rss_kib: None,
                rss_ratio_to_lowest: None,
                median_rss_kib: None,
                median_rss_ratio_to_lowest: None,
                median_pile_kib: None,
                median_minflt: None,
                median_thp_faults: None,
                median_compact_stalls: None,
            };
            if let Some((_, why)) = unavailable.iter().find(|(n, _)| n == a) {
                s.status = "unavailable".into();
                s.reason = Some(why.clone());
                out.push(s);
                continue;
            }
            if let Some((_, why)) = setup_failed.iter().find(|(n, _)| n == w) {
                s.status = "FAILED".into();
                s.reason = Some(why.clone());
                out.push(s);
                continue;
            }
            let mine: Vec<&RunRecord> = runs.iter().filter(|r| r.workload == w && r.allocator == a).collect();
            s.runs = mine.len();
            let ok: Vec<&RunRecord> = mine.iter().copied().filter(|r| r.error.is_none()).collect();
            s.runs_ok = ok.len();
            if ok.len() < mine.len() || mine.is_empty() {
                s.status = "FAILED".into();
                s.reason = Some(
                    mine.iter()
                        .find_map(|r| r.error.clone())
                        .unwrap_or_else(|| "no runs".into()),
                );
            } else {
                let secs: Vec<f64> = ok.iter().filter_map(|r| r.seconds).collect();
                s.median_s = median(&secs);
                s.min_s = secs.iter().copied().reduce(f64::min);
                s.max_s = secs.iter().copied().reduce(f64::max);
                s.peak_rss_kib = ok.iter().filter_map(|r| r.maxrss_kib).max();
                let median_kib = |v: Vec<f64>| median(&v).map(|m| m.round() as u64);
                s.median_rss_kib = median_kib(ok.iter().filter_map(|r| r.maxrss_kib.map(|k| k as f64)).collect());
                s.median_pile_kib = median_kib(ok.iter().filter_map(|r| r.pile_kib.map(|k| k as f64)).collect());
                s.median_minflt = median_kib(ok.iter().filter_map(|r| r.minflt.map(|k| k as f64)).collect());
                let vm = |f: fn(&Vmstat) -> u64| {
                    median_kib(
                        ok.iter()
                            .filter_map(|r| r.vmstat.as_ref().map(|v| f(v) as f64))
                            .collect(),
                    )
                };
                s.median_thp_faults = vm(|v| v.thp_fault_alloc);
                s.median_compact_stalls = vm(|v| v.compact_stall);
            }
            out.push(s);
        }
        let base = out[first..]
            .iter()
            .find(|s| s.allocator == BASELINE)
            .and_then(|s| s.median_s);
        let lowest_rss = out[first..].iter().filter_map(|s| s.peak_rss_kib).min();
        let lowest_median_rss = out[first..].iter().filter_map(|s| s.median_rss_kib).min();
        for s in &mut out[first..] {
            if let (Some(m), Some(b)) = (s.median_s, base) {
                s.ratio_to_glibc = (b > 0.0).then(|| m / b);
            }
            let ratio = |r: Option<u64>, l: Option<u64>| match (r, l) {
                (Some(r), Some(l)) if l > 0 => Some(r as f64 / l as f64),
                _ => None,
            };
            s.rss_ratio_to_lowest = ratio(s.peak_rss_kib, lowest_rss);
            s.median_rss_ratio_to_lowest = ratio(s.median_rss_kib, lowest_median_rss);
        }
    }
    out
}

/// How each pair touched fresh memory (medians per run): minor page faults,
/// transparent huge pages faulted in and compaction stalls, with the THP
/// mode they depend on. The evidence behind a cold-start difference: an
/// allocator that reuses freed pages for the next, larger block faults
/// less; huge pages fault 512 times less often but each clears 2 MiB.
pub fn render_faults(summaries: &[PairSummary], thp: &str) -> String {
    let mut out = format!("\nfresh memory (medians per run; THP {thp}; huge-page counts are system-wide):\n");
    let _ = writeln!(
        out,
        "{:<12} {:<9} {:>12} {:>12} {:>16}",
        "workload", "allocator", "minor faults", "THP faults", "compact stalls"
    );
    for s in summaries.iter().filter(|s| s.status == "ok") {
        let n = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |x| x.to_string());
        let _ = writeln!(
            out,
            "{:<12} {:<9} {:>12} {:>12} {:>16}",
            s.workload,
            s.allocator,
            n(s.median_minflt),
            n(s.median_thp_faults),
            n(s.median_compact_stalls)
        );
    }
    out
}

/// The aligned results table.
pub fn render_table(summaries: &[PairSummary]) -> String {
    let header = [
        "workload",
        "allocator",
        "runs",
        "median s",
        "min s",
        "max s",
        "x glibc",
        "peak RSS MiB",
        "x lowest RSS",
        "median RSS MiB",
        "x lowest median",
        "pile MiB",
    ];
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    for s in summaries {
        let mut row = vec![s.workload.clone(), s.allocator.clone()];
        match s.status.as_str() {
            "ok" => {
                let f = |v: Option<f64>, p: usize| v.map_or_else(|| "-".to_owned(), |x| format!("{x:.p$}"));
                row.push(format!("{}", s.runs));
                row.push(f(s.median_s, 2));
                row.push(f(s.min_s, 2));
                row.push(f(s.max_s, 2));
                row.push(f(s.ratio_to_glibc, 2));
                row.push(f(s.peak_rss_kib.map(|k| k as f64 / 1024.0), 1));
                row.push(f(s.rss_ratio_to_lowest, 2));
                let mib = |k: Option<u64>| f(k.map(|k| k as f64 / 1024.0), 1);
                row.push(mib(s.median_rss_kib));
                row.push(f(s.median_rss_ratio_to_lowest, 2));
                row.push(mib(s.median_pile_kib));
            }
            status => {
                let label = if status == "FAILED" && s.runs > 0 {
                    format!("FAILED ({}/{} runs failed)", s.runs - s.runs_ok, s.runs)
                } else {
                    status.to_owned()
                };
                row.push(label);
                if let Some(r) = &s.reason {
                    notes.push(format!(
                        "{} / {}: {}:\n    {}",
                        s.workload,
                        s.allocator,
                        s.status,
                        r.trim_end().replace('\n', "\n    ")
                    ));
                }
            }
        }
        rows.push(row);
    }
    let ncol = header.len();
    let mut width = header.map(str::len);
    for r in &rows {
        // Status cells (FAILED, unavailable) span the numeric columns.
        if r.len() == ncol {
            for (w, c) in width.iter_mut().zip(r) {
                *w = (*w).max(c.len());
            }
        } else {
            for (w, c) in width.iter_mut().zip(r.iter().take(2)) {
                *w = (*w).max(c.len());
            }
        }
    }
    let mut out = String::new();
    let line = |cells: &[String], out: &mut String| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i > 0 {
                l.push_str("  ");
            }
            if i < 2 || cells.len() < ncol {
                let _ = write!(l, "{c:<w$}", w = if i < 2 { width[i] } else { 0 });
            } else {
                let _ = write!(l, "{c:>w$}", w = width[i]);
            }
        }
        let _ = writeln!(out, "{}", l.trim_end());
    };
    line(&header.map(str::to_owned), &mut out);
    let total: usize = width.iter().sum::<usize>() + 2 * (ncol - 1);
    let _ = writeln!(out, "{}", "-".repeat(total));
    let mut prev: Option<&str> = None;
    for (r, s) in rows.iter().zip(summaries) {
        if prev.is_some_and(|p| p != s.workload) {
            let _ = writeln!(out);
        }
        prev = Some(&s.workload);
        line(r, &mut out);
    }
    if !notes.is_empty() {
        let _ = writeln!(out, "\n{}", notes.join("\n"));
    }
    out
}

/// nalloc against the targets on one workload.
#[derive(Clone, Debug, Serialize)]
pub struct TargetCheck {
    /// Workload name.
    pub workload: String,
    /// The fastest other allocator (by median) and its median seconds.
    pub best_other: Option<(String, f64)>,
    /// nalloc's median / the best other median (target: at most 1.05).
    pub time_ratio: Option<f64>,
    /// nalloc's median peak RSS / the lowest median peak RSS (target: at
    /// most 1.2).
    pub rss_ratio: Option<f64>,
    /// nalloc's highest peak RSS / the lowest highest peak RSS (shown, not
    /// judged: one run's scheduling can swing it, see `bench/c/c_small.c`).
    pub highest_rss_ratio: Option<f64>,
    /// nalloc's median / tcmalloc's median (c-large target: at most 1.0).
    pub vs_tcmalloc: Option<f64>,
    /// Whether every target that applies and could be measured was met.
    pub met: bool,
}

/// Time target: nalloc's median within this factor of the best other allocator.
pub const TIME_TARGET: f64 = 1.05;
/// RSS target: nalloc's peak RSS within this factor of the lowest, both
/// the medians of the runs' peaks.
pub const RSS_TARGET: f64 = 1.2;

/// Checks nalloc against the targets, per workload where nalloc has numbers.
pub fn check_targets(summaries: &[PairSummary], workloads: &[&str]) -> Vec<TargetCheck> {
    let mut out = Vec::new();
    for &w in workloads {
        let pairs: Vec<&PairSummary> = summaries.iter().filter(|s| s.workload == w).collect();
        let Some(n) = pairs.iter().find(|s| s.allocator == "nalloc") else {
            continue;
        };
        let Some(nm) = n.median_s else {
            continue;
        };
        let best_other = pairs
            .iter()
            .filter(|s| s.allocator != "nalloc")
            .filter_map(|s| s.median_s.map(|m| (s.allocator.clone(), m)))
            .min_by(|a, b| a.1.total_cmp(&b.1));
        let time_ratio = best_other.as_ref().and_then(|(_, m)| (*m > 0.0).then(|| nm / m));
        let vs_tcmalloc = if w == "c-large" {
            pairs
                .iter()
                .find(|s| s.allocator == "tcmalloc")
                .and_then(|s| s.median_s)
                .and_then(|t| (t > 0.0).then(|| nm / t))
        } else {
            None
        };
        let rss_ratio = n.median_rss_ratio_to_lowest;
        let met = time_ratio.is_none_or(|r| r <= TIME_TARGET)
            && rss_ratio.is_none_or(|r| r <= RSS_TARGET)
            && vs_tcmalloc.is_none_or(|r| r <= 1.0);
        out.push(TargetCheck {
            workload: w.to_owned(),
            best_other,
            time_ratio,
            rss_ratio,
            highest_rss_ratio: n.rss_ratio_to_lowest,
            vs_tcmalloc,
            met,
        });
    }
    out
}

/// Human-readable target check.
pub fn render_targets(checks: &[TargetCheck]) -> String {
    let mut out = String::new();
    if checks.is_empty() {
        return out;
    }
    let _ = writeln!(
        out,
        "nalloc targets (medians of the runs): time <= {TIME_TARGET:.2}x the best other, peak RSS <= \
         {RSS_TARGET:.1}x the lowest, c-large at least as fast as tcmalloc"
    );
    let verdict = |ok: bool| if ok { "ok" } else { "MISSED" };
    for c in checks {
        let mut parts = Vec::new();
        if let (Some((name, m)), Some(r)) = (&c.best_other, c.time_ratio) {
            parts.push(format!(
                "time {r:.2}x best other ({name} {m:.2} s) {}",
                verdict(r <= TIME_TARGET)
            ));
        }
        if let Some(r) = c.rss_ratio {
            let highest = c
                .highest_rss_ratio
                .map_or_else(String::new, |h| format!(" (highest runs: {h:.2}x)"));
            parts.push(format!("RSS {r:.2}x lowest {}{highest}", verdict(r <= RSS_TARGET)));
        }
        if let Some(r) = c.vs_tcmalloc {
            parts.push(format!("{r:.2}x tcmalloc {}", verdict(r <= 1.0)));
        }
        let _ = writeln!(out, "  {:<8} {}", c.workload, parts.join("; "));
    }
    out
}

/// The result of the `NALLOC_STATS=1` check on one workload.
#[derive(Clone, Debug, Serialize)]
pub struct Verification {
    /// Workload name.
    pub workload: String,
    /// The counters, if the stats line was found.
    pub stats: Option<NallocStats>,
    /// Library that served `malloc`, as the program reported it.
    pub malloc: Option<String>,
    /// Whether nalloc demonstrably served the run (stats line with allocations).
    pub ok: bool,
    /// What went wrong, if anything.
    pub error: Option<String>,
}

/// The event counts of `--counters`, in the columns' order, with their
/// headers: the `NALLOC_STATS` names (see `zk_nalloc::EventCounts`).
const COUNTER_COLUMNS: &[(&str, &str)] = &[
    ("lock_acquisitions", "locks"),
    ("lock_contended", "contended"),
    ("remote_batches", "r.batches"),
    ("remote_blocks", "r.blocks"),
    ("remote_atomics", "r.atomics"),
    ("remote_kept", "r.kept"),
    ("remote_collects", "r.collects"),
    ("os_map", "mmap"),
    ("os_unmap", "munmap"),
    ("os_remap", "mremap"),
    ("os_advise", "advise"),
    ("os_purge", "purge"),
    ("os_protect", "protect"),
];

/// `--counters`' table: per workload, nalloc's slow-path events per million
/// allocator operations (small and large allocations and frees) of its
/// `NALLOC_STATS=1` run. A workload whose run printed no event lines shows
/// `-`.
pub fn render_counters(verification: &[Verification]) -> String {
    let mut out = String::new();
    let _ = write!(out, "{:<15} {:>11}", "workload", "ops");
    for (_, h) in COUNTER_COLUMNS {
        let _ = write!(out, " {h:>10}");
    }
    out.push('\n');
    for v in verification {
        let _ = write!(out, "{:<15}", v.workload);
        let Some(s) = v.stats.as_ref().filter(|s| s.ops() > 0) else {
            out.push_str(" (no stats)\n");
            continue;
        };
        let _ = write!(out, " {:>11}", s.ops());
        let per_mops = 1e6 / s.ops() as f64;
        for (name, _) in COUNTER_COLUMNS {
            match s.event(name) {
                Some(n) => {
                    let _ = write!(out, " {:>10.1}", n as f64 * per_mops);
                }
                None => {
                    let _ = write!(out, " {:>10}", "-");
                }
            }
        }
        out.push('\n');
    }
    out
}

/// Everything the JSON report holds.
#[derive(Clone, Debug, Serialize)]
pub struct PreloadReport {
    /// Machine facts.
    pub machine: MachineInfo,
    /// Runs per pair.
    pub runs_per_pair: usize,
    /// How the processes were measured.
    pub method: String,
    /// Workload name, description and command line.
    pub workloads: Vec<(String, String, String)>,
    /// Allocator name and library path (or why unavailable).
    pub allocators: Vec<(String, String)>,
    /// Compiler, build or CPU-busy processes seen just before the timed runs.
    pub busy_before: Vec<String>,
    /// 1-minute load average just before the timed runs.
    pub loadavg_before: Option<f64>,
    /// CPU time other processes used during the timed runs.
    pub other_cpu_during: OtherCpu,
    /// Per-pair summaries.
    pub summaries: Vec<PairSummary>,
    /// nalloc against the targets.
    pub targets: Vec<TargetCheck>,
    /// `NALLOC_STATS=1` checks.
    pub verification: Vec<Verification>,
    /// Every run.
    pub runs: Vec<RunRecord>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(w: &str, a: &str, secs: f64, kib: u64) -> RunRecord {
        RunRecord {
            workload: w.into(),
            allocator: a.into(),
            run: 0,
            seconds: Some(secs),
            time_elapsed_s: Some(secs),
            maxrss_kib: Some(kib),
            minflt: Some(kib / 4),
            vmstat: Some(Vmstat {
                thp_fault_alloc: kib / 2048,
                thp_fault_fallback: 0,
                compact_stall: 1,
            }),
            malloc: Some("x".into()),
            pile_kib: None,
            error: None,
            stderr: String::new(),
        }
    }

    #[test]
    fn fault_evidence_is_the_median_per_pair() {
        let runs = [
            rec("first-touch", "glibc", 1.0, 4096),
            rec("first-touch", "glibc", 1.0, 8192),
            rec("first-touch", "glibc", 1.0, 40960),
            rec("first-touch", "nalloc", 0.5, 2048),
        ];
        let s = summarize(&["first-touch"], &["glibc", "nalloc"], &[], &[], &runs);
        assert_eq!(s[0].median_minflt, Some(2048));
        assert_eq!(s[0].median_thp_faults, Some(4));
        assert_eq!(s[1].median_compact_stalls, Some(1));
        let t = render_faults(&s, "enabled: [madvise]; defrag: [madvise]");
        assert!(t.contains("defrag: [madvise]"), "{t}");
        let row = t.lines().find(|l| l.contains("nalloc")).unwrap();
        assert_eq!(
            row.split_whitespace().collect::<Vec<_>>(),
            ["first-touch", "nalloc", "512", "1", "1"]
        );
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
    }

    #[test]
    fn summary_ratios_failures_and_targets() {
        let mut runs = vec![
            rec("c-large", "glibc", 2.0, 1000),
            rec("c-large", "glibc", 2.2, 1100),
            rec("c-large", "tcmalloc", 1.0, 2000),
            rec("c-large", "tcmalloc", 1.1, 2000),
            RunRecord {
                pile_kib: Some(300),
                ..rec("c-large", "nalloc", 0.9, 1150)
            },
            RunRecord {
                pile_kib: Some(500),
                ..rec("c-large", "nalloc", 1.0, 1200)
            },
            rec("c-large", "jemalloc", 1.0, 1000),
        ];
        let mut bad = rec("c-large", "jemalloc", 1.0, 1000);
        bad.error = Some("exit code 1\nboom".into());
        bad.seconds = None;
        runs.push(bad);
        let unavailable = vec![("mimalloc".to_owned(), "not installed".to_owned())];
        let s = summarize(
            &["c-large"],
            &["glibc", "mimalloc", "jemalloc", "tcmalloc", "nalloc"],
            &unavailable,
            &[],
            &runs,
        );
        assert_eq!(s.len(), 5);
        assert_eq!(s[0].median_s, Some(2.1));
        assert_eq!(s[0].peak_rss_kib, Some(1100));
        assert_eq!(s[0].median_rss_kib, Some(1050));
        assert_eq!(s[0].median_pile_kib, None);
        assert_eq!(s[1].status, "unavailable");
        assert_eq!(s[2].status, "FAILED");
        assert!(s[2].median_s.is_none() && s[2].peak_rss_kib.is_none());
        let n = &s[4];
        assert!((n.ratio_to_glibc.unwrap() - 0.95 / 2.1).abs() < 1e-9);
        assert!((n.rss_ratio_to_lowest.unwrap() - 1200.0 / 1100.0).abs() < 1e-9);
        // Medians: glibc 1050, tcmalloc 2000, jemalloc failed, nalloc 1175.
        assert!((n.median_rss_ratio_to_lowest.unwrap() - 1175.0 / 1050.0).abs() < 1e-9);
        assert_eq!((n.median_rss_kib, n.median_pile_kib), (Some(1175), Some(400)));
        let table = render_table(&s);
        assert!(table.contains("unavailable") && table.contains("FAILED (1/2 runs failed)"));
        assert!(table.contains("boom"));
        assert!(table.contains("median RSS MiB") && table.contains("pile MiB"));
        let t = check_targets(&s, &["c-large"]);
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].best_other.as_ref().unwrap().0, "tcmalloc");
        assert!(t[0].vs_tcmalloc.unwrap() < 1.0);
        assert!(t[0].met);
        assert_eq!(t[0].rss_ratio, n.median_rss_ratio_to_lowest);
        assert_eq!(t[0].highest_rss_ratio, n.rss_ratio_to_lowest);
        let text = render_targets(&t);
        assert!(text.contains("tcmalloc") && text.contains("RSS 1.12x lowest ok (highest runs: 1.09x)"));
    }

    #[test]
    fn rss_target_is_judged_on_medians() {
        // One nalloc run with a large inbox pile: the highest peak is 1.5x
        // the lowest highest, the median within the target.
        let mut runs = Vec::new();
        for (a, kibs) in [
            ("glibc", [1000, 1010, 1020]),
            ("tcmalloc", [1100, 1100, 1100]),
            ("nalloc", [950, 960, 1530]),
        ] {
            runs.extend(kibs.iter().map(|&k| rec("c-small", a, 1.0, k)));
        }
        let all = ["glibc", "tcmalloc", "nalloc"];
        let t = check_targets(&summarize(&["c-small"], &all, &[], &[], &runs), &["c-small"]);
        assert!(t[0].met, "{t:?}");
        assert_eq!(t[0].rss_ratio, Some(1.0), "nalloc has the lowest median");
        assert!((t[0].highest_rss_ratio.unwrap() - 1.5).abs() < 1e-9);
        assert!(render_targets(&t).contains("RSS 1.00x lowest ok (highest runs: 1.50x)"));
        // A median above 1.2x the lowest median misses, whatever the highest.
        for r in runs.iter_mut().filter(|r| r.allocator == "nalloc") {
            r.maxrss_kib = Some(1250);
        }
        let t = check_targets(&summarize(&["c-small"], &all, &[], &[], &runs), &["c-small"]);
        assert!(!t[0].met);
        assert!(render_targets(&t).contains("RSS 1.24x lowest MISSED"));
    }

    #[test]
    fn counters_per_million_operations() {
        let stats = NallocStats {
            small_allocs: 400_000,
            small_frees: 400_000,
            large_allocs: 100_000,
            large_frees: 100_000,
            events: vec![("lock_acquisitions".into(), 5), ("os_map".into(), 2_000_000)],
        };
        let v = |w: &str, stats: Option<NallocStats>| Verification {
            workload: w.into(),
            stats,
            malloc: None,
            ok: true,
            error: None,
        };
        let t = render_counters(&[v("c-xmalloc", Some(stats)), v("python", None)]);
        let lines: Vec<&str> = t.lines().collect();
        assert!(
            lines[0].starts_with("workload") && lines[0].contains("contended"),
            "{t}"
        );
        let row: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(row[..4], ["c-xmalloc", "1000000", "5.0", "-"], "{t}");
        assert_eq!(row[9], "2000000.0", "{t}");
        assert!(lines[2].contains("(no stats)"), "{t}");
    }
}
