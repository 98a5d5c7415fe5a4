-- Cluster state shared by every master and read by `orrery-master status` (issue 12).
--
-- Nothing here is journalled: these tables describe the cluster, not the registry. Times are
-- milliseconds since the Unix epoch taken from the DATABASE's clock, so that ages and lease
-- expiries compare on one clock whatever the masters' clocks say. The writers are the masters
-- (one row per master, one per satellite written by the master holding its session); the
-- readers are the masters' watchdog and the status command.

-- One row per master, refreshed every few seconds while it runs.
CREATE TABLE cluster_master (
    id            text PRIMARY KEY,          -- `master.id`, default host:port
    host          text NOT NULL,
    started_ms    bigint NOT NULL,
    heartbeat_ms  bigint NOT NULL,
    journal_head  bigint NOT NULL,           -- the serial its cache has applied
    duties        text NOT NULL DEFAULT '',  -- the leases it holds, comma-separated
    quarantined   bigint NOT NULL DEFAULT 0, -- rows its cache holds in quarantine
    cert_expires_ms bigint                   -- its link certificate's notAfter
);

-- The last status of each satellite, written at its check-ins by the master holding its session.
CREATE TABLE cluster_satellite (
    identity          text PRIMARY KEY,
    master_id         text NOT NULL,
    connected         boolean NOT NULL,
    address           text NOT NULL,
    hostname          text NOT NULL DEFAULT '',
    software_version  text NOT NULL DEFAULT '',
    up_since_ms       bigint,                -- process start (check-in time less its uptime)
    session_since_ms  bigint,
    last_checkin_ms   bigint,
    checkin_interval_ms bigint NOT NULL,
    applied_serial    bigint NOT NULL,
    services          text NOT NULL DEFAULT '[]',   -- JSON: the listeners it was given
    config_version    text NOT NULL DEFAULT '',     -- the version it runs
    config_expected   text NOT NULL DEFAULT '',     -- the version its master holds for it
    config_refused    text,                         -- why not (all of) it runs; NULL when it does
    restart_required  text NOT NULL DEFAULT '',
    memory_bytes      bigint,
    memory_budget     bigint,
    cert_expires_ms   bigint,                -- its client certificate's notAfter
    logs              text NOT NULL DEFAULT '[]',   -- JSON: its latest warnings and errors
    logs_dropped      bigint NOT NULL DEFAULT 0,
    updated_ms        bigint NOT NULL
);

-- A bounded history of each satellite's counters (cumulative since its start), pruned to the
-- last N check-ins per satellite by the writer.
CREATE TABLE cluster_satellite_stats (
    identity       text NOT NULL,
    at_ms          bigint NOT NULL,
    uptime_s       bigint NOT NULL,
    dns_queries    bigint NOT NULL,
    whois_queries  bigint NOT NULL,
    rdap_queries   bigint NOT NULL,
    responses      bigint NOT NULL,
    servfail       bigint NOT NULL,
    rate_limited   bigint NOT NULL,
    errors         bigint NOT NULL,
    detail         text NOT NULL DEFAULT '{}',  -- JSON: rcodes and errors by name
    PRIMARY KEY (identity, at_ms)
);

-- Singleton duties (the watchdog …): at most one holder whose lease has not expired.
CREATE TABLE cluster_lease (
    name        text PRIMARY KEY,
    holder      text NOT NULL,
    acquired_ms bigint NOT NULL,
    expires_ms  bigint NOT NULL
);

-- Warnings the watchdog raised; the current ones have no `cleared_ms`.
CREATE TABLE cluster_warning (
    id         bigserial PRIMARY KEY,
    rule       text NOT NULL,
    subject    text NOT NULL,
    raised_ms  bigint NOT NULL,
    cleared_ms bigint,
    detail     text NOT NULL
);
CREATE UNIQUE INDEX cluster_warning_current ON cluster_warning(rule, subject) WHERE cleared_ms IS NULL;
CREATE INDEX cluster_warning_cleared ON cluster_warning(cleared_ms) WHERE cleared_ms IS NOT NULL;
