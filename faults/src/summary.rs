//! What a run reports: operations by kind and outcome, the faults injected, the checker's
//! verdict, the invariants, and the failover times (from a fault that took the leader away
//! to the first acknowledged write invoked after it).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::history::{Kind, Op, Outcome};
use crate::nemesis::{FaultEvent, FaultKind};
use crate::run::Config;

/// The linearizability checker's answer, as a run keeps it.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub linearizable: bool,
    /// Some key was proven not linearizable (not merely given up on).
    pub violation: bool,
    /// The checker's report (its `Display`).
    pub text: String,
}

/// One invariant's result: `Ok(what was seen)` or `Err(what broke)`.
#[derive(Debug, Clone)]
pub struct Invariant {
    pub name: &'static str,
    pub result: Result<String, String>,
}

impl Invariant {
    pub fn new(name: &'static str, result: Result<String, String>) -> Invariant {
        Invariant { name, result }
    }
}

/// A finished run.
#[derive(Debug)]
pub struct Summary {
    pub target: String,
    pub seed: u64,
    pub duration: Duration,
    pub control: bool,
    /// (kind, outcome) → count.
    pub ops: BTreeMap<(&'static str, &'static str), usize>,
    pub faults: Vec<FaultEvent>,
    pub verdict: Verdict,
    pub check_time: Duration,
    pub invariants: Vec<Invariant>,
    /// Per fault that took the leader away: its kind and the failover time, if a write was
    /// acknowledged after it at all.
    pub failovers: Vec<(FaultKind, Option<Duration>)>,
    /// The members' logs and data, kept when the run failed.
    pub kept_dir: Option<PathBuf>,
}

impl Summary {
    pub fn new(
        cfg: &Config,
        history: &[Op],
        faults: Vec<FaultEvent>,
        verdict: Verdict,
        invariants: Vec<Invariant>,
        check_time: Duration,
    ) -> Summary {
        let mut ops = BTreeMap::new();
        for op in history {
            *ops.entry(names(op)).or_insert(0) += 1;
        }
        let failovers = faults
            .iter()
            .filter(|f| f.leader_victim && f.kind != FaultKind::KillTwo)
            .map(|f| (f.kind, failover(history, f.at)))
            .collect();
        Summary {
            target: cfg.target.to_string(),
            seed: cfg.seed,
            duration: cfg.duration,
            control: cfg.control,
            ops,
            faults,
            verdict,
            check_time,
            invariants,
            failovers,
            kept_dir: None,
        }
    }

    /// Linearizable and every invariant held.
    pub fn passed(&self) -> bool {
        self.verdict.linearizable && self.invariants.iter().all(|i| i.result.is_ok())
    }

    /// Failover times by fault kind: (kind, count, min, median, max).
    pub fn failover_stats(&self) -> Vec<(FaultKind, usize, Duration, Duration, Duration)> {
        let mut by: BTreeMap<FaultKind, Vec<Duration>> = BTreeMap::new();
        for (kind, t) in &self.failovers {
            if let Some(t) = t {
                by.entry(*kind).or_default().push(*t);
            }
        }
        by.into_iter()
            .map(|(k, mut v)| {
                v.sort();
                (k, v.len(), v[0], v[v.len() / 2], v[v.len() - 1])
            })
            .collect()
    }
}

fn names(op: &Op) -> (&'static str, &'static str) {
    let kind = match op.kind {
        Kind::Read => "read",
        Kind::Write(_) => "write",
        Kind::Cas { .. } => "cas",
    };
    let outcome = match op.outcome {
        Outcome::Read(_) | Outcome::Written => "ok",
        Outcome::Cas(true) => "swapped",
        Outcome::Cas(false) => "not swapped",
        Outcome::Unknown => "unknown",
    };
    (kind, outcome)
}

/// From `at` to the completion of the first acknowledged write invoked at or after it.
fn failover(history: &[Op], at: u64) -> Option<Duration> {
    history
        .iter()
        .filter(|op| op.invoke >= at)
        .filter(|op| matches!(op.outcome, Outcome::Written | Outcome::Cas(true)))
        .map(|op| op.complete)
        .min()
        .map(|done| Duration::from_nanos(done - at))
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = if self.control {
            " (negative control)"
        } else {
            ""
        };
        writeln!(
            f,
            "== faults: target {}{mode}, {:?}, seed {}",
            self.target, self.duration, self.seed
        )?;
        writeln!(f, "operations:")?;
        for ((kind, outcome), n) in &self.ops {
            writeln!(f, "  {kind:<6} {outcome:<12} {n:>7}")?;
        }
        writeln!(f, "faults injected: {}", self.faults.len())?;
        for e in &self.faults {
            writeln!(
                f,
                "  {:>8.3}s {:<18} members {:?}{} healed at {:.3}s, healthy {}",
                Duration::from_nanos(e.at).as_secs_f64(),
                format!("{:?}", e.kind),
                e.members,
                if e.leader_victim { " (leader)" } else { "" },
                Duration::from_nanos(e.healed).as_secs_f64(),
                e.recovered_after
                    .map(|d| format!("{} later", ms(d)))
                    .unwrap_or_else(|| "NEVER".into()),
            )?;
            if !e.note.is_empty() {
                writeln!(f, "            {}", e.note)?;
            }
        }
        let verdict = if self.verdict.linearizable {
            "LINEARIZABLE"
        } else {
            "NOT LINEARIZABLE"
        };
        writeln!(f, "checker: {verdict} (checked in {:?})", self.check_time)?;
        for line in self.verdict.text.lines() {
            writeln!(f, "  {line}")?;
        }
        writeln!(f, "invariants:")?;
        for inv in &self.invariants {
            match &inv.result {
                Ok(what) => writeln!(f, "  ok   {}: {what}", inv.name)?,
                Err(what) => writeln!(f, "  FAIL {}: {what}", inv.name)?,
            }
        }
        writeln!(
            f,
            "failover (leader fault -> first acknowledged write invoked after it):"
        )?;
        for (kind, n, min, med, max) in self.failover_stats() {
            writeln!(
                f,
                "  {:<18} n={n:<3} min {:>7} median {:>7} max {:>7}",
                format!("{kind:?}"),
                ms(min),
                ms(med),
                ms(max)
            )?;
        }
        if let Some(dir) = &self.kept_dir {
            writeln!(f, "members' logs and data kept in {}", dir.display())?;
        }
        Ok(())
    }
}

/// The failover times of two runs side by side (for BENCHMARKS.md), as a Markdown table.
pub fn side_by_side(a: &Summary, b: &Summary) -> String {
    let (sa, sb) = (a.failover_stats(), b.failover_stats());
    let cell = |s: &[(FaultKind, usize, Duration, Duration, Duration)], k: FaultKind| {
        s.iter()
            .find(|x| x.0 == k)
            .map(|x| format!("{} / {} / {} (n={})", ms(x.2), ms(x.3), ms(x.4), x.1))
            .unwrap_or_else(|| "-".into())
    };
    let mut out = format!(
        "| leader fault | {} min / median / max | {} min / median / max |\n| --- | --- | --- |\n",
        a.target, b.target
    );
    for k in [
        FaultKind::KillLeader,
        FaultKind::QuickRestartLeader,
        FaultKind::Pause,
        FaultKind::PartitionLeader,
        FaultKind::KillRandom,
    ] {
        out += &format!("| {k:?} | {} | {} |\n", cell(&sa, k), cell(&sb, k));
    }
    out
}
