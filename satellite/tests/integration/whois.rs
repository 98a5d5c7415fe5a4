//! The real Debian `whois` client against the Whois edge (RFC 3912). Skipped, saying so, when
//! the client is not installed; never skipped when `CI=true`. The client only ever talks to
//! 127.0.0.1: `-h` names the server, and `--no-recursion` keeps it from following the
//! registrar referral an answer carries.

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use orrery_proto::{Contact, Registrar, Timestamp};
use orrery_satellite::dns::leaf::SelectorConfig;
use orrery_satellite::rds::leaf::{DEFAULT_SELECTOR, RdsLeafConfig};
use orrery_satellite::rds::whois_server::{WhoisServer, WhoisSettings};
use orrery_satellite::rds::{Rds, RdsPipeline};
use orrery_satellite::selector::Selector;
use orrery_satellite::{BuildOptions, Served, ServedStore, SnapshotData};
use tokio_util::sync::CancellationToken;

use crate::fixtures::{domain, registry};

/// How long one `whois` run may take before it is killed.
const CLIENT_LIMIT: Duration = Duration::from_secs(10);

/// A Whois edge on 127.0.0.1:0, stopped on drop.
struct TestWhois {
    port: u16,
    cancel: CancellationToken,
    server: Option<WhoisServer>,
    runtime: tokio::runtime::Runtime,
}

impl TestWhois {
    fn start(data: &SnapshotData) -> Self {
        let config: SelectorConfig<RdsLeafConfig> = toml::from_str(DEFAULT_SELECTOR).unwrap();
        let pipeline = RdsPipeline::new(
            Selector::<Rds>::build(&config).unwrap(),
            Arc::new(ServedStore::new(Served::from_snapshot(
                data,
                BuildOptions::default(),
            ))),
        );
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let cancel = CancellationToken::new();
        let server = runtime.block_on(async {
            WhoisServer::start(
                Arc::new(ArcSwap::from_pointee(pipeline)),
                vec![listener],
                WhoisSettings::default(),
                cancel.clone(),
            )
            .unwrap()
        });
        Self {
            port,
            cancel,
            server: Some(server),
            runtime,
        }
    }
}

impl Drop for TestWhois {
    fn drop(&mut self) {
        self.cancel.cancel();
        if let Some(server) = self.server.take() {
            self.runtime.block_on(server.join());
        }
    }
}

/// The registry fixture with a registrar, a disclosed registrant, a redacted tech contact and
/// an IDN (`café.tld`).
pub(crate) fn data() -> SnapshotData {
    let mut data = registry();
    let mut r = Registrar::new("r1", "Example Registrar, Inc.");
    r.iana_id = Some(9999);
    r.url = Some("https://registrar.example".into());
    // A referral a client could follow (it must not: --no-recursion).
    r.whois_server = Some("whois.registrar.example".into());
    r.abuse_email = Some("abuse@registrar.example".into());
    data.registrars.push(r);
    data.contacts.push(contact("REG-1", "Alice Liddell", true));
    data.contacts
        .push(contact("TECH-1", "Hidden Hatter", false));
    for d in &mut data.domains {
        if d.name.to_string() == "foo.tld" {
            d.registrant = Some("REG-1".into());
            d.tech = Some("TECH-1".into());
            d.created = Timestamp(1_700_000_000);
        }
    }
    let mut idn = domain("xn--caf-dma.tld", &["ns1.foo.tld"]);
    idn.registrant = Some("REG-1".into());
    data.domains.push(idn);
    data
}

fn contact(handle: &str, name: &str, disclose: bool) -> Contact {
    Contact {
        handle: handle.into(),
        name: name.into(),
        organisation: None,
        street: vec!["1 Rabbit Hole".into()],
        city: "Oxford".into(),
        province: None,
        postcode: Some("OX1 1AA".into()),
        country: "GB".into(),
        email: format!("{}@example.net", handle.to_lowercase()),
        voice: Some("+44.1865000000".into()),
        fax: None,
        disclose,
        created: Timestamp(0),
        updated: Timestamp(0),
    }
}

/// True when the client is installed; under `CI=true` its absence fails the test.
pub(crate) fn client_installed() -> bool {
    let found = Command::new("whois")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "whois is not installed but CI=true: install the Debian package whois"
        );
        eprintln!("SKIPPED: whois is not installed (apt-get install whois)");
    }
    found
}

/// Runs `whois -h 127.0.0.1 -p PORT QUERY` under `locale`, killed after [`CLIENT_LIMIT`];
/// returns its standard output.
pub(crate) fn whois(port: u16, query: &str, locale: &str) -> String {
    let mut child = Command::new("whois")
        .args([
            "--no-recursion",
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            query,
        ])
        .env("LC_ALL", locale)
        .env_remove("WHOIS_SERVER")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        out
    });
    let deadline = Instant::now() + CLIENT_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("whois {query:?} did not finish within {CLIENT_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let out = reader.join().unwrap();
    assert!(status.success(), "whois {query:?}: {status}\n{out}");
    out
}

#[test]
#[cfg_attr(
    missing_whois_client,
    ignore = "whois is not installed (apt-get install whois)"
)]
fn debian_whois_client() {
    if !client_installed() {
        return;
    }
    let s = TestWhois::start(&data());
    let utf8 = "C.UTF-8";

    let out = whois(s.port, "foo.tld", utf8);
    for want in [
        "Domain Name: FOO.TLD\n",
        "Registry Domain ID: foo.tld-ROID\n",
        "Registrar WHOIS Server: whois.registrar.example\n",
        "Registrar URL: https://registrar.example\n",
        "Creation Date: 2023-11-14T22:13:20Z\n",
        "Registrar: Example Registrar, Inc.\n",
        "Registrar IANA ID: 9999\n",
        "Domain Status: ok https://icann.org/epp#ok\n",
        "Registry Registrant ID: REG-1\n",
        "Registrant Name: Alice Liddell\n",
        "Registrant Email: reg-1@example.net\n",
        "Tech Name: REDACTED FOR PRIVACY\n",
        "Name Server: NS1.FOO.TLD\nName Server: NS2.FOO.TLD\n",
        "DNSSEC: unsigned\n",
        ">>> Last update of WHOIS database: ",
    ] {
        assert!(out.contains(want), "missing {want:?} in\n{out}");
    }
    for secret in ["Hidden Hatter", "tech-1@example.net", "TECH-1"] {
        assert!(!out.contains(secret), "{secret:?} shows in\n{out}");
    }

    // An IDN in U-labels: converted by the client under a UTF-8 locale, sent as UTF-8 (and
    // converted by the server) under the C locale. The same answer either way.
    let idn = whois(s.port, "café.tld", utf8);
    assert!(idn.contains("Domain Name: XN--CAF-DMA.TLD\n"), "{idn}");
    assert!(idn.contains("Registrant Name: Alice Liddell\n"), "{idn}");
    assert_eq!(whois(s.port, "café.tld", "C"), idn);

    let ns = whois(s.port, "nameserver ns1.foo.tld", utf8);
    assert!(
        ns.contains("Server Name: NS1.FOO.TLD\nIP Address: 192.0.2.10\nIP Address: 2001:db8::10\n"),
        "{ns}"
    );
    assert!(ns.contains("Registrar: Example Registrar, Inc.\n"), "{ns}");

    let none = whois(s.port, "nope.tld", utf8);
    assert!(none.starts_with("No match for \"nope.tld\".\n"), "{none}");

    let bad = whois(s.port, "two words", utf8);
    assert!(bad.starts_with("% Error: query not understood"), "{bad}");
}
