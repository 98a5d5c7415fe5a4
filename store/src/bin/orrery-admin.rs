//! `orrery-admin`: writes the registry store as a registration system would, and inspects it.
//!
//! Every command validates all of its input before writing and writes in one transaction, so a
//! refused command changes nothing. Errors name the field at fault and exit with status 2.
//!
//! The store is always named (`--db` or `ORRERY_DB`), and only `init` and `load-synthetic`
//! create a SQLite file that is not there: a mistyped path or a command run from the wrong
//! directory is refused instead of writing to (or reading) a new, empty store.
//!
//! The read commands print `field: value` lines for a person, or JSON with `--json` (see
//! [`show`]).

use std::net::IpAddr;
use std::path::Path;
use std::process::ExitCode;
use std::str::FromStr;

use clap::{Args, Parser, Subcommand};
use orrery_proto::{Contact, Ds, EppStatus, Name, Registrar, Timestamp};
use orrery_store::read::parse_ds;
use orrery_store::synthetic::SyntheticTld;
use orrery_store::write::{DomainUpdate, NewDomain, NewZone, NsSpec};
use orrery_store::{ChangesSince, RegistryItem, Store, StoreError};
use serde_json::json;

#[path = "orrery-admin/show.rs"]
mod show;

#[derive(Parser)]
#[command(
    name = "orrery-admin",
    version,
    about = "Administer an Orrery registry store"
)]
struct Cli {
    /// Store URL, `sqlite:PATH` or `postgres://…` (required: there is no default store).
    /// Only `init` and `load-synthetic` create a SQLite file that does not exist; every other
    /// command refuses it.
    #[arg(long, env = "ORRERY_DB")]
    db: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the store (a SQLite file that does not exist yet) or bring its schema up to date
    /// (every command also does).
    Init,
    /// Zones.
    #[command(subcommand)]
    Zone(ZoneCmd),
    /// Registrars.
    #[command(subcommand)]
    Registrar(RegistrarCmd),
    /// Contacts.
    #[command(subcommand)]
    Contact(ContactCmd),
    /// Domains.
    #[command(subcommand)]
    Domain(DomainCmd),
    /// Set the glue addresses of a host inside a zone of the registry.
    Glue {
        host: String,
        /// The addresses (none removes the glue).
        addresses: Vec<String>,
    },
    /// Create a zone filled with a deterministic synthetic TLD (creates the store if needed).
    LoadSynthetic {
        #[arg(long, default_value = "test")]
        zone: String,
        #[arg(long, default_value_t = 1000)]
        domains: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Print journal rows after a serial.
    Journal {
        #[arg(long, default_value_t = 0)]
        after: i64,
        #[arg(long, default_value_t = 50)]
        limit: i64,
        #[command(flatten)]
        output: Output,
    },
    /// Print the changes after a serial as whole objects.
    Changes {
        #[arg(long, default_value_t = 0)]
        after: i64,
        #[arg(long, default_value_t = 10_000)]
        max: usize,
        #[command(flatten)]
        output: Output,
    },
    /// DNSSEC: a zone's signing policy and keys.
    #[command(subcommand)]
    Dnssec(DnssecCmd),
    /// List the rows the cluster quarantines: rows of any table that cannot become a registry
    /// object (read with the conversions the master uses). Exits 1 when there are any.
    BadRows {
        #[command(flatten)]
        output: Output,
    },
}

/// How a read command prints.
#[derive(Args)]
struct Output {
    /// JSON for scripts, with stable field names: one document for `domain show` and
    /// `changes`, one object per line (JSON Lines) for the lists (`zone list`, `journal`,
    /// `bad-rows`). Without it: `field: value` lines, records separated by blank lines.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum ZoneCmd {
    /// Add a zone.
    Add {
        name: String,
        /// SOA MNAME (primary master).
        #[arg(long)]
        mname: String,
        /// SOA RNAME (responsible mailbox, as a name).
        #[arg(long)]
        rname: String,
        /// Apex nameserver, `NAME` or `NAME=ADDR[,ADDR…]` for hosts inside the zone. Repeat.
        #[arg(long = "ns", required = true)]
        ns: Vec<String>,
        #[arg(long, default_value_t = 1800)]
        refresh: u32,
        #[arg(long, default_value_t = 900)]
        retry: u32,
        #[arg(long, default_value_t = 2_419_200)]
        expire: u32,
        /// Negative-caching TTL (RFC 2308).
        #[arg(long, default_value_t = 3600)]
        minimum: u32,
        #[arg(long, default_value_t = 3600)]
        soa_ttl: u32,
        #[arg(long, default_value_t = 172_800)]
        ns_ttl: u32,
        #[arg(long, default_value_t = 86_400)]
        ds_ttl: u32,
    },
    /// List zones with their serials and SOA fields.
    List {
        #[command(flatten)]
        output: Output,
    },
}

#[derive(Subcommand)]
enum DnssecCmd {
    /// Set a zone's signing policy (the signature window starts at the current refresh period).
    Policy {
        zone: String,
        /// `nsec3-optout` (a TLD's default), `nsec` (small zones) or `unsigned`.
        #[arg(long, default_value = "nsec3-optout")]
        denial: String,
        /// 13 (ECDSA P-256 SHA-256) or 15 (Ed25519).
        #[arg(long, default_value_t = 13)]
        algorithm: u8,
        /// Signature validity, seconds.
        #[arg(long, default_value_t = orrery_proto::dnssec::DnssecPolicy::DEFAULT_VALIDITY)]
        validity: u32,
        /// Signature refresh period, seconds (shorter than the validity).
        #[arg(long, default_value_t = orrery_proto::dnssec::DnssecPolicy::DEFAULT_REFRESH)]
        refresh: u32,
        #[arg(long, default_value_t = orrery_proto::dnssec::DnssecPolicy::DEFAULT_DNSKEY_TTL)]
        dnskey_ttl: u32,
        /// ZSK lifetime, seconds: the signing duty rolls the ZSK this often (0: only by hand).
        #[arg(long, default_value_t = orrery_proto::dnssec::KeyTimings::DEFAULT_ZSK_LIFETIME)]
        zsk_lifetime: u32,
        /// KSK lifetime, seconds: the duty starts a KSK rollover this often, which still waits
        /// for `dnssec ds-seen` (0, the default: only by hand).
        #[arg(long, default_value_t = 0)]
        ksk_lifetime: u32,
        /// Propagation delay, seconds: from a commit to every satellite serving it.
        #[arg(long, default_value_t = orrery_proto::dnssec::KeyTimings::DEFAULT_PROPAGATION)]
        propagation: u32,
        /// The TTL of the zone's DS at the parent, seconds.
        #[arg(long, default_value_t = orrery_proto::dnssec::KeyTimings::DEFAULT_PARENT_DS_TTL)]
        parent_ds_ttl: u32,
    },
    /// Create a key: the private key goes to the key directory (PKCS#8, mode 0600), the public
    /// key and its state to the store.
    AddKey {
        zone: String,
        /// `csk`, `ksk` or `zsk`.
        #[arg(long, default_value = "csk")]
        role: String,
        /// The signing host's key directory.
        #[arg(long, env = "ORRERY_KEY_DIR")]
        key_dir: std::path::PathBuf,
        /// `active` (signs at once) or `published` (pre-published, signs nothing yet).
        #[arg(long, default_value = "active")]
        state: String,
        /// Algorithm; default: the zone's policy's.
        #[arg(long)]
        algorithm: Option<u8>,
    },
    /// List a zone's keys.
    Keys {
        zone: String,
        #[command(flatten)]
        output: Output,
    },
    /// Show the DS records (SHA-256) to send to the parent, one per KSK/CSK in the zone.
    Ds {
        zone: String,
        #[command(flatten)]
        output: Output,
    },
    /// Start the next signature window if its refresh period has begun (run daily; a no-op
    /// otherwise).
    Refresh { zone: String },
    /// Move a key to a state (a rollover step, deploy/runbooks/dnssec.md): `active` signs,
    /// `retired` stays in the DNSKEY RRset signing nothing, `revoked` (RFC 5011).
    KeyState {
        zone: String,
        /// The key's tag, or its locator when two keys share a tag.
        #[arg(long)]
        key: String,
        /// `published`, `active`, `retired` or `revoked`.
        #[arg(long)]
        state: String,
    },
    /// Remove a retired key from the zone (the end of a rollover).
    RemoveKey {
        zone: String,
        /// The key's tag, or its locator.
        #[arg(long)]
        key: String,
    },
    /// Start a rollover now: a successor key is generated here and published; the masters'
    /// signing duty activates it once every master can load it and caches have its DNSKEY,
    /// then (ZSK) retires and removes the old one, or (KSK) waits for `ds-seen`.
    #[command(group(clap::ArgGroup::new("role").required(true).args(["zsk", "ksk"])))]
    Rollover {
        zone: String,
        /// Roll the zone-signing key (pre-publication).
        #[arg(long)]
        zsk: bool,
        /// Roll the key-signing key (double-DS: send the new DS to the parent, then `ds-seen`).
        #[arg(long)]
        ksk: bool,
        /// This signing host's key directory; copy the new file to every other master's.
        #[arg(long, env = "ORRERY_KEY_DIR")]
        key_dir: std::path::PathBuf,
    },
    /// Record that the parent now publishes the DS of a new KSK: the signing duty retires the
    /// older KSKs once the parent's DS TTL has passed, and removes them after the DNSKEY TTL.
    DsSeen {
        zone: String,
        /// The new KSK's tag, or its locator.
        #[arg(long)]
        key: String,
    },
}

#[derive(Subcommand)]
enum RegistrarCmd {
    /// Add a registrar.
    Add {
        handle: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        iana_id: Option<u32>,
        #[arg(long)]
        url: Option<String>,
        #[arg(long)]
        whois_server: Option<String>,
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        phone: Option<String>,
        #[arg(long)]
        abuse_email: Option<String>,
        #[arg(long)]
        abuse_phone: Option<String>,
    },
}

#[derive(Subcommand)]
enum ContactCmd {
    /// Add a contact.
    Add {
        handle: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        org: Option<String>,
        /// Street line (repeat, at most 3).
        #[arg(long)]
        street: Vec<String>,
        #[arg(long)]
        city: String,
        #[arg(long)]
        province: Option<String>,
        #[arg(long)]
        postcode: Option<String>,
        /// ISO 3166-1 alpha-2 country code.
        #[arg(long)]
        country: String,
        #[arg(long)]
        email: String,
        #[arg(long)]
        voice: Option<String>,
        #[arg(long)]
        fax: Option<String>,
        /// Publish this contact's data in Whois/RDAP (default: redacted).
        #[arg(long)]
        disclose: bool,
        /// Sponsoring registrar.
        #[arg(long)]
        registrar: Option<String>,
    },
}

#[derive(Args)]
struct NsArgs {
    /// Nameserver, `NAME` or `NAME=ADDR[,ADDR…]` (glue, for hosts inside a zone). Repeat.
    #[arg(long = "ns")]
    ns: Vec<String>,
}

#[derive(Subcommand)]
enum DomainCmd {
    /// Create a domain.
    Add {
        name: String,
        #[arg(long)]
        registrar: String,
        #[arg(long)]
        registrant: Option<String>,
        #[arg(long)]
        admin: Option<String>,
        #[arg(long)]
        tech: Option<String>,
        #[arg(long)]
        billing: Option<String>,
        /// Registration period in years.
        #[arg(long, default_value_t = 1, conflicts_with = "expires")]
        years: u32,
        /// Expiry date (RFC 3339 or YYYY-MM-DD).
        #[arg(long)]
        expires: Option<String>,
        /// EPP status (repeat); default `ok`.
        #[arg(long)]
        status: Vec<String>,
        #[command(flatten)]
        ns: NsArgs,
        /// DS record `KEYTAG ALGORITHM DIGESTTYPE HEX` (repeat).
        #[arg(long)]
        ds: Vec<String>,
    },
    /// Change a domain's registrar, contacts, expiry or statuses.
    Update {
        name: String,
        #[arg(long)]
        registrar: Option<String>,
        #[arg(long)]
        registrant: Option<String>,
        #[arg(long)]
        admin: Option<String>,
        #[arg(long)]
        tech: Option<String>,
        #[arg(long)]
        billing: Option<String>,
        #[arg(long)]
        expires: Option<String>,
        /// EPP status to add (repeat).
        #[arg(long)]
        add_status: Vec<String>,
        /// EPP status to remove (repeat).
        #[arg(long)]
        remove_status: Vec<String>,
    },
    /// Replace a domain's nameservers.
    Ns {
        name: String,
        #[command(flatten)]
        ns: NsArgs,
    },
    /// Replace a domain's DS records (none removes them).
    Ds {
        name: String,
        /// DS record `KEYTAG ALGORITHM DIGESTTYPE HEX` (repeat).
        #[arg(long)]
        ds: Vec<String>,
    },
    /// Delete a domain.
    Delete { name: String },
    /// Show a domain.
    Show {
        name: String,
        #[command(flatten)]
        output: Output,
    },
}

/// A refused command: the field and why.
#[derive(Debug)]
struct Refused(String);

impl From<StoreError> for Refused {
    fn from(e: StoreError) -> Self {
        Self(e.to_string())
    }
}

fn invalid(field: &str, e: impl std::fmt::Display) -> Refused {
    Refused(format!("invalid {field}: {e}"))
}

fn name(field: &str, text: &str) -> Result<Name, Refused> {
    Name::from_user(text).map_err(|e| invalid(field, format!("{text:?}: {e}")))
}

fn ns_specs(list: &[String]) -> Result<Vec<NsSpec>, Refused> {
    list.iter()
        .map(|item| {
            let (n, addrs) = match item.split_once('=') {
                Some((n, a)) => (n, a),
                None => (item.as_str(), ""),
            };
            let addresses = addrs
                .split(',')
                .filter(|a| !a.is_empty())
                .map(|a| {
                    a.trim()
                        .parse::<IpAddr>()
                        .map_err(|_| invalid("ns", format!("{a:?} is not an IP address")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(NsSpec {
                name: name("ns", n)?,
                addresses,
            })
        })
        .collect()
}

fn statuses(field: &str, list: &[String]) -> Result<Vec<EppStatus>, Refused> {
    list.iter()
        .map(|s| {
            EppStatus::parse(s).ok_or_else(|| invalid(field, format!("{s:?} is not an EPP status")))
        })
        .collect()
}

fn ds_list(list: &[String]) -> Result<Vec<Ds>, Refused> {
    list.iter()
        .map(|s| parse_ds(s).map_err(|e| invalid("ds", e)))
        .collect()
}

fn time(field: &str, text: &str) -> Result<Timestamp, Refused> {
    Timestamp::parse(text).map_err(|e| invalid(field, e))
}

/// Refuses a SQLite store file that does not exist, unless `command` creates stores.
fn check_store_exists(url: &str, command: &Command) -> Result<(), Refused> {
    if !url.starts_with("sqlite:")
        || url.contains(":memory:")
        || matches!(command, Command::Init | Command::LoadSynthetic { .. })
    {
        return Ok(());
    }
    let Ok(options) = sqlx::sqlite::SqliteConnectOptions::from_str(url) else {
        // Store::open words the problem.
        return Ok(());
    };
    let path: &Path = options.get_filename();
    if path.exists() {
        Ok(())
    } else {
        Err(Refused(format!(
            "no store at {} (from --db or ORRERY_DB {url:?}): check the path, or create it with \
             `orrery-admin --db {url} init` (or load-synthetic)",
            path.display()
        )))
    }
}

/// Writes to stdout. A reader that has gone (`orrery-admin journal | head`) ends the command
/// quietly, as it ends other Unix tools, instead of the panic `println!` makes of it.
fn write_out(text: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(text).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("orrery-admin: cannot write the output: {e}");
        std::process::exit(1);
    }
}

/// `print!` through [`write_out`].
macro_rules! emit {
    ($($arg:tt)*) => { write_out(format_args!($($arg)*)) };
}

/// `println!` through [`write_out`].
macro_rules! say {
    ($($arg:tt)*) => { write_out(format_args!("{}\n", format_args!($($arg)*))) };
}

/// Prints one JSON document (or one line of JSON Lines).
fn print_json(value: &serde_json::Value) {
    say!("{value}");
}

#[tokio::main]
async fn main() -> ExitCode {
    // Only errors by default: a command's own output is its answer.
    orrery_proto::logging::init("error");
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        Err(Refused(msg)) => {
            eprintln!("orrery-admin: {msg}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode, Refused> {
    check_store_exists(&cli.db, &cli.command)?;
    let store = Store::open(&cli.db).await?;
    let mut code = ExitCode::SUCCESS;
    match cli.command {
        Command::Init => say!("store ready ({:?})", store.backend()),
        Command::Zone(ZoneCmd::Add {
            name: n,
            mname,
            rname,
            ns,
            refresh,
            retry,
            expire,
            minimum,
            soa_ttl,
            ns_ttl,
            ds_ttl,
        }) => {
            let zone = NewZone {
                name: name("zone", &n)?,
                mname: name("mname", &mname)?,
                rname: name("rname", &rname)?,
                refresh,
                retry,
                expire,
                minimum,
                soa_ttl,
                ns_ttl,
                ds_ttl,
                nameservers: ns_specs(&ns)?,
            };
            store.add_zone(&zone).await?;
            say!("zone {} added", zone.name);
        }
        Command::Zone(ZoneCmd::List { output }) => {
            let mut records = Vec::new();
            for z in store.zones().await? {
                let serial = store.zone_serial(&z.name).await?.unwrap_or(0);
                records.push(show::zone(&z, serial));
            }
            print_list(&records, &output);
        }
        Command::Registrar(RegistrarCmd::Add {
            handle,
            name,
            iana_id,
            url,
            whois_server,
            email,
            phone,
            abuse_email,
            abuse_phone,
        }) => {
            store
                .add_registrar(&Registrar {
                    handle: handle.clone(),
                    name,
                    iana_id,
                    url,
                    whois_server,
                    email,
                    phone,
                    abuse_email,
                    abuse_phone,
                })
                .await?;
            say!("registrar {handle} added");
        }
        Command::Contact(ContactCmd::Add {
            handle,
            name,
            org,
            street,
            city,
            province,
            postcode,
            country,
            email,
            voice,
            fax,
            disclose,
            registrar,
        }) => {
            let now = Timestamp::now();
            let c = Contact {
                handle: handle.clone(),
                name,
                organisation: org,
                street,
                city,
                province,
                postcode,
                country,
                email,
                voice,
                fax,
                disclose,
                created: now,
                updated: now,
            };
            store.add_contact(&c, registrar.as_deref()).await?;
            say!("contact {handle} added");
        }
        Command::Domain(cmd) => domain(&store, cmd).await?,
        Command::Dnssec(cmd) => dnssec(&store, cmd).await?,
        Command::Glue { host, addresses } => {
            let host = name("host", &host)?;
            let addrs = addresses
                .iter()
                .map(|a| {
                    a.parse::<IpAddr>()
                        .map_err(|_| invalid("address", format!("{a:?} is not an IP address")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            store.set_host_addresses(&host, &addrs).await?;
            say!("glue of {host} set");
        }
        Command::LoadSynthetic {
            zone,
            domains,
            seed,
        } => {
            let spec = SyntheticTld {
                zone: name("zone", &zone)?,
                domains,
                seed,
            };
            let r = store.load_synthetic(&spec).await?;
            say!(
                "loaded {} domains, {} hosts, {} glue addresses, {} DS, {} contacts, {} registrars into {} in {:.2} s",
                r.domains,
                r.hosts,
                r.addresses,
                r.ds,
                r.contacts,
                r.registrars,
                spec.zone.to_fqdn(),
                r.elapsed.as_secs_f64()
            );
        }
        Command::Journal {
            after,
            limit,
            output,
        } => {
            let entries = store.journal_since(after, limit).await?;
            if output.json {
                for e in &entries {
                    print_json(&show::journal_entry(e).to_json());
                }
            } else {
                // A log: one line per row, `SERIAL OP OBJECT KEY`, tab-separated.
                for e in &entries {
                    say!(
                        "{}\t{}\t{}\t{}",
                        e.serial,
                        e.op,
                        e.object,
                        show::one_line(&e.key)
                    );
                }
            }
        }
        Command::Changes { after, max, output } => match store.changes_since(after, max).await? {
            ChangesSince::Batch(b) => {
                let changes: Vec<_> = b.batch.changes.iter().map(show::change).collect();
                let quarantined: Vec<_> = b.bad_rows.iter().map(show::bad_row).collect();
                if output.json {
                    print_json(&json!({
                        "after": b.batch.after,
                        "upto": b.batch.upto,
                        "too_far_behind": false,
                        "changes": changes.iter().map(show::Record::to_json).collect::<Vec<_>>(),
                        "quarantined": quarantined.iter().map(show::Record::to_json).collect::<Vec<_>>(),
                    }));
                } else {
                    say!(
                        "after: {}\nupto: {}\nchanges: {}\nquarantined: {}",
                        b.batch.after,
                        b.batch.upto,
                        changes.len(),
                        quarantined.len()
                    );
                    for r in changes.iter().chain(&quarantined) {
                        emit!("\n{}", r.to_text());
                    }
                }
            }
            ChangesSince::TooFarBehind { pending } => {
                if output.json {
                    print_json(&json!({
                        "after": after,
                        "too_far_behind": true,
                        "max": max,
                        "pending": pending,
                    }));
                } else {
                    say!("more than {max} changes pending ({pending}+): take a snapshot")
                }
            }
        },
        Command::BadRows { output } => {
            let mut bad = Vec::new();
            let serial = store
                .visit_registry(|item| {
                    if let RegistryItem::BadRow(b) = item {
                        bad.push(b);
                    }
                    Ok::<_, StoreError>(())
                })
                .await?;
            for b in &bad {
                if output.json {
                    print_json(&show::bad_row(b).to_json());
                } else {
                    // A list to scan: one line per row, the key quoted (a bad key may hold
                    // anything).
                    say!("{}\t{}\t{:?}\t{}", b.table, b.object, b.key, b.reason);
                }
            }
            if !output.json {
                eprintln!("{} bad rows at serial {serial}", bad.len());
            }
            if !bad.is_empty() {
                code = ExitCode::from(1);
            }
        }
    }
    store.close().await;
    Ok(code)
}

/// A list of records: blank-line separated text, or JSON Lines.
fn print_list(records: &[show::Record], output: &Output) {
    if output.json {
        for r in records {
            print_json(&r.to_json());
        }
    } else {
        emit!("{}", show::text_of(records));
    }
}

/// The zone's key named by its tag or locator (a tag two keys share is refused as ambiguous).
async fn find_key(
    store: &Store,
    apex: &Name,
    key: &str,
) -> Result<orrery_proto::dnssec::ZoneKey, Refused> {
    let keys = store
        .dnssec(apex)
        .await?
        .map(|d| d.keys)
        .unwrap_or_default();
    let found: Vec<_> = keys
        .into_iter()
        .filter(|k| k.locator == key || key.parse::<u16>().is_ok_and(|t| t == k.key_tag))
        .collect();
    match found.len() {
        1 => Ok(found.into_iter().next().expect("one")),
        0 => Err(Refused(format!(
            "zone {apex} has no key {key:?} (see `dnssec keys`)"
        ))),
        _ => Err(Refused(format!(
            "key tag {key} names {} keys of zone {apex}: give the locator",
            found.len()
        ))),
    }
}

async fn dnssec(store: &Store, cmd: DnssecCmd) -> Result<(), Refused> {
    use orrery_proto::dnssec::{Algorithm, Denial, DnssecPolicy, KeyRole, KeyState, KeyTimings};
    use orrery_signer::key::dnskey_rdata;
    use orrery_signer::{FileKeyStore, new_zone_key};
    let algorithm = |n: u8| {
        Algorithm::from_number(n).ok_or_else(|| invalid("algorithm", format!("{n}: use 13 or 15")))
    };
    match cmd {
        DnssecCmd::Policy {
            zone,
            denial,
            algorithm: alg,
            validity,
            refresh,
            dnskey_ttl,
            zsk_lifetime,
            ksk_lifetime,
            propagation,
            parent_ds_ttl,
        } => {
            let apex = name("zone", &zone)?;
            let lifetime = |s: u32| (s > 0).then_some(s);
            let policy = DnssecPolicy {
                denial: Denial::parse(&denial).ok_or_else(|| {
                    invalid(
                        "denial",
                        format!("{denial:?}: use nsec3-optout, nsec or unsigned"),
                    )
                })?,
                algorithm: algorithm(alg)?,
                validity,
                refresh,
                dnskey_ttl,
                inception: DnssecPolicy::window_for(refresh, Timestamp::now()),
                timings: KeyTimings {
                    zsk_lifetime: lifetime(zsk_lifetime),
                    ksk_lifetime: lifetime(ksk_lifetime),
                    propagation,
                    parent_ds_ttl,
                },
            };
            policy.check().map_err(|e| invalid("dnssec policy", e))?;
            store.set_dnssec_policy(&apex, &policy).await?;
            say!(
                "zone {apex}: {} with algorithm {}, signatures from {}",
                policy.denial,
                policy.algorithm.number(),
                policy.inception
            );
        }
        DnssecCmd::AddKey {
            zone,
            role,
            key_dir,
            state,
            algorithm: alg,
        } => {
            let apex = name("zone", &zone)?;
            let role = KeyRole::parse(&role)
                .ok_or_else(|| invalid("role", format!("{role:?}: use csk, ksk or zsk")))?;
            let Some(state @ (KeyState::Active | KeyState::Published)) = KeyState::parse(&state)
            else {
                return Err(invalid(
                    "state",
                    format!("{state:?}: use active or published"),
                ));
            };
            let policy = store
                .dnssec(&apex)
                .await?
                .ok_or_else(|| {
                    Refused(format!(
                        "zone {apex} has no DNSSEC policy: set one with `dnssec policy`"
                    ))
                })?
                .policy;
            let alg = match alg {
                Some(n) => algorithm(n)?,
                None => policy.algorithm,
            };
            let keys = FileKeyStore::open(&key_dir).map_err(|e| Refused(e.to_string()))?;
            let key = new_zone_key(&keys, &apex, role, alg, state, Timestamp::now())
                .map_err(|e| Refused(e.to_string()))?;
            store.add_zone_key(&apex, &key).await?;
            say!(
                "zone {apex}: {} key {} (algorithm {}) {}, private key {}",
                role.as_str(),
                key.key_tag,
                alg.number(),
                state.as_str(),
                key_dir.join(&key.locator).display()
            );
        }
        DnssecCmd::Keys { zone, output } => {
            let apex = name("zone", &zone)?;
            let keys = store
                .dnssec(&apex)
                .await?
                .map(|d| d.keys)
                .unwrap_or_default();
            let mut loadable_on: std::collections::HashMap<String, Vec<String>> =
                std::collections::HashMap::new();
            for (master, locator) in store.loadable_keys().await? {
                loadable_on.entry(locator).or_default().push(master);
            }
            let records: Vec<_> = keys
                .iter()
                .map(|k| {
                    show::zone_key(
                        &apex,
                        k,
                        loadable_on.get(&k.locator).map_or(&[][..], Vec::as_slice),
                    )
                })
                .collect();
            print_list(&records, &output);
        }
        DnssecCmd::Ds { zone, output } => {
            let apex = name("zone", &zone)?;
            let keys = store
                .dnssec(&apex)
                .await?
                .map(|d| d.keys)
                .unwrap_or_default();
            let records: Vec<_> = keys
                .iter()
                .filter(|k| k.role.is_sep() && k.state != KeyState::Revoked)
                .map(|k| {
                    let ds = orrery_signer::ds_for(
                        &apex,
                        &dnskey_rdata(k.flags(), k.algorithm, &k.public_key),
                    );
                    show::parent_ds(&apex, &ds, k)
                })
                .collect();
            print_list(&records, &output);
        }
        DnssecCmd::KeyState { zone, key, state } => {
            let apex = name("zone", &zone)?;
            let state = KeyState::parse(&state).ok_or_else(|| {
                Refused(format!(
                    "--state {state:?}: published, active, retired or revoked"
                ))
            })?;
            let mut k = find_key(store, &apex, &key).await?;
            k.state = state;
            let tag = orrery_signer::key_tag(&dnskey_rdata(k.flags(), k.algorithm, &k.public_key));
            store
                .set_key_state(&apex, &k.locator, state, tag, Timestamp::now())
                .await?;
            say!(
                "zone {apex}: key {} ({}) is {}",
                tag,
                k.locator,
                state.as_str()
            );
        }
        DnssecCmd::RemoveKey { zone, key } => {
            let apex = name("zone", &zone)?;
            let k = find_key(store, &apex, &key).await?;
            if matches!(k.state, KeyState::Active) {
                return Err(Refused(format!(
                    "key {} is active: retire it first (and wait for its signatures to expire from caches)",
                    k.key_tag
                )));
            }
            store.remove_zone_key(&apex, &k.locator).await?;
            say!("zone {apex}: key {} ({}) removed", k.key_tag, k.locator);
        }
        DnssecCmd::Rollover {
            zone,
            zsk,
            ksk: _,
            key_dir,
        } => {
            let apex = name("zone", &zone)?;
            let role = if zsk { KeyRole::Zsk } else { KeyRole::Ksk };
            let d = store.dnssec(&apex).await?.ok_or_else(|| {
                Refused(format!(
                    "zone {apex} has no DNSSEC policy: set one with `dnssec policy`"
                ))
            })?;
            if !d
                .keys
                .iter()
                .any(|k| k.role == role && k.state == KeyState::Active)
            {
                return Err(Refused(format!(
                    "zone {apex} has no active {}: nothing to roll (a CSK zone is rolled by hand)",
                    role.as_str()
                )));
            }
            if let Some(k) = d
                .keys
                .iter()
                .find(|k| k.role == role && k.state == KeyState::Published)
            {
                return Err(Refused(format!(
                    "a {} rollover is already under way: key {} is published (see `dnssec keys`)",
                    role.as_str(),
                    k.key_tag
                )));
            }
            let keys = FileKeyStore::open(&key_dir).map_err(|e| Refused(e.to_string()))?;
            let key = new_zone_key(
                &keys,
                &apex,
                role,
                d.policy.algorithm,
                KeyState::Published,
                Timestamp::now(),
            )
            .map_err(|e| Refused(e.to_string()))?;
            store.add_zone_key(&apex, &key).await?;
            let ipub = d.policy.timings.publish_interval(d.policy.dnskey_ttl);
            say!(
                "zone {apex}: {} key {} published, private key {}; copy it to every other master's key directory: it signs no sooner than {ipub} s from now, once every master can load it{}",
                role.as_str(),
                key.key_tag,
                key_dir.join(&key.locator).display(),
                if role == KeyRole::Ksk {
                    "; then send its DS (`dnssec ds`) to the parent and run `dnssec ds-seen` when the parent publishes it"
                } else {
                    ""
                }
            );
        }
        DnssecCmd::DsSeen { zone, key } => {
            let apex = name("zone", &zone)?;
            let k = find_key(store, &apex, &key).await?;
            if !k.role.is_sep() {
                return Err(Refused(format!(
                    "key {} is a {}: only a KSK's or CSK's DS is at the parent",
                    k.key_tag,
                    k.role.as_str()
                )));
            }
            if k.state != KeyState::Active {
                return Err(Refused(format!(
                    "key {} is {}: its DS goes to the parent once it is active (see `dnssec keys`)",
                    k.key_tag,
                    k.state.as_str()
                )));
            }
            store
                .set_ds_seen(&apex, &k.locator, Timestamp::now())
                .await?;
            let d = store.dnssec(&apex).await?;
            let ds_ttl = d.map_or(0, |d| d.policy.timings.parent_ds_ttl);
            say!(
                "zone {apex}: the parent publishes the DS of key {}; the older KSKs retire in {ds_ttl} s plus the propagation delay",
                k.key_tag
            );
        }
        DnssecCmd::Refresh { zone } => {
            let apex = name("zone", &zone)?;
            match store
                .advance_signature_window(&apex, Timestamp::now())
                .await?
            {
                Some(t) => say!("zone {apex}: signatures from {t}"),
                None => say!("zone {apex}: the signature window is current"),
            }
        }
    }
    Ok(())
}

async fn domain(store: &Store, cmd: DomainCmd) -> Result<(), Refused> {
    match cmd {
        DomainCmd::Add {
            name: n,
            registrar,
            registrant,
            admin,
            tech,
            billing,
            years,
            expires,
            status,
            ns,
            ds,
        } => {
            let expires = match expires {
                Some(e) => time("expires", &e)?,
                None => {
                    if !(1..=10).contains(&years) {
                        return Err(invalid("years", format!("{years} is not from 1 to 10")));
                    }
                    Timestamp(Timestamp::now().0 + i64::from(years) * 365 * 86_400)
                }
            };
            let d = NewDomain {
                name: name("name", &n)?,
                registrar,
                registrant,
                admin,
                tech,
                billing,
                expires,
                statuses: statuses("status", &status)?,
                nameservers: ns_specs(&ns.ns)?,
                ds: ds_list(&ds)?,
            };
            store.add_domain(&d).await?;
            say!("domain {} added", d.name);
        }
        DomainCmd::Update {
            name: n,
            registrar,
            registrant,
            admin,
            tech,
            billing,
            expires,
            add_status,
            remove_status,
        } => {
            let n = name("name", &n)?;
            let u = DomainUpdate {
                registrar,
                registrant,
                admin,
                tech,
                billing,
                expires: expires.map(|e| time("expires", &e)).transpose()?,
                add_statuses: statuses("add-status", &add_status)?,
                remove_statuses: statuses("remove-status", &remove_status)?,
            };
            store.update_domain(&n, &u).await?;
            say!("domain {n} updated");
        }
        DomainCmd::Ns { name: n, ns } => {
            let n = name("name", &n)?;
            store.set_nameservers(&n, &ns_specs(&ns.ns)?).await?;
            say!("nameservers of {n} set");
        }
        DomainCmd::Ds { name: n, ds } => {
            let n = name("name", &n)?;
            store.set_ds(&n, &ds_list(&ds)?).await?;
            say!("DS of {n} set");
        }
        DomainCmd::Delete { name: n } => {
            let n = name("name", &n)?;
            store.delete_domain(&n).await?;
            say!("domain {n} deleted");
        }
        DomainCmd::Show { name: n, output } => {
            let n = name("name", &n)?;
            let Some(d) = store.domain(&n).await? else {
                return Err(Refused(format!("domain {n} does not exist")));
            };
            let record = show::domain(&d);
            if output.json {
                print_json(&record.to_json());
            } else {
                emit!("{}", record.to_text());
            }
        }
    }
    Ok(())
}
