//! The register model one key's sub-history is checked against, with values interned to small
//! integers so a search state is a `u32` and comparing states costs nothing.

use std::collections::HashMap;

use crate::history::{Kind, Op, Outcome};

/// An interned value: [`ABSENT`] for "no value", otherwise an index into the key's table.
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

/// Interns a key's values; index 0 is reserved for "absent".
#[derive(Default)]
pub(crate) struct Values<'a> {
    ids: HashMap<&'a str, Value>,
    names: Vec<&'a str>,
}

impl<'a> Values<'a> {
    pub(crate) fn id(&mut self, value: Option<&'a str>) -> Value {
        let Some(value) = value else { return ABSENT };
        let next = self.names.len() as Value + 1;
        *self.ids.entry(value).or_insert_with(|| {
            self.names.push(value);
            next
        })
    }

    /// The value an id stands for, for explanations.
    pub(crate) fn name(&self, id: Value) -> Option<String> {
        let index = usize::try_from(id).ok()?.checked_sub(1)?;
        self.names.get(index).map(|s| (*s).to_owned())
    }
}

/// Translates one recorded operation into a model step. `Ok(None)` means the operation has no
/// effect worth checking (an unanswered read); `Err` names a kind/outcome mismatch.
pub(crate) fn step_of<'a>(op: &'a Op, values: &mut Values<'a>) -> Result<Option<Step>, String> {
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
