//! The checker's edges: input it cannot check, and a search that runs out of budget, each
//! reported distinctly from a verdict.

use std::time::Instant;

use super::{check, check_with, Budget, GaveUp, Verdict};
use crate::history::{Kind, Op, Outcome};

const MS: u64 = 1_000_000;

fn op(client: u32, kind: Kind, outcome: Outcome, from: u64, to: Option<u64>) -> Op {
    let key = "k".to_owned();
    let (invoke, complete) = (from * MS, to.map_or(u64::MAX, |t| t * MS));
    Op {
        client,
        key,
        kind,
        outcome,
        invoke,
        complete,
    }
}

fn write(client: u32, value: &str, from: u64, to: u64) -> Op {
    op(
        client,
        Kind::Write(value.into()),
        Outcome::Written,
        from,
        Some(to),
    )
}

fn on(key: &str, mut op: Op) -> Op {
    op.key = key.into();
    op
}

#[test]
fn malformed_operations_are_reported_not_panicked_on() {
    let report = check(&[
        op(1, Kind::Read, Outcome::Written, 0, Some(1)),
        on("other", write(1, "a", 0, 1)),
    ]);
    assert!(report.has_violation() && !report.is_linearizable());
    assert!(
        matches!(report.keys[0].verdict, Verdict::Malformed(_)),
        "{report}"
    );
    assert!(
        matches!(report.keys[1].verdict, Verdict::Linearizable),
        "{report}"
    );
    let backwards = check(&[write(1, "a", 5, 4)]);
    assert!(
        matches!(backwards.keys[0].verdict, Verdict::Malformed(_)),
        "{backwards}"
    );
    assert!(
        backwards.to_string().contains("before it was invoked"),
        "{backwards}"
    );
}

#[test]
fn the_budget_gives_up_distinctly_from_a_violation() {
    let history: Vec<Op> = (0..3000u64)
        .map(|i| write(1, &format!("v{i}"), 2 * i, 2 * i + 1))
        .collect();
    let tight = Budget {
        steps_per_key: 100,
        deadline: None,
    };
    let report = check_with(&history, tight);
    assert!(!report.is_linearizable() && !report.has_violation() && report.gave_up());
    assert!(
        matches!(
            report.keys[0].verdict,
            Verdict::GaveUp {
                reason: GaveUp::Steps(_),
                ..
            }
        ),
        "{report}"
    );
    let late = Budget {
        steps_per_key: u64::MAX,
        deadline: Some(Instant::now()),
    };
    let report = check_with(&history, late);
    assert!(
        matches!(
            report.keys[0].verdict,
            Verdict::GaveUp {
                reason: GaveUp::Deadline,
                ..
            }
        ),
        "{report}"
    );
    assert!(report.to_string().contains("undecided"), "{report}");
    assert!(check(&history).is_linearizable());
}
