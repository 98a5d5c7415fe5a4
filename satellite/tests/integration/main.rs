//! Integration tests of the satellite, in one test binary (link time matters on 2 cores).

mod catalog;
mod dig;
mod fixtures;
mod fuzz;
mod harness;
mod queries;
mod rate_limit;
mod rrl;
mod shutdown;
mod standalone;
mod tcp;
mod udp;
mod whois;
mod xfr;
