//! The service code prost-build asks for, one proto service at a time (see the crate's docs
//! for what is written). Generated code names everything by absolute path (`::micro::...`),
//! so it compiles wherever it is included.

use std::fmt::Write as _;

use prost_build::{Method, Service, ServiceGenerator};

use crate::tree::Index;

pub(crate) struct Generator {
    index: Index,
}

impl Generator {
    pub(crate) fn new(index: Index) -> Self {
        Generator { index }
    }
}

/// `SayHello` → `say_hello`.
fn snake(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    let mut previous_lower = false;
    for c in name.chars() {
        if c.is_uppercase() && previous_lower {
            out.push('_');
        }
        previous_lower = c.is_lowercase() || c.is_ascii_digit();
        out.extend(c.to_lowercase());
    }
    out
}

#[derive(Clone, Copy)]
enum Kind {
    Unary,
    ServerStream,
    ClientStream,
    Bidi,
}

fn kind(method: &Method) -> Kind {
    match (method.client_streaming, method.server_streaming) {
        (false, false) => Kind::Unary,
        (false, true) => Kind::ServerStream,
        (true, false) => Kind::ClientStream,
        (true, true) => Kind::Bidi,
    }
}

const STREAM: &str = "::micro::stream::BoxStream";
const ERROR: &str = "::micro::Error";

/// The handler method's parameter and answer types.
fn handler_types(method: &Method) -> (String, String) {
    let (input, output) = (&method.input_type, &method.output_type);
    match kind(method) {
        Kind::Unary => (input.clone(), output.clone()),
        Kind::ServerStream => (input.clone(), format!("{STREAM}<{output}>")),
        Kind::ClientStream => (format!("{STREAM}<{input}>"), output.clone()),
        Kind::Bidi => (format!("{STREAM}<{input}>"), format!("{STREAM}<{output}>")),
    }
}

impl ServiceGenerator for Generator {
    fn generate(&mut self, service: Service, buf: &mut String) {
        let name = &service.name;
        let proto = &service.proto_name;
        let lower = snake(name);
        let _ = self.write(&service, name, proto, &lower, buf);
    }
}

impl Generator {
    fn write(
        &self,
        service: &Service,
        name: &str,
        proto: &str,
        lower: &str,
        buf: &mut String,
    ) -> std::fmt::Result {
        // The handler trait.
        writeln!(buf, "/// Server side of `{proto}` (micro-build): one method per RPC; mount it with [`register_{lower}_handler`].")?;
        writeln!(buf, "pub trait {name}Handler: Send + Sync + 'static {{")?;
        for method in &service.methods {
            let (input, output) = handler_types(method);
            method.comments.append_with_indent(1, buf);
            writeln!(buf, "    /// `{proto}.{}`", method.proto_name)?;
            writeln!(
                buf,
                "    fn {}(&self, request: {input}) -> impl ::core::future::Future<Output = ::core::result::Result<{output}, {ERROR}>> + Send;",
                method.name
            )?;
        }
        writeln!(buf, "}}\n")?;

        // The mount.
        writeln!(buf, "/// `{proto}`'s methods, to be served under a service's name (`/<service>.{proto}/<Method>`).")?;
        writeln!(
            buf,
            "pub fn {lower}_mount<H: {name}Handler>(handler: H) -> ::micro::handler::Mount {{"
        )?;
        writeln!(buf, "    let handler = ::std::sync::Arc::new(handler);")?;
        writeln!(
            buf,
            "    let mount = ::micro::handler::Mount::new({proto:?}, {lower}_endpoints());"
        )?;
        for method in &service.methods {
            let (input, _) = handler_types(method);
            let adder = match kind(method) {
                Kind::Unary => "unary",
                Kind::ServerStream => "server_stream",
                Kind::ClientStream => "client_stream",
                Kind::Bidi => "bidi_stream",
            };
            writeln!(buf, "    let h = ::std::sync::Arc::clone(&handler);")?;
            writeln!(
                buf,
                "    let mount = mount.{adder}({:?}, move |request: {input}| {{ let h = ::std::sync::Arc::clone(&h); async move {{ h.{}(request).await }} }});",
                method.proto_name, method.name
            )?;
        }
        writeln!(buf, "    drop(handler);\n    mount\n}}\n")?;

        writeln!(buf, "/// Mounts `handler` on `service`: `/<service>.{proto}/<Method>` and the endpoints registered.")?;
        writeln!(buf, "pub fn register_{lower}_handler<H: {name}Handler>(service: ::micro::Service, handler: H) -> ::micro::Service {{")?;
        writeln!(buf, "    service.mount({lower}_mount(handler))\n}}\n")?;

        // The endpoints.
        writeln!(
            buf,
            "/// `{proto}`'s endpoints as go-micro registers them (request and response trees)."
        )?;
        writeln!(buf, "pub fn {lower}_endpoints() -> ::std::vec::Vec<::micro::registry::Endpoint> {{\n    vec![")?;
        for method in &service.methods {
            let stream = !matches!(kind(method), Kind::Unary);
            writeln!(
                buf,
                "        ::micro::handler::endpoint(\"{proto}.{}\", {stream}, {}, {}),",
                method.proto_name,
                self.index.tree(&method.input_proto_type),
                self.index.tree(&method.output_proto_type)
            )?;
        }
        writeln!(buf, "    ]\n}}\n")?;

        // The client.
        writeln!(
            buf,
            "/// Typed client of `{proto}` on `micro::Client` (selector, retries, layers)."
        )?;
        writeln!(buf, "#[derive(Debug, Clone)]\npub struct {name}Client {{\n    service: ::std::string::String,\n    client: ::micro::Client,\n}}\n")?;
        writeln!(buf, "impl {name}Client {{")?;
        writeln!(
            buf,
            "    /// Calls the service registered under the name `service` through `client`."
        )?;
        writeln!(buf, "    pub fn new(service: impl Into<::std::string::String>, client: &::micro::Client) -> Self {{")?;
        writeln!(
            buf,
            "        {name}Client {{ service: service.into(), client: client.clone() }}\n    }}"
        )?;
        for method in &service.methods {
            let (input, output) = (&method.input_type, &method.output_type);
            let endpoint = format!("{proto}.{}", method.proto_name);
            let requests = format!("impl ::micro::stream::Stream<Item = {input}> + Send + 'static");
            let (param, answer, call) = match kind(method) {
                Kind::Unary => (input.clone(), output.clone(), "call"),
                Kind::ServerStream => (
                    input.clone(),
                    format!("{STREAM}<{output}>"),
                    "server_stream",
                ),
                Kind::ClientStream => (requests, output.clone(), "client_stream"),
                Kind::Bidi => (requests, format!("{STREAM}<{output}>"), "bidi_stream"),
            };
            writeln!(buf, "    /// `{endpoint}`")?;
            writeln!(
                buf,
                "    pub async fn {}(&self, request: {param}) -> ::core::result::Result<{answer}, {ERROR}> {{",
                method.name
            )?;
            writeln!(
                buf,
                "        self.client.{call}(&self.service, {endpoint:?}, request).await\n    }}"
            )?;
        }
        writeln!(buf, "}}")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn snake_case_names() {
        assert_eq!(super::snake("Say"), "say");
        assert_eq!(super::snake("SayHello"), "say_hello");
        assert_eq!(super::snake("Catalog2Find"), "catalog2_find");
    }
}
