//! Fault-injection suite: three registry members (or three real etcd members) as processes,
//! clients recording a history, a nemesis injecting faults, and a linearizability checker.
//! (Being written: see each module.)

pub mod checker;
pub mod history;
