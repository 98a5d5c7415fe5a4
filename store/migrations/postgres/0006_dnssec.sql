-- DNSSEC (issue 13): each zone's signing policy and its public keys with their states.
--
-- Both belong to the zone: a write to either journals the ZONE (object 'zone', the zone's name),
-- through the same statement trigger as the apex NS. So no new journal kind exists for old
-- readers to trip on, the zone's serial moves with its keys (a DNSKEY change is a zone change),
-- and every reader that re-reads the zone at a serial reads the keys of that serial from the
-- same snapshot. Private keys are never stored here: `locator` names the private key in the
-- signing hosts' key store (a PKCS#8 file name; a PKCS#11 URI later).
--
-- Times are whole seconds since the Unix epoch (bigint): they are signing inputs, compared
-- and bucketed, never shown as Whois dates.

CREATE TABLE dnssec_policy (
    zone_id     bigint PRIMARY KEY REFERENCES zone(id) ON DELETE CASCADE,
    denial      text NOT NULL DEFAULT 'nsec3-optout' CHECK (denial IN ('unsigned', 'nsec3-optout', 'nsec')),
    algorithm   integer NOT NULL DEFAULT 13 CHECK (algorithm IN (13, 15)),
    validity_s  integer NOT NULL DEFAULT 1209600 CHECK (validity_s > 0),
    refresh_s   integer NOT NULL DEFAULT 604800 CHECK (refresh_s > 0 AND refresh_s < validity_s),
    dnskey_ttl  integer NOT NULL DEFAULT 3600 CHECK (dnskey_ttl >= 0),
    -- The start of the current signature window: every RRSIG's inception. Moved by a journalled
    -- write once per refresh, so signatures come from the state, never from a signer's clock.
    inception_s bigint NOT NULL
);

CREATE TABLE dnssec_key (
    id           bigserial PRIMARY KEY,
    zone_id      bigint NOT NULL REFERENCES zone(id) ON DELETE CASCADE,
    role         text NOT NULL CHECK (role IN ('ksk', 'zsk', 'csk')),
    algorithm    integer NOT NULL CHECK (algorithm BETWEEN 0 AND 255),
    key_tag      integer NOT NULL CHECK (key_tag BETWEEN 0 AND 65535),
    public_key   text NOT NULL,      -- base64, the DNSKEY public key field
    state        text NOT NULL CHECK (state IN ('published', 'active', 'retired', 'revoked')),
    locator      text NOT NULL,
    created_s    bigint NOT NULL,
    published_s  bigint,
    activated_s  bigint,
    retired_s    bigint,
    revoked_s    bigint,
    UNIQUE (zone_id, public_key)
);
CREATE INDEX dnssec_key_zone ON dnssec_key(zone_id);

-- The apex NS trigger function journals the zones named by the rows' zone_id: the same rule.
CREATE TRIGGER dnssec_policy_ji AFTER INSERT ON dnssec_policy REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION journal_zone_ns();
CREATE TRIGGER dnssec_policy_ju AFTER UPDATE ON dnssec_policy REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION journal_zone_ns();
CREATE TRIGGER dnssec_policy_jd AFTER DELETE ON dnssec_policy REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION journal_zone_ns();
CREATE TRIGGER dnssec_key_ji AFTER INSERT ON dnssec_key REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION journal_zone_ns();
CREATE TRIGGER dnssec_key_ju AFTER UPDATE ON dnssec_key REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION journal_zone_ns();
CREATE TRIGGER dnssec_key_jd AFTER DELETE ON dnssec_key REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION journal_zone_ns();
