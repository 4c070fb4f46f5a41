//! The clients: each bound to one member's client URL, issuing linearizable reads, puts of
//! unique values and compare-and-sets over a few keys, one operation at a time, recording
//! each with its invocation and completion on the run's one monotonic clock.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

use crate::history::{Kind, Op, Outcome};
use crate::ops::{Conn, Failed};

/// The run's clock and the history every client appends to.
#[derive(Debug)]
pub struct Recorder {
    start: Instant,
    ops: Mutex<Vec<Op>>,
}

impl Recorder {
    pub fn new() -> Arc<Recorder> {
        Arc::new(Recorder {
            start: Instant::now(),
            ops: Mutex::new(Vec::new()),
        })
    }

    /// Nanoseconds since the run began.
    pub fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    /// The instant `ns` after the run began.
    pub fn instant(&self, ns: u64) -> Instant {
        self.start + Duration::from_nanos(ns)
    }

    /// Performs `kind` on `key` through `conn` as client `client` and records it.
    pub async fn perform(
        &self,
        conn: &Conn,
        client: u32,
        key: &str,
        kind: Kind,
        serializable: bool,
    ) -> Outcome {
        let invoke = self.now();
        let result: Result<Outcome, Failed> = match &kind {
            Kind::Read => conn.read(key, serializable).await.map(Outcome::Read),
            Kind::Write(v) => conn.put(key, v, 0).await.map(|()| Outcome::Written),
            Kind::Cas { expect, new } => conn
                .cas(key, expect.as_deref(), new)
                .await
                .map(Outcome::Cas),
        };
        let outcome = result.unwrap_or(Outcome::Unknown);
        let complete = if outcome == Outcome::Unknown {
            u64::MAX
        } else {
            self.now()
        };
        self.push(Op {
            client,
            key: key.to_owned(),
            kind,
            outcome: outcome.clone(),
            invoke,
            complete,
        });
        outcome
    }

    fn push(&self, op: Op) {
        self.ops.lock().unwrap_or_else(|p| p.into_inner()).push(op);
    }

    /// The history so far, in order of completion recording.
    pub fn history(&self) -> Vec<Op> {
        self.ops.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// What a workload client does.
#[derive(Debug, Clone)]
pub struct ClientSpec {
    pub id: u32,
    pub url: String,
    pub keys: Vec<String>,
    /// Reads only, serializable (the negative control's stale reader).
    pub serializable_reads_only: bool,
    /// Writes and CAS only (the negative control's writers).
    pub writes_only: bool,
    /// Pause between operations (keeps the history within the checker's reach).
    pub think: Duration,
    pub seed: u64,
}

/// Runs one client until `stop` is set. Values are `c<id>-<n>`, unique across the run.
pub async fn run_client(spec: ClientSpec, rec: Arc<Recorder>, stop: Arc<AtomicBool>) {
    let Ok(conn) = Conn::new(&spec.url) else {
        return;
    };
    let mut rng = StdRng::seed_from_u64(spec.seed ^ u64::from(spec.id).wrapping_mul(0x9e37_79b9));
    // The last value this client saw per key: the CAS's expectation, so that many succeed.
    let mut seen: Vec<Option<String>> = vec![None; spec.keys.len()];
    let mut n = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let k = rng.random_range(0..spec.keys.len());
        let key = &spec.keys[k];
        n += 1;
        let value = format!("c{}-{n}", spec.id);
        let roll: u32 = rng.random_range(0..100);
        let kind = if spec.serializable_reads_only || (!spec.writes_only && roll < 50) {
            Kind::Read
        } else if roll < 80 {
            Kind::Write(value.clone())
        } else {
            Kind::Cas {
                expect: seen[k].clone(),
                new: value.clone(),
            }
        };
        let outcome = rec
            .perform(&conn, spec.id, key, kind, spec.serializable_reads_only)
            .await;
        match outcome {
            Outcome::Read(v) => seen[k] = v,
            Outcome::Written | Outcome::Cas(true) => seen[k] = Some(value),
            Outcome::Cas(false) => {}
            // The member is down or cut off: back off, so one fault does not fill the
            // history with unanswered writes (each one widens the checker's search).
            Outcome::Unknown => {
                tokio::time::sleep(Duration::from_millis(rng.random_range(100..300))).await
            }
        }
        if !spec.think.is_zero() {
            tokio::time::sleep(spec.think).await;
        }
    }
}
