//! DNS sockets bound once, with the [`Server`] on them replaced when the query path changes.
//!
//! A new Selector (or NSID) from the master means a new [`Pipeline`]. The sockets (for UDP one
//! per worker, see [`crate::dns::udp`]) stay bound for the life of the process, so a change never needs the privileges of binding again (port
//! 53) and no query is lost: a server with the new pipeline starts on clones of the same
//! sockets, then the old one is cancelled. For the ~100 ms the old UDP workers take to notice,
//! the kernel hands each datagram to one waiting thread of either server; old TCP connections
//! finish the query they are answering and close (clients reconnect, RFC 7766 §6.2.3). A zone
//! transfer in progress on an old connection runs to its end from the version it started with
//! ([`Server::retire`]): a new `xfr` table must not cut the secondaries' transfers.
//! Changing the addresses or the worker count does need a restart (see [`super`]).
//!
//! ```text
//!   UdpSockets / TcpListener (bound once) ──try_clone──▶ Server v1 (Pipeline: Selector v1)
//!                                        └─try_clone──▶ Server v2 (Pipeline: Selector v2)
//!                                                        then v1 cancelled and joined
//! ```
//!
//! Statistics are cumulative over the process: the counters of a replaced Selector are added
//! to a base once its server has stopped.

use std::collections::BTreeMap;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use crate::dns::pipeline::Pipeline;
use crate::dns::server::{Server, ServerSettings};
use crate::dns::udp::UdpSockets;

/// Counter totals by `(leaf, counter)`.
pub type Counters = BTreeMap<(String, String), u64>;

/// The DNS service of a satellite.
pub struct Serving {
    udp: Vec<UdpSockets>,
    tcp: Vec<TcpListener>,
    settings: ServerSettings,
    current: Option<Running>,
    /// Counters of replaced pipelines.
    base: Arc<Mutex<Counters>>,
    /// The parent of every server's token: [`Serving::stop`] cuts the transfers of retired
    /// servers still finishing too.
    shutdown: CancellationToken,
}

struct Running {
    server: Server,
    cancel: CancellationToken,
    pipeline: Arc<Pipeline>,
}

impl Serving {
    /// Binds every address (port 0 picks a free port; see [`Serving::udp_addrs`]), UDP as
    /// `settings.udp` says.
    pub fn bind(
        udp: &[SocketAddr],
        tcp: &[SocketAddr],
        settings: ServerSettings,
    ) -> io::Result<Self> {
        fn with_addr(addr: &SocketAddr, proto: &str) -> impl FnOnce(io::Error) -> io::Error {
            let what = format!("binding {proto} {addr}");
            move |e| io::Error::new(e.kind(), format!("{what}: {e}"))
        }
        let udp = udp
            .iter()
            .map(|a| {
                UdpSockets::bind(*a, settings.workers, &settings.udp).map_err(with_addr(a, "udp"))
            })
            .collect::<io::Result<Vec<_>>>()?;
        let tcp = tcp
            .iter()
            .map(|a| {
                let l = TcpListener::bind(a).map_err(with_addr(a, "tcp"))?;
                l.set_nonblocking(true)?;
                Ok(l)
            })
            .collect::<io::Result<Vec<_>>>()?;
        Ok(Self {
            udp,
            tcp,
            settings,
            current: None,
            base: Arc::default(),
            shutdown: CancellationToken::new(),
        })
    }

    /// The bound UDP addresses.
    pub fn udp_addrs(&self) -> Vec<SocketAddr> {
        self.udp
            .iter()
            .filter_map(|s| s.local_addr().ok())
            .collect()
    }

    /// The bound TCP addresses.
    pub fn tcp_addrs(&self) -> Vec<SocketAddr> {
        self.tcp
            .iter()
            .filter_map(|s| s.local_addr().ok())
            .collect()
    }

    /// The settings the servers run with.
    pub fn settings(&self) -> &ServerSettings {
        &self.settings
    }

    /// Serves with `pipeline` from now on; the previous server (if any) is stopped in the
    /// background. Must be called inside a tokio runtime.
    pub fn serve(&mut self, pipeline: Arc<Pipeline>) -> io::Result<()> {
        let udp = self
            .udp
            .iter()
            .map(UdpSockets::try_clone)
            .collect::<io::Result<Vec<_>>>()?;
        let tcp = self
            .tcp
            .iter()
            .map(|l| tokio::net::TcpListener::from_std(l.try_clone()?))
            .collect::<io::Result<Vec<_>>>()?;
        let cancel = self.shutdown.child_token();
        let server = Server::start(
            Arc::clone(&pipeline),
            udp,
            tcp,
            &self.settings,
            cancel.clone(),
        )?;
        let old = self.current.replace(Running {
            server,
            cancel,
            pipeline,
        });
        if let Some(old) = old {
            let base = Arc::clone(&self.base);
            tokio::spawn(async move {
                // Retired, not cancelled: transfers in progress finish from the version they
                // started with; everything else stops now.
                old.server.retire();
                old.server.join().await;
                drop(old.cancel);
                let mut base = base.lock().unwrap_or_else(|e| e.into_inner());
                old.pipeline.selector.counters(&mut |leaf, counter, value| {
                    *base
                        .entry((leaf.to_owned(), counter.to_owned()))
                        .or_default() += value;
                });
            });
        }
        Ok(())
    }

    /// The pipeline serving now.
    pub fn pipeline(&self) -> Option<&Arc<Pipeline>> {
        self.current.as_ref().map(|r| &r.pipeline)
    }

    /// Every counter since the process started (replaced pipelines included).
    pub fn counters(&self) -> Counters {
        let mut all = self.base.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(r) = &self.current {
            r.pipeline.selector.counters(&mut |leaf, counter, value| {
                *all.entry((leaf.to_owned(), counter.to_owned()))
                    .or_default() += value;
            });
        }
        all
    }

    /// Stops serving and waits for the server to finish.
    pub async fn stop(&mut self) {
        if let Some(r) = self.current.take() {
            r.cancel.cancel();
            r.server.join().await;
        }
        self.shutdown.cancel();
        self.shutdown = CancellationToken::new();
    }
}

#[cfg(test)]
mod tests {
    use std::net::UdpSocket;
    use std::time::Duration;

    use super::*;
    use crate::dns::leaf::Dns;
    use crate::{Config, Selector, Served, ServedStore, ZoneSet};

    fn pipeline() -> Arc<Pipeline> {
        let config = Config::parse(include_str!("../../../deploy/satellite.example.toml")).unwrap();
        Arc::new(Pipeline::new(
            Selector::<Dns>::build(&config.selector).unwrap(),
            Arc::new(ServedStore::new(Served::dns_only(ZoneSet::build(
                1,
                &[],
                &[],
                &[],
            )))),
            None,
        ))
    }

    /// A replaced pipeline loses no query: the new server reads the same sockets of the
    /// `SO_REUSEPORT` group before the old one stops.
    #[test]
    fn replacing_the_pipeline_loses_no_query() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let settings = ServerSettings {
            workers: 3,
            ..ServerSettings::default()
        };
        let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let mut serving = Serving::bind(&[addr], &[], settings).unwrap();
        let server = serving.udp_addrs()[0];
        assert_eq!(serving.udp.len(), 1, "one group per address");
        runtime
            .block_on(async { serving.serve(pipeline()) })
            .unwrap();
        let clients: Vec<_> = (0..6)
            .map(|c| {
                std::thread::spawn(move || {
                    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
                    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                    let mut buf = [0u8; 512];
                    for i in 0..300u16 {
                        // A header-only query: answered FORMERR, which is enough here.
                        let id = (c << 12 | i).to_be_bytes();
                        let q = [id[0], id[1], 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
                        sock.send_to(&q, server).unwrap();
                        let n = sock
                            .recv(&mut buf)
                            .unwrap_or_else(|e| panic!("client {c} query {i}: {e}"));
                        assert!(n >= 12 && buf[..2] == id, "client {c} query {i}");
                    }
                })
            })
            .collect();
        for _ in 0..5 {
            std::thread::sleep(Duration::from_millis(30));
            runtime
                .block_on(async { serving.serve(pipeline()) })
                .unwrap();
        }
        for c in clients {
            c.join().unwrap();
        }
        runtime.block_on(serving.stop());
    }
}
