//! The set of placed calls as a bitset, and the compact key under which the search remembers
//! a (placed set, state) configuration it has explored.

use super::model::Value;

/// A configuration, stored compactly: answered calls are numbered by call time, so their
/// bits are all ones up to word `lead` and all zeros from word `high`; only the window between
/// (plus the few unanswered calls' words) is kept.
#[derive(Hash, PartialEq, Eq)]
pub(super) struct Key {
    state: Value,
    lead: u32,
    window: u32,
    words: Box<[u64]>,
}

pub(super) struct Placed {
    bits: Vec<u64>,
    answered: usize,
    /// Words `0..answered_words` hold answered calls, the rest unanswered ones.
    answered_words: usize,
    last_mask: u64,
}

impl Placed {
    /// For `calls` calls of which the first `answered` are the answered ones.
    pub(super) fn new(calls: usize, answered: usize) -> Self {
        let answered_words = answered.div_ceil(64);
        Placed {
            bits: vec![0; answered_words + (calls - answered).div_ceil(64)],
            answered,
            answered_words,
            last_mask: match answered % 64 {
                0 => u64::MAX,
                r => (1u64 << r) - 1,
            },
        }
    }

    /// Answered calls are bits `0..answered`; unanswered ones start at the next whole word.
    fn bit(&self, call: usize) -> usize {
        match call.checked_sub(self.answered) {
            Some(k) => self.answered_words * 64 + k,
            None => call,
        }
    }

    pub(super) fn set(&mut self, call: usize, on: bool) {
        let bit = self.bit(call);
        let (word, mask) = (bit / 64, 1u64 << (bit % 64));
        if on {
            self.bits[word] |= mask;
        } else {
            self.bits[word] &= !mask;
        }
    }

    /// `lead` and `high` (see [`Key`]) once `call`, already set, is placed.
    pub(super) fn bounds_after(&self, call: usize, mut lead: u32, high: u32) -> (u32, u32) {
        let word = self.bit(call) / 64;
        if word >= self.answered_words {
            return (lead, high);
        }
        let full = |w: usize| match w + 1 == self.answered_words {
            true => self.last_mask,
            false => u64::MAX,
        };
        while (lead as usize) < self.answered_words
            && self.bits[lead as usize] == full(lead as usize)
        {
            lead += 1;
        }
        (lead, high.max(word as u32 + 1))
    }

    pub(super) fn key(&self, state: Value, lead: u32, high: u32) -> Key {
        let window = &self.bits[lead as usize..(high as usize).max(lead as usize)];
        let unanswered = &self.bits[self.answered_words..];
        let used = unanswered
            .iter()
            .rposition(|w| *w != 0)
            .map_or(0, |i| i + 1);
        let mut words = Vec::with_capacity(window.len() + used);
        words.extend_from_slice(window);
        words.extend_from_slice(&unanswered[..used]);
        Key {
            state,
            lead,
            window: window.len() as u32,
            words: words.into_boxed_slice(),
        }
    }
}
