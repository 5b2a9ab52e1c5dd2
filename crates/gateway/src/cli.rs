//! Command-line interface.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Arg, ArgAction, ArgMatches, Args, FromArgMatches, Parser, Subcommand, ValueEnum};
use gatecast_telemetry::destinations::{self, Flag};

#[derive(Debug, Parser)]
#[command(
    name = "gatecast",
    version,
    about = "OpenAI-compatible LLM gateway that broadcasts every exchange as an OpenTelemetry GenAI trace",
    long_about = "Gatecast forwards OpenAI-compatible chat requests to your providers, streams answers back \
                  unchanged, and turns each exchange into an OpenTelemetry trace that it delivers to Sentry, \
                  OTLP endpoints, webhooks and files, each with its own privacy mode.\n\n\
                  With no arguments, `gatecast serve` reads config/gatecast.toml, which serves a built-in \
                  mock provider on 127.0.0.1:8080 and writes traces to data/traces.jsonl."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Pretty, env = "GATECAST_LOG_FORMAT")]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// Parsed once per process, so the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway.
    Serve {
        /// Config file [default: $GATECAST_CONFIG, else config/gatecast.toml].
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Listen address; overrides `server.listen`.
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Validate a config file and exit non-zero on any error.
    CheckConfig {
        /// Config file [default: $GATECAST_CONFIG, else config/gatecast.toml].
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Manage telemetry destinations in the store; running gateways apply changes within
    /// about a second, and each change waits (a few seconds at most) to say they did.
    #[command(
        subcommand,
        after_help = "Examples:\n  gatecast destinations list\n  gatecast destinations add sentry --type sentry --dsn \"$SENTRY_DSN\"\n  gatecast destinations privacy sentry on\n  gatecast destinations test"
    )]
    Destinations(DestinationsCommand),
    /// Manage virtual keys: once one exists, clients must send `Authorization: Bearer gk_...`.
    #[command(
        subcommand,
        after_help = "Examples:\n  gatecast keys create team-a\n  gatecast keys create team-b --budget-usd 50 --budget-period month\n  gatecast keys list\n  gatecast keys budget team-a --usd 5 --period day\n  gatecast keys revoke team-a"
    )]
    Keys(KeysCommand),
    /// Print what was spent, per UTC day, key, user and model (or summed by one of them).
    #[command(
        after_help = "Examples:\n  gatecast spend\n  gatecast spend --since 2026-05-01 --by key\n  gatecast spend --by model --json"
    )]
    Spend {
        /// The first UTC day to count, as YYYY-MM-DD [default: every day recorded].
        #[arg(long, value_name = "YYYY-MM-DD")]
        since: Option<String>,
        /// Sum by one dimension instead of one line per day, key, user and model.
        #[arg(long, value_enum)]
        by: Option<SpendByArg>,
        /// Print JSON (as `GET /admin/v1/spend` answers) instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: StoreTarget,
    },
    /// Create the database if there is none yet, and apply pending migrations; then exit.
    #[command(after_help = "Example:\n  gatecast migrate --config /etc/gatecast/gatecast.toml")]
    Migrate {
        #[command(flatten)]
        target: ConfigTarget,
    },
}

/// The config file a command reads.
#[derive(Debug, Clone, Args)]
pub struct ConfigTarget {
    /// Config file whose `[store]` to use [default: $GATECAST_CONFIG, else config/gatecast.toml].
    #[arg(long, short)]
    pub config: Option<PathBuf>,
}

/// Which store a command works on: the `[store]` of this config file. Relative paths in it
/// are relative to the file's directory, not to where the command runs.
#[derive(Debug, Clone, Args)]
pub struct StoreTarget {
    /// Config file whose `[store]` to use [default: $GATECAST_CONFIG, else config/gatecast.toml].
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Create the database if it does not exist yet; without it the command refuses, naming
    /// the database it looked for (as `gatecast migrate` would create it).
    #[arg(long)]
    pub create: bool,
}

#[derive(Debug, Subcommand)]
pub enum DestinationsCommand {
    /// List every destination, secrets masked.
    #[command(after_help = "Example:\n  gatecast destinations list --json")]
    List {
        #[command(flatten)]
        target: StoreTarget,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Add a destination. The connection is tested first; a failing test saves nothing.
    #[command(
        after_help = "Examples:\n  gatecast destinations add sentry --type sentry --dsn \"https://KEY@o1.ingest.sentry.io/42\"\n  gatecast destinations add collector --type otlp --endpoint http://127.0.0.1:4318/v1/traces --privacy\n  gatecast destinations add langfuse --type otlp --endpoint https://cloud.langfuse.com/api/public/otel/v1/traces \\\n      --header \"authorization=Basic $LANGFUSE_AUTH\" --set flush_interval_ms=500"
    )]
    Add {
        /// The destination's name.
        name: String,
        #[command(flatten)]
        fields: DestinationFields,
        /// Save without testing the connection.
        #[arg(long)]
        skip_test: bool,
        #[command(flatten)]
        target: StoreTarget,
        #[command(flatten)]
        wait: ApplyWait,
    },
    /// Change some fields of a destination; a change to how it is reached re-runs the test.
    /// Of a destination declared in the config file only --privacy/--no-privacy and
    /// --enable/--disable can be changed, as runtime overrides.
    #[command(
        after_help = "Examples:\n  gatecast destinations update collector --sampling-rate 0.1\n  gatecast destinations update collector --set 'filters={\"include_keys\":[\"team-a\"]}'"
    )]
    Update {
        name: String,
        #[command(flatten)]
        fields: DestinationFields,
        #[arg(long)]
        skip_test: bool,
        #[command(flatten)]
        target: StoreTarget,
        #[command(flatten)]
        wait: ApplyWait,
    },
    /// Delete a destination; gateways flush what they hold for it, then stop sending.
    #[command(after_help = "Example:\n  gatecast destinations remove collector")]
    Remove {
        name: String,
        #[command(flatten)]
        target: StoreTarget,
        #[command(flatten)]
        wait: ApplyWait,
    },
    /// Turn privacy mode on or off: content is stripped, tokens, cost and metadata stay. On a
    /// destination of the config file this is a runtime override, kept across restarts until
    /// `reset` (back to the file's value).
    #[command(
        after_help = "Examples:\n  gatecast destinations privacy sentry on\n  gatecast destinations privacy local-file reset"
    )]
    Privacy {
        name: String,
        state: Switch,
        #[command(flatten)]
        target: StoreTarget,
        #[command(flatten)]
        wait: ApplyWait,
    },
    /// Deliver to a destination again (a runtime override on one of the config file).
    #[command(after_help = "Example:\n  gatecast destinations enable collector")]
    Enable {
        name: String,
        #[command(flatten)]
        target: StoreTarget,
        #[command(flatten)]
        wait: ApplyWait,
    },
    /// Stop delivering to a destination, keeping it (a runtime override on one of the config
    /// file).
    #[command(after_help = "Example:\n  gatecast destinations disable collector")]
    Disable {
        name: String,
        #[command(flatten)]
        target: StoreTarget,
        #[command(flatten)]
        wait: ApplyWait,
    },
    /// Clear every runtime override of a config-file destination: privacy mode and enabled
    /// follow the file again.
    #[command(after_help = "Example:\n  gatecast destinations reset local-file")]
    Reset {
        name: String,
        #[command(flatten)]
        target: StoreTarget,
        #[command(flatten)]
        wait: ApplyWait,
    },
    /// Send an empty export marked `X-Test-Connection: true` to one destination, or to all.
    #[command(
        after_help = "Examples:\n  gatecast destinations test\n  gatecast destinations test sentry"
    )]
    Test {
        name: Option<String>,
        #[command(flatten)]
        target: StoreTarget,
    },
    /// Send one synthetic generation, to see a trace arrive.
    #[command(after_help = "Example:\n  gatecast destinations send-test-trace sentry")]
    SendTestTrace {
        name: String,
        #[command(flatten)]
        target: StoreTarget,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Switch {
    On,
    Off,
    /// Back to the config file's value (config-file destinations only).
    Reset,
}

/// After a change: whether to wait for the running gateways to apply it.
#[derive(Debug, Clone, Copy, Default, Args)]
pub struct ApplyWait {
    /// Do not wait (a few seconds at most) to report whether running gateways applied it.
    #[arg(long)]
    pub no_wait: bool,
}

/// Destination fields as flags; the names are the config file's. `--set` covers the rest.
#[derive(Debug, Clone, Default, Args)]
pub struct DestinationFields {
    #[command(flatten)]
    pub by_type: TypeFlags,
    /// Strip content at this destination.
    #[arg(long, conflicts_with = "no_privacy")]
    pub privacy: bool,
    #[arg(long)]
    pub no_privacy: bool,
    /// Fraction of sessions kept, 0.0001..=1.
    #[arg(long)]
    pub sampling_rate: Option<f64>,
    #[arg(long, conflicts_with = "enable")]
    pub disable: bool,
    #[arg(long)]
    pub enable: bool,
    /// Any other field, as FIELD=VALUE; VALUE is read as JSON when it parses, else as text.
    #[arg(long = "set", value_name = "FIELD=VALUE")]
    pub set: Vec<String>,
}

/// `--type` and the flags the destination types declare for their fields (see
/// `gatecast_telemetry::destinations::fields`), so a new type brings its own.
#[derive(Debug, Clone, Default)]
pub struct TypeFlags {
    pub kind: Option<String>,
    /// Each field given as `--FLAG VALUE`.
    pub values: Vec<(&'static str, String)>,
    /// Each field given as `--FLAG NAME=VALUE` (repeatable): the field, the flag, the pairs.
    pub pairs: Vec<(&'static str, &'static str, Vec<String>)>,
}

const TYPE_ARG: &str = "type";

impl Args for TypeFlags {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        let types: Vec<&str> = destinations::TYPES.iter().map(|t| t.name).collect();
        let mut cmd = cmd.arg(
            Arg::new(TYPE_ARG)
                .long(TYPE_ARG)
                .value_name("TYPE")
                .help(types.join(" | ")),
        );
        for (field, declared_by) in destinations::all_fields() {
            let help = format!("{}: {}", declared_by.join(", "), field.help);
            cmd = match field.flag {
                Flag::None => cmd,
                Flag::Value(long) => cmd.arg(Arg::new(field.name).long(long).help(help)),
                Flag::Pairs(long) => cmd.arg(
                    Arg::new(field.name)
                        .long(long)
                        .value_name("NAME=VALUE")
                        .action(ArgAction::Append)
                        .help(help),
                ),
            };
        }
        cmd
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

impl FromArgMatches for TypeFlags {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut out = Self::default();
        out.update_from_arg_matches(matches)?;
        Ok(out)
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        let one = |id: &str| matches.try_get_one::<String>(id).ok().flatten().cloned();
        if let Some(kind) = one(TYPE_ARG) {
            self.kind = Some(kind);
        }
        for (field, _) in destinations::all_fields() {
            match field.flag {
                Flag::None => {}
                Flag::Value(_) => {
                    if let Some(value) = one(field.name) {
                        self.values.push((field.name, value));
                    }
                }
                Flag::Pairs(long) => {
                    if let Ok(Some(given)) = matches.try_get_many::<String>(field.name) {
                        self.pairs
                            .push((field.name, long, given.cloned().collect()));
                    }
                }
            }
        }
        Ok(())
    }
}

/// `gatecast spend --by`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SpendByArg {
    Key,
    User,
    Model,
    Day,
}

/// `--budget-period` / `--period`: UTC calendar periods.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum BudgetPeriodArg {
    Day,
    /// An ISO week, from Monday.
    Week,
    Month,
    /// The key's whole life: never resets.
    Total,
}

impl BudgetPeriodArg {
    pub fn as_str(self) -> &'static str {
        match self {
            BudgetPeriodArg::Day => "day",
            BudgetPeriodArg::Week => "week",
            BudgetPeriodArg::Month => "month",
            BudgetPeriodArg::Total => "total",
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key; it is printed once and only its hash is stored.
    #[command(
        after_help = "Examples:\n  gatecast keys create team-a\n  gatecast keys create team-a --budget-usd 50 --budget-period day"
    )]
    Create {
        name: String,
        /// Refuse the key's requests (429, `budget_exceeded`) once it has spent this many US
        /// dollars in the period.
        #[arg(long, value_name = "USD", requires = "budget_period")]
        budget_usd: Option<f64>,
        /// The UTC period the budget counts over.
        #[arg(long, value_enum, requires = "budget_usd")]
        budget_period: Option<BudgetPeriodArg>,
        #[command(flatten)]
        target: StoreTarget,
    },
    /// Set, replace or clear a key's budget; running gateways enforce it within about a second.
    #[command(
        after_help = "Examples:\n  gatecast keys budget team-a --usd 50 --period month\n  gatecast keys budget team-a --clear"
    )]
    Budget {
        name: String,
        /// The budget in US dollars (0 refuses every request).
        #[arg(
            long,
            value_name = "USD",
            requires = "period",
            conflicts_with = "clear",
            required_unless_present = "clear"
        )]
        usd: Option<f64>,
        #[arg(long, value_enum, requires = "usd")]
        period: Option<BudgetPeriodArg>,
        /// Remove the budget: the key may spend without limit.
        #[arg(long)]
        clear: bool,
        #[command(flatten)]
        target: StoreTarget,
    },
    /// List keys (prefix only), revoked ones included.
    #[command(after_help = "Example:\n  gatecast keys list")]
    List {
        #[command(flatten)]
        target: StoreTarget,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key; every replica refuses it within about a second.
    #[command(after_help = "Example:\n  gatecast keys revoke team-a")]
    Revoke {
        name: String,
        #[command(flatten)]
        target: StoreTarget,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_destination_types_flags_fit_the_commands() {
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "gatecast",
            "destinations",
            "add",
            "hook",
            "--type",
            "webhook",
            "--url",
            "http://h/",
            "--header",
            "a=1",
            "--header",
            "b=2",
            "--dsn",
            "d",
        ])
        .map_err(|e| e.to_string());
        let Ok(Cli {
            command: Command::Destinations(DestinationsCommand::Add { fields, .. }),
            ..
        }) = cli
        else {
            panic!("{cli:?}");
        };
        let flags = fields.by_type;
        assert_eq!(flags.kind.as_deref(), Some("webhook"));
        assert_eq!(
            flags.values,
            [("dsn", "d".to_owned()), ("url", "http://h/".to_owned())]
        );
        assert_eq!(
            flags.pairs,
            [(
                "headers",
                "header",
                vec!["a=1".to_owned(), "b=2".to_owned()]
            )]
        );
    }
}
