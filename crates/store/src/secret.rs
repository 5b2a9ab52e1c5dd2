//! Secrets at rest: the key, the AEAD envelope, and which config values count as secret.

use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use gatecast_telemetry::destinations::{all_fields, FieldSpec, Secret};
use rand::RngCore as _;
use serde_json::Value;

use crate::StoreError;

/// Environment variable that carries the key; several replicas sharing one Postgres must all
/// be given the same value, which is why a per-machine key file is only the fallback.
pub const SECRET_KEY_ENV: &str = "GATECAST_SECRET_KEY";

/// File name of the generated key inside the data directory.
pub const SECRET_KEY_FILE: &str = "secret.key";

/// Versioned so the format can change later without guessing what an old value is.
const ENVELOPE_PREFIX: &str = "enc:v1:";
const NONCE_LEN: usize = 24;

/// Config keys whose values are secret wherever they appear in a destination's config,
/// beside the fields the destination types declare [`Secret::Whole`]: names a credential
/// nested in an object is likely to have.
const SECRET_KEYS: [&str; 4] = ["api_key", "token", "password", "secret"];

/// The 32-byte key that encrypts destination secrets at rest.
#[derive(Clone)]
pub struct SecretKey([u8; 32]);

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(****)")
    }
}

impl SecretKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        SecretKey(bytes)
    }

    /// A fresh random key.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        SecretKey(bytes)
    }

    /// Parses the textual forms an operator may paste: 64 hex characters, or base64 (standard
    /// or URL-safe, padded or not) of exactly 32 bytes. The value itself never appears in the
    /// error, since it is a secret.
    pub fn parse(text: &str) -> Result<Self, StoreError> {
        parse_text(text).map_err(|reason| StoreError::InvalidSecretKey { reason })
    }

    /// The key from `GATECAST_SECRET_KEY`, or else from `<data_dir>/secret.key`, which is
    /// created with fresh random bytes (mode 0600) on first start. An empty variable counts as
    /// unset, as compose files often pass `GATECAST_SECRET_KEY=` through.
    pub fn from_env_or_file(data_dir: &Path) -> Result<Self, StoreError> {
        let env = std::env::var(SECRET_KEY_ENV).ok();
        Self::from_value_or_file(env.as_deref(), data_dir)
    }

    /// `from_env_or_file` with the environment value passed in, so it can be tested without
    /// mutating the process environment.
    pub fn from_value_or_file(value: Option<&str>, data_dir: &Path) -> Result<Self, StoreError> {
        match value.map(str::trim) {
            Some(v) if !v.is_empty() => Self::parse(v),
            _ => load_or_create_file(data_dir),
        }
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&self.0.into())
    }

    /// Seals `plaintext` into `enc:v1:<base64(nonce || ciphertext)>` with a random nonce;
    /// XChaCha's 192-bit nonce makes random nonces safe for any realistic number of writes.
    pub(crate) fn encrypt(&self, plaintext: &str) -> Result<String, StoreError> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = self
            .cipher()
            .encrypt(XNonce::from_slice(&nonce), plaintext.as_bytes())
            .map_err(|_| StoreError::invalid("secret", "value is too large to encrypt"))?;
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(format!("{ENVELOPE_PREFIX}{}", STANDARD.encode(out)))
    }

    /// `None` when the value is not an envelope (stored before encryption, or never secret);
    /// `Some(Err(()))` when it is an envelope this key cannot open.
    pub(crate) fn decrypt(&self, value: &str) -> Option<Result<String, ()>> {
        let encoded = value.strip_prefix(ENVELOPE_PREFIX)?;
        Some(self.open(encoded))
    }

    fn open(&self, encoded: &str) -> Result<String, ()> {
        let raw = STANDARD.decode(encoded).map_err(|_| ())?;
        if raw.len() < NONCE_LEN {
            return Err(());
        }
        let (nonce, sealed) = raw.split_at(NONCE_LEN);
        let plain = self
            .cipher()
            .decrypt(XNonce::from_slice(nonce), sealed)
            .map_err(|_| ())?;
        String::from_utf8(plain).map_err(|_| ())
    }
}

fn parse_text(text: &str) -> Result<SecretKey, String> {
    let text = text.trim();
    if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        let bytes = hex::decode(text).map_err(|e| e.to_string())?;
        return to_key(&bytes).ok_or_else(|| "hex key must be 32 bytes".to_owned());
    }
    for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
        if let Ok(bytes) = engine.decode(text) {
            return to_key(&bytes).ok_or_else(|| {
                format!(
                    "the base64 value decodes to {} bytes; it must be exactly 32 bytes",
                    bytes.len()
                )
            });
        }
    }
    Err(format!(
        "expected 32 bytes as base64 (44 characters, e.g. from `openssl rand -base64 32`) or as \
         64 hex characters; got {} characters that are neither",
        text.chars().count()
    ))
}

fn to_key(bytes: &[u8]) -> Option<SecretKey> {
    <[u8; 32]>::try_from(bytes).ok().map(SecretKey)
}

fn load_or_create_file(data_dir: &Path) -> Result<SecretKey, StoreError> {
    let path = data_dir.join(SECRET_KEY_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => return key_from_file(&path, &bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(StoreError::Io {
                action: "cannot read secret key file",
                path,
                source,
            })
        }
    }
    std::fs::create_dir_all(data_dir).map_err(|source| StoreError::Io {
        action: "cannot create data directory",
        path: data_dir.to_path_buf(),
        source,
    })?;
    let key = SecretKey::generate();
    // Written to a private temp file and then linked into place, so a crash never leaves a
    // half-written key behind and two processes starting together agree on one key.
    let tmp = data_dir.join(format!(
        ".{SECRET_KEY_FILE}.{}.{:08x}",
        std::process::id(),
        rand::rng().next_u32()
    ));
    let io = |action: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| StoreError::Io {
            action,
            path,
            source,
        }
    };
    write_private(&tmp, &key.0).map_err(io("cannot write secret key file", &tmp))?;
    let linked = std::fs::hard_link(&tmp, &path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            tracing::info!(path = %path.display(), "generated a new secret key for encrypting destination secrets; back it up, or set GATECAST_SECRET_KEY");
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let bytes = std::fs::read(&path).map_err(io("cannot read secret key file", &path))?;
            key_from_file(&path, &bytes)
        }
        Err(source) => Err(StoreError::Io {
            action: "cannot create secret key file",
            path,
            source,
        }),
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

fn key_from_file(path: &Path, bytes: &[u8]) -> Result<SecretKey, StoreError> {
    warn_if_readable_by_others(path);
    if let Some(key) = to_key(bytes) {
        return Ok(key);
    }
    let text = std::str::from_utf8(bytes).map_err(|_| StoreError::InvalidSecretKeyFile {
        path: path.to_path_buf(),
        reason: format!(
            "expected 32 raw bytes, or the key as base64 or hex text; found {} bytes",
            bytes.len()
        ),
    })?;
    parse_text(text).map_err(|reason| StoreError::InvalidSecretKeyFile {
        path: PathBuf::from(path),
        reason,
    })
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(path = %path.display(), "secret key file is readable by other users; run `chmod 600` on it");
        }
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &Path) {}

/// The fields the destination types declare with `secret`.
fn declared(secret: Secret) -> impl Iterator<Item = &'static str> {
    static FIELDS: LazyLock<Vec<FieldSpec>> =
        LazyLock::new(|| all_fields().into_iter().map(|(f, _)| f).collect());
    FIELDS
        .iter()
        .filter(move |f| f.secret == secret)
        .map(|f| f.name)
}

fn is_secret_key(key: &str) -> bool {
    SECRET_KEYS
        .into_iter()
        .chain(declared(Secret::Whole))
        .any(|k| k.eq_ignore_ascii_case(key))
}

/// Every value of an object under such a key is secret (auth headers).
fn is_secret_map(key: &str) -> bool {
    declared(Secret::EachValue).any(|k| k.eq_ignore_ascii_case(key))
}

/// Calls `f` on every secret leaf of `config` (strings, numbers, booleans; never null). The
/// walk goes into nested objects so a secret nested one level down (`{"auth": {"token": ..}}`)
/// is still protected; under a secret key, every leaf of an array or object is secret.
pub(crate) fn for_each_secret<E>(
    config: &mut Value,
    f: &mut dyn FnMut(&str, &mut Value) -> Result<(), E>,
) -> Result<(), E> {
    let mut pointer = String::new();
    walk(config, false, &mut pointer, f)
}

fn walk<E>(
    value: &mut Value,
    secret: bool,
    pointer: &mut String,
    f: &mut dyn FnMut(&str, &mut Value) -> Result<(), E>,
) -> Result<(), E> {
    let len = pointer.len();
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                pointer.push('/');
                pointer.push_str(&key.replace('~', "~0").replace('/', "~1"));
                if secret || is_secret_key(key) {
                    walk(child, true, pointer, f)?;
                } else if is_secret_map(key) {
                    if let Value::Object(_) = child {
                        let mut inner = std::mem::take(child);
                        if let Value::Object(headers) = &mut inner {
                            let base = pointer.len();
                            for (name, header) in headers.iter_mut() {
                                pointer.push('/');
                                pointer.push_str(&name.replace('~', "~0").replace('/', "~1"));
                                walk(header, true, pointer, f)?;
                                pointer.truncate(base);
                            }
                        }
                        *child = inner;
                    } else {
                        walk(child, false, pointer, f)?;
                    }
                } else {
                    walk(child, false, pointer, f)?;
                }
                pointer.truncate(len);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                pointer.push('/');
                pointer.push_str(&i.to_string());
                walk(item, secret, pointer, f)?;
                pointer.truncate(len);
            }
        }
        Value::Null => {}
        leaf => {
            if secret {
                f(pointer, leaf)?;
            }
        }
    }
    Ok(())
}

/// The text of a secret leaf; numbers and booleans are secrets too (a numeric password).
pub(crate) fn leaf_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `****` plus the last four characters, so an operator can tell which secret is configured
/// without seeing it; short values show nothing, since four characters would be most of them.
pub fn mask_secret(value: &str) -> String {
    let count = value.chars().count();
    if count < 8 {
        return "****".to_owned();
    }
    let tail: String = value.chars().skip(count - 4).collect();
    format!("****{tail}")
}

/// Top-level config keys holding a URL ([`Secret::UrlParts`]). Webhook and collector URLs
/// often carry a token in the query string or a password in the authority, so reads show
/// them masked too.
fn url_keys() -> impl Iterator<Item = &'static str> {
    declared(Secret::UrlParts)
}

/// The URL with its password, every query value and the fragment replaced by `****`, keeping
/// the scheme, host, path and query names an operator needs to recognise it. A URL with none
/// of those comes back unchanged; one that does not parse but looks like it carries any is
/// masked whole.
pub fn mask_url(value: &str) -> String {
    let Ok(mut url) = url::Url::parse(value) else {
        return if value.contains(['?', '@', '#']) {
            mask_secret(value)
        } else {
            value.to_owned()
        };
    };
    if url.password().is_none() && url.query().is_none() && url.fragment().is_none() {
        return value.to_owned();
    }
    if url.password().is_some() {
        let _ = url.set_password(Some("****"));
    }
    if url.query().is_some() {
        let names: Vec<String> = url.query_pairs().map(|(k, _)| k.into_owned()).collect();
        let query = names
            .iter()
            .map(|k| format!("{k}=****"))
            .collect::<Vec<_>>()
            .join("&");
        url.set_query(Some(&query));
    }
    if url.fragment().is_some() {
        url.set_fragment(Some("****"));
    }
    url.to_string()
}

pub(crate) fn mask_config(config: &Value) -> Value {
    let mut out = config.clone();
    let _ = for_each_secret::<std::convert::Infallible>(&mut out, &mut |_, leaf| {
        *leaf = Value::String(mask_secret(&leaf_text(leaf)));
        Ok(())
    });
    let _ = for_each_url::<std::convert::Infallible>(&mut out, &mut |url| {
        *url = mask_url(url);
        Ok(())
    });
    out
}

/// Calls `f` on each top-level URL of `config` (see [`url_keys`]).
fn for_each_url<E>(
    config: &mut Value,
    f: &mut dyn FnMut(&mut String) -> Result<(), E>,
) -> Result<(), E> {
    if let Value::Object(map) = config {
        for key in url_keys() {
            if let Some(Value::String(url)) = map.get_mut(key) {
                f(url)?;
            }
        }
    }
    Ok(())
}

/// Whether a URL holds what [`mask_url`] hides (a password, a query, a fragment): a webhook's
/// `?token=` is as secret as an API key, so such URLs are sealed at rest as a whole.
fn url_carries_secret(url: &str) -> bool {
    mask_url(url) != url
}

pub(crate) fn encrypt_config(key: &SecretKey, config: &Value) -> Result<Value, StoreError> {
    let mut out = config.clone();
    for_each_secret::<StoreError>(&mut out, &mut |_, leaf| {
        let text = leaf_text(leaf);
        // Already sealed (e.g. a row copied through): sealing twice would hide the secret.
        if text.starts_with(ENVELOPE_PREFIX) && key.decrypt(&text).is_some_and(|r| r.is_ok()) {
            return Ok(());
        }
        *leaf = Value::String(key.encrypt(&text)?);
        Ok(())
    })?;
    for_each_url::<StoreError>(&mut out, &mut |url| {
        if !url.starts_with(ENVELOPE_PREFIX) && url_carries_secret(url) {
            *url = key.encrypt(url)?;
        }
        Ok(())
    })?;
    Ok(out)
}

pub(crate) fn decrypt_config(
    key: &SecretKey,
    config: &Value,
    name: &str,
) -> Result<Value, StoreError> {
    let mut out = config.clone();
    let mut open = |s: &mut String| match key.decrypt(s) {
        None => Ok(()),
        Some(Ok(plain)) => {
            *s = plain;
            Ok(())
        }
        Some(Err(())) => Err(StoreError::CorruptSecret {
            name: name.to_owned(),
        }),
    };
    for_each_secret::<StoreError>(&mut out, &mut |_, leaf| match leaf {
        Value::String(s) => open(s),
        _ => Ok(()),
    })?;
    for_each_url::<StoreError>(&mut out, &mut open)?;
    Ok(out)
}

/// A client that read a masked record and sends it back (the UI's privacy toggle, a PATCH of
/// the whole config) must not overwrite the real secret with `****1a2b`: a secret leaf equal to
/// the mask of the current value at the same place keeps the current value.
pub fn restore_masked(new: &mut Value, current: &Value) {
    let _ = for_each_secret::<std::convert::Infallible>(new, &mut |pointer, leaf| {
        if let (Value::String(s), Some(old)) = (&*leaf, current.pointer(pointer)) {
            if s.starts_with("****") && !old.is_null() && *s == mask_secret(&leaf_text(old)) {
                *leaf = old.clone();
            }
        }
        Ok(())
    });
    if let (Value::Object(new), Value::Object(current)) = (new, current) {
        for key in url_keys() {
            if let (Some(Value::String(sent)), Some(Value::String(stored))) =
                (new.get(key), current.get(key))
            {
                if sent != stored && *sent == mask_url(stored) {
                    new.insert(key.to_owned(), Value::String(stored.clone()));
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parse_accepts_hex_and_base64_and_rejects_the_rest() {
        let bytes: [u8; 32] = std::array::from_fn(|i| i as u8);
        let hex = hex::encode(bytes);
        assert_eq!(SecretKey::parse(&hex).map(|k| k.0).ok(), Some(bytes));
        let b64 = STANDARD.encode(bytes);
        assert_eq!(SecretKey::parse(&b64).map(|k| k.0).ok(), Some(bytes));
        assert_eq!(
            SecretKey::parse(&URL_SAFE_NO_PAD.encode(bytes))
                .map(|k| k.0)
                .ok(),
            Some(bytes)
        );
        let short = SecretKey::parse(&STANDARD.encode([1u8; 16])).unwrap_err();
        assert!(short.to_string().contains("16 bytes"), "{short}");
        let junk = SecretKey::parse("not a key!").unwrap_err();
        assert!(junk.to_string().contains("GATECAST_SECRET_KEY"), "{junk}");
        assert!(!junk.to_string().contains("not a key"), "{junk}");
    }

    #[test]
    fn urls_with_credentials_are_sealed_whole_and_plain_ones_stay_readable() {
        let key = SecretKey::generate();
        let config = json!({
            "url": "https://hooks.example.com/in?token=s3cr3t-token",
            "endpoint": "http://collector:4318/v1/traces",
            "otlp_endpoint": "http://user:pa55word@collector:4318",
            "method": "POST"
        });
        let sealed = encrypt_config(&key, &config).unwrap();
        let text = sealed.to_string();
        assert!(
            !text.contains("s3cr3t-token") && !text.contains("pa55word"),
            "{text}"
        );
        assert!(!text.contains("hooks.example.com"), "sealed whole: {text}");
        assert_eq!(sealed["endpoint"], config["endpoint"]);
        assert_eq!(sealed["method"], "POST");
        assert_eq!(decrypt_config(&key, &sealed, "d").unwrap(), config);
        let again = encrypt_config(&key, &sealed).unwrap();
        assert_eq!(again, sealed, "a sealed URL is not sealed twice");
        let other = SecretKey::generate();
        assert!(matches!(
            decrypt_config(&other, &sealed, "d"),
            Err(StoreError::CorruptSecret { .. })
        ));
    }

    #[test]
    fn envelope_round_trips_and_fails_with_another_key() {
        let key = SecretKey::generate();
        let sealed = key.encrypt("hunter2").unwrap();
        assert!(sealed.starts_with("enc:v1:"));
        assert!(!sealed.contains("hunter2"));
        assert_ne!(
            sealed,
            key.encrypt("hunter2").unwrap(),
            "nonce must be random"
        );
        assert_eq!(key.decrypt(&sealed), Some(Ok("hunter2".to_owned())));
        assert_eq!(SecretKey::generate().decrypt(&sealed), Some(Err(())));
        assert_eq!(key.decrypt("plain"), None);
        assert_eq!(key.decrypt("enc:v1:!!!"), Some(Err(())));
    }

    #[test]
    fn masking_covers_secret_keys_and_headers() {
        let config = json!({
            "dsn": "https://0123456789abcdef0123456789abcdef@o1.ingest.sentry.io/42",
            "endpoint": "http://collector:4318",
            "headers": {"authorization": "Bearer abcdefgh1a2b", "x-short": "abc"},
            "nested": {"Password": 12345678},
            "protocol": "http/json"
        });
        let masked = mask_config(&config);
        assert_eq!(masked["dsn"], "****o/42");
        assert_eq!(masked["headers"]["authorization"], "****1a2b");
        assert_eq!(masked["headers"]["x-short"], "****");
        assert_eq!(masked["nested"]["Password"], "****5678");
        assert_eq!(masked["endpoint"], "http://collector:4318");
        assert_eq!(masked["protocol"], "http/json");
    }

    #[test]
    fn urls_are_masked_in_reads_and_restored_when_sent_back() {
        let current = json!({
            "url": "https://hooks.example.com/in/abc?token=s3cr3t&v=2#frag",
            "endpoint": "http://user:pw@collector:4318/v1/traces",
            "otlp_endpoint": "http://collector:4318/v1/traces"
        });
        let masked = mask_config(&current);
        assert_eq!(
            masked["url"],
            "https://hooks.example.com/in/abc?token=****&v=****#****"
        );
        assert_eq!(
            masked["endpoint"],
            "http://user:****@collector:4318/v1/traces"
        );
        assert_eq!(
            masked["otlp_endpoint"], current["otlp_endpoint"],
            "nothing to hide"
        );
        let text = masked.to_string();
        assert!(!text.contains("s3cr3t") && !text.contains(":pw@"), "{text}");
        // Sent back as read: the stored URLs stay.
        let mut sent = masked.clone();
        restore_masked(&mut sent, &current);
        assert_eq!(sent, current);
        // A new URL is kept, even one that looks masked but is not the mask of the stored one.
        let mut changed = json!({"url": "https://hooks.example.com/other?token=****"});
        restore_masked(&mut changed, &current);
        assert_eq!(changed["url"], "https://hooks.example.com/other?token=****");
    }

    #[test]
    fn an_unparsable_url_with_a_query_is_masked_whole() {
        assert_eq!(mask_url("not a url?token=abcdefgh"), "****efgh");
        assert_eq!(mask_url("plain-name"), "plain-name");
        assert_eq!(mask_url("https://h/p"), "https://h/p");
    }

    #[test]
    fn mask_secret_shows_last_four_only_for_long_values() {
        assert_eq!(mask_secret("1234567"), "****");
        assert_eq!(mask_secret("12345678"), "****5678");
        assert_eq!(mask_secret(""), "****");
        assert_eq!(mask_secret("ééééééééé1a2b"), "****1a2b");
    }

    #[test]
    fn restore_masked_keeps_the_stored_secret() {
        let current = json!({"dsn": "https://key@host/1234", "headers": {"a": "secret-value-99"}});
        let mut new = mask_config(&current);
        new["endpoint"] = json!("changed");
        restore_masked(&mut new, &current);
        assert_eq!(new["dsn"], current["dsn"]);
        assert_eq!(new["headers"]["a"], current["headers"]["a"]);
        // A genuinely new value is kept.
        let mut replaced = json!({"dsn": "https://other@host/1"});
        restore_masked(&mut replaced, &current);
        assert_eq!(replaced["dsn"], "https://other@host/1");
    }

    #[test]
    fn key_file_is_created_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("nested/data");
        let first = SecretKey::from_value_or_file(None, &data).unwrap();
        let path = data.join(SECRET_KEY_FILE);
        assert_eq!(std::fs::read(&path).unwrap(), first.0.to_vec());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let again = SecretKey::from_value_or_file(Some("  "), &data).unwrap();
        assert_eq!(again.0, first.0);
        // The environment wins over the file.
        let env = SecretKey::from_value_or_file(Some(&hex::encode([7u8; 32])), &data).unwrap();
        assert_eq!(env.0, [7u8; 32]);
        // No stray temp files.
        assert_eq!(std::fs::read_dir(&data).unwrap().count(), 1);
    }

    #[test]
    fn key_file_with_garbage_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(SECRET_KEY_FILE), b"garbage").unwrap();
        let err = SecretKey::from_value_or_file(None, dir.path()).unwrap_err();
        assert!(
            matches!(err, StoreError::InvalidSecretKeyFile { .. }),
            "{err}"
        );
    }
}
