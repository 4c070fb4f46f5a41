//! Whether one registry member answers, as `etcdctl endpoint health` decides it.

use std::time::Duration;

use proto::etcdserverpb::kv_client::KvClient;
use proto::etcdserverpb::RangeRequest;

/// etcdctl's `endpoint health`: a linearizable read of key `health` at `url` succeeds within
/// two seconds.
pub async fn member_healthy(url: &str) -> bool {
    let Ok(endpoint) = tonic::transport::Endpoint::from_shared(url.to_owned()) else {
        return false;
    };
    let read = async {
        let channel = endpoint
            .connect_timeout(Duration::from_millis(500))
            .connect()
            .await
            .ok()?;
        KvClient::new(channel)
            .range(RangeRequest {
                key: b"health".to_vec(),
                ..Default::default()
            })
            .await
            .ok()
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), read).await,
        Ok(Some(_))
    )
}
