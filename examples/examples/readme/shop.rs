mod pb { micro::include_proto!("go.micro.srv.shop"); }
use pb::{HistoryRequest, OrderReply, OrderRequest};
use std::sync::Mutex;

#[derive(Default)]
struct Shop { orders: Mutex<Vec<OrderReply>> }

impl pb::ShopHandler for Shop {
    async fn order(&self, req: OrderRequest) -> Result<OrderReply, micro::Error> {
        if req.lines.is_empty() {
            return Err(micro::Error::bad_request("go.micro.srv.shop", "no lines"));
        }
        let total_cents = req.lines.iter().map(|l| i64::from(l.quantity) * l.unit_cents).sum();
        let mut orders = self.orders.lock().unwrap_or_else(|e| e.into_inner());
        let id = format!("order-{}", orders.len() + 1);
        orders.push(OrderReply { id, customer: req.customer, total_cents, ..Default::default() });
        Ok(orders[orders.len() - 1].clone())
    }

    async fn history(&self, req: HistoryRequest) -> Result<micro::stream::BoxStream<OrderReply>, micro::Error> {
        let orders = self.orders.lock().unwrap_or_else(|e| e.into_inner());
        let mine: Vec<_> = orders.iter().filter(|o| o.customer == req.customer).map(|o| Ok(o.clone())).collect();
        Ok(Box::pin(futures::stream::iter(mine)))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let registry = micro::Registry::new(&micro::RegistryOptions::new(vec!["127.0.0.1:2379".into()]))?;
    let service = micro::Service::new(micro::ServiceOptions::new("go.micro.srv.shop"), registry);
    let service = pb::register_shop_handler(service, Shop::default());
    Ok(service.run(micro::process::shutdown_on_signal()).await?)
}
