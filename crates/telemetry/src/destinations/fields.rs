//! What a destination type says about its own fields, so the CLI flags, the admin API's
//! retest rule, the store's secret handling and report scrubbing read one declaration
//! instead of keeping copies; and the error that names a field.

/// A mistake in a destination's settings, at the field it is about (`endpoint`,
/// `filters.groups[0].rules[1].value`); an empty path means the destination as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct FieldError {
    pub path: String,
    pub message: String,
}

impl FieldError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }

    /// The error of a field inside `parent` (`headers` + `x-a` → `headers.x-a`).
    pub fn under(self, parent: &str) -> Self {
        let path = match (parent.is_empty(), self.path.is_empty()) {
            (true, _) => self.path,
            (false, true) => parent.to_owned(),
            (false, false) => format!("{parent}.{}", self.path),
        };
        Self { path, ..self }
    }

    fn render(&self) -> String {
        if self.path.is_empty() {
            self.message.clone()
        } else {
            format!("{}: {}", self.path, self.message)
        }
    }

    /// A serde error at the path `serde_path_to_error` tracked (`.` is the object itself).
    pub fn from_serde<E: std::fmt::Display>(e: serde_path_to_error::Error<E>) -> Self {
        let path = e.path().to_string();
        Self {
            path: if path == "." { String::new() } else { path },
            message: e.into_inner().to_string(),
        }
    }
}

/// One field a destination type adds to the flat shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldSpec {
    /// The key in the config file, the admin API and the store.
    pub name: &'static str,
    /// One line for `--help`, without the type's name (the CLI adds it).
    pub help: &'static str,
    pub secret: Secret,
    /// A change of it can break delivery, so an update re-runs the connection test.
    pub needs_retest: bool,
    pub flag: Flag,
}

/// How much of a field's value must not be shown or kept in clear.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secret {
    No,
    /// The whole value (a DSN, a token).
    Whole,
    /// Every value of the map (auth headers).
    EachValue,
    /// A URL's password, query and fragment (a webhook's `?token=`); its host stays visible.
    UrlParts,
}

/// How the field is given on `gatecast destinations add|update`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flag {
    /// Only as `--set FIELD=VALUE`.
    None,
    /// `--LONG VALUE`.
    Value(&'static str),
    /// `--LONG NAME=VALUE`, repeated, into a map.
    Pairs(&'static str),
}

/// A field every type that sends over the network shares.
pub const HEADERS: FieldSpec = FieldSpec {
    name: "headers",
    help: "a header sent with every export, as NAME=VALUE; repeat for more.",
    secret: Secret::EachValue,
    needs_retest: true,
    flag: Flag::Pairs("header"),
};

/// Destinations speak HTTP(S) only: `file://` and other schemes are refused before anything
/// reads the URL.
pub fn check_http_url(field: &str, value: &str) -> Result<(), FieldError> {
    let fail = |message: String| FieldError::new(field, message);
    let url = url::Url::parse(value.trim()).map_err(|e| fail(format!("invalid URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(fail(format!(
            "the scheme must be http or https, not `{}`",
            url.scheme()
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(fail("the URL has no host".into()));
    }
    Ok(())
}

/// The parts of a URL that are credentials: user, password and query.
pub fn url_secrets(value: &str) -> Vec<String> {
    let Ok(url) = url::Url::parse(value) else {
        return Vec::new();
    };
    let mut out = vec![url.username().to_owned()];
    out.extend(url.password().map(str::to_owned));
    out.extend(url.query().map(str::to_owned));
    out
}

/// `gzip` or `none`, for the types that let the operator choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    Gzip,
    None,
}

/// A type's struct from the keys the common settings left, with errors at the exact key.
pub(crate) fn parse<T: serde::de::DeserializeOwned>(
    rest: serde_json::Map<String, serde_json::Value>,
) -> Result<T, FieldError> {
    serde_path_to_error::deserialize(serde_json::Value::Object(rest))
        .map_err(FieldError::from_serde)
}

/// A type's struct as the keys it adds to the flat shape.
pub(crate) fn to_flat<T: serde::Serialize>(
    config: &T,
) -> Result<serde_json::Map<String, serde_json::Value>, serde_json::Error> {
    match serde_json::to_value(config)? {
        serde_json::Value::Object(map) => Ok(map),
        _ => Err(serde::ser::Error::custom(
            "a destination type's settings must be an object",
        )),
    }
}
