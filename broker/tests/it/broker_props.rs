//! Property test of the broker core: random sequences of publish / deliver
//! / ack / nack (requeue or reject) / consumer close / expire / purge /
//! restart (clean or crash) against a model of one queue. After every step
//! the queue's `ready` and `unacked` equal the model's; every delivery is
//! the message the model expects next (offset, body, redelivered flag); at
//! the end the queue drains to exactly the model's ready messages. So no
//! message is lost, invented or counted twice.
//!
//! A crash keeps what consumers did up to the last moment the store wrote
//! its consumption events (a checkpoint, or a delivery lease), and flags
//! every message the last lease covered: the model keeps that durable view
//! beside the live one.

use crate::core;

use core::*;
use proptest::prelude::*;
use switchyard::broker::{Broker, Outcome, Settle};

const MAX_LENGTH: usize = 4;
/// The store's lease step (storage/consumption_log.rs).
const LEASE_STEP: u64 = 4096;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Limit {
    None,
    DropHead,
    RejectPublish,
}

#[derive(Debug, Clone)]
enum Op {
    Publish { expiring: bool },
    Deliver,
    Ack { pick: usize },
    Requeue { pick: usize },
    Reject { pick: usize },
    ConsumerClose { mask: u32 },
    Expire,
    Purge,
    Restart { clean: bool },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => prop::bool::weighted(0.2).prop_map(|expiring| Op::Publish { expiring }),
        5 => Just(Op::Deliver),
        3 => any::<usize>().prop_map(|pick| Op::Ack { pick }),
        1 => any::<usize>().prop_map(|pick| Op::Requeue { pick }),
        1 => any::<usize>().prop_map(|pick| Op::Reject { pick }),
        1 => any::<u32>().prop_map(|mask| Op::ConsumerClose { mask }),
        1 => Just(Op::Expire),
        1 => Just(Op::Purge),
        1 => any::<bool>().prop_map(|clean| Op::Restart { clean }),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    /// Never delivered.
    Fresh,
    /// Never delivered as far as anyone knows, but covered by the lease of
    /// a crashed run: delivered in order, flagged.
    FreshFlagged,
    /// Back in the queue after a delivery: comes first, flagged.
    Requeued,
    InFlight,
    /// Acked, rejected, expired, dropped or purged.
    Gone,
}

/// What the store writes to its log about consumption.
#[derive(Debug, Clone, Copy)]
enum Event {
    Settled(u64),
    Purged(u64),
    Kept(u64),
}

#[derive(Debug, Clone)]
struct Model {
    limit: Limit,
    /// Per offset: whether the message carries an (elapsed) expiration.
    expiring: Vec<bool>,
    state: Vec<State>,
    /// What a crash recovers (before in-flight deliveries are requeued):
    /// the last checkpoint plus the events written since.
    durable: Vec<State>,
    /// Events not yet written: a crash loses them.
    pending: Vec<Event>,
    /// Offsets below this may have been delivered (durable).
    lease: u64,
}

impl Model {
    fn ready(&self) -> u64 {
        self.state
            .iter()
            .filter(|s| matches!(s, State::Fresh | State::FreshFlagged | State::Requeued))
            .count() as u64
    }

    fn unacked(&self) -> u64 {
        self.state.iter().filter(|s| **s == State::InFlight).count() as u64
    }

    fn in_flight(&self) -> Vec<u64> {
        (0..self.state.len() as u64)
            .filter(|&o| self.state[o as usize] == State::InFlight)
            .collect()
    }

    /// What the next delivery takes: requeued messages first, then the
    /// never-delivered ones, oldest first.
    fn head(&self) -> Option<u64> {
        let first = |wanted: &[State]| self.state.iter().position(|s| wanted.contains(s));
        first(&[State::Requeued])
            .or_else(|| first(&[State::Fresh, State::FreshFlagged]))
            .map(|o| o as u64)
    }

    fn flagged(&self, offset: u64) -> bool {
        matches!(
            self.state[offset as usize],
            State::Requeued | State::FreshFlagged
        )
    }

    /// A delivery (to a consumer, or of a head being dropped or expired):
    /// past the lease, the store makes a new lease durable first — and
    /// with it every pending event.
    fn deliver(&mut self, offset: u64) {
        if offset >= self.lease {
            self.lease = offset + LEASE_STEP;
            self.write_events();
        }
        self.state[offset as usize] = State::InFlight;
    }

    fn settle(&mut self, offset: u64) {
        self.state[offset as usize] = State::Gone;
        self.pending.push(Event::Settled(offset));
    }

    fn write_events(&mut self) {
        for event in self.pending.drain(..) {
            match event {
                Event::Settled(o) => self.durable[o as usize] = State::Gone,
                Event::Purged(end) => self.durable[..end as usize].fill(State::Gone),
                Event::Kept(o) => self.durable[o as usize] = State::InFlight,
            }
        }
    }

    fn restart(&mut self, clean: bool) {
        if clean {
            self.write_events();
        } else {
            self.pending.clear();
            for (offset, state) in self.state.iter_mut().enumerate() {
                *state = match self.durable[offset] {
                    State::Fresh if (offset as u64) < self.lease => State::FreshFlagged,
                    durable => durable,
                };
            }
        }
        for state in &mut self.state {
            if *state == State::InFlight {
                *state = State::Requeued;
            }
        }
        self.durable = self.state.clone();
    }
}

fn arguments(limit: Limit) -> Vec<(&'static str, &'static str)> {
    match limit {
        Limit::None => vec![],
        Limit::DropHead => vec![("max-length", "4")],
        Limit::RejectPublish => vec![("max-length", "4"), ("overflow", "reject-publish")],
    }
}

fn pick(model: &Model, pick: usize) -> Option<u64> {
    let in_flight = model.in_flight();
    (!in_flight.is_empty()).then(|| in_flight[pick % in_flight.len()])
}

fn b(broker: &Option<Broker>) -> &Broker {
    broker.as_ref().unwrap()
}

fn run(limit: Limit, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Some(open(dir.path()));
    declare_queue(b(&broker), "q", &arguments(limit));
    let mut model = Model {
        limit,
        expiring: vec![],
        state: vec![],
        durable: vec![],
        pending: vec![],
        lease: 0,
    };
    for (step, op) in ops.into_iter().enumerate() {
        let broker_ref = b(&broker);
        match op {
            Op::Publish { expiring } => {
                let offset = model.state.len();
                let body = format!("m{offset}");
                let outcome = if expiring {
                    publish_expired(broker_ref, "q", &body)
                } else {
                    publish(broker_ref, "q", &body)
                };
                if model.limit == Limit::RejectPublish && model.ready() >= MAX_LENGTH as u64 {
                    prop_assert!(
                        matches!(outcome, Outcome::Refused(_)),
                        "step {step}: {outcome:?}"
                    );
                    continue;
                }
                prop_assert!(
                    matches!(outcome, Outcome::Stored { .. }),
                    "step {step}: {outcome:?}"
                );
                model.expiring.push(expiring);
                model.state.push(State::Fresh);
                model.durable.push(State::Fresh);
                if model.limit == Limit::DropHead {
                    while model.ready() > MAX_LENGTH as u64 {
                        let head = model.head().unwrap();
                        model.deliver(head);
                        model.settle(head);
                    }
                }
            }
            Op::Deliver => {
                // Expired heads are skipped (dead-lettered) on the way.
                let expected = loop {
                    match model.head() {
                        Some(o) if model.expiring[o as usize] => {
                            model.deliver(o);
                            model.settle(o);
                        }
                        other => break other,
                    }
                };
                let delivered = deliver(broker_ref, "q");
                match (expected, delivered) {
                    (None, None) => {}
                    (Some(offset), Some(d)) => {
                        prop_assert_eq!(d.offset, offset, "step {}", step);
                        prop_assert_eq!(body(&d), format!("m{offset}"));
                        prop_assert_eq!(
                            d.redelivered,
                            model.flagged(offset),
                            "step {}: redelivered flag",
                            step
                        );
                        model.deliver(offset);
                    }
                    (expected, delivered) => prop_assert!(
                        false,
                        "step {step}: expected {expected:?}, delivered {:?}",
                        delivered.map(|d| d.offset)
                    ),
                }
            }
            Op::Ack { pick: p } | Op::Requeue { pick: p } | Op::Reject { pick: p } => {
                let Some(offset) = pick(&model, p) else {
                    continue;
                };
                let (how, after) = match op {
                    Op::Ack { .. } => (Settle::Ack, State::Gone),
                    Op::Requeue { .. } => (Settle::Requeue, State::Requeued),
                    _ => (Settle::Reject, State::Gone),
                };
                settle(broker_ref, "q", offset, how);
                if after == State::Gone {
                    model.settle(offset);
                } else {
                    model.state[offset as usize] = after;
                }
            }
            Op::ConsumerClose { mask } => {
                let held: Vec<u64> = model
                    .in_flight()
                    .into_iter()
                    .enumerate()
                    .filter(|(i, _)| mask & (1 << (i % 32)) != 0)
                    .map(|(_, o)| o)
                    .collect();
                release(broker_ref, "q", &held);
                for offset in held {
                    model.state[offset as usize] = State::Requeued;
                }
            }
            Op::Expire => {
                let mut expected = 0;
                while let Some(o) = model.head().filter(|&o| model.expiring[o as usize]) {
                    model.settle(o);
                    expected += 1;
                }
                prop_assert_eq!(broker_ref.expire_due(), expected, "step {}", step);
            }
            Op::Purge => {
                let expected = model.ready();
                for state in &mut model.state {
                    if matches!(state, State::Fresh | State::FreshFlagged | State::Requeued) {
                        *state = State::Gone;
                    }
                }
                model.pending.push(Event::Purged(model.state.len() as u64));
                for offset in model.in_flight() {
                    model.pending.push(Event::Kept(offset));
                }
                let purged = broker_ref.purge_queue(&guest(broker_ref), 0, "q").unwrap();
                prop_assert_eq!(purged, expected, "step {}", step);
            }
            Op::Restart { clean } => {
                let old = broker.take().unwrap();
                if clean {
                    drop(old);
                } else {
                    old.abandon();
                }
                broker = Some(open(dir.path()));
                model.restart(clean);
            }
        }
        let s = stats(b(&broker), "q");
        prop_assert_eq!(
            (s.ready, s.unacked),
            (model.ready(), model.unacked()),
            "step {} ({:?}): (ready, unacked)",
            step,
            model.state
        );
    }
    // What is left drains in the model's order.
    let broker = broker.unwrap();
    loop {
        let expected = loop {
            match model.head() {
                Some(o) if model.expiring[o as usize] => model.state[o as usize] = State::Gone,
                other => break other,
            }
        };
        let delivered = deliver(&broker, "q");
        prop_assert_eq!(delivered.as_ref().map(|d| d.offset), expected);
        let Some(d) = delivered else { break };
        prop_assert_eq!(body(&d), format!("m{}", d.offset));
        prop_assert_eq!(
            d.redelivered,
            model.flagged(d.offset),
            "drain: redelivered flag"
        );
        settle(&broker, "q", d.offset, Settle::Ack);
        model.state[d.offset as usize] = State::Gone;
    }
    Ok(())
}

fn limit() -> impl Strategy<Value = Limit> {
    prop_oneof![
        Just(Limit::None),
        Just(Limit::DropHead),
        Just(Limit::RejectPublish)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]
    #[test]
    fn queue_counters_and_deliveries_match_the_model(
        limit in limit(),
        ops in proptest::collection::vec(op(), 1..80),
    ) {
        run(limit, ops)?;
    }
}
