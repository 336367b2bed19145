//! Publish/subscribe permissions as the config writes them (`authorization`, users in
//! `accounts`). The engine compiles them once per user into its permission checker.

use std::time::Duration;

/// One direction's lists as written in the config.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SubjectPermission {
    /// `None`: no allow list, everything not denied passes. `Some([])`: nothing passes (what
    /// `allow_responses` turns an absent publish list into).
    pub allow: Option<Vec<String>>,
    pub deny: Vec<String>,
}

/// `allow_responses`: the client may publish to reply subjects of messages it received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponsePermission {
    /// Responses allowed per received reply subject; 0 or less means no limit.
    pub max_msgs: i64,
    /// How long a received reply subject stays publishable; `None` means forever.
    pub expires: Option<Duration>,
}

impl Default for ResponsePermission {
    /// nats-server's `DEFAULT_ALLOW_RESPONSE_MAX_MSGS` and `DEFAULT_ALLOW_RESPONSE_EXPIRATION`.
    fn default() -> Self {
        ResponsePermission {
            max_msgs: 1,
            expires: Some(Duration::from_secs(120)),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Permissions {
    pub publish: Option<SubjectPermission>,
    pub subscribe: Option<SubjectPermission>,
    pub response: Option<ResponsePermission>,
}
