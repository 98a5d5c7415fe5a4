//! The satellite's Prometheus listener: started, moved or stopped as the master's
//! configuration (`SatelliteConfig.metrics`) says, on the link's runtime.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use orrery_proto::metrics::{self, Render};
use tokio_util::sync::CancellationToken;

use super::{SatelliteMetrics, resident_memory};

/// A running metrics listener; stops when dropped.
pub struct MetricsListener {
    addr: SocketAddr,
    cancel: CancellationToken,
}

impl MetricsListener {
    /// Binds `addr` (port 0 picks a free port) and serves `metrics` there. Must be called
    /// inside a tokio runtime.
    pub fn start(addr: SocketAddr, metrics: &Arc<SatelliteMetrics>) -> io::Result<Self> {
        let std = std::net::TcpListener::bind(addr)
            .map_err(|e| io::Error::new(e.kind(), format!("binding metrics {addr}: {e}")))?;
        std.set_nonblocking(true)?;
        let bound = std.local_addr()?;
        let listener = tokio::net::TcpListener::from_std(std)?;
        let cancel = CancellationToken::new();
        let metrics = Arc::clone(metrics);
        let render: Render = Arc::new(move || metrics.render(resident_memory()));
        tokio::spawn(metrics::serve(listener, render, cancel.clone()));
        tracing::info!(addr = %bound, "serving metrics");
        Ok(Self {
            addr: bound,
            cancel,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Makes `current` match `want`: starts, moves (a new address) or stops the listener.
    /// A configured address of port 0 keeps whatever port it was given.
    pub fn ensure(
        current: &mut Option<Self>,
        want: Option<SocketAddr>,
        metrics: &Arc<SatelliteMetrics>,
    ) -> io::Result<()> {
        let same =
            |l: &Self, w: SocketAddr| l.addr == w || (w.port() == 0 && l.addr.ip() == w.ip());
        match (current.as_ref(), want) {
            (Some(l), Some(w)) if same(l, w) => Ok(()),
            (_, None) => {
                *current = None;
                Ok(())
            }
            (_, Some(w)) => {
                *current = None;
                *current = Some(Self::start(w, metrics)?);
                Ok(())
            }
        }
    }
}

impl Drop for MetricsListener {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}
