-- Orrery registry store, SQLite (embedded default). Same logical model as the PostgreSQL schema.
--
-- Names are stored in canonical form: lower-case A-labels, no trailing dot. Times are TEXT in
-- RFC 3339 UTC ('2026-11-23T09:32:29Z'). SQLite has a single writer, so a serial drawn when the
-- journal row is written is already in commit order: plain row triggers suffice here.

CREATE TABLE zone (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    soa_mname   TEXT NOT NULL,
    soa_rname   TEXT NOT NULL,
    soa_refresh INTEGER NOT NULL DEFAULT 7200 CHECK (soa_refresh >= 0),
    soa_retry   INTEGER NOT NULL DEFAULT 900 CHECK (soa_retry >= 0),
    soa_expire  INTEGER NOT NULL DEFAULT 1209600 CHECK (soa_expire >= 0),
    soa_minimum INTEGER NOT NULL DEFAULT 3600 CHECK (soa_minimum >= 0),
    soa_ttl     INTEGER NOT NULL DEFAULT 3600 CHECK (soa_ttl >= 0),
    ns_ttl      INTEGER NOT NULL DEFAULT 172800 CHECK (ns_ttl >= 0),
    ds_ttl      INTEGER NOT NULL DEFAULT 86400 CHECK (ds_ttl >= 0)
);

CREATE TABLE registrar (
    id           INTEGER PRIMARY KEY,
    handle       TEXT NOT NULL UNIQUE,
    name         TEXT NOT NULL,
    iana_id      INTEGER,
    url          TEXT,
    whois_server TEXT,
    email        TEXT,
    phone        TEXT,
    abuse_email  TEXT,
    abuse_phone  TEXT
);

CREATE TABLE contact (
    id           INTEGER PRIMARY KEY,
    handle       TEXT NOT NULL UNIQUE,
    name         TEXT NOT NULL,
    organisation TEXT,
    street       TEXT NOT NULL DEFAULT '',
    city         TEXT NOT NULL,
    province     TEXT,
    postcode     TEXT,
    country      TEXT NOT NULL,
    email        TEXT NOT NULL,
    voice        TEXT,
    fax          TEXT,
    disclose     INTEGER NOT NULL DEFAULT 0 CHECK (disclose IN (0, 1)),
    registrar_id INTEGER REFERENCES registrar(id),
    created      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    updated      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);

CREATE TABLE domain (
    id            INTEGER PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    zone_id       INTEGER NOT NULL REFERENCES zone(id),
    roid          TEXT NOT NULL UNIQUE,
    registrar_id  INTEGER NOT NULL REFERENCES registrar(id),
    registrant_id INTEGER REFERENCES contact(id),
    admin_id      INTEGER REFERENCES contact(id),
    tech_id       INTEGER REFERENCES contact(id),
    billing_id    INTEGER REFERENCES contact(id),
    created       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    updated       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    expires       TEXT NOT NULL
);
CREATE INDEX domain_zone ON domain(zone_id, name);

CREATE TABLE domain_status (
    domain_id INTEGER NOT NULL REFERENCES domain(id) ON DELETE CASCADE,
    status    TEXT NOT NULL,
    PRIMARY KEY (domain_id, status)
) WITHOUT ROWID;

CREATE TABLE host (
    id           INTEGER PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    zone_id      INTEGER REFERENCES zone(id),
    domain_id    INTEGER REFERENCES domain(id),
    registrar_id INTEGER REFERENCES registrar(id),
    created      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
    updated      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);
CREATE INDEX host_zone ON host(zone_id) WHERE zone_id IS NOT NULL;
CREATE INDEX host_domain ON host(domain_id) WHERE domain_id IS NOT NULL;

CREATE TABLE host_address (
    host_id INTEGER NOT NULL REFERENCES host(id) ON DELETE CASCADE,
    address TEXT NOT NULL,
    PRIMARY KEY (host_id, address)
) WITHOUT ROWID;

CREATE TABLE domain_ns (
    domain_id INTEGER NOT NULL REFERENCES domain(id) ON DELETE CASCADE,
    host_id   INTEGER NOT NULL REFERENCES host(id),
    PRIMARY KEY (domain_id, host_id)
) WITHOUT ROWID;
CREATE INDEX domain_ns_host ON domain_ns(host_id);

CREATE TABLE ds (
    domain_id   INTEGER NOT NULL REFERENCES domain(id) ON DELETE CASCADE,
    key_tag     INTEGER NOT NULL CHECK (key_tag BETWEEN 0 AND 65535),
    algorithm   INTEGER NOT NULL CHECK (algorithm BETWEEN 0 AND 255),
    digest_type INTEGER NOT NULL CHECK (digest_type BETWEEN 0 AND 255),
    digest      TEXT NOT NULL,
    PRIMARY KEY (domain_id, key_tag, algorithm, digest_type, digest)
) WITHOUT ROWID;

CREATE TABLE zone_ns (
    zone_id INTEGER NOT NULL REFERENCES zone(id) ON DELETE CASCADE,
    host_id INTEGER NOT NULL REFERENCES host(id),
    PRIMARY KEY (zone_id, host_id)
) WITHOUT ROWID;

-- The change journal. AUTOINCREMENT: serials are never reused, even after old rows are pruned.
CREATE TABLE journal (
    serial  INTEGER PRIMARY KEY AUTOINCREMENT,
    zone_id INTEGER,
    object  TEXT NOT NULL CHECK (object IN ('zone', 'domain', 'host', 'contact', 'registrar')),
    key     TEXT NOT NULL,
    op      TEXT NOT NULL CHECK (op IN ('I', 'U', 'D')),
    at      TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);
CREATE INDEX journal_zone ON journal(zone_id, serial);

CREATE TRIGGER zone_ji AFTER INSERT ON zone BEGIN
    INSERT INTO journal(zone_id, object, key, op) VALUES (NEW.id, 'zone', NEW.name, 'I');
END;
CREATE TRIGGER zone_ju AFTER UPDATE ON zone BEGIN
    INSERT INTO journal(zone_id, object, key, op) SELECT OLD.id, 'zone', OLD.name, 'D' WHERE OLD.name <> NEW.name;
    INSERT INTO journal(zone_id, object, key, op) VALUES (NEW.id, 'zone', NEW.name, 'U');
END;
CREATE TRIGGER zone_jd AFTER DELETE ON zone BEGIN
    INSERT INTO journal(zone_id, object, key, op) VALUES (OLD.id, 'zone', OLD.name, 'D');
END;

CREATE TRIGGER zone_ns_ji AFTER INSERT ON zone_ns BEGIN
    INSERT INTO journal(zone_id, object, key, op) SELECT id, 'zone', name, 'U' FROM zone WHERE id = NEW.zone_id;
END;
CREATE TRIGGER zone_ns_ju AFTER UPDATE ON zone_ns BEGIN
    INSERT INTO journal(zone_id, object, key, op) SELECT id, 'zone', name, 'U' FROM zone WHERE id IN (OLD.zone_id, NEW.zone_id);
END;
CREATE TRIGGER zone_ns_jd AFTER DELETE ON zone_ns BEGIN
    INSERT INTO journal(zone_id, object, key, op) SELECT id, 'zone', name, 'U' FROM zone WHERE id = OLD.zone_id;
END;

CREATE TRIGGER domain_ji AFTER INSERT ON domain BEGIN
    INSERT INTO journal(zone_id, object, key, op) VALUES (NEW.zone_id, 'domain', NEW.name, 'I');
END;
CREATE TRIGGER domain_ju AFTER UPDATE ON domain BEGIN
    INSERT INTO journal(zone_id, object, key, op)
        SELECT OLD.zone_id, 'domain', OLD.name, 'D' WHERE OLD.name <> NEW.name OR OLD.zone_id <> NEW.zone_id;
    INSERT INTO journal(zone_id, object, key, op) VALUES (NEW.zone_id, 'domain', NEW.name, 'U');
END;
CREATE TRIGGER domain_jd AFTER DELETE ON domain BEGIN
    INSERT INTO journal(zone_id, object, key, op) VALUES (OLD.zone_id, 'domain', OLD.name, 'D');
END;

CREATE TRIGGER domain_status_ji AFTER INSERT ON domain_status BEGIN
    INSERT INTO journal(zone_id, object, key, op) SELECT zone_id, 'domain', name, 'U' FROM domain WHERE id = NEW.domain_id;
END;
CREATE TRIGGER domain_status_ju AFTER UPDATE ON domain_status BEGIN
    INSERT INTO journal(zone_id, object, key, op) SELECT zone_id, 'domain', name, 'U' FROM domain WHERE id IN (OLD.domain_id, NEW.domain_id);
END;
CREATE TRIGGER domain_status_jd AFTER DELETE ON domain_status BEGIN
    INSERT INTO journal(zone_id, object, key, op) SELECT zone_id, 'domain', name, 'U' FROM domain WHERE id = OLD.domain_id;
END;

CREATE TRIGGER domain_ns_ji AFTER INSERT ON domain_ns BEGIN
    INSERT INTO journal(zone_id, object, key, op) SELECT zone_id, 'domain', name, 'U' FROM domain WHERE id = NEW.domain_id;
END;
CREATE TRIGGER domain_ns_ju AFTER UPDATE ON domain_ns BEGIN
    INSERT INTO journal(zone_id, object, key, op) SELECT zone_id, 'domain', name, 'U' FROM domain WHERE id IN (OLD.domain_id, NEW.domain_id);
END;
CREATE TRIGGER domain_ns_jd AFTER DELETE ON domain_ns BEGIN
    INSERT INTO journal(zone_id, object, key, op) SELECT zone_id, 'domain', name, 'U' FROM domain WHERE id = OLD.domain_id;
END;

CREATE TRIGGER ds_ji AFTER INSERT ON ds BEGIN
    INSERT INTO journal(zone_id, object, key, op) SELECT zone_id, 'domain', name, 'U' FROM domain WHERE id = NEW.domain_id;
END;
CREATE TRIGGER ds_ju AFTER UPDATE ON ds BEGIN
    INSERT INTO journal(zone_id, object, key, op) SELECT zone_id, 'domain', name, 'U' FROM domain WHERE id IN (OLD.domain_id, NEW.domain_id);
END;
CREATE TRIGGER ds_jd AFTER DELETE ON ds BEGIN
    INSERT INTO journal(zone_id, object, key, op) SELECT zone_id, 'domain', name, 'U' FROM domain WHERE id = OLD.domain_id;
END;

CREATE TRIGGER host_ji AFTER INSERT ON host BEGIN
    INSERT INTO journal(zone_id, object, key, op) VALUES (NEW.zone_id, 'host', NEW.name, 'I');
END;
CREATE TRIGGER host_ju AFTER UPDATE ON host BEGIN
    INSERT INTO journal(zone_id, object, key, op) SELECT OLD.zone_id, 'host', OLD.name, 'D' WHERE OLD.name <> NEW.name;
    INSERT INTO journal(zone_id, object, key, op) VALUES (NEW.zone_id, 'host', NEW.name, 'U');
    INSERT INTO journal(zone_id, object, key, op)
        SELECT d.zone_id, 'domain', d.name, 'U' FROM domain_ns dn JOIN domain d ON d.id = dn.domain_id
         WHERE dn.host_id = NEW.id AND OLD.name <> NEW.name;
END;
CREATE TRIGGER host_jd AFTER DELETE ON host BEGIN
    INSERT INTO journal(zone_id, object, key, op) VALUES (OLD.zone_id, 'host', OLD.name, 'D');
END;

CREATE TRIGGER host_address_ji AFTER INSERT ON host_address BEGIN
    INSERT INTO journal(zone_id, object, key, op) SELECT zone_id, 'host', name, 'U' FROM host WHERE id = NEW.host_id;
END;
CREATE TRIGGER host_address_ju AFTER UPDATE ON host_address BEGIN
    INSERT INTO journal(zone_id, object, key, op) SELECT zone_id, 'host', name, 'U' FROM host WHERE id IN (OLD.host_id, NEW.host_id);
END;
CREATE TRIGGER host_address_jd AFTER DELETE ON host_address BEGIN
    INSERT INTO journal(zone_id, object, key, op) SELECT zone_id, 'host', name, 'U' FROM host WHERE id = OLD.host_id;
END;

CREATE TRIGGER contact_ji AFTER INSERT ON contact BEGIN
    INSERT INTO journal(zone_id, object, key, op) VALUES (NULL, 'contact', NEW.handle, 'I');
END;
CREATE TRIGGER contact_ju AFTER UPDATE ON contact BEGIN
    INSERT INTO journal(zone_id, object, key, op) SELECT NULL, 'contact', OLD.handle, 'D' WHERE OLD.handle <> NEW.handle;
    INSERT INTO journal(zone_id, object, key, op) VALUES (NULL, 'contact', NEW.handle, 'U');
    INSERT INTO journal(zone_id, object, key, op)
        SELECT zone_id, 'domain', name, 'U' FROM domain
         WHERE OLD.handle <> NEW.handle AND NEW.id IN (registrant_id, admin_id, tech_id, billing_id);
END;
CREATE TRIGGER contact_jd AFTER DELETE ON contact BEGIN
    INSERT INTO journal(zone_id, object, key, op) VALUES (NULL, 'contact', OLD.handle, 'D');
END;

CREATE TRIGGER registrar_ji AFTER INSERT ON registrar BEGIN
    INSERT INTO journal(zone_id, object, key, op) VALUES (NULL, 'registrar', NEW.handle, 'I');
END;
CREATE TRIGGER registrar_ju AFTER UPDATE ON registrar BEGIN
    INSERT INTO journal(zone_id, object, key, op) SELECT NULL, 'registrar', OLD.handle, 'D' WHERE OLD.handle <> NEW.handle;
    INSERT INTO journal(zone_id, object, key, op) VALUES (NULL, 'registrar', NEW.handle, 'U');
    INSERT INTO journal(zone_id, object, key, op)
        SELECT zone_id, 'domain', name, 'U' FROM domain WHERE OLD.handle <> NEW.handle AND registrar_id = NEW.id;
END;
CREATE TRIGGER registrar_jd AFTER DELETE ON registrar BEGIN
    INSERT INTO journal(zone_id, object, key, op) VALUES (NULL, 'registrar', OLD.handle, 'D');
END;
