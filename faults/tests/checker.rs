//! Hand-made histories for the linearizability checker: ones that must pass, and the classic
//! anomalies (stale read, read of a value never written, reads in opposite orders, impossible
//! CAS, lost write) that must be flagged with an explanation naming the culprit.

use faults::checker::{check, Verdict};
use faults::history::{Kind, Op, Outcome};

const MS: u64 = 1_000_000;

/// A builder keeping the tests short: every op is on key "k" unless `on` says otherwise.
fn op(client: u32, kind: Kind, outcome: Outcome, invoke_ms: u64, complete_ms: Option<u64>) -> Op {
    Op {
        client,
        key: "k".into(),
        kind,
        outcome,
        invoke: invoke_ms * MS,
        complete: complete_ms.map_or(u64::MAX, |c| c * MS),
    }
}

fn on(key: &str, mut op: Op) -> Op {
    op.key = key.into();
    op
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

fn write_unanswered(client: u32, value: &str, from: u64) -> Op {
    op(
        client,
        Kind::Write(value.into()),
        Outcome::Unknown,
        from,
        None,
    )
}

fn read(client: u32, seen: Option<&str>, from: u64, to: u64) -> Op {
    op(
        client,
        Kind::Read,
        Outcome::Read(seen.map(Into::into)),
        from,
        Some(to),
    )
}

fn cas(
    client: u32,
    expect: Option<&str>,
    new: &str,
    swapped: Option<bool>,
    from: u64,
    to: u64,
) -> Op {
    let kind = Kind::Cas {
        expect: expect.map(Into::into),
        new: new.into(),
    };
    match swapped {
        Some(s) => op(client, kind, Outcome::Cas(s), from, Some(to)),
        None => op(client, kind, Outcome::Unknown, from, None),
    }
}

fn assert_linearizable(history: &[Op]) {
    let report = check(history);
    assert!(report.is_linearizable(), "expected linearizable:\n{report}");
    assert!(!report.has_violation() && !report.gave_up());
}

/// Asserts a violation and returns the operation the explanation blames.
fn assert_violation(history: &[Op]) -> Op {
    let report = check(history);
    assert!(report.has_violation(), "expected a violation:\n{report}");
    assert!(!report.is_linearizable());
    let text = report.to_string();
    assert!(text.contains("NOT linearizable"), "{text}");
    let blamed = report.keys.iter().find_map(|k| match &k.verdict {
        Verdict::Violation(why) => Some(why.blocked.clone()),
        _ => None,
    });
    blamed.expect("a violating key has an explanation")
}

#[test]
fn empty_and_sequential_histories_are_linearizable() {
    assert_linearizable(&[]);
    assert_linearizable(&[
        read(1, None, 0, 1),
        write(1, "a", 2, 3),
        read(2, Some("a"), 4, 5),
        write(2, "b", 6, 7),
        read(1, Some("b"), 8, 9),
        cas(3, Some("b"), "c", Some(true), 10, 11),
        read(1, Some("c"), 12, 13),
    ]);
}

#[test]
fn a_read_overlapping_a_write_may_see_either_value() {
    for seen in [None, Some("a")] {
        assert_linearizable(&[write(1, "a", 0, 10), read(2, seen, 2, 4)]);
    }
    // Once one concurrent read saw the new value, a later read may not see the old one...
    let blamed = assert_violation(&[
        write(1, "a", 0, 10),
        read(2, Some("a"), 2, 3),
        read(3, None, 4, 5),
    ]);
    assert_eq!(blamed.client, 3);
    // ...but an overlapping read still may, since it can take effect first.
    assert_linearizable(&[
        write(1, "a", 0, 10),
        read(2, Some("a"), 2, 6),
        read(3, None, 4, 5),
    ]);
}

#[test]
fn operations_that_merely_touch_are_concurrent() {
    // The clock cannot order an answer and a call stamped with the same instant.
    assert_linearizable(&[write(1, "a", 0, 5), read(2, None, 5, 6)]);
    assert_violation(&[write(1, "a", 0, 5), read(2, None, 6, 7)]);
}

#[test]
fn concurrent_writes_may_land_in_either_order() {
    for last in ["a", "b"] {
        assert_linearizable(&[
            write(1, "a", 0, 10),
            write(2, "b", 1, 9),
            read(3, Some(last), 11, 12),
            read(4, Some(last), 13, 14),
        ]);
    }
}

#[test]
fn unanswered_writes_may_or_may_not_take_effect() {
    // It took effect (late: after a read that still saw the old value).
    assert_linearizable(&[
        write(1, "a", 0, 1),
        write_unanswered(2, "b", 2),
        read(3, Some("a"), 3, 4),
        read(3, Some("b"), 50, 51),
    ]);
    // It never took effect.
    assert_linearizable(&[
        write_unanswered(2, "b", 0),
        read(3, None, 3, 4),
        read(3, None, 500, 501),
    ]);
    // Unanswered reads say nothing and are dropped.
    let history = [
        write(1, "a", 0, 1),
        op(2, Kind::Read, Outcome::Unknown, 2, None),
        read(3, Some("a"), 3, 4),
    ];
    let report = check(&history);
    assert!(report.is_linearizable(), "{report}");
    assert_eq!((report.keys[0].ops, report.keys[0].dropped_reads), (2, 1));
    // But an unanswered write cannot take effect before it was sent, nor twice.
    assert_violation(&[read(3, Some("b"), 0, 1), write_unanswered(2, "b", 2)]);
    assert_violation(&[
        write_unanswered(2, "b", 0),
        read(3, Some("b"), 1, 2),
        write(1, "a", 3, 4),
        read(3, Some("b"), 5, 6),
    ]);
}

#[test]
fn compare_and_set_follows_the_register() {
    assert_linearizable(&[
        cas(1, None, "a", Some(true), 0, 1),
        cas(2, None, "x", Some(false), 2, 3),
        cas(3, Some("a"), "b", Some(true), 4, 5),
        cas(4, Some("a"), "y", Some(false), 6, 7),
        read(5, Some("b"), 8, 9),
    ]);
    // Two concurrent CASes on the same value: exactly one may win.
    assert_linearizable(&[
        write(1, "a", 0, 1),
        cas(2, Some("a"), "b", Some(true), 2, 6),
        cas(3, Some("a"), "c", Some(false), 3, 5),
        read(4, Some("b"), 7, 8),
    ]);
    assert_violation(&[
        write(1, "a", 0, 1),
        cas(2, Some("a"), "b", Some(true), 2, 6),
        cas(3, Some("a"), "c", Some(true), 3, 5),
    ]);
    // A CAS that failed although nothing could have changed the value it expected.
    assert_eq!(
        assert_violation(&[
            write(1, "a", 0, 1),
            cas(2, Some("a"), "b", Some(false), 2, 3)
        ])
        .client,
        2
    );
}

#[test]
fn unanswered_cas_may_have_swapped_or_not() {
    for (seen, swapped_value) in [("b", "b"), ("a", "b")] {
        assert_linearizable(&[
            write(1, "a", 0, 1),
            cas(2, Some("a"), swapped_value, None, 2, 0),
            read(3, Some(seen), 5, 6),
        ]);
    }
    // If the register did not hold what it expected, it cannot have swapped.
    assert_violation(&[
        write(1, "z", 0, 1),
        cas(2, Some("a"), "b", None, 2, 0),
        read(3, Some("b"), 5, 6),
    ]);
    // Its swap may explain a CAS failure elsewhere.
    assert_linearizable(&[
        write(1, "a", 0, 1),
        cas(2, Some("a"), "b", None, 2, 0),
        cas(3, Some("a"), "c", Some(false), 5, 6),
    ]);
}

#[test]
fn many_clients_racing_on_several_keys() {
    let mut history = Vec::new();
    for key in ["x", "y", "z"] {
        for client in 0..8u32 {
            let value = format!("{key}{client}");
            history.push(on(key, write(client, &value, 0, 10 + u64::from(client))));
        }
        // Every writer overlaps every other, so any of them may be last; all later reads agree.
        for client in 0..8u32 {
            history.push(on(
                key,
                read(
                    client + 8,
                    Some(&format!("{key}5")),
                    20,
                    21 + u64::from(client),
                ),
            ));
        }
    }
    let report = check(&history);
    assert!(report.is_linearizable(), "{report}");
    assert_eq!(report.keys.len(), 3);
    // Keys are independent: one key's anomaly does not taint the others.
    history.push(on("y", read(99, Some("y6"), 40, 41)));
    let report = check(&history);
    let bad: Vec<&str> = report
        .keys
        .iter()
        .filter(|k| !matches!(k.verdict, Verdict::Linearizable))
        .map(|k| k.key.as_str())
        .collect();
    assert_eq!(bad, ["y"], "{report}");
}

#[test]
fn stale_read_after_an_acknowledged_write_is_flagged_and_explained() {
    let history = [
        write(1, "a", 0, 1),
        write(2, "b", 2, 3),
        read(3, Some("a"), 4, 5),
    ];
    let report = check(&history);
    let Verdict::Violation(why) = &report.keys[0].verdict else {
        panic!("expected a violation:\n{report}");
    };
    assert_eq!(why.blocked, history[2]);
    assert_eq!(why.state.as_deref(), Some("b"));
    assert_eq!(why.placed, 2);
    assert_eq!(why.writers, [history[0].clone()]);
    let text = report.to_string();
    for needle in [
        "client 3 read = \"a\"",
        "[4.000 ms .. 5.000 ms]",
        "holds \"b\"",
        "client 2 write \"b\" ok",
        "the value it read was written by:\n    client 1 write \"a\" ok  [0.000 ms .. 1.000 ms]",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
    }
}

#[test]
fn read_of_a_value_never_written_is_flagged() {
    let report = check(&[write(1, "a", 0, 1), read(2, Some("ghost"), 2, 3)]);
    let Verdict::Violation(why) = &report.keys[0].verdict else {
        panic!("expected a violation:\n{report}");
    };
    assert_eq!((why.blocked.client, why.writers.len()), (2, 0));
    assert!(
        report
            .to_string()
            .contains("no operation wrote the value it read"),
        "{report}"
    );
}

#[test]
fn reads_observing_concurrent_writes_in_opposite_orders_are_flagged() {
    assert_violation(&[
        write(1, "a", 0, 100),
        write(2, "b", 0, 100),
        read(3, Some("a"), 10, 11),
        read(3, Some("b"), 20, 21),
        read(4, Some("b"), 12, 13),
        read(4, Some("a"), 22, 23),
    ]);
}

#[test]
fn lost_acknowledged_write_is_flagged() {
    // The write was acknowledged, then a read shows the register as if it never happened.
    let blamed = assert_violation(&[
        write(1, "a", 0, 1),
        write(1, "b", 2, 3),
        read(2, Some("b"), 4, 5),
        read(2, None, 6, 7),
    ]);
    assert_eq!(blamed.outcome, Outcome::Read(None));
}

/// The classic partition anomaly: a member cut off from the majority still serves reads from
/// its own (stale) copy while the majority moves on; writes sent to it never get an answer.
#[test]
fn stale_read_from_an_isolated_member_is_flagged() {
    let history = [
        write(1, "a", 0, 2),
        read(3, Some("a"), 3, 4),
        // The partition starts; client 3 talks to the isolated member from here on.
        write_unanswered(4, "lost", 5),
        write(2, "b", 10, 12),
        read(1, Some("b"), 13, 14),
        read(3, Some("a"), 20, 21),
        cas(1, Some("b"), "c", Some(true), 22, 25),
        read(3, Some("a"), 30, 31),
    ];
    let blamed = assert_violation(&history);
    assert_eq!(blamed, history[5]);
    // Served by the majority instead, the same timeline is fine.
    let mut healed = history.to_vec();
    healed[5] = read(3, Some("b"), 20, 21);
    healed[7] = read(3, Some("c"), 30, 31);
    assert_linearizable(&healed);
}
