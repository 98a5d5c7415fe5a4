-- Cluster state shared by every master and read by `orrery-master status` (issue 12).
--
-- Nothing here is journalled: these tables describe the cluster, not the registry. Times are
-- milliseconds since the Unix epoch taken from the DATABASE's clock, so that ages and lease
-- expiries compare on one clock whatever the masters' clocks say. The writers are the masters
-- (one row per master, one per satellite written by the master holding its session); the
-- readers are the masters' watchdog and the status command.

-- One row per master, refreshed every few seconds while it runs.
CREATE TABLE cluster_master (
    id            TEXT PRIMARY KEY,          -- `master.id`, default host:port
    host          TEXT NOT NULL,
    started_ms    INTEGER NOT NULL,
    heartbeat_ms  INTEGER NOT NULL,
    journal_head  INTEGER NOT NULL,           -- the serial its cache has applied
    duties        TEXT NOT NULL DEFAULT '',  -- the leases it holds, comma-separated
    quarantined   INTEGER NOT NULL DEFAULT 0, -- rows its cache holds in quarantine
    cert_expires_ms INTEGER                   -- its link certificate's notAfter
);

-- The last status of each satellite, written at its check-ins by the master holding its session.
CREATE TABLE cluster_satellite (
    identity          TEXT PRIMARY KEY,
    master_id         TEXT NOT NULL,
    connected         INTEGER NOT NULL,
    address           TEXT NOT NULL,
    hostname          TEXT NOT NULL DEFAULT '',
    software_version  TEXT NOT NULL DEFAULT '',
    up_since_ms       INTEGER,                -- process start (check-in time less its uptime)
    session_since_ms  INTEGER,
    last_checkin_ms   INTEGER,
    checkin_interval_ms INTEGER NOT NULL,
    applied_serial    INTEGER NOT NULL,
    services          TEXT NOT NULL DEFAULT '[]',   -- JSON: the listeners it was given
    config_version    TEXT NOT NULL DEFAULT '',     -- the version it runs
    config_expected   TEXT NOT NULL DEFAULT '',     -- the version its master holds for it
    config_refused    TEXT,                         -- why not (all of) it runs; NULL when it does
    restart_required  TEXT NOT NULL DEFAULT '',
    memory_bytes      INTEGER,
    memory_budget     INTEGER,
    cert_expires_ms   INTEGER,                -- its client certificate's notAfter
    logs              TEXT NOT NULL DEFAULT '[]',   -- JSON: its latest warnings and errors
    logs_dropped      INTEGER NOT NULL DEFAULT 0,
    updated_ms        INTEGER NOT NULL
);

-- A bounded history of each satellite's counters (cumulative since its start), pruned to the
-- last N check-ins per satellite by the writer.
CREATE TABLE cluster_satellite_stats (
    identity       TEXT NOT NULL,
    at_ms          INTEGER NOT NULL,
    uptime_s       INTEGER NOT NULL,
    dns_queries    INTEGER NOT NULL,
    whois_queries  INTEGER NOT NULL,
    rdap_queries   INTEGER NOT NULL,
    responses      INTEGER NOT NULL,
    servfail       INTEGER NOT NULL,
    rate_limited   INTEGER NOT NULL,
    errors         INTEGER NOT NULL,
    detail         TEXT NOT NULL DEFAULT '{}',  -- JSON: rcodes and errors by name
    PRIMARY KEY (identity, at_ms)
);

-- Singleton duties (the watchdog …): at most one holder whose lease has not expired.
CREATE TABLE cluster_lease (
    name        TEXT PRIMARY KEY,
    holder      TEXT NOT NULL,
    acquired_ms INTEGER NOT NULL,
    expires_ms  INTEGER NOT NULL
);

-- Warnings the watchdog raised; the current ones have no `cleared_ms`.
CREATE TABLE cluster_warning (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    rule       TEXT NOT NULL,
    subject    TEXT NOT NULL,
    raised_ms  INTEGER NOT NULL,
    cleared_ms INTEGER,
    detail     TEXT NOT NULL
);
CREATE UNIQUE INDEX cluster_warning_current ON cluster_warning(rule, subject) WHERE cleared_ms IS NULL;
CREATE INDEX cluster_warning_cleared ON cluster_warning(cleared_ms) WHERE cleared_ms IS NOT NULL;
