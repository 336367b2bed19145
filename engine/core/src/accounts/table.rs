//! The resolved account table: ids, and for each account the routes by which a message crosses
//! into another account. Built once at start-up and shared read-only by every shard.

use bytes::Bytes;

use super::mapping::SubjectMap;
use tachyon_settings::accounts::{AccountDef, Kind, Local, Responses, GLOBAL_ACCOUNT};
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
    /// Service imports: the export's response type and threshold.
    pub responses: Responses,
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
}

impl Default for Accounts {
    fn default() -> Self {
        Accounts {
            names: vec![GLOBAL_ACCOUNT.to_string()],
            routes: vec![AccountRoutes::default()],
            any_imports: false,
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
                let export = exp_def.and_then(|e| {
                    e.exports.iter().find(|x| {
                        x.kind == imp.kind
                            && is_subset(&imp.subject, &x.subject)
                            && x.accounts
                                .as_ref()
                                .is_none_or(|list| list.contains(&d.name))
                    })
                });
                let allowed = export.is_some();
                let responses = export.map(|x| x.response).unwrap_or_default();
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
                        table.routes[exporter as usize].streams.push(Route {
                            to: importer,
                            map,
                            responses,
                        });
                    }
                    Kind::Service => {
                        let map = match &imp.local {
                            Local::To(t) => mapping(t.clone(), imp.subject.clone())?,
                            _ => SubjectMap::identity(imp.subject.clone()),
                        };
                        table.routes[importer as usize].services.push(Route {
                            to: exporter,
                            map,
                            responses,
                        });
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
    fn service_imports_carry_the_exports_response_type() {
        let t = Accounts::resolve(&from_config(&sample(None)).expect("parses")).expect("ok");
        let services: Vec<_> = (0..t.len() as AccountId)
            .filter_map(|a| t.routes(a))
            .flat_map(|r| r.services.iter())
            .collect();
        assert!(!services.is_empty());
        assert!(services.iter().all(|r| r.responses == Responses::default()));
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
