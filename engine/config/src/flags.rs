//! Command line compatible with nats-server's.
//!
//! Tools start `nats-server` with its flags, so the parser follows Go's `flag` package (the one
//! nats-server uses): `-flag` and `--flag` are the same, values come as `-flag=value` or
//! `-flag value`, booleans take a value only with `=`, and parsing stops at the first non-flag
//! argument or at `--`. Error messages use Go's wording because scripts and humans match on it.
//!
//! Flags for features Tachyon does not have yet still parse (so their values are consumed and
//! type-checked) and then fail with [`CliError::Unsupported`]: a drop-in replacement must not
//! pretend to honour `--tls` or `-js` while silently running without them. A flag given its
//! "off" value (`-js=false`, `-m 0`, `--routes ""`) asks for nothing we lack and is accepted.

use std::path::PathBuf;
use std::time::Duration;

pub use crate::options::{JetStreamOpts, MigrateMode, Options, NATS_VERSION, TACHYON_VERSION};
use crate::options::{DEFAULT_HOST, DEFAULT_PORT};

/// What `--signal` asks for; nats-server's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalCommand {
    /// `ldm`: enter lame duck mode.
    LameDuck,
    Stop,
    Quit,
    Term,
    Reopen,
    Reload,
}

impl SignalCommand {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "ldm" => SignalCommand::LameDuck,
            "stop" => SignalCommand::Stop,
            "quit" => SignalCommand::Quit,
            "term" => SignalCommand::Term,
            "reopen" => SignalCommand::Reopen,
            "reload" => SignalCommand::Reload,
            _ => return None,
        })
    }

    /// The Unix signal nats-server sends for this command (server/signal.go).
    pub fn signum(self) -> libc::c_int {
        match self {
            SignalCommand::Stop => libc::SIGKILL,
            SignalCommand::Quit => libc::SIGINT,
            SignalCommand::Reopen => libc::SIGUSR1,
            SignalCommand::Reload => libc::SIGHUP,
            SignalCommand::LameDuck => libc::SIGUSR2,
            SignalCommand::Term => libc::SIGTERM,
        }
    }
}

/// What the process should do.
// Built once per process: boxing Run to shrink the enum would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Run(Options),
    /// Print this usage text to stdout and exit 0.
    Help(String),
    /// Print this line to stdout and exit 0.
    Version(String),
    /// `--signal CMD[=PID]`: send a signal to a running server and exit. `pid` is as given: a
    /// number, a number with a trailing `*` (prefix glob), or a pid file path; `None` means
    /// "find the running server" (nats-server uses pgrep).
    Signal {
        command: SignalCommand,
        pid: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CliError {
    #[error("flag provided but not defined: -{0}")]
    UndefinedFlag(String),
    /// The whole argument, dashes included.
    #[error("bad flag syntax: {0}")]
    BadSyntax(String),
    #[error("flag needs an argument: -{0}")]
    MissingArgument(String),
    #[error("invalid boolean value {value:?} for -{flag}: parse error")]
    InvalidBool { flag: String, value: String },
    #[error("invalid value {value:?} for flag -{flag}: {reason}")]
    InvalidValue {
        flag: String,
        value: String,
        reason: String,
    },
    #[error("unrecognized command: {0:?}")]
    UnrecognizedCommand(String),
    #[error("flag -{0} is not supported yet")]
    Unsupported(String),
    #[error("must specify [-c, --config] option to check configuration file syntax")]
    CheckConfigWithoutConfig,
    #[error("unknown signal {0:?}")]
    UnknownSignal(String),
    #[error("invalid signal parameters: {0:?}")]
    InvalidSignalParameters(Vec<String>),
    #[error("TLS Server certificate must be present and valid")]
    TlsNoCertificate,
    #[error("TLS Server private key must be present and valid")]
    TlsNoKey,
}

impl CliError {
    /// Go's flag package prints the usage text after its own errors (and nats-server then exits
    /// 0, because its usage function exits); nats-server's later checks print only
    /// `nats-server: <error>` and exit 1.
    pub fn shows_usage(&self) -> bool {
        matches!(
            self,
            CliError::UndefinedFlag(_)
                | CliError::BadSyntax(_)
                | CliError::MissingArgument(_)
                | CliError::InvalidBool { .. }
                | CliError::InvalidValue { .. }
        )
    }
}

/// `nats-server: v2.12.0 (tachyon 0.1.0)`
pub fn version_line() -> String {
    format!("nats-server: v{NATS_VERSION} (tachyon {TACHYON_VERSION})")
}

/// Usage text in nats-server's layout (main.go `usageStr`).
pub fn usage() -> &'static str {
    USAGE
}

const USAGE: &str = "
Usage: nats-server [options]

Server Options:
    -a, --addr, --net <host>         Bind to host address (default: 0.0.0.0)
    -p, --port <port>                Use port for clients (default: 4222)
    -n, --name
        --server_name <server_name>  Server name (default: auto)
    -P, --pid <file>                 File to store PID
    -m, --http_port <port>           Use port for http monitoring
    -ms,--https_port <port>          Use port for https monitoring
    -c, --config <file>              Configuration file
    -t                               Test configuration and exit
    -sl,--signal <signal>[=<pid>]    Send signal to nats-server process (ldm, stop, quit, term, reopen, reload)
                                     <pid> can be either a PID (e.g. 1) or the path to a PID file (e.g. /var/run/nats-server.pid)
        --client_advertise <string>  Client URL to advertise to other servers
        --ports_file_dir <dir>       Creates a ports file in the specified directory (<executable_name>_<pid>.ports).

Logging Options:
    -l, --log <file>                 File to redirect log output
    -T, --logtime                    Timestamp log entries (default: true)
    -s, --syslog                     Log to syslog or windows event log
    -r, --remote_syslog <addr>       Syslog server addr (udp://localhost:514)
    -D, --debug                      Enable debugging output
    -V, --trace                      Trace the raw protocol
    -VV                              Verbose trace (traces system account as well)
    -DV                              Debug and trace
    -DVV                             Debug and verbose trace (traces system account as well)
        --log_size_limit <limit>     Logfile size limit (default: auto)
        --max_traced_msg_len <len>   Maximum printable length for traced messages (default: unlimited)

JetStream Options:
    -js, --jetstream                 Enable JetStream functionality
    -sd, --store_dir <dir>           Set the storage directory

Authorization Options:
        --user <user>                User required for connections
        --pass <password>            Password required for connections
        --auth <token>               Authorization token required for connections

TLS Options:
        --tls                        Enable TLS, do not verify clients (default: false)
        --tlscert <file>             Server certificate file
        --tlskey <file>              Private key for server certificate
        --tlsverify                  Enable TLS, verify client certificates
        --tlscacert <file>           Client certificate CA for verification

Cluster Options:
        --routes <rurl-1, rurl-2>    Routes to solicit and connect
        --cluster <cluster-url>      Cluster URL for solicited routes
        --cluster_name <string>      Cluster Name, if not set one will be dynamically generated
        --no_advertise <bool>        Do not advertise known cluster information to clients
        --cluster_advertise <string> Cluster URL to advertise to other servers
        --connect_retries <number>   For implicit routes, number of connect retries
        --cluster_listen <url>       Cluster url from which members can solicit routes

Profiling Options:
        --profile <port>             Profiling HTTP port

Tachyon Options:
        --shards <n>                 Number of shards (threads) (default: one per core)
        --spin_before_park <d>       Busy-poll an idle shard this long before sleeping (default: 0)
        --migrate <mode>             Move a connection to the shard it talks to: on, off, or
                                     chaos (move busy connections at random; for tests) (default: on)

Common Options:
    -h, --help                       Show this message
    -v, --version                    Show version
        --help_tls                   TLS help
";

/// Every flag Tachyon knows, aliases folded together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flag {
    Help,
    NoAdvertise,
    ConnectRetries,
    Routes,
    Cluster,
    ClusterAdvertise,
    ClusterName,
    Port,
    ServerName,
    Host,
    ClientAdvertise,
    Debug,
    Trace,
    TraceVerbose,
    DebugTrace,
    DebugTraceVerbose,
    Logtime,
    LogtimeUtc,
    User,
    Pass,
    Auth,
    Config,
    CheckConfig,
    Signal,
    PidFile,
    PortsFileDir,
    HttpPort,
    LogFile,
    StoreDir,
    JetStream,
    Version,
    Shards,
    MaxPayload,
    MaxControlLine,
    MaxConnections,
    MaxSubscriptions,
    MaxPending,
    WriteDeadline,
    PingInterval,
    SpinBeforePark,
    Migrate,
    PingMax,
    AuthTimeout,
    LameDuckDuration,
    LameDuckGracePeriod,
    Tls,
    TlsVerify,
    TlsCert,
    TlsKey,
    TlsCaCert,
    /// Parses, but the feature does not exist yet.
    Unsupported(ValueKind),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ValueKind {
    Bool,
    Int,
    Str,
}

impl Flag {
    fn lookup(name: &str) -> Option<Flag> {
        use ValueKind::{Bool, Int, Str};
        Some(match name {
            "h" | "help" => Flag::Help,
            "p" | "port" => Flag::Port,
            "n" | "name" | "server_name" => Flag::ServerName,
            "a" | "addr" | "net" => Flag::Host,
            "client_advertise" => Flag::ClientAdvertise,
            "D" | "debug" => Flag::Debug,
            "V" | "trace" => Flag::Trace,
            "VV" => Flag::TraceVerbose,
            "DV" => Flag::DebugTrace,
            "DVV" => Flag::DebugTraceVerbose,
            "T" | "logtime" => Flag::Logtime,
            "logtime_utc" => Flag::LogtimeUtc,
            "user" => Flag::User,
            "pass" => Flag::Pass,
            "auth" => Flag::Auth,
            "c" | "config" => Flag::Config,
            "t" => Flag::CheckConfig,
            "sl" | "signal" => Flag::Signal,
            "P" | "pid" => Flag::PidFile,
            "ports_file_dir" => Flag::PortsFileDir,
            "m" | "http_port" => Flag::HttpPort,
            "l" | "log" => Flag::LogFile,
            "v" | "version" => Flag::Version,
            "shards" => Flag::Shards,
            "spin_before_park" => Flag::SpinBeforePark,
            "migrate" => Flag::Migrate,
            "max_payload" => Flag::MaxPayload,
            "max_control_line" => Flag::MaxControlLine,
            "max_connections" => Flag::MaxConnections,
            "max_subscriptions" => Flag::MaxSubscriptions,
            "max_pending" => Flag::MaxPending,
            "write_deadline" => Flag::WriteDeadline,
            "ping_interval" => Flag::PingInterval,
            "ping_max" => Flag::PingMax,
            "auth_timeout" => Flag::AuthTimeout,
            "lame_duck_duration" => Flag::LameDuckDuration,
            "lame_duck_grace_period" => Flag::LameDuckGracePeriod,
            "tls" => Flag::Tls,
            "tlsverify" => Flag::TlsVerify,
            "tlscert" => Flag::TlsCert,
            "tlskey" => Flag::TlsKey,
            "tlscacert" => Flag::TlsCaCert,
            "js" | "jetstream" => Flag::JetStream,
            "s" | "syslog" | "help_tls" => Flag::Unsupported(Bool),
            "no_advertise" => Flag::NoAdvertise,
            "connect_retries" => Flag::ConnectRetries,
            "ms" | "https_port" | "log_size_limit" | "max_traced_msg_len" | "profile" => {
                Flag::Unsupported(Int)
            }
            "routes" => Flag::Routes,
            "cluster" | "cluster_listen" => Flag::Cluster,
            "cluster_advertise" => Flag::ClusterAdvertise,
            "cluster_name" => Flag::ClusterName,
            "r" | "remote_syslog" => Flag::Unsupported(Str),
            "sd" | "store_dir" => Flag::StoreDir,
            _ => return None,
        })
    }

    /// The option fields this flag sets, for flag-over-file precedence.
    fn fields(self) -> &'static [&'static str] {
        match self {
            Flag::Port => &["port"],
            Flag::ServerName => &["server_name"],
            Flag::Host => &["host"],
            Flag::ClientAdvertise => &["client_advertise"],
            Flag::Debug => &["debug"],
            Flag::Trace => &["trace"],
            Flag::TraceVerbose => &["trace", "trace_verbose"],
            Flag::DebugTrace => &["debug", "trace"],
            Flag::DebugTraceVerbose => &["debug", "trace", "trace_verbose"],
            Flag::Logtime => &["logtime"],
            Flag::LogtimeUtc => &["logtime_utc"],
            Flag::User => &["user"],
            Flag::Pass => &["pass"],
            Flag::Auth => &["auth_token"],
            Flag::PidFile => &["pid_file"],
            Flag::PortsFileDir => &["ports_file_dir"],
            Flag::HttpPort => &["http_port"],
            Flag::LogFile => &["log_file"],
            Flag::StoreDir => &["store_dir"],
            Flag::JetStream => &["jetstream"],
            Flag::MaxPayload => &["max_payload"],
            Flag::MaxControlLine => &["max_control_line"],
            Flag::MaxConnections => &["max_connections"],
            Flag::MaxSubscriptions => &["max_subscriptions"],
            Flag::MaxPending => &["max_pending"],
            Flag::WriteDeadline => &["write_deadline"],
            Flag::PingInterval => &["ping_interval"],
            Flag::PingMax => &["ping_max"],
            Flag::AuthTimeout => &["auth_timeout"],
            Flag::LameDuckDuration => &["lame_duck_duration"],
            Flag::LameDuckGracePeriod => &["lame_duck_grace_period"],
            Flag::Tls | Flag::TlsVerify | Flag::TlsCert | Flag::TlsKey | Flag::TlsCaCert => {
                &["tls"]
            }
            Flag::NoAdvertise
            | Flag::ConnectRetries
            | Flag::Routes
            | Flag::Cluster
            | Flag::ClusterAdvertise
            | Flag::ClusterName => &["cluster"],
            _ => &[],
        }
    }

    fn is_bool(self) -> bool {
        matches!(
            self,
            Flag::Help
                | Flag::Debug
                | Flag::Trace
                | Flag::TraceVerbose
                | Flag::DebugTrace
                | Flag::DebugTraceVerbose
                | Flag::Logtime
                | Flag::LogtimeUtc
                | Flag::CheckConfig
                | Flag::Version
                | Flag::Tls
                | Flag::TlsVerify
                | Flag::JetStream
                | Flag::NoAdvertise
                | Flag::Unsupported(ValueKind::Bool)
        )
    }
}

/// Flag state gathered while parsing, before nats-server's post-processing.
struct Parsed {
    opts: Options,
    help: bool,
    version: bool,
    check_config: bool,
    config: Option<String>,
    signal: Option<String>,
    port: i64,
    // Combined flags are applied after parsing, overriding -D/-V whatever their position, as
    // nats-server does.
    debug_trace: Option<bool>,
    debug_trace_verbose: Option<bool>,
    trace_verbose: Option<bool>,
    /// First flag, in command-line order, that asks for a missing feature.
    unsupported: Option<String>,
    explicit: Vec<&'static str>,
    tls: TlsFlags,
}

/// The `--tls*` flags as given; nats-server turns them into a TLS configuration after parsing.
#[derive(Default)]
struct TlsFlags {
    /// `-tls` itself: `Some(false)` switches TLS off whatever the other flags say.
    enabled: Option<bool>,
    /// Any `--tls*` flag was given: TLS is on unless `-tls=false`.
    any: bool,
    verify: bool,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    ca: Option<PathBuf>,
}

/// Parses the arguments after argv\[0\]. Pure: touches no file, environment or process state.
pub fn parse_args<I: IntoIterator<Item = String>>(args: I) -> Result<Command, CliError> {
    let mut p = Parsed {
        opts: Options::default(),
        help: false,
        version: false,
        check_config: false,
        config: None,
        signal: None,
        port: 0,
        debug_trace: None,
        debug_trace_verbose: None,
        trace_verbose: None,
        unsupported: None,
        tls: TlsFlags::default(),
        explicit: Vec::new(),
    };
    let mut args = args.into_iter();
    let mut positional = None;
    while let Some(arg) = args.next() {
        if arg.len() < 2 || !arg.starts_with('-') {
            positional = Some(arg);
            break;
        }
        let body = match arg.strip_prefix("--") {
            Some("") => {
                // "--" ends the flags; what follows is positional.
                positional = args.next();
                break;
            }
            Some(rest) => rest,
            None => &arg[1..],
        };
        if body.starts_with('-') || body.starts_with('=') {
            return Err(CliError::BadSyntax(arg.clone()));
        }
        let (name, inline) = match body.find('=') {
            Some(i) => (&body[..i], Some(&body[i + 1..])),
            None => (body, None),
        };
        let flag = Flag::lookup(name).ok_or_else(|| CliError::UndefinedFlag(name.to_string()))?;
        p.explicit.extend_from_slice(flag.fields());
        if flag.is_bool() {
            let on = match inline {
                None => true,
                Some(v) => parse_go_bool(v).ok_or_else(|| CliError::InvalidBool {
                    flag: name.to_string(),
                    value: v.to_string(),
                })?,
            };
            apply_bool(&mut p, flag, name, on);
        } else {
            let value = match inline {
                Some(v) => v.to_string(),
                // The next argument is the value even if it starts with '-': "-p -1".
                None => args
                    .next()
                    .ok_or_else(|| CliError::MissingArgument(name.to_string()))?,
            };
            apply_value(&mut p, flag, name, value)?;
        }
    }
    finish(p, positional)
}

fn apply_bool(p: &mut Parsed, flag: Flag, name: &str, on: bool) {
    match flag {
        Flag::Help => p.help = on,
        Flag::Version => p.version = on,
        Flag::Debug => p.opts.debug = on,
        Flag::Trace => p.opts.trace = on,
        Flag::TraceVerbose => p.trace_verbose = Some(on),
        Flag::DebugTrace => p.debug_trace = Some(on),
        Flag::DebugTraceVerbose => p.debug_trace_verbose = Some(on),
        Flag::Logtime => p.opts.logtime = on,
        Flag::LogtimeUtc => p.opts.logtime_utc = on,
        Flag::CheckConfig => p.check_config = on,
        Flag::JetStream => {
            p.opts
                .jetstream
                .get_or_insert_with(JetStreamOpts::default)
                .enabled = on
        }
        Flag::Tls => {
            p.tls.enabled = Some(on);
            p.tls.any = true;
        }
        Flag::TlsVerify => {
            p.tls.verify = on;
            p.tls.any = true;
        }
        Flag::NoAdvertise => p.opts.cluster_flags.no_advertise = Some(on),
        Flag::Unsupported(_) => note_unsupported(p, name, on),
        _ => {}
    }
}

fn note_unsupported(p: &mut Parsed, name: &str, requested: bool) {
    if requested && p.unsupported.is_none() {
        p.unsupported = Some(name.to_string());
    }
}

fn apply_value(p: &mut Parsed, flag: Flag, name: &str, value: String) -> Result<(), CliError> {
    let invalid = |reason: &str| CliError::InvalidValue {
        flag: name.to_string(),
        value: value.clone(),
        reason: reason.to_string(),
    };
    let opt_str = |v: &str| (!v.is_empty()).then(|| v.to_string());
    let opt_path = |v: &str| (!v.is_empty()).then(|| PathBuf::from(v));
    let o = &mut p.opts;
    match flag {
        Flag::Port => p.port = parse_go_int(&value).map_err(invalid)?,
        Flag::ServerName => o.server_name = opt_str(&value),
        Flag::Host => o.host = value.clone(),
        Flag::ClientAdvertise => o.client_advertise = opt_str(&value),
        Flag::StoreDir => o.store_dir = opt_path(&value),
        Flag::User => o.user = opt_str(&value),
        Flag::Pass => o.pass = opt_str(&value),
        Flag::Auth => o.auth_token = opt_str(&value),
        Flag::Config => p.config = opt_str(&value),
        Flag::Signal => p.signal = opt_str(&value),
        Flag::PidFile => o.pid_file = opt_path(&value),
        Flag::PortsFileDir => o.ports_file_dir = opt_path(&value),
        Flag::HttpPort => {
            o.http_port = match parse_go_int(&value).map_err(invalid)? {
                0 => None,
                -1 => Some(0),
                n => Some(
                    u16::try_from(n)
                        .ok()
                        .filter(|&n| n != 0)
                        .ok_or_else(|| invalid("value out of range"))?,
                ),
            }
        }
        Flag::LogFile => o.log_file = opt_path(&value),
        Flag::TlsCert => (p.tls.cert, p.tls.any) = (opt_path(&value), true),
        Flag::TlsKey => (p.tls.key, p.tls.any) = (opt_path(&value), true),
        Flag::TlsCaCert => (p.tls.ca, p.tls.any) = (opt_path(&value), true),
        Flag::Shards => {
            let n = parse_count(&value).map_err(invalid)?;
            if n == 0 {
                return Err(invalid("must be at least 1"));
            }
            o.shards = Some(n);
        }
        Flag::MaxPayload => {
            let n = parse_size(&value).map_err(invalid)?;
            if n > tachyon_settings::options::MAX_PAYLOAD_LIMIT {
                return Err(invalid("max_payload value is too big"));
            }
            o.max_payload = n;
        }
        Flag::MaxControlLine => o.max_control_line = parse_size(&value).map_err(invalid)?,
        Flag::MaxConnections => o.max_connections = parse_count(&value).map_err(invalid)?,
        Flag::MaxSubscriptions => o.max_subscriptions = parse_count(&value).map_err(invalid)?,
        Flag::MaxPending => o.max_pending = parse_size(&value).map_err(invalid)?,
        Flag::WriteDeadline => o.write_deadline = parse_go_duration(&value).map_err(invalid)?,
        Flag::PingInterval => o.ping_interval = parse_go_duration(&value).map_err(invalid)?,
        Flag::SpinBeforePark => o.spin_before_park = parse_go_duration(&value).map_err(invalid)?,
        Flag::Migrate => {
            o.migrate = match value.as_str() {
                "on" | "true" => MigrateMode::On,
                "off" | "false" => MigrateMode::Off,
                "chaos" => MigrateMode::Chaos,
                _ => return Err(invalid("expected on, off or chaos")),
            }
        }
        Flag::PingMax => {
            o.ping_max = u32::try_from(parse_count(&value).map_err(invalid)?)
                .map_err(|_| invalid("value out of range"))?
        }
        Flag::AuthTimeout => o.auth_timeout = parse_go_duration(&value).map_err(invalid)?,
        Flag::LameDuckDuration => {
            o.lame_duck_duration = parse_go_duration(&value).map_err(invalid)?
        }
        Flag::LameDuckGracePeriod => {
            o.lame_duck_grace_period = parse_go_duration(&value).map_err(invalid)?
        }
        Flag::Routes => o.cluster_flags.routes = opt_str(&value),
        Flag::Cluster => o.cluster_flags.listen = opt_str(&value),
        Flag::ClusterAdvertise => o.cluster_flags.advertise = opt_str(&value),
        Flag::ClusterName => o.cluster_flags.name = opt_str(&value),
        Flag::ConnectRetries => {
            o.cluster_flags.connect_retries =
                Some(u32::try_from(parse_go_int(&value).map_err(invalid)?).unwrap_or(0))
        }
        Flag::Unsupported(ValueKind::Int) => {
            let n = parse_go_int(&value).map_err(invalid)?;
            note_unsupported(p, name, n != 0);
        }
        Flag::Unsupported(_) => note_unsupported(p, name, !value.is_empty()),
        _ => {}
    }
    Ok(())
}

/// nats-server's checks after `fs.Parse`, in its order.
fn finish(mut p: Parsed, positional: Option<String>) -> Result<Command, CliError> {
    if p.version {
        return Ok(Command::Version(version_line()));
    }
    if p.help {
        return Ok(Command::Help(USAGE.to_string()));
    }
    if let Some(arg) = positional {
        return match arg.to_lowercase().as_str() {
            "version" => Ok(Command::Version(version_line())),
            "help" => Ok(Command::Help(USAGE.to_string())),
            _ => Err(CliError::UnrecognizedCommand(arg)),
        };
    }
    if let Some(signal) = p.signal {
        return parse_signal(&signal);
    }
    if p.check_config && p.config.is_none() {
        return Err(CliError::CheckConfigWithoutConfig);
    }
    p.opts.config_file = p.config.map(PathBuf::from);
    p.opts.check_config = p.check_config;
    p.explicit.sort_unstable();
    p.explicit.dedup();
    p.opts.explicit = p.explicit;
    if let Some(flag) = p.unsupported {
        return Err(CliError::Unsupported(flag));
    }
    // nats-server: any `--tls*` flag means TLS from the flags (replacing the file's
    // certificates), `--tlsverify` included; `-tls=false` wins over all of them.
    if p.tls.enabled == Some(false) {
        p.opts.tls = None;
    } else if p.tls.any {
        let cert = p.tls.cert.take().ok_or(CliError::TlsNoCertificate)?;
        let key = p.tls.key.take().ok_or(CliError::TlsNoKey)?;
        p.opts.tls = Some(crate::tls::TlsConfig::from_flags(
            cert,
            key,
            p.tls.ca.take(),
            p.tls.verify,
        ));
    }
    if let Some(on) = p.debug_trace {
        p.opts.debug = on;
        p.opts.trace = on;
    }
    if let Some(on) = p.debug_trace_verbose {
        p.opts.debug = on;
        p.opts.trace = on;
        p.opts.trace_verbose = on;
    }
    if let Some(on) = p.trace_verbose {
        p.opts.trace = on;
        p.opts.trace_verbose = on;
    }
    p.opts.port = match p.port {
        0 => DEFAULT_PORT,
        -1 => 0,
        n => u16::try_from(n)
            .ok()
            .filter(|&n| n != 0)
            .ok_or_else(|| CliError::InvalidValue {
                flag: "port".to_string(),
                value: n.to_string(),
                reason: "value out of range".to_string(),
            })?,
    };
    if p.opts.host.is_empty() {
        p.opts.host = DEFAULT_HOST.to_string();
    }
    Ok(Command::Run(p.opts))
}

fn parse_signal(arg: &str) -> Result<Command, CliError> {
    let mut parts = arg.split('=');
    let cmd = parts.next().unwrap_or_default();
    let pid = parts.next().map(str::to_string);
    let rest: Vec<String> = parts.map(str::to_string).collect();
    if !rest.is_empty() {
        return Err(CliError::InvalidSignalParameters(rest));
    }
    let command = SignalCommand::parse(cmd).ok_or_else(|| CliError::UnknownSignal(cmd.into()))?;
    Ok(Command::Signal { command, pid })
}

/// strconv.ParseBool.
fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// strconv.ParseInt(s, 0, 64) without underscores: decimal, 0x, 0o, 0b, and leading-0 octal.
/// Errors carry Go's reasons.
fn parse_go_int(s: &str) -> Result<i64, &'static str> {
    const PARSE: &str = "parse error";
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let lower = body.to_ascii_lowercase();
    let (radix, digits) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..])
    } else {
        (10, lower.as_str())
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return Err(PARSE);
    }
    let magnitude = u64::from_str_radix(digits, radix).map_err(|_| "value out of range")?;
    if neg {
        0i64.checked_sub_unsigned(magnitude)
            .ok_or("value out of range")
    } else {
        i64::try_from(magnitude).map_err(|_| "value out of range")
    }
}

fn parse_count(s: &str) -> Result<usize, &'static str> {
    let n = parse_go_int(s)?;
    usize::try_from(n).map_err(|_| "must not be negative")
}

/// A byte size the way nats-server's config reads one: bare bytes, or a number with
/// k/m/g/t (powers of 1000) or kb/ki/kib, mb/mi/mib, gb/gi/gib, tb/ti/tib (powers of 1024),
/// case-insensitive.
pub fn parse_size(s: &str) -> Result<usize, &'static str> {
    const PARSE: &str = "parse error";
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, suffix) = s.split_at(split);
    if num.is_empty() {
        return Err(PARSE);
    }
    let n: u64 = num.parse().map_err(|_| "value out of range")?;
    let mult: u64 = match suffix.trim().to_ascii_lowercase().as_str() {
        "" => 1,
        "k" => 1000,
        "kb" | "ki" | "kib" => 1 << 10,
        "m" => 1000 * 1000,
        "mb" | "mi" | "mib" => 1 << 20,
        "g" => 1000 * 1000 * 1000,
        "gb" | "gi" | "gib" => 1 << 30,
        "t" => 1000 * 1000 * 1000 * 1000,
        "tb" | "ti" | "tib" => 1 << 40,
        _ => return Err(PARSE),
    };
    n.checked_mul(mult)
        .and_then(|b| usize::try_from(b).ok())
        .ok_or("value out of range")
}

/// Go's time.ParseDuration, minus negative values (no setting here can use one):
/// "300ms", "1.5h", "2h45m", "0".
pub fn parse_go_duration(s: &str) -> Result<Duration, &'static str> {
    const BAD: &str = "invalid duration";
    let body = s.strip_prefix('+').unwrap_or(s);
    if body == "0" {
        return Ok(Duration::ZERO);
    }
    if body.is_empty() || body.starts_with('-') {
        return Err(BAD);
    }
    let mut total_ns: u128 = 0;
    let mut rest = body;
    while !rest.is_empty() {
        let int_end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (int_part, after) = rest.split_at(int_end);
        let (frac_part, after) = match after.strip_prefix('.') {
            Some(a) => {
                let end = a.find(|c: char| !c.is_ascii_digit()).unwrap_or(a.len());
                a.split_at(end)
            }
            None => ("", after),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(BAD);
        }
        let unit_end = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_end);
        let unit_ns: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60 * 1_000_000_000,
            "h" => 3600 * 1_000_000_000,
            "" => return Err("missing unit in duration"),
            _ => return Err("unknown unit in duration"),
        };
        let int: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| BAD)?
        };
        let mut ns = int.checked_mul(unit_ns).ok_or(BAD)?;
        // Fraction digits beyond nanosecond precision cannot matter; cap to avoid overflow.
        let mut scale = unit_ns;
        for d in frac_part.bytes().take(20) {
            scale /= 10;
            ns += u128::from(d - b'0') * scale;
        }
        total_ns = total_ns.checked_add(ns).ok_or(BAD)?;
        rest = next;
    }
    let secs = u64::try_from(total_ns / 1_000_000_000).map_err(|_| BAD)?;
    // The remainder is below 1e9 and fits in u32.
    let nanos = (total_ns % 1_000_000_000) as u32;
    Ok(Duration::new(secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Command, CliError> {
        parse_args(args.iter().map(|s| s.to_string()))
    }

    fn run_explicit(args: &[&str]) -> Options {
        match parse(args) {
            Ok(Command::Run(o)) => o,
            other => panic!("expected Run for {args:?}, got {other:?}"),
        }
    }

    /// The options, without the record of which flags were given.
    fn run(args: &[&str]) -> Options {
        let mut o = run_explicit(args);
        o.explicit.clear();
        o
    }

    fn err(args: &[&str]) -> String {
        match parse(args) {
            Err(e) => e.to_string(),
            other => panic!("expected error for {args:?}, got {other:?}"),
        }
    }

    #[test]
    fn defaults_match_nats_server() {
        let o = run(&[]);
        assert_eq!(o, Options::default());
        assert_eq!(o.host, "0.0.0.0");
        assert_eq!(o.port, 4222);
        assert!(o.logtime);
        assert!(!o.debug && !o.trace);
        assert_eq!(o.max_payload, 1 << 20);
        assert_eq!(o.max_pending, 64 << 20);
        assert_eq!(o.max_connections, 65536);
        assert_eq!(o.ping_interval, Duration::from_secs(120));
        assert_eq!(o.auth_timeout, Duration::from_secs(2));
    }

    #[test]
    fn single_and_double_dash_with_space_or_equals() {
        for args in [
            &["-p", "5000"][..],
            &["--p", "5000"],
            &["-p=5000"],
            &["--port=5000"],
            &["-port", "5000"],
        ] {
            assert_eq!(run(args).port, 5000, "{args:?}");
        }
    }

    #[test]
    fn random_port_and_default_port() {
        assert_eq!(run(&["-p", "-1"]).port, 0);
        assert_eq!(run(&["--port=-1"]).port, 0);
        assert_eq!(run(&["-p", "0"]).port, 4222);
        assert_eq!(run(&["-p", "0x10"]).port, 16);
        assert!(err(&["-p", "70000"]).contains("value out of range"));
        assert!(parse(&["-p", "-2"]).is_err());
    }

    #[test]
    fn host_aliases() {
        for flag in ["-a", "--addr", "-net", "--net"] {
            assert_eq!(run(&[flag, "127.0.0.1"]).host, "127.0.0.1");
        }
        assert_eq!(run(&["-a", "::"]).host, "::");
        assert_eq!(run(&["-a", ""]).host, "0.0.0.0");
    }

    #[test]
    fn name_and_auth() {
        for flag in ["-n", "--name", "--server_name"] {
            assert_eq!(run(&[flag, "srv"]).server_name.as_deref(), Some("srv"));
        }
        let o = run(&["--user", "u", "--pass", "p", "--auth", "tok"]);
        assert_eq!(o.user.as_deref(), Some("u"));
        assert_eq!(o.pass.as_deref(), Some("p"));
        assert_eq!(o.auth_token.as_deref(), Some("tok"));
        assert_eq!(
            run(&["--client_advertise", "x:1"])
                .client_advertise
                .as_deref(),
            Some("x:1")
        );
    }

    #[test]
    fn booleans() {
        assert!(run(&["-D"]).debug);
        assert!(run(&["--debug"]).debug);
        assert!(run(&["-D=true"]).debug);
        assert!(run(&["-D=1"]).debug);
        assert!(!run(&["-D", "-D=false"]).debug);
        assert!(run(&["-V"]).trace);
        assert!(run(&["--trace"]).trace);
        assert!(!run(&["-T=false"]).logtime);
        assert!(!run(&["--logtime=f"]).logtime);
        assert!(run(&["--logtime_utc"]).logtime_utc);
        // A bool flag never takes the next argument as its value.
        assert_eq!(
            err(&["-D", "false"]),
            "unrecognized command: \"false\"".to_string()
        );
        assert_eq!(
            err(&["-D=yes"]),
            "invalid boolean value \"yes\" for -D: parse error"
        );
    }

    #[test]
    fn combined_debug_trace_flags_override_singles() {
        let o = run(&["-DV"]);
        assert!(o.debug && o.trace && !o.trace_verbose);
        let o = run(&["-VV"]);
        assert!(!o.debug && o.trace && o.trace_verbose);
        let o = run(&["-DVV"]);
        assert!(o.debug && o.trace && o.trace_verbose);
        // nats-server applies -DV after -D/-V regardless of order.
        let o = run(&["-DV=false", "-D"]);
        assert!(!o.debug && !o.trace);
    }

    #[test]
    fn files_and_dirs() {
        let o = run(&[
            "-l",
            "/tmp/x.log",
            "-P",
            "/tmp/x.pid",
            "--ports_file_dir",
            "/tmp",
        ]);
        assert_eq!(o.log_file, Some(PathBuf::from("/tmp/x.log")));
        assert_eq!(o.pid_file, Some(PathBuf::from("/tmp/x.pid")));
        assert_eq!(o.ports_file_dir, Some(PathBuf::from("/tmp")));
        assert_eq!(
            run(&["--log=/a", "--pid=/b"]).log_file,
            Some(PathBuf::from("/a"))
        );
    }

    #[test]
    fn migrate() {
        assert_eq!(run(&[]).migrate, MigrateMode::On);
        assert_eq!(run(&["--migrate", "off"]).migrate, MigrateMode::Off);
        assert_eq!(run(&["--migrate=chaos"]).migrate, MigrateMode::Chaos);
        assert!(parse(&["--migrate", "sometimes"]).is_err());
    }

    #[test]
    fn spin_before_park() {
        assert_eq!(run(&[]).spin_before_park, Duration::ZERO);
        assert_eq!(
            run(&["--spin_before_park", "200us"]).spin_before_park,
            Duration::from_micros(200)
        );
        assert!(parse(&["--spin_before_park", "fast"]).is_err());
    }

    #[test]
    fn shards() {
        assert_eq!(run(&["--shards", "4"]).shards, Some(4));
        assert_eq!(run(&["-shards=2"]).shards, Some(2));
        assert!(err(&["--shards", "0"]).contains("must be at least 1"));
        assert!(parse(&["--shards", "-3"]).is_err());
    }

    #[test]
    fn hidden_limit_flags() {
        let o = run(&[
            "--ping_interval",
            "100ms",
            "--ping_max",
            "3",
            "--max_payload",
            "8KB",
            "--max_pending",
            "1MB",
            "--max_connections",
            "10",
            "--max_subscriptions",
            "5",
            "--write_deadline",
            "2s",
            "--auth_timeout",
            "1.5s",
            "--max_control_line",
            "1024",
            "--lame_duck_duration",
            "1h30m",
            "--lame_duck_grace_period",
            "2m",
        ]);
        assert_eq!(o.ping_interval, Duration::from_millis(100));
        assert_eq!(o.ping_max, 3);
        assert_eq!(o.max_payload, 8192);
        assert_eq!(o.max_pending, 1 << 20);
        assert_eq!(o.max_connections, 10);
        assert_eq!(o.max_subscriptions, 5);
        assert_eq!(o.write_deadline, Duration::from_secs(2));
        assert_eq!(o.auth_timeout, Duration::from_millis(1500));
        assert_eq!(o.max_control_line, 1024);
        assert_eq!(o.lame_duck_duration, Duration::from_secs(5400));
        assert_eq!(o.lame_duck_grace_period, Duration::from_secs(120));
        assert!(err(&["--ping_interval", "10"]).contains("missing unit"));
        assert!(err(&["--max_payload", "1XB"]).contains("parse error"));
    }

    #[test]
    fn go_durations() {
        let d = |s| parse_go_duration(s);
        assert_eq!(d("0"), Ok(Duration::ZERO));
        assert_eq!(d("300ms"), Ok(Duration::from_millis(300)));
        assert_eq!(d("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(d("2h45m"), Ok(Duration::from_secs(9900)));
        assert_eq!(d("10us"), Ok(Duration::from_micros(10)));
        assert_eq!(d("10µs"), Ok(Duration::from_micros(10)));
        assert_eq!(d("7ns"), Ok(Duration::from_nanos(7)));
        assert_eq!(d(".5s"), Ok(Duration::from_millis(500)));
        assert!(d("").is_err());
        assert!(d("-1s").is_err());
        assert!(d("5").is_err());
        assert!(d("5d").is_err());
        assert!(d("s").is_err());
        assert!(d(".s").is_err());
        assert!(d("99999999999999999999999h").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("123"), Ok(123));
        assert_eq!(parse_size("1k"), Ok(1000));
        assert_eq!(parse_size("1KB"), Ok(1024));
        assert_eq!(parse_size("2MiB"), Ok(2 << 20));
        assert_eq!(parse_size("1m"), Ok(1_000_000));
        assert_eq!(parse_size("1GB"), Ok(1 << 30));
        assert!(parse_size("").is_err());
        assert!(parse_size("MB").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("99999999999TB").is_err());
    }

    #[test]
    fn go_ints() {
        assert_eq!(parse_go_int("42"), Ok(42));
        assert_eq!(parse_go_int("-1"), Ok(-1));
        assert_eq!(parse_go_int("+7"), Ok(7));
        assert_eq!(parse_go_int("0x1F"), Ok(31));
        assert_eq!(parse_go_int("0o17"), Ok(15));
        assert_eq!(parse_go_int("017"), Ok(15));
        assert_eq!(parse_go_int("0b101"), Ok(5));
        assert_eq!(parse_go_int("0"), Ok(0));
        assert_eq!(parse_go_int("-9223372036854775808"), Ok(i64::MIN));
        assert_eq!(parse_go_int("abc"), Err("parse error"));
        assert_eq!(parse_go_int("08"), Err("parse error"));
        assert_eq!(parse_go_int(""), Err("parse error"));
        assert_eq!(
            parse_go_int("9223372036854775808"),
            Err("value out of range")
        );
    }

    #[test]
    fn go_error_messages() {
        assert_eq!(err(&["-foo"]), "flag provided but not defined: -foo");
        assert_eq!(err(&["--foo=1"]), "flag provided but not defined: -foo");
        assert_eq!(err(&["-p"]), "flag needs an argument: -p");
        assert_eq!(
            err(&["-p", "abc"]),
            "invalid value \"abc\" for flag -p: parse error"
        );
        assert_eq!(err(&["---p"]), "bad flag syntax: ---p");
        assert_eq!(err(&["-=1"]), "bad flag syntax: -=1");
        assert_eq!(err(&["foo"]), "unrecognized command: \"foo\"");
        assert!(parse(&["-foo"]).unwrap_err().shows_usage());
        assert!(!parse(&["foo"]).unwrap_err().shows_usage());
    }

    #[test]
    fn parsing_stops_at_first_non_flag_or_double_dash() {
        // Everything after the positional argument is left alone, even bad flags.
        assert_eq!(
            err(&["-D", "bogus", "-foo"]),
            "unrecognized command: \"bogus\""
        );
        assert_eq!(err(&["--", "-foo"]), "unrecognized command: \"-foo\"");
        assert_eq!(
            run(&["-D", "--"]),
            Options {
                debug: true,
                ..Options::default()
            }
        );
        // A lone "-" is a positional argument in Go.
        assert_eq!(err(&["-"]), "unrecognized command: \"-\"");
    }

    #[test]
    fn help_and_version() {
        let v = "nats-server: v2.12.0 (tachyon 0.1.0)".replace("0.1.0", TACHYON_VERSION);
        for args in [
            &["-v"][..],
            &["--version"],
            &["version"],
            &["-p", "1", "VERSION"],
        ] {
            assert_eq!(parse(args), Ok(Command::Version(v.clone())), "{args:?}");
        }
        for args in [&["-h"][..], &["--help"], &["help"]] {
            match parse(args) {
                Ok(Command::Help(text)) => {
                    assert!(text.contains("Usage: nats-server [options]"));
                    assert!(text.contains("--shards"));
                }
                other => panic!("{other:?}"),
            }
        }
        // Version wins over help and over unsupported flags, as in nats-server.
        assert_eq!(parse(&["-h", "-v"]), Ok(Command::Version(v.clone())));
        assert_eq!(parse(&["-js", "-v"]), Ok(Command::Version(v)));
    }

    #[test]
    fn cluster_flags_as_nats_server_takes_them() {
        let o = run_explicit(&[
            "--cluster",
            "nats://127.0.0.1:7244",
            "--routes",
            "nats://127.0.0.1:7245,nats://127.0.0.1:7246",
            "--cluster_name",
            "c1",
            "--no_advertise",
            "--connect_retries",
            "3",
        ]);
        let c = o.cluster_flags.apply(None).unwrap().unwrap();
        assert_eq!(c.port, 7244);
        assert_eq!(c.routes.len(), 2);
        assert_eq!(c.name.as_deref(), Some("c1"));
        assert!(c.no_advertise);
        assert_eq!(c.connect_retries, 3);
        assert!(o.explicit.contains(&"cluster"));
    }

    #[test]
    fn unsupported_flags_consume_their_value_then_fail() {
        for (args, flag) in [
            (&["-ms", "8222"][..], "ms"),
            (&["-s"], "s"),
            (&["-r", "udp://x:514"], "r"),
            (&["--log_size_limit", "100"], "log_size_limit"),
            (&["--max_traced_msg_len", "10"], "max_traced_msg_len"),
            (&["--help_tls"], "help_tls"),
            (&["--profile", "6060"], "profile"),
        ] {
            assert_eq!(
                parse(args),
                Err(CliError::Unsupported(flag.to_string())),
                "{args:?}"
            );
        }
        assert_eq!(err(&["-s"]), "flag -s is not supported yet");
        // The value was consumed: "8222" is not taken as a positional command.
        assert_eq!(err(&["-ms", "8222", "-D"]), "flag -ms is not supported yet");
        // Values are type-checked like nats-server's.
        assert_eq!(
            err(&["-ms", "x"]),
            "invalid value \"x\" for flag -ms: parse error"
        );
        // Asking for the feature to be off is honoured.
        let o = run(&["-s=false", "-m", "0", "--routes", "", "--tls=false"]);
        assert_eq!(o, Options::default());
    }

    #[test]
    fn jetstream_flags_turn_it_on() {
        for args in [
            &["-js"][..],
            &["--jetstream"],
            &["-js=true"],
            &["--jetstream", "-sd", "/d"],
        ] {
            let o = run_explicit(args);
            assert!(o.jetstream.as_ref().is_some_and(|j| j.enabled), "{args:?}");
            assert!(o.explicit.contains(&"jetstream"), "{args:?}");
        }
        assert!(!run(&["-js=false"]).jetstream.is_some_and(|j| j.enabled));
    }

    #[test]
    fn store_dir_without_jetstream_is_accepted() {
        // async-nats's test harness passes `--store_dir` on every start; nats-server takes it
        // without `-js` and uses it only once JetStream is on.
        for args in [
            &["-sd", "/tmp/js"][..],
            &["--store_dir", "/tmp/js"],
            &["-sd=/tmp/js"],
            &["--store_dir=/tmp/js"],
        ] {
            let o = run_explicit(args);
            assert_eq!(o.store_dir, Some(PathBuf::from("/tmp/js")), "{args:?}");
            assert!(o.explicit.contains(&"store_dir"), "{args:?}");
        }
        assert_eq!(run(&["-sd", ""]).store_dir, None);
    }

    #[test]
    fn monitor_port() {
        assert_eq!(run(&["-m", "8222"]).http_port, Some(8222));
        assert_eq!(run(&["--http_port=8222"]).http_port, Some(8222));
        assert_eq!(run(&["-m", "-1"]).http_port, Some(0));
        assert_eq!(run(&["-m", "0"]).http_port, None);
        assert_eq!(
            err(&["-m", "x"]),
            "invalid value \"x\" for flag -m: parse error"
        );
        assert_eq!(
            err(&["-m", "70000"]),
            "invalid value \"70000\" for flag -m: value out of range"
        );
    }

    #[test]
    fn tls_flags_as_nats_server_reads_them() {
        let o = run(&["--tls", "--tlscert", "c.pem", "--tlskey", "k.pem"]);
        let t = o.tls.expect("tls on");
        assert_eq!(t.cert_file, PathBuf::from("c.pem"));
        assert_eq!(t.key_file, PathBuf::from("k.pem"));
        assert_eq!(t.ca_file, None);
        assert!(!t.verify && !t.map && !t.handshake_first);
        assert_eq!(t.timeout, crate::tls::DEFAULT_TLS_TIMEOUT);
        // Any --tls* flag turns TLS on, --tlsverify included.
        let t = run(&[
            "-tlsverify",
            "-tlscert=c.pem",
            "-tlskey",
            "k.pem",
            "-tlscacert",
            "ca.pem",
        ])
        .tls
        .expect("tlsverify implies tls");
        assert!(t.verify);
        assert_eq!(t.ca_file, Some(PathBuf::from("ca.pem")));
        assert!(run(&["--tlscert", "c.pem", "--tlskey", "k.pem"])
            .tls
            .is_some());
        // -tls=false wins whatever its position.
        assert_eq!(run(&["--tlscert", "c.pem", "--tls=false"]).tls, None);
        assert_eq!(
            err(&["--tls"]),
            "TLS Server certificate must be present and valid"
        );
        assert_eq!(
            err(&["--tlsverify", "--tlscert", "c.pem"]),
            "TLS Server private key must be present and valid"
        );
        assert!(!CliError::TlsNoKey.shows_usage());
    }

    #[test]
    fn tls_flags_replace_the_files_certificates_only() {
        let file = Options {
            tls: Some(crate::tls::TlsConfig {
                timeout: Duration::from_millis(300),
                map: true,
                handshake_first: true,
                ..crate::tls::TlsConfig::from_flags("f.pem".into(), "fk.pem".into(), None, true)
            }),
            ..Options::default()
        };
        let flags = match parse(&["--tlscert", "c.pem", "--tlskey", "k.pem"]) {
            Ok(Command::Run(o)) => o,
            other => panic!("{other:?}"),
        };
        let t = file.overlay_flags(&flags).tls.expect("tls");
        assert_eq!(t.cert_file, PathBuf::from("c.pem"));
        assert!(!t.verify, "verification comes from the flags");
        assert!(t.map && t.handshake_first);
        assert_eq!(t.timeout, Duration::from_millis(300));
        let off = match parse(&["--tls=false"]) {
            Ok(Command::Run(o)) => o,
            other => panic!("{other:?}"),
        };
        assert_eq!(file.overlay_flags(&off).tls, None);
        let none = match parse(&["-D"]) {
            Ok(Command::Run(o)) => o,
            other => panic!("{other:?}"),
        };
        assert_eq!(file.overlay_flags(&none).tls, file.tls);
    }

    #[test]
    fn check_config_needs_config() {
        assert_eq!(parse(&["-t"]), Err(CliError::CheckConfigWithoutConfig));
        let o = run(&["-t", "-c", "a.conf"]);
        assert!(o.check_config);
        assert_eq!(o.config_file, Some(PathBuf::from("a.conf")));
    }

    #[test]
    fn config_flag_and_explicit_flags() {
        let o = run_explicit(&["--config=x.conf", "-p", "5000", "-DV", "--user", "u"]);
        assert_eq!(o.config_file, Some(PathBuf::from("x.conf")));
        assert_eq!(o.explicit, vec!["debug", "port", "trace", "user"]);
        assert!(run_explicit(&[]).explicit.is_empty());
    }

    #[test]
    fn flags_override_file_options() {
        let file = Options {
            port: 7000,
            host: "127.0.0.1".into(),
            debug: true,
            max_payload: 10,
            user: Some("file".into()),
            ..Options::default()
        };
        let flags = run_explicit(&["-p", "-1", "--user", "flag", "-D=false", "--shards", "3"]);
        let o = file.overlay_flags(&flags);
        assert_eq!(o.port, 0);
        assert_eq!(o.user.as_deref(), Some("flag"));
        assert!(!o.debug);
        // Not given on the command line: the file's value stays.
        assert_eq!(o.host, "127.0.0.1");
        assert_eq!(o.max_payload, 10);
        assert_eq!(o.shards, Some(3));
    }

    #[test]
    fn signals() {
        assert_eq!(
            parse(&["--signal", "reload"]),
            Ok(Command::Signal {
                command: SignalCommand::Reload,
                pid: None
            })
        );
        assert_eq!(
            parse(&["-sl", "ldm=/var/run/n.pid"]),
            Ok(Command::Signal {
                command: SignalCommand::LameDuck,
                pid: Some("/var/run/n.pid".into())
            })
        );
        assert_eq!(err(&["-sl", "bogus"]), "unknown signal \"bogus\"");
        assert!(matches!(
            parse(&["-sl", "stop=1=2"]),
            Err(CliError::InvalidSignalParameters(_))
        ));
        assert_eq!(SignalCommand::Reopen.signum(), libc::SIGUSR1);
        assert_eq!(SignalCommand::Stop.signum(), libc::SIGKILL);
        assert_eq!(SignalCommand::LameDuck.signum(), libc::SIGUSR2);
    }
}
