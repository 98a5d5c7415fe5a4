//! A deterministic synthetic TLD, bulk-loaded: the data for tests, demos and benchmarks.
//!
//! The same `(zone, domains, seed)` always gives the same data, on every platform (ChaCha8).
//! The shape follows a real TLD: every domain has two nameservers; about 70% point at a shared
//! pool of about 5,000 hosting nameservers outside the zone (under `example.`, RFC 2606), about
//! 30% at in-bailiwick hosts `ns1.<name>` / `ns2.<name>` with A glue (and AAAA for half of them);
//! about 8% have a DS record; a few are on hold. Registrars and contacts are shared between
//! domains. Glue addresses are from the benchmarking range 198.18.0.0/15 and the documentation
//! prefix 2001:db8::/32, so they never reach a real network.
//!
//! Loading is fast: PostgreSQL takes the rows by `COPY`, SQLite by multi-row `INSERT`s, all in
//! one transaction (a failed load leaves nothing behind), chunk by chunk so memory stays flat.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use orrery_proto::{Name, Timestamp};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::write::{Arg, NewZone, NsSpec, Tx, roid};
use crate::{Result, Store, StoreError};

/// What to generate.
#[derive(Clone, Debug)]
pub struct SyntheticTld {
    pub zone: Name,
    pub domains: usize,
    pub seed: u64,
}

/// What a load wrote, and how long it took.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadReport {
    pub domains: usize,
    pub hosts: usize,
    pub addresses: usize,
    pub ds: usize,
    pub contacts: usize,
    pub registrars: usize,
    pub elapsed: Duration,
}

/// Domains generated and written per chunk.
const CHUNK: usize = 20_000;
/// Size of the shared pool of out-of-zone hosting nameservers (two per provider).
const PROVIDERS: usize = 2_500;

const SYLLABLES: &[&str] = &[
    "ba", "be", "bi", "bo", "bu", "da", "de", "di", "do", "ka", "ke", "ki", "ko", "ku", "la", "le",
    "li", "lo", "lu", "ma", "me", "mi", "mo", "na", "ne", "ni", "no", "pa", "pe", "pi", "po", "ra",
    "re", "ri", "ro", "sa", "se", "si", "so", "ta", "te", "ti", "to", "va", "ve", "za", "zo", "xe",
];
const CITIES: &[&str] = &[
    "Paris", "Lyon", "Berlin", "Madrid", "Lisboa", "Praha", "Wien", "Oslo",
];
const COUNTRIES: &[&str] = &["FR", "FR", "DE", "ES", "PT", "CZ", "AT", "NO"];

/// A value in a generated row.
#[derive(Clone, Debug)]
enum Val {
    Int(i64),
    Text(String),
    Bool(bool),
    Null,
}

/// Rows of one table, waiting to be written.
struct Table {
    name: &'static str,
    columns: &'static [&'static str],
    rows: Vec<Vec<Val>>,
}

impl Table {
    fn new(name: &'static str, columns: &'static [&'static str]) -> Self {
        Self {
            name,
            columns,
            rows: Vec::new(),
        }
    }

    fn push(&mut self, row: Vec<Val>) {
        debug_assert_eq!(row.len(), self.columns.len());
        self.rows.push(row);
    }

    /// Writes and empties the table's pending rows.
    async fn flush(&mut self, tx: &mut Tx) -> Result<()> {
        if self.rows.is_empty() {
            return Ok(());
        }
        match tx {
            Tx::Pg(t) => {
                let mut buf = String::with_capacity(self.rows.len() * 64);
                for row in &self.rows {
                    for (i, v) in row.iter().enumerate() {
                        if i > 0 {
                            buf.push('\t');
                        }
                        match v {
                            Val::Int(n) => {
                                let _ = write!(buf, "{n}");
                            }
                            // Generated text never holds tabs, newlines or backslashes except
                            // the street separator, escaped as COPY's text format wants.
                            Val::Text(s) => {
                                buf.push_str(&s.replace('\\', "\\\\").replace('\n', "\\n"))
                            }
                            Val::Bool(b) => buf.push(if *b { 't' } else { 'f' }),
                            Val::Null => buf.push_str("\\N"),
                        }
                    }
                    buf.push('\n');
                }
                let stmt = format!(
                    "COPY {} ({}) FROM STDIN",
                    self.name,
                    self.columns.join(", ")
                );
                let mut copy = t.copy_in_raw(&stmt).await?;
                copy.send(buf.into_bytes()).await?;
                copy.finish().await?;
            }
            Tx::Lite(_) => {
                // SQLite allows 32,766 bound values per statement.
                let per = (30_000 / self.columns.len()).min(500);
                for chunk in self.rows.chunks(per) {
                    let mut sql = format!(
                        "INSERT INTO {} ({}) VALUES ",
                        self.name,
                        self.columns.join(", ")
                    );
                    let mut args = Vec::with_capacity(chunk.len() * self.columns.len());
                    for (r, row) in chunk.iter().enumerate() {
                        sql.push_str(if r == 0 { "(" } else { ", (" });
                        for (i, v) in row.iter().enumerate() {
                            if i > 0 {
                                sql.push_str(", ");
                            }
                            let _ = write!(sql, "${}", args.len() + 1);
                            args.push(match v {
                                Val::Int(n) => Arg::I64(*n),
                                Val::Text(s) => Arg::Text(s.clone()),
                                Val::Bool(b) => Arg::Bool(*b),
                                Val::Null => Arg::OptI64(None),
                            });
                        }
                        sql.push(')');
                    }
                    tx.exec(&sql, &args).await?;
                }
            }
        }
        self.rows.clear();
        Ok(())
    }
}

fn text(s: impl Into<String>) -> Val {
    Val::Text(s.into())
}

/// Seconds of a year, for dates.
const YEAR: i64 = 365 * 86_400;
/// 2000-01-01T00:00:00Z.
const Y2000: i64 = 946_684_800;

/// The label of the `i`-th synthetic domain: letters, then the decimal index, so labels are
/// unique and the split between the two is unambiguous.
fn label(rng: &mut ChaCha8Rng, i: usize) -> String {
    let n = rng.random_range(2..=4);
    let mut s = String::with_capacity(12);
    for _ in 0..n {
        s.push_str(SYLLABLES[rng.random_range(0..SYLLABLES.len())]);
    }
    let _ = write!(s, "{i}");
    s
}

fn glue_v4(c: u64) -> String {
    // 198.18.0.0/15 (RFC 2544 benchmarking), skipping .0 and .255.
    let c = c % (2 * 256 * 254);
    let host = 1 + c % 254;
    let net = c / 254;
    format!("198.{}.{}.{}", 18 + net / 256, net % 256, host)
}

fn glue_v6(c: u64) -> String {
    // 2001:db8::1:X:Y — every counter value gives a valid, non-zero address.
    format!("2001:db8::1:{:x}:{:x}", (c >> 16) & 0xffff, c & 0xffff)
}

async fn next_id(tx: &mut Tx, table: &str) -> Result<i64> {
    Ok(tx
        .opt_i64(&format!("SELECT COALESCE(MAX(id), 0) FROM {table}"), &[])
        .await?
        .unwrap_or(0))
}

impl Store {
    /// Creates the zone `spec.zone` and fills it with `spec.domains` synthetic domains.
    /// The zone must not hold domains yet.
    pub async fn load_synthetic(&self, spec: &SyntheticTld) -> Result<LoadReport> {
        let start = Instant::now();
        let zone = &spec.zone;
        if zone.is_root()
            || zone.to_string() == "example"
            || zone.is_subdomain_of(&Name::from_ascii("example").expect("static name"))
        {
            return Err(StoreError::invalid(
                "zone",
                "the synthetic zone must not be the root or under example. (the hosting pool lives there)",
            ));
        }
        if self.zone(zone).await?.is_none() {
            let ns = |l: &str, a: &[&str]| -> Result<NsSpec> {
                Ok(NsSpec {
                    name: zone
                        .prepend(l)
                        .map_err(|e| StoreError::invalid("zone", e))?,
                    addresses: a
                        .iter()
                        .map(|s| s.parse().expect("static address"))
                        .collect(),
                })
            };
            self.add_zone(&NewZone {
                name: zone.clone(),
                mname: zone
                    .prepend("a.nic")
                    .map_err(|e| StoreError::invalid("zone", e))?,
                rname: zone
                    .prepend("hostmaster.nic")
                    .map_err(|e| StoreError::invalid("zone", e))?,
                refresh: 1800,
                retry: 900,
                expire: 2_419_200,
                minimum: 3600,
                soa_ttl: 3600,
                ns_ttl: 172_800,
                ds_ttl: 86_400,
                // The zone's own servers answer on loopback, so a test cluster is self-contained.
                nameservers: vec![
                    ns("a.nic", &["127.0.0.1", "::1"])?,
                    ns("b.nic", &["127.0.0.2"])?,
                ],
            })
            .await?;
        }

        let mut tx = Tx::begin(self).await?;
        if let Tx::Lite(_) = tx {
            // Random-order inserts into the name indexes thrash SQLite's default 2 MiB page
            // cache; give this connection 256 MiB for the load.
            tx.exec("PRAGMA cache_size = -262144", &[]).await?;
        }
        if let Tx::Pg(_) = tx {
            // Explicit ids below: keep other writers out while we load.
            tx.exec(
                "LOCK TABLE registrar, contact, domain, host IN EXCLUSIVE MODE",
                &[],
            )
            .await?;
        }
        let zone_id = tx
            .opt_i64(
                "SELECT id FROM zone WHERE name = $1",
                &[Arg::Text(zone.to_string())],
            )
            .await?
            .ok_or_else(|| StoreError::NotFound {
                kind: "zone",
                key: zone.to_string(),
            })?;
        let existing = tx
            .opt_i64(
                "SELECT COUNT(*) FROM domain WHERE zone_id = $1",
                &[Arg::I64(zone_id)],
            )
            .await?
            .unwrap_or(0);
        if existing > 0 {
            return Err(StoreError::invalid(
                "zone",
                format!(
                    "{zone} already holds {existing} domains; the synthetic loader fills an empty zone"
                ),
            ));
        }

        let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
        let tag = zone.to_string().replace('.', "-").to_ascii_uppercase();
        // Dates are relative to a fixed day, not the clock: the same seed gives the same data.
        let now = Y2000 + 26 * YEAR;
        let n = spec.domains;
        let registrars = (n / 10_000).clamp(5, 100);
        let contacts = (n / 4).max(10);
        let mut report = LoadReport {
            domains: n,
            registrars,
            contacts,
            ..LoadReport::default()
        };

        let reg_base = next_id(&mut tx, "registrar").await?;
        let contact_base = next_id(&mut tx, "contact").await?;
        let domain_base = next_id(&mut tx, "domain").await?;
        let host_base = next_id(&mut tx, "host").await?;

        let mut t_reg = Table::new(
            "registrar",
            &[
                "id",
                "handle",
                "name",
                "iana_id",
                "url",
                "whois_server",
                "email",
                "phone",
                "abuse_email",
                "abuse_phone",
            ],
        );
        for r in 0..registrars {
            let id = reg_base + 1 + r as i64;
            t_reg.push(vec![
                Val::Int(id),
                text(format!("{tag}-R{r}")),
                text(format!("Registrar {r} of {zone}")),
                Val::Int(1000 + r as i64),
                text(format!("https://registrar{r}.example")),
                text(format!("whois.registrar{r}.example")),
                text(format!("support@registrar{r}.example")),
                text(format!("+33.1000{r:05}")),
                text(format!("abuse@registrar{r}.example")),
                text(format!("+33.1999{r:05}")),
            ]);
        }
        t_reg.flush(&mut tx).await?;

        let mut t_contact = Table::new(
            "contact",
            &[
                "id",
                "handle",
                "name",
                "organisation",
                "street",
                "city",
                "province",
                "postcode",
                "country",
                "email",
                "voice",
                "fax",
                "disclose",
                "registrar_id",
                "created",
                "updated",
            ],
        );
        for c in 0..contacts {
            let id = contact_base + 1 + c as i64;
            let city = rng.random_range(0..CITIES.len());
            let created = Y2000 + rng.random_range(0..26 * YEAR);
            let org = rng.random_bool(0.3);
            t_contact.push(vec![
                Val::Int(id),
                text(format!("{tag}-C{c}")),
                text(format!("Holder {c}")),
                if org {
                    text(format!("Company {c} SA"))
                } else {
                    Val::Null
                },
                text(format!(
                    "{} rue de l'Exemple\nBatiment {}",
                    1 + c % 200,
                    c % 7
                )),
                text(CITIES[city]),
                Val::Null,
                text(format!("{:05}", 10_000 + c % 89_999)),
                text(COUNTRIES[city]),
                text(format!("holder{c}@mail.example")),
                text(format!("+33.6{:08}", c % 100_000_000)),
                Val::Null,
                Val::Bool(rng.random_bool(0.3)),
                Val::Int(reg_base + 1 + (c % registrars) as i64),
                text(Timestamp(created).to_string()),
                text(Timestamp(created).to_string()),
            ]);
            if t_contact.rows.len() >= CHUNK {
                t_contact.flush(&mut tx).await?;
            }
        }
        t_contact.flush(&mut tx).await?;

        // The shared hosting pool: ns1/ns2 of each provider, outside the zone, no glue.
        let mut t_host = Table::new(
            "host",
            &[
                "id",
                "name",
                "zone_id",
                "domain_id",
                "registrar_id",
                "created",
                "updated",
            ],
        );
        let pool_created = text(Timestamp(Y2000).to_string());
        let pool_tag = zone.to_string().replace('.', "-");
        for p in 0..PROVIDERS {
            for k in 1..=2 {
                t_host.push(vec![
                    Val::Int(host_base + 1 + (2 * p + k - 1) as i64),
                    text(format!("ns{k}.provider{p}.{pool_tag}-hosting.example")),
                    Val::Null,
                    Val::Null,
                    Val::Null,
                    pool_created.clone(),
                    pool_created.clone(),
                ]);
            }
        }
        t_host.flush(&mut tx).await?;
        let mut next_host = host_base + 1 + 2 * PROVIDERS as i64;
        report.hosts = 2 * PROVIDERS;

        let mut t_domain = Table::new(
            "domain",
            &[
                "id",
                "name",
                "zone_id",
                "roid",
                "registrar_id",
                "registrant_id",
                "admin_id",
                "tech_id",
                "billing_id",
                "created",
                "updated",
                "expires",
            ],
        );
        let mut t_status = Table::new("domain_status", &["domain_id", "status"]);
        let mut t_addr = Table::new("host_address", &["host_id", "address"]);
        let mut t_ns = Table::new("domain_ns", &["domain_id", "host_id"]);
        let mut t_ds = Table::new(
            "ds",
            &["domain_id", "key_tag", "algorithm", "digest_type", "digest"],
        );
        let mut glue_counter: u64 = 0;

        for i in 0..n {
            let id = domain_base + 1 + i as i64;
            let name = format!("{}.{zone}", label(&mut rng, i));
            let registrar = reg_base + 1 + rng.random_range(0..registrars) as i64;
            let registrant = contact_base + 1 + rng.random_range(0..contacts) as i64;
            let tech = if rng.random_bool(0.7) {
                registrant
            } else {
                contact_base + 1 + rng.random_range(0..contacts) as i64
            };
            let created = Y2000 + rng.random_range(0..26 * YEAR);
            let updated = (created + rng.random_range(0..3 * YEAR)).min(now);
            let expires = created + rng.random_range(1..=10) * YEAR;
            t_domain.push(vec![
                Val::Int(id),
                text(name.clone()),
                Val::Int(zone_id),
                text(roid(id, zone)),
                Val::Int(registrar),
                Val::Int(registrant),
                Val::Int(registrant),
                Val::Int(tech),
                Val::Null,
                text(Timestamp(created).to_string()),
                text(Timestamp(updated).to_string()),
                text(Timestamp(expires).to_string()),
            ]);
            let roll: f64 = rng.random();
            let statuses: &[&str] = if roll < 0.010 {
                &["clientHold"]
            } else if roll < 0.015 {
                &["serverHold"]
            } else if roll < 0.065 {
                &["clientTransferProhibited"]
            } else if roll < 0.070 {
                &[
                    "clientDeleteProhibited",
                    "clientTransferProhibited",
                    "clientUpdateProhibited",
                ]
            } else {
                &["ok"]
            };
            for s in statuses {
                t_status.push(vec![Val::Int(id), text(*s)]);
            }
            if rng.random_bool(0.30) {
                // In-bailiwick: ns1/ns2.<name> with A glue, AAAA for half.
                let v6 = rng.random_bool(0.5);
                for k in 1..=2 {
                    let hid = next_host;
                    next_host += 1;
                    t_host.push(vec![
                        Val::Int(hid),
                        text(format!("ns{k}.{name}")),
                        Val::Int(zone_id),
                        Val::Int(id),
                        Val::Int(registrar),
                        text(Timestamp(created).to_string()),
                        text(Timestamp(created).to_string()),
                    ]);
                    t_addr.push(vec![Val::Int(hid), text(glue_v4(glue_counter))]);
                    if v6 {
                        t_addr.push(vec![Val::Int(hid), text(glue_v6(glue_counter))]);
                    }
                    glue_counter += 1;
                    t_ns.push(vec![Val::Int(id), Val::Int(hid)]);
                }
            } else {
                let p = rng.random_range(0..PROVIDERS) as i64;
                t_ns.push(vec![Val::Int(id), Val::Int(host_base + 1 + 2 * p)]);
                t_ns.push(vec![Val::Int(id), Val::Int(host_base + 2 + 2 * p)]);
            }
            if rng.random_bool(0.08) {
                let digest: String = (0..32)
                    .map(|_| format!("{:02X}", rng.random::<u8>()))
                    .collect();
                t_ds.push(vec![
                    Val::Int(id),
                    Val::Int(rng.random_range(0..=65535)),
                    Val::Int(13),
                    Val::Int(2),
                    text(digest),
                ]);
            }
            if t_domain.rows.len() >= CHUNK || i + 1 == n {
                report.hosts += t_host.rows.len();
                report.addresses += t_addr.rows.len();
                report.ds += t_ds.rows.len();
                // Foreign-key order.
                t_domain.flush(&mut tx).await?;
                t_status.flush(&mut tx).await?;
                t_host.flush(&mut tx).await?;
                t_addr.flush(&mut tx).await?;
                t_ns.flush(&mut tx).await?;
                t_ds.flush(&mut tx).await?;
            }
        }

        if let Tx::Pg(_) = tx {
            for table in ["registrar", "contact", "domain", "host"] {
                tx.exec(
                    &format!("SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT MAX(id) FROM {table}))"),
                    &[],
                )
                .await?;
            }
        }
        tx.commit().await?;
        // Fresh statistics, or the first whole-zone read after a bulk load gets a poor plan.
        let analyze = match self.backend() {
            crate::Backend::Postgres => {
                "ANALYZE registrar, contact, domain, domain_status, host, host_address, domain_ns, ds, journal"
            }
            crate::Backend::Sqlite => "ANALYZE",
        };
        crate::on_pool!(self, p => sqlx::query(analyze).execute(p).await.map(drop)?);
        report.elapsed = start.elapsed();
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_deterministic_and_unique() {
        let mut a = ChaCha8Rng::seed_from_u64(7);
        let mut b = ChaCha8Rng::seed_from_u64(7);
        let la: Vec<_> = (0..1000).map(|i| label(&mut a, i)).collect();
        let lb: Vec<_> = (0..1000).map(|i| label(&mut b, i)).collect();
        assert_eq!(la, lb);
        let set: std::collections::HashSet<_> = la.iter().collect();
        assert_eq!(set.len(), la.len());
        assert!(
            la.iter()
                .all(|l| Name::from_ascii(l).unwrap().check_hostname().is_ok())
        );
    }

    #[test]
    fn glue_stays_in_reserved_ranges() {
        for c in [
            0u64,
            1,
            253,
            254,
            65_000,
            65_535,
            65_536,
            130_000,
            1_000_000,
            u64::MAX,
        ] {
            let v4: std::net::Ipv4Addr = glue_v4(c).parse().unwrap();
            let o = v4.octets();
            assert_eq!(o[0], 198);
            assert!(o[1] == 18 || o[1] == 19, "{v4}");
            assert!(o[3] != 0 && o[3] != 255);
            let v6: std::net::Ipv6Addr = glue_v6(c).parse().unwrap();
            assert_eq!(&v6.segments()[..2], &[0x2001, 0xdb8]);
        }
    }
}

#[cfg(test)]
mod load_tests {
    use super::*;
    use crate::testing::memory_store;
    use crate::{HostSelection, ZoneItem};

    async fn names(store: &Store, zone: &Name) -> (Vec<String>, usize, usize) {
        let (mut names, mut delegated, mut hosts) = (Vec::new(), 0, 0);
        store
            .visit_zone(zone, HostSelection::Published, |item| {
                match item {
                    ZoneItem::Domain(d) => {
                        delegated += usize::from(d.is_delegated());
                        names.push(d.name.to_string());
                    }
                    ZoneItem::Host(_) => hosts += 1,
                    ZoneItem::Zone { .. } | ZoneItem::Dnssec(_) => {}
                }
                Ok::<_, StoreError>(())
            })
            .await
            .unwrap();
        (names, delegated, hosts)
    }

    #[tokio::test]
    async fn loads_a_deterministic_realistic_tld() {
        let zone = Name::from_ascii("test").unwrap();
        let spec = SyntheticTld {
            zone: zone.clone(),
            domains: 2000,
            seed: 42,
        };
        let a = memory_store().await;
        let report = a.load_synthetic(&spec).await.unwrap();
        assert_eq!(report.domains, 2000);
        let (names_a, delegated, published_hosts) = names(&a, &zone).await;
        assert_eq!(names_a.len(), 2000);
        // About 1.5% are on hold.
        assert!((1940..2000).contains(&delegated), "{delegated}");
        // About 30% have two in-bailiwick hosts; the two apex hosts are published too.
        assert!((1000..1400).contains(&published_hosts), "{published_hosts}");
        // About 8% have DS.
        assert!((100..230).contains(&report.ds), "{}", report.ds);

        let b = memory_store().await;
        b.load_synthetic(&spec).await.unwrap();
        assert_eq!(names(&b, &zone).await.0, names_a, "same seed, same TLD");
        // A second load into the same zone is refused and writes nothing.
        let head = b.head().await.unwrap();
        assert!(matches!(
            b.load_synthetic(&spec).await,
            Err(StoreError::Invalid { field: "zone", .. })
        ));
        assert_eq!(b.head().await.unwrap(), head);
    }
}
