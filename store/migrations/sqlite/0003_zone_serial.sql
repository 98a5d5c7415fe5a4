-- Per-zone SOA serials (see docs/ARCHITECTURE.md, "SOA serials").
--
-- A zone's serial is the journal serial of the last committed change journalled against the
-- zone (a journal row whose zone_id is the zone's). It is kept in its own table rather than
-- computed as MAX(serial) over the journal, because pruning the journal would lower that
-- maximum, and a secondary ignores a zone whose serial went down. The generator and the
-- satellites read it in the same snapshot as the zone's data, so one store state gives one
-- serial everywhere.
CREATE TABLE zone_serial (
    zone_id INTEGER PRIMARY KEY,   -- no foreign key: a deleted zone's row is harmless
    serial  INTEGER NOT NULL
);

-- Existing zones start at the journal head: never below the serial the previous rule (the
-- journal head for every zone) may already have published.
INSERT INTO zone_serial(zone_id, serial)
    SELECT id, (SELECT COALESCE(MAX(serial), 0) FROM journal) FROM zone;

-- SQLite's single writer draws serials in commit order, so the newest row is the largest:
-- replacing is enough.
CREATE TRIGGER journal_zone_serial AFTER INSERT ON journal WHEN NEW.zone_id IS NOT NULL BEGIN
    INSERT OR REPLACE INTO zone_serial(zone_id, serial) VALUES (NEW.zone_id, NEW.serial);
END;

-- A renamed host changes the apex NS names of every zone that uses it: the zone changed
-- (before this, only the domains using it were journalled).
CREATE TRIGGER host_ju_zone_ns AFTER UPDATE OF name ON host WHEN OLD.name <> NEW.name BEGIN
    INSERT INTO journal(zone_id, object, key, op)
        SELECT z.id, 'zone', z.name, 'U' FROM zone_ns zn JOIN zone z ON z.id = zn.zone_id
         WHERE zn.host_id = NEW.id;
END;
