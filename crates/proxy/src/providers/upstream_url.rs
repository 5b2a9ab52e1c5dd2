//! The upstream URL of an OpenAI-compatible provider: built from `base_url`, and the form of it
//! that may be shown anywhere.
//!
//! A `base_url` may carry credentials (`https://user:pw@host/v1`, `?key=…`, `?api-version=…`
//! next to a key). The URL requests go to keeps them; spans, logs and error messages only ever
//! see [`redacted`], which has no userinfo and every query value replaced.

use url::Url;

/// What replaces a query value or userinfo, as the OpenTelemetry URL conventions suggest.
const REDACTED: &str = "REDACTED";

/// `base_url` with `/chat/completions` appended to its path; a query string stays at the end,
/// as Azure-style services (`?api-version=`) need. Errors never quote the URL, since it may
/// hold a key.
pub(crate) fn chat_url(base: &str) -> Result<Url, String> {
    Ok(appended(&base_url(base)?, "/chat/completions"))
}

/// A provider's `base_url`, checked: http or https, a host, no fragment. Errors never quote
/// the URL, since it may hold a key.
pub(crate) fn base_url(base: &str) -> Result<Url, String> {
    let url = Url::parse(base.trim()).map_err(|e| format!("invalid URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("invalid URL: the scheme must be http or https".into());
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("invalid URL: it has no host".into());
    }
    if url.fragment().is_some() {
        return Err("invalid URL: a base URL cannot have a `#` fragment".into());
    }
    Ok(url)
}

/// `base` with `suffix` (which starts with `/`) appended to its path, its query kept.
pub(crate) fn appended(base: &Url, suffix: &str) -> Url {
    let mut url = base.clone();
    let path = format!("{}{suffix}", base.path().trim_end_matches('/'));
    url.set_path(&path);
    url
}

/// `url` without its userinfo and with every query value replaced by `REDACTED`, keeping the
/// query's keys: safe for `url.full`, logs and client error messages.
pub(crate) fn redacted(url: &Url) -> Url {
    let mut shown = url.clone();
    // Both only fail for URLs that cannot have userinfo, which then have none to remove.
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    if url.query().is_some() {
        let pairs: Vec<(String, bool)> = url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.is_empty()))
            .collect();
        let mut query = shown.query_pairs_mut();
        query.clear();
        for (key, empty) in &pairs {
            query.append_pair(key, if *empty { "" } else { REDACTED });
        }
        drop(query);
    }
    shown
}

/// Removes whatever secret `url` carries (its userinfo and query values) from a message that
/// a lower layer wrote, in case one ever quotes the URL. Error path only.
pub(crate) fn scrub(message: &str, url: &Url) -> String {
    let mut out = message.replace(url.as_str(), redacted(url).as_str());
    let password = url.password().unwrap_or_default();
    let userinfo = match (url.username(), password) {
        ("", "") => String::new(),
        (user, "") => format!("{user}@"),
        (user, password) => format!("{user}:{password}@"),
    };
    if !userinfo.is_empty() {
        out = out.replace(&userinfo, "");
    }
    // Raw `key=value` pairs as they appear in the URL: the `=` keeps a value that happens to be
    // a common word from being cut out of unrelated text.
    for pair in url.query().unwrap_or_default().split('&') {
        if let Some((key, value)) = pair.split_once('=') {
            if !value.is_empty() {
                out = out.replace(pair, &format!("{key}={REDACTED}"));
            }
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_path_is_appended_before_the_query() {
        for (base, built) in [
            (
                "https://api.openai.com/v1",
                "https://api.openai.com/v1/chat/completions",
            ),
            (
                "https://api.openai.com/v1/",
                "https://api.openai.com/v1/chat/completions",
            ),
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080/chat/completions"),
            (
                "http://127.0.0.1:1/v1?key=SECRET",
                "http://127.0.0.1:1/v1/chat/completions?key=SECRET",
            ),
            (
                "https://x.openai.azure.com/openai/deployments/d/?api-version=2024-02-01&key=k",
                "https://x.openai.azure.com/openai/deployments/d/chat/completions?api-version=2024-02-01&key=k",
            ),
            (" http://h/v1 ", "http://h/v1/chat/completions"),
        ] {
            assert_eq!(chat_url(base).unwrap().as_str(), built, "{base}");
        }
    }

    #[test]
    fn bad_base_urls_are_refused_without_quoting_them() {
        for base in [
            "ftp://h/v1?key=SECRET",
            "not a url SECRET",
            "http://h/v1?key=SECRET#frag",
            "file:///SECRET",
        ] {
            let err = chat_url(base).unwrap_err();
            assert!(err.starts_with("invalid URL"), "{err}");
            assert!(!err.contains("SECRET"), "{err}");
        }
    }

    #[test]
    fn redaction_drops_userinfo_and_query_values() {
        let url =
            chat_url("https://bob:SECRET@h:8443/v1?key=SECRET&api-version=2024&flag=").unwrap();
        assert_eq!(
            redacted(&url).as_str(),
            "https://h:8443/v1/chat/completions?key=REDACTED&api-version=REDACTED&flag="
        );
        let plain = chat_url("http://h/v1").unwrap();
        assert_eq!(redacted(&plain).as_str(), "http://h/v1/chat/completions");
    }

    #[test]
    fn scrubbing_removes_a_quoted_url_and_its_parts() {
        let url = chat_url("https://bob:SECRET@h/v1?key=SECRET&v=1").unwrap();
        let message = format!(
            "error sending request for url ({url}): key=SECRET rejected for bob:SECRET@h, code 1"
        );
        let scrubbed = scrub(&message, &url);
        assert!(!scrubbed.contains("SECRET"), "{scrubbed}");
        assert!(scrubbed.contains("https://h/v1/chat/completions?key=REDACTED&v=REDACTED"));
        assert!(scrubbed.ends_with("code 1"), "{scrubbed}");
    }
}
