//! The register model one key's sub-history is checked against, with values interned to small
//! integers so a search state is a `u32` and comparing states costs nothing.

use std::collections::{HashMap, HashSet};

use super::search::Call;
use crate::history::{Kind, Op, Outcome};

/// An interned value: [`ABSENT`], [`UNREAD`], or an index into the key's table.
pub(crate) type Value = u32;

/// The initial state of every register: the key has never been written.
pub(crate) const ABSENT: Value = 0;

/// One operation as the model sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// A read that returned `Value`: only possible while the register holds it.
    Read(Value),
    /// A write: always possible, whether acknowledged or not.
    Write(Value),
    /// A compare-and-set; `swapped` is `None` when the answer never came, so the model decides.
    Cas {
        expect: Value,
        new: Value,
        swapped: Option<bool>,
    },
}

impl Step {
    /// The register after this operation takes effect in `state`, or `None` if the operation's
    /// recorded outcome is impossible in that state.
    pub(crate) fn apply(self, state: Value) -> Option<Value> {
        match self {
            Step::Read(seen) => (seen == state).then_some(state),
            Step::Write(value) => Some(value),
            Step::Cas {
                expect,
                new,
                swapped,
            } => {
                let current = state == expect;
                match swapped {
                    Some(true) => current.then_some(new),
                    Some(false) => (!current).then_some(state),
                    // Unanswered: it did whatever the register dictated at that moment.
                    None => Some(if current { new } else { state }),
                }
            }
        }
    }
}

/// Stands for every value that only unanswered operations write and no operation reads or
/// expects: such values are indistinguishable to every other operation, so merging them lets
/// the search see that "which of these unanswered writes took effect" does not matter.
pub(crate) const UNREAD: Value = 1;

/// Interns a key's values; ids 0 and 1 are [`ABSENT`] and [`UNREAD`].
#[derive(Default)]
pub(crate) struct Values<'a> {
    ids: HashMap<&'a str, Value>,
    names: Vec<&'a str>,
}

impl<'a> Values<'a> {
    pub(crate) fn id(&mut self, value: Option<&'a str>) -> Value {
        let Some(value) = value else { return ABSENT };
        let next = self.names.len() as Value + 2;
        *self.ids.entry(value).or_insert_with(|| {
            self.names.push(value);
            next
        })
    }

    /// The value an id stands for, for explanations.
    pub(crate) fn name(&self, id: Value) -> Option<String> {
        if id == UNREAD {
            return Some("<written by an unanswered op, never read>".to_owned());
        }
        let index = usize::try_from(id).ok()?.checked_sub(2)?;
        self.names.get(index).map(|s| (*s).to_owned())
    }
}

/// A key's operations ready for the search.
pub(crate) struct Prepared<'a> {
    pub calls: Vec<Call>,
    pub values: Values<'a>,
    pub dropped_reads: usize,
}

/// Which unanswered operations are interchangeable: those writing an [`UNREAD`] value under the
/// same precondition (any state for a write, the expected value for a CAS).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Group {
    Write,
    Cas(Value),
}

/// Translates one key's operations (`indices` into `history`) into the search's calls, ordered
/// as the search needs: answered calls by invoke time, then unanswered ones by invoke time.
pub(crate) fn prepare<'a>(history: &'a [Op], indices: &[usize]) -> Result<Prepared<'a>, String> {
    let mut observed: HashSet<&str> = HashSet::new();
    for op in indices.iter().map(|&i| &history[i]) {
        match (&op.kind, &op.outcome) {
            (Kind::Read, Outcome::Read(Some(seen))) => observed.insert(seen),
            (
                Kind::Cas {
                    expect: Some(e), ..
                },
                _,
            ) => observed.insert(e),
            _ => false,
        };
    }
    let mut values = Values::default();
    let mut calls = Vec::with_capacity(indices.len());
    let mut groups = Vec::with_capacity(indices.len());
    let mut dropped_reads = 0;
    for &i in indices {
        let op = &history[i];
        let Some(mut step) = step_of(op, &mut values)? else {
            dropped_reads += 1;
            continue;
        };
        let mut group = None;
        if let (Kind::Write(new) | Kind::Cas { new, .. }, false) = (&op.kind, op.is_determinate()) {
            if !observed.contains(new.as_str()) {
                match &mut step {
                    Step::Write(v) => (*v, group) = (UNREAD, Some(Group::Write)),
                    Step::Cas { expect, new, .. } => {
                        (*new, group) = (UNREAD, Some(Group::Cas(*expect)))
                    }
                    Step::Read(_) => {}
                }
            }
        }
        calls.push(Call {
            step,
            invoke: op.invoke,
            complete: op.is_determinate().then_some(op.complete),
            origin: i,
            group: None,
        });
        groups.push(group);
    }
    let mut order: Vec<usize> = (0..calls.len()).collect();
    order.sort_by_key(|&c| {
        (
            calls[c].complete.is_none(),
            calls[c].invoke,
            calls[c].origin,
        )
    });
    let mut ids: HashMap<Group, u32> = HashMap::new();
    let calls = order
        .into_iter()
        .map(|c| {
            let next = ids.len() as u32;
            let group = groups[c].map(|g| *ids.entry(g).or_insert(next));
            Call { group, ..calls[c] }
        })
        .collect();
    Ok(Prepared {
        calls,
        values,
        dropped_reads,
    })
}

/// Translates one recorded operation into a model step. `Ok(None)` means the operation has no
/// effect worth checking (an unanswered read); `Err` names a kind/outcome mismatch.
fn step_of<'a>(op: &'a Op, values: &mut Values<'a>) -> Result<Option<Step>, String> {
    let step = match (&op.kind, &op.outcome) {
        (Kind::Read, Outcome::Unknown) => return Ok(None),
        (Kind::Read, Outcome::Read(seen)) => Step::Read(values.id(seen.as_deref())),
        (Kind::Write(value), Outcome::Written | Outcome::Unknown) => {
            Step::Write(values.id(Some(value)))
        }
        (Kind::Cas { expect, new }, Outcome::Cas(_) | Outcome::Unknown) => Step::Cas {
            expect: values.id(expect.as_deref()),
            new: values.id(Some(new)),
            swapped: match op.outcome {
                Outcome::Cas(swapped) => Some(swapped),
                _ => None,
            },
        },
        (kind, outcome) => {
            return Err(format!(
                "client {} on key {:?}: a {kind:?} cannot have the outcome {outcome:?}",
                op.client, op.key
            ))
        }
    };
    if op.is_determinate() && op.complete < op.invoke {
        return Err(format!(
            "client {} on key {:?}: completed at {} ns, before it was invoked at {} ns",
            op.client, op.key, op.complete, op.invoke
        ));
    }
    Ok(Some(step))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_follow_the_register() {
        assert_eq!(Step::Read(ABSENT).apply(ABSENT), Some(ABSENT));
        assert_eq!(Step::Read(1).apply(ABSENT), None);
        assert_eq!(Step::Write(2).apply(1), Some(2));
        let cas = |swapped| Step::Cas {
            expect: 1,
            new: 2,
            swapped,
        };
        assert_eq!(cas(Some(true)).apply(1), Some(2));
        assert_eq!(cas(Some(true)).apply(3), None);
        assert_eq!(cas(Some(false)).apply(3), Some(3));
        assert_eq!(cas(Some(false)).apply(1), None);
        assert_eq!(cas(None).apply(1), Some(2));
        assert_eq!(cas(None).apply(3), Some(3));
    }

    #[test]
    fn values_intern_with_absent_as_zero() {
        let mut values = Values::default();
        assert_eq!(values.id(None), ABSENT);
        let a = values.id(Some("a"));
        assert_eq!(values.id(Some("a")), a);
        assert_ne!(values.id(Some("b")), a);
        assert_eq!(values.name(a).as_deref(), Some("a"));
        assert_eq!(values.name(ABSENT), None);
    }
}
