//! Randomized histories: a simulated sequential register per key, driven by clients whose
//! operations overlap at random, always yields a linearizable history; changing one read to an
//! older value that had certainly been overwritten must always be flagged. Deterministic seeds.

use super::{check, Verdict};
use crate::history::{Kind, Op, Outcome};

/// splitmix64: tiny, deterministic, and good enough to scatter timestamps.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }
}

struct Shape {
    clients: u32,
    keys: u32,
    ops_per_client: u32,
    /// Pause between a client's operations and an operation's duration, in ns (upper bounds).
    max_gap: u64,
    max_duration: u64,
    /// Share of operations that get no answer, in percent.
    unanswered: u64,
}

/// Generates a history whose operations really took effect in some order consistent with
/// their intervals (each at a random point inside its interval, or never if unanswered).
fn generate(seed: u64, shape: &Shape) -> Vec<Op> {
    let mut rng = Rng(seed);
    // (effect point, op, whether it takes effect): outcomes are filled in effect order below.
    let mut planned: Vec<(u64, Op, bool)> = Vec::new();
    for client in 0..shape.clients {
        let mut now = rng.below(shape.max_gap);
        for i in 0..shape.ops_per_client {
            let key = format!("k{}", rng.below(u64::from(shape.keys)));
            let invoke = now + rng.below(shape.max_gap);
            let complete = invoke + 1 + rng.below(shape.max_duration);
            let point = invoke + rng.below(complete - invoke + 1);
            let new = format!("c{client}-{i}");
            let kind = match rng.below(10) {
                0..=3 => Kind::Read,
                4..=6 => Kind::Write(new),
                // The expected value is filled in from the register (sometimes deliberately off).
                _ => Kind::Cas { expect: None, new },
            };
            let unanswered = rng.percent(shape.unanswered);
            let takes_effect = !unanswered || rng.percent(50);
            let op = Op {
                client,
                key,
                kind,
                outcome: Outcome::Unknown,
                invoke,
                complete: if unanswered { u64::MAX } else { complete },
            };
            planned.push((point, op, takes_effect));
            now = complete;
        }
    }
    planned.sort_by_key(|(point, op, _)| (*point, op.client));
    let mut registers: std::collections::HashMap<String, Option<String>> = Default::default();
    let mut history = Vec::new();
    for (_, mut op, takes_effect) in planned {
        let register = registers.entry(op.key.clone()).or_default();
        let outcome = match &mut op.kind {
            Kind::Read => Outcome::Read(register.clone()),
            Kind::Write(value) => {
                if takes_effect {
                    *register = Some(value.clone());
                }
                Outcome::Written
            }
            Kind::Cas { expect, new } => {
                *expect = if rng.percent(70) {
                    register.clone()
                } else {
                    Some(format!("stale{}", rng.below(3)))
                };
                let swapped = *expect == *register;
                if swapped && takes_effect {
                    *register = Some(new.clone());
                }
                Outcome::Cas(swapped)
            }
        };
        if op.complete != u64::MAX {
            op.outcome = outcome;
        }
        history.push(op);
    }
    history
}

/// Whether an answered operation certainly left `Some(value)` in the register.
fn wrote(op: &Op) -> Option<&str> {
    match (&op.kind, &op.outcome) {
        (Kind::Write(v), Outcome::Written) | (Kind::Cas { new: v, .. }, Outcome::Cas(true)) => {
            Some(v)
        }
        _ => None,
    }
}

/// Picks a read and an older value it certainly cannot return: one written by an operation
/// that completed before another write began, which itself completed before the read began
/// (values are unique, so nothing else wrote it).
fn stale_read(history: &[Op], rng: &mut Rng) -> Option<(usize, String)> {
    let latest_before = |key: &str, time: u64| {
        let writes = history.iter().filter(|w| w.key == key && w.complete < time);
        writes
            .filter(|w| wrote(w).is_some())
            .max_by_key(|w| w.complete)
    };
    for _ in 0..1000 {
        let r = rng.below(history.len() as u64) as usize;
        let Outcome::Read(seen) = &history[r].outcome else {
            continue;
        };
        let Some(newer) = latest_before(&history[r].key, history[r].invoke) else {
            continue;
        };
        let older = latest_before(&history[r].key, newer.invoke).and_then(wrote);
        if let Some(older) = older.filter(|o| seen.as_deref() != Some(*o)) {
            return Some((r, older.to_owned()));
        }
    }
    None
}

/// Makes one read of `history` stale and checks that exactly that read is blamed.
fn assert_stale_read_flagged(history: &mut [Op], seed: u64) -> bool {
    let mut rng = Rng(seed ^ 0x5EED);
    let Some((r, older)) = stale_read(history, &mut rng) else {
        return false;
    };
    history[r].outcome = Outcome::Read(Some(older));
    let report = check(history);
    let blamed = report.keys.iter().find_map(|k| match &k.verdict {
        Verdict::Violation(why) => Some(why.blocked.clone()),
        _ => None,
    });
    assert_eq!(blamed.as_ref(), Some(&history[r]), "seed {seed}:\n{report}");
    true
}

const SMALL: Shape = Shape {
    clients: 6,
    keys: 2,
    ops_per_client: 40,
    max_gap: 3_000_000,
    max_duration: 8_000_000,
    unanswered: 5,
};

#[test]
fn simulated_register_histories_are_linearizable() {
    for seed in 0..60 {
        let history = generate(seed, &SMALL);
        let report = check(&history);
        assert!(report.is_linearizable(), "seed {seed}:\n{report}");
    }
}

#[test]
fn one_read_made_stale_is_always_flagged() {
    let mut flagged = 0;
    for seed in 0..60 {
        let mut history = generate(seed, &SMALL);
        if assert_stale_read_flagged(&mut history, seed) {
            flagged += 1;
        }
    }
    // The shape makes stale candidates common; a generator that stopped producing them would
    // make this test vacuous.
    assert!(
        flagged >= 50,
        "only {flagged} histories had a read to make stale"
    );
}

/// The suite's size: 8 clients at ~100 ops/s each for 90 s over 5 keys, 3% unanswered. It
/// passes, and one stale read in it is found within the default budget (without the handling
/// of unanswered writes nobody read, the search gives up on such a key).
#[test]
fn a_full_run_sized_history_checks() {
    let shape = Shape {
        clients: 8,
        keys: 5,
        ops_per_client: 9_000,
        max_gap: 4_000_000,
        max_duration: 12_000_000,
        unanswered: 3,
    };
    let mut history = generate(7, &shape);
    let started = std::time::Instant::now();
    let report = check(&history);
    assert!(report.is_linearizable(), "{report}");
    let took = started.elapsed();
    eprintln!("{} ops checked in {took:?}:\n{report}", history.len());
    assert!(
        assert_stale_read_flagged(&mut history, 7),
        "no read to make stale"
    );
}

/// Whether a tiny history is linearizable, by trying every order of every subset of its
/// unanswered operations: slow, obviously right, and blind to the search's prunings.
fn brute_force(ops: &[Op]) -> bool {
    fn extend(ops: &[&Op], placed: &mut Vec<bool>, state: Option<String>) -> bool {
        let answered_left = ops
            .iter()
            .zip(placed.iter())
            .any(|(o, p)| !p && o.is_determinate());
        if !answered_left {
            return true;
        }
        for i in 0..ops.len() {
            // An operation may come next unless one that completed before it began is unplaced.
            let blocked =
                (0..ops.len()).any(|j| !placed[j] && j != i && ops[j].complete < ops[i].invoke);
            if placed[i] || blocked {
                continue;
            }
            let next = match (&ops[i].kind, &ops[i].outcome) {
                (Kind::Read, Outcome::Read(seen)) => (*seen == state).then(|| state.clone()),
                (Kind::Write(v), _) => Some(Some(v.clone())),
                (Kind::Cas { expect, new }, outcome) => match (*expect == state, outcome) {
                    (true, Outcome::Cas(true) | Outcome::Unknown) => Some(Some(new.clone())),
                    (false, Outcome::Cas(false) | Outcome::Unknown) => Some(state.clone()),
                    _ => None,
                },
                _ => None,
            };
            if let Some(next) = next {
                placed[i] = true;
                let found = extend(ops, placed, next);
                placed[i] = false;
                if found {
                    return true;
                }
            }
        }
        false
    }
    let ops: Vec<&Op> = ops
        .iter()
        .filter(|o| !matches!((&o.kind, &o.outcome), (Kind::Read, Outcome::Unknown)))
        .collect();
    extend(&ops, &mut vec![false; ops.len()], None)
}

/// Random tiny histories (values from a small pool, so reads and CASes often match and often
/// do not) must get the same verdict from the checker as from brute force.
#[test]
fn the_search_agrees_with_brute_force_on_tiny_histories() {
    let mut rng = Rng(42);
    let pool = ["a", "b", "c"];
    let (mut yes, mut no) = (0, 0);
    for round in 0..4000 {
        let n = 1 + rng.below(7);
        let history: Vec<Op> = (0..n)
            .map(|i| {
                let pick = |rng: &mut Rng| pool[rng.below(3) as usize].to_owned();
                let value = pick(&mut rng);
                let (kind, outcome) = match rng.below(3) {
                    0 => (Kind::Read, Outcome::Read(rng.percent(80).then_some(value))),
                    1 => (Kind::Write(value), Outcome::Written),
                    _ => {
                        let expect = rng.percent(80).then(|| pick(&mut rng));
                        (
                            Kind::Cas { expect, new: value },
                            Outcome::Cas(rng.percent(50)),
                        )
                    }
                };
                let invoke = rng.below(10);
                let unanswered = rng.percent(25);
                Op {
                    client: i as u32,
                    key: "k".into(),
                    kind,
                    outcome: if unanswered {
                        Outcome::Unknown
                    } else {
                        outcome
                    },
                    invoke,
                    complete: if unanswered {
                        u64::MAX
                    } else {
                        invoke + rng.below(6)
                    },
                }
            })
            .collect();
        let expected = brute_force(&history);
        let report = check(&history);
        assert!(!report.gave_up(), "round {round}:\n{report}");
        assert_eq!(
            report.is_linearizable(),
            expected,
            "round {round}: {history:#?}\n{report}"
        );
        if expected {
            yes += 1
        } else {
            no += 1
        }
    }
    // Both verdicts must be well represented, or the comparison proves little.
    assert!(yes > 1000 && no > 1000, "{yes} linearizable, {no} not");
}
