//! `websocket {}` (also `ws`), with nats-server's keys and checks (`parseWebsocket`,
//! `validateWebsocketOptions`).

use std::time::Duration;

use tachyon_settings::websocket::WebsocketOpts;

use crate::value::{ConfigError, Item, Map, Value};

/// The block; `None` when its port is 0 (no WebSocket, whatever else it says).
pub fn from_config(block: &Map, at: &Item) -> Result<Option<WebsocketOpts>, ConfigError> {
    let mut ws = WebsocketOpts::default();
    let mut port: i64 = 0;
    for (key, item) in block.iter() {
        match key.to_ascii_lowercase().as_str() {
            "listen" => {
                let (host, p) = crate::file::listen(item, key)?;
                if let Some(h) = host {
                    ws.host = h;
                }
                port = p;
            }
            "port" => port = item.as_int(key)?,
            "host" | "net" => ws.host = item.to_text(key)?,
            "advertise" => ws.advertise = Some(item.to_text(key)?),
            "no_tls" => ws.no_tls = item.as_bool(key)?,
            "tls" => ws.tls = Some(crate::tls::from_config(item.as_map(key)?)?),
            "same_origin" => ws.same_origin = item.as_bool(key)?,
            "allowed_origins" | "allowed_origin" | "allow_origins" | "allow_origin" | "origins"
            | "origin" => {
                ws.allowed_origins = match &item.value {
                    Value::Str(s) => vec![s.clone()],
                    _ => item.as_str_list(key)?,
                }
            }
            "handshake_timeout" => ws.handshake_timeout = handshake_timeout(item)?,
            "compress" | "compression" => ws.compression = item.as_bool(key)?,
            "authorization" | "authentication" => simple_auth(item.as_map(key)?, &mut ws)?,
            "no_auth_user" => ws.no_auth_user = Some(item.to_text(key)?),
            "user_cookie" => ws.user_cookie = Some(item.to_text(key)?),
            "pass_cookie" => ws.pass_cookie = Some(item.to_text(key)?),
            "token_cookie" => ws.token_cookie = Some(item.to_text(key)?),
            "jwt_cookie" => ws.jwt_cookie = Some(item.to_text(key)?),
            "ping_interval" => ws.ping_interval = Some(item.as_duration(key)?),
            "headers" => {
                let Value::Map(m) = &item.value else {
                    return Err(ConfigError::at(
                        &item.pos,
                        "error parsing headers: unsupported type",
                    ));
                };
                for (k, v) in m.iter() {
                    let Value::Str(s) = &v.value else {
                        return Err(ConfigError::at(
                            &v.pos,
                            format!("error parsing header key {k}: unsupported type"),
                        ));
                    };
                    ws.headers.push((k.to_string(), s.clone()));
                }
            }
            _ => return Err(ConfigError::at(&item.pos, format!("unknown field {key:?}"))),
        }
    }
    if port == 0 {
        return Ok(None);
    }
    ws.port = match port {
        -1 => 0,
        p => u16::try_from(p)
            .map_err(|_| ConfigError::at(&at.pos, format!("port {p} is out of range")))?,
    };
    if ws.host.is_empty() {
        ws.host = tachyon_settings::options::DEFAULT_HOST.to_string();
    }
    validate(&ws, at)?;
    Ok(Some(ws))
}

/// The block's `authorization {}` (nats-server's `parseSimpleAuth`): one user or a token.
fn simple_auth(block: &Map, ws: &mut WebsocketOpts) -> Result<(), ConfigError> {
    for (key, item) in block.iter() {
        match key.to_ascii_lowercase().as_str() {
            "user" | "username" => ws.username = Some(item.to_text(key)?),
            "pass" | "password" => ws.password = Some(item.to_text(key)?),
            "token" => ws.token = Some(item.to_text(key)?),
            "timeout" => ws.auth_timeout = Some(auth_timeout(item)?),
            _ => return Err(ConfigError::at(&item.pos, format!("unknown field {key:?}"))),
        }
    }
    Ok(())
}

/// An `authorization { timeout }` (websocket and leafnode blocks): seconds, whole or not.
pub(crate) fn auth_timeout(item: &Item) -> Result<Duration, ConfigError> {
    let secs = match &item.value {
        Value::Int(n) => *n as f64,
        Value::Float(f) => *f,
        _ => {
            return Err(ConfigError::at(
                &item.pos,
                "error parsing timeout: unsupported type",
            ))
        }
    };
    Ok(Duration::from_secs_f64(secs.max(0.0)))
}

/// `handshake_timeout`: seconds, or a Go duration string.
fn handshake_timeout(item: &Item) -> Result<Duration, ConfigError> {
    match &item.value {
        Value::Int(n) => Ok(Duration::from_secs((*n).max(0) as u64)),
        Value::Str(s) => crate::flags::parse_go_duration(s)
            .map_err(|e| ConfigError::at(&item.pos, format!("{e} {s:?}"))),
        _ => Err(ConfigError::at(
            &item.pos,
            "error parsing handshake timeout: unsupported type",
        )),
    }
}

/// nats-server's `validateWebsocketOptions` up to its checks against the server's users
/// (`file::websocket_users` makes those, then [`validate_last`]).
fn validate(ws: &WebsocketOpts, at: &Item) -> Result<(), ConfigError> {
    let err = |msg: String| Err(ConfigError::at(&at.pos, msg));
    if ws.tls.is_none() && !ws.no_tls {
        return err("websocket requires TLS configuration".into());
    }
    for ao in &ws.allowed_origins {
        let Some((scheme, rest)) = ao.split_once("://") else {
            return err(format!(
                "unable to parse allowed origin: parse {ao:?}: invalid URI for request"
            ));
        };
        if scheme != "http" && scheme != "https" {
            return err(format!("unable to parse allowed origin {ao:?}: allowed origins must be absolute URLs with http or https scheme"));
        }
        if rest.split('/').next().unwrap_or("").is_empty() {
            return err(format!(
                "unable to parse allowed origin {ao:?}: host is required"
            ));
        }
    }
    Ok(())
}

/// The rest of `validateWebsocketOptions`, in its order: the JWT cookie (refused: it needs
/// trusted operators, which Tachyon does not take), then the extra headers.
pub(crate) fn validate_last(
    ws: &WebsocketOpts,
    pos: &tachyon_settings::Pos,
) -> Result<(), ConfigError> {
    let err = |msg: String| Err(ConfigError::at(pos, msg));
    if let Some(c) = &ws.jwt_cookie {
        return err(format!(
            "trusted operators or trusted keys configuration is required for JWT authentication via cookie {c:?}"
        ));
    }
    for (key, _) in &ws.headers {
        let k = key.to_ascii_lowercase();
        if matches!(
            k.as_str(),
            "host" | "content-length" | "connection" | "upgrade" | "nats-no-masking"
        ) {
            return err(format!("websocket: invalid header {key:?} not allowed"));
        }
        if k.starts_with("sec-websocket-") {
            return err(format!(
                "websocket: invalid header {key:?}, \"Sec-WebSocket-\" prefix not allowed"
            ));
        }
    }
    Ok(())
}
