//! The watch hub: every member publishes the events it applies (a broadcast channel of the
//! state machine, `StateMachine::subscribe_events`); each client stream is a task
//! ([`stream::WatchStream`]) that serves its watches from them and from the store's history;
//! [`Watcher`] (pure, below) is what one watch wants and which events it gets: key range,
//! filters, `prev_kv`. The gRPC service that opens streams is `api::watch`.

mod stream;

pub(crate) use stream::{WatchSettings, WatchStream};

use proto::etcdserverpb::watch_create_request::FilterType;
use proto::etcdserverpb::WatchCreateRequest;
use proto::mvccpb::event::EventType;
use proto::mvccpb::Event;

/// One watch of a stream.
#[derive(Debug, Clone)]
pub(crate) struct Watcher {
    pub(crate) id: i64,
    key: Vec<u8>,
    range_end: Vec<u8>,
    prev_kv: bool,
    no_put: bool,
    no_delete: bool,
    pub(crate) progress_notify: bool,
    /// The first revision this watcher has not been sent yet.
    pub(crate) next_rev: i64,
    /// Whether anything was sent since the last progress notification.
    pub(crate) active: bool,
}

impl Watcher {
    /// A watcher for `req`; `current` is the store's revision (a start of 0 means "from now").
    pub(crate) fn new(id: i64, req: &WatchCreateRequest, current: i64) -> Self {
        let has = |f: FilterType| req.filters.contains(&(f as i32));
        Watcher {
            id,
            key: req.key.clone(),
            range_end: req.range_end.clone(),
            prev_kv: req.prev_kv,
            no_put: has(FilterType::Noput),
            no_delete: has(FilterType::Nodelete),
            progress_notify: req.progress_notify,
            next_rev: if req.start_revision > 0 {
                req.start_revision
            } else {
                current + 1
            },
            active: false,
        }
    }

    pub(crate) fn key(&self) -> &[u8] {
        &self.key
    }

    pub(crate) fn range_end(&self) -> &[u8] {
        &self.range_end
    }

    pub(crate) fn matches_key(&self, k: &[u8]) -> bool {
        match self.range_end.as_slice() {
            [] => k == self.key.as_slice(),
            [0] => k >= self.key.as_slice(),
            end => k >= self.key.as_slice() && k < end,
        }
    }

    /// The events of one revision this watcher gets, shaped as it asked.
    pub(crate) fn select(&self, events: &[Event]) -> Vec<Event> {
        events
            .iter()
            .filter(|e| e.kv.as_ref().is_some_and(|kv| self.matches_key(&kv.key)))
            .filter(|e| {
                let put = e.r#type == EventType::Put as i32;
                !(put && self.no_put || !put && self.no_delete)
            })
            .map(|e| {
                let mut e = e.clone();
                if !self.prev_kv {
                    e.prev_kv = None;
                }
                e
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::mvccpb::KeyValue;

    fn ev(t: EventType, k: &str) -> Event {
        Event {
            r#type: t as i32,
            kv: Some(KeyValue {
                key: k.into(),
                ..Default::default()
            }),
            prev_kv: Some(KeyValue {
                key: k.into(),
                ..Default::default()
            }),
        }
    }

    fn create(key: &str, end: &[u8]) -> WatchCreateRequest {
        WatchCreateRequest {
            key: key.into(),
            range_end: end.to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn key_prefix_and_from_key() {
        let one = Watcher::new(0, &create("a", b""), 5);
        assert!(one.matches_key(b"a") && !one.matches_key(b"ab"));
        let prefix = Watcher::new(0, &create("/p/", b"/p0"), 5);
        assert!(prefix.matches_key(b"/p/x") && !prefix.matches_key(b"/q"));
        let from = Watcher::new(0, &create("m", b"\0"), 5);
        assert!(from.matches_key(b"z") && !from.matches_key(b"a"));
        assert_eq!(from.next_rev, 6, "start 0 = from now");
    }

    #[test]
    fn filters_and_prev_kv() {
        let mut req = create("a", b"\0");
        req.filters = vec![FilterType::Noput as i32];
        let w = Watcher::new(0, &req, 1);
        let got = w.select(&[ev(EventType::Put, "a"), ev(EventType::Delete, "b")]);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].r#type, EventType::Delete as i32);
        assert!(got[0].prev_kv.is_none(), "prev_kv only when asked");
        req.prev_kv = true;
        req.filters = vec![FilterType::Nodelete as i32];
        let got =
            Watcher::new(0, &req, 1).select(&[ev(EventType::Put, "a"), ev(EventType::Delete, "b")]);
        assert_eq!(got.len(), 1);
        assert!(got[0].prev_kv.is_some());
    }
}
