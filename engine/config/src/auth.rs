//! The `authorization { ... }` block of nats-server's config file, read with nats-server's key
//! names, aliases and error texts (server/opts.go: parseAuthorization, parseUsers,
//! parseUserPermissions).

use std::collections::HashSet;

use tachyon_protocol::subject;

use crate::permissions::{Permissions, ResponsePermission, SubjectPermission};
pub use tachyon_settings::auth::{AuthConfig, NkeyUser, User};

use crate::{ConfigError, Item, Map, Pos, Value};

/// Reads an `authorization` block. Users without permissions of their own get
/// `default_permissions`.
pub fn from_config(block: &Map) -> Result<AuthConfig, ConfigError> {
    from_config_with_vars(block, &|_| false)
}

/// [`from_config`] for a block of a parsed file: a key that is not an option but defines a
/// `$variable` used elsewhere is not an error (nats-server's `IsUsedVariable`).
pub fn from_config_with_vars(
    block: &Map,
    used_var: &dyn Fn(&Pos) -> bool,
) -> Result<AuthConfig, ConfigError> {
    let mut auth = AuthConfig::default();
    let mut first: Option<&Item> = None;
    for (key, item) in block.iter() {
        first.get_or_insert(item);
        match key.to_ascii_lowercase().as_str() {
            "user" | "username" => auth.user = Some(item.to_text(key)?),
            "pass" | "password" => auth.pass = Some(item.to_text(key)?),
            "token" => auth.token = Some(item.to_text(key)?),
            "timeout" => auth.timeout = Some(item.as_duration(key)?),
            "users" => {
                let (users, nkeys) = parse_users(item, used_var)?;
                auth.users = Some(users);
                auth.nkeys = nkeys;
            }
            "default_permission" | "default_permissions" | "permissions" => {
                auth.default_permissions = Some(parse_permissions(item, key)?);
            }
            "auth_callout" | "auth_hook" | "proxy_required" => {
                return Err(ConfigError::at(
                    &item.pos,
                    format!("authorization option '{key}' is not supported by tachyon"),
                ));
            }
            _ if used_var(&item.pos) => {}
            _ => {
                return Err(ConfigError::at(
                    &item.pos,
                    format!("unknown field \"{key}\""),
                ))
            }
        }
    }
    let pos = first.map(|i| i.pos.clone()).unwrap_or_default();
    if (auth.user.is_some() || auth.pass.is_some()) && auth.token.is_some() {
        return Err(ConfigError::at(&pos, "Cannot have a user/pass and token"));
    }
    if auth.users.is_some() {
        if auth.user.is_some() {
            return Err(ConfigError::at(
                &pos,
                "Can not have a single user/pass and a users array",
            ));
        }
        if auth.token.is_some() {
            return Err(ConfigError::at(
                &pos,
                "Can not have a token and a users array",
            ));
        }
    }
    if let Some(default) = &auth.default_permissions {
        for u in auth.users.iter_mut().flatten() {
            u.permissions.get_or_insert_with(|| default.clone());
        }
        for n in auth.nkeys.iter_mut() {
            n.permissions.get_or_insert_with(|| default.clone());
        }
    }
    Ok(auth)
}

pub(crate) fn parse_users(
    item: &Item,
    used_var: &dyn Fn(&Pos) -> bool,
) -> Result<(Vec<User>, Vec<NkeyUser>), ConfigError> {
    let Value::Array(entries) = &item.value else {
        return Err(ConfigError::at(
            &item.pos,
            "Expected users field to be an array",
        ));
    };
    let mut users = Vec::new();
    let mut nkeys = Vec::new();
    let mut seen = HashSet::new();
    for entry in entries {
        let Value::Map(m) = &entry.value else {
            return Err(ConfigError::at(
                &entry.pos,
                "Expected user entry to be a map/struct",
            ));
        };
        let mut username = None;
        let mut password = None;
        let mut nkey = None;
        let mut permissions = None;
        for (key, v) in m.iter() {
            match key.to_ascii_lowercase().as_str() {
                "nkey" => nkey = Some(v.to_text(key)?),
                "user" | "username" => username = Some(v.to_text(key)?),
                "pass" | "password" => password = Some(v.to_text(key)?),
                "permission" | "permissions" | "authorization" => {
                    permissions = Some(parse_permissions(v, key)?);
                }
                // nats-server has no per-user `account` key (a user joins an account by being
                // listed in `accounts { NAME { users } }`), so `account` falls to "unknown field".
                "allowed_connection_types" | "connection_types" | "clients" | "proxy_required" => {
                    return Err(ConfigError::at(
                        &v.pos,
                        format!("user option '{key}' is not supported by tachyon"),
                    ));
                }
                _ if used_var(&v.pos) => {}
                _ => return Err(ConfigError::at(&v.pos, format!("unknown field \"{key}\""))),
            }
        }
        match (nkey, username) {
            (Some(nkey), _) => {
                if !valid_user_nkey(&nkey) {
                    return Err(ConfigError::at(
                        &entry.pos,
                        "Not a valid public nkey for a user",
                    ));
                }
                if m.get("user").or(m.get("username")).is_some() || password.is_some() {
                    return Err(ConfigError::at(
                        &entry.pos,
                        "Nkey users do not take usernames or passwords",
                    ));
                }
                if !seen.insert(nkey.clone()) {
                    return Err(ConfigError::at(
                        &entry.pos,
                        format!("Duplicate nkey {nkey:?} detected"),
                    ));
                }
                nkeys.push(NkeyUser { nkey, permissions });
            }
            (None, Some(username)) if !username.is_empty() => {
                if !seen.insert(username.clone()) {
                    return Err(ConfigError::at(
                        &entry.pos,
                        format!("Duplicate user {username:?} detected"),
                    ));
                }
                users.push(User {
                    username,
                    password: password.unwrap_or_default(),
                    permissions,
                });
            }
            _ => return Err(ConfigError::at(&entry.pos, "User entry requires a user")),
        }
    }
    Ok((users, nkeys))
}

fn valid_user_nkey(key: &str) -> bool {
    key.starts_with('U') && nkeys::KeyPair::from_public_key(key).is_ok()
}

fn parse_permissions(item: &Item, key: &str) -> Result<Permissions, ConfigError> {
    let m = item.as_map(key)?;
    let mut p = Permissions::default();
    for (k, v) in m.iter() {
        match k.to_ascii_lowercase().as_str() {
            "pub" | "publish" | "import" => p.publish = parse_subject_permission(v, k, false)?,
            "sub" | "subscribe" | "export" => p.subscribe = parse_subject_permission(v, k, true)?,
            "publish_allow_responses" | "allow_responses" => {
                p.response = parse_allow_responses(v, k)?;
            }
            _ => {
                return Err(ConfigError::at(
                    &v.pos,
                    format!("Unknown field {k:?} parsing permissions"),
                ))
            }
        }
    }
    if p.response.is_some() {
        // Answering is all a responder may publish unless its publish list says more.
        let publish = p.publish.get_or_insert_with(SubjectPermission::default);
        publish.allow.get_or_insert_with(Vec::new);
    }
    Ok(p)
}

/// A list (allow only) or `{allow, deny}`. An empty list is no list, as in nats-server.
fn parse_subject_permission(
    item: &Item,
    key: &str,
    allow_queue: bool,
) -> Result<Option<SubjectPermission>, ConfigError> {
    match &item.value {
        Value::Map(m) => {
            if m.entries.is_empty() {
                return Ok(None);
            }
            let mut sp = SubjectPermission::default();
            for (k, v) in m.iter() {
                match k.to_ascii_lowercase().as_str() {
                    "allow" => {
                        let list = subjects(v, k, allow_queue)?;
                        sp.allow = (!list.is_empty()).then_some(list);
                    }
                    "deny" => sp.deny = subjects(v, k, allow_queue)?,
                    _ => {
                        return Err(ConfigError::at(
                            &v.pos,
                            format!(
                                "Unknown field name {k:?} parsing subject permissions, only 'allow' or 'deny' are permitted"
                            ),
                        ))
                    }
                }
            }
            Ok(Some(sp))
        }
        _ => {
            let list = subjects(item, key, allow_queue)?;
            Ok(Some(SubjectPermission {
                allow: (!list.is_empty()).then_some(list),
                deny: Vec::new(),
            }))
        }
    }
}

fn subjects(item: &Item, key: &str, allow_queue: bool) -> Result<Vec<String>, ConfigError> {
    let list = item.as_str_list(key)?;
    for s in &list {
        if valid_subject(s) {
            continue;
        }
        let parts: Vec<&str> = s.split_whitespace().collect();
        let err = |msg: String| Err(ConfigError::at(&item.pos, msg));
        match parts.as_slice() {
            [subj, queue] if allow_queue => {
                if !valid_subject(subj) {
                    return err(format!("subject {subj:?} is not a valid subject"));
                }
                if !valid_subject(queue) {
                    return err(format!("queue {queue:?} is not a valid queue"));
                }
            }
            _ => return err(format!("subject {s:?} is not a valid subject")),
        }
    }
    Ok(list)
}

fn valid_subject(s: &str) -> bool {
    subject::valid_subscribe(s.as_bytes(), true)
}

fn parse_allow_responses(
    item: &Item,
    key: &str,
) -> Result<Option<ResponsePermission>, ConfigError> {
    let mut rp = ResponsePermission::default();
    match &item.value {
        Value::Bool(b) => return Ok(b.then_some(rp)),
        Value::Map(m) => {
            for (k, v) in m.iter() {
                match k.to_ascii_lowercase().as_str() {
                    "max" | "max_msgs" | "max_messages" | "max_responses" => {
                        // 0 keeps the default; a negative count means no limit.
                        let n = v.as_int(k)?;
                        if n != 0 {
                            rp.max_msgs = n;
                        }
                    }
                    "expires" | "expiration" | "ttl" => {
                        let Value::Str(s) = &v.value else {
                            return Err(ConfigError::at(
                                &v.pos,
                                "error parsing expires, not a duration string",
                            ));
                        };
                        if s.trim_start().starts_with('-') {
                            rp.expires = None;
                        } else {
                            let d = v.as_duration(k)?;
                            if !d.is_zero() {
                                rp.expires = Some(d);
                            }
                        }
                    }
                    _ => {
                        return Err(ConfigError::at(
                            &v.pos,
                            format!("Unknown field {k:?} parsing permissions"),
                        ))
                    }
                }
            }
        }
        _ => {
            return Err(ConfigError::at(
                &item.pos,
                format!("'{key}': error parsing response permissions, expected a boolean or a map"),
            ))
        }
    }
    Ok(Some(rp))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn it(value: Value) -> Item {
        Item {
            value,
            pos: Pos {
                file: None,
                line: 3,
                col: 7,
            },
        }
    }
    fn s(v: &str) -> Item {
        it(Value::Str(v.into()))
    }
    fn arr(v: &[&str]) -> Item {
        it(Value::Array(v.iter().map(|x| s(x)).collect()))
    }
    fn map(entries: Vec<(&str, Item)>) -> Item {
        it(Value::Map(Map {
            entries: entries
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        }))
    }
    fn block(entries: Vec<(&str, Item)>) -> Map {
        match map(entries).value {
            Value::Map(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn single_user_token_timeout() {
        let a = from_config(&block(vec![
            ("user", s("derek")),
            ("password", s("s3cr3t")),
            ("timeout", it(Value::Float(0.5))),
        ]))
        .unwrap();
        assert_eq!(a.user.as_deref(), Some("derek"));
        assert_eq!(a.pass.as_deref(), Some("s3cr3t"));
        assert_eq!(a.timeout, Some(Duration::from_millis(500)));
        let a = from_config(&block(vec![("token", s("tok")), ("timeout", s("3s"))])).unwrap();
        assert_eq!(a.token.as_deref(), Some("tok"));
        assert_eq!(a.timeout, Some(Duration::from_secs(3)));
    }

    #[test]
    fn conflicting_forms_are_errors() {
        let e = from_config(&block(vec![("user", s("a")), ("token", s("t"))])).unwrap_err();
        assert_eq!(e.msg, "Cannot have a user/pass and token");
        let users = it(Value::Array(vec![map(vec![
            ("user", s("b")),
            ("pass", s("p")),
        ])]));
        let e = from_config(&block(vec![("user", s("a")), ("users", users.clone())])).unwrap_err();
        assert_eq!(e.msg, "Can not have a single user/pass and a users array");
        let e = from_config(&block(vec![("token", s("t")), ("users", users)])).unwrap_err();
        assert_eq!(e.msg, "Can not have a token and a users array");
        let e = from_config(&block(vec![("bogus", s("t"))])).unwrap_err();
        assert!(e.msg.contains("bogus"));
        assert_eq!((e.pos.line, e.pos.col), (3, 7));
    }

    #[test]
    fn account_key_on_a_user_is_unknown_like_nats_server() {
        let users = it(Value::Array(vec![map(vec![
            ("user", s("a")),
            ("password", s("p")),
            ("account", s("A")),
        ])]));
        let e = from_config(&block(vec![("users", users)])).unwrap_err();
        assert_eq!(e.msg, "unknown field \"account\"");
    }

    #[test]
    fn users_with_permissions_and_defaults() {
        let kp = nkeys::KeyPair::new_user();
        let perms = map(vec![
            ("publish", arr(&["foo.>", "bar"])),
            (
                "subscribe",
                map(vec![
                    ("allow", arr(&["foo.>", "q.x grp"])),
                    ("deny", arr(&["foo.secret"])),
                ]),
            ),
        ]);
        let a = from_config(&block(vec![
            (
                "users",
                it(Value::Array(vec![
                    map(vec![
                        ("user", s("alice")),
                        ("password", s("$2a$04$abc")),
                        ("permissions", perms),
                    ]),
                    map(vec![("user", s("bob")), ("pass", s("pw"))]),
                    map(vec![("nkey", s(&kp.public_key()))]),
                ])),
            ),
            ("default_permissions", map(vec![("publish", s("pub.only"))])),
        ]))
        .unwrap();
        let users = a.users.unwrap();
        assert_eq!(users.len(), 2);
        let alice = users[0].permissions.as_ref().unwrap();
        assert_eq!(
            alice.publish,
            Some(SubjectPermission {
                allow: Some(vec!["foo.>".into(), "bar".into()]),
                deny: vec![]
            })
        );
        let sub = alice.subscribe.as_ref().unwrap();
        assert_eq!(sub.allow.as_deref().map(|a| a.len()), Some(2));
        assert_eq!(sub.deny, vec!["foo.secret".to_string()]);
        let default = Some(Permissions {
            publish: Some(SubjectPermission {
                allow: Some(vec!["pub.only".into()]),
                deny: vec![],
            }),
            ..Default::default()
        });
        assert_eq!(users[1].permissions, default);
        assert_eq!(a.nkeys.len(), 1);
        assert_eq!(a.nkeys[0].nkey, kp.public_key());
        assert_eq!(a.nkeys[0].permissions, default);
    }

    #[test]
    fn bad_users() {
        let one = |entry: Item| from_config(&block(vec![("users", it(Value::Array(vec![entry])))]));
        assert_eq!(
            one(map(vec![("pass", s("x"))])).unwrap_err().msg,
            "User entry requires a user"
        );
        assert_eq!(
            one(map(vec![("nkey", s("UBAD"))])).unwrap_err().msg,
            "Not a valid public nkey for a user"
        );
        let acct = nkeys::KeyPair::new_account().public_key();
        assert!(one(map(vec![("nkey", s(&acct))])).is_err());
        let user = nkeys::KeyPair::new_user().public_key();
        assert_eq!(
            one(map(vec![("nkey", s(&user)), ("pass", s("x"))]))
                .unwrap_err()
                .msg,
            "Nkey users do not take usernames or passwords"
        );
        let dup = from_config(&block(vec![(
            "users",
            it(Value::Array(vec![
                map(vec![("user", s("a"))]),
                map(vec![("user", s("a"))]),
            ])),
        )]));
        assert_eq!(dup.unwrap_err().msg, "Duplicate user \"a\" detected");
        assert!(one(s("x")).is_err());
    }

    #[test]
    fn subject_validation() {
        let p = |k: &str, v: Item| from_config(&block(vec![("permissions", map(vec![(k, v)]))]));
        assert!(p("subscribe", arr(&["foo q"])).is_ok());
        assert_eq!(
            p("publish", arr(&["foo q"])).unwrap_err().msg,
            "subject \"foo q\" is not a valid subject"
        );
        assert!(p("subscribe", arr(&["foo.>.bar"])).is_err());
        assert!(p("subscribe", arr(&["a b c"])).is_err());
        assert!(p(
            "publish",
            map(vec![("allow", arr(&["a"])), ("permit", arr(&["b"]))])
        )
        .is_err());
        assert!(p("bogus", arr(&["a"])).is_err());
    }

    #[test]
    fn allow_responses_forms() {
        let resp = |v: Item| {
            from_config(&block(vec![(
                "permissions",
                map(vec![("allow_responses", v)]),
            )]))
            .map(|a| a.default_permissions.unwrap())
        };
        let p = resp(it(Value::Bool(true))).unwrap();
        assert_eq!(p.response, Some(ResponsePermission::default()));
        // Turning responses on closes the blanket publish allow.
        assert_eq!(p.publish.unwrap().allow, Some(vec![]));
        assert_eq!(resp(it(Value::Bool(false))).unwrap().response, None);
        let p = resp(map(vec![("max", it(Value::Int(5))), ("expires", s("1m"))])).unwrap();
        assert_eq!(
            p.response,
            Some(ResponsePermission {
                max_msgs: 5,
                expires: Some(Duration::from_secs(60))
            })
        );
        let p = resp(map(vec![("ttl", s("-1s"))])).unwrap();
        assert_eq!(p.response.unwrap().expires, None);
        assert!(resp(map(vec![("expires", it(Value::Int(5)))])).is_err());
        assert!(resp(s("yes")).is_err());
        // An explicit publish list survives allow_responses.
        let a = from_config(&block(vec![(
            "permissions",
            map(vec![
                ("allow_responses", it(Value::Bool(true))),
                ("publish", arr(&["x"])),
            ]),
        )]))
        .unwrap();
        assert_eq!(
            a.default_permissions.unwrap().publish.unwrap().allow,
            Some(vec!["x".to_string()])
        );
    }
}

#[cfg(test)]
mod file_tests {
    use super::*;
    use crate::parse_str;
    use std::time::Duration;

    fn auth_block(text: &str) -> Result<AuthConfig, ConfigError> {
        let doc = parse_str(text, None).expect("config parses");
        let item = doc.map.get("authorization").expect("authorization block");
        from_config(item.as_map("authorization")?)
    }

    #[test]
    fn documented_forms_from_config_text() {
        let a = auth_block(
            r#"
            # nats-server's documented shapes, with a variable for a permission list
            ADMIN_SUBS = ["admin.>", "_INBOX.>"]
            authorization {
              timeout: "3s"
              default_permissions = {
                publish = "SANDBOX.*"
                subscribe = ["PUBLIC.>", "work.* workers"]
              }
              users = [
                {user: admin, password: "$2a$11$abcdefghijklmnopqrstuu", permissions: {
                    publish: ">"
                    subscribe: $ADMIN_SUBS
                }}
                {user: client, password: secret}
                {user: svc, password: s, permissions: {
                    subscribe: {allow: ["req.>"], deny: ["req.private"]}
                    allow_responses: {max: 3, expires: "30s"}
                }}
              ]
            }
            "#,
        )
        .unwrap();
        assert_eq!(a.timeout, Some(Duration::from_secs(3)));
        let users = a.users.unwrap();
        let admin = users[0].permissions.as_ref().unwrap();
        assert_eq!(
            admin.subscribe.as_ref().unwrap().allow,
            Some(vec!["admin.>".to_string(), "_INBOX.>".to_string()])
        );
        let client = users[1].permissions.as_ref().unwrap();
        assert_eq!(
            client.subscribe.as_ref().unwrap().allow,
            Some(vec!["PUBLIC.>".to_string(), "work.* workers".to_string()])
        );
        let svc = users[2].permissions.as_ref().unwrap();
        assert_eq!(
            svc.response,
            Some(ResponsePermission {
                max_msgs: 3,
                expires: Some(Duration::from_secs(30))
            })
        );
        assert_eq!(svc.publish.as_ref().unwrap().allow, Some(vec![]));
        assert_eq!(
            svc.subscribe.as_ref().unwrap().deny,
            vec!["req.private".to_string()]
        );
    }

    #[test]
    fn errors_name_the_place() {
        let e =
            auth_block("authorization {\n  users = [\n    {password: x}\n  ]\n}\n").unwrap_err();
        assert_eq!(e.msg, "User entry requires a user");
        assert_eq!(e.pos.line, 3);
    }
}
