-- Per-zone SOA serials (see docs/ARCHITECTURE.md, "SOA serials").
--
-- A zone's serial is the journal serial of the last committed change journalled against the
-- zone (a journal row whose zone_id is the zone's): MAX(serial) over its journal rows, an index
-- probe on journal_zone. Writes pay nothing for it. Pruning the journal would lower that
-- maximum, and a secondary ignores a zone whose serial went down, so rows leaving the journal
-- leave their serial behind here first: a zone's serial is the larger of the two.
CREATE TABLE zone_serial (
    zone_id INTEGER PRIMARY KEY,   -- no foreign key: a deleted zone's row is harmless
    serial  INTEGER NOT NULL       -- the largest serial pruned from the zone's journal rows
);

-- Existing zones start at the journal head: never below the serial the previous rule (the
-- journal head for every zone) may already have published.
INSERT INTO zone_serial(zone_id, serial)
    SELECT id, (SELECT COALESCE(MAX(serial), 0) FROM journal) FROM zone;

CREATE TRIGGER journal_prune_zone_serial AFTER DELETE ON journal WHEN OLD.zone_id IS NOT NULL BEGIN
    INSERT INTO zone_serial(zone_id, serial) VALUES (OLD.zone_id, OLD.serial)
        ON CONFLICT (zone_id) DO UPDATE SET serial = max(serial, excluded.serial);
END;

-- A renamed host changes the apex NS names of every zone that uses it: the zone changed
-- (before this, only the domains using it were journalled).
CREATE TRIGGER host_ju_zone_ns AFTER UPDATE OF name ON host WHEN OLD.name <> NEW.name BEGIN
    INSERT INTO journal(zone_id, object, key, op)
        SELECT z.id, 'zone', z.name, 'U' FROM zone_ns zn JOIN zone z ON z.id = zn.zone_id
         WHERE zn.host_id = NEW.id;
END;
