//! The watch invariant's judgement on made-up inputs: it passes a faithful stream and fails
//! each way a reconnecting watcher can go wrong (so the suite's watch check can fail).

use faults::history::{Kind, Op, Outcome};
use faults::invariants::{check_watch, Event};

fn write(value: &str, outcome: Outcome) -> Op {
    Op {
        client: 0,
        key: "/faults/k0".into(),
        kind: Kind::Write(value.into()),
        outcome,
        invoke: 0,
        complete: 1,
    }
}

fn ev(rev: i64, value: &str) -> Event {
    (rev, "/faults/k0".into(), value.into())
}

fn history() -> Vec<Op> {
    vec![
        write("a", Outcome::Written),
        write("b", Outcome::Written),
        write("c", Outcome::Unknown),
    ]
}

#[test]
fn a_faithful_stream_passes() {
    let seen = vec![ev(5, "a"), ev(6, "b")];
    let got = check_watch(&seen, &seen, &history());
    assert!(got.is_ok(), "{got:?}");
    // An unacknowledged write may appear or not.
    let with_c = vec![ev(5, "a"), ev(6, "b"), ev(7, "c")];
    assert!(check_watch(&with_c, &with_c, &history()).is_ok());
}

#[test]
fn a_duplicate_revision_fails() {
    let seen = vec![ev(5, "a"), ev(5, "a"), ev(6, "b")];
    let reference = vec![ev(5, "a"), ev(6, "b")];
    let err = check_watch(&seen, &reference, &history()).expect_err("duplicate");
    assert!(err.contains("duplicate or out of order"), "{err}");
}

#[test]
fn a_missed_revision_fails() {
    let seen = vec![ev(6, "b")];
    let reference = vec![ev(5, "a"), ev(6, "b")];
    let err = check_watch(&seen, &reference, &history()).expect_err("gap");
    assert!(err.contains("first difference at #0"), "{err}");
    assert!(err.contains("acknowledged write a"), "{err}");
}

#[test]
fn an_acknowledged_write_missing_from_both_fails() {
    let seen = vec![ev(5, "a")];
    let err = check_watch(&seen, &seen, &history()).expect_err("lost write");
    assert!(err.contains("acknowledged write b"), "{err}");
}

#[test]
fn a_value_nobody_wrote_fails() {
    let seen = vec![ev(5, "a"), ev(6, "b"), ev(7, "zzz")];
    let err = check_watch(&seen, &seen, &history()).expect_err("phantom");
    assert!(err.contains("no client wrote"), "{err}");
}
