//! Optional event trace: spawn, reflect and terminate events per flow and step, kept in a
//! bounded ring buffer (the newest `capacity` events) and written as JSON lines.

use std::collections::VecDeque;

use serde::Serialize;

use super::state::{FlowState, event, status};

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Spawn {
        step: u32,
        item: u64,
        flow: u32,
        parent: u32,
    },
    Reflect {
        step: u32,
        item: u64,
        flow: u32,
    },
    Terminate {
        step: u32,
        item: u64,
        flow: u32,
        plane: &'static str,
    },
}

#[derive(Debug, Clone)]
pub struct Trace {
    capacity: usize,
    events: VecDeque<Event>,
    /// Events pushed out of the ring.
    pub overwritten: u64,
}

impl Trace {
    pub fn new(capacity: u32) -> Self {
        Self {
            capacity: capacity as usize,
            events: VecDeque::new(),
            overwritten: 0,
        }
    }

    fn push(&mut self, e: Event) {
        if self.events.len() == self.capacity {
            self.events.pop_front();
            self.overwritten += 1;
        }
        self.events.push_back(e);
    }

    /// Records what step `step` did from the state before and after it; items in `skip`
    /// (stopped before the step) did nothing. Flow ids are item-local ([`FlowState`]); an
    /// item's events come in order of flow id, each flow's reflection before its termination.
    pub fn record(
        &mut self,
        step: u32,
        first_item: u64,
        before: &FlowState,
        after: &FlowState,
        skip: &[bool],
    ) {
        for b in 0..after.items {
            if skip[b as usize] {
                continue;
            }
            let item = first_item + u64::from(b);
            let mut events = Vec::new();
            let done_before = before.counts[b as usize].done as usize;
            for d in &after.done_of(b)[done_before..] {
                let plane = if d.plane == status::FRONT {
                    "front"
                } else {
                    "back"
                };
                let flow = d.id;
                if d.event & event::REFLECTED != 0 {
                    events.push((flow, 0, Event::Reflect { step, item, flow }));
                }
                events.push((
                    flow,
                    1,
                    Event::Terminate {
                        step,
                        item,
                        flow,
                        plane,
                    },
                ));
            }
            let created_before = before.counts[b as usize].created;
            let base = after.slot(b, 0);
            let n = after.counts[b as usize].moving as usize;
            for &l in &after.live[base..base + n] {
                let s = base + l as usize;
                let flow = after.id[s];
                if flow >= created_before {
                    let parent = after.parent[s] as u32;
                    events.push((
                        flow,
                        2,
                        Event::Spawn {
                            step,
                            item,
                            flow,
                            parent,
                        },
                    ));
                } else if after.event[s] & event::REFLECTED != 0 {
                    events.push((flow, 0, Event::Reflect { step, item, flow }));
                }
            }
            events.sort_by_key(|&(flow, order, _)| (flow, order));
            for (_, _, e) in events {
                self.push(e);
            }
        }
    }

    pub fn events(&self) -> impl Iterator<Item = &Event> {
        self.events.iter()
    }
}
