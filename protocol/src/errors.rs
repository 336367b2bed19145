//! The texts nats-server puts inside `-ERR '...'`, spelled exactly as it sends them
//! (server/client.go, server/errors.go). Clients match on some of these strings, so
//! case and wording are part of the protocol.

/// Parser met a byte that starts no known operation. Closes the connection.
pub const UNKNOWN_PROTOCOL_OPERATION: &str = "Unknown Protocol Operation";
/// PUB/HPUB announced a size over `max_payload`. Closes the connection.
pub const MAX_PAYLOAD_VIOLATION: &str = "Maximum Payload Violation";
/// Control-line arguments longer than `max_control_line`. nats-server sends the
/// text of `ErrMaxControlLine`, which is lower case. Closes the connection.
pub const MAX_CONTROL_LINE_EXCEEDED: &str = "maximum control line exceeded";
/// SUB with a subject the sublist rejects. The connection stays open.
pub const INVALID_SUBJECT: &str = "Invalid Subject";
/// PUB to a non-literal subject from a pedantic client. Stays open, message still routed.
pub const INVALID_PUBLISH_SUBJECT: &str = "Invalid Publish Subject";
/// Authentication failed or the first op of an auth-required connection was not CONNECT.
pub const AUTHORIZATION_VIOLATION: &str = "Authorization Violation";
pub const AUTHENTICATION_TIMEOUT: &str = "Authentication Timeout";
pub const USER_AUTHENTICATION_EXPIRED: &str = "User Authentication Expired";
pub const ACCOUNT_AUTHENTICATION_EXPIRED: &str = "Account Authentication Expired";
pub const USER_AUTHENTICATION_REVOKED: &str = "User Authentication Revoked";
/// Sent before closing a client that missed too many PINGs.
pub const STALE_CONNECTION: &str = "Stale Connection";
/// nats-server itself closes slow consumers without an -ERR; Tachyon's design sends this first.
pub const SLOW_CONSUMER: &str = "Slow Consumer";
pub const MAX_CONNECTIONS_EXCEEDED: &str = "maximum connections exceeded";
pub const MAX_ACCOUNT_CONNECTIONS_EXCEEDED: &str = "maximum account active connections exceeded";
/// Sent when a SUB would go over `max_subscriptions`; the connection stays open.
pub const MAX_SUBSCRIPTIONS_EXCEEDED: &str = "maximum subscriptions exceeded";
/// CONNECT with `protocol` outside 0..=1. Closes the connection.
pub const INVALID_CLIENT_PROTOCOL: &str = "invalid client protocol";
/// CONNECT with `no_responders` but without `headers`. Closes the connection.
pub const NO_RESPONDERS_REQUIRES_HEADERS: &str = "no responders requires headers support";
pub const FAILED_ACCOUNT_REGISTRATION: &str = "Failed Account Registration";

/// `Permissions Violation for Publish to "subject"`.
pub fn publish_violation(subject: &[u8]) -> String {
    format!("Permissions Violation for Publish to {}", go_quote(subject))
}

/// `Permissions Violation for Publish with Reply of "reply"`.
pub fn publish_reply_violation(reply: &[u8]) -> String {
    format!(
        "Permissions Violation for Publish with Reply of {}",
        go_quote(reply)
    )
}

/// `Permissions Violation for Subscription to "subject"` (plus `using queue "q"`).
pub fn subscribe_violation(subject: &[u8], queue: Option<&[u8]>) -> String {
    match queue {
        Some(q) => format!(
            "Permissions Violation for Subscription to {} using queue {}",
            go_quote(subject),
            go_quote(q)
        ),
        None => format!(
            "Permissions Violation for Subscription to {}",
            go_quote(subject)
        ),
    }
}

/// `Permissions Violation for Subscription to "subject", too many tokens`.
pub fn subscribe_too_many_tokens(subject: &[u8]) -> String {
    format!(
        "Permissions Violation for Subscription to {}, too many tokens",
        go_quote(subject)
    )
}

/// The form sent when a config reload revokes an existing subscription.
pub fn subscribe_revoked(subject: &[u8], queue: Option<&[u8]>, sid: &[u8]) -> String {
    match queue {
        Some(q) => format!(
            "Permissions Violation for Subscription to {} using queue {} (sid {})",
            go_quote(subject),
            go_quote(q),
            go_quote(sid)
        ),
        None => format!(
            "Permissions Violation for Subscription to {} (sid {})",
            go_quote(subject),
            go_quote(sid)
        ),
    }
}

/// Quotes like Go's `%q` for the byte strings that reach these messages: printable
/// ASCII as is, `"` and `\` escaped, the rest as Go escapes (`\n`, `\x00`, or the
/// UTF-8 character itself when it is printable).
pub fn go_quote(s: &[u8]) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for chunk in s.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\x07' => out.push_str("\\a"),
                '\x08' => out.push_str("\\b"),
                '\x0c' => out.push_str("\\f"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\x0b' => out.push_str("\\v"),
                c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                    out.push_str(&format!("\\x{:02x}", c as u32));
                }
                c if c.is_control() => {
                    if (c as u32) <= 0xffff {
                        out.push_str(&format!("\\u{:04x}", c as u32));
                    } else {
                        out.push_str(&format!("\\U{:08x}", c as u32));
                    }
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_texts_match_nats_server_format() {
        assert_eq!(
            publish_violation(b"foo.bar"),
            "Permissions Violation for Publish to \"foo.bar\""
        );
        assert_eq!(
            subscribe_violation(b"foo", Some(b"q")),
            "Permissions Violation for Subscription to \"foo\" using queue \"q\""
        );
        assert_eq!(
            subscribe_violation(b"foo", None),
            "Permissions Violation for Subscription to \"foo\""
        );
        assert_eq!(
            publish_reply_violation(b"_INBOX.x"),
            "Permissions Violation for Publish with Reply of \"_INBOX.x\""
        );
        assert_eq!(
            subscribe_too_many_tokens(b"a.b"),
            "Permissions Violation for Subscription to \"a.b\", too many tokens"
        );
        assert_eq!(
            subscribe_revoked(b"a", None, b"7"),
            "Permissions Violation for Subscription to \"a\" (sid \"7\")"
        );
    }

    #[test]
    fn go_quote_escapes_like_percent_q() {
        assert_eq!(go_quote(b"a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(go_quote(b"\x00\n\x7f"), r#""\x00\n\x7f""#);
        assert_eq!(go_quote(b"\xff"), r#""\xff""#);
        assert_eq!(go_quote("é".as_bytes()), "\"é\"");
    }
}
