//! Machine info, per-pair statistics, and the table / JSON / SVG outputs.

use std::fmt::Write as _;

use serde::Serialize;

use crate::allocators::BASELINE;
use crate::result::{Absent, Phase, WorkerResult, COLD, SETUP, STANDARD, WARM};
use crate::workloads::median;

/// Facts about the machine the suite ran on.
#[derive(Clone, Debug, Serialize)]
pub struct MachineInfo {
    /// CPU model name from `/proc/cpuinfo`.
    pub cpu: String,
    /// Available parallelism (`nproc`).
    pub nproc: usize,
    /// Kernel release (`uname -r`).
    pub kernel: String,
    /// Transparent huge page mode: `enabled` and `defrag` from
    /// `/sys/kernel/mm/transparent_hugepage/` (the chosen value bracketed).
    /// Fresh-memory timings depend on both: `defrag` decides whether a
    /// huge-page fault may stall for compaction.
    pub thp: String,
    /// Start time, UTC, ISO 8601.
    pub date: String,
}

impl MachineInfo {
    /// Collects the machine facts (fields fall back to `"unknown"`).
    pub fn collect() -> Self {
        let read = |p: &str| std::fs::read_to_string(p).ok();
        let cpu = read("/proc/cpuinfo")
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name") || l.starts_with("Hardware") || l.starts_with("cpu model"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".into());
        let kernel = read("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|| "unknown".into());
        let thp_file = |f: &str| {
            read(&format!("/sys/kernel/mm/transparent_hugepage/{f}"))
                .map(|s| s.trim().to_owned())
                .unwrap_or_else(|| "unknown".into())
        };
        let thp = format!("enabled: {}; defrag: {}", thp_file("enabled"), thp_file("defrag"));
        let nproc = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        Self {
            cpu,
            nproc,
            kernel,
            thp,
            date: utc_now(),
        }
    }

    /// Human-readable block printed before the results.
    pub fn render(&self) -> String {
        format!(
            "machine: {}\nnproc:   {}\nkernel:  {}\nTHP:     {}\ndate:    {}\n",
            self.cpu, self.nproc, self.kernel, self.thp, self.date
        )
    }
}

/// The current time as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format_utc(secs)
}

/// Formats Unix seconds as `YYYY-MM-DDTHH:MM:SSZ` (proleptic Gregorian).
pub fn format_utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// One worker process run.
#[derive(Clone, Debug, Serialize)]
pub struct RunRecord {
    /// Workload name.
    pub workload: String,
    /// Allocator name.
    pub allocator: String,
    /// Run index (0-based).
    pub run: usize,
    /// The worker's result, when it succeeded.
    pub result: Option<WorkerResult>,
    /// Why it failed (exit status / signal / timeout plus the last stderr lines).
    pub error: Option<String>,
    /// Wall time of the whole process, including start-up, in ms.
    pub process_ms: f64,
    /// Peak RSS (KiB) of the work every allocator does: the process's from
    /// `wait4` (`ru_maxrss`), or, where the workload runs nalloc-only phases
    /// after that work, the peak it recorded before them
    /// ([`WorkloadOutput::common_peak_rss_kib`]).
    ///
    /// [`WorkloadOutput::common_peak_rss_kib`]: crate::result::WorkloadOutput::common_peak_rss_kib
    pub maxrss_kib: u64,
    /// Peak RSS of the whole process from `wait4` (KiB), nalloc-only phases
    /// included.
    pub process_maxrss_kib: u64,
    /// Minor page faults of the process from `wait4`.
    pub minflt: u64,
    /// How the process ended.
    pub exit: String,
}

/// One standard figure of a pair (`setup`, `cold` or `warm`): the median
/// across runs and its ratio to glibc's median.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Figure {
    /// Median across the runs (ms).
    pub ms: f64,
    /// `ms` divided by glibc's figure; `None` without a glibc figure (or
    /// where glibc's is 0).
    pub ratio_to_glibc: Option<f64>,
}

/// A difference to glibc's total this small is noise: 3 % of glibc's
/// median, or half the wider min-max spread of the two pairs if larger
/// (same-code runs spread by several per cent on the machines measured).
pub const PARITY_FRACTION: f64 = 0.03;

/// Statistics for one (workload, allocator) pair.
#[derive(Clone, Debug, Serialize)]
pub struct PairSummary {
    /// Workload name.
    pub workload: String,
    /// Allocator name.
    pub allocator: String,
    /// Successful runs.
    pub ok_runs: usize,
    /// Failed runs.
    pub failed_runs: usize,
    /// Median workload wall time (ms); `None` if any run failed.
    pub median_ms: Option<f64>,
    /// Fastest run (ms).
    pub min_ms: Option<f64>,
    /// Slowest run (ms).
    pub max_ms: Option<f64>,
    /// Median wall time divided by glibc's median wall time.
    pub ratio_to_glibc: Option<f64>,
    /// Largest peak RSS over the runs (KiB).
    pub peak_rss_kib: Option<u64>,
    /// Median over the runs of their peak RSS (KiB): on a noisy machine the
    /// figure to compare, as the median time is.
    pub median_rss_kib: Option<u64>,
    /// Median minor page faults per run.
    pub median_minflt: Option<u64>,
    /// Median of the work before the first round, with its ratio to glibc.
    pub setup: Option<Figure>,
    /// Median of the first round (in the fresh process), with its ratio to glibc.
    pub cold: Option<Figure>,
    /// Median of the per-run medians of the other rounds, with its ratio to glibc.
    pub warm: Option<Figure>,
    /// Rounds per run (cold + warm ones); 0 where the workload has none.
    pub rounds: usize,
    /// Which figure decides the row against glibc: `setup`, `cold` or
    /// `warm`, `parity` (within noise), `other` (the difference is in the
    /// workload's other phases), `baseline` (glibc's own row); `None`
    /// without the figures to judge.
    pub decided_by: Option<String>,
    /// The row's verdict in words, e.g. `decided by cold (+120 ms of +140 ms)`.
    pub summary: Option<String>,
    /// Per-phase medians across runs, in phase order.
    pub phases: Vec<Phase>,
    /// Phases not run, with reasons.
    pub absent: Vec<Absent>,
    /// Error messages of the failed runs.
    pub errors: Vec<String>,
}

impl PairSummary {
    /// Whether every run of the pair succeeded.
    pub fn ok(&self) -> bool {
        self.failed_runs == 0 && self.ok_runs > 0
    }
}

/// Configuration echoed into the report.
#[derive(Clone, Debug, Serialize)]
pub struct ReportConfig {
    /// `"quick"` or `"full"`.
    pub suite: String,
    /// Runs per pair.
    pub runs: usize,
    /// Workloads, in order.
    pub workloads: Vec<String>,
    /// Allocators, in order.
    pub allocators: Vec<String>,
}

/// The complete benchmark report.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Machine facts.
    pub machine: MachineInfo,
    /// What was run.
    pub config: ReportConfig,
    /// One summary per (workload, allocator), workload-major.
    pub summaries: Vec<PairSummary>,
    /// Every individual run.
    pub runs: Vec<RunRecord>,
}

impl Report {
    /// Builds the report of what `config` asked for from the raw run records.
    pub fn new(machine: MachineInfo, config: ReportConfig, runs: Vec<RunRecord>) -> Self {
        let mut summaries = Vec::new();
        for w in &config.workloads {
            for a in &config.allocators {
                let recs: Vec<&RunRecord> = runs.iter().filter(|r| &r.workload == w && &r.allocator == a).collect();
                summaries.push(summarize(w, a, &recs));
            }
        }
        // Ratios against the baseline's medians, and the verdicts.
        for i in 0..summaries.len() {
            let Some(base) = summaries
                .iter()
                .find(|s| s.workload == summaries[i].workload && s.allocator == BASELINE && s.ok())
                .cloned()
            else {
                continue;
            };
            let s = &mut summaries[i];
            s.ratio_to_glibc = ratio(s.median_ms, base.median_ms);
            for (mine, glibc) in [
                (&mut s.setup, &base.setup),
                (&mut s.cold, &base.cold),
                (&mut s.warm, &base.warm),
            ] {
                if let Some(f) = mine {
                    f.ratio_to_glibc = ratio(Some(f.ms), glibc.as_ref().map(|g| g.ms));
                }
            }
            if let Some((by, text)) = decide(s, &base) {
                s.decided_by = Some(by.to_owned());
                s.summary = Some(text);
            }
        }
        Self {
            machine,
            config,
            summaries,
            runs,
        }
    }

    /// Whether every run succeeded.
    pub fn all_ok(&self) -> bool {
        self.summaries.iter().all(PairSummary::ok)
    }

    /// Pretty JSON of the whole report.
    pub fn to_json(&self) -> Result<String, String> {
        serde_json::to_string_pretty(self).map_err(|e| format!("cannot serialize report: {e}"))
    }

    /// The aligned results table, followed by failure details if any.
    pub fn render_table(&self) -> String {
        const HEADER: [&str; 17] = [
            "workload",
            "allocator",
            "median",
            "min",
            "max",
            "x glibc",
            "setup",
            "x",
            "cold",
            "x",
            "warm",
            "x",
            "peak RSS",
            "median RSS",
            "minflt",
            "verdict",
            "other phases (median ms)",
        ];
        // Columns from `median` to `minflt` are numbers, right-aligned.
        const NUMBERS: std::ops::Range<usize> = 2..15;
        let mut rows: Vec<[String; 17]> = Vec::new();
        for s in &self.summaries {
            let mut phases: Vec<String> = s
                .phases
                .iter()
                .filter(|p| !STANDARD.contains(&p.name.as_str()))
                .map(|p| format!("{}={}", p.name, fmt_ms(p.ms)))
                .collect();
            phases.extend(s.absent.iter().map(|a| format!("{}=absent", a.name)));
            let phases = phases.join(" ");
            if s.ok() {
                let fig = |f: &Option<Figure>| {
                    (
                        opt(f.as_ref().map(|f| f.ms), fmt_ms),
                        opt(f.as_ref().and_then(|f| f.ratio_to_glibc), fmt_ratio),
                    )
                };
                let ((setup, setup_x), (cold, cold_x), (warm, warm_x)) = (fig(&s.setup), fig(&s.cold), fig(&s.warm));
                rows.push([
                    s.workload.clone(),
                    s.allocator.clone(),
                    opt(s.median_ms, fmt_ms),
                    opt(s.min_ms, fmt_ms),
                    opt(s.max_ms, fmt_ms),
                    opt(s.ratio_to_glibc, fmt_ratio),
                    setup,
                    setup_x,
                    cold,
                    cold_x,
                    warm,
                    warm_x,
                    opt(s.peak_rss_kib, fmt_kib),
                    opt(s.median_rss_kib, fmt_kib),
                    opt(s.median_minflt, |f| f.to_string()),
                    s.summary.clone().unwrap_or_else(|| "-".into()),
                    phases,
                ]);
            } else {
                let failed = format!("FAILED {}/{}", s.failed_runs, s.failed_runs + s.ok_runs);
                let mut row: [String; 17] = Default::default();
                row[0] = s.workload.clone();
                row[1] = s.allocator.clone();
                row[2] = failed;
                row[16] = "see failures below".into();
                rows.push(row);
            }
        }
        let mut widths = HEADER.map(str::len);
        for r in &rows {
            for (w, c) in widths.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        let mut out = String::new();
        let line = |out: &mut String, cells: &[String]| {
            for (i, c) in cells.iter().enumerate() {
                let w = widths[i];
                if i == cells.len() - 1 {
                    let _ = write!(out, "{c}");
                } else if NUMBERS.contains(&i) {
                    let _ = write!(out, "{c:>w$}  ");
                } else {
                    let _ = write!(out, "{c:<w$}  ");
                }
            }
            out.push('\n');
        };
        let header: Vec<String> = HEADER.iter().map(|s| s.to_string()).collect();
        // `nalloc-bench --cmd` times the whole process; the suite's workers
        // time their workload.
        let timed = if self.config.suite.starts_with("cmd:") {
            "the process's wall time, start to exit"
        } else {
            "the workload's wall time in the worker"
        };
        let _ = writeln!(
            out,
            "\nresults ({} suite, {} run(s) per pair; times are {timed}, \
             peak RSS (the highest run, and the median of the runs) and minflt from wait4 \
             (batch and witness: wall time and peak RSS of the work every allocator does, before \
             their nalloc-only arena phases);\n\
             setup (before the first round), cold (the first round, in the fresh process) and warm \
             (the median of the other rounds) are medians across runs, each `x` the figure before it \
             over glibc's; the verdict names the figure that makes most of the difference to glibc's \
             median, a warm difference counted once per warm round):",
            self.config.suite, self.config.runs
        );
        line(&mut out, &header);
        let total: usize = widths.iter().sum::<usize>() + 2 * (widths.len() - 1);
        out.push_str(&"-".repeat(total.min(160)));
        out.push('\n');
        let mut prev: Option<&str> = None;
        for (r, s) in rows.iter().zip(&self.summaries) {
            if prev.is_some_and(|p| p != s.workload) {
                out.push('\n');
            }
            prev = Some(&s.workload);
            line(&mut out, r);
        }
        let absent: Vec<String> = self
            .summaries
            .iter()
            .flat_map(|s| {
                s.absent
                    .iter()
                    .map(move |a| format!("  {}/{} {}: {}", s.workload, s.allocator, a.name, a.reason))
            })
            .collect();
        if !absent.is_empty() {
            out.push_str("\nabsent phases:\n");
            for a in absent {
                out.push_str(&a);
                out.push('\n');
            }
        }
        let failed: Vec<&PairSummary> = self.summaries.iter().filter(|s| !s.ok()).collect();
        if !failed.is_empty() {
            out.push_str("\nFAILURES:\n");
            for s in failed {
                let _ = writeln!(
                    out,
                    "  {} / {}: {} of {} run(s) FAILED",
                    s.workload,
                    s.allocator,
                    s.failed_runs,
                    s.failed_runs + s.ok_runs
                );
                for e in &s.errors {
                    for l in e.lines() {
                        let _ = writeln!(out, "      | {l}");
                    }
                }
            }
        }
        out.push('\n');
        out
    }
}

fn summarize(workload: &str, allocator: &str, recs: &[&RunRecord]) -> PairSummary {
    let ok: Vec<&WorkerResult> = recs.iter().filter_map(|r| r.result.as_ref()).collect();
    let errors: Vec<String> = recs
        .iter()
        .filter_map(|r| r.error.as_ref().map(|e| format!("run {}: {e}", r.run + 1)))
        .collect();
    let failed_runs = recs.len() - ok.len();
    let mut s = PairSummary {
        workload: workload.to_owned(),
        allocator: allocator.to_owned(),
        ok_runs: ok.len(),
        failed_runs,
        median_ms: None,
        min_ms: None,
        max_ms: None,
        ratio_to_glibc: None,
        peak_rss_kib: None,
        median_rss_kib: None,
        median_minflt: None,
        setup: None,
        cold: None,
        warm: None,
        rounds: ok.first().map_or(0, |r| r.output.rounds),
        decided_by: None,
        summary: None,
        phases: Vec::new(),
        absent: ok.first().map(|r| r.output.absent.clone()).unwrap_or_default(),
        errors,
    };
    // A pair with any failed run gets no numbers at all.
    if ok.is_empty() || failed_runs > 0 {
        return s;
    }
    let walls: Vec<f64> = ok.iter().map(|r| r.wall_ms).collect();
    s.median_ms = Some(median(&walls));
    s.min_ms = walls.iter().copied().reduce(f64::min);
    s.max_ms = walls.iter().copied().reduce(f64::max);
    s.peak_rss_kib = recs.iter().map(|r| r.maxrss_kib).max();
    let rss: Vec<f64> = recs.iter().map(|r| r.maxrss_kib as f64).collect();
    s.median_rss_kib = Some(median(&rss).round() as u64);
    let faults: Vec<f64> = recs.iter().map(|r| r.minflt as f64).collect();
    s.median_minflt = Some(median(&faults).round() as u64);
    for p in &ok[0].output.phases {
        let values: Vec<f64> = ok
            .iter()
            .filter_map(|r| r.output.phases.iter().find(|q| q.name == p.name).map(|q| q.ms))
            .collect();
        s.phases.push(Phase {
            name: p.name.clone(),
            ms: median(&values),
        });
    }
    let figure = |name: &str| {
        s.phases.iter().find(|p| p.name == name).map(|p| Figure {
            ms: p.ms,
            ratio_to_glibc: None,
        })
    };
    (s.setup, s.cold, s.warm) = (figure(SETUP), figure(COLD), figure(WARM));
    s
}

fn ratio(value: Option<f64>, base: Option<f64>) -> Option<f64> {
    match (value, base) {
        (Some(v), Some(b)) if b > 0.0 => Some(v / b),
        _ => None,
    }
}

/// Which standard figure decides row `s` against glibc's row `base`, and
/// the verdict in words: `None` without figures to judge (a failed pair,
/// a `--cmd` row). Each figure's difference to glibc's is weighed by how
/// often it happens in a run (`warm`, one round's median, once per warm
/// round); the figure whose weighed difference is the largest share of
/// the difference in median total decides, unless that total is within
/// noise (see [`PARITY_FRACTION`]): then the row is at parity.
pub fn decide(s: &PairSummary, base: &PairSummary) -> Option<(&'static str, String)> {
    if !s.ok() || !base.ok() {
        return None;
    }
    if s.allocator == base.allocator {
        return Some(("baseline", "baseline".into()));
    }
    let (mine, glibc) = (s.median_ms?, base.median_ms?);
    let total = mine - glibc;
    let warm_rounds = s.rounds.saturating_sub(1) as f64;
    let diffs: Vec<(&'static str, f64)> = [
        (SETUP, &s.setup, &base.setup, 1.0),
        (COLD, &s.cold, &base.cold, 1.0),
        (WARM, &s.warm, &base.warm, warm_rounds),
    ]
    .into_iter()
    .filter_map(|(name, a, g, times)| Some((name, (a.as_ref()?.ms - g.as_ref()?.ms) * times)))
    .collect();
    if diffs.is_empty() {
        return None;
    }
    let half_spread = |p: &PairSummary| match (p.min_ms, p.max_ms) {
        (Some(lo), Some(hi)) => (hi - lo) / 2.0,
        _ => 0.0,
    };
    let noise = (PARITY_FRACTION * glibc).max(half_spread(s)).max(half_spread(base));
    if total.abs() <= noise {
        return Some((
            "parity",
            format!(
                "at parity ({} ms, within ±{} ms)",
                signed(total),
                signed(noise).trim_start_matches('+')
            ),
        ));
    }
    let toward = |d: f64| d * total.signum();
    let (name, d) = diffs
        .iter()
        .copied()
        .max_by(|x, y| toward(x.1).total_cmp(&toward(y.1)))?;
    if toward(d) <= 0.0 {
        let sum: f64 = diffs.iter().map(|d| d.1).sum();
        return Some((
            "other",
            format!(
                "decided by other phases (setup+cold+warm {} ms of {} ms)",
                signed(sum),
                signed(total)
            ),
        ));
    }
    Some((
        name,
        format!("decided by {name} ({} ms of {} ms)", signed(d), signed(total)),
    ))
}

/// Milliseconds with their sign, as precise as [`fmt_ms`].
fn signed(ms: f64) -> String {
    let a = ms.abs();
    if a >= 100.0 {
        format!("{ms:+.0}")
    } else if a >= 1.0 {
        format!("{ms:+.1}")
    } else {
        format!("{ms:+.3}")
    }
}

fn opt<T: Copy>(v: Option<T>, f: impl Fn(T) -> String) -> String {
    v.map(f).unwrap_or_else(|| "-".into())
}

/// Formats milliseconds with sensible precision.
pub fn fmt_ms(ms: f64) -> String {
    if ms >= 10_000.0 {
        format!("{:.1}s", ms / 1e3)
    } else if ms >= 100.0 {
        format!("{ms:.0}ms")
    } else if ms >= 1.0 {
        format!("{ms:.1}ms")
    } else {
        format!("{ms:.3}ms")
    }
}

/// Formats a ratio to glibc.
pub fn fmt_ratio(r: f64) -> String {
    format!("{r:.2}")
}

/// Formats KiB as MiB.
pub fn fmt_kib(kib: u64) -> String {
    format!("{:.1}MiB", kib as f64 / 1024.0)
}

// ---------------------------------------------------------------- SVG chart

/// A fixed color per allocator (see `AllocatorInfo::color`), so charts of different selections match.
fn color(allocator: &str) -> &'static str {
    crate::allocators::find(allocator).map_or("#ff7f0e", |a| a.color)
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Axis limit of the ratio panels: a ratio above it (a near-0 setup, say)
/// is drawn to the top, with its value as the label.
const RATIO_CAP: f64 = 5.0;

/// One ratio-to-glibc panel of the SVG: its title, a bar's tooltip word
/// and how to read the ratio and the figure (ms) out of a pair.
type RatioPanel = (&'static str, &'static str, fn(&PairSummary) -> Option<(f64, f64)>);

/// The ratio panels, top to bottom: wall time, then the three standard
/// figures.
const RATIO_PANELS: [RatioPanel; 4] = [
    ("wall time / glibc (lower is better)", "total", |s| {
        Some((s.ratio_to_glibc?, s.median_ms?))
    }),
    ("setup / glibc: the work before the first round", SETUP, |s| {
        figure_ratio(&s.setup)
    }),
    ("cold / glibc: the first round, in a fresh process", COLD, |s| {
        figure_ratio(&s.cold)
    }),
    ("warm / glibc: the median of the other rounds", WARM, |s| {
        figure_ratio(&s.warm)
    }),
];

fn figure_ratio(f: &Option<Figure>) -> Option<(f64, f64)> {
    let f = f.as_ref()?;
    Some((f.ratio_to_glibc?, f.ms))
}

/// Renders a six-panel SVG: the ratio to glibc (linear, lower is better)
/// of the wall time and of `setup`, `cold` and `warm`, then peak RSS and
/// minor page faults (log scales), grouped by workload, one bar per
/// allocator; a wall-time bar's tooltip has the row's verdict. Failed
/// pairs are marked `FAILED` instead of a bar.
pub fn render_svg(report: &Report) -> String {
    let workloads = &report.config.workloads;
    let allocs = &report.config.allocators;
    let bar_w = 16.0;
    let group_gap = 22.0;
    let group_w = bar_w * allocs.len() as f64 + group_gap;
    let left = 70.0;
    let right = 20.0;
    let plot_w = (group_w * workloads.len() as f64).max(640.0);
    let width = left + plot_w + right;
    let panel_h = 260.0;
    let ratio_tops: Vec<f64> = (0..RATIO_PANELS.len())
        .map(|i| 100.0 + i as f64 * (panel_h + 70.0))
        .collect();
    let top2 = ratio_tops[RATIO_PANELS.len() - 1] + panel_h + 70.0;
    let top3 = top2 + panel_h + 70.0;
    let height = top3 + panel_h + 40.0;
    let mut tops = ratio_tops.clone();
    tops.extend([top2, top3]);

    let get = |w: &str, a: &str| report.summaries.iter().find(|s| s.workload == w && s.allocator == a);

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{left}" y="22" font-size="15" font-weight="bold">nalloc-bench ({} suite, {} run(s) per pair, median)</text>"#,
        esc(&report.config.suite),
        report.config.runs
    );
    let m = &report.machine;
    let _ = writeln!(
        svg,
        r##"<text x="{left}" y="40" fill="#555">{} | nproc {} | kernel {} | THP {} | {}</text>"##,
        esc(&m.cpu),
        m.nproc,
        esc(&m.kernel),
        esc(&m.thp),
        esc(&m.date)
    );
    // Legend.
    let mut lx = left;
    for a in allocs {
        let c = color(a);
        let _ = writeln!(
            svg,
            r#"<rect x="{lx}" y="52" width="12" height="12" fill="{c}"/><text x="{}" y="62">{}</text>"#,
            lx + 16.0,
            esc(a)
        );
        lx += 30.0 + 7.0 * a.len() as f64;
    }

    // The ratio panels: linear, one axis each, capped (see RATIO_CAP).
    let mut ratio_axes = Vec::with_capacity(RATIO_PANELS.len());
    for ((title, _, read), &top) in RATIO_PANELS.iter().zip(&ratio_tops) {
        let rmax = report
            .summaries
            .iter()
            .filter_map(|s| read(s).map(|(r, _)| r))
            .fold(1.5f64, f64::max)
            .min(RATIO_CAP)
            * 1.2;
        panel_frame(&mut svg, left, top, plot_w, panel_h, title);
        let y = |v: f64| top + panel_h - v.min(rmax) / rmax * panel_h;
        for t in nice_ticks(rmax) {
            let _ = writeln!(
                svg,
                r##"<line x1="{left}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{t}</text>"##,
                left + plot_w,
                left - 5.0,
                y(t) + 4.0,
                y = y(t)
            );
        }
        let _ = writeln!(
            svg,
            r##"<line x1="{left}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#000" stroke-dasharray="4 3"/>"##,
            left + plot_w,
            y = y(1.0)
        );
        ratio_axes.push(rmax);
    }

    // Panel: peak RSS (the highest run), log10 scale in MiB.
    let rss = LogScale::new(
        report
            .summaries
            .iter()
            .filter_map(|s| s.peak_rss_kib.map(|k| k as f64 / 1024.0)),
        top2,
        panel_h,
    );
    panel_frame(&mut svg, left, top2, plot_w, panel_h, "peak RSS, MiB (log scale)");
    rss.gridlines(&mut svg, left, plot_w);
    // Panel: minor page faults (median run), log10 scale: the cost that
    // warm reuse saves, which time alone hides on a fast machine.
    let faults = LogScale::new(
        report
            .summaries
            .iter()
            .filter_map(|s| s.median_minflt.map(|f| f as f64)),
        top3,
        panel_h,
    );
    panel_frame(
        &mut svg,
        left,
        top3,
        plot_w,
        panel_h,
        "minor page faults, median run (log scale, lower is better)",
    );
    faults.gridlines(&mut svg, left, plot_w);

    for (wi, w) in workloads.iter().enumerate() {
        let gx = left + group_gap / 2.0 + wi as f64 * group_w;
        for &top in &tops {
            let _ = writeln!(
                svg,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                gx + bar_w * allocs.len() as f64 / 2.0,
                top + panel_h + 16.0,
                esc(w)
            );
        }
        for (ai, a) in allocs.iter().enumerate() {
            let x = gx + ai as f64 * bar_w;
            let c = color(a);
            let Some(s) = get(w, a) else { continue };
            if !s.ok() {
                for &top in &tops {
                    let (tx, ty) = (x + bar_w / 2.0 + 4.0, top + panel_h - 4.0);
                    let _ = writeln!(
                        svg,
                        r##"<text x="{tx:.1}" y="{ty:.1}" fill="#d00" font-weight="bold" transform="rotate(-90 {tx:.1} {ty:.1})">FAILED ({})</text>"##,
                        esc(a)
                    );
                }
                continue;
            }
            for (((_, what, read), &top), &rmax) in RATIO_PANELS.iter().zip(&ratio_tops).zip(&ratio_axes) {
                let Some((r, ms)) = read(s) else { continue };
                let y = top + panel_h - r.min(rmax) / rmax * panel_h;
                let title = if *what == "total" {
                    let verdict = s.summary.as_deref().map(|v| format!(", {v}")).unwrap_or_default();
                    format!("{w} / {a}: {r:.3}x glibc ({}){verdict}", fmt_ms(ms))
                } else {
                    format!("{w} / {a}: {what} {r:.3}x glibc ({})", fmt_ms(ms))
                };
                bar(&mut svg, x, bar_w, y, top + panel_h, c, &title);
                label(&mut svg, x + bar_w / 2.0, y - 3.0, &format!("{r:.2}"));
            }
            if let Some(k) = s.peak_rss_kib {
                let mib = k as f64 / 1024.0;
                let y = rss.y(mib);
                bar(
                    &mut svg,
                    x,
                    bar_w,
                    y,
                    top2 + panel_h,
                    c,
                    &format!("{w} / {a}: {mib:.1} MiB"),
                );
                label(&mut svg, x + bar_w / 2.0, y - 3.0, &format!("{mib:.0}"));
            }
            if let Some(f) = s.median_minflt {
                let y = faults.y(f as f64);
                bar(
                    &mut svg,
                    x,
                    bar_w,
                    y,
                    top3 + panel_h,
                    c,
                    &format!("{w} / {a}: {f} minor faults"),
                );
                label(&mut svg, x + bar_w / 2.0, y - 3.0, &short_count(f));
            }
        }
    }
    svg.push_str("</svg>\n");
    svg
}

/// A log10 axis over the values of one panel, in whole decades, with 0.3
/// decades of headroom above the top gridline for the value labels.
struct LogScale {
    lo_exp: f64,
    hi_exp: f64,
    top: f64,
    h: f64,
}

impl LogScale {
    fn new(values: impl Iterator<Item = f64>, top: f64, h: f64) -> Self {
        let (mut lo, mut hi) = (f64::INFINITY, 0.0f64);
        for v in values {
            lo = lo.min(v);
            hi = hi.max(v);
        }
        let (lo_exp, hi_exp) = if hi == 0.0 {
            (0.0, 1.0)
        } else {
            let lo_exp = lo.max(0.1).log10().floor();
            (lo_exp, hi.max(0.1).log10().ceil().max(lo_exp + 1.0))
        };
        Self { lo_exp, hi_exp, top, h }
    }

    fn y(&self, v: f64) -> f64 {
        let f = (v.max(10f64.powf(self.lo_exp)).log10() - self.lo_exp) / (self.hi_exp + 0.3 - self.lo_exp);
        self.top + self.h - f * self.h
    }

    fn gridlines(&self, svg: &mut String, left: f64, plot_w: f64) {
        let mut e = self.lo_exp;
        while e <= self.hi_exp {
            let v = 10f64.powf(e);
            let y = self.y(v);
            let _ = writeln!(
                svg,
                r##"<line x1="{left}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
                left + plot_w,
                left - 5.0,
                y + 4.0,
                if v >= 1.0 {
                    short_count(v as u64)
                } else {
                    format!("{v}")
                }
            );
            e += 1.0;
        }
    }
}

/// 1234567 -> "1.2M": a count short enough for a bar label or an axis.
fn short_count(n: u64) -> String {
    match n {
        0..=9_999 => n.to_string(),
        10_000..=999_999 => format!("{:.0}k", n as f64 / 1e3),
        _ => format!("{:.1}M", n as f64 / 1e6),
    }
}

fn panel_frame(svg: &mut String, x: f64, y: f64, w: f64, h: f64, title: &str) {
    let _ = writeln!(
        svg,
        r##"<text x="{x}" y="{:.1}" font-size="13" font-weight="bold">{}</text><rect x="{x}" y="{y}" width="{w:.1}" height="{h}" fill="none" stroke="#999"/>"##,
        y - 8.0,
        esc(title)
    );
}

fn bar(svg: &mut String, x: f64, w: f64, y: f64, bottom: f64, color: &str, title: &str) {
    let _ = writeln!(
        svg,
        r#"<rect x="{:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{color}"><title>{}</title></rect>"#,
        x + 1.0,
        w - 2.0,
        (bottom - y).max(0.5),
        esc(title)
    );
}

fn label(svg: &mut String, x: f64, y: f64, text: &str) {
    let _ = writeln!(
        svg,
        r#"<text x="{x:.1}" y="{y:.1}" font-size="8" text-anchor="start" transform="rotate(-90 {x:.1} {y:.1})">{}</text>"#,
        esc(text)
    );
}

/// Gridline values from 0 to `max` with a round step.
fn nice_ticks(max: f64) -> Vec<f64> {
    let raw = max / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(raw);
    (0..)
        .map(|i| i as f64 * step)
        .take_while(|v| *v <= max + 1e-9)
        .map(|v| (v * 1000.0).round() / 1000.0)
        .collect()
}

/// The per-proof peaks (KiB) of a timeline run's output, in proof order.
pub fn parse_timeline(stdout: &str) -> Vec<u64> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix(crate::workloads::TIMELINE_PREFIX))
        .filter_map(|rest| rest.split_whitespace().nth(3)?.parse().ok())
        .collect()
}

/// How much the per-proof peak creeps: the median of the last third of the
/// proofs over the median of the first third, less one; the first proof
/// (which fills the warm pool) is left out. 0 with fewer than 4 proofs.
pub fn timeline_creep(peaks: &[u64]) -> f64 {
    let rest: Vec<f64> = peaks.iter().skip(1).map(|&k| k as f64).collect();
    if rest.len() < 3 {
        return 0.0;
    }
    let third = rest.len() / 3;
    let first = median(&rest[..third]);
    let last = median(&rest[rest.len() - third..]);
    if first > 0.0 {
        last / first - 1.0
    } else {
        0.0
    }
}

/// A line chart of per-proof peaks (KiB), drawn as MiB from zero.
pub fn render_timeline_svg(title: &str, peaks: &[u64]) -> String {
    let (width, height, left, top, plot_h) = (640.0, 260.0, 60.0, 30.0, 190.0);
    let plot_w = width - left - 20.0;
    let max = peaks.iter().copied().max().unwrap_or(1).max(1) as f64 / 1024.0;
    let x = |i: usize| left + plot_w * i as f64 / (peaks.len().max(2) - 1) as f64;
    let y = |kib: u64| top + plot_h * (1.0 - (kib as f64 / 1024.0) / max);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="sans-serif" font-size="11">"#
    );
    let _ = write!(svg, r#"<text x="{left}" y="18" font-size="13">{}</text>"#, esc(title));
    let _ = write!(
        svg,
        r##"<line x1="{left}" y1="{}" x2="{}" y2="{}" stroke="#888"/><line x1="{left}" y1="{top}" x2="{left}" y2="{}" stroke="#888"/>"##,
        top + plot_h,
        left + plot_w,
        top + plot_h,
        top + plot_h
    );
    let _ = write!(svg, r#"<text x="4" y="{}">{max:.0} MiB</text>"#, top + 4.0);
    let _ = write!(svg, r#"<text x="4" y="{}">0</text>"#, top + plot_h);
    let _ = write!(
        svg,
        r#"<text x="{}" y="{}">proof</text>"#,
        left + plot_w / 2.0,
        top + plot_h + 20.0
    );
    let points: Vec<String> = peaks
        .iter()
        .enumerate()
        .map(|(i, &k)| format!("{:.1},{:.1}", x(i), y(k)))
        .collect();
    let _ = write!(
        svg,
        r##"<polyline fill="none" stroke="#1f77b4" stroke-width="2" points="{}"/>"##,
        points.join(" ")
    );
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formatting() {
        assert_eq!(format_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(format_utc(1_767_225_599), "2025-12-31T23:59:59Z");
    }

    fn record(run: usize, wall_ms: f64, maxrss_kib: u64, ok: bool) -> RunRecord {
        RunRecord {
            workload: "small".into(),
            allocator: "nalloc".into(),
            run,
            result: ok.then(|| WorkerResult {
                workload: "small".into(),
                allocator: "nalloc".into(),
                full: false,
                wall_ms,
                output: crate::result::WorkloadOutput::default(),
                maxrss_kib,
                minflt: 10,
            }),
            error: (!ok).then(|| "exit code 1".into()),
            process_ms: wall_ms,
            maxrss_kib,
            process_maxrss_kib: maxrss_kib,
            minflt: 10 * (run as u64 + 1),
            exit: if ok { "0" } else { "1" }.into(),
        }
    }

    #[test]
    fn summary_has_highest_and_median_rss() {
        let recs = [
            record(0, 30.0, 1000, true),
            record(1, 10.0, 5000, true),
            record(2, 20.0, 1200, true),
        ];
        let s = summarize("small", "nalloc", &recs.iter().collect::<Vec<_>>());
        assert!(s.ok());
        assert_eq!((s.median_ms, s.min_ms, s.max_ms), (Some(20.0), Some(10.0), Some(30.0)));
        // One run's outlier sets the highest, not the median.
        assert_eq!((s.peak_rss_kib, s.median_rss_kib), (Some(5000), Some(1200)));
        assert_eq!(s.median_minflt, Some(20));
        // A pair with a failed run gets no numbers.
        let recs = [record(0, 30.0, 1000, true), record(1, 0.0, 900, false)];
        let s = summarize("small", "nalloc", &recs.iter().collect::<Vec<_>>());
        assert!(!s.ok());
        assert_eq!((s.peak_rss_kib, s.median_rss_kib, s.median_ms), (None, None, None));
    }

    #[test]
    fn svg_has_time_rss_and_fault_panels() {
        let mut glibc = record(0, 20.0, 4096, true);
        glibc.allocator = "glibc".into();
        glibc.minflt = 250_000;
        let nalloc = record(0, 10.0, 2048, true);
        let config = ReportConfig {
            suite: "quick".into(),
            runs: 1,
            workloads: vec!["small".into()],
            allocators: vec!["glibc".into(), "nalloc".into()],
        };
        let machine = MachineInfo {
            cpu: "cpu".into(),
            nproc: 2,
            kernel: "k".into(),
            thp: "madvise".into(),
            date: "d".into(),
        };
        let svg = render_svg(&Report::new(machine, config, vec![glibc, nalloc]));
        for title in ["wall time / glibc", "peak RSS, MiB", "minor page faults"] {
            assert!(svg.contains(title), "no panel `{title}`");
        }
        // One bar per allocator in each of the three panels, with its value.
        assert!(svg.contains("small / nalloc: 0.500x glibc"));
        assert!(svg.contains("small / glibc: 4.0 MiB"));
        assert!(svg.contains("small / glibc: 250000 minor faults"));
        assert!(svg.contains("small / nalloc: 10 minor faults"));
        assert!(svg.contains(">250k<"), "short label for large counts");
    }

    /// A run of `allocator` on `small` with wall time `wall` and the
    /// standard figures `(setup, cold, warm)` over `rounds` rounds.
    fn timed_run(allocator: &str, run: usize, wall: f64, figures: (f64, f64, f64), rounds: usize) -> RunRecord {
        let mut r = record(run, wall, 1024, true);
        r.allocator = allocator.into();
        let out = &mut r.result.as_mut().unwrap().output;
        out.phase(SETUP, figures.0);
        out.phase(COLD, figures.1);
        out.phase(WARM, figures.2);
        out.phase("extra", 1.0);
        out.rounds = rounds;
        r
    }

    fn report(runs: Vec<RunRecord>) -> Report {
        let mut allocators: Vec<String> = Vec::new();
        for r in &runs {
            if !allocators.contains(&r.allocator) {
                allocators.push(r.allocator.clone());
            }
        }
        let config = ReportConfig {
            suite: "quick".into(),
            runs: 1,
            workloads: vec!["small".into()],
            allocators,
        };
        let machine = MachineInfo {
            cpu: "cpu".into(),
            nproc: 2,
            kernel: "k".into(),
            thp: "madvise".into(),
            date: "d".into(),
        };
        Report::new(machine, config, runs)
    }

    fn row<'a>(r: &'a Report, allocator: &str) -> &'a PairSummary {
        r.summaries.iter().find(|s| s.allocator == allocator).unwrap()
    }

    #[test]
    fn setup_cold_and_warm_are_medians_with_ratios_to_glibc() {
        let r = report(vec![
            timed_run("glibc", 0, 100.0, (10.0, 40.0, 10.0), 4),
            timed_run("glibc", 1, 110.0, (30.0, 60.0, 20.0), 4),
            timed_run("glibc", 2, 105.0, (20.0, 50.0, 12.0), 4),
            timed_run("nalloc", 0, 100.0, (40.0, 25.0, 6.0), 4),
            timed_run("nalloc", 1, 100.0, (40.0, 25.0, 6.0), 4),
            timed_run("nalloc", 2, 100.0, (40.0, 25.0, 6.0), 4),
        ]);
        let (g, n) = (row(&r, "glibc"), row(&r, "nalloc"));
        // Medians across runs: glibc setup 20, cold 50, warm 12.
        let fig = |ms, ratio| {
            Some(Figure {
                ms,
                ratio_to_glibc: Some(ratio),
            })
        };
        assert_eq!(
            (&g.setup, &g.cold, &g.warm),
            (&fig(20.0, 1.0), &fig(50.0, 1.0), &fig(12.0, 1.0))
        );
        assert_eq!((&n.setup, &n.cold), (&fig(40.0, 2.0), &fig(25.0, 0.5)));
        assert_eq!(n.warm, fig(6.0, 0.5));
        assert_eq!(n.rounds, 4);
        // The JSON carries each figure with its ratio.
        let json: serde_json::Value = serde_json::from_str(&r.to_json().unwrap()).unwrap();
        let nalloc = &json["summaries"][1];
        assert_eq!(nalloc["allocator"], "nalloc");
        assert_eq!(nalloc["setup"], serde_json::json!({"ms": 40.0, "ratio_to_glibc": 2.0}));
        assert_eq!(nalloc["cold"]["ratio_to_glibc"], 0.5);
        assert_eq!(nalloc["warm"]["ratio_to_glibc"], 0.5);
        assert_eq!(nalloc["decided_by"], "parity");
        // The table has the three figures, their ratios and the verdict;
        // the other phases stay in their own column.
        let table = r.render_table();
        let line = table
            .lines()
            .find(|l| l.starts_with("small") && l.contains("nalloc"))
            .unwrap();
        for cell in ["40.0ms", "2.00", "25.0ms", "0.50", "6.0ms", "extra=1.0ms", "at parity"] {
            assert!(line.contains(cell), "no `{cell}` in {line}");
        }
        assert!(!line.contains("cold="), "{line}");
        // Without a glibc row there are no ratios and no verdicts.
        let alone = report(vec![timed_run("nalloc", 0, 100.0, (40.0, 25.0, 6.0), 4)]);
        let n = row(&alone, "nalloc");
        assert_eq!(
            n.cold,
            Some(Figure {
                ms: 25.0,
                ratio_to_glibc: None
            })
        );
        assert_eq!((n.ratio_to_glibc, n.summary.as_deref()), (None, None));
    }

    #[test]
    fn the_figure_with_the_largest_share_of_the_difference_decides() {
        let glibc = timed_run("glibc", 0, 1000.0, (100.0, 300.0, 200.0), 4);
        // +140 ms in total: setup +10, cold +120, warm 3 x +3.
        let r = report(vec![
            glibc.clone(),
            timed_run("nalloc", 0, 1140.0, (110.0, 420.0, 203.0), 4),
        ]);
        let n = row(&r, "nalloc");
        assert_eq!(n.decided_by.as_deref(), Some("cold"));
        assert_eq!(n.summary.as_deref(), Some("decided by cold (+120 ms of +140 ms)"));
        assert_eq!(row(&r, "glibc").decided_by.as_deref(), Some("baseline"));
        // A warm difference counts once per warm round: 3 x -40 beats cold's -100.
        let r = report(vec![
            glibc.clone(),
            timed_run("nalloc", 0, 780.0, (100.0, 200.0, 160.0), 4),
        ]);
        let n = row(&r, "nalloc");
        assert_eq!(n.summary.as_deref(), Some("decided by warm (-120 ms of -220 ms)"));
        // Only differences toward the total count: setup's +500 cannot
        // decide a row that is faster in total.
        let r = report(vec![
            glibc.clone(),
            timed_run("nalloc", 0, 800.0, (600.0, 100.0, 10.0), 4),
        ]);
        assert_eq!(row(&r, "nalloc").decided_by.as_deref(), Some("warm"));
        // Within 3 % of glibc's total: at parity, whatever the figures.
        let r = report(vec![
            glibc.clone(),
            timed_run("nalloc", 0, 1025.0, (400.0, 100.0, 200.0), 4),
        ]);
        let n = row(&r, "nalloc");
        assert_eq!(n.decided_by.as_deref(), Some("parity"));
        assert_eq!(n.summary.as_deref(), Some("at parity (+25.0 ms, within ±30.0 ms)"));
        // A difference none of the three figures shows is the other phases'.
        let r = report(vec![glibc, timed_run("nalloc", 0, 1500.0, (100.0, 300.0, 200.0), 4)]);
        let n = row(&r, "nalloc");
        assert_eq!(n.decided_by.as_deref(), Some("other"));
        // The spread of the runs widens the noise: two runs 200 ms apart
        // put a +80 ms total at parity.
        let r = report(vec![
            timed_run("glibc", 0, 900.0, (100.0, 300.0, 200.0), 4),
            timed_run("glibc", 1, 1100.0, (100.0, 300.0, 200.0), 4),
            timed_run("nalloc", 0, 1080.0, (100.0, 380.0, 200.0), 4),
        ]);
        assert_eq!(row(&r, "nalloc").decided_by.as_deref(), Some("parity"));
    }

    #[test]
    fn svg_has_the_three_figures_against_glibc() {
        let r = report(vec![
            timed_run("glibc", 0, 1000.0, (100.0, 300.0, 200.0), 4),
            timed_run("nalloc", 0, 1140.0, (110.0, 420.0, 203.0), 4),
        ]);
        let svg = render_svg(&r);
        for title in ["setup / glibc", "cold / glibc", "warm / glibc", "wall time / glibc"] {
            assert!(svg.contains(title), "no panel `{title}`");
        }
        for bar in [
            "small / nalloc: setup 1.100x glibc (110ms)",
            "small / nalloc: cold 1.400x glibc (420ms)",
            "small / nalloc: warm 1.015x glibc (203ms)",
            "small / glibc: cold 1.000x glibc (300ms)",
            "small / nalloc: 1.140x glibc (1140ms), decided by cold (+120 ms of +140 ms)",
        ] {
            assert!(svg.contains(bar), "no bar `{bar}`");
        }
    }

    #[test]
    fn ticks() {
        assert_eq!(nice_ticks(1.65), vec![0.0, 0.5, 1.0, 1.5]);
    }

    #[test]
    fn timeline_is_parsed_judged_and_drawn() {
        let out = "noise\nNALLOC_BENCH_TIMELINE proof 0 peak_kib 900\nNALLOC_BENCH_TIMELINE proof 1 peak_kib 100\n\
                   NALLOC_BENCH_TIMELINE proof 2 peak_kib 102\nNALLOC_BENCH_TIMELINE proof 3 peak_kib 101\n\
                   NALLOC_BENCH_TIMELINE proof 4 peak_kib 130\nNALLOC_BENCH_TIMELINE proof 5 peak_kib 131\n\
                   NALLOC_BENCH_TIMELINE proof 6 peak_kib 132\n";
        let peaks = parse_timeline(out);
        assert_eq!(peaks, vec![900, 100, 102, 101, 130, 131, 132]);
        // First proof left out; thirds of [100, 102, 101, 130, 131, 132]:
        // medians 101 and 131.5.
        let creep = timeline_creep(&peaks);
        assert!((creep - (131.5 / 101.0 - 1.0)).abs() < 1e-9, "{creep}");
        assert_eq!(timeline_creep(&[500, 100, 100, 100, 100]), 0.0);
        let svg = render_timeline_svg("t <1>", &peaks);
        assert!(svg.starts_with("<svg") && svg.contains("t &lt;1&gt;"));
        let points = svg.split("points=\"").nth(1).unwrap().split('"').next().unwrap();
        assert_eq!(points.split(' ').count(), peaks.len());
    }
}
