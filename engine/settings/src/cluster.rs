//! The `cluster {}` block and the `--cluster`/`--routes` flags: this server as a route peer of
//! a nats-server cluster (one connection per peer, no pooling).

use std::time::Duration;

/// nats-server's route port when a URL names none.
pub const DEFAULT_ROUTE_PORT: u16 = 6222;
/// Pause between attempts to reach a configured route (nats-server's `DEFAULT_ROUTE_CONNECT`).
pub const DEFAULT_ROUTE_CONNECT: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterOpts {
    /// `name`: peers with another name are refused. `None`: generated at start, and taken
    /// from a peer that has one (nats-server's dynamic cluster name).
    pub name: Option<String>,
    pub host: String,
    /// 0: a random port (`port: -1`).
    pub port: u16,
    /// `host:port` other servers are told to dial (`advertise`); the bound address if `None`.
    pub advertise: Option<String>,
    /// Tell clients nothing of the other servers (`no_advertise`).
    pub no_advertise: bool,
    /// `routes`: the peers this server dials, for as long as it runs.
    pub routes: Vec<RouteUrl>,
    /// `authorization { user, password, timeout }`: what peers must send in CONNECT (and what
    /// this server sends to peers learned by gossip).
    pub user: Option<String>,
    pub password: Option<String>,
    pub auth_timeout: Option<Duration>,
    /// `connect_retries`: attempts at a peer learned by gossip before giving up (0: one).
    pub connect_retries: u32,
}

impl ClusterOpts {
    pub fn new(host: &str, port: u16) -> ClusterOpts {
        ClusterOpts {
            name: None,
            host: host.to_string(),
            port,
            advertise: None,
            no_advertise: false,
            routes: Vec::new(),
            user: None,
            password: None,
            auth_timeout: None,
            connect_retries: 0,
        }
    }
}

/// A route URL (`nats-route://user:pass@host:port`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteUrl {
    /// As written, credentials hidden, for log lines.
    pub shown: String,
    pub host: String,
    pub port: u16,
    pub user: Option<String>,
    pub password: Option<String>,
}

impl RouteUrl {
    /// Reads `[scheme://][user[:pass]@]host[:port][/]`.
    pub fn parse(text: &str) -> Result<RouteUrl, String> {
        let t = text.trim();
        let rest = t.split_once("://").map_or(t, |(_, r)| r);
        let rest = rest.trim_end_matches('/');
        let (creds, hostport) = match rest.rsplit_once('@') {
            Some((c, h)) => (Some(c), h),
            None => (None, rest),
        };
        let (host, port) = if let Some(h) = hostport.strip_prefix('[') {
            let (h, p) = h
                .split_once(']')
                .ok_or_else(|| format!("invalid route URL {text:?}"))?;
            (h.to_string(), p.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (hostport.to_string(), None),
            }
        };
        let port = match port {
            None | Some("") => DEFAULT_ROUTE_PORT,
            Some(p) => p
                .parse()
                .map_err(|_| format!("invalid port in route URL {text:?}"))?,
        };
        if host.is_empty() {
            return Err(format!("invalid route URL {text:?}: no host"));
        }
        let (user, password) = match creds {
            None => (None, None),
            Some(c) => match c.split_once(':') {
                Some((u, p)) => (Some(u.to_string()), Some(p.to_string())),
                None => (Some(c.to_string()), None),
            },
        };
        let shown = match &user {
            Some(u) => format!("nats-route://{u}:xxxxx@{}", join(&host, port)),
            None => format!("nats-route://{}", join(&host, port)),
        };
        Ok(RouteUrl {
            shown,
            host,
            port,
            user,
            password,
        })
    }

    pub fn host_port(&self) -> String {
        join(&self.host, self.port)
    }
}

fn join(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_urls_as_nats_server_takes_them() {
        let u = RouteUrl::parse("nats-route://ruser:T0pS3cr3t@127.0.0.1:6222").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("127.0.0.1", 6222));
        assert_eq!(u.user.as_deref(), Some("ruser"));
        assert_eq!(u.password.as_deref(), Some("T0pS3cr3t"));
        assert!(!u.shown.contains("T0pS3cr3t"));
        let u = RouteUrl::parse("nats://localhost").unwrap();
        assert_eq!(u.port, DEFAULT_ROUTE_PORT);
        let u = RouteUrl::parse("[::1]:7000/").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 7000));
        assert_eq!(u.host_port(), "[::1]:7000");
        assert!(RouteUrl::parse("nats://h:x").is_err());
        assert!(RouteUrl::parse("nats://:1").is_err());
    }
}

/// The cluster flags as given (`--cluster`/`--cluster_listen`, `--routes`, `--cluster_name`,
/// `--cluster_advertise`, `--no_advertise`, `--connect_retries`): laid over the file's
/// `cluster {}` as nats-server's `overrideCluster` does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterFlags {
    pub listen: Option<String>,
    pub routes: Option<String>,
    pub name: Option<String>,
    pub advertise: Option<String>,
    pub no_advertise: Option<bool>,
    pub connect_retries: Option<u32>,
}

impl ClusterFlags {
    /// The cluster to run with: the file's, changed by the flags; `--cluster` alone turns
    /// clustering on.
    pub fn apply(&self, file: Option<ClusterOpts>) -> Result<Option<ClusterOpts>, String> {
        let mut c = file;
        if let Some(listen) = self.listen.as_deref().filter(|l| !l.is_empty()) {
            let u = listen_url(listen)?;
            let o = c.get_or_insert_with(|| {
                ClusterOpts::new(crate::options::DEFAULT_HOST, DEFAULT_ROUTE_PORT)
            });
            o.host = u.0;
            o.port = u.1;
            if u.2.is_some() {
                (o.user, o.password) = (u.2, u.3);
            }
        }
        let Some(o) = c.as_mut() else {
            return Ok(None);
        };
        if let Some(routes) = &self.routes {
            o.routes = routes
                .split(',')
                .map(str::trim)
                .filter(|r| !r.is_empty())
                .map(RouteUrl::parse)
                .collect::<Result<_, _>>()?;
        }
        if let Some(n) = self.name.as_ref().filter(|n| !n.is_empty()) {
            o.name = Some(n.clone());
        }
        if let Some(a) = self.advertise.as_ref().filter(|a| !a.is_empty()) {
            o.advertise = Some(a.clone());
        }
        if let Some(b) = self.no_advertise {
            o.no_advertise = b;
        }
        if let Some(n) = self.connect_retries {
            o.connect_retries = n;
        }
        Ok(c)
    }
}

/// `--cluster nats://[user:pass@]host:port`: host, port (-1: random, as 0), credentials.
type Listen = (String, u16, Option<String>, Option<String>);

fn listen_url(text: &str) -> Result<Listen, String> {
    let bad = || format!("error parsing cluster URL {text:?}");
    let rest = text.split_once("://").map_or(text, |(_, r)| r);
    let rest = rest.trim_end_matches('/');
    let (creds, hostport) = match rest.rsplit_once('@') {
        Some((c, h)) => (Some(c), h),
        None => (None, rest),
    };
    let (host, port) = hostport.rsplit_once(':').ok_or_else(bad)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port: i64 = port.parse().map_err(|_| bad())?;
    let port = if port == -1 {
        0
    } else {
        u16::try_from(port).map_err(|_| bad())?
    };
    let (user, pass) = match creds.map(|c| c.split_once(':')) {
        Some(Some((u, p))) => (Some(u.to_string()), Some(p.to_string())),
        Some(None) => (creds.map(str::to_string), None),
        None => (None, None),
    };
    Ok((host.to_string(), port, user, pass))
}

#[cfg(test)]
mod flag_tests {
    use super::*;

    #[test]
    fn flags_over_the_file_block() {
        let f = ClusterFlags {
            listen: Some("nats://ruser:pwd@127.0.0.1:-1".into()),
            routes: Some("nats://127.0.0.1:7001, nats://127.0.0.1:7002".into()),
            name: Some("abc".into()),
            ..ClusterFlags::default()
        };
        let c = f.apply(None).unwrap().unwrap();
        assert_eq!((c.host.as_str(), c.port), ("127.0.0.1", 0));
        assert_eq!(c.user.as_deref(), Some("ruser"));
        assert_eq!(c.routes.len(), 2);
        assert_eq!(c.name.as_deref(), Some("abc"));
        let only_routes = ClusterFlags {
            routes: Some("nats://h:1".into()),
            ..ClusterFlags::default()
        };
        assert_eq!(only_routes.apply(None).unwrap(), None);
        let file = ClusterOpts::new("0.0.0.0", 6222);
        let c = only_routes.apply(Some(file)).unwrap().unwrap();
        assert_eq!(c.routes[0].host, "h");
        assert!(ClusterFlags {
            listen: Some("nats://h:x".into()),
            ..ClusterFlags::default()
        }
        .apply(None)
        .is_err());
    }
}
