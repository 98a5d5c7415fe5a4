-- Names are canonical whoever writes the tables (issue 10): the rules of the PostgreSQL schema
-- (migrations/postgres/0003_canonical_names.sql) as triggers, since SQLite cannot add a CHECK
-- to an existing table without rebuilding it. Host names (zone, domain, host names and the SOA
-- MNAME): lower-case LDH labels of 1 to 63 characters, no hyphen at either end of a label; the
-- SOA RNAME (a mailbox written as a name) may also hold `_` and edge hyphens. Every name: at
-- most 253 characters, no trailing dot, no empty label, stored as text.
--
-- The journal key of a change is the stored name, so it is always the object's canonical key
-- and a batch can never carry an upsert and a removal of one object. Rows written before this
-- migration are not checked until they are updated; readers quarantine a non-canonical one
-- (`orrery-admin bad-rows` lists it).

CREATE TRIGGER zone_name_canonical_i BEFORE INSERT ON zone
    WHEN typeof(NEW.name) <> 'text' OR NEW.name = '' OR length(NEW.name) > 253
      OR NEW.name GLOB '*[^a-z0-9.-]*'
      OR NEW.name GLOB '.*'
      OR NEW.name GLOB '*.'
      OR NEW.name GLOB '*..*'
      OR NEW.name GLOB '-*'
      OR NEW.name GLOB '*-'
      OR NEW.name GLOB '*.-*'
      OR NEW.name GLOB '*-.*'
      OR NEW.name GLOB '*[^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.]*'
BEGIN
    SELECT RAISE(ABORT, 'orrery: non-canonical name in zone.name: lower-case LDH labels of 1 to 63 characters, no hyphen at either end of a label, at most 253 in all, no trailing dot');
END;

CREATE TRIGGER zone_name_canonical_u BEFORE UPDATE OF name ON zone
    WHEN typeof(NEW.name) <> 'text' OR NEW.name = '' OR length(NEW.name) > 253
      OR NEW.name GLOB '*[^a-z0-9.-]*'
      OR NEW.name GLOB '.*'
      OR NEW.name GLOB '*.'
      OR NEW.name GLOB '*..*'
      OR NEW.name GLOB '-*'
      OR NEW.name GLOB '*-'
      OR NEW.name GLOB '*.-*'
      OR NEW.name GLOB '*-.*'
      OR NEW.name GLOB '*[^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.]*'
BEGIN
    SELECT RAISE(ABORT, 'orrery: non-canonical name in zone.name: lower-case LDH labels of 1 to 63 characters, no hyphen at either end of a label, at most 253 in all, no trailing dot');
END;

CREATE TRIGGER zone_soa_mname_canonical_i BEFORE INSERT ON zone
    WHEN typeof(NEW.soa_mname) <> 'text'
      OR NEW.soa_mname = '' OR length(NEW.soa_mname) > 253
      OR NEW.soa_mname GLOB '*[^a-z0-9.-]*'
      OR NEW.soa_mname GLOB '.*'
      OR NEW.soa_mname GLOB '*.'
      OR NEW.soa_mname GLOB '*..*'
      OR NEW.soa_mname GLOB '-*'
      OR NEW.soa_mname GLOB '*-'
      OR NEW.soa_mname GLOB '*.-*'
      OR NEW.soa_mname GLOB '*-.*'
      OR NEW.soa_mname GLOB '*[^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.]*'
BEGIN
    SELECT RAISE(ABORT, 'orrery: non-canonical name in zone.soa_mname: lower-case LDH labels of 1 to 63 characters, no hyphen at either end of a label, at most 253 in all, no trailing dot');
END;

CREATE TRIGGER zone_soa_mname_canonical_u BEFORE UPDATE OF soa_mname ON zone
    WHEN typeof(NEW.soa_mname) <> 'text'
      OR NEW.soa_mname = '' OR length(NEW.soa_mname) > 253
      OR NEW.soa_mname GLOB '*[^a-z0-9.-]*'
      OR NEW.soa_mname GLOB '.*'
      OR NEW.soa_mname GLOB '*.'
      OR NEW.soa_mname GLOB '*..*'
      OR NEW.soa_mname GLOB '-*'
      OR NEW.soa_mname GLOB '*-'
      OR NEW.soa_mname GLOB '*.-*'
      OR NEW.soa_mname GLOB '*-.*'
      OR NEW.soa_mname GLOB '*[^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.]*'
BEGIN
    SELECT RAISE(ABORT, 'orrery: non-canonical name in zone.soa_mname: lower-case LDH labels of 1 to 63 characters, no hyphen at either end of a label, at most 253 in all, no trailing dot');
END;

CREATE TRIGGER zone_soa_rname_canonical_i BEFORE INSERT ON zone
    WHEN typeof(NEW.soa_rname) <> 'text'
      OR NEW.soa_rname = '' OR length(NEW.soa_rname) > 253
      OR NEW.soa_rname GLOB '*[^a-z0-9._-]*'
      OR NEW.soa_rname GLOB '.*'
      OR NEW.soa_rname GLOB '*.'
      OR NEW.soa_rname GLOB '*..*'
      OR NEW.soa_rname GLOB '*[^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.]*'
BEGIN
    SELECT RAISE(ABORT, 'orrery: non-canonical name in zone.soa_rname: lower-case labels of 1 to 63 characters, at most 253 in all, no trailing dot');
END;

CREATE TRIGGER zone_soa_rname_canonical_u BEFORE UPDATE OF soa_rname ON zone
    WHEN typeof(NEW.soa_rname) <> 'text'
      OR NEW.soa_rname = '' OR length(NEW.soa_rname) > 253
      OR NEW.soa_rname GLOB '*[^a-z0-9._-]*'
      OR NEW.soa_rname GLOB '.*'
      OR NEW.soa_rname GLOB '*.'
      OR NEW.soa_rname GLOB '*..*'
      OR NEW.soa_rname GLOB '*[^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.]*'
BEGIN
    SELECT RAISE(ABORT, 'orrery: non-canonical name in zone.soa_rname: lower-case labels of 1 to 63 characters, at most 253 in all, no trailing dot');
END;

CREATE TRIGGER domain_name_canonical_i BEFORE INSERT ON domain
    WHEN typeof(NEW.name) <> 'text' OR NEW.name = '' OR length(NEW.name) > 253
      OR NEW.name GLOB '*[^a-z0-9.-]*'
      OR NEW.name GLOB '.*'
      OR NEW.name GLOB '*.'
      OR NEW.name GLOB '*..*'
      OR NEW.name GLOB '-*'
      OR NEW.name GLOB '*-'
      OR NEW.name GLOB '*.-*'
      OR NEW.name GLOB '*-.*'
      OR NEW.name GLOB '*[^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.]*'
BEGIN
    SELECT RAISE(ABORT, 'orrery: non-canonical name in domain.name: lower-case LDH labels of 1 to 63 characters, no hyphen at either end of a label, at most 253 in all, no trailing dot');
END;

CREATE TRIGGER domain_name_canonical_u BEFORE UPDATE OF name ON domain
    WHEN typeof(NEW.name) <> 'text' OR NEW.name = '' OR length(NEW.name) > 253
      OR NEW.name GLOB '*[^a-z0-9.-]*'
      OR NEW.name GLOB '.*'
      OR NEW.name GLOB '*.'
      OR NEW.name GLOB '*..*'
      OR NEW.name GLOB '-*'
      OR NEW.name GLOB '*-'
      OR NEW.name GLOB '*.-*'
      OR NEW.name GLOB '*-.*'
      OR NEW.name GLOB '*[^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.]*'
BEGIN
    SELECT RAISE(ABORT, 'orrery: non-canonical name in domain.name: lower-case LDH labels of 1 to 63 characters, no hyphen at either end of a label, at most 253 in all, no trailing dot');
END;

CREATE TRIGGER host_name_canonical_i BEFORE INSERT ON host
    WHEN typeof(NEW.name) <> 'text' OR NEW.name = '' OR length(NEW.name) > 253
      OR NEW.name GLOB '*[^a-z0-9.-]*'
      OR NEW.name GLOB '.*'
      OR NEW.name GLOB '*.'
      OR NEW.name GLOB '*..*'
      OR NEW.name GLOB '-*'
      OR NEW.name GLOB '*-'
      OR NEW.name GLOB '*.-*'
      OR NEW.name GLOB '*-.*'
      OR NEW.name GLOB '*[^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.]*'
BEGIN
    SELECT RAISE(ABORT, 'orrery: non-canonical name in host.name: lower-case LDH labels of 1 to 63 characters, no hyphen at either end of a label, at most 253 in all, no trailing dot');
END;

CREATE TRIGGER host_name_canonical_u BEFORE UPDATE OF name ON host
    WHEN typeof(NEW.name) <> 'text' OR NEW.name = '' OR length(NEW.name) > 253
      OR NEW.name GLOB '*[^a-z0-9.-]*'
      OR NEW.name GLOB '.*'
      OR NEW.name GLOB '*.'
      OR NEW.name GLOB '*..*'
      OR NEW.name GLOB '-*'
      OR NEW.name GLOB '*-'
      OR NEW.name GLOB '*.-*'
      OR NEW.name GLOB '*-.*'
      OR NEW.name GLOB '*[^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.][^.]*'
BEGIN
    SELECT RAISE(ABORT, 'orrery: non-canonical name in host.name: lower-case LDH labels of 1 to 63 characters, no hyphen at either end of a label, at most 253 in all, no trailing dot');
END;
