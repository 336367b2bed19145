//! Authentication and authorization: the `authorization` config block (`config`), who a CONNECT
//! proves to be (`authn`), and what that user may publish and subscribe to (`perms`).
//!
//! Everything here is built once at start-up (shared, read-only) except [`perms::PermChecker`],
//! which each connection owns so its caches need no lock.

pub mod authn;
pub mod perms;

pub use authn::{AuthError, Authenticated, Authenticator, Credentials, Recheck};
pub use perms::{PermChecker, Permissions, ResponsePermission, SubjectPermission};
pub use tachyon_config::auth::{from_config, AuthConfig, NkeyUser, User};
