//! `micro health <service>`: asks every node of a service for its gRPC health
//! (`grpc.health.v1.Health/Check`, the whole server), all at once, each bounded by
//! `--client_request_timeout`; prints one line per node (tab-separated) and fails (exit code
//! 1) unless every node answers SERVING.
//!
//! ```text
//! service  go.micro.srv.greeter
//!
//! version latest
//!
//! node  address  status
//! go.micro.srv.greeter-44468bc6-...  127.0.0.1:42911  SERVING
//! go.micro.srv.greeter-c88a700f-...  127.0.0.1:44065  UNREACHABLE (connect 127.0.0.1:44065: ...)
//! ```

use anyhow::bail;
use micro::health::ServingStatus;
use micro::{MicroArgs, Registry};

/// One node's answer, as printed.
fn describe(answer: &Result<ServingStatus, tonic::Status>) -> String {
    match answer {
        Ok(status) => status.as_str_name().to_owned(),
        Err(status) if status.code() == tonic::Code::Unavailable => {
            format!("UNREACHABLE ({})", status.message())
        }
        Err(status) => format!("ERROR {:?} ({})", status.code(), status.message()),
    }
}

/// Checks every node of `name`; an error unless all are SERVING.
pub(crate) async fn health(micro: &MicroArgs, name: &str) -> anyhow::Result<()> {
    let registry = Registry::new(&micro.registry_options())?;
    let services = registry.get_service(name).await?;
    if services.iter().all(|s| s.nodes.is_empty()) {
        bail!("service {name} not found");
    }
    let timeout = micro.client_request_timeout;
    let mut unhealthy = 0;
    for service in &services {
        println!(
            "service  {}\n\nversion {}\n\nnode\taddress\tstatus",
            service.name, service.version
        );
        let checks = service
            .nodes
            .iter()
            .map(|node| micro::health::check(&node.address, "", timeout));
        let answers = futures::future::join_all(checks).await;
        for (node, answer) in service.nodes.iter().zip(&answers) {
            if !matches!(answer, Ok(ServingStatus::Serving)) {
                unhealthy += 1;
            }
            println!("{}\t{}\t{}", node.id, node.address, describe(answer));
        }
    }
    if unhealthy > 0 {
        bail!("{unhealthy} node(s) of {name} not serving");
    }
    Ok(())
}
