//! Virtual keys, checked in memory: the active set is reloaded from the store whenever the
//! config version moves, so a request never waits on the database to be authenticated.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use axum::http::{header, HeaderMap};
use gatecast_store::{key_hash, KeyInfo};

/// The active keys by SHA-256, and whether a key is needed at all.
pub struct KeyRing {
    require_key: bool,
    current: ArcSwap<KeySet>,
}

#[derive(Default)]
struct KeySet {
    active: HashMap<String, Arc<str>>,
    /// True once any key was ever created: revoking the last key must not open the gateway.
    enforced: bool,
}

/// Why a request was refused; the text is safe to show the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    Missing,
    Invalid,
}

impl AuthFailure {
    pub fn message(self) -> &'static str {
        match self {
            AuthFailure::Missing => {
                "missing virtual key: send `Authorization: Bearer gk_...` (create one with `gatecast keys create NAME`)"
            }
            AuthFailure::Invalid => "invalid or revoked virtual key",
        }
    }
}

impl KeyRing {
    pub fn new(require_key: bool) -> Self {
        Self {
            require_key,
            current: ArcSwap::from_pointee(KeySet::default()),
        }
    }

    /// `active` are the usable keys; `any_created` says whether a key was ever created,
    /// revoked ones included.
    pub fn replace(&self, active: Vec<(String, KeyInfo)>, any_created: bool) {
        let active: HashMap<String, Arc<str>> = active
            .into_iter()
            .map(|(hash, info)| (hash, Arc::from(info.name.as_str())))
            .collect();
        let enforced = any_created || !active.is_empty();
        self.current.store(Arc::new(KeySet { active, enforced }));
    }

    pub fn active_count(&self) -> usize {
        self.current.load().active.len()
    }

    /// Whether requests need a key right now.
    pub fn enforced(&self) -> bool {
        self.require_key || self.current.load().enforced
    }

    /// `Ok(None)` while the gateway runs open (no key was ever created and none is
    /// required); otherwise the name of the key the request presented.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Option<Arc<str>>, AuthFailure> {
        let set = self.current.load();
        if !set.enforced && !self.require_key {
            return Ok(None);
        }
        // Anthropic's SDKs send the key as `x-api-key`; OpenAI's as a bearer token.
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer)
            .or_else(|| {
                headers
                    .get("x-api-key")
                    .and_then(|v| v.to_str().ok())
                    .map(str::trim)
                    .filter(|k| !k.is_empty())
            })
            .ok_or(AuthFailure::Missing)?;
        // Real keys are 43 characters; anything far longer is not worth hashing.
        if presented.len() > 256 {
            return Err(AuthFailure::Invalid);
        }
        set.active
            .get(&key_hash(presented))
            .cloned()
            .map(Some)
            .ok_or(AuthFailure::Invalid)
    }
}

fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn info(name: &str) -> KeyInfo {
        KeyInfo {
            id: "id".into(),
            name: name.into(),
            prefix: "gk_abcde".into(),
            created_at: chrono::Utc::now(),
            revoked_at: None,
            budget: None,
        }
    }

    fn headers(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(auth).unwrap());
        h
    }

    #[test]
    fn open_until_a_key_exists_then_closed() {
        let ring = KeyRing::new(false);
        assert_eq!(ring.authenticate(&HeaderMap::new()), Ok(None));
        assert_eq!(ring.authenticate(&headers("Bearer sk-anything")), Ok(None));
        ring.replace(vec![(key_hash("gk_team"), info("team-a"))], true);
        assert_eq!(
            ring.authenticate(&headers("Bearer gk_team"))
                .unwrap()
                .as_deref(),
            Some("team-a")
        );
        assert_eq!(
            ring.authenticate(&headers("bearer   gk_team "))
                .unwrap()
                .as_deref(),
            Some("team-a")
        );
        assert_eq!(
            ring.authenticate(&HeaderMap::new()),
            Err(AuthFailure::Missing)
        );
        assert_eq!(
            ring.authenticate(&headers("Basic gk_team")),
            Err(AuthFailure::Missing)
        );
        assert_eq!(
            ring.authenticate(&headers("Bearer gk_other")),
            Err(AuthFailure::Invalid)
        );
        assert_eq!(
            ring.authenticate(&headers(&format!("Bearer {}", "a".repeat(5000)))),
            Err(AuthFailure::Invalid)
        );
        ring.replace(Vec::new(), true);
        assert_eq!(
            ring.authenticate(&headers("Bearer gk_team")),
            Err(AuthFailure::Invalid),
            "revoking the last key does not open the gateway"
        );
        assert_eq!(
            ring.authenticate(&HeaderMap::new()),
            Err(AuthFailure::Missing)
        );
    }

    #[test]
    fn require_key_refuses_while_no_key_exists() {
        let ring = KeyRing::new(true);
        assert_eq!(
            ring.authenticate(&HeaderMap::new()),
            Err(AuthFailure::Missing)
        );
        assert_eq!(
            ring.authenticate(&headers("Bearer gk_x")),
            Err(AuthFailure::Invalid)
        );
    }
}
