//! Go's text forms of times and durations, which nats-server's replies and errors carry.

use std::fmt::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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

/// An HTTP `Date` header value: `Mon, 23 Nov 2026 12:47:54 GMT`.
pub fn http_date(t: SystemTime) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let days = secs / 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    let rem = secs % 86_400;
    format!(
        "{}, {d:02} {} {y:04} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        MONTHS[(m as usize).saturating_sub(1) % 12],
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Howard Hinnant's days-to-civil: days since 1970-01-01 to (year, month, day).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}
