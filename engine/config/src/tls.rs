//! What an operator asks of client TLS, from a config file's `tls {}` block or the `--tls*`
//! flags, in nats-server's spellings and with its defaults. Nothing here touches a file: the
//! certificates are read when the server starts (`server.rs`).

use std::path::PathBuf;
use std::time::Duration;

pub use tachyon_settings::tls::{TlsConfig, DEFAULT_FALLBACK_DELAY, DEFAULT_TLS_TIMEOUT};

use crate::{ConfigError, Item, Map, Pos, Value};

/// Fields nats-server accepts in a `tls {}` block that Tachyon does not implement yet: refused
/// by name rather than silently ignored.
const NOT_YET: &[&str] = &[
    "insecure",
    "verify_cert_and_check_known_urls",
    "allow_insecure_cipher_suites",
    "cipher_suites",
    "curve_preferences",
    "connection_rate_limit",
    "pinned_certs",
    "cert_store",
    "cert_match_by",
    "cert_match",
    "ca_certs_match",
    "cert_match_skip_invalid",
    "ocsp_peer",
    "certs",
    "certificates",
    "min_version",
];

/// Reads a client `tls {}` block.
pub fn from_config(block: &Map) -> Result<TlsConfig, ConfigError> {
    let mut cert_file = None;
    let mut key_file = None;
    let mut ca_file = None;
    let mut verify = false;
    let mut map = false;
    let mut timeout = Duration::ZERO;
    let mut handshake_first = false;
    let mut fallback = Duration::ZERO;
    for (key, item) in block.iter() {
        match key.to_ascii_lowercase().as_str() {
            "cert_file" => cert_file = Some(file(item, "cert_file")?),
            "key_file" => key_file = Some(file(item, "key_file")?),
            "ca_file" => ca_file = Some(file(item, "ca_file")?),
            "verify" => verify = boolean(item, "verify")?,
            "verify_and_map" => {
                map = boolean(item, "verify_and_map")?;
                // Turning mapping off leaves an explicit `verify: true` alone, as nats-server does.
                verify |= map;
            }
            "timeout" => {
                timeout = item.as_duration("timeout").map_err(|_| {
                    ConfigError::at(&item.pos, "error parsing tls config, 'timeout' wrong type")
                })?
            }
            "handshake_first" | "first" | "immediate" => {
                (handshake_first, fallback) = first(key, item)?
            }
            k if NOT_YET.contains(&k) => {
                return Err(ConfigError::at(
                    &item.pos,
                    format!("tls option {key:?} is not supported yet"),
                ))
            }
            _ => {
                return Err(ConfigError::at(
                    &item.pos,
                    format!("error parsing tls config, unknown field {key:?}"),
                ))
            }
        }
    }
    let block_pos = block
        .iter()
        .next()
        .map(|(_, i)| i.pos.clone())
        .unwrap_or_default();
    let missing =
        |what: &str| ConfigError::at(&block_pos, format!("missing '{what}' in TLS configuration"));
    let (cert_file, key_file) = match (cert_file, key_file) {
        (Some(c), Some(k)) => (c, k),
        (_, Some(_)) | (None, None) => return Err(missing("cert_file")),
        (Some(_), None) => return Err(missing("key_file")),
    };
    Ok(TlsConfig {
        cert_file,
        key_file,
        ca_file,
        verify,
        map,
        timeout: if timeout.is_zero() {
            DEFAULT_TLS_TIMEOUT
        } else {
            timeout
        },
        handshake_first,
        fallback,
    })
}

fn file(item: &Item, key: &str) -> Result<PathBuf, ConfigError> {
    match &item.value {
        Value::Str(s) => Ok(PathBuf::from(s)),
        _ => Err(ConfigError::at(
            &item.pos,
            format!("error parsing tls config, expected '{key}' to be filename"),
        )),
    }
}

fn boolean(item: &Item, key: &str) -> Result<bool, ConfigError> {
    item.as_bool(key).map_err(|_| {
        ConfigError::at(
            &item.pos,
            format!("error parsing tls config, expected '{key}' to be a boolean"),
        )
    })
}

/// `handshake_first` takes a boolean or nats-server's words for one, `auto` (fall back to
/// INFO first after 50 ms of silence) or a Go duration (fall back after that long).
fn first(key: &str, item: &Item) -> Result<(bool, Duration), ConfigError> {
    let pos: &Pos = &item.pos;
    match &item.value {
        Value::Bool(b) => Ok((*b, Duration::ZERO)),
        Value::Str(s) => match s.to_ascii_lowercase().as_str() {
            "true" | "on" => Ok((true, Duration::ZERO)),
            "false" | "off" => Ok((false, Duration::ZERO)),
            "auto" | "auto_fallback" => Ok((true, DEFAULT_FALLBACK_DELAY)),
            _ => match crate::value::parse_go_duration(s) {
                Some(d) => Ok((true, d)),
                None => Err(ConfigError::at(
                    pos,
                    format!("field {key:?}'s value {s:?} is invalid"),
                )),
            },
        },
        _ => Err(ConfigError::at(
            pos,
            format!("field {key:?} should be a boolean or a string"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(value: Value, line: u32) -> Item {
        Item {
            value,
            pos: Pos {
                file: None,
                line,
                col: 3,
            },
        }
    }

    fn block(entries: &[(&str, Value)]) -> Map {
        let mut m = Map::default();
        for (i, (k, v)) in entries.iter().enumerate() {
            m.insert((*k).to_string(), item(v.clone(), i as u32 + 1));
        }
        m
    }

    fn s(v: &str) -> Value {
        Value::Str(v.to_string())
    }

    #[test]
    fn minimal_block_gets_nats_server_defaults() {
        let c = from_config(&block(&[
            ("cert_file", s("c.pem")),
            ("key_file", s("k.pem")),
        ]))
        .expect("valid");
        assert_eq!(c.cert_file, PathBuf::from("c.pem"));
        assert_eq!(c.key_file, PathBuf::from("k.pem"));
        assert_eq!(c.ca_file, None);
        assert!(!c.verify && !c.map && !c.handshake_first);
        assert_eq!(c.timeout, DEFAULT_TLS_TIMEOUT);
    }

    #[test]
    fn every_supported_field() {
        let c = from_config(&block(&[
            ("CERT_FILE", s("c.pem")),
            ("key_file", s("k.pem")),
            ("ca_file", s("ca.pem")),
            ("verify_and_map", Value::Bool(true)),
            ("timeout", Value::Float(0.5)),
            ("handshake_first", s("on")),
        ]))
        .expect("valid");
        assert_eq!(c.ca_file, Some(PathBuf::from("ca.pem")));
        assert!(c.verify, "verify_and_map implies verify");
        assert!(c.map);
        assert!(c.handshake_first);
        assert_eq!(c.timeout, Duration::from_millis(500));
    }

    #[test]
    fn timeout_spellings() {
        for (v, want) in [
            (Value::Int(3), Duration::from_secs(3)),
            (s("250ms"), Duration::from_millis(250)),
            (Value::Int(0), DEFAULT_TLS_TIMEOUT),
        ] {
            let c = from_config(&block(&[
                ("cert_file", s("c")),
                ("key_file", s("k")),
                ("timeout", v),
            ]))
            .expect("valid");
            assert_eq!(c.timeout, want);
        }
        let e = from_config(&block(&[
            ("cert_file", s("c")),
            ("key_file", s("k")),
            ("timeout", s("soon")),
        ]))
        .expect_err("bad timeout");
        assert!(e.msg.contains("'timeout'"), "{e}");
        assert_eq!(e.pos.line, 3);
    }

    #[test]
    fn first_aliases_and_fallback_delays() {
        for key in ["first", "immediate"] {
            let c = from_config(&block(&[
                ("cert_file", s("c")),
                ("key_file", s("k")),
                (key, Value::Bool(true)),
            ]))
            .expect("valid");
            assert!(c.handshake_first);
        }
        for (v, delay) in [
            ("auto", DEFAULT_FALLBACK_DELAY),
            ("AUTO_FALLBACK", DEFAULT_FALLBACK_DELAY),
            ("300ms", Duration::from_millis(300)),
            ("1s", Duration::from_secs(1)),
            ("on", Duration::ZERO),
        ] {
            let c = from_config(&block(&[
                ("cert_file", s("c")),
                ("key_file", s("k")),
                ("handshake_first", s(v)),
            ]))
            .expect("fallback forms are valid");
            assert!(c.handshake_first, "{v}");
            assert_eq!(c.fallback, delay, "{v}");
        }
        let e = from_config(&block(&[
            ("cert_file", s("c")),
            ("key_file", s("k")),
            ("handshake_first", s("maybe")),
        ]))
        .expect_err("invalid");
        assert!(e.msg.contains("is invalid"), "{e}");
    }

    #[test]
    fn errors_name_the_field_and_position() {
        let e = from_config(&block(&[("cert_file", s("c"))])).expect_err("no key");
        assert_eq!(e.msg, "missing 'key_file' in TLS configuration");
        let e = from_config(&block(&[("key_file", s("k"))])).expect_err("no cert");
        assert_eq!(e.msg, "missing 'cert_file' in TLS configuration");
        let e = from_config(&block(&[
            ("cert_file", Value::Int(1)),
            ("key_file", s("k")),
        ]))
        .expect_err("cert not a string");
        assert_eq!(
            e.msg,
            "error parsing tls config, expected 'cert_file' to be filename"
        );
        assert_eq!(e.pos.line, 1);
        let e = from_config(&block(&[
            ("cert_file", s("c")),
            ("key_file", s("k")),
            ("verify", s("yes")),
        ]))
        .expect_err("verify not a bool");
        assert_eq!(
            e.msg,
            "error parsing tls config, expected 'verify' to be a boolean"
        );
        let e = from_config(&block(&[
            ("cert_file", s("c")),
            ("key_file", s("k")),
            ("colour", s("blue")),
        ]))
        .expect_err("unknown");
        assert_eq!(e.msg, "error parsing tls config, unknown field \"colour\"");
        assert_eq!(e.pos.line, 3);
        let e = from_config(&block(&[
            ("cert_file", s("c")),
            ("key_file", s("k")),
            ("cipher_suites", Value::Array(vec![])),
        ]))
        .expect_err("not yet");
        assert!(e.msg.contains("not supported yet"), "{e}");
    }
}
