//! Our client calling their server: a grpcio or grpc-js server of `go.micro.srv.greeter`
//! (`tests/interop/<stack>/server.*`), registered in our registry in go-micro's format by
//! micro's registry client, reached through `greeter api` and the gateway (`--handler=api`),
//! both processes of `interop_node`, over HTTP.

use std::process::Stdio;
use std::time::Duration;

use micro::registry::{Node, RegisterOptions, Registry, Service};
use micro::testing::free_port;
use micro::RegistryOptions;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::time::Instant;

use crate::interop::{Ours, Paths, Stack, START};
use crate::processes::OurCluster;

const HELLO: &str = "/greeter/say/hello?name=John";

/// One HTTP/1.1 GET (`Connection: close`); `(status, body)`, or why there was none within 15 s.
pub async fn get(address: &str, path: &str) -> Result<(u16, String), String> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(address)
            .await
            .map_err(|e| format!("connect {address}: {e}"))?;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("send: {e}"))?;
        let mut raw = Vec::new();
        stream
            .read_to_end(&mut raw)
            .await
            .map_err(|e| format!("read: {e}"))?;
        parse_response(&raw)
    };
    tokio::time::timeout(Duration::from_secs(15), exchange)
        .await
        .map_err(|_| format!("GET {path}: no answer within 15 s"))?
}

fn parse_response(raw: &[u8]) -> Result<(u16, String), String> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no end of headers in {text:?}"))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status in {head:?}"))?;
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    if !chunked {
        return Ok((status, body.to_owned()));
    }
    let mut rest = body;
    let mut decoded = String::new();
    loop {
        let (size, after) = rest
            .split_once("\r\n")
            .ok_or_else(|| format!("bad chunk in {body:?}"))?;
        let size =
            usize::from_str_radix(size.trim(), 16).map_err(|e| format!("chunk size: {e}"))?;
        if size == 0 {
            return Ok((status, decoded));
        }
        let chunk = after
            .get(..size)
            .ok_or_else(|| format!("short chunk in {body:?}"))?;
        decoded.push_str(chunk);
        rest = after.get(size + 2..).unwrap_or_default();
    }
}

/// Their greeter server as a process (stdin kept open: it stops when the pipe closes).
struct TheirServer {
    child: tokio::process::Child,
    address: String,
}

impl TheirServer {
    async fn start(paths: &Paths, stack: Stack) -> Result<TheirServer, String> {
        let port = free_port().map_err(|e| format!("a free port: {e}"))?;
        let mut child = stack
            .command(paths, "server")?
            .args(["--port", &port.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("start the {} server: {e}", stack.name()))?;
        let stdout = child.stdout.take().ok_or("no stdout pipe")?;
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(START, lines.next_line())
            .await
            .map_err(|_| format!("the {} server said nothing within {START:?}", stack.name()))?
            .map_err(|e| format!("reading the {} server: {e}", stack.name()))?;
        if line.as_deref() != Some(&format!("LISTENING {port}")) {
            return Err(format!(
                "the {} server said {line:?}, not LISTENING {port}",
                stack.name()
            ));
        }
        Ok(TheirServer {
            child,
            address: format!("127.0.0.1:{port}"),
        })
    }
}

fn answer_of(stack: Stack) -> String {
    format!(
        r#"{{"api":"api one","message":"Hello John from {}"}}"#,
        stack.name()
    )
}

/// Asks until `pred` holds for an answer (bounded); the last answer otherwise.
async fn until(
    gateway: &str,
    path: &str,
    pred: impl Fn(u16, &str) -> bool,
) -> Result<(u16, String), String> {
    let deadline = Instant::now() + START;
    loop {
        let answer = get(gateway, path).await;
        if let Ok((status, body)) = &answer {
            if pred(*status, body) {
                return Ok((*status, body.clone()));
            }
        }
        if Instant::now() >= deadline {
            return Err(format!("after {START:?}, the last answer: {answer:?}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The whole scenario for `stack`'s server; panics on the first thing that goes wrong.
pub async fn through_gateway(paths: &Paths, stack: Stack) {
    let name = stack.name();
    let fail =
        |what: &str, e: String| -> ! { panic!("{name} server through the gateway: {what}: {e}") };
    // Without the stack, fail before anything is started.
    stack
        .command(paths, "server")
        .unwrap_or_else(|e| fail("their server", e));
    let cluster = OurCluster::start(&paths.compat_node, 1)
        .await
        .unwrap_or_else(|e| fail("our registry", e));
    let endpoints = cluster.endpoints();
    let mut server = TheirServer::start(paths, stack)
        .await
        .unwrap_or_else(|e| fail("their server", e));

    // Registered as go-micro registers a node: its own key and lease, kept alive.
    let registry = Registry::new(&RegistryOptions::new(endpoints.clone()))
        .unwrap_or_else(|e| fail("registry client", e.to_string()));
    let mut service = Service::new(greeter::srv::SERVICE);
    service.endpoints = greeter::srv::endpoints();
    service
        .nodes
        .push(Node::new(greeter::srv::SERVICE, server.address.clone()));
    let options = RegisterOptions {
        ttl: Duration::from_secs(10),
        interval: Duration::from_secs(3),
    };
    let registration = registry
        .register(&service, options)
        .await
        .unwrap_or_else(|e| fail("registering their server", e.to_string()));

    let dir = tempfile::tempdir().unwrap_or_else(|e| fail("temporary directory", e.to_string()));
    let registry_flag = format!("--registry_address={}", endpoints.join(","));
    let port = |what| free_port().unwrap_or_else(|e| fail(what, e.to_string()));
    let api_address = format!("127.0.0.1:{}", port("api port"));
    let api_args: Vec<String> = vec![
        "greeter".into(),
        "api".into(),
        "--name".into(),
        "one".into(),
        registry_flag.clone(),
        format!("--server_address={api_address}"),
    ];
    let mut api = Ours::start(paths, &api_args, dir.path().join("api.log"))
        .unwrap_or_else(|e| fail("api", e));
    api.wait_listening(&api_address)
        .await
        .unwrap_or_else(|e| fail("greeter api", e));
    let gateway = format!("127.0.0.1:{}", port("gateway port"));
    let gateway_args: Vec<String> = vec![
        "gateway".into(),
        format!("--address={gateway}"),
        "--handler=api".into(),
        registry_flag,
    ];
    let mut gw = Ours::start(paths, &gateway_args, dir.path().join("gateway.log"))
        .unwrap_or_else(|e| fail("gateway", e));
    gw.wait_listening(&gateway)
        .await
        .unwrap_or_else(|e| fail("gateway", e));
    let logs = |api: &Ours, gw: &Ours| {
        format!(
            "--- api\n{}\n--- gateway\n{}",
            api.log_tail(),
            gw.log_tail()
        )
    };
    let want = answer_of(stack);
    // Ready once the api has found their node.
    until(&gateway, HELLO, |s, b| s == 200 && b == want)
        .await
        .unwrap_or_else(|e| fail("first answer", format!("{e}\n{}", logs(&api, &gw))));

    for i in 0..500 {
        let answer = get(&gateway, HELLO).await;
        if answer != Ok((200, want.clone())) {
            fail(
                "500 sequential",
                format!("request {i}: {answer:?}\n{}", logs(&api, &gw)),
            );
        }
    }
    let concurrent: Vec<_> = (0..64)
        .map(|_| {
            let gateway = gateway.clone();
            tokio::spawn(async move { get(&gateway, HELLO).await })
        })
        .collect();
    for (i, task) in concurrent.into_iter().enumerate() {
        let answer = task.await.unwrap_or_else(|e| Err(format!("task: {e}")));
        if answer != Ok((200, want.clone())) {
            fail(
                "64 concurrent",
                format!("request {i}: {answer:?}\n{}", logs(&api, &gw)),
            );
        }
    }
    println!("PASS {name}: 500 sequential and 64 concurrent requests answered {want}");

    // Their INVALID_ARGUMENT: with a go-micro JSON error as its message (what a go-micro server
    // sends), that error passes through as it is, its own code the HTTP status; with a plain
    // message, micro's client maps the code (micro/src/errors.rs `from_status`: 400, the
    // callee's name as id).
    let errors = [
        (
            "fail-micro",
            403,
            r#"{"id":"go.micro.srv.greeter","code":403,"detail":"refused","status":"Forbidden"}"#,
        ),
        (
            "fail",
            400,
            r#"{"id":"go.micro.srv.greeter","code":400,"detail":"bad name","status":"Bad Request"}"#,
        ),
    ];
    for (query, status, body) in errors {
        let answer = get(&gateway, &format!("/greeter/say/hello?name={query}")).await;
        if answer != Ok((status, body.to_owned())) {
            fail(
                "error status",
                format!("name={query}: {answer:?}, want {status} {body}"),
            );
        }
        println!("PASS {name}: name={query}: INVALID_ARGUMENT -> {status} {body}");
    }

    // Killed hard while still registered: a clean go-micro error within the client's timeout.
    server
        .child
        .kill()
        .await
        .unwrap_or_else(|e| fail("SIGKILL their server", e.to_string()));
    let started = Instant::now();
    let (status, body) = get(&gateway, HELLO)
        .await
        .unwrap_or_else(|e| fail("after SIGKILL", format!("{e}\n{}", logs(&api, &gw))));
    let took = started.elapsed();
    let error = micro::Error::parse(&body);
    let clean = status == 500
        && error.as_ref().is_some_and(|e| {
            e.code == 500 && e.id == "go.micro.client" && e.status == "Internal Server Error"
        });
    if !clean || took > Duration::from_secs(6) {
        fail(
            "after SIGKILL",
            format!(
                "{status} {body} after {took:?}, want go-micro's 500 within the 5 s client timeout"
            ),
        );
    }
    println!("PASS {name}: killed server -> {status} {body} in {took:?}");

    registration
        .deregister()
        .await
        .unwrap_or_else(|e| fail("deregistering", e.to_string()));
    let gone = r#"{"id":"go.micro.client","code":500,"detail":"service go.micro.srv.greeter: not found","status":"Internal Server Error"}"#;
    until(&gateway, HELLO, |s, b| s == 500 && b == gone)
        .await
        .unwrap_or_else(|e| fail("after deregistration", format!("{e}, want 500 {gone}")));
    println!("PASS {name}: deregistered -> 500 {gone}");

    for (what, process) in [("gateway", gw), ("greeter api", api)] {
        process
            .terminate()
            .await
            .unwrap_or_else(|e| fail(what, format!("stop: {e}")));
    }
}
