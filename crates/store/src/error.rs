use std::path::PathBuf;

/// Every way the store can fail. Messages are written for the operator who reads them in a log
/// line or a CLI error, so each one says what went wrong and, where there is one, what to do.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported database URL `{url}`: expected `sqlite://PATH` or `postgres://USER:PASSWORD@HOST/DB`")]
    UnsupportedUrl { url: String },

    #[error("invalid database URL `{url}`: {source}")]
    InvalidUrl {
        url: String,
        #[source]
        source: sqlx::Error,
    },

    #[error("cannot connect to database `{url}`: {source}")]
    Connect {
        url: String,
        #[source]
        source: sqlx::Error,
    },

    #[error("{action} `{path}`: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),

    #[error("the database has no Gatecast tables yet: run `gatecast migrate` first ({source})")]
    NotMigrated {
        #[source]
        source: sqlx::Error,
    },

    #[error("no Gatecast database at `{location}`")]
    NoDatabase { location: String },

    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),

    #[error("invalid GATECAST_SECRET_KEY: {reason}")]
    InvalidSecretKey { reason: String },

    #[error("invalid secret key file `{path}`: {reason}")]
    InvalidSecretKeyFile { path: PathBuf, reason: String },

    #[error(
        "wrong GATECAST_SECRET_KEY: cannot decrypt stored secrets. Use the key this database was \
         created with (GATECAST_SECRET_KEY, or secret.key in the data directory)"
    )]
    WrongSecretKey,

    #[error("a stored secret of destination `{name}` cannot be decrypted: the value is corrupt")]
    CorruptSecret { name: String },

    #[error("corrupt row in table `{table}`: {reason}")]
    CorruptRow { table: &'static str, reason: String },

    #[error(
        "destination `{name}` is declared in the config file and is read-only here, but for \
         runtime overrides of `privacy_mode` and `enabled`: change the rest in the config file"
    )]
    ReadOnly { name: String },

    #[error(
        "destination `{name}` was created through the admin API or CLI: it has no config-file \
         values to override or reset to; change its fields directly"
    )]
    NotOverridable { name: String },

    #[error(
        "destination `{name}` is declared in the config file but a destination with that name was \
         already created through the admin API or CLI: rename one of them, or delete the API one"
    )]
    NameClash { name: String },

    #[error("{what} `{name}` not found")]
    NotFound { what: &'static str, name: String },

    #[error("{what} `{name}` already exists")]
    AlreadyExists { what: &'static str, name: String },

    #[error("invalid {field}: {reason}")]
    Invalid { field: String, reason: String },
}

impl StoreError {
    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        StoreError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}
