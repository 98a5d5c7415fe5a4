//! The served state: everything the satellite answers from, in versions that share.
//!
//! - [`shards`]: the copy-on-write sharded table primitive both the DNS tables and the
//!   Whois/RDAP directory are built on.

pub mod shards;
