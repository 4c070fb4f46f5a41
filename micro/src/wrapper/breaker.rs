//! The circuit breaker layer (client side), one circuit per `service` + `endpoint`:
//!
//! ```text
//!   closed ──N failures in a row──► open ──cool-down over──► half-open: one trial call
//!     ▲                              ▲                         │
//!     └──────── trial succeeds ──────┼─────────────────────────┤
//!                                    └──── trial fails ────────┘
//! ```
//!
//! While open (and while the trial is in flight) calls fail at once with go-micro's 503 and do
//! not reach the network. Failures are the errors `trip_on` picks (default: the retry layer's
//! [`super::retry::transient`]); any other answer proves the callee is up. Time is tokio's
//! clock, so tests run it paused.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

use super::ClientCall;
use crate::client::CLIENT_ID;

/// When a circuit opens and for how long.
#[derive(Debug, Clone, Copy)]
pub struct BreakerOptions {
    /// Failures in a row that open the circuit.
    pub failures: u32,
    /// How long it stays open before one trial call is let through.
    pub cool_down: Duration,
    /// Which errors count as failures.
    pub trip_on: fn(&crate::Error) -> bool,
}

impl Default for BreakerOptions {
    fn default() -> Self {
        BreakerOptions {
            failures: 5,
            cool_down: Duration::from_secs(10),
            trip_on: super::retry::transient,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// The trial call is in flight.
    HalfOpen,
}

type Circuits = Arc<Mutex<HashMap<String, State>>>;

/// The breaker layer; services it makes (and clones of it) share their circuits.
#[derive(Debug, Clone, Default)]
pub struct Breaker {
    options: BreakerOptions,
    circuits: Circuits,
}

impl Breaker {
    pub fn new(options: BreakerOptions) -> Self {
        Breaker {
            options,
            circuits: Circuits::default(),
        }
    }

    /// Whether the circuit of `service` + `endpoint` is open now (for tests and status pages).
    pub fn is_open(&self, service: &str, endpoint: &str) -> bool {
        let circuits = lock(&self.circuits);
        match circuits.get(&key(service, endpoint)) {
            Some(State::Open { until }) => Instant::now() < *until,
            Some(State::HalfOpen) => true,
            _ => false,
        }
    }
}

fn key(service: &str, endpoint: &str) -> String {
    format!("{service} {endpoint}")
}

fn lock(circuits: &Circuits) -> std::sync::MutexGuard<'_, HashMap<String, State>> {
    circuits.lock().unwrap_or_else(|p| p.into_inner())
}

impl<S> tower::Layer<S> for Breaker {
    type Service = BreakerService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        BreakerService {
            inner,
            breaker: self.clone(),
        }
    }
}

/// [`Breaker`]'s service.
#[derive(Debug, Clone)]
pub struct BreakerService<S> {
    inner: S,
    breaker: Breaker,
}

/// What a call may do, decided under the lock.
enum Admission {
    Pass { trial: bool },
    Refuse,
}

impl Breaker {
    fn admit(&self, key: &str) -> Admission {
        let mut circuits = lock(&self.circuits);
        let state = circuits
            .entry(key.to_owned())
            .or_insert(State::Closed { failures: 0 });
        match *state {
            State::Closed { .. } => Admission::Pass { trial: false },
            State::Open { until } if Instant::now() >= until => {
                *state = State::HalfOpen;
                Admission::Pass { trial: true }
            }
            State::Open { .. } | State::HalfOpen => Admission::Refuse,
        }
    }

    /// Records a call's outcome: `failed` if it failed in a way that counts.
    fn record(&self, key: &str, trial: bool, failed: bool) {
        let mut circuits = lock(&self.circuits);
        let state = circuits
            .entry(key.to_owned())
            .or_insert(State::Closed { failures: 0 });
        let open = State::Open {
            until: Instant::now() + self.options.cool_down,
        };
        *state = match (*state, failed) {
            (_, false) => State::Closed { failures: 0 },
            (_, true) if trial => open,
            (State::Closed { failures }, true) if failures + 1 >= self.options.failures => open,
            (State::Closed { failures }, true) => State::Closed {
                failures: failures + 1,
            },
            // Opened meanwhile by another call: stays so.
            (other, true) => other,
        };
    }
}

/// Puts the circuit back to open if a trial call is dropped before it ends, so the circuit
/// is not left half-open forever.
struct TrialGuard {
    breaker: Breaker,
    key: String,
    armed: bool,
}

impl Drop for TrialGuard {
    fn drop(&mut self) {
        if self.armed {
            self.breaker.record(&self.key, true, true);
        }
    }
}

impl<S> tower::Service<ClientCall> for BreakerService<S>
where
    S: tower::Service<ClientCall, Error = crate::Error>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
{
    type Response = S::Response;
    type Error = crate::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, crate::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, call: ClientCall) -> Self::Future {
        let key = key(&call.service, &call.endpoint);
        let trial = match self.breaker.admit(&key) {
            Admission::Pass { trial } => trial,
            Admission::Refuse => {
                let error = crate::Error::new(
                    CLIENT_ID,
                    503,
                    format!(
                        "circuit breaker open for {} {}",
                        call.service, call.endpoint
                    ),
                );
                return Box::pin(std::future::ready(Err(error)));
            }
        };
        let mut guard = TrialGuard {
            breaker: self.breaker.clone(),
            key,
            armed: trial,
        };
        let future = self.inner.call(call);
        let trip_on = self.breaker.options.trip_on;
        Box::pin(async move {
            let result = future.await;
            guard.armed = false;
            let failed = result.as_ref().err().is_some_and(trip_on);
            guard.breaker.record(&guard.key, trial, failed);
            result
        })
    }
}
