//! Node's @grpc/grpc-js (on Node's http2), an independent gRPC implementation, against ours in
//! both directions: its client calling our greeter srv, and our client (through `greeter api`
//! and the gateway) calling its server. grpc-js comes from `tests/interop/install.sh`; without it
//! these tests fail with a message naming the script (they never skip).

use system_tests::interop::{self, Stack};
use system_tests::interop_gateway;

/// Every check `tests/interop/node/client.js` prints.
const CHECKS: [&str; 9] = [
    "unary",
    "concurrent-2000-one-channel",
    "message-3mib",
    "deadline-1ms-then-channel-works",
    "unknown-method-unimplemented",
    "metadata-ascii-and-binary",
    "keepalive-pings",
    "reconnect-after-restart",
    "sigterm-in-flight",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_js_client_calls_our_greeter_srv() {
    interop::client_checks(&system_tests::paths!(), Stack::Node, &CHECKS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_client_calls_a_grpc_js_server_through_the_gateway() {
    interop_gateway::through_gateway(&system_tests::paths!(), Stack::Node).await;
}
