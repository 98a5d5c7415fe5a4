-- DNSSEC (issue 13): each zone's signing policy and its public keys with their states. See
-- postgres/0006_dnssec.sql: a write to either journals the zone, as the apex NS does.

CREATE TABLE dnssec_policy (
    zone_id     INTEGER PRIMARY KEY REFERENCES zone(id) ON DELETE CASCADE,
    denial      TEXT NOT NULL DEFAULT 'nsec3-optout' CHECK (denial IN ('unsigned', 'nsec3-optout', 'nsec')),
    algorithm   INTEGER NOT NULL DEFAULT 13 CHECK (algorithm IN (13, 15)),
    validity_s  INTEGER NOT NULL DEFAULT 1209600 CHECK (validity_s > 0),
    refresh_s   INTEGER NOT NULL DEFAULT 604800 CHECK (refresh_s > 0 AND refresh_s < validity_s),
    dnskey_ttl  INTEGER NOT NULL DEFAULT 3600 CHECK (dnskey_ttl >= 0),
    inception_s INTEGER NOT NULL
);

CREATE TABLE dnssec_key (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    zone_id      INTEGER NOT NULL REFERENCES zone(id) ON DELETE CASCADE,
    role         TEXT NOT NULL CHECK (role IN ('ksk', 'zsk', 'csk')),
    algorithm    INTEGER NOT NULL CHECK (algorithm BETWEEN 0 AND 255),
    key_tag      INTEGER NOT NULL CHECK (key_tag BETWEEN 0 AND 65535),
    public_key   TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('published', 'active', 'retired', 'revoked')),
    locator      TEXT NOT NULL,
    created_s    INTEGER NOT NULL,
    published_s  INTEGER,
    activated_s  INTEGER,
    retired_s    INTEGER,
    revoked_s    INTEGER,
    UNIQUE (zone_id, public_key)
);
CREATE INDEX dnssec_key_zone ON dnssec_key(zone_id);

CREATE TRIGGER dnssec_policy_ji AFTER INSERT ON dnssec_policy BEGIN
    INSERT INTO journal(zone_id, object, key, op) SELECT id, 'zone', name, 'U' FROM zone WHERE id = NEW.zone_id;
END;
CREATE TRIGGER dnssec_policy_ju AFTER UPDATE ON dnssec_policy BEGIN
    INSERT INTO journal(zone_id, object, key, op) SELECT id, 'zone', name, 'U' FROM zone WHERE id IN (OLD.zone_id, NEW.zone_id);
END;
CREATE TRIGGER dnssec_policy_jd AFTER DELETE ON dnssec_policy BEGIN
    INSERT INTO journal(zone_id, object, key, op) SELECT id, 'zone', name, 'U' FROM zone WHERE id = OLD.zone_id;
END;
CREATE TRIGGER dnssec_key_ji AFTER INSERT ON dnssec_key BEGIN
    INSERT INTO journal(zone_id, object, key, op) SELECT id, 'zone', name, 'U' FROM zone WHERE id = NEW.zone_id;
END;
CREATE TRIGGER dnssec_key_ju AFTER UPDATE ON dnssec_key BEGIN
    INSERT INTO journal(zone_id, object, key, op) SELECT id, 'zone', name, 'U' FROM zone WHERE id IN (OLD.zone_id, NEW.zone_id);
END;
CREATE TRIGGER dnssec_key_jd AFTER DELETE ON dnssec_key BEGIN
    INSERT INTO journal(zone_id, object, key, op) SELECT id, 'zone', name, 'U' FROM zone WHERE id = OLD.zone_id;
END;
