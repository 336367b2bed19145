//! INFO and CONNECT payloads.
//!
//! `ServerInfo` keeps the field names, order and omit-empty rules of nats-server's
//! `Info` struct (server/server.go) for the fields a client connection can see, so
//! clients that compare INFO text or gate features on fields behave the same.
//! CONNECT is decoded the way Go's `encoding/json` does it into nats-server's
//! `ClientOpts`: keys match case-insensitively, unknown keys and `null` values are
//! ignored, a wrong type is an error, and absent fields keep nats-server's defaults
//! (`verbose`, `pedantic` and `echo` default to true).

use serde::{Deserialize, Serialize};

use crate::parser::ProtocolError;

fn is_false(b: &bool) -> bool {
    !*b
}
fn is_zero(n: &u64) -> bool {
    *n == 0
}
fn is_zero_i32(n: &i32) -> bool {
    *n == 0
}

#[derive(Serialize, Deserialize, Clone, Default, Debug, PartialEq, Eq)]
#[serde(default)]
pub struct ServerInfo {
    pub server_id: String,
    pub server_name: String,
    /// The nats-server version whose protocol is implemented (clients gate on it).
    pub version: String,
    pub proto: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub git_commit: Option<String>,
    pub go: String,
    pub host: String,
    pub port: u16,
    pub headers: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub auth_required: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub tls_required: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub tls_verify: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub tls_available: bool,
    pub max_payload: i32,
    #[serde(skip_serializing_if = "is_false")]
    pub jetstream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(skip_serializing_if = "is_zero")]
    pub client_id: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    #[serde(skip_serializing_if = "is_false")]
    pub cluster_dynamic: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub connect_urls: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ws_connect_urls: Vec<String>,
    #[serde(skip_serializing_if = "is_false")]
    pub ldm: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compression: Option<String>,
    #[serde(skip_serializing_if = "is_false")]
    pub connect_info: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_account: Option<String>,
    #[serde(skip_serializing_if = "is_false")]
    pub acc_is_sys: bool,
    #[serde(skip_serializing_if = "is_zero_i32")]
    pub api_lvl: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub xkey: Option<String>,
    /// Tachyon's own version; not in nats-server's INFO, ignored by clients.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub tachyon: String,
}

impl ServerInfo {
    pub fn to_json(&self) -> Vec<u8> {
        // Serializing plain strings, numbers and bools into a Vec cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(default)]
pub struct ConnectOptions {
    pub verbose: bool,
    pub pedantic: bool,
    pub tls_required: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pass: Option<String>,
    pub name: String,
    pub lang: String,
    pub version: String,
    pub protocol: i64,
    pub echo: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub headers: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub no_responders: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sig: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nkey: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(skip_serializing_if = "is_false")]
    pub new_account: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy_sig: Option<String>,
}

impl Default for ConnectOptions {
    /// nats-server's `defaultOpts`: what a client that never sent a field gets.
    fn default() -> Self {
        ConnectOptions {
            verbose: true,
            pedantic: true,
            tls_required: false,
            auth_token: None,
            user: None,
            pass: None,
            name: String::new(),
            lang: String::new(),
            version: String::new(),
            protocol: 0,
            echo: true,
            headers: false,
            no_responders: false,
            sig: None,
            jwt: None,
            nkey: None,
            account: None,
            new_account: false,
            proxy_sig: None,
        }
    }
}

const CONNECT_FIELDS: &[&str] = &[
    "verbose",
    "pedantic",
    "tls_required",
    "auth_token",
    "user",
    "pass",
    "name",
    "lang",
    "version",
    "protocol",
    "echo",
    "headers",
    "no_responders",
    "sig",
    "jwt",
    "nkey",
    "account",
    "new_account",
    "proxy_sig",
];

/// Highest client protocol nats-server accepts (`ClientProtoInfo`).
pub const MAX_CLIENT_PROTOCOL: i64 = 1;

impl ConnectOptions {
    /// nats-server's post-CONNECT checks that do not depend on server state:
    /// protocol in 0..=1 and no_responders only with headers. Both send -ERR and close.
    pub fn validate(&self, server_headers: bool) -> Result<(), ProtocolError> {
        if !(0..=MAX_CLIENT_PROTOCOL).contains(&self.protocol) {
            return Err(ProtocolError::BadClientProtocol);
        }
        if self.no_responders && !(self.headers && server_headers) {
            return Err(ProtocolError::NoRespondersRequiresHeaders);
        }
        Ok(())
    }
}

/// Decodes a CONNECT argument over nats-server's defaults.
pub fn parse_connect(json: &[u8]) -> Result<ConnectOptions, ProtocolError> {
    parse_connect_over(json, ConnectOptions::default())
}

/// Decodes a CONNECT argument over earlier options, as a second CONNECT does in
/// nats-server (Go's Unmarshal only overwrites fields present in the JSON).
pub fn parse_connect_over(
    json: &[u8],
    base: ConnectOptions,
) -> Result<ConnectOptions, ProtocolError> {
    let bad = |e: serde_json::Error| ProtocolError::BadConnect(e.to_string());
    // Go's Unmarshal: `null` leaves the struct as it was, and invalid UTF-8 inside strings
    // becomes U+FFFD instead of an error.
    if json.trim_ascii() == b"null" {
        return Ok(base);
    }
    let text = String::from_utf8_lossy(json);
    let obj: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&text).map_err(bad)?;
    let mut merged = match serde_json::to_value(&base).map_err(bad)? {
        serde_json::Value::Object(m) => m,
        _ => serde_json::Map::new(),
    };
    // Exact-case keys win over case-insensitive ones, as in encoding/json.
    for exact in [false, true] {
        for (k, v) in &obj {
            if v.is_null() {
                continue;
            }
            let Some(field) = CONNECT_FIELDS.iter().find(|f| f.eq_ignore_ascii_case(k)) else {
                continue;
            };
            if exact == (*field == k.as_str()) {
                merged.insert((*field).to_string(), v.clone());
            }
        }
    }
    ConnectOptions::deserialize(serde_json::Value::Object(merged)).map_err(bad)
}

/// nats-server decodes a client's INFO into its `Info` struct and otherwise ignores
/// it; undecodable JSON closes the connection silently.
pub fn check_info(json: &[u8]) -> Result<(), ProtocolError> {
    serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(json)
        .map(|_| ())
        .map_err(|e| ProtocolError::BadInfo(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_null_and_invalid_utf8_are_accepted_like_go() {
        let base = ConnectOptions {
            verbose: false,
            name: "kept".into(),
            ..ConnectOptions::default()
        };
        let o = parse_connect_over(b" null ", base.clone()).expect("null is a no-op");
        assert_eq!((o.verbose, o.name.as_str()), (false, "kept"));
        let o = parse_connect(b"{\"name\":\"a\xff\xfeb\",\"verbose\":false}").expect("lossy");
        assert_eq!(o.name, "a\u{fffd}\u{fffd}b");
        assert!(!o.verbose);
        assert!(parse_connect(b"{\"name\":").is_err());
    }

    #[test]
    fn info_field_order_and_omissions_follow_nats_server() {
        let info = ServerInfo {
            server_id: "ID".into(),
            server_name: "n".into(),
            version: "2.12.0".into(),
            proto: 1,
            go: "go1.24".into(),
            host: "0.0.0.0".into(),
            port: 4222,
            headers: true,
            max_payload: 1048576,
            client_id: 5,
            client_ip: Some("127.0.0.1".into()),
            tachyon: "0.1.0".into(),
            ..Default::default()
        };
        let text = String::from_utf8(info.to_json()).unwrap();
        assert_eq!(
            text,
            r#"{"server_id":"ID","server_name":"n","version":"2.12.0","proto":1,"go":"go1.24","host":"0.0.0.0","port":4222,"headers":true,"max_payload":1048576,"client_id":5,"client_ip":"127.0.0.1","tachyon":"0.1.0"}"#
        );
        let with_auth = ServerInfo {
            auth_required: true,
            nonce: Some("abc".into()),
            connect_urls: vec!["1.2.3.4:4222".into()],
            ldm: true,
            jetstream: true,
            ..Default::default()
        };
        let text = String::from_utf8(with_auth.to_json()).unwrap();
        assert!(text.contains(r#""auth_required":true"#));
        assert!(text.contains(r#""nonce":"abc""#));
        assert!(text.contains(r#""connect_urls":["1.2.3.4:4222"]"#));
        assert!(text.contains(r#""ldm":true"#));
        assert!(text.contains(r#""jetstream":true"#));
        assert!(!text.contains("tls_required"));
        assert!(!text.contains("client_id"));
    }

    #[test]
    fn connect_defaults_match_nats_server() {
        let o = parse_connect(b"{}").unwrap();
        assert!(o.verbose && o.pedantic && o.echo);
        assert!(!o.headers && !o.no_responders);
        assert_eq!(o.protocol, 0);
    }

    #[test]
    fn connect_typical_client() {
        let o = parse_connect(
            br#"{"verbose":false,"pedantic":false,"tls_required":false,"name":"svc","lang":"go","version":"1.37.0","protocol":1,"echo":false,"headers":true,"no_responders":true,"user":"u","pass":"p","auth_token":"t","unknown":{"x":[1,2]}}"#,
        )
        .unwrap();
        assert!(!o.verbose && !o.pedantic && !o.echo);
        assert!(o.headers && o.no_responders);
        assert_eq!(o.name, "svc");
        assert_eq!(o.lang, "go");
        assert_eq!(o.protocol, 1);
        assert_eq!(o.user.as_deref(), Some("u"));
        assert_eq!(o.pass.as_deref(), Some("p"));
        assert_eq!(o.auth_token.as_deref(), Some("t"));
    }

    #[test]
    fn connect_keys_are_case_insensitive_and_nulls_ignored() {
        let o = parse_connect(br#"{"Verbose":false,"name":null,"ECHO":false}"#).unwrap();
        assert!(!o.verbose);
        assert!(!o.echo);
        assert_eq!(o.name, "");
        let o = parse_connect(br#"{"verbose":true,"Verbose":false}"#).unwrap();
        assert!(o.verbose, "the exact-case key wins");
    }

    #[test]
    fn connect_type_errors_are_rejected() {
        assert!(matches!(
            parse_connect(br#"{"protocol":1.5}"#),
            Err(ProtocolError::BadConnect(_))
        ));
        assert!(matches!(
            parse_connect(br#"{"name":1}"#),
            Err(ProtocolError::BadConnect(_))
        ));
        assert!(matches!(
            parse_connect(br#"{"verbose":tru}"#),
            Err(ProtocolError::BadConnect(_))
        ));
        assert!(matches!(
            parse_connect(b"\r"),
            Err(ProtocolError::BadConnect(_))
        ));
    }

    #[test]
    fn second_connect_merges_over_first() {
        let first = parse_connect(br#"{"verbose":false,"name":"a"}"#).unwrap();
        let second = parse_connect_over(br#"{"pedantic":false}"#, first).unwrap();
        assert!(!second.verbose);
        assert!(!second.pedantic);
        assert_eq!(second.name, "a");
    }

    #[test]
    fn connect_validation() {
        let mut o = parse_connect(br#"{"protocol":2}"#).unwrap();
        assert_eq!(o.validate(true), Err(ProtocolError::BadClientProtocol));
        o.protocol = -1;
        assert_eq!(o.validate(true), Err(ProtocolError::BadClientProtocol));
        let o = parse_connect(br#"{"no_responders":true}"#).unwrap();
        assert_eq!(
            o.validate(true),
            Err(ProtocolError::NoRespondersRequiresHeaders)
        );
        let o = parse_connect(br#"{"no_responders":true,"headers":true}"#).unwrap();
        assert_eq!(o.validate(true), Ok(()));
        assert_eq!(
            o.validate(false),
            Err(ProtocolError::NoRespondersRequiresHeaders)
        );
    }

    #[test]
    fn connect_serializes_round_trip() {
        let o = ConnectOptions {
            verbose: false,
            name: "bench".into(),
            headers: true,
            protocol: 1,
            ..Default::default()
        };
        let text = serde_json::to_vec(&o).unwrap();
        assert_eq!(parse_connect(&text).unwrap(), o);
    }

    #[test]
    fn info_check() {
        assert!(check_info(b"{}").is_ok());
        assert!(check_info(b"{bad").is_err());
    }
}
