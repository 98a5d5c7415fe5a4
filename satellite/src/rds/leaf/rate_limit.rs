//! Leaf `rate_limit`: a token bucket per client address and one per prefix
//! ([`crate::rds::rate_limit`]); over the limit the request is answered "rate limit exceeded"
//! (Whois) or 429 with `Retry-After` (RDAP), cheaply, without a lookup.
//!
//! It keeps no counters of its own: the pipeline counts each limited request in its typed
//! counters (`RdsOutcome::RateLimited`, exported as `orrery_queries_total{outcome=
//! "rate_limited"}` and sent up in the check-in), whatever leaf limited it.

use std::time::Instant;

use crate::rds::rate_limit::{Decision, RateLimitConfig, RateLimiter};
use crate::rds::{Outcome, Rds, RdsCtx, RdsEvent};
use crate::selector::{Flow, Leaf};

/// The rate-limiting leaf.
pub struct RateLimit {
    name: String,
    limiter: RateLimiter,
}

impl RateLimit {
    pub fn new(name: String, config: &RateLimitConfig) -> Result<Self, String> {
        Ok(Self {
            name,
            limiter: RateLimiter::new(config)?,
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
                ev.outcome = Outcome::RateLimited { retry_after };
                Flow::Respond
            }
        }
    }
}
