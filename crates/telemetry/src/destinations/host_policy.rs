//! Which hosts destinations may reach: `[security] destination_hosts`, and the link-local and
//! cloud-metadata addresses that are refused unless listed. Without it a destination created
//! at runtime, or its connection test, makes the gateway send requests to any address (SSRF).
//!
//! The policy is checked on a destination's URL when it is saved or tested, and again on every
//! address a name resolves to when a connection is made (see [`super::resolve`]), so a name
//! that resolves elsewhere later (DNS rebinding) is caught as well.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::LazyLock;

use ipnet::IpNet;
use url::{Host, Url};

/// The setting that lists hosts, named in every refusal so the operator knows what to change.
pub const SETTING: &str = "security.destination_hosts";

/// Refused unless listed: link-local ranges, where metadata services and node-local
/// credential endpoints live, and metadata services outside them. The first match names the
/// reason, so the single metadata address comes before its range.
const REFUSED: [(&str, &str); 6] = [
    ("169.254.169.254/32", "a cloud metadata address"),
    ("169.254.0.0/16", "a link-local address"),
    ("fd00:ec2::254/128", "a cloud metadata address"),
    ("fe80::/10", "a link-local address"),
    ("100.100.100.200/32", "a cloud metadata address"),
    ("192.0.0.192/32", "a cloud metadata address"),
];

/// Names of metadata services, refused before any lookup (they resolve only inside a cloud).
const METADATA_NAMES: [&str; 6] = [
    "metadata.google.internal",
    "metadata.goog",
    "metadata",
    "instance-data",
    "instance-data.ec2.internal",
    "metadata.tencentyun.com",
];

static REFUSED_NETS: LazyLock<Vec<(IpNet, &'static str)>> = LazyLock::new(|| {
    REFUSED
        .iter()
        .filter_map(|(net, why)| net.parse().ok().map(|n| (n, *why)))
        .collect()
});

/// Why a destination may not reach a host; the text names the host and the setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(String);

/// One entry of `destination_hosts` that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{SETTING}[{index}]: {message}")]
pub struct EntryError {
    pub index: usize,
    pub message: String,
}

/// One entry of the allow-list.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    /// `*`: any host, so that an address in a refused range can be added to "anything".
    Any,
    /// `collector.internal` or `*.example.com` (subdomains only), with an optional port.
    Name {
        name: String,
        wildcard: bool,
        port: Option<u16>,
    },
    /// `10.0.0.5`, `10.0.0.5:4318`, `[fd00::1]:4317` or `10.0.0.0/8`.
    Net { net: IpNet, port: Option<u16> },
}

impl Entry {
    fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        if t.is_empty() {
            return Err("must not be empty".into());
        }
        if t == "*" {
            return Ok(Entry::Any);
        }
        if t.contains("://") {
            return Err(format!(
                "`{t}` is a URL; give a host, host:port or CIDR range"
            ));
        }
        if t.contains('/') {
            let net: IpNet = t
                .parse()
                .map_err(|_| format!("`{t}` is not a valid CIDR range"))?;
            return Ok(Entry::Net {
                net: canonical_net(net.trunc()),
                port: None,
            });
        }
        if let Ok(ip) = t.parse::<IpAddr>() {
            return Ok(Entry::Net {
                net: IpNet::from(canonical(ip)),
                port: None,
            });
        }
        if let Ok(addr) = t.parse::<SocketAddr>() {
            return Ok(Entry::Net {
                net: IpNet::from(canonical(addr.ip())),
                port: Some(addr.port()),
            });
        }
        if t.starts_with('[') {
            return Err(format!("`{t}` is not a valid [IPv6]:port"));
        }
        let (name, port) = match t.rsplit_once(':') {
            Some((name, port)) => (
                name,
                Some(
                    port.parse::<u16>()
                        .map_err(|_| format!("`{t}`: `{port}` is not a port"))?,
                ),
            ),
            None => (t, None),
        };
        let name = normalize_name(name);
        let (wildcard, bare) = match name.strip_prefix("*.") {
            Some(bare) => (true, bare),
            None => (false, name.as_str()),
        };
        let valid_label = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        if bare.is_empty() || !bare.split('.').all(valid_label) {
            return Err(format!(
                "`{t}` is not a host name, host:port, IP address or CIDR range"
            ));
        }
        Ok(Entry::Name {
            name: bare.to_owned(),
            wildcard,
            port,
        })
    }

    fn port_matches(want: Option<u16>, port: u16) -> bool {
        want.is_none_or(|p| p == port)
    }

    fn matches_name(&self, name: &str, port: u16) -> bool {
        match self {
            Entry::Any => true,
            Entry::Name {
                name: listed,
                wildcard,
                port: want,
            } => {
                let hit = if *wildcard {
                    name.strip_suffix(listed.as_str())
                        .is_some_and(|head| head.len() > 1 && head.ends_with('.'))
                } else {
                    name == listed
                };
                hit && Self::port_matches(*want, port)
            }
            Entry::Net { .. } => false,
        }
    }

    fn matches_addr(&self, ip: IpAddr, port: u16) -> bool {
        match self {
            Entry::Any => true,
            Entry::Net { net, port: want } => net.contains(&ip) && Self::port_matches(*want, port),
            Entry::Name { .. } => false,
        }
    }
}

/// The allow-list and the refused ranges. The default allows any host but the refused ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostPolicy {
    /// `destination_hosts`. Only these can open a refused address.
    listed: Vec<Entry>,
    /// The config file's own destinations: allowed like listed hosts even when the list does
    /// not name them (the file is the operator's), but never a way into a refused range.
    trusted: Vec<Entry>,
}

impl HostPolicy {
    /// Reads `destination_hosts`; an empty list allows any host but the refused ranges.
    pub fn new<S: AsRef<str>>(entries: &[S]) -> Result<Self, EntryError> {
        let listed = entries
            .iter()
            .enumerate()
            .map(|(index, e)| {
                Entry::parse(e.as_ref()).map_err(|message| EntryError { index, message })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            listed,
            trusted: Vec::new(),
        })
    }

    /// Also allows these URLs' hosts (on their ports), as the config file's destinations need,
    /// without listing them: they open no refused range and no other port.
    pub fn trusting<'a>(mut self, urls: impl IntoIterator<Item = &'a Url>) -> Self {
        for url in urls {
            let port = url.port_or_known_default();
            let entry = match url.host() {
                Some(Host::Domain(name)) => Entry::Name {
                    name: normalize_name(name),
                    wildcard: false,
                    port,
                },
                Some(Host::Ipv4(ip)) => Entry::Net {
                    net: IpNet::from(IpAddr::V4(ip)),
                    port,
                },
                Some(Host::Ipv6(ip)) => Entry::Net {
                    net: IpNet::from(canonical(IpAddr::V6(ip))),
                    port,
                },
                None => continue,
            };
            if !self.trusted.contains(&entry) {
                self.trusted.push(entry);
            }
        }
        self
    }

    /// Whether `destination_hosts` names any host: then only listed hosts may be reached.
    pub fn is_restricted(&self) -> bool {
        !self.listed.is_empty()
    }

    /// Checks a URL's host before any lookup: an IP literal is decided here, a name as far as
    /// the name decides (its addresses are checked when they are known).
    pub fn check_url(&self, url: &Url) -> Result<(), Refused> {
        let port = url.port_or_known_default().unwrap_or(0);
        match url.host() {
            None => Err(Refused("the URL has no host".into())),
            Some(Host::Ipv4(ip)) => self.check_addr(None, IpAddr::V4(ip), port),
            Some(Host::Ipv6(ip)) => self.check_addr(None, IpAddr::V6(ip), port),
            Some(Host::Domain(name)) => self.check_name(name, port),
        }
    }

    /// Checks a host name on `port` before it is looked up.
    pub fn check_name(&self, name: &str, port: u16) -> Result<(), Refused> {
        let name = normalize_name(name);
        if let Ok(ip) = name.parse::<IpAddr>() {
            return self.check_addr(None, ip, port);
        }
        if METADATA_NAMES.contains(&name.as_str()) {
            let listed = self.listed.iter().any(|e| {
                matches!(
                    e,
                    Entry::Name {
                        wildcard: false,
                        ..
                    }
                ) && e.matches_name(&name, port)
            });
            if !listed {
                return Err(Refused(format!(
                    "`{name}` is a cloud metadata host; destinations may reach it only if \
                     {SETTING} lists it"
                )));
            }
        }
        if !self.is_restricted() || self.name_allowed(&name, port) {
            return Ok(());
        }
        // A listed address range may still hold what the name resolves to.
        if self.entries().any(|e| matches!(e, Entry::Net { .. })) {
            return Ok(());
        }
        Err(Refused(format!("`{name}` is not in {SETTING}")))
    }

    /// Checks one address `host` resolved to (`None` for an IP literal).
    pub fn check_addr(&self, host: Option<&str>, ip: IpAddr, port: u16) -> Result<(), Refused> {
        let ip = canonical(ip);
        self.check_refused(ip, port)?;
        if !self.is_restricted() {
            return Ok(());
        }
        let host = host.map(normalize_name);
        if host.as_deref().is_some_and(|h| self.name_allowed(h, port)) {
            return Ok(());
        }
        if self.entries().any(|e| e.matches_addr(ip, port)) {
            return Ok(());
        }
        Err(Refused(match host {
            Some(h) => format!("{ip} (an address of `{h}`) is not in {SETTING}"),
            None => format!("{ip} is not in {SETTING}"),
        }))
    }

    /// Only the refused ranges, for an address that the allow-list does not govern (the
    /// environment's HTTP proxy).
    pub fn check_refused(&self, ip: IpAddr, port: u16) -> Result<(), Refused> {
        let ip = canonical(ip);
        let Some((range, address, why)) = refused(ip) else {
            return Ok(());
        };
        // Opened only by an entry inside the refused range: `0.0.0.0/0` or a host name is
        // not an explicit choice of the metadata service.
        let opened = self.listed.iter().any(|e| match e {
            Entry::Net { net, .. } => range.contains(net) && e.matches_addr(address, port),
            _ => false,
        });
        if opened {
            return Ok(());
        }
        Err(Refused(format!(
            "{ip} is {why}; destinations may reach it only if {SETTING} lists it \
             (or a range inside {range})"
        )))
    }

    /// Keeps the addresses of `host` the policy allows, in their order; refuses when none is
    /// left.
    pub fn filter(
        &self,
        host: &str,
        port: u16,
        addrs: impl IntoIterator<Item = IpAddr>,
    ) -> Result<Vec<IpAddr>, Refused> {
        let mut kept = Vec::new();
        let mut first = None;
        for ip in addrs {
            match self.check_addr(Some(host), ip, port) {
                Ok(()) => kept.push(ip),
                Err(e) => {
                    first.get_or_insert(e);
                }
            }
        }
        match (kept.is_empty(), first) {
            (false, _) => Ok(kept),
            (true, Some(e)) => Err(Refused(format!(
                "every address of `{}` is refused: {e}",
                normalize_name(host)
            ))),
            (true, None) => Err(Refused(format!(
                "`{}` resolved to no address",
                normalize_name(host)
            ))),
        }
    }

    fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.listed.iter().chain(&self.trusted)
    }

    fn name_allowed(&self, name: &str, port: u16) -> bool {
        self.entries().any(|e| e.matches_name(name, port))
    }
}

/// Host names compare without case and without the root's trailing dot.
fn normalize_name(name: &str) -> String {
    name.trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase()
}

/// An IPv4 address written as IPv6 (`::ffff:169.254.169.254`) is that IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

fn canonical_net(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
            Some(v4) => ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96)
                .map(IpNet::V4)
                .unwrap_or(net),
            None => net,
        },
        other => other,
    }
}

/// IPv4 addresses that an IPv6 address carries: IPv4-compatible (`::a.b.c.d`) and NAT64
/// (`64:ff9b::a.b.c.d`), which reach the IPv4 address through a translator.
fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    let tail = || Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    let compat = s[..6].iter().all(|&x| x == 0) && (s[6] != 0 || s[7] > 1);
    let nat64 = s[0] == 0x64 && s[1] == 0xff9b && s[2..6].iter().all(|&x| x == 0);
    (compat || nat64).then(tail)
}

/// The refused range `ip` is in, the address that matched it and why it is refused.
fn refused(ip: IpAddr) -> Option<(IpNet, IpAddr, &'static str)> {
    let mut candidates = vec![ip];
    if let IpAddr::V6(v6) = ip {
        candidates.extend(embedded_v4(v6).map(IpAddr::V4));
    }
    candidates.into_iter().find_map(|address| {
        REFUSED_NETS
            .iter()
            .find(|(net, _)| net.contains(&address))
            .map(|(net, why)| (*net, address, *why))
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn policy(entries: &[&str]) -> HostPolicy {
        HostPolicy::new(entries).unwrap()
    }

    fn url(u: &str) -> Url {
        Url::parse(u).unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_default_allows_loopback_and_private_but_not_link_local_or_metadata() {
        let p = HostPolicy::default();
        for ok in [
            "http://127.0.0.1:4318/v1/traces",
            "http://10.1.2.3/",
            "http://192.168.0.9/",
            "http://[::1]:4317",
            "https://o1.ingest.sentry.io/api/1/",
            "http://collector:4318/",
        ] {
            assert!(p.check_url(&url(ok)).is_ok(), "{ok}");
        }
        for refused in [
            "http://169.254.169.254/latest/meta-data/",
            "http://169.254.170.2/v2/credentials",
            "http://169.254.1.1/",
            "http://[fe80::1]/",
            "http://[fd00:ec2::254]/",
            "http://100.100.100.200/latest/meta-data",
            "http://192.0.0.192/",
            // The URL parser reads these as 169.254.169.254.
            "http://2852039166/",
            "http://0xa9.254.169.254/",
            "http://metadata.google.internal/computeMetadata/v1/",
            "http://METADATA.google.internal./",
            "http://metadata/",
        ] {
            let e = p.check_url(&url(refused)).unwrap_err().to_string();
            assert!(e.contains(SETTING), "{refused}: {e}");
        }
        let e = p
            .check_url(&url("http://169.254.169.254/"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("169.254.169.254 is a cloud metadata address"),
            "{e}"
        );
    }

    #[test]
    fn ipv6_forms_of_refused_ipv4_addresses_are_refused() {
        let p = HostPolicy::default();
        for refused in [
            "http://[::ffff:169.254.169.254]/",
            "http://[::ffff:a9fe:a9fe]/",
            "http://[64:ff9b::a9fe:a9fe]/",
            "http://[::169.254.169.254]/",
        ] {
            assert!(p.check_url(&url(refused)).is_err(), "{refused}");
        }
        assert!(p.check_url(&url("http://[::ffff:127.0.0.1]/")).is_ok());
        assert!(p.check_addr(None, ip("::ffff:10.0.0.1"), 80).is_ok());
        assert!(p.check_addr(None, ip("::"), 80).is_ok());
        assert!(p.check_addr(None, ip("::1"), 80).is_ok());
    }

    #[test]
    fn an_allow_list_admits_only_what_it_names() {
        let p = policy(&[
            "collector.internal",
            "*.example.com",
            "sentry.local:9000",
            "10.0.0.0/8",
            "192.168.1.7:4318",
            "[fd00::1]:4317",
        ]);
        assert!(p.is_restricted());
        for ok in [
            "http://collector.internal:4318/v1/traces",
            "https://COLLECTOR.internal/",
            "https://a.example.com/",
            "https://a.b.example.com/",
            "http://sentry.local:9000/api/1/",
            "http://10.20.30.40/",
            "http://192.168.1.7:4318/",
            "http://[fd00::1]:4317",
            "http://[::ffff:10.0.0.1]/",
        ] {
            assert!(p.check_url(&url(ok)).is_ok(), "{ok}");
        }
        for refused in [
            "http://192.168.1.7:4317/",
            "http://192.168.1.8:4318/",
            "http://[fd00::1]:4318",
            "http://127.0.0.1:4318/",
            "http://11.0.0.1/",
        ] {
            let e = p.check_url(&url(refused)).unwrap_err().to_string();
            assert!(
                e.contains("is not in security.destination_hosts"),
                "{refused}: {e}"
            );
        }
        // Names are decided by their addresses when a range is listed; without one, at once.
        assert!(p.check_url(&url("http://elsewhere.test/")).is_ok());
        assert!(p.filter("elsewhere.test", 80, [ip("10.9.9.9")]).is_ok());
        let e = p
            .filter("elsewhere.test", 80, [ip("8.8.8.8")])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("8.8.8.8 (an address of `elsewhere.test`) is not in"),
            "{e}"
        );
        let names_only = policy(&["collector.internal"]);
        let e = names_only
            .check_url(&url("http://example.com/"))
            .unwrap_err()
            .to_string();
        assert_eq!(e, "`example.com` is not in security.destination_hosts");
        assert!(names_only
            .check_url(&url("http://sentry.local:9001/"))
            .is_err());
        // A wildcard covers subdomains only.
        assert!(names_only.check_url(&url("https://example.com/")).is_err());
        assert!(policy(&["*.example.com"])
            .check_url(&url("https://example.com/"))
            .is_err());
        assert!(policy(&["*.example.com"])
            .check_url(&url("https://badexample.com/"))
            .is_err());
    }

    #[test]
    fn refused_ranges_open_only_to_entries_inside_them() {
        for broad in [&["0.0.0.0/0", "::/0"][..], &["*"], &["169.0.0.0/8"]] {
            let p = policy(broad);
            assert!(
                p.check_url(&url("http://169.254.169.254/")).is_err(),
                "{broad:?}"
            );
        }
        let p = policy(&["169.254.169.254"]);
        assert!(p.check_url(&url("http://169.254.169.254/latest")).is_ok());
        assert!(p
            .check_url(&url("http://[::ffff:169.254.169.254]/"))
            .is_ok());
        assert!(p.check_url(&url("http://169.254.169.253/")).is_err());
        let p = policy(&["169.254.20.0/24", "*"]);
        assert!(p.check_url(&url("http://169.254.20.10:4318/")).is_ok());
        assert!(p.check_url(&url("http://169.254.169.254/")).is_err());
        assert!(
            p.check_url(&url("http://example.com/")).is_ok(),
            "`*` admits the rest"
        );
        let p = policy(&["[fd00:ec2::254]:80"]);
        assert!(p.check_url(&url("http://[fd00:ec2::254]/")).is_ok());
        assert!(p.check_url(&url("http://[fd00:ec2::254]:8080/")).is_err());
        // A metadata name opens by its exact name, not by a wildcard or `*`.
        assert!(policy(&["metadata.google.internal"])
            .check_url(&url("http://metadata.google.internal/"))
            .is_ok());
        assert!(policy(&["*.google.internal", "*"])
            .check_url(&url("http://metadata.google.internal/"))
            .is_err());
    }

    #[test]
    fn a_listed_name_never_opens_a_refused_address_it_resolves_to() {
        let p = policy(&["collector.internal"]);
        let e = p
            .filter("collector.internal", 4318, [ip("169.254.169.254")])
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("every address of `collector.internal` is refused: 169.254.169.254 is a cloud metadata address"),
            "{e}"
        );
        // The refused address is dropped, the others are kept in order.
        let kept = HostPolicy::default()
            .filter(
                "mixed.test",
                80,
                [
                    ip("169.254.169.254"),
                    ip("10.0.0.2"),
                    ip("::ffff:169.254.169.254"),
                    ip("10.0.0.1"),
                ],
            )
            .unwrap();
        assert_eq!(kept, [ip("10.0.0.2"), ip("10.0.0.1")]);
        assert!(HostPolicy::default().filter("none.test", 80, []).is_err());
    }

    #[test]
    fn trusted_hosts_are_allowed_on_their_port_and_open_nothing() {
        let file = [
            url("https://o1.ingest.sentry.io/api/1/integration/otlp/v1/traces"),
            url("http://10.5.5.5:4318/v1/traces"),
            url("http://169.254.169.254/"),
        ];
        let p = policy(&["collector.internal"]).trusting(&file);
        assert!(p.check_url(&file[0]).is_ok());
        assert!(p.check_url(&file[1]).is_ok());
        assert!(p.check_url(&url("http://10.5.5.5:4317/")).is_err());
        // Another port of a trusted name is decided by its addresses, as an unlisted name is.
        assert!(p
            .filter("o1.ingest.sentry.io", 8443, [ip("34.120.195.249")])
            .is_err());
        assert!(p
            .filter("o1.ingest.sentry.io", 443, [ip("34.120.195.249")])
            .is_ok());
        assert!(p.check_url(&file[2]).is_err(), "still refused");
        // Without a list, trusting changes nothing.
        let open = HostPolicy::default().trusting(&file);
        assert!(!open.is_restricted());
        assert!(open.check_url(&url("http://example.org/")).is_ok());
    }

    #[test]
    fn entries_are_parsed_or_refused_by_index() {
        assert!(HostPolicy::new(&[
            "a.b",
            "a.b:1",
            "1.2.3.4",
            "1.2.3.4:5",
            "::1",
            "[::1]:2",
            "fd00::/8",
            "*"
        ])
        .is_ok());
        for (bad, want) in [
            ("", "must not be empty"),
            ("http://x", "is a URL"),
            ("10.0.0.0/33", "not a valid CIDR"),
            ("a.b:port", "not a port"),
            ("a..b", "not a host name"),
            ("[::1", "not a valid [IPv6]:port"),
            ("a b", "not a host name"),
        ] {
            let e = HostPolicy::new(&["ok.example", bad]).unwrap_err();
            assert_eq!(e.index, 1);
            let text = e.to_string();
            assert!(
                text.starts_with("security.destination_hosts[1]: ") && text.contains(want),
                "{bad:?}: {text}"
            );
        }
        // Host bits of a range are ignored; an IPv4-mapped range is the IPv4 range.
        let p = policy(&["10.1.2.3/8", "::ffff:192.168.0.0/112"]);
        assert!(p.check_url(&url("http://10.200.0.1/")).is_ok());
        assert!(p.check_url(&url("http://192.168.3.4/")).is_ok());
    }
}
