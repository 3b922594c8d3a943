//! Per-instance AMC slot accounting: at most `limit` executions in flight per instance, granted
//! round-robin across collections so that no collection starves another.
//!
//! Pure data structure (no actix, no I/O) so its invariants are unit-tested directly. Slots are
//! keyed by week: a week holds at most one, and asking again for a week that holds one is granted
//! at once, which makes re-acquiring after an actor restart idempotent.

use std::collections::{HashMap, VecDeque};

use tokio::sync::oneshot;

use crate::ids::{CollectionId, WeekId};

/// A request waiting for a slot; the grant is sent through `reply`.
#[derive(Debug)]
pub struct Waiter {
    pub week_id: WeekId,
    pub reply: oneshot::Sender<()>,
}

/// Slot state of one AMC instance.
#[derive(Debug, Default)]
pub struct InstanceSlots {
    /// Weeks holding a slot, with their collection (to release a dead collection's slots).
    held: HashMap<WeekId, CollectionId>,
    /// Collections with waiters, in round-robin order.
    turn: VecDeque<CollectionId>,
    waiting: HashMap<CollectionId, VecDeque<Waiter>>,
    /// Most slots held at once (reported by benchmarks and tests).
    peak: usize,
}

impl InstanceSlots {
    pub fn in_use(&self) -> usize {
        self.held.len()
    }

    pub fn peak(&self) -> usize {
        self.peak
    }

    pub fn waiting(&self) -> usize {
        self.waiting.values().map(VecDeque::len).sum()
    }

    /// Whether the week already holds a slot.
    pub fn holds(&self, week_id: WeekId) -> bool {
        self.held.contains_key(&week_id)
    }

    /// Records slots for executions that already exist on AMC (found in flight when a collection
    /// is claimed or loaded): each occupies an AMC slot whether or not we count it, so they are
    /// counted even above the limit. The only way a slot is taken without being granted; the
    /// week's own request for it later is granted at once (it holds it). Idempotent.
    pub fn adopt(&mut self, collection_id: CollectionId, weeks: impl IntoIterator<Item = WeekId>) {
        for week_id in weeks {
            self.held.insert(week_id, collection_id);
        }
        self.peak = self.peak.max(self.held.len());
    }

    /// Queues a request, then grants whatever the limit allows.
    pub fn request(&mut self, collection_id: CollectionId, waiter: Waiter, limit: usize) {
        if self.holds(waiter.week_id) {
            let _ = waiter.reply.send(());
            return;
        }
        let queue = self.waiting.entry(collection_id).or_default();
        if queue.is_empty() {
            self.turn.push_back(collection_id);
        }
        queue.push_back(waiter);
        self.grant(limit);
    }

    /// Frees the week's slot (if it holds one) and grants the next waiter.
    pub fn release(&mut self, week_id: WeekId, limit: usize) {
        self.held.remove(&week_id);
        self.grant(limit);
    }

    /// Frees every slot and request of a collection (its actor died for good).
    pub fn release_collection(&mut self, collection_id: CollectionId, limit: usize) {
        self.held.retain(|_, owner| *owner != collection_id);
        self.waiting.remove(&collection_id);
        self.turn.retain(|c| *c != collection_id);
        self.grant(limit);
    }

    fn grant(&mut self, limit: usize) {
        while self.held.len() < limit {
            let Some(collection_id) = self.turn.pop_front() else {
                return;
            };
            let Some(queue) = self.waiting.get_mut(&collection_id) else {
                continue;
            };
            if let Some(waiter) = queue.pop_front() {
                // A dropped receiver means the requester gave up or died: skip it.
                if !waiter.reply.is_closed() && waiter.reply.send(()).is_ok() {
                    self.held.insert(waiter.week_id, collection_id);
                    self.peak = self.peak.max(self.held.len());
                }
            }
            if queue.is_empty() {
                self.waiting.remove(&collection_id);
            } else {
                self.turn.push_back(collection_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(
        slots: &mut InstanceSlots,
        collection: CollectionId,
        limit: usize,
    ) -> (WeekId, oneshot::Receiver<()>) {
        let (reply, receiver) = oneshot::channel();
        let week_id = WeekId::new();
        slots.request(collection, Waiter { week_id, reply }, limit);
        (week_id, receiver)
    }

    #[test]
    fn never_more_than_the_limit_are_granted() {
        let mut slots = InstanceSlots::default();
        let collection = CollectionId::new();
        let mut receivers: Vec<_> = (0..15).map(|_| ask(&mut slots, collection, 10)).collect();
        let granted = receivers
            .iter_mut()
            .map(|(_, r)| r.try_recv().is_ok())
            .filter(|granted| *granted)
            .count();
        assert_eq!(granted, 10);
        assert_eq!(slots.in_use(), 10);
        assert_eq!(slots.waiting(), 5);
    }

    #[test]
    fn a_released_slot_goes_to_the_next_waiter_at_once() {
        let mut slots = InstanceSlots::default();
        let collection = CollectionId::new();
        let (first, _r1) = ask(&mut slots, collection, 1);
        let (_second, mut r2) = ask(&mut slots, collection, 1);
        assert!(r2.try_recv().is_err());
        slots.release(first, 1);
        assert!(r2.try_recv().is_ok());
        assert_eq!(slots.in_use(), 1);
    }

    #[test]
    fn collections_take_turns_so_none_starves() {
        let mut slots = InstanceSlots::default();
        let (big, small) = (CollectionId::new(), CollectionId::new());
        let (held, _r) = ask(&mut slots, big, 1);
        let mut big_waiters: Vec<_> = (0..5).map(|_| ask(&mut slots, big, 1)).collect();
        let (_small_week, mut small_receiver) = ask(&mut slots, small, 1);
        slots.release(held, 1);
        // The big collection's next week gets the slot; then it is the small one's turn.
        assert!(big_waiters[0].1.try_recv().is_ok());
        slots.release(big_waiters[0].0, 1);
        assert!(small_receiver.try_recv().is_ok());
    }

    #[test]
    fn asking_again_for_a_week_that_holds_a_slot_is_granted_without_a_second_slot() {
        let mut slots = InstanceSlots::default();
        let collection = CollectionId::new();
        let (reply, _r) = oneshot::channel();
        let week_id = WeekId::new();
        slots.request(collection, Waiter { week_id, reply }, 2);
        let (reply, mut again) = oneshot::channel();
        slots.request(collection, Waiter { week_id, reply }, 2);
        assert!(again.try_recv().is_ok());
        assert_eq!(slots.in_use(), 1);
    }

    #[test]
    fn a_requester_that_went_away_is_skipped() {
        let mut slots = InstanceSlots::default();
        let collection = CollectionId::new();
        let (held, _r) = ask(&mut slots, collection, 1);
        let (_gone, receiver) = ask(&mut slots, collection, 1);
        drop(receiver);
        let (_next, mut next_receiver) = ask(&mut slots, collection, 1);
        slots.release(held, 1);
        assert!(next_receiver.try_recv().is_ok());
        assert_eq!(slots.in_use(), 1);
    }

    #[test]
    fn releasing_a_collection_frees_its_slots_for_others() {
        let mut slots = InstanceSlots::default();
        let (dead, alive) = (CollectionId::new(), CollectionId::new());
        let _held = ask(&mut slots, dead, 1);
        let (_w, mut receiver) = ask(&mut slots, alive, 1);
        slots.release_collection(dead, 1);
        assert!(receiver.try_recv().is_ok());
    }

    #[test]
    fn adopted_executions_count_against_the_limit() {
        let mut slots = InstanceSlots::default();
        let collection = CollectionId::new();
        slots.adopt(collection, [WeekId::new()]);
        let (_w, mut receiver) = ask(&mut slots, collection, 1);
        assert!(receiver.try_recv().is_err());
    }

    #[test]
    fn a_week_whose_slot_was_adopted_is_granted_it_at_once_even_above_the_limit() {
        let mut slots = InstanceSlots::default();
        let collection = CollectionId::new();
        let (adopted, other) = (WeekId::new(), WeekId::new());
        slots.adopt(collection, [adopted, other]);
        slots.adopt(collection, [adopted]);
        assert_eq!(slots.in_use(), 2);
        let (reply, mut granted) = oneshot::channel();
        slots.request(
            collection,
            Waiter {
                week_id: adopted,
                reply,
            },
            1,
        );
        assert!(granted.try_recv().is_ok());
        assert_eq!(slots.in_use(), 2);
    }
}
