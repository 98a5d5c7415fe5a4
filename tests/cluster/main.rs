//! Cluster-level tests: the store, the generator and real peers (PostgreSQL, BIND) together.
//! One test binary (link time matters on two cores), one module per subject.

mod bind_fallback;
mod command_line;
mod differential;
mod dnssec_rollover;
mod dnssec_serve;
mod dnssec_validators;
mod faults;
mod harness;
mod journal_pg;
mod link;
mod masters;
mod metrics;
mod processes;
mod rds;
mod satellite_faults;
mod soa_serial;
mod throttle;
mod unbound;
mod watchdog;
mod xfr;
