//! NATS subject filter matching: `*` matches one token, `>` one or more trailing tokens.

/// True when `filter` selects `subject`. An empty filter selects everything.
pub fn matches(filter: &str, subject: &str) -> bool {
    if filter.is_empty() || filter == ">" {
        return true;
    }
    let mut f = filter.split('.');
    let mut s = subject.split('.');
    loop {
        match (f.next(), s.next()) {
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// True when the filter selects more than one literal subject.
pub fn is_wildcard(filter: &str) -> bool {
    filter.is_empty() || filter.split('.').any(|t| t == "*" || t == ">")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(matches("a.b", "a.b"));
        assert!(!matches("a.b", "a.c"));
        assert!(!matches("a.b", "a.b.c"));
        assert!(matches("a.*", "a.b"));
        assert!(!matches("a.*", "a.b.c"));
        assert!(matches("a.>", "a.b.c"));
        assert!(!matches("a.>", "a"));
        assert!(matches("*.b.>", "x.b.c"));
        assert!(matches("", "anything"));
        assert!(matches(">", "x.y"));
        assert!(is_wildcard("a.*") && is_wildcard("a.>") && !is_wildcard("a.b"));
    }
}
