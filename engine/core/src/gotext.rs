//! Texts as nats-server (Go) writes them, for log lines and errors users and tools match.

/// `HOST:PORT` as Go's `net.JoinHostPort` writes it (IPv6 hosts in brackets).
pub fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// An OS error as Go prints a `syscall.Errno`: the C library's text, lower-case first letter,
/// without Rust's " (os error N)".
pub fn errno_text(e: &std::io::Error) -> String {
    let Some(code) = e.raw_os_error() else {
        return e.to_string();
    };
    let full = std::io::Error::from_raw_os_error(code).to_string();
    let text = full
        .strip_suffix(&format!(" (os error {code})"))
        .unwrap_or(&full);
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Go's `net.OpError` text for a failed system call: `listen tcp ADDR: bind: <errno text>`.
pub fn op_error(what: &str, target: &str, syscall: &str, e: &std::io::Error) -> String {
    format!("{what} {target}: {syscall}: {}", errno_text(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_text_is_go_style() {
        let e = std::io::Error::from_raw_os_error(libc::EADDRINUSE);
        assert_eq!(errno_text(&e), "address already in use");
        assert_eq!(
            op_error("listen", "tcp 0.0.0.0:4222", "bind", &e),
            "listen tcp 0.0.0.0:4222: bind: address already in use"
        );
        let e = std::io::Error::from_raw_os_error(libc::EMFILE);
        assert_eq!(
            op_error("accept", "tcp 0.0.0.0:4222", "accept4", &e),
            "accept tcp 0.0.0.0:4222: accept4: too many open files"
        );
    }

    #[test]
    fn ipv6_hosts_are_bracketed() {
        assert_eq!(host_port("::", 4222), "[::]:4222");
        assert_eq!(host_port("127.0.0.1", 4222), "127.0.0.1:4222");
    }
}
