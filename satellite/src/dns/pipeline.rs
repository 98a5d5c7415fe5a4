//! The pipeline: one call from a received packet to a finished response.
//!
//! It holds what every worker shares — the [`Selector`], the [`ServedStore`] and the NSID — and
//! does the per-query steps in order: parse into the worker's [`Event`], load the current zone
//! version (lock-free), run the Selector, hand back the response bytes.

use std::net::IpAddr;
use std::sync::Arc;

use crate::dns::leaf::Ctx;
use crate::dns::leaf::Dns;
use crate::dns::wire::{Event, Transport};
use crate::selector::Selector;
use crate::served::ServedStore;

/// Shared, immutable-after-start state of the query path.
pub struct Pipeline {
    pub selector: Selector<Dns>,
    pub served: Arc<ServedStore>,
    /// NSID (RFC 5001); leaked once at start-up so responses can borrow it for `'static`.
    pub nsid: Option<&'static [u8]>,
}

impl Pipeline {
    pub fn new(selector: Selector<Dns>, served: Arc<ServedStore>, nsid: Option<Vec<u8>>) -> Self {
        Self {
            selector,
            served,
            nsid: nsid.map(|n| &*Box::leak(n.into_boxed_slice())),
        }
    }

    /// Handles one packet. Returns the response to send, or `None` to send nothing.
    pub fn handle<'e>(
        &self,
        packet: &[u8],
        peer: IpAddr,
        transport: Transport,
        ev: &'e mut Event,
    ) -> Option<&'e [u8]> {
        ev.load(packet, peer, transport);
        let served = self.served.load();
        let ctx = Ctx {
            zones: &served.zones,
            nsid: self.nsid,
        };
        if self.selector.run(ev, &ctx) {
            Some(ev.response.bytes())
        } else {
            None
        }
    }
}
