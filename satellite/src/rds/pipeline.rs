//! The shared state of the Whois and RDAP edges: the Selector, the zone store and a free list
//! of events.

use std::sync::{Arc, Mutex};

use super::{Rds, RdsCtx, RdsEvent};
use crate::selector::Selector;
use crate::served::ServedStore;

/// Events kept for reuse; more are dropped when returned (a burst of connections must not
/// leave memory behind for ever).
const FREE_EVENTS: usize = 1024;

/// What every Whois and RDAP connection shares.
pub struct RdsPipeline {
    pub selector: Selector<Rds>,
    pub served: Arc<ServedStore>,
    free: Mutex<Vec<RdsEvent>>,
}

impl RdsPipeline {
    pub fn new(selector: Selector<Rds>, served: Arc<ServedStore>) -> Self {
        Self {
            selector,
            served,
            free: Mutex::new(Vec::new()),
        }
    }

    /// An event from the free list (or a new one); give it back with [`RdsPipeline::put`].
    pub fn take(&self) -> RdsEvent {
        self.free
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
            .unwrap_or_default()
    }

    /// Returns an event to the free list.
    pub fn put(&self, ev: RdsEvent) {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        if free.len() < FREE_EVENTS {
            free.push(ev);
        }
    }

    /// Runs a filled event through the chain, then `render`s the outcome from the same zone
    /// version the leaves saw. `answered` is false when a leaf dropped the request: close the
    /// connection without an answer.
    pub fn handle<R>(
        &self,
        ev: &mut RdsEvent,
        render: impl FnOnce(&RdsEvent, bool, &RdsCtx<'_>) -> R,
    ) -> R {
        let served = self.served.load();
        let ctx = RdsCtx { served: &served };
        let answered = self.selector.run(ev, &ctx);
        render(ev, answered, &ctx)
    }
}
