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

    /// Records what step `step` did, from the live lists before it (`before[b]`, item-local
    /// slots) and the state after it. `first_item` is the batch's first item id; flow ids are
    /// item-local slots.
    pub fn record(
        &mut self,
        step: u32,
        first_item: u64,
        before: &[Vec<u32>],
        used_before: &[u32],
        after: &FlowState,
    ) {
        for (b, live) in before.iter().enumerate() {
            let item = first_item + b as u64;
            for &flow in live {
                let s = after.slot(b as u32, flow);
                if after.event[s] & event::REFLECTED != 0 {
                    self.push(Event::Reflect { step, item, flow });
                }
                if after.event[s] & event::TERMINATED != 0 {
                    let plane = if after.status[s] == status::FRONT {
                        "front"
                    } else {
                        "back"
                    };
                    self.push(Event::Terminate {
                        step,
                        item,
                        flow,
                        plane,
                    });
                }
            }
            for flow in used_before[b]..after.counts[b].used {
                let parent = after.parent[after.slot(b as u32, flow)] as u32;
                self.push(Event::Spawn {
                    step,
                    item,
                    flow,
                    parent,
                });
            }
        }
    }

    pub fn events(&self) -> impl Iterator<Item = &Event> {
        self.events.iter()
    }
}
