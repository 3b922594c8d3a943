//! Waiting for a condition instead of sleeping a fixed time: the tests' one polling loop.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

/// How often the condition is looked at: short, so a test goes on as soon as it holds.
const POLL: Duration = Duration::from_millis(10);

/// What a probe of [`wait_until`] answers: a `bool` (holds or not) or an `Option` (the value,
/// once there is one).
pub trait Reached {
    type Value;
    fn reached(self) -> Option<Self::Value>;
}

impl Reached for bool {
    type Value = ();
    fn reached(self) -> Option<()> {
        self.then_some(())
    }
}

impl<T> Reached for Option<T> {
    type Value = T;
    fn reached(self) -> Option<T> {
        self
    }
}

/// Polls `probe` until it holds (or gives a value, which is returned); panics after `limit`,
/// saying `what` never happened. `what` is only rendered then, so it may read a log file.
pub async fn wait_until<R, Fut>(
    what: impl Display,
    limit: Duration,
    mut probe: impl FnMut() -> Fut,
) -> R::Value
where
    R: Reached,
    Fut: Future<Output = R>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = probe().await.reached() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting until {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}
