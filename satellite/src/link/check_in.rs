//! Check-ins on a task of their own, so that change batches and check-ins never wait for each
//! other.
//!
//! The session loop publishes what a check-in reports ([`Report`]) whenever it changes; this
//! task checks in every interval with the latest of it and hands each answer back to the loop,
//! which adopts any new configuration. A master that gives a session token
//! (`BootResponse.session`) is called on a connection of its own: on one TCP connection the
//! check-in's answer would queue behind every change-stream byte already sent (HTTP/2 streams
//! are independent, but the bytes under them are not), so a slow link would delay it by a
//! whole batch's crossing and the master would count missed check-ins instead of serial lag.
//! A separate connection gets its share of the link from TCP instead.

use std::sync::Arc;
use std::time::{Duration, Instant};

use orrery_proto::Serial;
use orrery_proto::link::client::LinkClient;
use orrery_proto::link::convert::MIN_CHECKIN_INTERVAL;
use orrery_proto::link::pb;
use tokio::sync::{mpsc, watch};

use super::LinkError;
use super::collect_statistics::collect_statistics;
use super::log_buffer;
use crate::expiry::Expiry;
use crate::served::ServedStore;
use crate::stats::SatelliteMetrics;

/// Limit for one check-in call. A check-in that times out is logged and the next one goes at
/// the next interval: liveness is the HTTP/2 keepalive's job, which ends the session.
pub(super) const CHECKIN_TIMEOUT: Duration = Duration::from_secs(10);

/// What a check-in reports, as the session loop last published it.
#[derive(Clone, Default)]
pub(super) struct Report {
    /// What queries see (the applied serial and the object count are read from it at each
    /// check-in, so they are never older than the check-in).
    pub zones: Option<Arc<ServedStore>>,
    pub config_version: String,
    pub restart_required: Vec<String>,
    pub config_refused: String,
    pub memory_budget: Option<u64>,
    /// No state yet, and the first snapshot is being received.
    pub first_snapshot: bool,
}

/// How one session checks in.
pub(super) struct CheckIns {
    pub client: LinkClient,
    /// `BootResponse.session`; 0 when `client` is the connection that booted.
    pub session: u64,
    pub interval: Duration,
    pub report: watch::Receiver<Report>,
    pub metrics: Arc<SatelliteMetrics>,
    /// Stamped with each answer: the master is heard from ([`crate::expiry`]).
    pub expiry: Arc<Expiry>,
    pub started: Instant,
    /// The session loop takes the answers from here.
    pub answers: mpsc::Sender<pb::CheckInResponse>,
}

impl CheckIns {
    /// Checks in every interval until a call fails other than by a timeout (the master
    /// refused it, or the connection broke): that error ends the session.
    pub(super) async fn run(mut self) -> LinkError {
        loop {
            tokio::time::sleep(self.interval).await;
            let request = self.request();
            let logs = (request.logs.clone(), request.logs_dropped);
            match tokio::time::timeout(CHECKIN_TIMEOUT, self.client.check_in(request)).await {
                Err(_) => {
                    log_buffer::global().restore(logs.0);
                    tracing::warn!(
                        timeout_ms = CHECKIN_TIMEOUT.as_millis() as u64,
                        "check-in unanswered; checking in again at the next interval"
                    );
                }
                Ok(Err(status)) => {
                    log_buffer::global().restore(logs.0);
                    return status.into();
                }
                Ok(Ok(answer)) => {
                    self.expiry.heard();
                    let answer = answer.into_inner();
                    self.metrics.set_head(answer.head_serial);
                    self.interval = Duration::from_millis(u64::from(answer.checkin_interval_ms))
                        .max(MIN_CHECKIN_INTERVAL);
                    // Full: the loop has not taken the previous answer yet (it is applying a
                    // snapshot). Nothing is lost: a configuration it would have carried comes
                    // again with the next answer, as the reported version still differs.
                    if let Err(mpsc::error::TrySendError::Closed(_)) = self.answers.try_send(answer)
                    {
                        return LinkError::Protocol("session loop gone".into());
                    }
                }
            }
        }
    }

    /// The next check-in, from the latest report and the counters; takes the buffered logs.
    fn request(&self) -> pb::CheckInRequest {
        let report = self.report.borrow().clone();
        let (applied, objects): (Serial, u64) = report.zones.as_ref().map_or((0, 0), |z| {
            let served = z.load();
            (served.serial, served.object_count() as u64)
        });
        self.metrics.set_objects(objects);
        let statistics = collect_statistics(
            &self.metrics.queries.totals(),
            &self.metrics.rds.totals(),
            self.started.elapsed(),
            objects,
        );
        if let Some(budget) = report.memory_budget
            && statistics.memory_bytes > budget
        {
            tracing::warn!(
                memory = statistics.memory_bytes,
                budget,
                "resident memory above the budget the master set"
            );
        }
        let logs = log_buffer::global().take();
        pb::CheckInRequest {
            applied_serial: applied,
            config_version: report.config_version,
            statistics: Some(statistics),
            restart_required: report.restart_required,
            config_refused: report.config_refused,
            logs: logs.entries,
            logs_dropped: logs.dropped,
            session: self.session,
            first_snapshot: report.first_snapshot,
        }
    }
}
