//! The search's call and return events in time order, as a doubly linked list from which
//! placed calls (and their returns) are lifted and restored in stack order (dancing links).

use super::search::Call;

pub(super) const NIL: u32 = u32::MAX;

/// Entries are numbered from 1 in time order; entry 0 is the list's head.
pub(super) struct Events {
    entry_call: Vec<u32>,
    is_return: Vec<bool>,
    return_of: Vec<u32>,
    call_entry: Vec<u32>,
    next: Vec<u32>,
    prev: Vec<u32>,
    /// Calls kept out of the list (reached directly, see `Search::unread_before`).
    unlisted: Vec<bool>,
}

impl Events {
    /// Calls with `unlisted(call)` true get an entry number but are not linked in.
    pub(super) fn new(calls: &[Call], unlisted: impl Fn(&Call) -> bool) -> Self {
        // At equal times calls come first, so operations that merely touch are treated as
        // concurrent (the clock cannot order them).
        let mut events: Vec<(u64, bool, u32)> = Vec::with_capacity(calls.len() * 2);
        for (i, call) in calls.iter().enumerate() {
            events.push((call.invoke, false, i as u32));
            if let Some(complete) = call.complete {
                events.push((complete, true, i as u32));
            }
        }
        events.sort_unstable();
        let n = events.len() + 1;
        let mut list = Events {
            entry_call: vec![NIL; n],
            is_return: vec![false; n],
            return_of: vec![NIL; calls.len()],
            call_entry: vec![NIL; calls.len()],
            next: vec![NIL; n],
            prev: vec![NIL; n],
            unlisted: calls.iter().map(unlisted).collect(),
        };
        let mut last = 0;
        for (at, &(_, ret, call)) in events.iter().enumerate() {
            let entry = at + 1;
            list.entry_call[entry] = call;
            list.is_return[entry] = ret;
            if ret {
                list.return_of[call as usize] = entry as u32;
            } else {
                list.call_entry[call as usize] = entry as u32;
            }
            if !list.unlisted[call as usize] {
                (list.next[last], list.prev[entry]) = (entry as u32, last as u32);
                last = entry;
            }
        }
        list
    }

    pub(super) fn head(&self) -> u32 {
        self.next[0]
    }

    pub(super) fn next(&self, entry: u32) -> u32 {
        self.next[entry as usize]
    }

    pub(super) fn call(&self, entry: u32) -> usize {
        self.entry_call[entry as usize] as usize
    }

    pub(super) fn is_return(&self, entry: u32) -> bool {
        self.is_return[entry as usize]
    }

    pub(super) fn call_entry(&self, call: usize) -> u32 {
        self.call_entry[call]
    }

    /// Whether a call's entry could be placed while the scan is at `at`: no unplaced return
    /// comes before it (entries are numbered in time order).
    pub(super) fn reachable(&self, entry: u32, at: u32) -> bool {
        let mut e = at;
        while e != NIL && !self.is_return(e) {
            e = self.next(e);
        }
        e == NIL || entry < e
    }

    /// Takes a placed call (and its return) out of the list.
    pub(super) fn lift(&mut self, entry: u32) {
        let call = self.call(entry);
        if self.unlisted[call] {
            return;
        }
        self.unlink(entry);
        if self.return_of[call] != NIL {
            self.unlink(self.return_of[call]);
        }
    }

    /// Undoes [`Self::lift`], in reverse order so the links come back as they were.
    pub(super) fn unlift(&mut self, entry: u32) {
        let call = self.call(entry);
        if self.unlisted[call] {
            return;
        }
        if self.return_of[call] != NIL {
            self.relink(self.return_of[call]);
        }
        self.relink(entry);
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
}
