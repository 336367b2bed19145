//! The JSON of the route handshake (nats-server's `route.go`): the INFO each side sends (also
//! forwarded to the other peers as gossip, and sent again when something changes), and the
//! CONNECT the dialing side sends. The ops themselves (`RS+`/`RS-`/`RMSG`) are the route
//! dialect of [`crate::leaf`].

use serde::{Deserialize, Serialize};

use crate::parser::ProtocolError;

/// A route INFO, both ways. Tachyon announces neither `route_pool_size` nor `compression`,
/// so a nats-server peer treats it as a server without pooling (one connection, plain text);
/// nor `lnoc`, so the peer sends only `RS+`/`RS-`/`RMSG`.
#[derive(Serialize, Deserialize, Debug, Default, Clone, PartialEq, Eq)]
#[serde(default)]
pub struct RouteInfo {
    pub server_id: String,
    pub server_name: String,
    pub version: String,
    pub proto: i32,
    pub go: String,
    pub host: String,
    pub port: u16,
    pub headers: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub auth_required: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub tls_required: bool,
    pub max_payload: i64,
    /// `nats-route://host:port/` when the server advertises an address.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub ip: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub nonce: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cluster: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub cluster_dynamic: bool,
    /// Where clients may connect to this server.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub connect_urls: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ws_connect_urls: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub leafnode_urls: Vec<String>,
    /// Lame duck mode: clients should leave this server.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub ldm: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub jetstream: bool,
    // What a nats-server peer may send and Tachyon only reads.
    #[serde(skip_serializing_if = "is_zero")]
    pub route_pool_size: i64,
    #[serde(skip_serializing_if = "is_zero")]
    pub route_pool_idx: i64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub route_account: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub route_acc_add_reqid: String,
    #[serde(skip_serializing_if = "is_zero_u8")]
    pub gossip_mode: u8,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub gateway: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub compression: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub lnoc: bool,
    /// Only a client port's or a leafnode port's INFO has one: the wrong-port check.
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub client_id: u64,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

fn is_zero_u8(n: &u8) -> bool {
    *n == 0
}

fn is_zero_u64(n: &u64) -> bool {
    *n == 0
}

/// nats-server's gossip modes (`gossip_mode` in a forwarded INFO).
pub const GOSSIP_DEFAULT: u8 = 0;
pub const GOSSIP_DISABLED: u8 = 1;
pub const GOSSIP_OVERRIDE: u8 = 2;

impl RouteInfo {
    pub fn parse(json: &[u8]) -> Result<RouteInfo, ProtocolError> {
        serde_json::from_slice(json).map_err(|e| ProtocolError::BadInfo(e.to_string()))
    }
}

/// `INFO {json}\r\n`
pub fn info(out: &mut Vec<u8>, i: &RouteInfo) {
    crate::encode::json_op(out, b"INFO ", i);
}

/// The CONNECT of a route (nats-server's `connectInfo` as `sendRouteConnect` fills it).
#[derive(Serialize, Deserialize, Debug, Default, Clone, PartialEq, Eq)]
#[serde(default)]
pub struct RouteConnect {
    pub echo: bool,
    pub verbose: bool,
    pub pedantic: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub user: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub pass: String,
    pub tls_required: bool,
    pub headers: bool,
    /// The dialing server's id.
    pub name: String,
    pub cluster: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub cluster_dynamic: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub lnoc: bool,
    /// Only a client's CONNECT has it: a client dialed the route port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lang: Option<String>,
    /// Only a gateway's.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub gateway: String,
}

impl RouteConnect {
    pub fn parse(json: &[u8]) -> Result<RouteConnect, ProtocolError> {
        serde_json::from_slice(json).map_err(|e| ProtocolError::BadConnect(e.to_string()))
    }
}

/// `CONNECT {json}\r\n`
pub fn connect(out: &mut Vec<u8>, c: &RouteConnect) {
    crate::encode::json_op(out, b"CONNECT ", c);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nats_server_route_info_reads() {
        let json = br#"{"server_id":"NAB","server_name":"n1","version":"2.15.1","proto":3,"go":"go1.25","host":"127.0.0.1","port":7244,"headers":true,"max_payload":1048576,"jetstream":true,"nonce":"abc","cluster":"c1","connect_urls":["127.0.0.1:4222"],"compression":"accept","route_pool_size":3,"lnoc":true,"lnocu":true,"api_lvl":2}"#;
        let i = RouteInfo::parse(json).expect("parses");
        assert_eq!(i.server_id, "NAB");
        assert_eq!(i.route_pool_size, 3);
        assert_eq!(i.connect_urls, ["127.0.0.1:4222"]);
        let mine = RouteInfo {
            server_id: "T".into(),
            cluster: "c1".into(),
            ..RouteInfo::default()
        };
        let mut out = Vec::new();
        info(&mut out, &mine);
        let text = String::from_utf8_lossy(&out);
        assert!(!text.contains("route_pool_size"), "{text}");
        assert!(!text.contains("compression"), "{text}");
        assert!(!text.contains("lnoc"), "{text}");
    }

    #[test]
    fn connect_tells_a_client_from_a_route() {
        let c = RouteConnect::parse(
            br#"{"verbose":false,"pedantic":false,"lang":"go","version":"1.0"}"#,
        )
        .expect("parses");
        assert!(c.lang.is_some());
        let c = RouteConnect::parse(br#"{"echo":true,"name":"NAB","cluster":"c1","headers":true,"lnoc":true,"tls_required":false}"#).expect("parses");
        assert_eq!((c.name.as_str(), c.cluster.as_str()), ("NAB", "c1"));
        assert!(c.lang.is_none());
    }
}
