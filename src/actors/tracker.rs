//! `Tracker`: what a graceful shutdown waits for, in one place. Every task that must end before
//! the process does holds a named `TaskGuard`: a collection actor (for its whole life), a
//! database read of the Supervisor or of `Housekeeping`, a write running in the DbWriter. The
//! guard goes away when its task ends or is dropped, whichever way that happens. Shutdown waits
//! once, until no guard is left or its deadline passes, and then knows by name what is still
//! running, where waiting on a count could only say how many.
//!
//! The guards are shared across threads (the DbWriter runs on its own): the set lives in a
//! `tokio::sync::watch` channel, so the waiter wakes when the last guard drops, without polling.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

/// The tasks that are running, by name. Cloning gives another handle on the same set.
#[derive(Clone)]
pub struct Tracker {
    inner: Arc<Inner>,
}

struct Inner {
    running: watch::Sender<BTreeMap<u64, String>>,
    next: AtomicU64,
}

/// Held by one running task; dropping it tells the tracker the task ended.
pub struct TaskGuard {
    id: u64,
    inner: Arc<Inner>,
}

impl Default for Tracker {
    fn default() -> Self {
        Self {
            inner: Arc::new(Inner {
                running: watch::Sender::new(BTreeMap::new()),
                next: AtomicU64::new(0),
            }),
        }
    }
}

impl Tracker {
    /// Counts a task as running until the returned guard is dropped; `name` says what it is when
    /// it outlives a shutdown's deadline ("collection <id>", "cancellation sweep").
    pub fn guard(&self, name: impl Into<String>) -> TaskGuard {
        let id = self.inner.next.fetch_add(1, Ordering::Relaxed);
        let name = name.into();
        self.inner.running.send_modify(|running| {
            running.insert(id, name);
        });
        TaskGuard {
            id,
            inner: self.inner.clone(),
        }
    }

    /// The names of the tasks running now, oldest first.
    pub fn running(&self) -> Vec<String> {
        self.inner.running.borrow().values().cloned().collect()
    }

    /// Waits until no task is running, at most `limit`; past it, the names of those still running.
    pub async fn wait(&self, limit: Duration) -> Result<(), Vec<String>> {
        let mut receiver = self.inner.running.subscribe();
        let emptied = async move {
            // The sender lives in `self`, so this ends only when the set is empty.
            let _ = receiver.wait_for(BTreeMap::is_empty).await.map(|_| ());
        };
        match tokio::time::timeout(limit, emptied).await {
            Ok(()) => Ok(()),
            Err(_) => Err(self.running()),
        }
    }
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.inner.running.send_modify(|running| {
            running.remove(&self.id);
        });
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    #[tokio::test]
    async fn waiting_ends_as_soon_as_the_last_guard_is_dropped() {
        let tracker = Tracker::default();
        let first = tracker.guard("collection a");
        let second = tracker.guard("cancellation sweep");
        let dropper = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            drop(first);
            tokio::time::sleep(Duration::from_millis(50)).await;
            drop(second);
        });

        let started = Instant::now();
        let waited = tracker.wait(Duration::from_secs(30)).await;

        assert_eq!(waited, Ok(()));
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(tracker.running().is_empty());
        dropper.await.unwrap();
    }

    #[tokio::test]
    async fn past_the_limit_the_tasks_still_running_are_named() {
        let tracker = Tracker::default();
        let _stuck = tracker.guard("collection 7");
        drop(tracker.guard("supervisor scan"));
        let _also = tracker.guard("cancellation sweep");

        let waited = tracker.wait(Duration::from_millis(20)).await;

        assert_eq!(
            waited,
            Err(vec![
                "collection 7".to_string(),
                "cancellation sweep".to_string()
            ])
        );
    }

    #[tokio::test]
    async fn nothing_running_ends_the_wait_at_once_and_guards_from_another_thread_count() {
        let tracker = Tracker::default();
        assert_eq!(tracker.wait(Duration::from_millis(1)).await, Ok(()));

        let guard = tracker.guard("database write");
        let thread = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            drop(guard);
        });
        assert_eq!(tracker.wait(Duration::from_secs(30)).await, Ok(()));
        thread.join().unwrap();
    }
}
