//! The slot scheduler of the simulated AMC: each instance's PENDING queue (FIFO) and slot
//! holders, and the [`State`] operations that move executions through them: creates, cancels
//! and the daily limit of creates.
//!
//! The scheduler is evaluated lazily: every request advances its instance to "now" by replaying
//! slot releases and starts in time order, so the resulting timeline is exact whatever the
//! polling rate and needs no background task.

use std::time::{Duration, Instant};

use super::config::SimulatorConfig;
use super::execution::{Execution, Outcome, Status};
use super::state::{jittered_running, CancelRefused, NewExecution, State};

impl State {
    /// Replays slot releases and FIFO starts of `name` up to `now`.
    pub(crate) fn advance(&mut self, config: &SimulatorConfig, name: &str, now: Instant) {
        let Some(instance) = self.instances.get_mut(name) else {
            return;
        };
        let limit = usize::try_from(config.max_running_per_instance.max(1)).unwrap_or(usize::MAX);
        let mut cursor = instance.cursor.unwrap_or(now);
        while let Some(head_id) = instance.queue.front() {
            let Some(head) = self.executions.get_mut(head_id) else {
                instance.queue.pop_front();
                continue;
            };
            let slot_free_at = if instance.holders.len() < limit {
                cursor
            } else {
                instance
                    .holders
                    .iter()
                    .map(|(release, _)| *release)
                    .min()
                    .unwrap_or(cursor)
            };
            let start = head.eligible_at.max(slot_free_at).max(cursor);
            if start > now {
                break;
            }
            instance.holders.retain(|(release, _)| *release > start);
            head.run_started = Some(start);
            let release = head.slot_release(start);
            instance.holders.push((release, head.id.clone()));
            instance.queue.pop_front();
            cursor = start;
            let held = instance.holders.len() as u64;
            let max = self
                .stats
                .max_running_per_instance
                .entry(name.to_owned())
                .or_default();
            *max = (*max).max(held);
        }
        instance.holders.retain(|(release, _)| *release > now);
        instance.cursor = Some(cursor.max(now));
    }

    /// Records a new PENDING execution and returns its id.
    pub(crate) fn create(
        &mut self,
        config: &SimulatorConfig,
        new: NewExecution,
        now: Instant,
    ) -> String {
        self.advance(config, &new.instance, now);
        let id = uuid::Uuid::new_v4().to_string();
        let fails_validation = new.sql_query.as_deref().is_some_and(|sql| {
            (self.faults.fail_validation_sql.iter()).any(|needle| sql.contains(needle.as_str()))
        });
        let outcome = if fails_validation {
            self.stats.served_validation_failures += 1;
            Outcome::FailValidation
        } else if self.faults.reject_windows.contains(&new.start_date) {
            Outcome::Reject
        } else if self.faults.fail_windows.contains(&new.start_date) {
            Outcome::Fail
        } else {
            Outcome::Succeed
        };
        let window_key = format!(
            "{}|{}|{}|{}|{}",
            new.instance, new.workflow_key, new.start_original, new.end_original, new.time_zone
        );
        *self.stats.creates_per_window.entry(window_key).or_default() += 1;
        self.stats.creates_total += 1;

        let execution = Execution {
            id: id.clone(),
            seq: self.next_seq,
            instance: new.instance.clone(),
            workflow_id: new.workflow_id,
            workflow_key: new.workflow_key,
            sql_query: new.sql_query,
            parameter_values: new.parameter_values,
            start_original: new.start_original,
            end_original: new.end_original,
            time_zone: new.time_zone,
            start_utc: new.start_utc,
            end_utc: new.end_utc,
            created_at: now,
            eligible_at: now + Duration::from_millis(config.pending_ms),
            run_started: None,
            // Validation fails a moment after create, long before a run would end.
            running_for: if outcome == Outcome::FailValidation {
                Duration::from_millis(config.pending_ms.min(config.running_ms))
            } else {
                jittered_running(config, &id)
            },
            publishing_for: Duration::from_millis(config.publishing_ms),
            outcome,
            cancelled_at: None,
            hostile_text: self.faults.hostile_text,
            download_channel_failed: (self.faults.download.channel_fail_windows)
                .contains(&new.start_date),
            publish_lag: self.faults.download.publish_lag,
            first_seen_ended: None,
        };
        self.next_seq += 1;
        self.executions.insert(id.clone(), execution);

        let instance = self.instances.entry(new.instance.clone()).or_default();
        instance.ids.push(id.clone());
        instance.queue.push_back(id.clone());
        let in_flight = (instance.queue.len() + instance.holders.len()) as u64;
        let max = self
            .stats
            .max_in_flight_per_instance
            .entry(new.instance.clone())
            .or_default();
        *max = (*max).max(in_flight);
        // A free slot with zero pending time must be taken at once.
        self.advance(config, &new.instance, now);
        id
    }

    /// Whether `instance` used its daily limit of creates within the window ending `now`.
    pub(crate) fn over_daily_limit(&self, instance: &str, now: Instant) -> bool {
        let limit = self.faults.daily_limit;
        limit > 0 && self.creates_in_daily_window(instance, now) >= limit
    }

    fn creates_in_daily_window(&self, instance: &str, now: Instant) -> u64 {
        let since = now.checked_sub(self.faults.daily_window);
        let recent = self.instances.get(instance).map_or(0, |i| {
            i.ids
                .iter()
                .filter_map(|id| self.executions.get(id))
                .filter(|e| since.is_none_or(|since| e.created_at > since))
                .count()
        });
        recent as u64
    }

    /// Records the most creates of `instance` seen within one daily window.
    pub(crate) fn record_daily_use(&mut self, instance: &str, now: Instant) {
        let recent = self.creates_in_daily_window(instance, now);
        let max = &mut self.stats.max_creates_per_daily_window;
        *max = (*max).max(recent);
    }

    /// Cancels a PENDING or RUNNING execution.
    pub(crate) fn cancel(
        &mut self,
        config: &SimulatorConfig,
        id: &str,
        now: Instant,
    ) -> Result<(), CancelRefused> {
        let Some(instance_name) = self.executions.get(id).map(|e| e.instance.clone()) else {
            return Err(CancelRefused::Unknown);
        };
        self.advance(config, &instance_name, now);
        let (Some(execution), Some(instance)) = (
            self.executions.get_mut(id),
            self.instances.get_mut(&instance_name),
        ) else {
            return Err(CancelRefused::Unknown);
        };
        match execution.status_at(now).0 {
            Status::Pending => instance.queue.retain(|queued| queued != id),
            Status::Running => instance.holders.retain(|(_, holder)| holder != id),
            refused => return Err(CancelRefused::Status(refused)),
        }
        execution.cancelled_at = Some(now);
        self.stats.cancels += 1;
        self.advance(config, &instance_name, now);
        Ok(())
    }
}
