-- Wake journal followers at once: NOTIFY 'orrery_journal' with the last serial of each
-- committed transaction. Notifications are delivered only on commit, after the serials are
-- visible, so a listener that then reads `serial > S` sees them. Followers must still poll as a
-- fallback (notifications are lost while a listener is disconnected).
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
        UPDATE journal j SET serial = base + r.rn - 1
          FROM (SELECT seq, row_number() OVER (ORDER BY seq) AS rn
                  FROM journal WHERE xid = me AND serial IS NULL) r
         WHERE j.seq = r.seq;
        PERFORM pg_notify('orrery_journal', (base + n - 1)::text);
    END IF;
    DELETE FROM journal_txn WHERE xid = me;
    RETURN NULL;
END $$;
