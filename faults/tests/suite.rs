//! The fault suite's CI runs: ~75 s of nemesis against our registry, ~75 s against a real
//! etcd (both must pass: linearizable, every invariant held), and the negative control (~20 s:
//! serializable reads on an isolated member, which the checker must flag).
//!
//! They need root (network namespaces, iptables) and fail without it. They run one at a time
//! (a lock below): each starts three members and eight clients on a machine of two cores.
//! `FAULTS_SEED=N` repeats a run's random choices (the seed is printed either way).

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use faults::cluster::Target;
use faults::nemesis::FaultKind;
use faults::run::{run, Config};
use faults::summary::Summary;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn seed() -> u64 {
    std::env::var("FAULTS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(1)
        })
}

fn run_suite(target: Target, duration: Duration, control: bool) -> Summary {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let member_bin = PathBuf::from(env!("CARGO_BIN_EXE_faults"));
    let mut cfg = Config::new(target, duration, seed(), member_bin);
    cfg.control = control;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let summary = runtime
        .block_on(run(&cfg, &faults::check_history))
        .unwrap_or_else(|e| panic!("the {target} run could not run: {e:#}"));
    println!("{summary}");
    summary
}

/// Every kind of fault was injected at least once.
fn assert_every_kind(summary: &Summary) {
    for kind in FaultKind::ALL {
        assert!(
            summary.faults.iter().any(|f| f.kind == kind),
            "no {kind:?} was injected:\n{summary}"
        );
    }
}

#[test]
fn ours_survives_the_nemesis() {
    let summary = run_suite(Target::Ours, Duration::from_secs(75), false);
    assert!(summary.passed(), "run against ours failed:\n{summary}");
    assert_every_kind(&summary);
}

#[test]
fn etcd_survives_the_nemesis() {
    let summary = run_suite(Target::Etcd, Duration::from_secs(75), false);
    assert!(summary.passed(), "run against etcd failed:\n{summary}");
    assert_every_kind(&summary);
}

/// Proves the suite can fail: a history with serializable reads from a member cut off from
/// its peers while the others keep taking writes is not linearizable, and the checker says so.
#[test]
fn negative_control_is_flagged() {
    let summary = run_suite(Target::Ours, Duration::from_secs(20), true);
    assert!(
        summary.verdict.violation,
        "the checker did not flag stale serializable reads:\n{summary}"
    );
    assert!(
        !summary.faults.is_empty(),
        "no isolation was injected:\n{summary}"
    );
}
