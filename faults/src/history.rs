//! What the clients did, as the checker sees it: one [`Op`] per operation, with the times it
//! was invoked and completed on one monotonic clock (nanoseconds since the run began).
//!
//! The model is a register per key holding an optional string (absent = never written).
//! Writes use values unique across the run, so a read names the write it saw.

/// What an operation asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A linearizable read of the key.
    Read,
    /// An unconditional put of a unique value.
    Write(String),
    /// Put `new` only if the key currently holds `expect` (`None`: the key is absent).
    Cas { expect: Option<String>, new: String },
}

/// What came back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A read's answer: the value, or `None` for an absent key.
    Read(Option<String>),
    /// A write was acknowledged.
    Written,
    /// A compare-and-set answered: whether it swapped.
    Cas(bool),
    /// No answer (timeout, connection lost, member killed): the operation may or may not have
    /// taken effect, at any time after its invocation. Its `complete` is [`u64::MAX`].
    Unknown,
}

/// One operation of one client on one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    pub client: u32,
    pub key: String,
    pub kind: Kind,
    pub outcome: Outcome,
    /// When the client sent it (ns since the run began).
    pub invoke: u64,
    /// When the answer arrived; [`u64::MAX`] for [`Outcome::Unknown`].
    pub complete: u64,
}

impl Op {
    /// Whether the operation's outcome is known.
    pub fn is_determinate(&self) -> bool {
        self.outcome != Outcome::Unknown
    }
}

/// One line for a person: who did what, what came back, and when (ms since the run began).
impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let value = |v: &Option<String>| {
            v.as_ref()
                .map_or("(absent)".to_owned(), |s| format!("{s:?}"))
        };
        write!(f, "client {} ", self.client)?;
        match &self.kind {
            Kind::Read => write!(f, "read")?,
            Kind::Write(v) => write!(f, "write {v:?}")?,
            Kind::Cas { expect, new } => write!(f, "cas {} -> {new:?}", value(expect))?,
        }
        match &self.outcome {
            Outcome::Read(v) => write!(f, " = {}", value(v))?,
            Outcome::Written => write!(f, " ok")?,
            Outcome::Cas(true) => write!(f, " swapped")?,
            Outcome::Cas(false) => write!(f, " not swapped")?,
            Outcome::Unknown => write!(f, " (no answer)")?,
        }
        let ms = |ns: u64| ns as f64 / 1e6;
        if self.is_determinate() {
            write!(
                f,
                "  [{:.3} ms .. {:.3} ms]",
                ms(self.invoke),
                ms(self.complete)
            )
        } else {
            write!(f, "  [{:.3} ms .. never]", ms(self.invoke))
        }
    }
}
