//! `cluster {}`, as nats-server's `parseCluster` reads it, for a route peer without pooling:
//! `name`, `listen`/`port`/`host`, `advertise`, `no_advertise`, `routes`, `authorization`,
//! `connect_retries`. Pooling and compression settings are taken and have no effect (Tachyon
//! announces neither, so its peers use one plain connection); TLS and per-route permissions
//! are refused by name.

use tachyon_settings::cluster::{ClusterOpts, RouteUrl};

use crate::value::{ConfigError, Item, Map, Value};

/// Keys nats-server takes that Tachyon does not serve yet.
const NOT_YET: &[&str] = &["tls", "permissions", "accounts", "pinned_accounts"];

/// Keys taken without effect: they tune what Tachyon does not negotiate (pooling,
/// compression), or timings Tachyon keeps at nats-server's defaults.
const NO_EFFECT: &[&str] = &[
    "pool_size",
    "compression",
    "connect_backoff",
    "ping_interval",
    "ping_max",
    "write_deadline",
    "write_timeout",
    "no_gossip",
];

pub fn from_config(block: &Map) -> Result<Option<ClusterOpts>, ConfigError> {
    let mut o = ClusterOpts::new(tachyon_settings::options::DEFAULT_HOST, 0);
    let mut port: Option<(i64, Item)> = None;
    for (key, item) in block.iter() {
        match key.to_ascii_lowercase().as_str() {
            "name" => o.name = Some(item.to_text(key)?),
            "listen" => {
                let (host, p) = crate::file::listen(item, key)?;
                if let Some(h) = host {
                    o.host = h;
                }
                port = Some((p, item.clone()));
            }
            "port" => port = Some((item.as_int(key)?, item.clone())),
            "host" | "net" => o.host = item.to_text(key)?,
            "advertise" | "cluster_advertise" => o.advertise = Some(item.to_text(key)?),
            "no_advertise" => o.no_advertise = item.as_bool(key)?,
            "connect_retries" => {
                o.connect_retries = u32::try_from(item.as_int(key)?).unwrap_or(0);
            }
            "authorization" => authorization(&mut o, item.as_map(key)?)?,
            "routes" => {
                for r in item.as_array(key)? {
                    let text = match &r.value {
                        Value::Str(s) => s.clone(),
                        _ => {
                            return Err(ConfigError::at(
                                &r.pos,
                                "route URLs must be strings".to_string(),
                            ))
                        }
                    };
                    let url = RouteUrl::parse(&text).map_err(|e| {
                        ConfigError::at(&r.pos, format!("error parsing route url [{e}]"))
                    })?;
                    o.routes.push(url);
                }
            }
            k if NO_EFFECT.contains(&k) => {}
            k if NOT_YET.contains(&k) => {
                return Err(ConfigError::at(
                    &item.pos,
                    format!("cluster option {key:?} is not supported yet"),
                ))
            }
            _ => return Err(ConfigError::at(&item.pos, format!("unknown field {key:?}"))),
        }
    }
    // As nats-server: no port (or 0), no cluster; -1 picks one.
    match port {
        None | Some((0, _)) => Ok(None),
        Some((-1, _)) => Ok(Some(o)),
        Some((p, item)) => {
            o.port = u16::try_from(p).map_err(|_| {
                ConfigError::at(&item.pos, format!("cluster port {p} is out of range"))
            })?;
            Ok(Some(o))
        }
    }
}

/// `cluster { authorization {} }`: one user for every route.
fn authorization(o: &mut ClusterOpts, block: &Map) -> Result<(), ConfigError> {
    for (key, item) in block.iter() {
        match key.to_ascii_lowercase().as_str() {
            "user" | "username" => o.user = Some(item.to_text(key)?),
            "pass" | "password" => o.password = Some(item.to_text(key)?),
            "timeout" => o.auth_timeout = Some(crate::websocket::auth_timeout(item)?),
            "users" | "token" | "nkey" | "nkeys" | "permissions" => {
                return Err(ConfigError::at(
                    &item.pos,
                    format!("cluster authorization option {key:?} is not supported yet"),
                ))
            }
            _ => return Err(ConfigError::at(&item.pos, format!("unknown field {key:?}"))),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Option<ClusterOpts>, ConfigError> {
        let doc = crate::parser::parse_str(text, None).expect("syntax");
        let item = doc.map.get("cluster").expect("cluster");
        from_config(item.as_map("cluster")?)
    }

    #[test]
    fn a_nats_server_cluster_block() {
        let o = parse(
            "cluster { name: c1, listen: 127.0.0.1:-1, no_advertise: true, pool_size: 3,\n\
             compression: s2_auto,\n\
             authorization { user: ruser, password: pwd, timeout: 2 },\n\
             routes: [nats-route://ruser:pwd@127.0.0.1:7244, \"nats://h2\"] }",
        )
        .expect("parses")
        .expect("on");
        assert_eq!(o.name.as_deref(), Some("c1"));
        assert_eq!((o.host.as_str(), o.port), ("127.0.0.1", 0));
        assert!(o.no_advertise);
        assert_eq!(o.user.as_deref(), Some("ruser"));
        assert_eq!(o.routes.len(), 2);
        assert_eq!(o.routes[1].port, 6222);
        assert!(parse("cluster { name: x }").expect("parses").is_none());
        let e = parse("cluster { port: 1, tls { } }")
            .unwrap_err()
            .to_string();
        assert!(e.contains("not supported yet"), "{e}");
    }
}
