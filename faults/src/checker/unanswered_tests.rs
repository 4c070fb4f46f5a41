//! Cases for the search's handling of unanswered writes whose value nobody read: they are only
//! placed just before a CAS that failed although the register held what it expected, one
//! write per such CAS, in invoke order, and never before they were invoked.

use super::check;
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

fn write(value: &str, from: u64, to: u64) -> Op {
    op(
        1,
        Kind::Write(value.into()),
        Outcome::Written,
        from,
        Some(to),
    )
}

fn lost(value: &str, from: u64) -> Op {
    op(2, Kind::Write(value.into()), Outcome::Unknown, from, None)
}

fn read(value: &str, from: u64, to: u64) -> Op {
    op(
        3,
        Kind::Read,
        Outcome::Read(Some(value.into())),
        from,
        Some(to),
    )
}

fn cas(expect: &str, new: &str, swapped: Option<bool>, from: u64, to: u64) -> Op {
    let kind = Kind::Cas {
        expect: Some(expect.into()),
        new: new.into(),
    };
    let (outcome, to) = match swapped {
        Some(s) => (Outcome::Cas(s), Some(to)),
        None => (Outcome::Unknown, None),
    };
    op(4, kind, outcome, from, to)
}

fn linearizable(history: &[Op]) -> bool {
    let report = check(history);
    assert!(!report.gave_up(), "{report}");
    report.is_linearizable()
}

#[test]
fn an_unread_unanswered_write_explains_one_failed_cas() {
    assert!(linearizable(&[
        write("a", 0, 1),
        lost("x", 2),
        cas("a", "c", Some(false), 3, 4)
    ]));
    // Without it, the failure is impossible.
    assert!(!linearizable(&[
        write("a", 0, 1),
        cas("a", "c", Some(false), 3, 4)
    ]));
    // Nor can it land before it was sent.
    assert!(!linearizable(&[
        write("a", 0, 1),
        cas("a", "c", Some(false), 2, 3),
        lost("x", 5)
    ]));
    // An unanswered CAS of an unread value explains it only if it could have swapped.
    for (expect, ok) in [("a", true), ("z", false)] {
        let history = [
            write("a", 0, 1),
            cas(expect, "x", None, 2, 0),
            cas("a", "c", Some(false), 3, 4),
        ];
        assert_eq!(linearizable(&history), ok, "expecting {expect}");
    }
}

#[test]
fn one_unanswered_write_cannot_explain_two_failures_far_apart() {
    let mut history = vec![
        write("v", 0, 1),
        lost("x", 2),
        cas("v", "c1", Some(false), 3, 4),
        write("y", 5, 6),
        read("y", 7, 8),
        cas("y", "c2", Some(false), 9, 10),
    ];
    assert!(!linearizable(&history));
    // A second one can.
    history.push(lost("z", 2));
    assert!(linearizable(&history));
}

#[test]
fn any_invoked_unanswered_write_may_be_the_one_that_landed() {
    // Listed late-invoked first: the search must not depend on the order of the history.
    let history = [
        lost("late", 20),
        lost("early", 2),
        write("a", 0, 1),
        cas("a", "c1", Some(false), 3, 4),
        write("b", 21, 22),
        cas("b", "c2", Some(false), 23, 24),
    ];
    assert!(linearizable(&history));
    // Sent after the first CAS failed, neither can explain that failure.
    let mut history = history.to_vec();
    history[1] = lost("early", 30);
    assert!(!linearizable(&history));
}

#[test]
fn read_values_are_not_interchangeable() {
    // "x" was read, so its write is placed like any other: once, where the read can see it.
    assert!(linearizable(&[
        write("a", 0, 1),
        lost("x", 2),
        read("x", 3, 4)
    ]));
    assert!(!linearizable(&[
        write("a", 0, 1),
        lost("x", 2),
        read("x", 3, 4),
        write("b", 5, 6),
        read("x", 7, 8),
    ]));
}
