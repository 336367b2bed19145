//! Go's text forms of times and durations, which nats-server's replies and errors carry.

use std::fmt::Write;
use std::time::Duration;

/// Appends `.ddd` with `digits` places, trailing zeros trimmed; nothing when zero.
pub fn push_fraction(s: &mut String, value: u64, digits: usize) {
    if value == 0 {
        return;
    }
    let mut f = format!("{value:0digits$}");
    while f.ends_with('0') {
        f.pop();
    }
    s.push('.');
    s.push_str(&f);
}

/// Go's `time.Duration.String()`: `0s`, `750ns`, `560µs`, `1.5ms`, `2.25s`, `1m0s`, `1h2m3.5s`.
pub fn go_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    let mut s = String::new();
    if ns == 0 {
        return "0s".into();
    }
    if ns < 1_000 {
        return format!("{ns}ns");
    }
    if ns < 1_000_000 {
        let _ = write!(s, "{}", ns / 1_000);
        push_fraction(&mut s, (ns % 1_000) as u64, 3);
        s.push_str("µs");
        return s;
    }
    if ns < 1_000_000_000 {
        let _ = write!(s, "{}", ns / 1_000_000);
        push_fraction(&mut s, (ns % 1_000_000) as u64, 6);
        s.push_str("ms");
        return s;
    }
    let secs = d.as_secs();
    let (h, m, sec) = (secs / 3600, secs / 60 % 60, secs % 60);
    if h > 0 {
        let _ = write!(s, "{h}h");
    }
    if h > 0 || m > 0 {
        let _ = write!(s, "{m}m");
    }
    let _ = write!(s, "{sec}");
    push_fraction(&mut s, d.subsec_nanos() as u64, 9);
    s.push('s');
    s
}
