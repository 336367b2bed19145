//! Who a CONNECT proves to be: a token, a single user, or one of the `users` (password or
//! nkey), in nats-server's order (server/auth.go: processClientOrLeafAuthentication).

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine;
use tachyon_protocol::json::ConnectOptions;

use super::config::AuthConfig;
use super::perms::CompiledPerms;
use crate::cli::Options;

/// nats-server's nonce: 11 random bytes, base64url without padding (15 characters).
const NONCE_RAW_LEN: usize = 11;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("bad token")]
    BadToken,
    #[error("bad user or password")]
    BadPassword,
    #[error("unknown user {0:?}")]
    UnknownUser(String),
    #[error("unknown nkey {0:?}")]
    UnknownNkey(String),
    #[error("nkey signature missing")]
    SignatureMissing,
    #[error("nkey signature not valid base64")]
    SignatureEncoding,
    #[error("nkey signature not verified")]
    SignatureInvalid,
}

/// A successful CONNECT: who, and what they may do (`None`: anything).
#[derive(Debug, Clone, Default)]
pub struct Authenticated {
    pub user: Option<String>,
    pub perms: Option<Arc<CompiledPerms>>,
}

#[derive(Debug)]
struct PasswordUser {
    password: String,
    perms: Option<Arc<CompiledPerms>>,
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
        nkeys: HashMap<String, Option<Arc<CompiledPerms>>>,
    },
}

/// The server-wide authentication setup, built once from the config block and the flags.
#[derive(Debug)]
pub struct Authenticator {
    mode: Mode,
}

impl Default for Authenticator {
    fn default() -> Self {
        Authenticator { mode: Mode::Open }
    }
}

impl Authenticator {
    /// `--user`/`--pass`/`--auth` override the block's single user and token, as nats-server's
    /// flags override its file; a `users` list wins over both.
    pub fn new(file: Option<&AuthConfig>, opts: &Options) -> Authenticator {
        let compile = |p: &Option<super::Permissions>| {
            p.as_ref().map(|p| Arc::new(CompiledPerms::compile(p)))
        };
        if let Some(f) = file.filter(|f| f.users.is_some() || !f.nkeys.is_empty()) {
            let users = f
                .users
                .iter()
                .flatten()
                .map(|u| {
                    (
                        u.username.clone(),
                        PasswordUser {
                            password: u.password.clone(),
                            perms: compile(&u.permissions),
                        },
                    )
                })
                .collect();
            let nkeys = f
                .nkeys
                .iter()
                .map(|n| (n.nkey.clone(), compile(&n.permissions)))
                .collect();
            return Authenticator {
                mode: Mode::Users { users, nkeys },
            };
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
        let mode = match (token, user) {
            (Some(t), _) => Mode::Token(t),
            (None, Some(user)) => Mode::Single {
                user,
                pass: pass.unwrap_or_default(),
            },
            (None, None) => Mode::Open,
        };
        Authenticator { mode }
    }

    /// INFO's `auth_required`.
    pub fn required(&self) -> bool {
        !matches!(self.mode, Mode::Open)
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
    pub fn authenticate(
        &self,
        c: &ConnectOptions,
        nonce: Option<&str>,
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
                    })
                } else {
                    Err(AuthError::BadPassword)
                }
            }
            Mode::Users { users, nkeys } => {
                if let Some(key) = c
                    .nkey
                    .as_deref()
                    .filter(|k| !k.is_empty() && !nkeys.is_empty())
                {
                    let perms = nkeys
                        .get(key)
                        .ok_or_else(|| AuthError::UnknownNkey(key.to_string()))?;
                    verify_nkey(key, c.sig.as_deref(), nonce.unwrap_or(""))?;
                    return Ok(Authenticated {
                        user: Some(key.to_string()),
                        perms: perms.clone(),
                    });
                }
                let name = c.user.as_deref().unwrap_or("");
                let u = users
                    .get(name)
                    .ok_or_else(|| AuthError::UnknownUser(name.to_string()))?;
                if !password_matches(&u.password, c.pass.as_deref().unwrap_or("")) {
                    return Err(AuthError::BadPassword);
                }
                Ok(Authenticated {
                    user: Some(name.to_string()),
                    perms: u.perms.clone(),
                })
            }
        }
    }
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
    use crate::auth::config::{NkeyUser, User};
    use crate::auth::perms::{Permissions, SubjectPermission};

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
            .authenticate(
                &connect(|c| {
                    c.user = Some("u".into());
                    c.pass = Some("p".into())
                }),
                None
            )
            .is_ok());
        assert_eq!(
            a.authenticate(&connect(|c| c.user = Some("u".into())), None)
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
            .authenticate(&connect(|c| c.auth_token = Some("filetok".into())), None)
            .is_ok());
        assert!(a
            .authenticate(&connect(|c| c.auth_token = Some("x".into())), None)
            .is_err());
        let opts = Options {
            auth_token: Some("flagtok".into()),
            ..Default::default()
        };
        let a = Authenticator::new(Some(&file), &opts);
        assert!(a
            .authenticate(&connect(|c| c.auth_token = Some("flagtok".into())), None)
            .is_ok());
        assert!(a
            .authenticate(&connect(|c| c.auth_token = Some("filetok".into())), None)
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
            .authenticate(
                &connect(|c| {
                    c.user = Some("alice".into());
                    c.pass = Some("pw".into())
                }),
                Some(&nonce),
            )
            .unwrap();
        assert!(ok.perms.is_some());
        let bob = a
            .authenticate(
                &connect(|c| {
                    c.user = Some("bob".into());
                    c.pass = Some("bobpw".into())
                }),
                Some(&nonce),
            )
            .unwrap();
        assert!(bob.perms.is_none());
        assert!(a
            .authenticate(&connect(|c| c.user = Some("carol".into())), None)
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
            .authenticate(&with(kp.public_key(), Some(sig.clone())), Some(&nonce))
            .unwrap();
        assert!(ok.perms.is_some());
        // Standard base64 works too, as in nats-server.
        let std_sig =
            base64::engine::general_purpose::STANDARD.encode(kp.sign(nonce.as_bytes()).unwrap());
        assert!(a
            .authenticate(&with(kp.public_key(), Some(std_sig)), Some(&nonce))
            .is_ok());
        assert_eq!(
            a.authenticate(
                &with(kp.public_key(), Some(sig.clone())),
                Some("othernonce")
            )
            .unwrap_err(),
            AuthError::SignatureInvalid
        );
        assert_eq!(
            a.authenticate(&with(kp.public_key(), None), Some(&nonce))
                .unwrap_err(),
            AuthError::SignatureMissing
        );
        assert_eq!(
            a.authenticate(&with(kp.public_key(), Some("!!".into())), Some(&nonce))
                .unwrap_err(),
            AuthError::SignatureEncoding
        );
        let other = nkeys::KeyPair::new_user();
        assert!(matches!(
            a.authenticate(&with(other.public_key(), Some(sig)), Some(&nonce)),
            Err(AuthError::UnknownNkey(_))
        ));
    }
}
