//! `leafnodes {}` (also `leaf`), as nats-server's `parseLeafNodes`/`parseRemoteLeafNodes` read
//! it, for what Tachyon serves: `remotes` it dials as a leaf. Accepting leafs (`listen`,
//! `port`, `authorization`), TLS and credentials to a hub are refused by name.

use tachyon_settings::leafnode::{
    LeafAuth, LeafListen, LeafUrl, LeafUser, LeafnodeOpts, RemoteLeaf, DEFAULT_LEAF_PORT,
};

use crate::value::{ConfigError, Item, Map, Value};

/// Block keys nats-server takes that Tachyon does not serve yet.
const NOT_YET: &[&str] = &[
    "min_version",
    "minimum_version",
    "isolate_leafnode_interest",
    "isolate",
    "write_deadline",
    "write_timeout",
];

/// Remote keys nats-server takes that Tachyon does not serve yet.
const REMOTE_NOT_YET: &[&str] = &[
    "hub",
    "deny_imports",
    "deny_import",
    "deny_exports",
    "deny_export",
    "ws_compress",
    "ws_compression",
    "websocket_compress",
    "websocket_compression",
    "ws_no_masking",
    "websocket_no_masking",
    "jetstream_cluster_migrate",
    "js_cluster_migrate",
    "isolate_leafnode_interest",
    "isolate",
    "request_isolation",
    "proxy",
];

pub fn from_config(block: &Map) -> Result<LeafnodeOpts, ConfigError> {
    let mut o = LeafnodeOpts::default();
    let mut listen = LeafListen {
        host: tachyon_settings::options::DEFAULT_HOST.to_string(),
        port: 0,
        advertise: None,
        no_advertise: false,
        auth: None,
        tls: None,
    };
    let mut port: Option<i64> = None;
    for (key, item) in block.iter() {
        match key.to_ascii_lowercase().as_str() {
            "listen" => {
                let (host, p) = crate::file::listen(item, key)?;
                if let Some(h) = host {
                    listen.host = h;
                }
                port = Some(p);
            }
            "port" => port = Some(item.as_int(key)?),
            "host" | "net" => listen.host = item.to_text(key)?,
            "advertise" | "leafnode_advertise" => listen.advertise = Some(item.to_text(key)?),
            "no_advertise" => listen.no_advertise = item.as_bool(key)?,
            "authorization" => listen.auth = Some(authorization(item.as_map(key)?)?),
            "tls" => listen.tls = Some(crate::tls::from_config(item.as_map(key)?)?),
            "remotes" => {
                for r in item.as_array(key)? {
                    o.remotes.push(remote(r)?);
                }
            }
            "reconnect" | "reconnect_delay" | "reconnect_interval" => {
                o.reconnect = item.as_duration(key)?
            }
            // Only the plain-text protocol is spoken; "off" says so.
            "compression" => compression(item)?,
            // How long a dial may take: Tachyon's dials give up with the kernel's timeout.
            "dial_timeout" => {
                item.as_duration(key)?;
            }
            k if NOT_YET.contains(&k) => return Err(not_yet(item, key)),
            _ => return Err(ConfigError::at(&item.pos, format!("unknown field {key:?}"))),
        }
    }
    // As nats-server: no port (or 0), no leafnode port; -1 picks one.
    match port {
        None | Some(0) => {}
        Some(-1) => o.listen = Some(listen),
        Some(p) => {
            listen.port = u16::try_from(p).map_err(|_| {
                ConfigError::at(
                    &block
                        .iter()
                        .next()
                        .map(|(_, i)| i.pos.clone())
                        .unwrap_or_default(),
                    format!("leafnode port {p} is out of range"),
                )
            })?;
            o.listen = Some(listen);
        }
    }
    Ok(o)
}

/// `leafnodes { authorization {} }` (nats-server's `parseLeafAuthorization`).
fn authorization(block: &Map) -> Result<LeafAuth, ConfigError> {
    let mut a = LeafAuth::default();
    for (key, item) in block.iter() {
        match key.to_ascii_lowercase().as_str() {
            "user" | "username" => a.user = Some(item.to_text(key)?),
            "pass" | "password" => a.password = Some(item.to_text(key)?),
            "account" => a.account = Some(item.to_text(key)?),
            "timeout" => a.timeout = Some(crate::websocket::auth_timeout(item)?),
            "users" => {
                for u in item.as_array(key)? {
                    let Value::Map(m) = &u.value else {
                        return Err(ConfigError::at(
                            &u.pos,
                            "Expected user entry to be a map/struct",
                        ));
                    };
                    let mut user = LeafUser {
                        user: String::new(),
                        password: String::new(),
                        account: None,
                    };
                    for (k, v) in m.iter() {
                        match k.to_ascii_lowercase().as_str() {
                            "user" | "username" => user.user = v.to_text(k)?,
                            "pass" | "password" => user.password = v.to_text(k)?,
                            "account" => user.account = Some(v.to_text(k)?),
                            _ => {
                                return Err(ConfigError::at(&v.pos, format!("unknown field {k:?}")))
                            }
                        }
                    }
                    a.users.push(user);
                }
            }
            "nkey" | "token" | "proxy_required" => return Err(not_yet(item, key)),
            _ => return Err(ConfigError::at(&item.pos, format!("unknown field {key:?}"))),
        }
    }
    Ok(a)
}

fn not_yet(item: &Item, key: &str) -> ConfigError {
    ConfigError::at(
        &item.pos,
        format!("leafnode option {key:?} is not supported yet"),
    )
}

fn compression(item: &Item) -> Result<(), ConfigError> {
    let off = match &item.value {
        Value::Bool(b) => !*b,
        Value::Str(s) => matches!(
            s.to_ascii_lowercase().as_str(),
            "off" | "disabled" | "false"
        ),
        Value::Map(m) => m.iter().all(|(k, v)| {
            !k.eq_ignore_ascii_case("mode")
                || matches!(&v.value, Value::Str(s) if s.eq_ignore_ascii_case("off"))
        }),
        _ => false,
    };
    if off {
        Ok(())
    } else {
        Err(ConfigError::at(
            &item.pos,
            "leafnode compression other than \"off\" is not supported yet",
        ))
    }
}

fn remote(item: &Item) -> Result<RemoteLeaf, ConfigError> {
    let Value::Map(m) = &item.value else {
        return Err(ConfigError::at(
            &item.pos,
            "Expected remote leafnode entry to be a map/struct",
        ));
    };
    let mut r = RemoteLeaf {
        urls: Vec::new(),
        account: None,
        tls: None,
        nkey_seed: None,
        credentials: None,
    };
    for (key, v) in m.iter() {
        match key.to_ascii_lowercase().as_str() {
            "url" | "urls" => match &v.value {
                Value::Str(s) => r.urls.push(parse_url(s, v)?),
                Value::Array(a) => {
                    for u in a {
                        r.urls.push(parse_url(&u.to_text(key)?, u)?);
                    }
                }
                _ => {
                    return Err(ConfigError::at(
                        &v.pos,
                        "Expected remote leafnode url to be an array or string",
                    ))
                }
            },
            "account" | "local" => r.account = Some(v.to_text(key)?),
            "tls" => r.tls = Some(remote_tls(v.as_map(key)?)?),
            // Checked to be a seed when the server starts (the signer is built then).
            "nkey" | "seed" => r.nkey_seed = Some(v.to_text(key)?),
            "credentials" | "creds" => {
                r.credentials = Some(std::path::PathBuf::from(v.to_text(key)?))
            }
            "no_randomize" | "dont_randomize" => {
                v.as_bool(key)?;
            }
            "compression" => compression(v)?,
            "first_info_timeout" | "dial_timeout" => {
                v.as_duration(key)?;
            }
            "disabled" if v.as_bool(key)? => {}
            "disabled" => {}
            "ignore_discovered_servers" => {
                v.as_bool(key)?;
            }
            k if REMOTE_NOT_YET.contains(&k) => return Err(not_yet(v, key)),
            _ => return Err(ConfigError::at(&v.pos, format!("unknown field {key:?}"))),
        }
    }
    if r.urls.is_empty() {
        return Err(ConfigError::at(
            &item.pos,
            "remote leafnode entry has no url",
        ));
    }
    if r.credentials.is_some() && r.nkey_seed.is_some() {
        return Err(ConfigError::at(
            &item.pos,
            "Remote leafnode can not have both creds and nkey defined",
        ));
    }
    Ok(r)
}

/// A remote's `tls {}`, as a client of its hub.
fn remote_tls(block: &Map) -> Result<tachyon_settings::leafnode::LeafTls, ConfigError> {
    let mut t = tachyon_settings::leafnode::LeafTls {
        timeout: std::time::Duration::from_secs(2),
        ..Default::default()
    };
    for (key, item) in block.iter() {
        match key.to_ascii_lowercase().as_str() {
            "ca_file" => t.ca_file = Some(item.to_text(key)?.into()),
            "cert_file" => t.cert_file = Some(item.to_text(key)?.into()),
            "key_file" => t.key_file = Some(item.to_text(key)?.into()),
            "insecure" => t.insecure = item.as_bool(key)?,
            "timeout" => t.timeout = item.as_duration(key)?,
            // The hub verifies us with what it configured; nothing to do here.
            "verify" => {
                item.as_bool(key)?;
            }
            _ => return Err(not_yet(item, key)),
        }
    }
    if t.cert_file.is_some() != t.key_file.is_some() {
        let (_, item) = block.iter().next().ok_or_else(|| {
            ConfigError::at(
                &Default::default(),
                "missing 'key_file' in TLS configuration",
            )
        })?;
        let missing = if t.cert_file.is_some() {
            "key_file"
        } else {
            "cert_file"
        };
        return Err(ConfigError::at(
            &item.pos,
            format!("missing '{missing}' in TLS configuration"),
        ));
    }
    Ok(t)
}

/// `nats-leaf://[user[:pass]@]host[:port]` (also `nats://`); `tls://` and `ws(s)://` need TLS
/// or WebSocket dialing, which Tachyon does not do yet.
pub fn parse_url(text: &str, at: &Item) -> Result<LeafUrl, ConfigError> {
    let bad = || ConfigError::at(&at.pos, format!("error parsing leafnode url [{text:?}]"));
    let (scheme, rest) = match text.split_once("://") {
        Some((s, r)) => (s.to_ascii_lowercase(), r),
        None => ("nats-leaf".to_string(), text),
    };
    match scheme.as_str() {
        "nats-leaf" | "nats" | "tls" => {}
        "ws" | "wss" => {
            return Err(ConfigError::at(
                &at.pos,
                format!("leafnode url scheme {scheme:?} is not supported yet"),
            ))
        }
        _ => return Err(bad()),
    }
    let rest = rest.trim_end_matches('/');
    let (userinfo, hostport) = match rest.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, rest),
    };
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || hostport.starts_with('[') => {
            (h, p.parse::<u16>().map_err(|_| bad())?)
        }
        _ => (hostport, DEFAULT_LEAF_PORT),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(bad());
    }
    let (user, password) = match userinfo {
        None => (None, None),
        Some(u) => match u.split_once(':') {
            Some((a, b)) => (Some(a.to_string()), Some(b.to_string())),
            None => (Some(u.to_string()), None),
        },
    };
    let shown = match &user {
        Some(u) if password.is_some() => format!("{scheme}://{u}:xxxxx@{hostport}"),
        Some(_) => format!("{scheme}://xxxxx@{hostport}"),
        None => format!("{scheme}://{hostport}"),
    };
    Ok(LeafUrl {
        host: host.to_string(),
        port,
        user,
        password,
        shown,
        tls: scheme == "tls",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Pos;

    fn at() -> Item {
        Item {
            value: Value::Bool(true),
            pos: Pos::default(),
        }
    }

    #[test]
    fn urls_with_and_without_credentials() {
        let u = parse_url("nats-leaf://bob:s3cret@127.0.0.1:7000", &at()).unwrap();
        assert_eq!(
            (
                u.host.as_str(),
                u.port,
                u.user.as_deref(),
                u.password.as_deref()
            ),
            ("127.0.0.1", 7000, Some("bob"), Some("s3cret"))
        );
        assert_eq!(u.shown, "nats-leaf://bob:xxxxx@127.0.0.1:7000");
        let u = parse_url("nats://hub.example", &at()).unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.user),
            ("hub.example", 7422, None)
        );
        let u = parse_url("nats-leaf://tok@[::1]:7422/", &at()).unwrap();
        assert_eq!((u.host.as_str(), u.user.as_deref()), ("::1", Some("tok")));
        assert!(parse_url("tls://h:1", &at()).unwrap().tls);
        assert!(parse_url("ws://h:1", &at())
            .unwrap_err()
            .to_string()
            .contains("not supported yet"));
        assert!(parse_url("http://h:1", &at()).is_err());
        assert!(parse_url("nats://h:port", &at()).is_err());
    }
}
