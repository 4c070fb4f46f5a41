//! The `bench` binary: parses the arguments, runs one workload, prints its JSON line.

use bench::{conn, http, lease, put, range, scale, soak, watch, Args, Workload};
use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Workload::Hello(w) = &args.workload {
        return http::hello(w).await;
    }
    if let Workload::Http(w) = &args.workload {
        let mut out = http::run(w).await?;
        if let Some(o) = out.as_object_mut() {
            o.insert("label".into(), args.label.clone().into());
        }
        println!("{}", serde_json::to_string(&out)?);
        return Ok(());
    }
    if let Workload::SoakReport(w) = &args.workload {
        return soak::report::run(w);
    }
    let channels = conn::connect(&args).await?;
    let mut out = match &args.workload {
        Workload::Put(w) => put::run(&args, w, &channels).await?,
        Workload::Range(w) => range::run(&args, w, &channels).await?,
        Workload::Lease(w) => lease::run(&args, w, &channels).await?,
        Workload::Watch(w) => watch::run(&args, w, &channels).await?,
        Workload::ScaleLeases(w) => scale::leases(&args, w, &channels).await?,
        Workload::ScaleExpiry(w) => scale::expiry::run(&args, w, &channels).await?,
        Workload::ScaleFailover(w) => {
            let killer = scale::failover::sigkill(args.pids.clone());
            scale::failover::run(&args, w, &channels, killer).await?
        }
        Workload::ScaleWatch(w) => scale::watchers::run(&args, w, &channels).await?,
        Workload::ScaleMicro(w) => scale::micro::run(&args, w, &channels).await?,
        Workload::Soak(w) => soak::run(&args, w, &channels).await?,
        Workload::Hello(_) | Workload::Http(_) | Workload::SoakReport(_) => {
            unreachable!("handled above")
        }
    };
    if let Some(o) = out.as_object_mut() {
        o.insert("label".into(), args.label.clone().into());
        o.insert("endpoints".into(), args.endpoints.join(",").into());
        o.insert("conns".into(), args.conns.into());
        o.insert("clients".into(), args.clients.into());
        o.insert("target_leader".into(), args.target_leader.into());
    }
    println!("{}", serde_json::to_string(&out)?);
    Ok(())
}
