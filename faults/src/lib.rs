//! Fault-injection suite: three registry members (or three real etcd members) as processes,
//! clients recording a history, a nemesis injecting faults, and a linearizability checker.
//! See README.md for how to run it and what it checks.

pub mod checker;
pub mod client;
pub mod cluster;
pub mod history;
pub mod invariants;
pub mod nemesis;
pub mod net;
pub mod ops;
pub mod run;
pub mod summary;

/// The checker's verdict on `history`, as a run keeps it.
pub fn check_history(history: &[history::Op]) -> summary::Verdict {
    let report = checker::check(history);
    summary::Verdict {
        linearizable: report.is_linearizable(),
        violation: report.has_violation(),
        text: report.to_string(),
    }
}
