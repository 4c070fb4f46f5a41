//! Wing & Gong's linearizability search with Lowe's memoisation, as porcupine's `checkSingle`:
//! call and return events in time order in a doubly linked list, a depth-first search that
//! linearizes a pending call whenever the model allows it and backtracks on reaching the
//! return of an operation it has not placed, and a cache of (linearized set, state) pairs
//! already explored so no configuration is searched twice.
//!
//! Unanswered operations have no return event: they may take effect at any point after their
//! call, or never (which is the same as taking effect after everything else), so the search
//! succeeds once every answered operation is placed.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use super::events::{Events, NIL};
use super::model::{Step, Value, ABSENT};
use super::placed::{Key, Placed};

/// One operation of a key's sub-history.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Call {
    pub step: Step,
    pub invoke: u64,
    /// `None`: never answered.
    pub complete: Option<u64>,
    /// Index of the operation in the whole history, for explanations.
    pub origin: usize,
    /// Unanswered calls in one group are interchangeable (see `model::UNREAD`), so the search
    /// only ever places a group's earliest-invoked unplaced member.
    pub group: Option<u32>,
}

/// How much search one key may use.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limit {
    pub steps: u64,
    pub deadline: Option<Instant>,
}

/// The furthest point the search reached: the operations placed so far and the first one
/// whose return came before it could be placed.
#[derive(Debug, Clone)]
pub(crate) struct Stuck {
    /// How many operations were placed (the length of the linearizable prefix).
    pub placed: usize,
    /// The last few of them, oldest first, each with the register's state after it.
    pub tail: Vec<(usize, Value)>,
    /// The register's state after the prefix.
    pub state: Value,
    /// The operation whose return was reached while it was still unplaced.
    pub blocked: usize,
    /// Other operations invoked before that return and not placed (tried, and not possible).
    pub pending: Vec<usize>,
}

#[derive(Debug)]
pub(crate) enum Verdict {
    Linearizable,
    Violation(Stuck),
    /// The budget ran out; the furthest point reached, if the search got stuck anywhere.
    OutOfBudget {
        deadline: bool,
        furthest: Option<Stuck>,
    },
}

/// How many placed operations and pending candidates an explanation keeps.
const TAIL: usize = 12;
const PENDING: usize = 16;

/// What the search must undo when it backtracks over one placed call, and where it goes on.
struct Undo {
    entry: u32,
    state: Value,
    lead: u32,
    high: u32,
    /// For an unread write placed to explain a failed CAS: that CAS's entry and the next
    /// alternative to try there. Otherwise the search goes on after `entry`.
    resume: Option<(u32, usize)>,
}

struct Search<'a> {
    calls: &'a [Call],
    events: Events,
    placed: Placed,
    /// Per group, its calls in invoke order and how many of them are placed.
    group_members: Vec<Vec<u32>>,
    group_next: Vec<usize>,
    /// The group of unread unanswered writes, and those of unread unanswered CASes by the
    /// value they expect.
    write_group: Option<u32>,
    cas_groups: HashMap<Value, u32>,
    // The configuration being extended (`lead` and `high` describe `placed`, see `Key`).
    state: Value,
    lead: u32,
    high: u32,
    /// Answered calls not yet placed.
    left: usize,
    stack: Vec<Undo>,
    seen: HashSet<Key>,
}

/// Checks one key's calls, which must be ordered answered first (by invoke) then unanswered.
pub(crate) fn search(calls: &[Call], limit: Limit) -> (Verdict, u64) {
    let mut s = Search::new(calls);
    let mut furthest: Option<(u32, Stuck)> = None;
    let mut steps = 0u64;
    let (mut entry, mut alt) = (s.events.head(), 0);
    loop {
        if s.left == 0 {
            return (Verdict::Linearizable, steps);
        }
        steps += 1;
        let late =
            steps.is_multiple_of(1024) && limit.deadline.is_some_and(|d| Instant::now() >= d);
        if steps > limit.steps || late {
            let furthest = furthest.map(|f| f.1);
            return (
                Verdict::OutOfBudget {
                    deadline: late,
                    furthest,
                },
                steps,
            );
        }
        if entry != NIL && !s.events.is_return(entry) {
            if (alt == 0 && s.place(entry, None)) || s.unread_before(entry, alt) {
                (entry, alt) = (s.events.head(), 0);
            } else {
                (entry, alt) = (s.events.next(entry), 0);
            }
            continue;
        }
        // The return of an unplaced operation (or, defensively, the end of the list): this
        // prefix cannot be extended, so undo the last placement and try the next candidate.
        if entry != NIL && furthest.as_ref().is_none_or(|(at, _)| entry > *at) {
            furthest = Some((entry, s.stuck(entry)));
        }
        let Some(top) = s.stack.pop() else {
            // Unreachable: the first return reached is always an unplaced operation's.
            let verdict = match furthest {
                Some((_, stuck)) => Verdict::Violation(stuck),
                None => Verdict::OutOfBudget {
                    deadline: false,
                    furthest: None,
                },
            };
            return (verdict, steps);
        };
        let call = s.events.call(top.entry);
        s.events.unlift(top.entry);
        s.placed.set(call, false);
        if calls[call].complete.is_some() {
            s.left += 1;
        }
        if let Some(g) = calls[call].group {
            s.group_next[g as usize] -= 1;
        }
        (s.state, s.lead, s.high) = (top.state, top.lead, top.high);
        (entry, alt) = top.resume.unwrap_or((s.events.next(top.entry), 0));
    }
}

impl<'a> Search<'a> {
    fn new(calls: &'a [Call]) -> Self {
        let answered = calls.iter().filter(|c| c.complete.is_some()).count();
        let mut s = Search {
            calls,
            events: Events::new(calls, |c| c.group.is_some()),
            placed: Placed::new(calls.len(), answered),
            group_members: Vec::new(),
            group_next: Vec::new(),
            write_group: None,
            cas_groups: HashMap::new(),
            state: ABSENT,
            lead: 0,
            high: 0,
            left: answered,
            stack: Vec::new(),
            seen: HashSet::new(),
        };
        for (i, call) in calls.iter().enumerate() {
            let Some(g) = call.group else { continue };
            if s.group_members.len() <= g as usize {
                s.group_members.resize(g as usize + 1, Vec::new());
            }
            s.group_members[g as usize].push(i as u32);
            match call.step {
                Step::Cas { expect, .. } => s.cas_groups.insert(expect, g),
                _ => s.write_group.replace(g),
            };
        }
        s.group_next = vec![0; s.group_members.len()];
        s
    }

    /// Places the call at `entry` if the model allows it and the configuration it leads to is
    /// new. Two prunings, each keeping some linearization whenever one exists: an unanswered
    /// call that would change nothing is left to take effect last (nothing must follow it, so
    /// any point after its invocation is as good); and members of a group (unanswered writes of
    /// values nobody read) are only placed by [`Self::unread_before`].
    fn place(&mut self, entry: u32, resume: Option<(u32, usize)>) -> bool {
        let call = self.events.call(entry);
        let c = self.calls[call];
        if c.group.is_some() != resume.is_some() {
            return false;
        }
        let Some(after) = c.step.apply(self.state) else {
            return false;
        };
        if c.complete.is_none() && after == self.state {
            return false;
        }
        self.placed.set(call, true);
        let (lead, high) = self.placed.bounds_after(call, self.lead, self.high);
        if !self.seen.insert(self.placed.key(after, lead, high)) {
            self.placed.set(call, false);
            return false;
        }
        self.stack.push(Undo {
            entry,
            state: self.state,
            lead: self.lead,
            high: self.high,
            resume,
        });
        (self.state, self.lead, self.high) = (after, lead, high);
        self.events.lift(entry);
        if c.complete.is_some() {
            self.left -= 1;
        }
        if let Some(g) = c.group {
            self.group_next[g as usize] += 1;
        }
        true
    }

    /// A value nobody read can only matter to a CAS that failed: one that expected what the
    /// register held (by every other operation's account) is explained by an unanswered write
    /// of such a value landing just before it. So those writes are placed only there, and of a
    /// group only the earliest-invoked unplaced one (any later one's place can be given to it),
    /// trying the groups that apply from the `alt`-th on.
    fn unread_before(&mut self, cas: u32, alt: usize) -> bool {
        let call = self.calls[self.events.call(cas)];
        match call.step {
            Step::Cas {
                expect,
                swapped: Some(false),
                ..
            } if expect == self.state => {}
            _ => return false,
        }
        let groups = [self.write_group, self.cas_groups.get(&self.state).copied()];
        for (slot, group) in groups.into_iter().enumerate().skip(alt) {
            let Some(g) = group else { continue };
            let Some(&member) = self.group_members[g as usize].get(self.group_next[g as usize])
            else {
                continue;
            };
            let entry = self.events.call_entry(member as usize);
            if self.events.reachable(entry, cas) && self.place(entry, Some((cas, slot + 1))) {
                return true;
            }
        }
        false
    }

    fn stuck(&self, at: u32) -> Stuck {
        let (stack, state) = (&self.stack, self.state);
        let from = stack.len().saturating_sub(TAIL);
        let tail = (from..stack.len())
            .map(|i| {
                let after = stack.get(i + 1).map_or(state, |p| p.state);
                (self.origin(stack[i].entry), after)
            })
            .collect();
        let mut pending = Vec::new();
        let mut e = self.events.head();
        while e != at && e != NIL && pending.len() < PENDING {
            let blocked_call = self.events.call(e) == self.events.call(at);
            if !self.events.is_return(e) && !blocked_call {
                pending.push(self.origin(e));
            }
            e = self.events.next(e);
        }
        Stuck {
            placed: stack.len(),
            tail,
            state,
            blocked: self.origin(at),
            pending,
        }
    }

    fn origin(&self, entry: u32) -> usize {
        self.calls[self.events.call(entry)].origin
    }
}
