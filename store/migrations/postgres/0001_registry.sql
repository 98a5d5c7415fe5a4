-- Orrery registry store, PostgreSQL (production backend).
--
-- Names are stored in canonical form: lower-case A-labels, no trailing dot. Times are timestamptz.
-- Every write to the registry tables appends to `journal` through the triggers at the end of this
-- file, so any registration system that writes these tables feeds the cluster.

CREATE TABLE zone (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    soa_mname   text NOT NULL,
    soa_rname   text NOT NULL,
    soa_refresh integer NOT NULL DEFAULT 7200 CHECK (soa_refresh >= 0),
    soa_retry   integer NOT NULL DEFAULT 900 CHECK (soa_retry >= 0),
    soa_expire  integer NOT NULL DEFAULT 1209600 CHECK (soa_expire >= 0),
    soa_minimum integer NOT NULL DEFAULT 3600 CHECK (soa_minimum >= 0),
    soa_ttl     integer NOT NULL DEFAULT 3600 CHECK (soa_ttl >= 0),
    ns_ttl      integer NOT NULL DEFAULT 172800 CHECK (ns_ttl >= 0),
    ds_ttl      integer NOT NULL DEFAULT 86400 CHECK (ds_ttl >= 0)
);

CREATE TABLE registrar (
    id           bigserial PRIMARY KEY,
    handle       text NOT NULL UNIQUE,
    name         text NOT NULL,
    iana_id      bigint,
    url          text,
    whois_server text,
    email        text,
    phone        text,
    abuse_email  text,
    abuse_phone  text
);

CREATE TABLE contact (
    id           bigserial PRIMARY KEY,
    handle       text NOT NULL UNIQUE,
    name         text NOT NULL,
    organisation text,
    street       text NOT NULL DEFAULT '',   -- street lines separated by newlines
    city         text NOT NULL,
    province     text,
    postcode     text,
    country      text NOT NULL,
    email        text NOT NULL,
    voice        text,
    fax          text,
    disclose     boolean NOT NULL DEFAULT false,
    registrar_id bigint REFERENCES registrar(id),
    created      timestamptz NOT NULL DEFAULT now(),
    updated      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE domain (
    id            bigserial PRIMARY KEY,
    name          text NOT NULL UNIQUE,
    zone_id       bigint NOT NULL REFERENCES zone(id),
    roid          text NOT NULL UNIQUE,
    registrar_id  bigint NOT NULL REFERENCES registrar(id),
    registrant_id bigint REFERENCES contact(id),
    admin_id      bigint REFERENCES contact(id),
    tech_id       bigint REFERENCES contact(id),
    billing_id    bigint REFERENCES contact(id),
    created       timestamptz NOT NULL DEFAULT now(),
    updated       timestamptz NOT NULL DEFAULT now(),
    expires       timestamptz NOT NULL
);
CREATE INDEX domain_zone ON domain(zone_id, name);

CREATE TABLE domain_status (
    domain_id bigint NOT NULL REFERENCES domain(id) ON DELETE CASCADE,
    status    text NOT NULL,
    PRIMARY KEY (domain_id, status)
);

-- Nameserver hosts. `zone_id` is set for hosts whose name lies in one of the registry's zones
-- (their addresses can be glue); `domain_id` is the superordinate domain of such a host
-- (RFC 5732 §1.1), NULL for the registry's own hosts directly under an apex.
CREATE TABLE host (
    id           bigserial PRIMARY KEY,
    name         text NOT NULL UNIQUE,
    zone_id      bigint REFERENCES zone(id),
    domain_id    bigint REFERENCES domain(id),
    registrar_id bigint REFERENCES registrar(id),
    created      timestamptz NOT NULL DEFAULT now(),
    updated      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX host_zone ON host(zone_id) WHERE zone_id IS NOT NULL;
CREATE INDEX host_domain ON host(domain_id) WHERE domain_id IS NOT NULL;

CREATE TABLE host_address (
    host_id bigint NOT NULL REFERENCES host(id) ON DELETE CASCADE,
    address inet NOT NULL,
    PRIMARY KEY (host_id, address)
);

CREATE TABLE domain_ns (
    domain_id bigint NOT NULL REFERENCES domain(id) ON DELETE CASCADE,
    host_id   bigint NOT NULL REFERENCES host(id),
    PRIMARY KEY (domain_id, host_id)
);
CREATE INDEX domain_ns_host ON domain_ns(host_id);

CREATE TABLE ds (
    domain_id   bigint NOT NULL REFERENCES domain(id) ON DELETE CASCADE,
    key_tag     integer NOT NULL CHECK (key_tag BETWEEN 0 AND 65535),
    algorithm   integer NOT NULL CHECK (algorithm BETWEEN 0 AND 255),
    digest_type integer NOT NULL CHECK (digest_type BETWEEN 0 AND 255),
    digest      text NOT NULL,     -- upper-case hex
    PRIMARY KEY (domain_id, key_tag, algorithm, digest_type, digest)
);

CREATE TABLE zone_ns (
    zone_id bigint NOT NULL REFERENCES zone(id) ON DELETE CASCADE,
    host_id bigint NOT NULL REFERENCES host(id),
    PRIMARY KEY (zone_id, host_id)
);

-- ---------------------------------------------------------------------------------------------
-- The change journal.
--
-- Concurrent transactions commit in an order unrelated to the order in which they drew numbers
-- from a sequence, so a reader following `serial > S` with serials drawn at write time would
-- skip a row whose transaction commits after a later serial became visible. Instead, rows are
-- written with a NULL serial and numbered at COMMIT by a deferred constraint trigger that holds
-- a transaction-scoped advisory lock until the commit is visible (PostgreSQL releases locks after
-- marking the transaction committed in the proc array). The next committer can only number its
-- rows after that, so serial order is commit-visibility order: every snapshot sees a prefix of
-- the serials, and `serial > S` never skips. The lock is held only for the commit itself.
-- Changes of one transaction to one object are journalled once (the unique index below).

CREATE TABLE journal (
    seq     bigserial PRIMARY KEY,             -- write order, internal
    serial  bigint UNIQUE,                     -- commit order; NULL until the commit
    xid     xid8 NOT NULL DEFAULT pg_current_xact_id(),
    zone_id bigint,                            -- no foreign key: zones may be deleted
    object  text NOT NULL CHECK (object IN ('zone', 'domain', 'host', 'contact', 'registrar')),
    key     text NOT NULL,                     -- name or handle
    op      char(1) NOT NULL CHECK (op IN ('I', 'U', 'D')),
    at      timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX journal_pending ON journal(xid, object, key) WHERE serial IS NULL;
CREATE INDEX journal_zone ON journal(zone_id, serial);

CREATE SEQUENCE journal_serial_seq AS bigint;
CREATE TABLE journal_txn (xid xid8 PRIMARY KEY);

CREATE FUNCTION journal_sequence() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    me   xid8 := pg_current_xact_id();
    n    bigint;
    base bigint;
BEGIN
    -- 0x6f72726572790001: 'orrery' + 1. Held until the end of the transaction.
    PERFORM pg_advisory_xact_lock(8030878848442875905);
    SELECT count(*) INTO n FROM journal WHERE xid = me AND serial IS NULL;
    IF n > 0 THEN
        -- Only this function draws from the sequence, and only under the lock.
        base := nextval('journal_serial_seq');
        IF n > 1 THEN
            PERFORM setval('journal_serial_seq', base + n - 1);
        END IF;
        UPDATE journal j SET serial = base + r.rn - 1
          FROM (SELECT seq, row_number() OVER (ORDER BY seq) AS rn
                  FROM journal WHERE xid = me AND serial IS NULL) r
         WHERE j.seq = r.seq;
    END IF;
    DELETE FROM journal_txn WHERE xid = me;
    RETURN NULL;
END $$;

CREATE CONSTRAINT TRIGGER journal_sequence AFTER INSERT ON journal_txn
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION journal_sequence();

-- Statement-level triggers with transition tables: a COPY or a multi-row INSERT journals in one
-- set-based statement rather than one trigger call per row.

CREATE FUNCTION journal_zone() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO journal(zone_id, object, key, op)
            SELECT id, 'zone', name, 'I' FROM new_rows
            ON CONFLICT (xid, object, key) WHERE serial IS NULL DO NOTHING;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO journal(zone_id, object, key, op)
            SELECT id, 'zone', name, 'U' FROM new_rows
            ON CONFLICT (xid, object, key) WHERE serial IS NULL DO NOTHING;
    ELSE
        INSERT INTO journal(zone_id, object, key, op)
            SELECT id, 'zone', name, 'D' FROM old_rows
            ON CONFLICT (xid, object, key) WHERE serial IS NULL DO UPDATE SET op = 'D';
    END IF;
    INSERT INTO journal_txn(xid) VALUES (pg_current_xact_id()) ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;

CREATE FUNCTION journal_zone_ns() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO journal(zone_id, object, key, op)
            SELECT z.id, 'zone', z.name, 'U' FROM zone z WHERE z.id IN (SELECT zone_id FROM new_rows)
            ON CONFLICT (xid, object, key) WHERE serial IS NULL DO NOTHING;
    END IF;
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        INSERT INTO journal(zone_id, object, key, op)
            SELECT z.id, 'zone', z.name, 'U' FROM zone z WHERE z.id IN (SELECT zone_id FROM old_rows)
            ON CONFLICT (xid, object, key) WHERE serial IS NULL DO NOTHING;
    END IF;
    INSERT INTO journal_txn(xid) VALUES (pg_current_xact_id()) ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;

CREATE FUNCTION journal_domain() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO journal(zone_id, object, key, op)
            SELECT zone_id, 'domain', name, 'I' FROM new_rows
            ON CONFLICT (xid, object, key) WHERE serial IS NULL DO UPDATE SET op = 'U';
    ELSIF TG_OP = 'UPDATE' THEN
        -- A rename or a move to another zone removes the old object.
        INSERT INTO journal(zone_id, object, key, op)
            SELECT o.zone_id, 'domain', o.name, 'D'
              FROM old_rows o JOIN new_rows n ON n.id = o.id
             WHERE o.name <> n.name OR o.zone_id <> n.zone_id
            ON CONFLICT (xid, object, key) WHERE serial IS NULL DO UPDATE SET op = 'D';
        INSERT INTO journal(zone_id, object, key, op)
            SELECT zone_id, 'domain', name, 'U' FROM new_rows
            ON CONFLICT (xid, object, key) WHERE serial IS NULL DO NOTHING;
    ELSE
        INSERT INTO journal(zone_id, object, key, op)
            SELECT zone_id, 'domain', name, 'D' FROM old_rows
            ON CONFLICT (xid, object, key) WHERE serial IS NULL DO UPDATE SET op = 'D';
    END IF;
    INSERT INTO journal_txn(xid) VALUES (pg_current_xact_id()) ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;

-- Rows that belong to a domain (statuses, nameserver links, DS): the domain changed. When the
-- domain itself is being deleted (a cascade), it is no longer visible and its own trigger has
-- journalled the removal.
CREATE FUNCTION journal_domain_part() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO journal(zone_id, object, key, op)
            SELECT d.zone_id, 'domain', d.name, 'U' FROM domain d
             WHERE d.id IN (SELECT domain_id FROM new_rows)
            ON CONFLICT (xid, object, key) WHERE serial IS NULL DO NOTHING;
    END IF;
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        INSERT INTO journal(zone_id, object, key, op)
            SELECT d.zone_id, 'domain', d.name, 'U' FROM domain d
             WHERE d.id IN (SELECT domain_id FROM old_rows)
            ON CONFLICT (xid, object, key) WHERE serial IS NULL DO NOTHING;
    END IF;
    INSERT INTO journal_txn(xid) VALUES (pg_current_xact_id()) ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;

CREATE FUNCTION journal_host() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO journal(zone_id, object, key, op)
            SELECT zone_id, 'host', name, 'I' FROM new_rows
            ON CONFLICT (xid, object, key) WHERE serial IS NULL DO UPDATE SET op = 'U';
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO journal(zone_id, object, key, op)
            SELECT o.zone_id, 'host', o.name, 'D'
              FROM old_rows o JOIN new_rows n ON n.id = o.id WHERE o.name <> n.name
            ON CONFLICT (xid, object, key) WHERE serial IS NULL DO UPDATE SET op = 'D';
        INSERT INTO journal(zone_id, object, key, op)
            SELECT zone_id, 'host', name, 'U' FROM new_rows
            ON CONFLICT (xid, object, key) WHERE serial IS NULL DO NOTHING;
        -- A renamed host changes the NS names of every domain that uses it.
        INSERT INTO journal(zone_id, object, key, op)
            SELECT d.zone_id, 'domain', d.name, 'U'
              FROM old_rows o JOIN new_rows n ON n.id = o.id
              JOIN domain_ns dn ON dn.host_id = n.id JOIN domain d ON d.id = dn.domain_id
             WHERE o.name <> n.name
            ON CONFLICT (xid, object, key) WHERE serial IS NULL DO NOTHING;
    ELSE
        INSERT INTO journal(zone_id, object, key, op)
            SELECT zone_id, 'host', name, 'D' FROM old_rows
            ON CONFLICT (xid, object, key) WHERE serial IS NULL DO UPDATE SET op = 'D';
    END IF;
    INSERT INTO journal_txn(xid) VALUES (pg_current_xact_id()) ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;

CREATE FUNCTION journal_host_address() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO journal(zone_id, object, key, op)
            SELECT h.zone_id, 'host', h.name, 'U' FROM host h
             WHERE h.id IN (SELECT host_id FROM new_rows)
            ON CONFLICT (xid, object, key) WHERE serial IS NULL DO NOTHING;
    END IF;
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        INSERT INTO journal(zone_id, object, key, op)
            SELECT h.zone_id, 'host', h.name, 'U' FROM host h
             WHERE h.id IN (SELECT host_id FROM old_rows)
            ON CONFLICT (xid, object, key) WHERE serial IS NULL DO NOTHING;
    END IF;
    INSERT INTO journal_txn(xid) VALUES (pg_current_xact_id()) ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;

CREATE FUNCTION journal_contact() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO journal(zone_id, object, key, op)
            SELECT NULL, 'contact', handle, 'I' FROM new_rows
            ON CONFLICT (xid, object, key) WHERE serial IS NULL DO UPDATE SET op = 'U';
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO journal(zone_id, object, key, op)
            SELECT NULL, 'contact', o.handle, 'D'
              FROM old_rows o JOIN new_rows n ON n.id = o.id WHERE o.handle <> n.handle
            ON CONFLICT (xid, object, key) WHERE serial IS NULL DO UPDATE SET op = 'D';
        INSERT INTO journal(zone_id, object, key, op)
            SELECT NULL, 'contact', handle, 'U' FROM new_rows
            ON CONFLICT (xid, object, key) WHERE serial IS NULL DO NOTHING;
        INSERT INTO journal(zone_id, object, key, op)
            SELECT d.zone_id, 'domain', d.name, 'U'
              FROM old_rows o JOIN new_rows n ON n.id = o.id
              JOIN domain d ON n.id IN (d.registrant_id, d.admin_id, d.tech_id, d.billing_id)
             WHERE o.handle <> n.handle
            ON CONFLICT (xid, object, key) WHERE serial IS NULL DO NOTHING;
    ELSE
        INSERT INTO journal(zone_id, object, key, op)
            SELECT NULL, 'contact', handle, 'D' FROM old_rows
            ON CONFLICT (xid, object, key) WHERE serial IS NULL DO UPDATE SET op = 'D';
    END IF;
    INSERT INTO journal_txn(xid) VALUES (pg_current_xact_id()) ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;

CREATE FUNCTION journal_registrar() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO journal(zone_id, object, key, op)
            SELECT NULL, 'registrar', handle, 'I' FROM new_rows
            ON CONFLICT (xid, object, key) WHERE serial IS NULL DO UPDATE SET op = 'U';
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO journal(zone_id, object, key, op)
            SELECT NULL, 'registrar', o.handle, 'D'
              FROM old_rows o JOIN new_rows n ON n.id = o.id WHERE o.handle <> n.handle
            ON CONFLICT (xid, object, key) WHERE serial IS NULL DO UPDATE SET op = 'D';
        INSERT INTO journal(zone_id, object, key, op)
            SELECT NULL, 'registrar', handle, 'U' FROM new_rows
            ON CONFLICT (xid, object, key) WHERE serial IS NULL DO NOTHING;
        INSERT INTO journal(zone_id, object, key, op)
            SELECT d.zone_id, 'domain', d.name, 'U'
              FROM old_rows o JOIN new_rows n ON n.id = o.id
              JOIN domain d ON d.registrar_id = n.id
             WHERE o.handle <> n.handle
            ON CONFLICT (xid, object, key) WHERE serial IS NULL DO NOTHING;
    ELSE
        INSERT INTO journal(zone_id, object, key, op)
            SELECT NULL, 'registrar', handle, 'D' FROM old_rows
            ON CONFLICT (xid, object, key) WHERE serial IS NULL DO UPDATE SET op = 'D';
    END IF;
    INSERT INTO journal_txn(xid) VALUES (pg_current_xact_id()) ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;

CREATE TRIGGER zone_ji AFTER INSERT ON zone REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION journal_zone();
CREATE TRIGGER zone_ju AFTER UPDATE ON zone REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION journal_zone();
CREATE TRIGGER zone_jd AFTER DELETE ON zone REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION journal_zone();

CREATE TRIGGER zone_ns_ji AFTER INSERT ON zone_ns REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION journal_zone_ns();
CREATE TRIGGER zone_ns_ju AFTER UPDATE ON zone_ns REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION journal_zone_ns();
CREATE TRIGGER zone_ns_jd AFTER DELETE ON zone_ns REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION journal_zone_ns();

CREATE TRIGGER domain_ji AFTER INSERT ON domain REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION journal_domain();
CREATE TRIGGER domain_ju AFTER UPDATE ON domain REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION journal_domain();
CREATE TRIGGER domain_jd AFTER DELETE ON domain REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION journal_domain();

CREATE TRIGGER domain_status_ji AFTER INSERT ON domain_status REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION journal_domain_part();
CREATE TRIGGER domain_status_ju AFTER UPDATE ON domain_status REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION journal_domain_part();
CREATE TRIGGER domain_status_jd AFTER DELETE ON domain_status REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION journal_domain_part();

CREATE TRIGGER domain_ns_ji AFTER INSERT ON domain_ns REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION journal_domain_part();
CREATE TRIGGER domain_ns_ju AFTER UPDATE ON domain_ns REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION journal_domain_part();
CREATE TRIGGER domain_ns_jd AFTER DELETE ON domain_ns REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION journal_domain_part();

CREATE TRIGGER ds_ji AFTER INSERT ON ds REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION journal_domain_part();
CREATE TRIGGER ds_ju AFTER UPDATE ON ds REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION journal_domain_part();
CREATE TRIGGER ds_jd AFTER DELETE ON ds REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION journal_domain_part();

CREATE TRIGGER host_ji AFTER INSERT ON host REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION journal_host();
CREATE TRIGGER host_ju AFTER UPDATE ON host REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION journal_host();
CREATE TRIGGER host_jd AFTER DELETE ON host REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION journal_host();

CREATE TRIGGER host_address_ji AFTER INSERT ON host_address REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION journal_host_address();
CREATE TRIGGER host_address_ju AFTER UPDATE ON host_address REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION journal_host_address();
CREATE TRIGGER host_address_jd AFTER DELETE ON host_address REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION journal_host_address();

CREATE TRIGGER contact_ji AFTER INSERT ON contact REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION journal_contact();
CREATE TRIGGER contact_ju AFTER UPDATE ON contact REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION journal_contact();
CREATE TRIGGER contact_jd AFTER DELETE ON contact REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION journal_contact();

CREATE TRIGGER registrar_ji AFTER INSERT ON registrar REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION journal_registrar();
CREATE TRIGGER registrar_ju AFTER UPDATE ON registrar REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION journal_registrar();
CREATE TRIGGER registrar_jd AFTER DELETE ON registrar REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION journal_registrar();
