//! `micro up` with `backend = "etcd"`: no member is started; everything uses a real
//! three-member etcd that the test starts. Skipped with a notice without an `etcd` binary
//! (failed when `CI` is set).

use crate::common::{assert_pairings_and_leases, have_etcdctl, Demo, Options};
use micro::testing::{Backend, BackendKind};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_on_real_etcd_balances_with_one_lease_per_instance() {
    if !have_etcdctl() {
        return;
    }
    let Some(etcd) = Backend::start(BackendKind::Etcd).await else {
        return;
    };
    let mut demo = Demo::up(Options {
        etcd: Some(etcd.endpoints()),
        ..Options::default()
    })
    .await;
    demo.wait_log("the etcd backend", std::time::Duration::from_secs(1), |l| {
        l.starts_with("[up]   registry: etcd at ")
    })
    .await;
    assert_pairings_and_leases(&demo).await;

    let list = demo.micro(&["list", "services"]).await;
    assert_eq!(
        list.lines().count(),
        3,
        "the greeter's two and the gateway: {list}"
    );
    demo.shutdown().await;
    etcd.shutdown().await;
}
