-- The zones a master cannot sign (issue 13), as JSON: [{"zone": "...", "error": "..."}]. Such
-- a zone's changes are withheld by that master; the watchdog's `unsignable_zone` rule reads
-- this column from every master with a fresh heartbeat.
ALTER TABLE cluster_master ADD COLUMN unsignable TEXT NOT NULL DEFAULT '[]';
