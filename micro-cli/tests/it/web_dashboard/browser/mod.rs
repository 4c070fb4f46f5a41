//! A real headless Chromium driven over WebDriver: Debian's `chromedriver` as a child process in a
//! process group of its own (Chromium is its child), [`fantoccini`] as the client. Dropping
//! [`Browser`] kills the whole group and removes the profile directory, so no browser outlives
//! the test, even when it fails half-way.
//!
//! No browser installed is a failure, not a skip: `apt-get install -y chromium chromium-driver`.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use micro::testing::free_port;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::process::{Child, Command};
use tokio::time::Instant;

/// Flags that work here as root, with no display, no network beyond loopback and no sandbox.
const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    // No crash handler: it runs in a process group of its own, out of reach of the killpg.
    "--disable-breakpad",
    "--disable-crash-reporter",
    "--window-size=1400,1200",
];

/// A program on `PATH`, or the reason to fail.
fn find(program: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "no `{program}` on PATH: the dashboard's browser test needs Debian's Chromium \
                 (apt-get install -y chromium chromium-driver)"
            )
        })
}

/// Fails at once, before anything is started, when Chromium or its driver is missing.
pub(super) fn require() {
    find("chromium");
    find("chromedriver");
}

/// One Chromium session; the browser and its driver die with it.
pub(super) struct Browser {
    pub client: Client,
    driver: Child,
    _profile: TempDir,
}

impl Browser {
    /// Starts `chromedriver` on a free port and opens a headless Chromium session on it.
    pub(super) async fn start() -> Browser {
        let chromium = find("chromium");
        let chromedriver = find("chromedriver");
        let profile = tempfile::tempdir().expect("profile directory");
        let port = free_port().expect("a free port for chromedriver");
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own group: Chromium and its helpers join it, and one killpg ends them all.
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", chromedriver.display()));
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|f| (*f).to_owned()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": chromium, "args": args },
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!("a JSON object literal")
        };
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        // The driver takes a moment to listen; a refused connection is retried until then.
        let client = loop {
            let attempt = ClientBuilder::new(HttpConnector::new())
                .capabilities(capabilities.clone())
                .connect(&url)
                .await;
            match attempt {
                Ok(client) => break client,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("no Chromium session from chromedriver at {url}: {e}"),
            }
        };
        Browser {
            client,
            driver,
            _profile: profile,
        }
    }

    /// Runs `script` (a function body that `return`s) in the page.
    pub(super) async fn eval(&self, script: &str) -> Value {
        self.client
            .execute(script, vec![])
            .await
            .unwrap_or_else(|e| panic!("run {script:?} in the page: {e}"))
    }

    /// Waits until `script`'s result satisfies `ready`; panics with the last result at the
    /// deadline.
    pub(super) async fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        script: &str,
        ready: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let value = self.eval(script).await;
            if ready(&value) {
                return value;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting for {what}; the page shows {value}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Ends the session (Chromium exits), then the driver.
    pub(super) async fn close(mut self) {
        let _ = self.client.clone().close().await;
        self.kill_group();
        let _ = self.driver.wait().await;
    }

    fn kill_group(&mut self) {
        if let Some(pid) = self.driver.id().and_then(|id| i32::try_from(id).ok()) {
            // The group is the driver's pid (process_group(0)); already gone is fine.
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.kill_group();
    }
}
