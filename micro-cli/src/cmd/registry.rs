//! `micro list services` and `micro get service <name>`: reads of the go-micro registry, printed
//! as go-micro's `micro` command prints them.

use std::fmt::Write;

use anyhow::bail;
use micro::registry::{Service, Value};
use micro::{MicroArgs, Registry};

/// One service name per line, sorted, each once.
pub(crate) async fn list_services(micro: &MicroArgs) -> anyhow::Result<()> {
    let registry = Registry::new(&micro.registry_options())?;
    let mut names: Vec<String> = registry
        .list_services()
        .await?
        .into_iter()
        .map(|s| s.name)
        .collect();
    names.dedup();
    for name in names {
        println!("{name}");
    }
    Ok(())
}

/// The versions, nodes and endpoints of `name`.
pub(crate) async fn get_service(micro: &MicroArgs, name: &str) -> anyhow::Result<()> {
    let registry = Registry::new(&micro.registry_options())?;
    let services = registry.get_service(name).await?;
    if services.is_empty() {
        bail!("service not found");
    }
    println!("{}", format_service(&services));
    Ok(())
}

/// go-micro's layout: per version the node table, then the first version's endpoints.
pub(crate) fn format_service(services: &[Service]) -> String {
    let mut out: Vec<String> = Vec::new();
    for s in services {
        out.push(format!("service  {}", s.name));
        out.push(format!("\nversion {}", s.version));
        out.push("\nID\tAddress\tMetadata".to_owned());
        for n in &s.nodes {
            let meta: Vec<String> = n.metadata.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out.push(format!("{}\t{}\t{}", n.id, n.address, meta.join(",")));
        }
    }
    if let Some(first) = services.first() {
        for e in &first.endpoints {
            let meta: Vec<String> = e.metadata.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out.push(format!("\nEndpoint: {}", e.name));
            out.push(format!("Metadata: {}", meta.join(",")));
            out.push(format!("\nRequest: {}", format_message(e.request.as_ref())));
            out.push(format!(
                "\nResponse: {}",
                format_message(e.response.as_ref())
            ));
        }
    }
    out.join("\n")
}

/// `{\n\tname string\n}` for a message with fields, `{}` without.
fn format_message(value: Option<&Value>) -> String {
    match value {
        Some(v) if !v.values.is_empty() => {
            let mut s = "{\n".to_owned();
            for f in &v.values {
                format_field(&mut s, f, 0);
            }
            s.push('}');
            s
        }
        _ => "{}".to_owned(),
    }
}

fn format_field(out: &mut String, v: &Value, depth: usize) {
    let indent = "\t".repeat(depth + 1);
    let name = v.name.to_lowercase();
    if v.values.is_empty() {
        let _ = writeln!(out, "{indent}{name} {}", v.kind);
        return;
    }
    let _ = writeln!(out, "{indent}{name} {} {{", v.kind);
    for f in &v.values {
        format_field(out, f, depth + 1);
    }
    let _ = writeln!(out, "{indent}}}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use micro::registry::{Endpoint, Node};

    #[test]
    fn looks_like_go_micros_get_service() {
        let mut svc = Service::new("go.micro.srv.greeter");
        svc.endpoints.push(Endpoint {
            request: Some(Value::message("Request", &[("name", "string")])),
            ..Endpoint::unary("Say.Hello", "Request", "Response")
        });
        let mut node = Node::new(&svc.name, "127.0.0.1:1");
        node.id = "go.micro.srv.greeter-1".to_owned();
        node.metadata = [("protocol".to_owned(), "grpc".to_owned())].into();
        svc.nodes.push(node);
        assert_eq!(
            format_service(&[svc]),
            "service  go.micro.srv.greeter\n\nversion latest\n\nID\tAddress\tMetadata\n\
             go.micro.srv.greeter-1\t127.0.0.1:1\tprotocol=grpc\n\nEndpoint: Say.Hello\n\
             Metadata: stream=false\n\nRequest: {\n\tname string\n}\n\nResponse: {}"
        );
    }
}
