//! Whether one registry member answers, as `etcdctl endpoint health` decides it.

use std::time::Duration;

use proto::etcdserverpb::kv_client::KvClient;
use proto::etcdserverpb::RangeRequest;

use super::TlsOptions;

/// etcdctl's `endpoint health`: a linearizable read of key `health` at `url` succeeds within
/// two seconds.
pub async fn member_healthy(url: &str) -> bool {
    member_healthy_with(url, None).await
}

/// [`member_healthy`] with TLS settings for an `https://` member (`None`: the system's roots).
/// As etcdctl, a member that refuses the read for want of permission (auth on) is healthy.
pub async fn member_healthy_with(url: &str, tls: Option<&TlsOptions>) -> bool {
    let Ok(mut endpoint) = tonic::transport::Endpoint::from_shared(url.to_owned()) else {
        return false;
    };
    if url.starts_with("https://") {
        let Ok(config) = tls.cloned().unwrap_or_default().client_config() else {
            return false;
        };
        let Ok(with_tls) = endpoint.tls_config(config) else {
            return false;
        };
        endpoint = with_tls;
    }
    let read = async {
        let channel = endpoint
            .connect_timeout(Duration::from_millis(500))
            .connect()
            .await
            .ok()?;
        match KvClient::new(channel)
            .range(RangeRequest {
                key: b"health".to_vec(),
                ..Default::default()
            })
            .await
        {
            Ok(_) => Some(()),
            Err(status) if status.code() == tonic::Code::PermissionDenied => Some(()),
            Err(status) if status.message().contains("user name is empty") => Some(()),
            Err(_) => None,
        }
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), read).await,
        Ok(Some(_))
    )
}
