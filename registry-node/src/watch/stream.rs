//! One client watch stream: many watches, served from this member's own applied state —
//! history from the store, then the events of each applied revision as they come. A slow
//! stream falls behind only itself: when it misses live events it reads them back from the
//! store's history.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use proto::etcdserverpb::watch_request::RequestUnion;
use proto::etcdserverpb::*;
use proto::mvccpb::Event;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tonic::{Status, Streaming};

use super::Watcher;
use crate::access::Caller;
use crate::errors as error;
use crate::routing::{Redirect, Router};
use crate::store::AppliedEvents;

const CANCEL_COMPACTED: &str = "etcdserver: mvcc: required revision has been compacted";

type Out = mpsc::Sender<Result<WatchResponse, Status>>;

/// What watch streams need besides the router.
#[derive(Clone)]
pub(crate) struct WatchSettings {
    /// etcd's --experimental-watch-progress-notify-interval.
    pub(crate) progress_notify: Duration,
    /// A stream that asked for a leader ends after three of these without one.
    pub(crate) election_timeout: Duration,
    /// Cancelled when the member stops: streams end with it.
    pub(crate) stopping: CancellationToken,
}

pub(crate) struct WatchStream {
    /// Who opened the stream: each watch needs read permission on its keys.
    caller: Caller,
    /// The client asked (etcd's `hasleader`) to be cut off while the member has no leader.
    needs_leader: bool,
    router: Arc<Router>,
    settings: WatchSettings,
    events: broadcast::Receiver<AppliedEvents>,
    watchers: BTreeMap<i64, Watcher>,
    next_id: i64,
    tx: Out,
}

/// The client went away: stop serving the stream.
struct Gone;

impl WatchStream {
    pub(crate) fn new(
        caller: Caller,
        needs_leader: bool,
        router: Arc<Router>,
        settings: WatchSettings,
        tx: Out,
    ) -> Self {
        let events = router.sm().subscribe_events();
        WatchStream {
            caller,
            needs_leader,
            router,
            settings,
            events,
            watchers: BTreeMap::new(),
            next_id: 0,
            tx,
        }
    }

    pub(crate) async fn run(mut self, mut input: Streaming<WatchRequest>) {
        let every = self
            .settings
            .progress_notify
            .max(Duration::from_millis(100));
        let mut progress = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        let stopping = self.settings.stopping.clone();
        let mut leaderless = LeaderWatch::new(self.settings.election_timeout);
        loop {
            let step = tokio::select! {
                _ = stopping.cancelled() => {
                    let _ = self.tx.send(Err(error::stopped())).await;
                    return;
                }
                _ = leaderless.tick() => {
                    if self.needs_leader && leaderless.lost(&self.router) {
                        let _ = self.tx.send(Err(error::no_leader())).await;
                        return;
                    }
                    Ok(())
                }
                msg = input.message() => match msg {
                    Ok(Some(req)) => self.on_request(req).await,
                    _ => return,
                },
                ev = self.events.recv() => match ev {
                    Ok(batch) => self.on_events(&batch).await,
                    Err(broadcast::error::RecvError::Lagged(_)) => self.catch_up_all().await,
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = progress.tick() => self.notify_progress().await,
            };
            if step.is_err() {
                return;
            }
        }
    }

    fn header(&self) -> ResponseHeader {
        self.router.header(self.router.sm().read(|s| s.revision()))
    }

    async fn send(&self, resp: WatchResponse) -> Result<(), Gone> {
        self.tx.send(Ok(resp)).await.map_err(|_| Gone)
    }

    async fn on_request(&mut self, req: WatchRequest) -> Result<(), Gone> {
        match req.request_union {
            Some(RequestUnion::CreateRequest(c)) => self.create(c).await,
            Some(RequestUnion::CancelRequest(c)) => {
                if self.watchers.remove(&c.watch_id).is_some() {
                    let header = Some(self.header());
                    self.send(WatchResponse {
                        header,
                        watch_id: c.watch_id,
                        canceled: true,
                        ..Default::default()
                    })
                    .await?;
                }
                Ok(())
            }
            Some(RequestUnion::ProgressRequest(_)) => {
                let header = Some(self.header());
                self.send(WatchResponse {
                    header,
                    watch_id: -1,
                    ..Default::default()
                })
                .await
            }
            None => Ok(()),
        }
    }

    async fn create(&mut self, c: WatchCreateRequest) -> Result<(), Gone> {
        let header = Some(self.header());
        if let Some(cancel_reason) = self.caller.watch_denied(&self.router, &c).await {
            // etcd answers a refused watch with id -1, created and canceled at once.
            let (watch_id, created, canceled) = (-1, true, true);
            let resp = WatchResponse {
                header,
                watch_id,
                created,
                canceled,
                cancel_reason,
                ..Default::default()
            };
            return self.send(resp).await;
        }
        let id = if c.watch_id != 0 {
            c.watch_id
        } else {
            self.next_free_id()
        };
        if self.watchers.contains_key(&id) || id < 0 {
            let reason = "mvcc: duplicate watch ID provided on the WatchStream".to_owned();
            return self
                .send(WatchResponse {
                    header,
                    watch_id: id,
                    created: true,
                    canceled: true,
                    cancel_reason: reason,
                    ..Default::default()
                })
                .await;
        }
        let current = header.as_ref().map(|h| h.revision).unwrap_or(0);
        let w = Watcher::new(id, &c, current);
        self.send(WatchResponse {
            header,
            watch_id: id,
            created: true,
            ..Default::default()
        })
        .await?;
        self.watchers.insert(id, w);
        self.catch_up(id).await
    }

    fn next_free_id(&mut self) -> i64 {
        while self.watchers.contains_key(&self.next_id) {
            self.next_id += 1;
        }
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Sends watcher `id` its history from `next_rev` up to the store's current revision, or
    /// cancels it if that history is compacted away.
    async fn catch_up(&mut self, id: i64) -> Result<(), Gone> {
        let Some(w) = self.watchers.get(&id) else {
            return Ok(());
        };
        let (history, current, compacted) = self.router.sm().read(|s| {
            let current = s.revision();
            if w.next_rev > current {
                return (Ok(Vec::new()), current, s.compact_revision());
            }
            (
                s.events_since(w.key(), w.range_end(), w.next_rev),
                current,
                s.compact_revision(),
            )
        });
        match history {
            Ok(events) => {
                for group in by_revision(&events) {
                    self.deliver(id, group).await?;
                }
                if let Some(w) = self.watchers.get_mut(&id) {
                    w.next_rev = w.next_rev.max(current + 1);
                }
                Ok(())
            }
            Err(_) => {
                self.watchers.remove(&id);
                let header = Some(self.header());
                let resp = WatchResponse {
                    header,
                    watch_id: id,
                    canceled: true,
                    compact_revision: compacted,
                    cancel_reason: CANCEL_COMPACTED.to_owned(),
                    ..Default::default()
                };
                self.send(resp).await
            }
        }
    }

    async fn catch_up_all(&mut self) -> Result<(), Gone> {
        let ids: Vec<i64> = self.watchers.keys().copied().collect();
        for id in ids {
            self.catch_up(id).await?;
        }
        Ok(())
    }

    async fn on_events(&mut self, batch: &AppliedEvents) -> Result<(), Gone> {
        let ids: Vec<i64> = self.watchers.keys().copied().collect();
        for id in ids {
            self.deliver(id, &batch.events).await?;
        }
        Ok(())
    }

    /// Sends watcher `id` the events of one revision it has not had yet.
    async fn deliver(&mut self, id: i64, events: &[Event]) -> Result<(), Gone> {
        let Some(rev) = events
            .first()
            .and_then(|e| e.kv.as_ref())
            .map(|kv| kv.mod_revision)
        else {
            return Ok(());
        };
        let Some(w) = self.watchers.get_mut(&id) else {
            return Ok(());
        };
        if rev < w.next_rev {
            return Ok(());
        }
        w.next_rev = rev + 1;
        let events = w.select(events);
        if events.is_empty() {
            return Ok(());
        }
        w.active = true;
        let header = Some(self.router.header(rev));
        self.send(WatchResponse {
            header,
            watch_id: id,
            events,
            ..Default::default()
        })
        .await
    }

    /// Periodic progress for idle watchers that asked for it.
    async fn notify_progress(&mut self) -> Result<(), Gone> {
        let header = self.header();
        let mut due = Vec::new();
        for w in self.watchers.values_mut() {
            if w.progress_notify && !w.active {
                due.push(w.id);
            }
            w.active = false;
        }
        for id in due {
            self.send(WatchResponse {
                header: Some(header),
                watch_id: id,
                ..Default::default()
            })
            .await?;
        }
        Ok(())
    }
}

/// Notices a member that has had no leader for three election timeouts (etcd's
/// `monitorLeader`), so streams that asked for a leader can be ended.
pub(crate) struct LeaderWatch {
    ticker: tokio::time::Interval,
    since: Option<tokio::time::Instant>,
    limit: Duration,
}

impl LeaderWatch {
    pub(crate) fn new(election: Duration) -> Self {
        LeaderWatch {
            ticker: tokio::time::interval(election / 2),
            since: None,
            limit: election * 3,
        }
    }

    pub(crate) async fn tick(&mut self) {
        self.ticker.tick().await;
    }

    /// Whether the member has been without a leader for too long.
    pub(crate) fn lost(&mut self, router: &Router) -> bool {
        if matches!(router.leader_redirect(), Some(Redirect::NoLeader)) {
            let since = *self.since.get_or_insert_with(tokio::time::Instant::now);
            since.elapsed() >= self.limit
        } else {
            self.since = None;
            false
        }
    }
}

/// Consecutive runs of events with the same revision.
fn by_revision(events: &[Event]) -> impl Iterator<Item = &[Event]> {
    events.chunk_by(|a, b| {
        a.kv.as_ref().map(|k| k.mod_revision) == b.kv.as_ref().map(|k| k.mod_revision)
    })
}
