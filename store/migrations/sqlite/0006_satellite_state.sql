-- A satellite's state beyond connected or not (issue 12): 'first_snapshot' while a bare
-- satellite receives its first snapshot (it is behind by the whole registry, which the
-- watchdog's serial-lag rule must not report); '' otherwise.
ALTER TABLE cluster_satellite ADD COLUMN state TEXT NOT NULL DEFAULT '';
