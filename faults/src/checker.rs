//! Linearizability checker for the suite's histories.
//!
//! Each key is an independent register (P-compositionality: a history is linearizable iff
//! every key's sub-history is), so the history is split by key and each key is searched on its
//! own, on as many threads as the machine has. A key's search is Wing & Gong's algorithm with
//! Lowe's cache, as porcupine's `checkSingle` (see [`search`]), against a register that starts
//! absent. Unanswered reads are dropped (they change nothing); unanswered writes and CASes may
//! take effect at any time after their call, or never.
//!
//! The search is exponential in the worst case, so each key has a budget (steps, and an
//! optional deadline); a key that runs out is reported as "gave up", never as a verdict.

#[cfg(test)]
mod edge_tests;
mod events;
mod model;
mod placed;
#[cfg(test)]
mod random_tests;
mod search;
#[cfg(test)]
mod unanswered_tests;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::history::{Kind, Op, Outcome};
use model::Values;
use search::{Limit, Stuck};

/// How much search each key may use.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Search steps (events visited) per key.
    pub steps_per_key: u64,
    /// A time after which every key still being searched gives up.
    pub deadline: Option<Instant>,
}

impl Default for Budget {
    /// The suite's histories (8 clients, 5 keys, 90 s, a few percent unanswered) take tens of
    /// thousands of steps per key; a pathological key (say twenty operations always in flight
    /// on it) gives up after about 15 s in a debug build, 4 s in a release one.
    fn default() -> Self {
        Budget {
            steps_per_key: 10_000_000,
            deadline: None,
        }
    }
}

/// The checker's findings, one entry per key in key order.
#[derive(Debug, Clone)]
pub struct Report {
    pub keys: Vec<KeyReport>,
}

#[derive(Debug, Clone)]
pub struct KeyReport {
    pub key: String,
    /// Operations checked (unanswered reads are not).
    pub ops: usize,
    /// Unanswered reads, dropped.
    pub dropped_reads: usize,
    /// Search steps used.
    pub steps: u64,
    pub elapsed: Duration,
    pub verdict: Verdict,
}

#[derive(Debug, Clone)]
pub enum Verdict {
    Linearizable,
    /// No linearization exists.
    Violation(Box<Explanation>),
    /// The budget ran out before the search could decide; `furthest` is where it had got to.
    GaveUp {
        reason: GaveUp,
        furthest: Option<Box<Explanation>>,
    },
    /// The key's operations cannot be checked as recorded (e.g. a read with a write's outcome).
    Malformed(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GaveUp {
    Steps(u64),
    Deadline,
}

/// Where the search got furthest: a linearizable prefix, and the operation that could not be
/// placed after it before it completed.
#[derive(Debug, Clone)]
pub struct Explanation {
    /// How many operations the longest linearizable prefix found places.
    pub placed: usize,
    /// Its last operations, oldest first, each with the value the register held after it.
    pub tail: Vec<(Op, Option<String>)>,
    /// What the register held after the prefix.
    pub state: Option<String>,
    /// The operation that completed without having been placeable.
    pub blocked: Op,
    /// Other operations invoked by then and not placed after the prefix.
    pub pending: Vec<Op>,
    /// If the blocked operation read (or a CAS expected) a value: the operations that wrote
    /// it, so a stale read can be traced to its write. Empty if nobody wrote it.
    pub writers: Vec<Op>,
}

impl Report {
    /// True only if every key was proven linearizable (a key given up on is not).
    pub fn is_linearizable(&self) -> bool {
        self.keys
            .iter()
            .all(|k| matches!(k.verdict, Verdict::Linearizable))
    }

    /// True if some key was proven not linearizable (or could not be read).
    pub fn has_violation(&self) -> bool {
        self.keys
            .iter()
            .any(|k| matches!(k.verdict, Verdict::Violation(_) | Verdict::Malformed(_)))
    }

    /// True if the search gave up on some key.
    pub fn gave_up(&self) -> bool {
        self.keys
            .iter()
            .any(|k| matches!(k.verdict, Verdict::GaveUp { .. }))
    }
}

/// Checks a history with the default [`Budget`].
pub fn check(history: &[Op]) -> Report {
    check_with(history, Budget::default())
}

/// Checks a history: each key's sub-history for linearizability against a register.
pub fn check_with(history: &[Op], budget: Budget) -> Report {
    let mut by_key: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, op) in history.iter().enumerate() {
        by_key.entry(op.key.as_str()).or_default().push(i);
    }
    let keys: Vec<(&str, Vec<usize>)> = by_key.into_iter().collect();
    let next = AtomicUsize::new(0);
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(keys.len())
        .max(1);
    let mut done: Vec<(usize, KeyReport)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some((key, ops)) = keys.get(i) else { break };
                        out.push((i, check_key(history, key, ops, budget)));
                    }
                    out
                })
            })
            .collect();
        // A worker only panics on a bug in the search; say so rather than lose the key.
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    done.sort_by_key(|(i, _)| *i);
    let mut reports: Vec<KeyReport> = done.into_iter().map(|(_, r)| r).collect();
    for (i, (key, ops)) in keys.iter().enumerate() {
        if reports.get(i).is_none_or(|r| r.key != *key) {
            let verdict = Verdict::Malformed("the checker's worker for this key panicked".into());
            reports.insert(i, blank(key, ops.len(), verdict));
        }
    }
    Report { keys: reports }
}

fn blank(key: &str, ops: usize, verdict: Verdict) -> KeyReport {
    KeyReport {
        key: key.to_owned(),
        ops,
        dropped_reads: 0,
        steps: 0,
        elapsed: Duration::ZERO,
        verdict,
    }
}

fn check_key(history: &[Op], key: &str, indices: &[usize], budget: Budget) -> KeyReport {
    let started = Instant::now();
    let model::Prepared {
        calls,
        values,
        dropped_reads,
    } = match model::prepare(history, indices) {
        Ok(prepared) => prepared,
        Err(why) => return blank(key, indices.len(), Verdict::Malformed(why)),
    };
    let limit = Limit {
        steps: budget.steps_per_key,
        deadline: budget.deadline,
    };
    let (verdict, steps) = search::search(&calls, limit);
    let explain = |stuck: Stuck| Box::new(explanation(history, indices, &values, stuck));
    let verdict = match verdict {
        search::Verdict::Linearizable => Verdict::Linearizable,
        search::Verdict::Violation(stuck) => Verdict::Violation(explain(stuck)),
        search::Verdict::OutOfBudget { deadline, furthest } => Verdict::GaveUp {
            reason: if deadline {
                GaveUp::Deadline
            } else {
                GaveUp::Steps(steps)
            },
            furthest: furthest.map(explain),
        },
    };
    KeyReport {
        key: key.to_owned(),
        ops: calls.len(),
        dropped_reads,
        steps,
        elapsed: started.elapsed(),
        verdict,
    }
}

fn explanation(history: &[Op], key: &[usize], values: &Values<'_>, stuck: Stuck) -> Explanation {
    let blocked = history[stuck.blocked].clone();
    let wanted = match (&blocked.kind, &blocked.outcome) {
        (Kind::Read, Outcome::Read(Some(v)))
        | (
            Kind::Cas {
                expect: Some(v), ..
            },
            _,
        ) => Some(v),
        _ => None,
    };
    let writers = key
        .iter()
        .map(|&i| &history[i])
        .filter(|op| match &op.kind {
            Kind::Write(v) | Kind::Cas { new: v, .. } => Some(v) == wanted,
            Kind::Read => false,
        })
        .cloned()
        .collect();
    let ops = |ids: Vec<usize>| ids.into_iter().map(|i| history[i].clone()).collect();
    Explanation {
        placed: stuck.placed,
        tail: stuck
            .tail
            .into_iter()
            .map(|(i, state)| (history[i].clone(), values.name(state)))
            .collect(),
        state: values.name(stuck.state),
        blocked,
        pending: ops(stuck.pending),
        writers,
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.is_linearizable() {
            "linearizable"
        } else if self.has_violation() {
            "NOT linearizable"
        } else {
            "undecided (the search gave up)"
        };
        writeln!(f, "history of {} key(s): {verdict}", self.keys.len())?;
        for key in &self.keys {
            write!(f, "{key}")?;
        }
        Ok(())
    }
}

impl fmt::Display for KeyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "key {:?}: {} ops ({} unanswered reads dropped), {} steps in {:.3} s: ",
            self.key,
            self.ops,
            self.dropped_reads,
            self.steps,
            self.elapsed.as_secs_f64()
        )?;
        match &self.verdict {
            Verdict::Linearizable => writeln!(f, "linearizable"),
            Verdict::Violation(why) => writeln!(f, "NOT linearizable\n{why}"),
            Verdict::Malformed(why) => writeln!(f, "cannot be checked: {why}"),
            Verdict::GaveUp { reason, furthest } => {
                match reason {
                    GaveUp::Steps(n) => writeln!(f, "gave up after {n} steps (undecided)")?,
                    GaveUp::Deadline => writeln!(f, "gave up at the deadline (undecided)")?,
                }
                match furthest {
                    Some(why) => write!(f, "  furthest point reached:\n{why}"),
                    None => Ok(()),
                }
            }
        }
    }
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = |v: &Option<String>| {
            v.as_ref()
                .map_or("(absent)".to_owned(), |s| format!("{s:?}"))
        };
        writeln!(
            f,
            "  the longest linearizable prefix found places {} operation(s){}",
            self.placed,
            if self.tail.is_empty() {
                ""
            } else {
                "; its last ones, with the value after each:"
            }
        )?;
        for (op, after) in &self.tail {
            writeln!(f, "    {op}  => {}", value(after))?;
        }
        writeln!(f, "  the register then holds {}, and this operation cannot be placed before it completes:", value(&self.state))?;
        writeln!(f, "    {}", self.blocked)?;
        if !self.pending.is_empty() {
            writeln!(
                f,
                "  other operations already invoked, tried after the prefix without success:"
            )?;
            for op in &self.pending {
                writeln!(f, "    {op}")?;
            }
        }
        let reads = matches!(self.blocked.kind, Kind::Read);
        let what = if reads {
            "the value it read"
        } else {
            "the value it expected"
        };
        if !self.writers.is_empty() {
            writeln!(f, "  {what} was written by:")?;
            for op in &self.writers {
                writeln!(f, "    {op}")?;
            }
        } else if matches!(&self.blocked.outcome, Outcome::Read(Some(_)))
            || matches!(
                &self.blocked.kind,
                Kind::Cas {
                    expect: Some(_),
                    ..
                }
            )
        {
            writeln!(f, "  no operation wrote {what}")?;
        }
        Ok(())
    }
}
