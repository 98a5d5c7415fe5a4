-- Automatic key rollovers (issue 13): the policy's key timings, the operator step of a
-- double-DS KSK rollover, and which keys each master can load.
--
-- Timings (seconds, RFC 7583 names): a zone signed before this migration gets no ZSK lifetime
-- (NULL: rolled by hand, as before), so an upgrade starts no rollover by itself; `orrery-admin
-- dnssec policy` sets the model's defaults (90 days) unless told otherwise.
ALTER TABLE dnssec_policy ADD COLUMN zsk_lifetime_s bigint CHECK (zsk_lifetime_s IS NULL OR zsk_lifetime_s > 0);
ALTER TABLE dnssec_policy ADD COLUMN ksk_lifetime_s bigint CHECK (ksk_lifetime_s IS NULL OR ksk_lifetime_s > 0);
ALTER TABLE dnssec_policy ADD COLUMN propagation_s bigint NOT NULL DEFAULT 3600 CHECK (propagation_s BETWEEN 0 AND 4294967295);
ALTER TABLE dnssec_policy ADD COLUMN parent_ds_ttl_s bigint NOT NULL DEFAULT 86400 CHECK (parent_ds_ttl_s BETWEEN 0 AND 4294967295);

-- When the operator recorded that the parent publishes this KSK's DS (`dnssec ds-seen`).
ALTER TABLE dnssec_key ADD COLUMN ds_seen_s bigint;

-- Which key locators each master can load from its key store (rewritten by every master at
-- each signing-duty period). The duty activates a key only when every live master can load
-- it: a master that cannot would withhold the zone from then on. Cluster state, not the
-- registry: not journalled; times are the database's clock in milliseconds.
CREATE TABLE dnssec_key_loadable (
    master_id  text NOT NULL,
    locator    text NOT NULL,
    checked_ms bigint NOT NULL,
    PRIMARY KEY (master_id, locator)
);
