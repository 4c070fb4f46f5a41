//! The soak (`bench soak`, `bench/compare.sh soak`) with small figures against an in-process
//! cluster with periodic auto-compaction every 2 s: the churn runs (registrations, renewals,
//! restarts, plain puts) with no lease lost, samples are taken throughout, the store is
//! compacted during the run, and `bench soak-report` renders the table and a verdict. The
//! members share this process, so `--pids` names it three times: the memory figures are this
//! process's, exercised only (the verdict on them is not asserted).

use std::time::Duration;

use bench::soak::{report, sample::Sample};
use bench::{conn, soak, Args, Workload};
use clap::Parser;
use registry_node::testing::TestCluster;
use registry_node::CompactionSection;
use registry_node::RaftSection;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn soak_smoke_against_ours() {
    let compaction = CompactionSection {
        mode: "periodic".into(),
        retention: "2s".into(),
    };
    let c = TestCluster::start_configured(3, RaftSection::default(), compaction).await;
    c.wait_for_leader(Duration::from_secs(20))
        .await
        .expect("a leader");
    let me = std::process::id().to_string();
    let pids = format!("{me},{me},{me}");
    let eps = c.endpoints().join(",");
    // 300 seed seconds at 30x: 10 s of churn, a sample every 0.5 s.
    let argv = [
        "bench",
        "--endpoints",
        &eps,
        "--pids",
        &pids,
        "--conns",
        "3",
        "soak",
        "--sim-secs",
        "300",
        "--speed",
        "30",
        "--instances",
        "4",
        "--restart",
        "60",
        "--renew",
        "10",
        "--puts",
        "10",
        "--keys",
        "50",
        "--sample",
        "0.5",
    ];
    let a = Args::try_parse_from(argv).expect("valid arguments");
    let Workload::Soak(w) = &a.workload else {
        panic!("soak")
    };
    let chans = conn::connect(&a).await.expect("connections");
    let v = soak::run(&a, w, &chans).await.expect("the soak runs");
    let num = |k: &str| v[k].as_u64().unwrap_or_else(|| panic!("{k} in {v}"));
    // Each instance restarts every 2 s of the 10: about five registrations each.
    assert!(num("registrations") >= 4 * 4, "{v}");
    assert!(num("revokes") >= 4 * 3, "{v}");
    assert!(num("renewals") > 0, "{v}");
    assert!(num("reads") > 0, "{v}");
    for k in [
        "register_errors",
        "renew_lost",
        "renew_errors",
        "revoke_errors",
        "put_errors",
    ] {
        assert_eq!(num(k), 0, "{k}: {v}");
    }
    // 10 puts per seed second at 30x for 10 s: 3,000 due.
    assert!(num("puts") + num("puts_behind") >= 2_900, "{v}");
    assert!(num("puts") > 1_000, "{v}");
    let samples: Vec<Sample> = serde_json::from_value(v["samples"].clone()).expect("samples");
    assert!(samples.len() >= 15, "{} samples", samples.len());
    let (first, last) = (&samples[0], &samples[samples.len() - 1]);
    assert!(last.revision > first.revision + 1_000, "{first:?} {last:?}");
    assert!(
        last.compact_revision > first.compact_revision,
        "compacted during the run: {first:?} {last:?}"
    );
    assert!(last.rss_mib.iter().all(|r| r.is_some_and(|m| m > 0.0)));
    assert!(
        last.db_in_use_mib.is_some() && last.db_mib.is_some(),
        "{last:?}"
    );

    let mut line = v.clone();
    line["side"] = Value::from("ours");
    line["load"] = Value::from("0 0 0");
    let md = report::render(&[line]).expect("renders");
    eprintln!("{md}");
    assert!(md.starts_with("| time (s) |"), "{md}");
    assert!(md.contains("- **ours**: "), "{md}");
    assert_eq!(v["verdict"], Value::from(report::verdict(&samples).text));
    c.shutdown().await;
}
