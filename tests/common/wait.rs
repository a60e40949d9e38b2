//! Waiting on a condition instead of sleeping for a guessed time: a test polls until what it
//! needs holds, and fails saying what never happened.

#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

/// How long a test waits for the server to do something it does at once when healthy.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// Polls `check` every 20 ms until it returns `Some`, and returns that value; panics naming
/// `what` once `timeout` has passed without it.
pub async fn wait_until<T, F, Checked>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Checked,
    Checked: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(found) = check().await {
            return found;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("waited {timeout:?} for {what}, in vain");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
