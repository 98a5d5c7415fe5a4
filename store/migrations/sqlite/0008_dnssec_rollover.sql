-- Automatic key rollovers (issue 13): see postgres/0008_dnssec_rollover.sql.
ALTER TABLE dnssec_policy ADD COLUMN zsk_lifetime_s INTEGER CHECK (zsk_lifetime_s IS NULL OR zsk_lifetime_s > 0);
ALTER TABLE dnssec_policy ADD COLUMN ksk_lifetime_s INTEGER CHECK (ksk_lifetime_s IS NULL OR ksk_lifetime_s > 0);
ALTER TABLE dnssec_policy ADD COLUMN propagation_s INTEGER NOT NULL DEFAULT 3600 CHECK (propagation_s BETWEEN 0 AND 4294967295);
ALTER TABLE dnssec_policy ADD COLUMN parent_ds_ttl_s INTEGER NOT NULL DEFAULT 86400 CHECK (parent_ds_ttl_s BETWEEN 0 AND 4294967295);

ALTER TABLE dnssec_key ADD COLUMN ds_seen_s INTEGER;

CREATE TABLE dnssec_key_loadable (
    master_id  TEXT NOT NULL,
    locator    TEXT NOT NULL,
    checked_ms INTEGER NOT NULL,
    PRIMARY KEY (master_id, locator)
);
