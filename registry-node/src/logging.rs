//! Logs a person can read during an outage: a warning or error that one place in the code
//! logs over and over (openraft's "timeout while confirming leadership for read request" once
//! per read while a member has no quorum: ~45,000 lines in 4 minutes) is written at most once
//! per window; the next one that gets through is preceded by one line with the count of those
//! held back. Info and below pass untouched.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing::callsite::Identifier;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// How often one call site may log a warning or an error.
pub(crate) const WINDOW: Duration = Duration::from_secs(10);

/// A [`Layer`] that holds back repeats of a warning or an error from one call site.
pub(crate) struct Repeats {
    window: Duration,
    sites: Mutex<HashMap<Identifier, Site>>,
}

struct Site {
    /// When the last line from this site was let through.
    passed: Instant,
    /// Lines held back since.
    held: u64,
}

impl Repeats {
    pub(crate) fn new(window: Duration) -> Self {
        Repeats {
            window,
            sites: Mutex::new(HashMap::new()),
        }
    }

    /// Whether an event of `site` at `now` is written; the count of lines held back before
    /// it when the window has passed (0: none).
    fn admit(&self, site: Identifier, now: Instant) -> (bool, u64) {
        let mut sites = self.sites.lock().unwrap_or_else(|p| p.into_inner());
        match sites.get_mut(&site) {
            None => {
                // Bounded: one entry per call site of the program.
                sites.insert(
                    site,
                    Site {
                        passed: now,
                        held: 0,
                    },
                );
                (true, 0)
            }
            Some(s) if now.duration_since(s.passed) >= self.window => {
                s.passed = now;
                (true, std::mem::take(&mut s.held))
            }
            Some(s) => {
                s.held += 1;
                (false, 0)
            }
        }
    }
}

impl<S: Subscriber> Layer<S> for Repeats {
    fn event_enabled(&self, event: &Event<'_>, _cx: Context<'_, S>) -> bool {
        let meta = event.metadata();
        // tracing orders levels by verbosity: INFO, DEBUG and TRACE are above WARN.
        if *meta.level() > Level::WARN || meta.target() == module_path!() {
            return true;
        }
        let (pass, held) = self.admit(meta.callsite(), Instant::now());
        if held > 0 {
            tracing::warn!(
                held,
                site = %format_args!("{}:{}", meta.file().unwrap_or("?"), meta.line().unwrap_or(0)),
                "held back {held} more lines like the next one in the last {}s",
                self.window.as_secs()
            );
        }
        pass
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site() -> Identifier {
        struct Here;
        static HERE: Here = Here;
        impl tracing::callsite::Callsite for Here {
            fn set_interest(&self, _: tracing::subscriber::Interest) {}
            fn metadata(&self) -> &tracing::Metadata<'_> {
                unreachable!("not registered")
            }
        }
        Identifier(&HERE)
    }

    #[test]
    fn one_line_per_window_then_the_count() {
        let r = Repeats::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(r.admit(site(), t0), (true, 0));
        for i in 1..=1000 {
            assert_eq!(r.admit(site(), t0 + Duration::from_millis(i)), (false, 0));
        }
        assert_eq!(r.admit(site(), t0 + Duration::from_secs(10)), (true, 1000));
        assert_eq!(r.admit(site(), t0 + Duration::from_secs(11)), (false, 0));
        assert_eq!(r.admit(site(), t0 + Duration::from_secs(30)), (true, 1));
    }
}
