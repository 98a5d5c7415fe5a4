//! Leaf `rate_limit`: a token bucket per client address and one per prefix
//! ([`crate::rds::rate_limit`]); over the limit the request is answered "rate limit exceeded"
//! (Whois) or 429 with `Retry-After` (RDAP), cheaply, without a lookup.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::rds::rate_limit::{Decision, RateLimitConfig, RateLimiter};
use crate::rds::{Outcome, Rds, RdsCtx, RdsEvent};
use crate::selector::{Flow, Leaf};

/// The rate-limiting leaf.
pub struct RateLimit {
    name: String,
    limiter: RateLimiter,
    limited: AtomicU64,
}

impl RateLimit {
    pub fn new(name: String, config: &RateLimitConfig) -> Result<Self, String> {
        Ok(Self {
            name,
            limiter: RateLimiter::new(config)?,
            limited: AtomicU64::new(0),
        })
    }
}

impl Leaf<Rds> for RateLimit {
    fn name(&self) -> &str {
        &self.name
    }

    fn handle(&self, ev: &mut RdsEvent, _: &RdsCtx<'_>) -> Flow {
        match self.limiter.check(ev.peer, Instant::now()) {
            Decision::Allow => Flow::Continue,
            Decision::Limited { retry_after, .. } => {
                self.limited.fetch_add(1, Ordering::Relaxed);
                ev.outcome = Outcome::RateLimited { retry_after };
                Flow::Respond
            }
        }
    }

    fn counters(&self, report: &mut dyn FnMut(&str, u64)) {
        report("limited", self.limited.load(Ordering::Relaxed));
        report("tracked", self.limiter.tracked() as u64);
    }
}
