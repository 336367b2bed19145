//! Who a CONNECT proves to be: a token, a single user, or one of the `users` (password or
//! nkey), in nats-server's order (server/auth.go: processClientOrLeafAuthentication).

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine;
use tachyon_protocol::json::ConnectOptions;

use crate::tls::CertIdentity;
use tachyon_config::auth::{AuthConfig, NkeyUser, User};
use tachyon_config::Options;
use tachyon_core::accounts::{AccountId, Accounts, GLOBAL};
use tachyon_core::auth::{
    AuthError, Authenticate, Authenticated, CompiledPerms, Credentials, Permissions, Recheck,
};

/// nats-server's nonce: 11 random bytes, base64url without padding (15 characters).
const NONCE_RAW_LEN: usize = 11;

#[derive(Debug)]
struct PasswordUser {
    password: String,
    perms: Option<Arc<CompiledPerms>>,
    account: AccountId,
}

#[derive(Debug)]
struct NkeyEntry {
    perms: Option<Arc<CompiledPerms>>,
    account: AccountId,
}

#[derive(Debug)]
enum Mode {
    Open,
    Token(String),
    Single {
        user: String,
        pass: String,
    },
    Users {
        users: HashMap<String, PasswordUser>,
        nkeys: HashMap<String, NkeyEntry>,
    },
}

/// The server-wide authentication setup, built once from the config block and the flags.
#[derive(Debug)]
pub struct Authenticator {
    mode: Mode,
    /// The user a client that sends no credentials becomes (`no_auth_user`).
    no_auth_user: Option<String>,
    /// `verify_and_map`: the client certificate names the user.
    tls_map: bool,
}

impl Default for Authenticator {
    fn default() -> Self {
        Authenticator {
            mode: Mode::Open,
            no_auth_user: None,
            tls_map: false,
        }
    }
}

impl Authenticator {
    /// `--user`/`--pass`/`--auth` override the block's single user and token, as nats-server's
    /// flags override its file; a `users` list wins over both.
    /// For a server whose `opts.accounts` is empty: every user is in `$G`.
    pub fn new(file: Option<&AuthConfig>, opts: &Options) -> Authenticator {
        Authenticator::with_accounts(file, opts, &Accounts::default())
    }

    /// Users declared in `opts.accounts` join the block's users, bound to their account's id in
    /// `table` (which `opts.accounts` resolved to).
    pub fn with_accounts(
        file: Option<&AuthConfig>,
        opts: &Options,
        table: &Accounts,
    ) -> Authenticator {
        Authenticator {
            mode: Self::mode(file, opts, table),
            no_auth_user: opts.no_auth_user.clone(),
            tls_map: opts.tls.as_ref().is_some_and(|t| t.map),
        }
    }

    fn mode(file: Option<&AuthConfig>, opts: &Options, table: &Accounts) -> Mode {
        let compile =
            |p: &Option<Permissions>| p.as_ref().map(|p| Arc::new(CompiledPerms::compile(p)));
        let top = file.filter(|f| f.users.is_some() || !f.nkeys.is_empty());
        let in_accounts = opts
            .accounts
            .iter()
            .any(|a| !a.users.is_empty() || !a.nkeys.is_empty());
        if top.is_some() || in_accounts {
            let mut users = HashMap::new();
            let mut nkeys = HashMap::new();
            let mut add = |list: &[User], keys: &[NkeyUser], account: AccountId| {
                for u in list {
                    let entry = PasswordUser {
                        password: u.password.clone(),
                        perms: compile(&u.permissions),
                        account,
                    };
                    users.insert(u.username.clone(), entry);
                }
                for n in keys {
                    let entry = NkeyEntry {
                        perms: compile(&n.permissions),
                        account,
                    };
                    nkeys.insert(n.nkey.clone(), entry);
                }
            };
            if let Some(f) = top {
                add(f.users.as_deref().unwrap_or_default(), &f.nkeys, GLOBAL);
            }
            for a in &opts.accounts {
                add(&a.users, &a.nkeys, table.id(&a.name).unwrap_or(GLOBAL));
            }
            return Mode::Users { users, nkeys };
        }
        let token = opts
            .auth_token
            .clone()
            .or_else(|| file.and_then(|f| f.token.clone()));
        let user = opts
            .user
            .clone()
            .or_else(|| file.and_then(|f| f.user.clone()));
        let pass = opts
            .pass
            .clone()
            .or_else(|| file.and_then(|f| f.pass.clone()));
        match (token, user) {
            (Some(t), _) => Mode::Token(t),
            (None, Some(user)) => Mode::Single {
                user,
                pass: pass.unwrap_or_default(),
            },
            (None, None) => Mode::Open,
        }
    }

    /// Whether INFO carries a nonce for nkey users to sign.
    pub fn needs_nonce(&self) -> bool {
        matches!(&self.mode, Mode::Users { nkeys, .. } if !nkeys.is_empty())
    }

    /// A fresh nonce for one connection's INFO.
    pub fn new_nonce() -> String {
        let raw: [u8; NONCE_RAW_LEN] = rand::random();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    }

    /// Checks a CONNECT's credentials; `nonce` is the one this connection's INFO carried.
    /// `cert` is the verified client certificate's identity, read for `verify_and_map`.
    pub fn check(
        &self,
        c: &ConnectOptions,
        nonce: Option<&str>,
        cert: Option<&CertIdentity>,
    ) -> Result<Authenticated, AuthError> {
        match &self.mode {
            Mode::Open => Ok(Authenticated::default()),
            Mode::Token(t) => {
                if password_matches(t, c.auth_token.as_deref().unwrap_or("")) {
                    Ok(Authenticated::default())
                } else {
                    Err(AuthError::BadToken)
                }
            }
            Mode::Single { user, pass } => {
                if c.user.as_deref() == Some(user.as_str())
                    && password_matches(pass, c.pass.as_deref().unwrap_or(""))
                {
                    Ok(Authenticated {
                        user: Some(user.clone()),
                        perms: None,
                        account: GLOBAL,
                    })
                } else {
                    Err(AuthError::BadPassword)
                }
            }
            Mode::Users { users, nkeys } => self.authenticate_user(users, nkeys, c, nonce, cert),
        }
    }

    /// nats-server's order: an nkey (or an nkey `no_auth_user`), then the certificate's user
    /// with `verify_and_map`, then the user name (or the `no_auth_user`) and its password.
    fn authenticate_user(
        &self,
        users: &HashMap<String, PasswordUser>,
        nkeys: &HashMap<String, NkeyEntry>,
        c: &ConnectOptions,
        nonce: Option<&str>,
        cert: Option<&CertIdentity>,
    ) -> Result<Authenticated, AuthError> {
        let empty = |v: &Option<String>| v.as_deref().is_none_or(str::is_empty);
        let no_auth = self
            .no_auth_user
            .as_deref()
            .filter(|_| empty(&c.user) && empty(&c.pass) && empty(&c.auth_token) && empty(&c.nkey));
        if !nkeys.is_empty() {
            let key = c
                .nkey
                .as_deref()
                .filter(|k| !k.is_empty())
                .or(no_auth.filter(|n| nkeys.contains_key(*n)));
            if let Some(key) = key {
                let entry = nkeys
                    .get(key)
                    .ok_or_else(|| AuthError::UnknownNkey(key.to_string()))?;
                if Some(key) != no_auth {
                    verify_nkey(key, c.sig.as_deref(), nonce.unwrap_or(""))?;
                }
                return Ok(Authenticated {
                    user: Some(key.to_string()),
                    perms: entry.perms.clone(),
                    account: entry.account,
                });
            }
        }
        let (name, password_checked) = if self.tls_map {
            let id = cert.ok_or(AuthError::NoCertificate)?;
            let name = id
                .map_user(users.keys().map(String::as_str))
                .ok_or(AuthError::CertNotMapped)?;
            (name, false)
        } else {
            match no_auth.filter(|n| users.contains_key(*n)) {
                Some(n) => (n, true),
                None => (c.user.as_deref().unwrap_or(""), false),
            }
        };
        let u = users
            .get(name)
            .ok_or_else(|| AuthError::UnknownUser(name.to_string()))?;
        if !password_checked && !password_matches(&u.password, c.pass.as_deref().unwrap_or("")) {
            return Err(AuthError::BadPassword);
        }
        Ok(Authenticated {
            user: Some(name.to_string()),
            perms: u.perms.clone(),
            account: u.account,
        })
    }
}

impl Authenticate for Authenticator {
    fn required(&self) -> bool {
        !matches!(self.mode, Mode::Open)
    }

    /// With a `no_auth_user`, nats-server tells clients they need no credentials.
    fn advertised_required(&self) -> bool {
        self.required() && self.no_auth_user.is_none()
    }

    fn nonce(&self) -> Option<String> {
        self.needs_nonce().then(Self::new_nonce)
    }

    fn authenticate(&self, proof: &Credentials) -> Result<Authenticated, AuthError> {
        self.check(
            &proof.connect,
            proof.nonce.as_deref(),
            identity(proof).as_ref(),
        )
    }

    /// nats-server's reload order (server/reload.go `reloadAuthorization`): first whether the
    /// user or nkey the client named still exists in the same account
    /// (`clientHasMovedToDifferentAccount`), then the full authentication again.
    ///
    /// Unlike nats-server, the "moved" test applies only when the new config has a `users` or
    /// `nkeys` list: nats-server also closes every client that sent a user name whenever the
    /// new config has a single user, a token or no auth at all (even on a reload that changed
    /// nothing); here such a client is re-authenticated instead.
    fn recheck(&self, creds: &Credentials, account: AccountId) -> Recheck {
        if let Mode::Users { users, nkeys } = &self.mode {
            let c = &creds.connect;
            let found = if let Some(key) = named(&c.nkey) {
                Some(nkeys.get(key).map(|e| e.account))
            } else {
                named(&c.user).map(|user| users.get(user).map(|e| e.account))
            };
            if found.is_some_and(|f| f != Some(account)) {
                return Recheck::Moved;
            }
        }
        match self.authenticate(creds) {
            Ok(who) if who.account != account => Recheck::Moved,
            Ok(who) => Recheck::Allowed(who),
            Err(e) => Recheck::Denied(e),
        }
    }
}

/// The identity the client certificate of `proof` names (parsed when a CONNECT needs it, not
/// per message).
fn identity(proof: &Credentials) -> Option<CertIdentity> {
    proof.cert.as_deref().and_then(CertIdentity::from_der)
}

/// A CONNECT field the client actually filled in.
fn named(v: &Option<String>) -> Option<&str> {
    v.as_deref().filter(|s| !s.is_empty())
}

/// nats-server's `isBcrypt`: `$2a$`, `$2b$`, `$2x$` or `$2y$`, a two-digit cost, `$`.
fn is_bcrypt(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() > 7
        && b.starts_with(b"$2")
        && matches!(b[2], b'a' | b'b' | b'x' | b'y')
        && b[3] == b'$'
        && b[4].is_ascii_digit()
        && b[5].is_ascii_digit()
        && b[6] == b'$'
}

/// A configured secret (plain or bcrypt) against what the client sent. Plain secrets are
/// compared in constant time so the answer's timing says nothing about how much matched.
pub fn password_matches(configured: &str, given: &str) -> bool {
    if is_bcrypt(configured) {
        // bcrypt runs on the shard's executor: tens of milliseconds at the usual costs, paid once
        // per CONNECT, never per message.
        return bcrypt::verify(given, configured).unwrap_or(false);
    }
    let (a, b) = (configured.as_bytes(), given.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The client's ed25519 signature of the nonce, base64url (raw) or standard base64.
fn verify_nkey(key: &str, sig: Option<&str>, nonce: &str) -> Result<(), AuthError> {
    let sig = sig
        .filter(|s| !s.is_empty())
        .ok_or(AuthError::SignatureMissing)?;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(sig)
        .or_else(|_| base64::engine::general_purpose::STANDARD.decode(sig))
        .map_err(|_| AuthError::SignatureEncoding)?;
    let pk = nkeys::KeyPair::from_public_key(key).map_err(|_| AuthError::SignatureInvalid)?;
    pk.verify(nonce.as_bytes(), &raw)
        .map_err(|_| AuthError::SignatureInvalid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tachyon_config::auth::{NkeyUser, User};
    use tachyon_core::auth::SubjectPermission;

    fn connect(f: impl FnOnce(&mut ConnectOptions)) -> ConnectOptions {
        let mut c = ConnectOptions::default();
        f(&mut c);
        c
    }

    #[test]
    fn bcrypt_detection_and_compare() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        assert!(is_bcrypt(&hash));
        assert!(is_bcrypt("$2b$10$xxxx"));
        assert!(!is_bcrypt("$2c$10$xxxx"));
        assert!(!is_bcrypt("$2a$1$xx"));
        assert!(!is_bcrypt("plain"));
        assert!(password_matches(&hash, "s3cret"));
        assert!(!password_matches(&hash, "s3cre"));
        assert!(password_matches("plain", "plain"));
        assert!(!password_matches("plain", "plaim"));
        assert!(!password_matches("plain", "plai"));
        // A malformed hash never matches anything.
        assert!(!password_matches("$2a$04$short", ""));
    }

    #[test]
    fn flags_and_file_single_user_and_token() {
        let mut opts = Options::default();
        assert!(!Authenticator::new(None, &opts).required());
        opts.user = Some("u".into());
        opts.pass = Some("p".into());
        let a = Authenticator::new(None, &opts);
        assert!(a.required());
        assert!(!a.needs_nonce());
        assert!(a
            .check(
                &connect(|c| {
                    c.user = Some("u".into());
                    c.pass = Some("p".into())
                }),
                None,
                None
            )
            .is_ok());
        assert_eq!(
            a.check(&connect(|c| c.user = Some("u".into())), None, None)
                .unwrap_err(),
            AuthError::BadPassword
        );
        // The flag overrides the file's token.
        let file = AuthConfig {
            token: Some(bcrypt::hash("filetok", 4).unwrap()),
            ..Default::default()
        };
        let a = Authenticator::new(Some(&file), &Options::default());
        assert!(a
            .check(
                &connect(|c| c.auth_token = Some("filetok".into())),
                None,
                None
            )
            .is_ok());
        assert!(a
            .check(&connect(|c| c.auth_token = Some("x".into())), None, None)
            .is_err());
        let opts = Options {
            auth_token: Some("flagtok".into()),
            ..Default::default()
        };
        let a = Authenticator::new(Some(&file), &opts);
        assert!(a
            .check(
                &connect(|c| c.auth_token = Some("flagtok".into())),
                None,
                None
            )
            .is_ok());
        assert!(a
            .check(
                &connect(|c| c.auth_token = Some("filetok".into())),
                None,
                None
            )
            .is_err());
    }

    #[test]
    fn users_passwords_and_nkeys() {
        let kp = nkeys::KeyPair::new_user();
        let perms = Permissions {
            publish: Some(SubjectPermission {
                allow: Some(vec!["a".into()]),
                deny: vec![],
            }),
            ..Default::default()
        };
        let file = AuthConfig {
            users: Some(vec![
                User {
                    username: "alice".into(),
                    password: bcrypt::hash("pw", 4).unwrap(),
                    permissions: Some(perms.clone()),
                },
                User {
                    username: "bob".into(),
                    password: "bobpw".into(),
                    permissions: None,
                },
            ]),
            nkeys: vec![NkeyUser {
                nkey: kp.public_key(),
                permissions: Some(perms),
            }],
            ..Default::default()
        };
        let a = Authenticator::new(Some(&file), &Options::default());
        assert!(a.required());
        assert!(a.needs_nonce());
        let nonce = Authenticator::new_nonce();
        assert_eq!(nonce.len(), 15);
        assert_ne!(nonce, Authenticator::new_nonce());

        let ok = a
            .check(
                &connect(|c| {
                    c.user = Some("alice".into());
                    c.pass = Some("pw".into())
                }),
                Some(&nonce),
                None,
            )
            .unwrap();
        assert!(ok.perms.is_some());
        let bob = a
            .check(
                &connect(|c| {
                    c.user = Some("bob".into());
                    c.pass = Some("bobpw".into())
                }),
                Some(&nonce),
                None,
            )
            .unwrap();
        assert!(bob.perms.is_none());
        assert!(a
            .check(&connect(|c| c.user = Some("carol".into())), None, None)
            .is_err());

        let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(kp.sign(nonce.as_bytes()).unwrap());
        let with = |key: String, sig: Option<String>| {
            connect(|c| {
                c.nkey = Some(key);
                c.sig = sig
            })
        };
        let ok = a
            .check(
                &with(kp.public_key(), Some(sig.clone())),
                Some(&nonce),
                None,
            )
            .unwrap();
        assert!(ok.perms.is_some());
        // Standard base64 works too, as in nats-server.
        let std_sig =
            base64::engine::general_purpose::STANDARD.encode(kp.sign(nonce.as_bytes()).unwrap());
        assert!(a
            .check(&with(kp.public_key(), Some(std_sig)), Some(&nonce), None)
            .is_ok());
        assert_eq!(
            a.check(
                &with(kp.public_key(), Some(sig.clone())),
                Some("othernonce"),
                None
            )
            .unwrap_err(),
            AuthError::SignatureInvalid
        );
        assert_eq!(
            a.check(&with(kp.public_key(), None), Some(&nonce), None)
                .unwrap_err(),
            AuthError::SignatureMissing
        );
        assert_eq!(
            a.check(
                &with(kp.public_key(), Some("!!".into())),
                Some(&nonce),
                None
            )
            .unwrap_err(),
            AuthError::SignatureEncoding
        );
        let other = nkeys::KeyPair::new_user();
        assert!(matches!(
            a.check(&with(other.public_key(), Some(sig)), Some(&nonce), None),
            Err(AuthError::UnknownNkey(_))
        ));
    }

    #[test]
    fn recheck_after_reload() {
        let user = |name: &str, pw: &str| User {
            username: name.into(),
            password: pw.into(),
            permissions: None,
        };
        let with = |list: Vec<User>| {
            let file = AuthConfig {
                users: Some(list),
                ..Default::default()
            };
            Authenticator::new(Some(&file), &Options::default())
        };
        let login = |name: &str, pw: &str| {
            Credentials::new(
                &connect(|c| {
                    c.user = Some(name.into());
                    c.pass = Some(pw.into())
                }),
                None,
                None,
            )
        };
        let a = with(vec![user("alice", "a"), user("carol", "c2")]);
        assert!(matches!(
            a.recheck(&login("alice", "a"), GLOBAL),
            Recheck::Allowed(w) if w.user.as_deref() == Some("alice")
        ));
        // A removed user counts as moved (closed silently), a changed password is denied.
        assert!(matches!(
            a.recheck(&login("bob", "b"), GLOBAL),
            Recheck::Moved
        ));
        assert!(matches!(
            a.recheck(&login("carol", "c"), GLOBAL),
            Recheck::Denied(AuthError::BadPassword)
        ));
        // The same user in another account than the client's.
        assert!(matches!(a.recheck(&login("alice", "a"), 1), Recheck::Moved));
        // Without a users list the client is simply authenticated again.
        let single = Authenticator::new(
            None,
            &Options {
                user: Some("alice".into()),
                pass: Some("a".into()),
                ..Default::default()
            },
        );
        assert!(matches!(
            single.recheck(&login("alice", "a"), GLOBAL),
            Recheck::Allowed(_)
        ));
        assert!(matches!(
            single.recheck(&login("alice", "x"), GLOBAL),
            Recheck::Denied(_)
        ));
        let open = Authenticator::default();
        assert!(matches!(
            open.recheck(&login("bob", "b"), GLOBAL),
            Recheck::Allowed(_)
        ));
        // Secrets stay out of Debug output.
        assert!(!format!("{:?}", login("alice", "s3cret")).contains("s3cret"));
    }
}
