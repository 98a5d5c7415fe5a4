-- Names are canonical whoever writes the tables (issue 10): lower-case LDH labels of 1 to 63
-- characters, at most 253 characters in all, no trailing dot, no empty label. The journal key
-- of a change is the stored name, so with this rule it is always the object's canonical key
-- and a batch can never carry an upsert and a removal of one object (an `UPDATE domain SET
-- name = 'X.test'` is refused instead of renaming `x.test` out of the cluster's sight).
-- The same rules hold on SQLite (migrations/sqlite/0002_canonical_names.sql, as triggers).
--
-- The constraints are NOT VALID: a live database that already holds a non-canonical row
-- migrates without a table scan and without failing. Such a row is then refused on its next
-- UPDATE, and readers quarantine it (`orrery-admin bad-rows` lists it). Fix the rows, then
-- `ALTER TABLE … VALIDATE CONSTRAINT …` to make the rule hold for every row.

-- A host name as registries use them (RFC 952/1123 LDH; A-labels are LDH too).
CREATE FUNCTION orrery_canonical_hostname(n text) RETURNS boolean
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT length(n) <= 253
       AND n ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$'
$$;

-- Any other stored name (the SOA RNAME is a mailbox written as a name: `_` and edge hyphens
-- are allowed in its labels), still lower case, without a trailing dot or empty labels.
CREATE FUNCTION orrery_canonical_name(n text) RETURNS boolean
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT length(n) <= 253 AND n ~ '^[a-z0-9_-]{1,63}(\.[a-z0-9_-]{1,63})*$'
$$;

ALTER TABLE zone ADD CONSTRAINT zone_name_canonical
    CHECK (orrery_canonical_hostname(name)) NOT VALID;
ALTER TABLE zone ADD CONSTRAINT zone_soa_mname_canonical
    CHECK (orrery_canonical_hostname(soa_mname)) NOT VALID;
ALTER TABLE zone ADD CONSTRAINT zone_soa_rname_canonical
    CHECK (orrery_canonical_name(soa_rname)) NOT VALID;
ALTER TABLE domain ADD CONSTRAINT domain_name_canonical
    CHECK (orrery_canonical_hostname(name)) NOT VALID;
ALTER TABLE host ADD CONSTRAINT host_name_canonical
    CHECK (orrery_canonical_hostname(name)) NOT VALID;
