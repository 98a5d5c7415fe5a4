//! What the TCP edges (DNS over TCP, Whois, RDAP) share: the accept loop, with its error
//! handling and shutdown, and the caps on connections per client address.
//!
//! Each edge decides per connection whether to take it (its caps, its refusal message) and how
//! to serve it; everything around that — cancellation, accept errors, waiting for the
//! connections still open at shutdown — is written once, in [`accept`].

pub mod accept;
pub mod connection_limit;
