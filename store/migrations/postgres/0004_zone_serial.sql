-- Per-zone SOA serials (see docs/ARCHITECTURE.md, "SOA serials").
--
-- A zone's serial is the journal serial of the last committed change journalled against the
-- zone (a journal row whose zone_id is the zone's): MAX(serial) over its journal rows, an index
-- probe on journal_zone, read in the same snapshot as the zone's data. Writes (and the commit-
-- time numbering under the journal lock) pay nothing for it. Pruning the journal would lower
-- that maximum, and a secondary ignores a zone whose serial went down, so rows leaving the
-- journal leave their serial behind here first: a zone's serial is the larger of the two.
CREATE TABLE zone_serial (
    zone_id bigint PRIMARY KEY,    -- no foreign key: a deleted zone's row is harmless
    serial  bigint NOT NULL        -- the largest serial pruned from the zone's journal rows
);

-- Existing zones start at the journal head: never below the serial the previous rule (the
-- journal head for every zone) may already have published.
INSERT INTO zone_serial(zone_id, serial)
    SELECT id, (SELECT COALESCE(MAX(serial), 0) FROM journal) FROM zone;

CREATE FUNCTION journal_prune_zone_serial() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        -- Before the rows go (TRUNCATE has no transition table).
        INSERT INTO zone_serial(zone_id, serial)
            SELECT zone_id, MAX(serial) FROM journal
             WHERE zone_id IS NOT NULL AND serial IS NOT NULL GROUP BY zone_id
            ON CONFLICT (zone_id) DO UPDATE SET serial = GREATEST(zone_serial.serial, EXCLUDED.serial);
    ELSE
        INSERT INTO zone_serial(zone_id, serial)
            SELECT zone_id, MAX(serial) FROM old_rows
             WHERE zone_id IS NOT NULL AND serial IS NOT NULL GROUP BY zone_id
            ON CONFLICT (zone_id) DO UPDATE SET serial = GREATEST(zone_serial.serial, EXCLUDED.serial);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER journal_prune_zone_serial AFTER DELETE ON journal REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION journal_prune_zone_serial();
CREATE TRIGGER journal_truncate_zone_serial BEFORE TRUNCATE ON journal
    FOR EACH STATEMENT EXECUTE FUNCTION journal_prune_zone_serial();

-- A renamed host changes the apex NS names of every zone that uses it: the zone changed
-- (before this, only the domains using it were journalled).
CREATE FUNCTION journal_host_zone_ns() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO journal(zone_id, object, key, op)
        SELECT z.id, 'zone', z.name, 'U'
          FROM old_rows o JOIN new_rows n ON n.id = o.id
          JOIN zone_ns zn ON zn.host_id = n.id JOIN zone z ON z.id = zn.zone_id
         WHERE o.name <> n.name
        ON CONFLICT (xid, object, key) WHERE serial IS NULL DO NOTHING;
    INSERT INTO journal_txn(xid) VALUES (pg_current_xact_id()) ON CONFLICT DO NOTHING;
    RETURN NULL;
END $$;

CREATE TRIGGER host_ju_zone_ns AFTER UPDATE ON host REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION journal_host_zone_ns();
