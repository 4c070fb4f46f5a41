//! A queue that sends work in batches, with a bounded number of batches on their way.
//!
//! Used for Raft proposals ([`crate::raft::batch`]: writes into shared entries) and for a
//! follower's writes sent on to the leader ([`crate::routing`]: writes into `Propose`
//! calls). A lone item with a free slot is sent straight from its caller ([`Batching::direct`]),
//! so a single client's request takes no hand-off; otherwise items wait in the queue, and a
//! driver task takes a batch ([`Batching::push`]'s `take`) whenever fewer than the allowed
//! number of batches are on their way, and sends it on a task of its own (`send`). Under
//! load, a batch is whatever arrived while the earlier ones were on their way.

use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub(crate) struct Batching<T> {
    state: Arc<Mutex<State<T>>>,
    in_flight: Arc<Semaphore>,
}

impl<T> Clone for Batching<T> {
    fn clone(&self) -> Self {
        Batching {
            state: self.state.clone(),
            in_flight: self.in_flight.clone(),
        }
    }
}

struct State<T> {
    /// Whether a driver task is running.
    running: bool,
    waiting: Vec<T>,
}

impl<T: Send + 'static> Batching<T> {
    /// A queue that lets `in_flight` batches (at least one) be on their way at once.
    pub(crate) fn new(in_flight: usize) -> Self {
        Batching {
            state: Arc::new(Mutex::new(State {
                running: false,
                waiting: Vec::new(),
            })),
            in_flight: Arc::new(Semaphore::new(in_flight.max(1))),
        }
    }

    /// A slot for sending one item from the caller's task, when nothing is queued and a slot
    /// is free; held until that item is answered.
    pub(crate) fn direct(&self) -> Option<OwnedSemaphorePermit> {
        let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if !st.running && st.waiting.is_empty() {
            self.in_flight.clone().try_acquire_owned().ok()
        } else {
            None
        }
    }

    /// Queues `item`; starts the driver if none runs. The driver calls `take` on the queue
    /// (never empty) for the next batch and runs `send` on it in a task of its own, while
    /// fewer than the allowed batches are on their way; it ends when the queue is empty.
    pub(crate) fn push<B, F, Fut>(&self, item: T, take: fn(&mut Vec<T>) -> B, send: F)
    where
        B: Send + 'static,
        F: Fn(B) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let start = {
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            st.waiting.push(item);
            !std::mem::replace(&mut st.running, true)
        };
        if start {
            tokio::spawn(self.clone().drive(take, send));
        }
    }

    async fn drive<B, F, Fut>(self, take: fn(&mut Vec<T>) -> B, send: F)
    where
        F: Fn(B) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        loop {
            let Ok(permit) = self.in_flight.clone().acquire_owned().await else {
                return;
            };
            let batch = {
                let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
                if st.waiting.is_empty() {
                    st.running = false;
                    return;
                }
                take(&mut st.waiting)
            };
            let fut = send(batch);
            tokio::spawn(async move {
                fut.await;
                drop(permit);
            });
        }
    }
}
