//! Sentry DSNs, turned into the project's OTLP traces endpoint and auth header.
//!
//! `scheme://KEY@HOST[:port][/prefix]/PROJECT` gives
//! `scheme://HOST[:port][/prefix]/api/PROJECT/integration/otlp/v1/traces` and
//! `x-sentry-auth: sentry sentry_key=KEY`.

use url::Url;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentryDsn {
    pub traces_endpoint: String,
    pub public_key: String,
    pub project_id: String,
}

impl SentryDsn {
    pub fn parse(dsn: &str) -> Result<Self, String> {
        let url = Url::parse(dsn.trim()).map_err(|e| format!("invalid DSN: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("invalid DSN: the scheme must be http or https".into());
        }
        let key = url.username();
        if key.len() != 32 || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("invalid DSN: the public key (before `@`) must be 32 hex digits".into());
        }
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or("invalid DSN: no host")?;
        let path = url.path().trim_end_matches('/');
        let (prefix, project) = path.rsplit_once('/').ok_or("invalid DSN: no project id")?;
        if project.is_empty() || !project.bytes().all(|b| b.is_ascii_digit()) {
            return Err("invalid DSN: the project id (last path segment) must be numeric".into());
        }
        let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
        Ok(SentryDsn {
            traces_endpoint: format!(
                "{}://{host}{port}{prefix}/api/{project}/integration/otlp/v1/traces",
                url.scheme()
            ),
            public_key: key.to_ascii_lowercase(),
            project_id: project.to_owned(),
        })
    }

    /// The value of the `x-sentry-auth` header.
    pub fn auth_header(&self) -> String {
        format!("sentry sentry_key={}", self.public_key)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const KEY: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn derives_endpoint_for_each_shape() {
        let cases = [
            (
                format!("https://{KEY}@o1.ingest.sentry.io/42"),
                "https://o1.ingest.sentry.io/api/42/integration/otlp/v1/traces",
            ),
            (
                format!("http://{KEY}@127.0.0.1:9000/7"),
                "http://127.0.0.1:9000/api/7/integration/otlp/v1/traces",
            ),
            (
                format!("https://{KEY}@sentry.example.com/prefix/sub/3/"),
                "https://sentry.example.com/prefix/sub/api/3/integration/otlp/v1/traces",
            ),
            (
                format!("https://{KEY}:legacysecret@host.example/5"),
                "https://host.example/api/5/integration/otlp/v1/traces",
            ),
        ];
        for (dsn, want) in cases {
            let parsed = SentryDsn::parse(&dsn).unwrap();
            assert_eq!(parsed.traces_endpoint, want, "{dsn}");
            assert_eq!(parsed.auth_header(), format!("sentry sentry_key={KEY}"));
        }
    }

    #[test]
    fn rejects_malformed_dsns_clearly() {
        for (dsn, why) in [
            ("not a url", "invalid DSN"),
            ("https://short@o1.ingest.sentry.io/42", "32 hex digits"),
            (&format!("https://{KEY}@o1.ingest.sentry.io/"), "project id"),
            (&format!("https://{KEY}@o1.ingest.sentry.io/abc"), "numeric"),
            (&format!("ftp://{KEY}@o1.ingest.sentry.io/1"), "scheme"),
            ("https://o1.ingest.sentry.io/42", "32 hex digits"),
        ] {
            let e = SentryDsn::parse(dsn).unwrap_err();
            assert!(e.contains(why), "{dsn}: {e}");
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in ".*") {
            let _ = SentryDsn::parse(&s);
        }
    }
}
