//! Wing & Gong's linearizability search with Lowe's memoisation, as porcupine's `checkSingle`:
//! call and return events in time order in a doubly linked list, a depth-first search that
//! linearizes a pending call whenever the model allows it and backtracks on reaching the
//! return of an operation it has not placed, and a cache of (linearized set, state) pairs
//! already explored so no configuration is searched twice.
//!
//! Unanswered operations have no return event: they may take effect at any point after their
//! call, or never (which is the same as taking effect after everything else), so the search
//! succeeds once every answered operation is placed.

use std::collections::HashSet;
use std::time::Instant;

use super::model::{Step, Value, ABSENT};

/// One operation of a key's sub-history.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Call {
    pub step: Step,
    pub invoke: u64,
    /// `None`: never answered.
    pub complete: Option<u64>,
    /// Index of the operation in the whole history, for explanations.
    pub origin: usize,
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
const NIL: u32 = u32::MAX;

/// What the search must undo when it backtracks over one placed call.
struct Placed {
    entry: u32,
    state: Value,
    lead: u32,
    high: u32,
}

/// A (linearized set, state) pair, stored compactly: answered operations are numbered by
/// call time, so their bits are all ones up to `lead` and all zeros after `high`; only the
/// window between (plus the few unanswered operations' words) is kept.
#[derive(Hash, PartialEq, Eq)]
struct Seen {
    state: Value,
    lead: u32,
    window: u32,
    words: Box<[u64]>,
}

struct Search<'a> {
    calls: &'a [Call],
    /// Per entry (index 0 is the list head): the call it belongs to and whether it is a return.
    entry_call: Vec<u32>,
    is_return: Vec<bool>,
    return_of: Vec<u32>,
    next: Vec<u32>,
    prev: Vec<u32>,
    bits: Vec<u64>,
    answered: usize,
    /// Words `0..answered_words` hold answered calls, the rest unanswered ones.
    answered_words: usize,
    last_mask: u64,
}

/// Checks one key's calls, which must be ordered answered first (by invoke) then unanswered.
pub(crate) fn search(calls: &[Call], limit: Limit) -> (Verdict, u64) {
    let answered = calls.iter().filter(|c| c.complete.is_some()).count();
    let mut s = Search::new(calls, answered);
    let mut state = ABSENT;
    let mut lead = 0u32;
    let mut high = 0u32;
    let mut stack: Vec<Placed> = Vec::new();
    let mut seen: HashSet<Seen> = HashSet::new();
    let mut left = answered;
    let mut furthest: Option<(u32, Stuck)> = None;
    let mut steps = 0u64;
    let mut entry = s.next[0];
    loop {
        if left == 0 {
            return (Verdict::Linearizable, steps);
        }
        steps += 1;
        if steps > limit.steps
            || (steps.is_multiple_of(1024) && limit.deadline.is_some_and(|d| Instant::now() >= d))
        {
            let deadline = steps <= limit.steps;
            return (
                Verdict::OutOfBudget {
                    deadline,
                    furthest: furthest.map(|f| f.1),
                },
                steps,
            );
        }
        let is_call = entry != NIL && !s.is_return[entry as usize];
        if is_call {
            let call = s.entry_call[entry as usize] as usize;
            if let Some(after) = calls[call].step.apply(state) {
                s.set(call, true);
                let (new_lead, new_high) = s.bounds_after(call, lead, high);
                if seen.insert(s.seen(after, new_lead, new_high)) {
                    stack.push(Placed {
                        entry,
                        state,
                        lead,
                        high,
                    });
                    state = after;
                    (lead, high) = (new_lead, new_high);
                    s.lift(entry);
                    if calls[call].complete.is_some() {
                        left -= 1;
                    }
                    entry = s.next[0];
                    continue;
                }
                s.set(call, false);
            }
            entry = s.next[entry as usize];
            continue;
        }
        // The return of an unplaced operation (or, defensively, the end of the list): this
        // prefix cannot be extended, so undo the last placement and try the next candidate.
        if entry != NIL && furthest.as_ref().is_none_or(|(at, _)| entry > *at) {
            furthest = Some((entry, s.stuck(entry, &stack, state)));
        }
        let Some(top) = stack.pop() else {
            let stuck = furthest.map(|f| f.1);
            return match stuck {
                Some(stuck) => (Verdict::Violation(stuck), steps),
                None => (
                    Verdict::OutOfBudget {
                        deadline: false,
                        furthest: None,
                    },
                    steps,
                ),
            };
        };
        let call = s.entry_call[top.entry as usize] as usize;
        s.unlift(top.entry);
        s.set(call, false);
        if calls[call].complete.is_some() {
            left += 1;
        }
        state = top.state;
        (lead, high) = (top.lead, top.high);
        entry = s.next[top.entry as usize];
    }
}

impl<'a> Search<'a> {
    fn new(calls: &'a [Call], answered: usize) -> Self {
        // Events in time order; at equal times calls come first, so operations that merely
        // touch are treated as concurrent (the clock cannot order them).
        let mut events: Vec<(u64, bool, u32)> = Vec::with_capacity(calls.len() * 2);
        for (i, call) in calls.iter().enumerate() {
            events.push((call.invoke, false, i as u32));
            if let Some(complete) = call.complete {
                events.push((complete, true, i as u32));
            }
        }
        events.sort_unstable();
        let n = events.len() + 1;
        let mut s = Search {
            calls,
            entry_call: vec![NIL; n],
            is_return: vec![false; n],
            return_of: vec![NIL; calls.len()],
            next: (1..=n as u32).collect(),
            prev: (0..n as u32).map(|i| i.wrapping_sub(1)).collect(),
            bits: Vec::new(),
            answered,
            answered_words: answered.div_ceil(64),
            last_mask: match answered % 64 {
                0 => u64::MAX,
                r => (1u64 << r) - 1,
            },
        };
        s.next[n - 1] = NIL;
        for (at, &(_, ret, call)) in events.iter().enumerate() {
            let entry = at + 1;
            s.entry_call[entry] = call;
            s.is_return[entry] = ret;
            if ret {
                s.return_of[call as usize] = entry as u32;
            }
        }
        s.bits = vec![0; s.answered_words + (calls.len() - answered).div_ceil(64)];
        s
    }

    /// Answered calls are bits `0..answered`; unanswered ones start at the next whole word.
    fn bit(&self, call: usize) -> usize {
        match call.checked_sub(self.answered) {
            Some(k) => self.answered_words * 64 + k,
            None => call,
        }
    }

    fn set(&mut self, call: usize, on: bool) {
        let bit = self.bit(call);
        let (word, mask) = (bit / 64, 1u64 << (bit % 64));
        if on {
            self.bits[word] |= mask;
        } else {
            self.bits[word] &= !mask;
        }
    }

    /// `lead` (words of answered calls all placed) and `high` (one past the last answered word
    /// with a placed call) once `call` is placed.
    fn bounds_after(&self, call: usize, mut lead: u32, high: u32) -> (u32, u32) {
        let word = self.bit(call) / 64;
        if word >= self.answered_words {
            return (lead, high);
        }
        let full = |w: usize| {
            if w + 1 == self.answered_words {
                self.last_mask
            } else {
                u64::MAX
            }
        };
        while (lead as usize) < self.answered_words
            && self.bits[lead as usize] == full(lead as usize)
        {
            lead += 1;
        }
        (lead, high.max(word as u32 + 1))
    }

    fn seen(&self, state: Value, lead: u32, high: u32) -> Seen {
        let window = &self.bits[lead as usize..(high as usize).max(lead as usize)];
        let unanswered = &self.bits[self.answered_words..];
        let used = unanswered
            .iter()
            .rposition(|w| *w != 0)
            .map_or(0, |i| i + 1);
        let mut words = Vec::with_capacity(window.len() + used);
        words.extend_from_slice(window);
        words.extend_from_slice(&unanswered[..used]);
        Seen {
            state,
            lead,
            window: window.len() as u32,
            words: words.into_boxed_slice(),
        }
    }

    fn unlink(&mut self, entry: u32) {
        let (p, n) = (self.prev[entry as usize], self.next[entry as usize]);
        self.next[p as usize] = n;
        if n != NIL {
            self.prev[n as usize] = p;
        }
    }

    fn relink(&mut self, entry: u32) {
        let (p, n) = (self.prev[entry as usize], self.next[entry as usize]);
        self.next[p as usize] = entry;
        if n != NIL {
            self.prev[n as usize] = entry;
        }
    }

    /// Takes a placed call (and its return) out of the list.
    fn lift(&mut self, entry: u32) {
        self.unlink(entry);
        let ret = self.return_of[self.entry_call[entry as usize] as usize];
        if ret != NIL {
            self.unlink(ret);
        }
    }

    /// Undoes [`Self::lift`], in reverse order so the links come back as they were.
    fn unlift(&mut self, entry: u32) {
        let ret = self.return_of[self.entry_call[entry as usize] as usize];
        if ret != NIL {
            self.relink(ret);
        }
        self.relink(entry);
    }

    fn stuck(&self, at: u32, stack: &[Placed], state: Value) -> Stuck {
        let from = stack.len().saturating_sub(TAIL);
        let tail = (from..stack.len())
            .map(|i| {
                let after = stack.get(i + 1).map_or(state, |p| p.state);
                (self.origin(stack[i].entry), after)
            })
            .collect();
        let mut pending = Vec::new();
        let mut e = self.next[0];
        while e != at && e != NIL && pending.len() < PENDING {
            let blocked_call = self.entry_call[e as usize] == self.entry_call[at as usize];
            if !self.is_return[e as usize] && !blocked_call {
                pending.push(self.origin(e));
            }
            e = self.next[e as usize];
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
        self.calls[self.entry_call[entry as usize] as usize].origin
    }
}
