//! Authoritative DNS: the wire codec and the [`wire::Event`] each query travels in, the DNS
//! leaves and their [`leaf::Dns`] service, the [`pipeline::Pipeline`] that ties them to the
//! served zones, and the edges: UDP workers ([`udp`]) and the TCP listener ([`server`]).

pub mod leaf;
pub mod pipeline;
pub mod server;
pub mod udp;
pub mod wire;
