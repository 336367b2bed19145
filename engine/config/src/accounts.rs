//! The `accounts { NAME: { users, exports, imports } }` block, checked but not yet resolved to ids.

use bytes::Bytes;
use tachyon_protocol::subject;

use std::collections::HashSet;

use crate::auth::parse_users;
pub use tachyon_settings::accounts::{
    AccountDef, Export, Import, JsAccountLimits, Kind, Local, ResponseType, Responses,
    GLOBAL_ACCOUNT,
};

use crate::{ConfigError, Item, Map, Pos};

pub fn from_config(block: &Item) -> Result<Vec<AccountDef>, ConfigError> {
    from_config_with_vars(block, &|_| false)
}

/// [`from_config`] for a block of a parsed file: keys that only define a used `$variable` are
/// not errors. A user name or nkey may appear in one account only (nats-server's rule).
pub fn from_config_with_vars(
    block: &Item,
    used_var: &dyn Fn(&Pos) -> bool,
) -> Result<Vec<AccountDef>, ConfigError> {
    let map = block.as_map("accounts")?;
    let mut out: Vec<AccountDef> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    for (name, item) in map.iter() {
        if out.iter().any(|a| a.name == name) {
            return Err(ConfigError::at(
                &item.pos,
                format!("duplicate account {name:?}"),
            ));
        }
        let def = account(name, item, used_var)?;
        let users_pos = match &item.value {
            crate::Value::Map(m) => m.get("users").map(|u| u.pos.clone()),
            _ => None,
        }
        .unwrap_or_else(|| item.pos.clone());
        for u in &def.users {
            if !seen.insert(u.username.clone()) {
                return Err(ConfigError::at(
                    &users_pos,
                    format!("Duplicate user {:?} detected", u.username),
                ));
            }
        }
        for n in &def.nkeys {
            if !seen.insert(n.nkey.clone()) {
                return Err(ConfigError::at(
                    &users_pos,
                    format!("Duplicate nkey {:?} detected", n.nkey),
                ));
            }
        }
        out.push(def);
    }
    Ok(out)
}

fn account(
    name: &str,
    item: &Item,
    used_var: &dyn Fn(&Pos) -> bool,
) -> Result<AccountDef, ConfigError> {
    let mut def = AccountDef {
        name: name.to_string(),
        users: Vec::new(),
        nkeys: Vec::new(),
        exports: Vec::new(),
        imports: Vec::new(),
        jetstream: None,
    };
    let map = match &item.value {
        crate::Value::Map(m) => m,
        // `accounts: { A: {} }` and bare names in some examples: an account with nothing in it.
        _ => {
            return Err(ConfigError::at(
                &item.pos,
                format!("account {name:?}: expected a map"),
            ))
        }
    };
    for (key, v) in map.iter() {
        match key.to_ascii_lowercase().as_str() {
            "users" => (def.users, def.nkeys) = parse_users(v, used_var)?,
            "exports" => {
                for e in v.as_array("exports")? {
                    def.exports.push(export(e)?);
                }
            }
            "imports" => {
                for i in v.as_array("imports")? {
                    def.imports.push(import(i)?);
                }
            }
            "jetstream" => def.jetstream = account_jetstream(v)?,
            "mappings" | "limits" | "nkey" | "default_permissions" | "msg_trace" | "trace_dest" => {
                return Err(ConfigError::at(
                    &v.pos,
                    format!("account option {key:?} is not supported yet"),
                ))
            }
            _ => {
                return Err(ConfigError::at(
                    &v.pos,
                    format!("unknown field {key:?} in account {name:?}"),
                ))
            }
        }
    }
    Ok(def)
}

/// An account's `jetstream`: a bool, `enabled`/`disabled`, or a limits map, read as
/// nats-server's `parseJetStreamForAccount` reads it (same keys, aliases and errors).
fn account_jetstream(item: &Item) -> Result<Option<JsAccountLimits>, ConfigError> {
    let map = match &item.value {
        crate::Value::Bool(b) => return Ok(b.then(JsAccountLimits::default)),
        crate::Value::Str(s) => {
            return match s.to_ascii_lowercase().as_str() {
                "enabled" | "enable" => Ok(Some(JsAccountLimits::default())),
                "disabled" | "disable" => Ok(None),
                _ => Err(ConfigError::at(
                    &item.pos,
                    format!("Expected 'enabled' or 'disabled' for string value, got '{s}'"),
                )),
            }
        }
        crate::Value::Map(m) => m,
        _ => {
            return Err(ConfigError::at(
                &item.pos,
                "Expected map, bool or string to define JetStream",
            ))
        }
    };
    let mut l = JsAccountLimits::default();
    for (key, v) in map.iter() {
        let size = || match &v.value {
            crate::Value::Int(i) => Ok(*i),
            _ => Err(ConfigError::at(
                &v.pos,
                format!("Expected a parseable size for {key:?}, got {}", v.value),
            )),
        };
        match key.to_ascii_lowercase().as_str() {
            "max_memory" | "max_mem" | "mem" | "memory" => l.max_memory = size()?,
            "max_store" | "max_file" | "max_disk" | "store" | "disk" => l.max_store = size()?,
            "max_streams" | "streams" => l.max_streams = size()?,
            "max_consumers" | "consumers" => l.max_consumers = size()?,
            "max_bytes_required" | "max_stream_bytes" | "max_bytes" => {
                l.max_bytes_required = match &v.value {
                    crate::Value::Bool(b) => *b,
                    _ => {
                        return Err(ConfigError::at(
                            &v.pos,
                            format!("Expected a parseable bool for {key:?}, got {}", v.value),
                        ))
                    }
                }
            }
            "mem_max_stream_bytes" | "memory_max_stream_bytes" => {
                l.memory_max_stream_bytes = size()?
            }
            "disk_max_stream_bytes" | "store_max_stream_bytes" => {
                l.store_max_stream_bytes = size()?
            }
            "max_ack_pending" => l.max_ack_pending = size()?,
            // Which account carries clustering traffic: nothing to carry on one server.
            "cluster_traffic" => match &v.value {
                crate::Value::Str(s) if matches!(s.as_str(), "system" | "owner" | "") => {}
                _ => {
                    return Err(ConfigError::at(
                        &v.pos,
                        format!("Expected 'system' or 'owner' string value for {key:?}"),
                    ))
                }
            },
            _ => return Err(ConfigError::at(&v.pos, format!("unknown field {key:?}"))),
        }
    }
    Ok(Some(l))
}

fn valid_subject(item: &Item, key: &str) -> Result<Bytes, ConfigError> {
    let s = item.as_str(key)?;
    if !subject::valid_subscribe(s.as_bytes(), false) {
        return Err(ConfigError::at(
            &item.pos,
            format!("{key} {s:?} is not a valid subject"),
        ));
    }
    Ok(Bytes::copy_from_slice(s.as_bytes()))
}

fn export(item: &Item) -> Result<Export, ConfigError> {
    let map = item.as_map("exports")?;
    let mut kind_subject: Option<(Kind, Bytes)> = None;
    let mut accounts = None;
    let mut response = Responses::default();
    let mut response_pos: Option<&Item> = None;
    for (key, v) in map.iter() {
        match key.to_ascii_lowercase().as_str() {
            "stream" | "service" => {
                if kind_subject.is_some() {
                    return Err(ConfigError::at(
                        &v.pos,
                        "Detected stream and service in one export",
                    ));
                }
                let kind = if key.eq_ignore_ascii_case("stream") {
                    Kind::Stream
                } else {
                    Kind::Service
                };
                kind_subject = Some((kind, valid_subject(v, key)?));
            }
            "accounts" => accounts = Some(v.as_str_list("accounts")?),
            "response_type" | "response" => {
                let t = v.to_text(key)?;
                response.kind = match t.to_ascii_lowercase().as_str() {
                    "single" | "singleton" => ResponseType::Singleton,
                    "stream" => ResponseType::Streamed,
                    "chunk" | "chunked" => ResponseType::Chunked,
                    _ => {
                        return Err(ConfigError::at(
                            &v.pos,
                            format!("Unknown response type: {t:?}"),
                        ))
                    }
                };
                response_pos = Some(v);
            }
            "response_threshold" | "threshold" | "response_max_time" | "response_time" => {
                let t = v.to_text(key)?;
                response.threshold = crate::flags::parse_go_duration(&t).map_err(|_| {
                    ConfigError::at(
                        &v.pos,
                        format!(
                            "Expected response threshold to be a parseable time duration, got {t:?}"
                        ),
                    )
                })?;
                response_pos = Some(v);
            }
            // Latency tracking changes nothing about routing here.
            "latency" => {}
            _ => {
                return Err(ConfigError::at(
                    &v.pos,
                    format!("unknown field {key:?} in export"),
                ))
            }
        }
    }
    let Some((kind, subject)) = kind_subject else {
        return Err(ConfigError::at(
            &item.pos,
            "export needs a stream or a service subject",
        ));
    };
    if let (Kind::Stream, Some(v)) = (kind, response_pos) {
        return Err(ConfigError::at(
            &v.pos,
            "Detected response directive on non-service",
        ));
    }
    Ok(Export {
        kind,
        subject,
        accounts,
        response,
    })
}

fn import(item: &Item) -> Result<Import, ConfigError> {
    let map = item.as_map("imports")?;
    let mut source: Option<(Kind, String, Bytes)> = None;
    let mut prefix = None;
    let mut to = None;
    for (key, v) in map.iter() {
        match key.to_ascii_lowercase().as_str() {
            "stream" | "service" => {
                if source.is_some() {
                    return Err(ConfigError::at(
                        &v.pos,
                        "Detected stream and service in one import",
                    ));
                }
                let kind = if key.eq_ignore_ascii_case("stream") {
                    Kind::Stream
                } else {
                    Kind::Service
                };
                let m: &Map = v.as_map(key)?;
                let account = m.get("account").map(|a| a.to_text("account")).transpose()?;
                let subject = m
                    .get("subject")
                    .map(|s| valid_subject(s, "subject"))
                    .transpose()?;
                match (account, subject) {
                    (Some(a), Some(s)) if !a.is_empty() => source = Some((kind, a, s)),
                    _ => {
                        return Err(ConfigError::at(
                            &v.pos,
                            "Expect an account name and a subject",
                        ))
                    }
                }
            }
            "prefix" => prefix = Some(v.as_str("prefix")?.to_string()),
            "to" => to = Some(valid_subject(v, "to")?),
            "share" => {
                v.as_bool("share")?;
            }
            _ => {
                return Err(ConfigError::at(
                    &v.pos,
                    format!("unknown field {key:?} in import"),
                ))
            }
        }
    }
    let Some((kind, account, subject)) = source else {
        return Err(ConfigError::at(
            &item.pos,
            "import needs a stream or a service",
        ));
    };
    let local = match (kind, prefix, to) {
        (_, Some(_), Some(_)) => {
            return Err(ConfigError::at(&item.pos, "import has both prefix and to"))
        }
        (Kind::Service, Some(_), None) => {
            return Err(ConfigError::at(
                &item.pos,
                "a service import takes `to`, not `prefix`",
            ))
        }
        (_, Some(p), None) => Local::Prefix(p),
        (_, None, Some(t)) => Local::To(t),
        (_, None, None) => Local::Same,
    };
    Ok(Import {
        kind,
        account,
        subject,
        local,
        pos: item.pos.clone(),
    })
}
