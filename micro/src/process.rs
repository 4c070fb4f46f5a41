//! What every binary of a micro service does at start: logging to stderr (colours only on a
//! terminal, so forwarded logs stay clean) and a shutdown token cancelled by Ctrl-C or SIGTERM.

use tokio_util::sync::CancellationToken;

/// Installs the tracing subscriber: `RUST_LOG`, default `info`.
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
}

/// Waits for Ctrl-C or (on Unix) SIGTERM.
pub async fn terminate_signal() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r,
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await
    }
}

/// A token cancelled on Ctrl-C or SIGTERM (or at once if no handler can be installed).
pub fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        if let Err(error) = terminate_signal().await {
            tracing::warn!(%error, "no signal handler; stopping");
        } else {
            tracing::info!("signal received, shutting down");
        }
        t.cancel();
    });
    token
}
