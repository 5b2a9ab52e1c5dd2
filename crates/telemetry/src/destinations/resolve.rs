//! Connecting under the destination host policy: the HTTP sinks' DNS resolver and the gRPC
//! sink's connector hand out only addresses the policy allows, so the check applies to the
//! address actually connected to, after every lookup.
//!
//! IP-literal URLs never reach a resolver; the sinks check those when they are built (their
//! URL is fixed, and redirects are not followed).

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use url::Url;

use super::host_policy::{HostPolicy, Refused};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Looks a name up on a port; the system resolver unless a test swaps it.
pub type Lookup = Arc<dyn Fn(String, u16) -> BoxFuture<io::Result<Vec<IpAddr>>> + Send + Sync>;

fn system_lookup() -> Lookup {
    Arc::new(|name, port| {
        Box::pin(async move {
            Ok(tokio::net::lookup_host((name.as_str(), port))
                .await?
                .map(|a| a.ip())
                .collect())
        })
    })
}

/// Resolves names for one destination and keeps only the addresses the policy allows.
#[derive(Clone)]
pub struct GuardedResolver {
    policy: Arc<HostPolicy>,
    /// The destination's own host. Any other name looked up is the environment's HTTP
    /// proxy, which the allow-list does not govern; the refused ranges still apply to it.
    host: String,
    port: u16,
    lookup: Lookup,
}

impl GuardedResolver {
    pub fn new(policy: Arc<HostPolicy>, url: &Url) -> Self {
        Self {
            policy,
            host: url
                .host_str()
                .unwrap_or_default()
                .trim_end_matches('.')
                .to_ascii_lowercase(),
            port: url.port_or_known_default().unwrap_or(0),
            lookup: system_lookup(),
        }
    }

    /// The same resolver with another lookup, for tests that make names resolve anywhere.
    pub fn with_lookup(mut self, lookup: Lookup) -> Self {
        self.lookup = lookup;
        self
    }

    pub fn policy(&self) -> &HostPolicy {
        &self.policy
    }

    /// The allowed addresses of `name`, in the resolver's order. A refusal is a [`Refused`]
    /// error, which the sinks recognise in a connection error's causes.
    pub async fn addresses(&self, name: &str) -> Result<Vec<IpAddr>, BoxError> {
        let normalized = name.trim_end_matches('.').to_ascii_lowercase();
        let own = normalized == self.host;
        if own {
            self.policy.check_name(name, self.port)?;
        }
        let found = (self.lookup)(name.to_owned(), self.port).await?;
        if own {
            return Ok(self.policy.filter(name, self.port, found)?);
        }
        let mut kept = Vec::new();
        let mut first = None;
        for ip in found {
            match self.policy.check_refused(ip, 0) {
                Ok(()) => kept.push(ip),
                Err(e) => {
                    first.get_or_insert(e);
                }
            }
        }
        match (kept.is_empty(), first) {
            (true, Some(e)) => Err(Box::new(e)),
            _ => Ok(kept),
        }
    }
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let this = self.clone();
        Box::pin(async move {
            let ips = this.addresses(name.as_str()).await?;
            // Port 0: reqwest puts the URL's port in.
            let addrs: reqwest::dns::Addrs =
                Box::new(ips.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

/// The policy's refusal among an error's causes, if that is why it failed.
pub fn refusal<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a Refused> {
    let mut next: Option<&'a (dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = next {
        if let Some(refused) = err.downcast_ref::<Refused>() {
            return Some(refused);
        }
        // An `io::Error` hides the error it wraps from `source()`.
        if let Some(inner) = err.downcast_ref::<io::Error>().and_then(io::Error::get_ref) {
            if let Some(refused) = inner.downcast_ref::<Refused>() {
                return Some(refused);
            }
        }
        next = err.source();
    }
    None
}

/// TCP connections for the gRPC sink, to allowed addresses only.
#[derive(Clone)]
pub struct GuardedConnector {
    resolver: GuardedResolver,
}

impl GuardedConnector {
    pub fn new(resolver: GuardedResolver) -> Self {
        Self { resolver }
    }
}

impl tower::Service<http::Uri> for GuardedConnector {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = BoxFuture<Result<Self::Response, BoxError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        let resolver = self.resolver.clone();
        Box::pin(async move {
            let host = uri
                .host()
                .ok_or("the endpoint has no host")?
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned();
            let default_port = if uri.scheme_str() == Some("https") {
                443
            } else {
                80
            };
            let port = uri.port_u16().unwrap_or(default_port);
            let ips = match host.parse::<IpAddr>() {
                Ok(ip) => {
                    resolver.policy().check_addr(None, ip, port)?;
                    vec![ip]
                }
                Err(_) => resolver.addresses(&host).await?,
            };
            let mut last = None;
            for ip in ips {
                match TcpStream::connect((ip, port)).await {
                    Ok(stream) => {
                        // Small exports must not wait for Nagle.
                        let _ = stream.set_nodelay(true);
                        return Ok(TokioIo::new(stream));
                    }
                    Err(e) => last = Some(e),
                }
            }
            Err(last.map_or_else(|| "no address to connect to".into(), BoxError::from))
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::str::FromStr;

    use reqwest::dns::Resolve;

    use super::*;

    /// Resolves `*.metadata.test` to the metadata address and everything else to loopback.
    fn test_lookup() -> Lookup {
        Arc::new(|name, _port| {
            Box::pin(async move {
                Ok(match name.as_str() {
                    n if n.ends_with("metadata.test") => vec!["169.254.169.254".parse().unwrap()],
                    "mapped.test" => vec!["::ffff:169.254.169.254".parse().unwrap()],
                    "mixed.test" => vec![
                        "169.254.169.254".parse().unwrap(),
                        "127.0.0.1".parse().unwrap(),
                    ],
                    _ => vec!["127.0.0.1".parse().unwrap()],
                })
            })
        })
    }

    fn resolver(policy: HostPolicy, url: &str) -> GuardedResolver {
        GuardedResolver::new(Arc::new(policy), &Url::parse(url).unwrap()).with_lookup(test_lookup())
    }

    async fn resolve(r: &GuardedResolver, name: &str) -> Result<Vec<SocketAddr>, String> {
        r.resolve(reqwest::dns::Name::from_str(name).unwrap())
            .await
            .map(Iterator::collect)
            .map_err(|e| e.to_string())
    }

    #[tokio::test]
    async fn names_resolving_to_metadata_addresses_are_refused() {
        let r = resolver(HostPolicy::default(), "http://evil.metadata.test/v1/traces");
        let e = resolve(&r, "evil.metadata.test").await.unwrap_err();
        assert!(
            e.contains("every address of `evil.metadata.test` is refused: 169.254.169.254 is a cloud metadata address"),
            "{e}"
        );
        let r = resolver(HostPolicy::default(), "http://mapped.test/");
        assert!(resolve(&r, "mapped.test").await.is_err());
        // The refused address is dropped and the allowed one kept.
        let r = resolver(HostPolicy::default(), "http://mixed.test/");
        let addrs = resolve(&r, "mixed.test").await.unwrap();
        assert_eq!(addrs, ["127.0.0.1:0".parse::<SocketAddr>().unwrap()]);
        // Listing the name does not open the metadata address; listing the address does.
        let listed = HostPolicy::new(&["evil.metadata.test"]).unwrap();
        let r = resolver(listed, "http://evil.metadata.test/");
        assert!(resolve(&r, "evil.metadata.test").await.is_err());
        let listed = HostPolicy::new(&["evil.metadata.test", "169.254.169.254"]).unwrap();
        let r = resolver(listed, "http://evil.metadata.test/");
        assert!(resolve(&r, "evil.metadata.test").await.is_ok());
    }

    #[tokio::test]
    async fn the_allow_list_is_applied_to_resolved_addresses() {
        let ranges = HostPolicy::new(&["10.0.0.0/8"]).unwrap();
        let r = resolver(ranges, "http://collector.test:4318/");
        let e = resolve(&r, "collector.test").await.unwrap_err();
        assert!(
            e.contains("127.0.0.1 (an address of `collector.test`) is not in"),
            "{e}"
        );
        let loopback = HostPolicy::new(&["127.0.0.0/8"]).unwrap();
        let r = resolver(loopback, "http://collector.test:4318/");
        assert!(resolve(&r, "collector.test").await.is_ok());
        // A metadata name is refused before it is looked up.
        let r = resolver(HostPolicy::default(), "http://metadata.google.internal/");
        let e = resolve(&r, "metadata.google.internal").await.unwrap_err();
        assert!(e.contains("cloud metadata host"), "{e}");
    }

    #[tokio::test]
    async fn a_proxy_is_held_to_the_refused_ranges_only() {
        let listed = HostPolicy::new(&["collector.internal"]).unwrap();
        let r = resolver(listed, "http://collector.internal/");
        assert!(
            resolve(&r, "proxy.corp").await.is_ok(),
            "not listed, still a proxy"
        );
        assert!(resolve(&r, "proxy.metadata.test").await.is_err());
    }

    #[tokio::test]
    async fn refusals_are_found_among_causes() {
        let r = resolver(HostPolicy::default(), "http://x.metadata.test/");
        let e = r.addresses("x.metadata.test").await.unwrap_err();
        let wrapped = io::Error::other(e);
        assert!(refusal(&wrapped).is_some());
        assert!(refusal(&io::Error::other("plain")).is_none());
    }

    #[tokio::test]
    async fn the_connector_refuses_literal_and_resolved_metadata_addresses() {
        let mut c = GuardedConnector::new(resolver(
            HostPolicy::default(),
            "http://x.metadata.test:4317",
        ));
        for uri in [
            "http://169.254.169.254:4317",
            "http://[::ffff:a9fe:a9fe]:4317",
            "http://x.metadata.test:4317",
        ] {
            let e = tower::Service::call(&mut c, uri.parse().unwrap())
                .await
                .err()
                .unwrap();
            assert!(refusal(e.as_ref()).is_some(), "{uri}: {e}");
        }
    }
}
