//! One connection with a master, and the loop that dials them in turn: boot, snapshot when
//! needed, follow change batches, check in; and keep serving through every failure (see the
//! diagram in [`super`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use orrery_proto::ChangeBatch;
use orrery_proto::link::client::{self, DialConfig, Dialer, Failure, LinkClient};
use orrery_proto::link::convert::MIN_CHECKIN_INTERVAL;
use orrery_proto::link::pb::{self, follow_event::Event};
use orrery_proto::link::tls::client_config;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

use super::check_in::CheckIns;
use super::persist::persist_state;
use super::{Link, LinkError, SessionEnd, adopt, snapshot_transfer};
use crate::served::{BuildOptions, Served, ServedStore, dispose_in_background};
use crate::{background, expiry};

/// Limit for the boot call and for opening a stream (check-ins have their own,
/// [`super::check_in::CHECKIN_TIMEOUT`]).
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

impl Link {
    pub(super) async fn run(mut self, shutdown: CancellationToken) {
        let persist_stop = CancellationToken::new();
        let persister = tokio::spawn(persist_state(
            self.files.clone(),
            Arc::clone(&self.dirty),
            self.config.persist_interval,
            persist_stop.clone(),
        ));
        let mut dial =
            DialConfig::new(self.config.masters.clone(), client_config(&self.config.tls));
        dial.backoff = self.config.backoff;
        dial.ca = Some(self.config.tls.ca_source().to_owned());
        dial.return_after = self.config.return_after;
        let mut dialer = Dialer::new(dial);
        let expiry_stop = CancellationToken::new();
        let expiry_tick = {
            let report = self.report.subscribe();
            tokio::spawn(expiry::run_tick(
                Arc::clone(&self.expiry),
                move || report.borrow().zones.clone(),
                expiry_stop.clone(),
            ))
        };
        loop {
            let client = tokio::select! {
                () = shutdown.cancelled() => break,
                c = dialer.connect() => c,
            };
            let began = Instant::now();
            self.following = false;
            self.in_snapshot = false;
            // On a later master of the list, an earlier one that is back ends the session at
            // its next safe point (as a shutdown would, between two messages), and the dial
            // below reaches that master first.
            let switch = shutdown.child_token();
            let mut moving = false;
            let result = {
                let session = self.session(client, &dialer, &switch);
                tokio::pin!(session);
                tokio::select! {
                    r = &mut session => r,
                    _ = dialer.earlier_master_back() => {
                        moving = true;
                        switch.cancel();
                        session.await
                    }
                }
            };
            self.publish(|s| s.connected = false);
            match result {
                Ok(SessionEnd::Shutdown) if moving && !shutdown.is_cancelled() => tracing::info!(
                    serial = self.applied(),
                    "leaving this master for an earlier one of the list"
                ),
                Ok(SessionEnd::Shutdown) => break,
                Ok(SessionEnd::MasterClosed) => tracing::info!(
                    serial = self.applied(),
                    "master closed the session; serving the last complete state and dialling again"
                ),
                Err(LinkError::Master(client::LinkError::Status(s)))
                    if s.code() == tonic::Code::PermissionDenied =>
                {
                    tracing::error!(
                        reason = %s.message(),
                        "the master refused this satellite; serving the last complete state"
                    );
                }
                // Not a link problem: the addresses the master configured cannot be bound
                // (in use, or not ours). Retry: the port may free up, or the master's
                // configuration for this satellite may change at the next boot.
                Err(LinkError::Bind(e)) => tracing::error!(
                    error = %e,
                    "cannot listen on the addresses the master configured; retrying"
                ),
                Err(LinkError::RdsBind(e)) => tracing::error!(
                    error = %e,
                    "cannot serve Whois/RDAP as the master configured; retrying"
                ),
                Err(e) => tracing::warn!(
                    error = %e,
                    serial = self.applied(),
                    "link to the master lost; serving the last complete state"
                ),
            }
            if moving && !shutdown.is_cancelled() {
                // Not a failure: dial the earlier master at once.
                continue;
            }
            dialer.session_ended(began.elapsed(), self.following);
            let pause = dialer.pause();
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(pause) => {}
            }
        }
        if let Some(mut s) = self.serving.take() {
            s.stop().await;
        }
        if let Some(mut r) = self.rds.take() {
            r.stop(Duration::from_secs(5)).await;
        }
        self.metrics_listener = None;
        persist_stop.cancel();
        let _ = persister.await;
        expiry_stop.cancel();
        let _ = expiry_tick.await;
        tracing::info!(serial = self.applied(), "satellite stopped");
    }

    /// One connection: boot, snapshot if needed, then follow and check in until an error or
    /// shutdown.
    async fn session(
        &mut self,
        mut client: LinkClient,
        dialer: &Dialer,
        shutdown: &CancellationToken,
    ) -> Result<SessionEnd, LinkError> {
        let boot = timed(client.boot(pb::BootRequest {
            software_version: self.config.software_version.clone(),
            hostname: self.config.hostname.clone(),
            applied_serial: self.applied(),
        }))
        .await?
        .map_err(|status| match client::LinkError::from(status) {
            // With TLS 1.3 the master checks this satellite's certificate after the
            // handshake; refusing it, it sends an alert and closes, and the first call
            // often fails on the closed connection before the alert is read.
            client::LinkError::Transport {
                failure: Failure::Closed(reason),
                ..
            } => LinkError::ClosedAtBoot(reason),
            other => other.into(),
        })?
        .into_inner();
        self.expiry.heard();
        let config = boot
            .config
            .ok_or_else(|| LinkError::Protocol("boot without a configuration".into()))?;
        self.receive(config)?;
        self.match_directory().await;
        let applied = self.applied();
        tracing::info!(
            identity = %boot.identity,
            applied,
            head = boot.head_serial,
            window_start = boot.window_start,
            "booted"
        );
        self.metrics.set_head(boot.head_serial);
        self.publish(|s| {
            s.connected = true;
            s.identity = Some(boot.identity.clone());
        });
        // Serves what the configuration asks for, if a previous attempt failed (e.g. a port
        // that was in use).
        self.ensure_serving()?;
        self.publish(|_| {});
        let (mut checkins, mut answers) = self.start_check_ins(&client, boot.session, dialer).await;
        if self.zones.is_none()
            || self.snapshot_required
            || applied < boot.window_start
            || applied > boot.head_serial
        {
            self.take_snapshot(&mut client).await?;
        }
        loop {
            let mut stream = timed(client.follow(pb::FollowRequest {
                from_serial: self.applied(),
            }))
            .await??
            .into_inner();
            self.following = true;
            loop {
                let message = tokio::select! {
                    () = shutdown.cancelled() => return Ok(SessionEnd::Shutdown),
                    failed = &mut checkins => return Err(failed?),
                    Some(answer) = answers.recv() => {
                        self.checked_in(answer).await?;
                        continue;
                    }
                    m = stream.message() => m?,
                };
                // The stream ends with an OK status only when the master stops serving it (a
                // graceful shutdown); a failure is an error above.
                let Some(message) = message else {
                    return Ok(SessionEnd::MasterClosed);
                };
                let event = message
                    .event
                    .ok_or_else(|| LinkError::Protocol("empty change stream event".into()))?;
                // Any event is the master answering (a batch, a heartbeat, a request).
                self.expiry.heard();
                match event {
                    Event::Batch(b) => self.apply_batch(ChangeBatch::try_from(b)?).await?,
                    Event::Heartbeat(h) => self.metrics.set_head(h.head_serial),
                    Event::SnapshotRequired(r) => {
                        tracing::info!(
                            applied = self.applied(),
                            window_start = r.window_start,
                            head = r.head_serial,
                            reason = %r.reason,
                            "the master asks for a snapshot"
                        );
                        self.take_snapshot(&mut client).await?;
                        break;
                    }
                }
            }
        }
    }

    /// Applies one batch atomically, re-based on the applied serial when it overlaps it.
    pub(super) async fn apply_batch(&mut self, mut batch: ChangeBatch) -> Result<(), LinkError> {
        let zones = Arc::clone(
            self.zones
                .as_ref()
                .expect("a change stream is opened only with a state"),
        );
        let current = zones.serial();
        if batch.upto <= current {
            return Ok(());
        }
        if batch.after > current {
            return Err(LinkError::Protocol(format!(
                "batch {}..{} leaves a gap after the applied serial {current}",
                batch.after, batch.upto
            )));
        }
        batch.after = current;
        self.metrics.raise_head(batch.upto);
        let began = Instant::now();
        let files = self.files.clone();
        // At low priority, so that the UDP workers preempt it ([`background`]).
        background::run("served-apply", move || {
            // On disk before visible, so that a crash never takes queries back in time. A
            // log that cannot be written (disk full) does not hold the change back: serving
            // it matters more (a crash before the next good compaction would lose it).
            if let Err(e) = files.log_batch(&batch) {
                tracing::error!(
                    error = %e,
                    upto = batch.upto,
                    "cannot log the batch; applying it anyway (a crash now would lose it)"
                );
            }
            zones.apply(batch)
        })
        .await??;
        self.metrics.batch_applied(began.elapsed());
        self.dirty.notify_one();
        self.publish(|_| {});
        Ok(())
    }

    /// Fetches the master's snapshot (resuming a broken transfer), which is written into the
    /// state file as it arrives ([`snapshot_transfer`]); then builds a new served version from
    /// its objects and swaps it in whole (or starts serving, if this is the first state).
    ///
    /// The new version is built beside the one queries use, and replaces it in one step: what
    /// the snapshot no longer holds is simply absent from it, so no diff against a model copy
    /// is needed, and a query sees the old state or the new one, never a mix. The state file
    /// is complete (and the batch log restarted at its generation) before the swap: a status
    /// showing a serial reached by a snapshot means the state file holds it.
    async fn take_snapshot(&mut self, client: &mut LinkClient) -> Result<(), LinkError> {
        let started = Instant::now();
        self.in_snapshot = true;
        self.publish(|_| {});
        let fetched = snapshot_transfer::fetch(client, &mut self.progress, &self.files).await;
        if fetched.is_err() {
            self.in_snapshot = false;
        }
        let (serial, objects) = fetched?;
        self.expiry.heard();
        let fetched = started.elapsed();
        let count = objects.len();
        // The directory only when the configuration serves Whois or RDAP (it came at boot,
        // before the snapshot); a later one that does has it built then.
        let options = BuildOptions {
            directory: adopt::serves_rds(self.settings.as_ref()),
        };
        let objects = objects.into();
        let build = move || Served::from_objects(serial, objects, dispose_in_background, options);
        // A version that replaces a served one is built at low priority, beside the queries
        // ([`background`]); the first one is the start's critical path and runs at once.
        let built = if self.zones.is_some() {
            background::run("served-build", build).await?
        } else {
            tokio::task::spawn_blocking(build).await?
        };
        let loaded = started.elapsed();
        match &self.zones {
            Some(z) => z.replace(built),
            None => {
                let zones = Arc::new(ServedStore::new(built));
                self.metrics.set_served(&zones);
                self.zones = Some(zones);
            }
        }
        self.snapshot_required = false;
        self.in_snapshot = false;
        self.ensure_serving()?;
        self.publish(|_| {});
        tracing::info!(
            serial,
            objects = count,
            fetch_and_write_ms = fetched.as_millis() as u64,
            build_ms = (loaded - fetched).as_millis() as u64,
            total_ms = started.elapsed().as_millis() as u64,
            "snapshot applied and saved"
        );
        Ok(())
    }

    /// Starts this session's check-ins on a task of their own ([`CheckIns`]), on a connection
    /// of their own when the master names the session; on the boot's connection when it does
    /// not (an older master) or when that second connection cannot be opened.
    async fn start_check_ins(
        &self,
        client: &LinkClient,
        session: u64,
        dialer: &Dialer,
    ) -> (
        AbortOnDropHandle<LinkError>,
        mpsc::Receiver<pb::CheckInResponse>,
    ) {
        let own = match (session, dialer.current()) {
            (0, _) | (_, None) => None,
            (_, Some(address)) => match dialer.connect_to(address).await {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::warn!(
                        error = %e,
                        "cannot open a connection for check-ins; checking in on the change \
                         stream's (a slow link will delay them)"
                    );
                    None
                }
            },
        };
        let (client, session) = match own {
            Some(c) => (c, session),
            None => (client.clone(), 0),
        };
        let (tx, answers) = mpsc::channel(1);
        let task = CheckIns {
            client,
            session,
            interval: self.checkin_interval,
            report: self.report.subscribe(),
            metrics: Arc::clone(&self.metrics),
            expiry: Arc::clone(&self.expiry),
            started: self.started,
            answers: tx,
        };
        (AbortOnDropHandle::new(tokio::spawn(task.run())), answers)
    }

    /// Takes a check-in's answer: the interval and any new configuration.
    async fn checked_in(&mut self, answer: pb::CheckInResponse) -> Result<(), LinkError> {
        self.checkin_interval =
            Duration::from_millis(u64::from(answer.checkin_interval_ms)).max(MIN_CHECKIN_INTERVAL);
        if let Some(config) = answer.config {
            self.receive(config)?;
        }
        // A directory the new configuration needs (or no longer needs), or one whose build
        // failed before.
        self.match_directory().await;
        // A service that could not start (a Whois port in use, an unreadable certificate) is
        // tried again at every check-in.
        self.ensure_serving()?;
        self.publish(|s| s.checkins += 1);
        Ok(())
    }
}

/// A call with [`CALL_TIMEOUT`].
async fn timed<T>(call: impl Future<Output = T>) -> Result<T, LinkError> {
    tokio::time::timeout(CALL_TIMEOUT, call)
        .await
        .map_err(|_| LinkError::Timeout(CALL_TIMEOUT))
}
