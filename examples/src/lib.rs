//! `go.micro.srv.shop`: a service written from scratch on micro (see `examples/README.md`).
//! Its proto (`proto/shop.proto`) nests and repeats (`OrderRequest.Line`, `repeated Line
//! lines`, `Address ship_to`) and has a server stream (`Shop.History`); micro-build
//! (`build.rs`) generates the handler trait, the mount, the endpoint trees and the typed client.

use std::sync::{Arc, Mutex};

use micro::server::Routes;
use micro::stream::BoxStream;

/// The generated messages and service code.
pub mod pb {
    #![allow(clippy::all, missing_docs, unreachable_pub)]
    micro::include_proto!("go.micro.srv.shop");
}

use pb::{HistoryRequest, OrderReply, OrderRequest};

/// The service's registered name.
pub const SERVICE: &str = "go.micro.srv.shop";

/// The encoded descriptors of `shop.proto`, served by gRPC reflection.
pub const DESCRIPTORS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/shop.bin"));

/// The shop: orders kept in memory, shared by clones.
#[derive(Debug, Clone, Default)]
pub struct Shop {
    orders: Arc<Mutex<Vec<OrderReply>>>,
}

fn bad(detail: String) -> micro::Error {
    micro::Error::bad_request(SERVICE, detail)
}

impl pb::ShopHandler for Shop {
    async fn order(&self, request: OrderRequest) -> Result<OrderReply, micro::Error> {
        if request.customer.trim().is_empty() || request.lines.is_empty() {
            return Err(bad("an order needs a customer and at least one line".into()));
        }
        let mut total: i64 = 0;
        for line in &request.lines {
            if line.quantity <= 0 || line.unit_cents < 0 {
                return Err(bad(format!(
                    "line {:?}: quantity and price must be positive",
                    line.item
                )));
            }
            total = i64::from(line.quantity)
                .checked_mul(line.unit_cents)
                .and_then(|cost| total.checked_add(cost))
                .ok_or_else(|| bad("total out of range".into()))?;
        }
        let items = request
            .lines
            .iter()
            .map(|l| format!("{} x{}", l.item, l.quantity))
            .collect();
        let mut orders = self.orders.lock().unwrap_or_else(|p| p.into_inner());
        let reply = OrderReply {
            id: format!("order-{}", orders.len() + 1),
            customer: request.customer,
            total_cents: total,
            items,
        };
        orders.push(reply.clone());
        Ok(reply)
    }

    async fn history(
        &self,
        request: HistoryRequest,
    ) -> Result<BoxStream<OrderReply>, micro::Error> {
        let orders = self.orders.lock().unwrap_or_else(|p| p.into_inner());
        let mine: Vec<_> = orders
            .iter()
            .filter(|o| o.customer == request.customer)
            .cloned()
            .collect();
        Ok(Box::pin(futures::stream::iter(mine.into_iter().map(Ok))))
    }
}

/// gRPC server reflection of the shop's messages, for callers that know only JSON (the
/// gateway's `--handler=rpc`, `micro call`).
pub fn reflection() -> Result<Routes, tonic_reflection::server::Error> {
    let v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(DESCRIPTORS)
        .build_v1()?;
    Ok(Routes::new().tonic(v1))
}

/// The shop as a micro service: the generated handler mounted, reflection served.
pub fn service(service: micro::Service) -> Result<micro::Service, tonic_reflection::server::Error> {
    let service = pb::register_shop_handler(service, Shop::default());
    Ok(service.routes(reflection()?, []))
}
