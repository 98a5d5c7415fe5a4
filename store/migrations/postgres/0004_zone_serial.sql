-- Per-zone SOA serials (see docs/ARCHITECTURE.md, "SOA serials").
--
-- A zone's serial is the journal serial of the last committed change journalled against the
-- zone (a journal row whose zone_id is the zone's). It is kept in its own table rather than
-- computed as MAX(serial) over the journal, because pruning the journal would lower that
-- maximum, and a secondary ignores a zone whose serial went down. The generator and the
-- satellites read it in the same snapshot as the zone's data, so one store state gives one
-- serial everywhere. It is written where serials are assigned (at commit, below), so it is
-- visible exactly when the journal rows that moved it are.
CREATE TABLE zone_serial (
    zone_id bigint PRIMARY KEY,    -- no foreign key: a deleted zone's row is harmless
    serial  bigint NOT NULL
);

-- Existing zones start at the journal head: never below the serial the previous rule (the
-- journal head for every zone) may already have published.
INSERT INTO zone_serial(zone_id, serial)
    SELECT id, (SELECT COALESCE(MAX(serial), 0) FROM journal) FROM zone;

-- journal_sequence as in 0002, and the zones its rows touched take their last serial. The
-- rows of one transaction are numbered under the lock, after every earlier committer's, so
-- GREATEST only guards against a hand-edited table.
CREATE OR REPLACE FUNCTION journal_sequence() RETURNS trigger LANGUAGE plpgsql AS $$
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
        WITH numbered AS (
            UPDATE journal j SET serial = base + r.rn - 1
              FROM (SELECT seq, row_number() OVER (ORDER BY seq) AS rn
                      FROM journal WHERE xid = me AND serial IS NULL) r
             WHERE j.seq = r.seq
            RETURNING j.zone_id, j.serial
        )
        INSERT INTO zone_serial(zone_id, serial)
            SELECT zone_id, MAX(serial) FROM numbered WHERE zone_id IS NOT NULL GROUP BY zone_id
            ON CONFLICT (zone_id) DO UPDATE SET serial = GREATEST(zone_serial.serial, EXCLUDED.serial);
        PERFORM pg_notify('orrery_journal', (base + n - 1)::text);
    END IF;
    DELETE FROM journal_txn WHERE xid = me;
    RETURN NULL;
END $$;

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
