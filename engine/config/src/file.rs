//! The config file's top-level keys onto [`Options`], with nats-server's key names, aliases,
//! value types and checks (server/opts.go `processConfigFileLine`).
//!
//! A key nats-server knows but Tachyon does not implement yet is an error naming it, unless its
//! value asks for nothing (`false`, `0`, empty): a drop-in must not pretend to honour
//! `cluster {}` while running without it. A key nats-server does not know either is
//! `unknown field`, as there, unless it only defines a `$variable` used elsewhere.

use std::path::{Path, PathBuf};

use crate::options::{JetStreamOpts, JsSync, Options};
use crate::parser::{self, Document};
use crate::value::{ConfigError, Item, Map, Value};

/// A loaded config file: the options it sets (over nats-server's defaults), and the raw
/// blocks that their own modules interpret.
#[derive(Debug, Clone, PartialEq)]
pub struct FileConfig {
    pub opts: Options,
    pub authorization: Option<Map>,
    pub accounts: Option<Map>,
    pub tls: Option<Map>,
    /// The whole top-level block, for features that read their own keys.
    pub root: Map,
}

/// Reads, parses and maps a config file.
pub fn load(path: &Path) -> Result<FileConfig, ConfigError> {
    let doc = parser::parse_file(path)?;
    let mut fc = from_document(&doc)?;
    fc.opts.config_file = Some(path.to_path_buf());
    Ok(fc)
}

/// The options to run with: the command line's alone, or the config file it names with the
/// explicitly given flags laid over it. Also used on reload (the flags still win then).
pub fn resolve(flags: &Options) -> Result<Options, ConfigError> {
    let mut o = match &flags.config_file {
        None => flags.clone(),
        Some(path) => load(path)?.opts.overlay_flags(flags),
    };
    default_auth_timeout(&mut o);
    baseline(&mut o);
    o.cluster = o
        .cluster_flags
        .apply(o.cluster.take())
        .map_err(|e| ConfigError::at(&tachyon_settings::Pos::default(), e))?;
    Ok(o)
}

/// nats-server's `setBaselineOptions` for limits a zero means "default" for: a zero
/// `write_deadline` would otherwise leave slow writes with no deadline at all.
fn baseline(o: &mut Options) {
    let defaults = Options::default();
    if o.write_deadline.is_zero() {
        o.write_deadline = defaults.write_deadline;
    }
    if o.max_pending == 0 {
        o.max_pending = defaults.max_pending;
    }
}

/// nats-server's `getDefaultAuthTimeout`: with TLS on, a client that must first finish its
/// handshake gets the TLS timeout plus a second to authenticate, unless a timeout is written.
fn default_auth_timeout(o: &mut Options) {
    let given = o.explicit.contains(&"auth_timeout")
        || o.authorization
            .as_ref()
            .is_some_and(|a| a.timeout.is_some());
    if let (false, Some(tls)) = (given, &o.tls) {
        o.auth_timeout = tls.timeout + std::time::Duration::from_secs(1);
    }
}

/// Keys nats-server accepts that Tachyon does not implement yet.
const UNSUPPORTED: &[&str] = &[
    "trace_headers",
    "mappings",
    "maps",
    "disable_sublist_cache",
    "no_sublist_cache",
    "default_sentinel",
    "https",
    "https_port",
    "http_base_path",
    "gateway",
    "logfile_size_limit",
    "log_size_limit",
    "logfile_max_num",
    "log_max_num",
    "syslog",
    "remote_syslog",
    "prof_port",
    "prof_block_rate",
    "proxy_protocol",
    "max_traced_msg_len",
    "max_sub_tokens",
    "max_subscription_tokens",
    "ocsp",
    "write_timeout",
    "operator",
    "operators",
    "roots",
    "root",
    "root_operators",
    "root_operator",
    "resolver",
    "account_resolver",
    "accounts_resolver",
    "resolver_tls",
    "resolver_preload",
    "resolver_pinned_accounts",
    "system_account",
    "system",
    "no_system_account",
    "no_system",
    "no_sys_acc",
    "no_header_support",
    "trusted",
    "trusted_keys",
    "connect_error_reports",
    "reconnect_error_reports",
    "mqtt",
    "server_tags",
    "server_metadata",
    "feature_flags",
    "default_js_domain",
    "ocsp_cache",
    "no_fast_producer_stall",
    "max_closed_clients",
    "proxies",
];

pub fn from_document(doc: &Document) -> Result<FileConfig, ConfigError> {
    let mut fc = FileConfig {
        opts: Options::default(),
        authorization: None,
        accounts: None,
        tls: None,
        root: doc.map.clone(),
    };
    let mut store_dir: Option<(PathBuf, &Item)> = None;
    for (key, item) in doc.map.iter() {
        let lower = key.to_ascii_lowercase();
        let o = &mut fc.opts;
        match lower.as_str() {
            "listen" => {
                let (host, port) = listen(item, key)?;
                if let Some(h) = host {
                    o.host = h;
                }
                o.port = port_value(item, port)?;
            }
            "port" => o.port = port_value(item, item.as_int(key)?)?,
            "host" | "net" => {
                let h = item.to_text(key)?;
                if !h.is_empty() {
                    o.host = h;
                }
            }
            "client_advertise" => o.client_advertise = Some(item.to_text(key)?),
            "server_name" => {
                let name = item.to_text(key)?;
                if name.contains(' ') {
                    return Err(ConfigError::at(
                        &item.pos,
                        "server name cannot contain spaces",
                    ));
                }
                o.server_name = Some(name);
            }
            "debug" => o.debug = item.as_bool(key)?,
            "trace" => o.trace = item.as_bool(key)?,
            "trace_verbose" => {
                o.trace_verbose = item.as_bool(key)?;
                if o.trace_verbose {
                    o.trace = true;
                }
            }
            "logtime" => o.logtime = item.as_bool(key)?,
            "logtime_utc" => o.logtime_utc = item.as_bool(key)?,
            "logfile" | "log_file" => o.log_file = non_empty_path(item, key)?,
            "pidfile" | "pid_file" => o.pid_file = non_empty_path(item, key)?,
            "ports_file_dir" => o.ports_file_dir = non_empty_path(item, key)?,
            "max_payload" => {
                o.max_payload = bounded(
                    item,
                    key,
                    tachyon_settings::options::MAX_PAYLOAD_LIMIT as i64,
                )?
            }
            "max_control_line" => o.max_control_line = bounded(item, key, i32::MAX as i64)?,
            "max_pending" => o.max_pending = item.as_usize(key)?,
            "max_connections" | "max_conn" => {
                // nats-server takes 0 (and negatives) for "no limit".
                let n = item.as_int(key)?;
                o.max_connections = if n <= 0 {
                    usize::MAX
                } else {
                    item.as_usize(key)?
                };
            }
            "max_subscriptions" | "max_subs" => o.max_subscriptions = item.as_usize(key)?,
            "ping_interval" => o.ping_interval = item.as_duration(key)?,
            "ping_max" => {
                o.ping_max = u32::try_from(item.as_int(key)?)
                    .map_err(|_| ConfigError::at(&item.pos, format!("'{key}': out of range")))?
            }
            "write_deadline" => o.write_deadline = item.as_duration(key)?,
            "lame_duck_duration" => {
                let d = go_duration_str(item, key)?;
                if d < std::time::Duration::from_secs(30) {
                    return Err(ConfigError::at(
                        &item.pos,
                        format!("invalid lame_duck_duration of {d:?}, minimum is 30 seconds"),
                    ));
                }
                o.lame_duck_duration = d;
            }
            "lame_duck_grace_period" => o.lame_duck_grace_period = go_duration_str(item, key)?,
            "http" => {
                let (host, port) = listen(item, key)?;
                o.http_host = host;
                o.http_port = monitor_port(item, port)?;
            }
            "http_port" | "monitor_port" => o.http_port = monitor_port(item, item.as_int(key)?)?,
            "store_dir" | "storedir" => {
                store_dir = Some((PathBuf::from(item.to_text(key)?), item));
            }
            "jetstream" => o.jetstream = Some(jetstream(item, key)?),
            "websocket" | "ws" => {
                o.websocket = crate::websocket::from_config(item.as_map(key)?, item)?
            }
            "cluster" => o.cluster = crate::cluster::from_config(item.as_map(key)?)?,
            "leafnodes" | "leaf" => o.leafnodes = crate::leafnode::from_config(item.as_map(key)?)?,
            "tls" => {
                let block = item.as_map(key)?;
                o.tls = Some(crate::tls::from_config(block)?);
                fc.tls = Some(block.clone());
            }
            "authorization" => {
                let block = item.as_map(key)?;
                authorization(block, doc, o)?;
                o.authorization = Some(crate::auth::from_config_with_vars(block, &|p| {
                    doc.is_used_var(p)
                })?);
                fc.authorization = Some(block.clone());
            }
            "accounts" => {
                o.accounts = crate::accounts::from_config_with_vars(item, &|p| doc.is_used_var(p))?;
                // Imports are checked against exports where the routes are built (the engine's
                // account table), at start, for `-t` and on reload.
                fc.accounts = Some(item.as_map(key)?.clone());
            }
            "no_auth_user" => o.no_auth_user = Some(item.to_text(key)?),
            "allow_non_tls" => o.allow_non_tls = item.as_bool(key)?,
            _ if UNSUPPORTED.contains(&lower.as_str()) => {
                if asks_for_something(&item.value) {
                    return Err(ConfigError::at(
                        &item.pos,
                        format!("config option '{key}' is not supported yet"),
                    ));
                }
            }
            _ if doc.is_used_var(&item.pos) => {}
            _ => return Err(ConfigError::at(&item.pos, format!("unknown field {key:?}"))),
        }
    }
    account_users(doc, &fc.opts)?;
    websocket_users(doc, &fc.opts)?;
    if let Some((dir, item)) = store_dir {
        let js = fc.opts.jetstream.get_or_insert_with(JetStreamOpts::default);
        if js.store_dir.is_some() {
            return Err(ConfigError::at(
                &item.pos,
                "Duplicate 'store_dir' configuration",
            ));
        }
        js.store_dir = Some(dir);
    }
    Ok(fc)
}

/// Users declared in accounts join the `authorization` users (nats-server's parseAuthorization
/// checks): no single user or token beside them, no name twice, and `no_auth_user` must be one.
fn account_users(doc: &Document, o: &Options) -> Result<(), ConfigError> {
    let key_pos = |name: &str| {
        doc.map
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, i)| i.pos.clone())
            .unwrap_or_default()
    };
    let in_accounts: Vec<&str> = o
        .accounts
        .iter()
        .flat_map(|a| {
            a.users
                .iter()
                .map(|u| u.username.as_str())
                .chain(a.nkeys.iter().map(|n| n.nkey.as_str()))
        })
        .collect();
    let auth = o.authorization.as_ref();
    if !in_accounts.is_empty() {
        if auth.is_some_and(|a| a.user.is_some()) {
            return Err(ConfigError::at(
                &key_pos("authorization"),
                "Can not have a single user/pass and a users array",
            ));
        }
        if auth.is_some_and(|a| a.token.is_some()) {
            return Err(ConfigError::at(
                &key_pos("authorization"),
                "Can not have a token and a users array",
            ));
        }
    }
    let top: Vec<&str> = auth
        .map(|a| {
            a.users
                .iter()
                .flatten()
                .map(|u| u.username.as_str())
                .chain(a.nkeys.iter().map(|n| n.nkey.as_str()))
                .collect()
        })
        .unwrap_or_default();
    if let Some(dup) = top.iter().find(|u| in_accounts.contains(u)) {
        return Err(ConfigError::at(
            &key_pos("authorization"),
            format!("Duplicate user {dup:?} detected"),
        ));
    }
    if let Some(nau) = &o.no_auth_user {
        let defined = auth.is_some_and(|a| a.users.is_some() || !a.nkeys.is_empty())
            || !in_accounts.is_empty();
        if !defined {
            return Err(ConfigError::at(
                &key_pos("no_auth_user"),
                format!("no_auth_user: \"{nau}\" present, but users/nkeys are not defined"),
            ));
        }
        if !top.contains(&nau.as_str()) && !in_accounts.contains(&nau.as_str()) {
            return Err(ConfigError::at(
                &key_pos("no_auth_user"),
                format!(
                    "no_auth_user: \"{nau}\" not present as user or nkey in authorization block or account configuration"
                ),
            ));
        }
    }
    Ok(())
}

/// The websocket block's auth against the server's users (nats-server's
/// `validateWebsocketOptions`): its `no_auth_user` must be one of them, and a single user or
/// token of its own cannot stand beside them.
fn websocket_users(doc: &Document, o: &Options) -> Result<(), ConfigError> {
    let Some(ws) = o.websocket.as_ref() else {
        return Ok(());
    };
    let pos = doc
        .map
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("websocket") || k.eq_ignore_ascii_case("ws"))
        .map(|(_, i)| i.pos.clone())
        .unwrap_or_default();
    let mut users: Vec<&str> = o
        .authorization
        .iter()
        .flat_map(|a| {
            a.users
                .iter()
                .flatten()
                .map(|u| u.username.as_str())
                .chain(a.nkeys.iter().map(|n| n.nkey.as_str()))
        })
        .collect();
    users.extend(o.accounts.iter().flat_map(|a| {
        a.users
            .iter()
            .map(|u| u.username.as_str())
            .chain(a.nkeys.iter().map(|n| n.nkey.as_str()))
    }));
    if let Some(nau) = &ws.no_auth_user {
        if users.is_empty() {
            return Err(ConfigError::at(
                &pos,
                format!("no_auth_user: \"{nau}\" present, but users/nkeys are not defined"),
            ));
        }
        if !users.contains(&nau.as_str()) {
            return Err(ConfigError::at(
                &pos,
                format!(
                    "no_auth_user: \"{nau}\" not present as user or nkey in authorization block or account configuration"
                ),
            ));
        }
    }
    if !users.is_empty() {
        if ws.username.is_some() {
            return Err(ConfigError::at(
                &pos,
                "websocket authentication username not compatible with presence of users/nkeys",
            ));
        }
        if ws.token.is_some() {
            return Err(ConfigError::at(
                &pos,
                "websocket authentication token not compatible with presence of users/nkeys",
            ));
        }
    }
    crate::websocket::validate_last(ws, &pos)
}

/// `false`, `0`, `""`, `{}` and `[]` ask for nothing a missing feature would provide.
fn asks_for_something(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::Int(i) => *i != 0,
        Value::Float(f) => *f != 0.0,
        Value::Str(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Map(m) => !m.entries.is_empty(),
    }
}

/// `listen`/`http`: a port alone, or `host:port` (IPv6 hosts in brackets).
pub(crate) fn listen(item: &Item, key: &str) -> Result<(Option<String>, i64), ConfigError> {
    match &item.value {
        Value::Int(p) => Ok((None, *p)),
        Value::Str(s) => {
            let bad =
                || ConfigError::at(&item.pos, format!("could not parse address string {s:?}"));
            let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
            let host = match host.strip_prefix('[') {
                Some(h) => h.strip_suffix(']').ok_or_else(bad)?,
                None if host.contains(':') => return Err(bad()),
                None => host,
            };
            let port: i64 = port.parse().map_err(|_| {
                ConfigError::at(&item.pos, format!("could not parse port {port:?}"))
            })?;
            Ok(((!host.is_empty()).then(|| host.to_string()), port))
        }
        _ => Err(ConfigError::at(
            &item.pos,
            format!("'{key}': expected port or host:port"),
        )),
    }
}

/// The client port as nats-server reads it: -1 random, 0 the default.
fn port_value(item: &Item, port: i64) -> Result<u16, ConfigError> {
    match port {
        -1 => Ok(0),
        0 => Ok(Options::default().port),
        p => port_u16(item, p),
    }
}

/// A monitoring port: 0 leaves monitoring off, as in nats-server; -1 is a random port.
fn monitor_port(item: &Item, port: i64) -> Result<Option<u16>, ConfigError> {
    if port == 0 {
        return Ok(None);
    }
    port_u16(item, port).map(Some)
}

fn port_u16(item: &Item, port: i64) -> Result<u16, ConfigError> {
    if port == -1 {
        return Ok(0);
    }
    u16::try_from(port)
        .map_err(|_| ConfigError::at(&item.pos, format!("port {port} is out of range")))
}

fn bounded(item: &Item, key: &str, max: i64) -> Result<usize, ConfigError> {
    if item.as_int(key)? > max {
        return Err(ConfigError::at(
            &item.pos,
            format!("{key} value is too big"),
        ));
    }
    item.as_usize(key)
}

fn non_empty_path(item: &Item, key: &str) -> Result<Option<PathBuf>, ConfigError> {
    let s = item.to_text(key)?;
    Ok((!s.is_empty()).then(|| PathBuf::from(s)))
}

/// lame duck settings must be Go duration strings in nats-server.
fn go_duration_str(item: &Item, key: &str) -> Result<std::time::Duration, ConfigError> {
    let s = item.as_str(key)?;
    crate::flags::parse_go_duration(s)
        .map_err(|e| ConfigError::at(&item.pos, format!("error parsing {key}: {e} {s:?}")))
}

/// `jetstream: enabled|disabled|true|false` or a block (present means enabled unless it says
/// `enabled: false`).
fn jetstream(item: &Item, key: &str) -> Result<JetStreamOpts, ConfigError> {
    let mut js = JetStreamOpts::default();
    match &item.value {
        Value::Bool(b) => js.enabled = *b,
        Value::Str(s) => {
            js.enabled = match s.to_ascii_lowercase().as_str() {
                "enabled" | "enable" => true,
                "disabled" | "disable" => false,
                _ => {
                    return Err(ConfigError::at(
                        &item.pos,
                        format!("Expected 'enabled' or 'disabled' for string value, got '{s}'"),
                    ))
                }
            }
        }
        Value::Map(m) => {
            js.enabled = true;
            for (k, v) in m.iter() {
                match k.to_ascii_lowercase().as_str() {
                    "store_dir" | "storedir" | "store" => {
                        js.store_dir = Some(PathBuf::from(v.to_text(k)?))
                    }
                    "max_memory_store" | "max_mem_store" | "max_mem" => {
                        js.max_memory_store = Some(v.as_int(k)?)
                    }
                    "max_file_store" | "max_file" => js.max_file_store = Some(v.as_int(k)?),
                    "enabled" | "enable" => js.enabled = v.as_bool(k)?,
                    "strict" => js.strict = Some(v.as_bool(k)?),
                    "domain" => js.domain = Some(v.to_text(k)?.to_string()),
                    "sync" | "sync_interval" => {
                        js.sync = Some(match &v.value {
                            Value::Str(s) if s.eq_ignore_ascii_case("always") => JsSync::Always,
                            _ => JsSync::Interval(v.as_duration(k)?),
                        })
                    }
                    // Clustering, encryption and tuning knobs nats-server takes: accepted so
                    // a nats-server config starts here, with no effect on one server.
                    "extension_hint"
                    | "limits"
                    | "unique_tag"
                    | "max_outstanding_catchup"
                    | "max_buffered_size"
                    | "max_buffered_msgs"
                    | "request_queue_limit"
                    | "info_queue_limit"
                    | "meta_compact"
                    | "meta_compact_size"
                    | "meta_compact_sync"
                    | "max_concurrent_io" => {}
                    _ => return Err(ConfigError::at(&v.pos, format!("unknown field {k:?}"))),
                }
            }
        }
        _ => {
            return Err(ConfigError::at(
                &item.pos,
                format!("'{key}': expected a boolean, 'enabled' or a map"),
            ))
        }
    }
    Ok(js)
}

/// The simple `authorization` form: one user/password or a token, and the auth timeout.
/// Users lists and permissions belong to the auth module (`auth::config`).
fn authorization(block: &Map, doc: &Document, o: &mut Options) -> Result<(), ConfigError> {
    for (k, v) in block.iter() {
        match k.to_ascii_lowercase().as_str() {
            "user" | "username" => o.user = Some(v.to_text(k)?),
            "pass" | "password" => o.pass = Some(v.to_text(k)?),
            "token" => o.auth_token = Some(v.to_text(k)?),
            // nats-server reads seconds, integer or fractional.
            "timeout" => {
                let secs = match &v.value {
                    Value::Int(i) if *i >= 0 => *i as f64,
                    Value::Float(f) if *f >= 0.0 => *f,
                    Value::Str(_) => v.as_duration(k)?.as_secs_f64(),
                    _ => {
                        return Err(ConfigError::at(
                            &v.pos,
                            format!("'{k}': expected a number of seconds"),
                        ))
                    }
                };
                o.auth_timeout = std::time::Duration::from_secs_f64(secs);
            }
            "users" | "default_permission" | "default_permissions" | "permissions" => {}
            "nkeys" | "auth_callout" | "auth_hook" | "proxy_required" => {
                return Err(ConfigError::at(
                    &v.pos,
                    format!("authorization option '{k}' is not supported yet"),
                ))
            }
            _ if doc.is_used_var(&v.pos) => {}
            _ => return Err(ConfigError::at(&v.pos, format!("unknown field {k:?}"))),
        }
    }
    if (o.user.is_some() || o.pass.is_some()) && o.auth_token.is_some() {
        let pos = block
            .iter()
            .next()
            .map(|(_, i)| i.pos.clone())
            .unwrap_or_default();
        return Err(ConfigError::at(&pos, "Cannot have a user/pass and token"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn load_str(text: &str) -> Result<FileConfig, ConfigError> {
        let doc = parser::parse_str(text, Some(Path::new("t.conf")))?;
        from_document(&doc)
    }

    #[test]
    fn zero_limits_take_nats_servers_defaults() {
        let flags = Options {
            write_deadline: std::time::Duration::ZERO,
            max_pending: 0,
            ..Options::default()
        };
        let o = resolve(&flags).expect("resolve");
        assert_eq!(o.write_deadline, std::time::Duration::from_secs(10));
        assert_eq!(o.max_pending, 64 * 1024 * 1024);
    }

    fn opts(text: &str) -> Options {
        match load_str(text) {
            Ok(fc) => fc.opts,
            Err(e) => panic!("{text:?}: {e}"),
        }
    }

    fn err(text: &str) -> String {
        match load_str(text) {
            Ok(fc) => panic!("{text:?} loaded: {:?}", fc.opts),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn every_supported_key() {
        let o = opts(
            "listen: 127.0.0.1:5222\nserver_name: srv\nclient_advertise: 'x:1'\n\
             max_payload: 64KB\nmax_control_line: 2KB\nmax_connections: 10\nmax_subs: 7\n\
             max_pending: 1MB\nwrite_deadline: \"3s\"\nping_interval: 30\nping_max: 4\n\
             lame_duck_duration: \"40s\"\nlame_duck_grace_period: '5s'\ndebug: true\n\
             trace: yes\nlogtime: false\nlogtime_utc: on\nlog_file: /tmp/x.log\n\
             pid_file: /tmp/x.pid\nports_file_dir: /tmp\nhttp: localhost:8222\n\
             authorization { user: u, password: p, timeout: 1.5 }",
        );
        assert_eq!(o.host, "127.0.0.1");
        assert_eq!(o.port, 5222);
        assert_eq!(o.server_name.as_deref(), Some("srv"));
        assert_eq!(o.client_advertise.as_deref(), Some("x:1"));
        assert_eq!(o.max_payload, 65536);
        assert_eq!(o.max_control_line, 2048);
        assert_eq!(o.max_connections, 10);
        assert_eq!(o.max_subscriptions, 7);
        assert_eq!(o.max_pending, 1 << 20);
        assert_eq!(o.write_deadline, Duration::from_secs(3));
        assert_eq!(o.ping_interval, Duration::from_secs(30));
        assert_eq!(o.ping_max, 4);
        assert_eq!(o.lame_duck_duration, Duration::from_secs(40));
        assert_eq!(o.lame_duck_grace_period, Duration::from_secs(5));
        assert!(o.debug && o.trace && !o.logtime && o.logtime_utc);
        assert_eq!(o.log_file, Some(PathBuf::from("/tmp/x.log")));
        assert_eq!(o.pid_file, Some(PathBuf::from("/tmp/x.pid")));
        assert_eq!(o.ports_file_dir, Some(PathBuf::from("/tmp")));
        assert_eq!(o.http_host.as_deref(), Some("localhost"));
        assert_eq!(o.http_port, Some(8222));
        assert_eq!(o.user.as_deref(), Some("u"));
        assert_eq!(o.pass.as_deref(), Some("p"));
        assert_eq!(o.auth_timeout, Duration::from_millis(1500));
    }

    #[test]
    fn tls_lengthens_the_default_auth_timeout() {
        let tls = |secs| {
            let mut t = crate::tls::TlsConfig::from_flags("c".into(), "k".into(), None, false);
            t.timeout = Duration::from_secs(secs);
            Some(t)
        };
        let plain = Options::default();
        assert_eq!(
            resolve(&plain).unwrap().auth_timeout,
            Duration::from_secs(2)
        );
        let with_tls = Options {
            tls: tls(2),
            ..Options::default()
        };
        assert_eq!(
            resolve(&with_tls).unwrap().auth_timeout,
            Duration::from_secs(3)
        );
        let slow_tls = Options {
            tls: tls(5),
            ..Options::default()
        };
        assert_eq!(
            resolve(&slow_tls).unwrap().auth_timeout,
            Duration::from_secs(6)
        );
        // A timeout written on the command line or in `authorization` stays as written.
        let flag = Options {
            auth_timeout: Duration::from_millis(500),
            explicit: vec!["auth_timeout"],
            ..with_tls.clone()
        };
        assert_eq!(
            resolve(&flag).unwrap().auth_timeout,
            Duration::from_millis(500)
        );
        let mut file = opts("authorization { timeout: 0.5 }");
        file.tls = tls(2);
        default_auth_timeout(&mut file);
        assert_eq!(file.auth_timeout, Duration::from_millis(500));
    }

    #[test]
    fn aliases_and_ports() {
        let o = opts(
            "host: 0.0.0.0\nport: -1\nmonitor_port: 8222\nmax_conn: 0\nlogfile: a\npidfile: b",
        );
        assert_eq!(o.port, 0);
        assert_eq!(o.http_port, Some(8222));
        assert_eq!(o.max_connections, usize::MAX);
        assert_eq!(o.log_file, Some(PathBuf::from("a")));
        assert_eq!(o.pid_file, Some(PathBuf::from("b")));
        assert_eq!(opts("net: 10.0.0.1").host, "10.0.0.1");
        assert_eq!(opts("listen: 4333").port, 4333);
        assert_eq!(opts("listen: '[::1]:4333'").host, "::1");
        assert_eq!(opts("PORT: 4444").port, 4444);
        assert_eq!(
            opts("authorization { token: s3cr3t }")
                .auth_token
                .as_deref(),
            Some("s3cr3t")
        );
    }

    #[test]
    fn jetstream_forms() {
        assert_eq!(
            opts("jetstream: enabled").jetstream.map(|j| j.enabled),
            Some(true)
        );
        assert_eq!(
            opts("jetstream: false").jetstream.map(|j| j.enabled),
            Some(false)
        );
        let js =
            opts("jetstream { store_dir: '/data', max_memory_store: 1GB, max_file_store: 10GB }")
                .jetstream
                .unwrap();
        assert!(js.enabled);
        assert_eq!(js.store_dir, Some(PathBuf::from("/data")));
        assert_eq!(js.max_memory_store, Some(1 << 30));
        assert_eq!(js.max_file_store, Some(10 << 30));
        let js = opts("store_dir: /d").jetstream.unwrap();
        assert!(!js.enabled);
        assert_eq!(js.store_dir, Some(PathBuf::from("/d")));
        assert!(err("jetstream { store_dir: a }\nstore_dir: b").contains("Duplicate"));
        assert!(err("jetstream: maybe").contains("Expected 'enabled'"));
        let js = opts("jetstream { domain: hub, strict: false, sync_interval: always }")
            .jetstream
            .unwrap();
        assert_eq!(js.domain.as_deref(), Some("hub"));
        assert_eq!((js.strict, js.sync), (Some(false), Some(JsSync::Always)));
        let js = opts("jetstream { sync: '2m', max_buffered_msgs: 10 }")
            .jetstream
            .unwrap();
        assert_eq!(js.sync, Some(JsSync::Interval(Duration::from_secs(120))));
        assert!(err("jetstream { bogus: 1 }").contains("bogus"));
    }

    #[test]
    fn unsupported_and_unknown_keys() {
        assert_eq!(
            err("port: 1\ncluster {\n  port: 6222\n  tls {}\n}"),
            "t.conf:4:3: cluster option \"tls\" is not supported yet"
        );
        assert!(err("tls { cert_file: a }").contains("missing 'key_file' in TLS configuration"));
        let tls = opts("tls {\n  cert_file: c.pem\n  key_file: k.pem\n  handshake_first: true\n}")
            .tls
            .unwrap();
        assert_eq!(tls.cert_file, PathBuf::from("c.pem"));
        assert!(tls.handshake_first);
        assert!(err("accounts { A: { mappings: {} } }").contains("not supported yet"));
        let accs = opts(
            "accounts { A: { jetstream: enabled }, B: { jetstream: { max_mem: 1M } }, C: {} }",
        )
        .accounts;
        let js: Vec<bool> = accs.iter().map(|a| a.jetstream.is_some()).collect();
        assert_eq!(js, [true, true, false]);
        assert_eq!(accs[1].jetstream.map(|l| l.max_memory), Some(1_000_000));
        let l = opts(
            "accounts { A: { jetstream: { max_file: 2G, streams: 3, consumers: 4, \
             max_bytes: true, mem_max_stream_bytes: 5K, store_max_stream_bytes: 6KB, \
             max_ack_pending: 7, cluster_traffic: owner } } }",
        )
        .accounts[0]
            .jetstream
            .expect("limits");
        assert_eq!(
            (l.max_store, l.max_streams, l.max_consumers, l.max_memory),
            (2_000_000_000, 3, 4, -1)
        );
        assert!(l.max_bytes_required);
        assert_eq!(
            (
                l.memory_max_stream_bytes,
                l.store_max_stream_bytes,
                l.max_ack_pending
            ),
            (5_000, 6 << 10, 7)
        );
        assert!(opts("accounts { A: { jetstream: disabled } }").accounts[0]
            .jetstream
            .is_none());
        assert!(err("accounts { A: { jetstream: { max_mem: lots } } }")
            .contains("Expected a parseable size for \"max_mem\", got lots"));
        assert!(err("accounts { A: { jetstream: { max_bytes: 1 } } }")
            .contains("Expected a parseable bool for \"max_bytes\", got 1"));
        assert!(err("accounts { A: { jetstream: { nope: 1 } } }").contains("unknown field"));
        assert!(
            load_str("authorization { users: [ {user: a, password: b} ] }").map(|fc| fc
                .opts
                .authorization
                .and_then(|a| a.users)
                .map(|u| u.len()))
                == Ok(Some(1))
        );
        // Asking for nothing is fine.
        load_str("syslog: false\ncluster {}").unwrap();
        assert_eq!(err("bogus: 1"), "t.conf:1:1: unknown field \"bogus\"");
        assert!(err("authorization { bogus: 1 }").contains("unknown field \"bogus\""));
        // A key used as a variable is not unknown.
        assert_eq!(opts("MY_PORT: 4999\nport: $MY_PORT").port, 4999);
    }

    #[test]
    fn value_checks() {
        assert!(err("server_name: 'a b'").contains("cannot contain spaces"));
        assert!(err("max_payload: 3GB").contains("max_payload value is too big"));
        assert!(err("lame_duck_duration: '10s'").contains("minimum is 30 seconds"));
        assert!(err("port: 70000").contains("out of range"));
        assert!(err("port: abc").contains("expected an integer"));
        assert!(err("debug: 1").contains("expected a boolean"));
        assert!(err("listen: 'nohost'").contains("could not parse address"));
        assert!(err("ping_interval: 'soon'").contains("invalid duration"));
        assert!(err("authorization { user: a, token: b }")
            .contains("Cannot have a user/pass and token"));
    }

    #[test]
    fn load_reads_a_file() {
        let dir = std::env::temp_dir().join(format!("tachyon-opts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("s.conf");
        std::fs::write(&f, "port: 4567\n").unwrap();
        let fc = load(&f).unwrap();
        assert_eq!(fc.opts.port, 4567);
        assert_eq!(fc.opts.config_file.as_deref(), Some(f.as_path()));
        let e = load(&dir.join("nope.conf")).unwrap_err();
        assert!(e.msg.contains("nope.conf"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
