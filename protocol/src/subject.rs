//! Subject rules as nats-server applies them to client input.
//!
//! nats-server is lenient: a non-pedantic PUB is never checked (a malformed subject just
//! matches nothing), a SUB is checked only by the sublist insert (no empty token, nothing
//! after `>`), and a pedantic PUB must be a valid literal. Whitespace cannot reach these
//! functions from the wire because the parser splits on it, but it is rejected anyway so
//! the functions are safe for other callers (config, JetStream API).

const SEP: u8 = b'.';
const PWC: u8 = b'*';
const FWC: u8 = b'>';

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b'\x0c')
}

/// Tokens of a subject, split on `.`; empty tokens are kept so callers can reject them.
pub fn tokens(subject: &[u8]) -> impl Iterator<Item = &[u8]> {
    subject.split(|&b| b == SEP)
}

/// True when no token is exactly `*` or `>` (a `foo*` token is literal).
pub fn is_literal(subject: &[u8]) -> bool {
    tokens(subject).all(|t| t != [PWC] && t != [FWC])
}

/// Whether a PUB subject is accepted. Non-pedantic nats-server accepts any non-empty
/// subject; pedantic requires a valid literal (no empty or wildcard token).
pub fn valid_publish(subject: &[u8], pedantic: bool) -> bool {
    if subject.is_empty() || subject.iter().copied().any(is_ws) {
        return false;
    }
    if !pedantic {
        return true;
    }
    tokens(subject).all(|t| !t.is_empty() && t != [PWC] && t != [FWC])
}

/// Whether a SUB subject is accepted: non-empty tokens, `>` only as the last token.
/// nats-server applies the same rule with or without pedantic.
pub fn valid_subscribe(subject: &[u8], _pedantic: bool) -> bool {
    if subject.is_empty() || subject.iter().copied().any(is_ws) {
        return false;
    }
    let mut after_fwc = false;
    for t in tokens(subject) {
        if t.is_empty() || after_fwc {
            return false;
        }
        if t == [FWC] {
            after_fwc = true;
        }
    }
    true
}

/// nats-server does not validate queue names beyond what the parser's split guarantees.
pub fn valid_queue(queue: &[u8]) -> bool {
    !queue.is_empty() && !queue.iter().copied().any(is_ws)
}

/// Whether literal `subject` is matched by `pattern` (`*` one token, `>` one or more).
pub fn matches(pattern: &[u8], subject: &[u8]) -> bool {
    let mut p = tokens(pattern);
    let mut s = tokens(subject);
    loop {
        match (p.next(), s.next()) {
            (None, None) => return true,
            (Some(pt), Some(_)) if pt == [FWC] => return true,
            (Some(pt), Some(st)) => {
                if pt != [PWC] && pt != st {
                    return false;
                }
            }
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_rules() {
        assert!(valid_publish(b"foo.bar", true));
        assert!(valid_publish(b"foo*.bar>", true));
        assert!(!valid_publish(b"foo.*", true));
        assert!(!valid_publish(b"foo.>", true));
        assert!(!valid_publish(b"foo..bar", true));
        assert!(!valid_publish(b".foo", true));
        assert!(!valid_publish(b"foo.", true));
        // non-pedantic nats-server forwards these unchecked
        assert!(valid_publish(b"foo..bar", false));
        assert!(valid_publish(b"foo.*", false));
        assert!(!valid_publish(b"", false));
        assert!(!valid_publish(b"a b", false));
    }

    #[test]
    fn subscribe_rules() {
        assert!(valid_subscribe(b"foo", false));
        assert!(valid_subscribe(b">", false));
        assert!(valid_subscribe(b"*.>", false));
        assert!(valid_subscribe(b"foo*", false));
        assert!(valid_subscribe(b"*.*.baz", true));
        assert!(!valid_subscribe(b"foo.>.bar", false));
        assert!(!valid_subscribe(b"foo..bar", false));
        assert!(!valid_subscribe(b"foo.", false));
        assert!(!valid_subscribe(b"", false));
        assert!(!valid_subscribe(b"a\tb", false));
    }

    #[test]
    fn queue_rules() {
        assert!(valid_queue(b"workers"));
        assert!(!valid_queue(b""));
        assert!(!valid_queue(b"a b"));
    }

    #[test]
    fn literal_and_tokens() {
        assert!(is_literal(b"foo.bar"));
        assert!(is_literal(b"foo*.b>"));
        assert!(!is_literal(b"foo.*"));
        assert!(!is_literal(b">"));
        let t: Vec<&[u8]> = tokens(b"a..b").collect();
        assert_eq!(t, vec![&b"a"[..], b"", b"b"]);
    }

    #[test]
    fn matching() {
        assert!(matches(b"foo.bar", b"foo.bar"));
        assert!(!matches(b"foo.bar", b"foo.baz"));
        assert!(matches(b"foo.*", b"foo.bar"));
        assert!(!matches(b"foo.*", b"foo.bar.baz"));
        assert!(!matches(b"foo.*", b"foo"));
        assert!(matches(b"foo.>", b"foo.bar.baz"));
        assert!(!matches(b"foo.>", b"foo"));
        assert!(matches(b">", b"a"));
        assert!(matches(b"*.b.>", b"a.b.c"));
        assert!(!matches(b"*.b.>", b"a.c.c"));
        assert!(!matches(b"foo", b"foo.bar"));
    }
}
