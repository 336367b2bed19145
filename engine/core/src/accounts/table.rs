//! The resolved account table: ids, and for each account the routes by which a message crosses
//! into another account. Built once at start-up and shared read-only by every shard.

use std::collections::hash_map::RandomState;
use std::fmt::Write as _;
use std::hash::BuildHasher;

use bytes::{BufMut, Bytes, BytesMut};

use super::mapping::SubjectMap;
use tachyon_settings::accounts::{AccountDef, Kind, Local, GLOBAL_ACCOUNT};
use tachyon_settings::ConfigError;

pub type AccountId = u32;

/// The account of clients that authenticated outside any account, and of every client when no
/// accounts are configured.
pub const GLOBAL: AccountId = 0;

/// Messages published in the owning account that `map` matches are also delivered in `to`,
/// under the mapped subject.
#[derive(Debug, Clone)]
pub struct Route {
    pub to: AccountId,
    pub map: SubjectMap,
}

#[derive(Debug, Clone, Default)]
pub struct AccountRoutes {
    /// Stream exports that other accounts import (exporter side).
    pub streams: Vec<Route>,
    /// Service imports of this account (importer side); replies come back via `_R_` subjects.
    pub services: Vec<Route>,
}

#[derive(Debug)]
pub struct Accounts {
    names: Vec<String>,
    routes: Vec<AccountRoutes>,
    /// True when any account imports anything: publishes skip all import work otherwise.
    pub any_imports: bool,
    /// Keys the tag of `_R_` reply subjects, so a client cannot forge one to reach into another
    /// account.
    reply_key: RandomState,
}

/// Replies to a service import travel as `_R_.<account>.<tag>.<original reply>`.
const REPLY_PREFIX: &[u8] = b"_R_.";

impl Default for Accounts {
    fn default() -> Self {
        Accounts {
            names: vec![GLOBAL_ACCOUNT.to_string()],
            routes: vec![AccountRoutes::default()],
            any_imports: false,
            reply_key: RandomState::new(),
        }
    }
}

impl Accounts {
    pub fn resolve(defs: &[AccountDef]) -> Result<Accounts, ConfigError> {
        let mut table = Accounts::default();
        for d in defs {
            if d.name != GLOBAL_ACCOUNT {
                table.names.push(d.name.clone());
                table.routes.push(AccountRoutes::default());
            }
        }
        for d in defs {
            let importer = table.id(&d.name).unwrap_or(GLOBAL);
            for imp in &d.imports {
                let Some(exporter) = table.id(&imp.account) else {
                    return Err(ConfigError::at(
                        &imp.pos,
                        format!("import from unknown account {:?}", imp.account),
                    ));
                };
                let exp_def = defs.iter().find(|e| e.name == imp.account);
                let allowed = exp_def.is_some_and(|e| {
                    e.exports.iter().any(|x| {
                        x.kind == imp.kind
                            && is_subset(&imp.subject, &x.subject)
                            && x.accounts
                                .as_ref()
                                .is_none_or(|list| list.contains(&d.name))
                    })
                });
                let kind = if imp.kind == Kind::Stream {
                    "stream"
                } else {
                    "service"
                };
                if !allowed {
                    return Err(ConfigError::at(
                        &imp.pos,
                        format!(
                            "Error adding {kind} import {:?}: {kind} import not authorized",
                            String::from_utf8_lossy(&imp.subject),
                        ),
                    ));
                }
                let mapping = |from: Bytes, to: Bytes| {
                    SubjectMap::new(from, to).map_err(|e| ConfigError::at(&imp.pos, e.to_string()))
                };
                match imp.kind {
                    Kind::Stream => {
                        let map = match &imp.local {
                            Local::Same => SubjectMap::identity(imp.subject.clone()),
                            Local::Prefix(p) => SubjectMap::prefixed(imp.subject.clone(), p),
                            Local::To(t) => mapping(imp.subject.clone(), t.clone())?,
                        };
                        table.routes[exporter as usize]
                            .streams
                            .push(Route { to: importer, map });
                    }
                    Kind::Service => {
                        let map = match &imp.local {
                            Local::To(t) => mapping(t.clone(), imp.subject.clone())?,
                            _ => SubjectMap::identity(imp.subject.clone()),
                        };
                        table.routes[importer as usize]
                            .services
                            .push(Route { to: exporter, map });
                    }
                }
                table.any_imports = true;
            }
        }
        Ok(table)
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    pub fn id(&self, name: &str) -> Option<AccountId> {
        self.names
            .iter()
            .position(|n| n == name)
            .map(|i| i as AccountId)
    }

    pub fn name(&self, id: AccountId) -> &str {
        self.names
            .get(id as usize)
            .map(String::as_str)
            .unwrap_or(GLOBAL_ACCOUNT)
    }

    pub fn routes(&self, id: AccountId) -> Option<&AccountRoutes> {
        self.routes.get(id as usize)
    }

    /// Binds a reply to the requester's account, the exporter that may answer, and the reply.
    fn tag(&self, account: AccountId, exporter: AccountId, reply: &[u8]) -> u64 {
        self.reply_key.hash_one((account, exporter, reply))
    }

    /// The reply subject a service request carries into the exporting account, standing for
    /// `reply` in `account`.
    /// Only clients of `exporter` can answer on it: the same subject published from any other
    /// account is an ordinary subject there.
    pub fn response_subject(&self, account: AccountId, exporter: AccountId, reply: &[u8]) -> Bytes {
        let mut out = BytesMut::with_capacity(REPLY_PREFIX.len() + 32 + reply.len());
        out.put_slice(REPLY_PREFIX);
        let tag = self.tag(account, exporter, reply);
        // Formats straight into the buffer: one allocation per service request.
        let _ = write!(out, "{account}.{tag:016x}.");
        out.put_slice(reply);
        out.freeze()
    }

    /// Undoes `response_subject`: the account and reply a response published on `subject` (in
    /// account `publisher`) goes to, if `subject` is a genuine one.
    pub fn response_target(
        &self,
        subject: &Bytes,
        publisher: AccountId,
    ) -> Option<(AccountId, Bytes)> {
        let rest = subject.strip_prefix(REPLY_PREFIX)?;
        let d1 = rest.iter().position(|&b| b == b'.')?;
        let account: AccountId = std::str::from_utf8(&rest[..d1]).ok()?.parse().ok()?;
        let after = &rest[d1 + 1..];
        let d2 = after.iter().position(|&b| b == b'.')?;
        let tag = u64::from_str_radix(std::str::from_utf8(&after[..d2]).ok()?, 16).ok()?;
        let reply = subject.slice(REPLY_PREFIX.len() + d1 + 1 + d2 + 1..);
        if account as usize >= self.names.len() || self.tag(account, publisher, &reply) != tag {
            return None;
        }
        Some((account, reply))
    }
}

/// Whether every subject `sub` matches is also matched by `sup`.
fn is_subset(sub: &[u8], sup: &[u8]) -> bool {
    let mut a = tachyon_protocol::subject::tokens(sub);
    let mut b = tachyon_protocol::subject::tokens(sup);
    loop {
        match (a.next(), b.next()) {
            (None, None) => return true,
            (None, Some(_)) | (Some(_), None) => return false,
            (Some(_), Some(b">")) => return true,
            (Some(b">"), _) => return false,
            (Some(_), Some(b"*")) => {}
            (Some(x), Some(y)) if x == y => {}
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tachyon_config::accounts::from_config;
    use tachyon_config::{Item, Map, Pos, Value};

    fn s(v: &str) -> Item {
        Item {
            value: Value::Str(v.into()),
            pos: Pos::default(),
        }
    }
    fn m(entries: Vec<(&str, Item)>) -> Item {
        let mut map = Map::default();
        for (k, v) in entries {
            map.insert(k.into(), v);
        }
        Item {
            value: Value::Map(map),
            pos: Pos::default(),
        }
    }
    fn a(items: Vec<Item>) -> Item {
        Item {
            value: Value::Array(items),
            pos: Pos::default(),
        }
    }

    fn sample(export_to: Option<&str>) -> Item {
        let mut exp = vec![("stream", s("events.>"))];
        if let Some(acc) = export_to {
            exp.push(("accounts", a(vec![s(acc)])));
        }
        m(vec![
            (
                "A",
                m(vec![(
                    "exports",
                    a(vec![m(exp), m(vec![("service", s("svc.*"))])]),
                )]),
            ),
            (
                "B",
                m(vec![(
                    "imports",
                    a(vec![
                        m(vec![
                            (
                                "stream",
                                m(vec![("account", s("A")), ("subject", s("events.>"))]),
                            ),
                            ("prefix", s("from_a")),
                        ]),
                        m(vec![
                            (
                                "service",
                                m(vec![("account", s("A")), ("subject", s("svc.time"))]),
                            ),
                            ("to", s("time")),
                        ]),
                    ]),
                )]),
            ),
        ])
    }

    #[test]
    fn imports_become_routes() {
        let defs = from_config(&sample(None)).expect("parses");
        let t = Accounts::resolve(&defs).expect("resolves");
        let (ga, gb) = (t.id("A").expect("A"), t.id("B").expect("B"));
        assert_eq!(t.id("$G"), Some(GLOBAL));
        assert!(t.any_imports);
        let a_routes = t.routes(ga).expect("routes");
        assert_eq!(a_routes.streams.len(), 1);
        assert_eq!(a_routes.streams[0].to, gb);
        let ev = Bytes::from_static(b"events.x");
        assert_eq!(
            a_routes.streams[0].map.apply(&ev),
            Bytes::from_static(b"from_a.events.x")
        );
        let b_routes = t.routes(gb).expect("routes");
        assert_eq!(b_routes.services[0].to, ga);
        assert!(b_routes.services[0].map.matches(b"time"));
        assert_eq!(
            b_routes.services[0].map.apply(&Bytes::from_static(b"time")),
            Bytes::from_static(b"svc.time")
        );
    }

    #[test]
    fn import_needs_a_matching_export() {
        let defs = from_config(&sample(Some("C"))).expect("parses");
        let err = Accounts::resolve(&defs).expect_err("B is not in the export's accounts");
        assert!(err.msg.contains("not authorized"), "{err}");
    }

    #[test]
    fn response_subjects_round_trip_and_resist_forgery() {
        let t = Accounts::resolve(&from_config(&sample(None)).expect("parses")).expect("ok");
        let r = t.response_subject(2, 1, b"_INBOX.abc.def");
        assert_eq!(
            t.response_target(&r, 1),
            Some((2, Bytes::from_static(b"_INBOX.abc.def")))
        );
        // The genuine subject published from another account than the exporter: nothing.
        assert_eq!(t.response_target(&r, 2), None);
        assert_eq!(t.response_target(&r, 0), None);
        let forged = Bytes::from(String::from_utf8_lossy(&r).replacen("_R_.2.", "_R_.1.", 1));
        assert_eq!(t.response_target(&forged, 1), None);
        assert_eq!(
            t.response_target(&Bytes::from_static(b"_R_.1.zz.x"), 1),
            None
        );
        assert_eq!(t.response_target(&Bytes::from_static(b"foo"), 1), None);
    }

    #[test]
    fn subsets() {
        assert!(is_subset(b"a.b", b"a.>"));
        assert!(is_subset(b"a.*", b"a.*"));
        assert!(is_subset(b"a.b.c", b"a.*.c"));
        assert!(!is_subset(b"a.>", b"a.*"));
        assert!(!is_subset(b"a", b"a.>"));
        assert!(!is_subset(b"b.c", b"a.>"));
    }
}
