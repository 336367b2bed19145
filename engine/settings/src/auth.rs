//! The settings of the `authorization` block (and of users inside `accounts`).

use std::time::Duration;

use crate::permissions::Permissions;

/// A user/password entry of `users = [...]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub username: String,
    /// Plain text or a bcrypt hash (`$2a$...`).
    pub password: String,
    pub permissions: Option<Permissions>,
}

/// An nkey entry of `users = [...]`: the user's public key (`U...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NkeyUser {
    pub nkey: String,
    pub permissions: Option<Permissions>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthConfig {
    pub user: Option<String>,
    pub pass: Option<String>,
    /// Plain text or a bcrypt hash.
    pub token: Option<String>,
    pub timeout: Option<Duration>,
    /// `Some` as soon as `users` is written, even empty (nats-server then refuses a single user).
    pub users: Option<Vec<User>>,
    pub nkeys: Vec<NkeyUser>,
    pub default_permissions: Option<Permissions>,
}
