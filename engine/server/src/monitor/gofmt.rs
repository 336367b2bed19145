//! Time values written the way Go prints them in nats-server's JSON: RFC 3339 with trimmed
//! nanoseconds (`time.Time` marshalling), `time.Duration.String()`, and nats-server's uptime.

use std::time::{Duration, SystemTime, UNIX_EPOCH};
pub use tachyon_config::gofmt::{civil_from_days, go_duration, http_date, push_fraction};

/// `2026-11-23T12:47:54.242042709Z`: UTC, fraction without trailing zeros (none when zero).
pub fn rfc3339_nano(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (y, m, day) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    let mut s = format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    );
    push_fraction(&mut s, d.subsec_nanos() as u64, 9);
    s.push('Z');
    s
}

/// nats-server's `myUptime`: whole seconds, with days and years: `2s`, `1m2s`, `3d4h5m6s`.
pub fn uptime(d: Duration) -> String {
    let secs = d.as_secs();
    let (mins, hrs) = (secs / 60, secs / 3600);
    let (days, yrs) = (hrs / 24, hrs / 24 / 365);
    if yrs > 0 {
        format!(
            "{yrs}y{}d{}h{}m{}s",
            days % 365,
            hrs % 24,
            mins % 60,
            secs % 60
        )
    } else if days > 0 {
        format!("{days}d{}h{}m{}s", hrs % 24, mins % 60, secs % 60)
    } else if hrs > 0 {
        format!("{hrs}h{}m{}s", mins % 60, secs % 60)
    } else if mins > 0 {
        format!("{mins}m{}s", secs % 60)
    } else {
        format!("{secs}s")
    }
}

/// nats-server truncates an RTT under a millisecond to microseconds before printing it.
pub fn rtt(d: Duration) -> String {
    if d > Duration::from_micros(1) && d < Duration::from_millis(1) {
        go_duration(Duration::from_micros(d.as_micros() as u64))
    } else {
        go_duration(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_like_go() {
        let t = UNIX_EPOCH + Duration::new(1_795_438_074, 242_042_709);
        assert_eq!(rfc3339_nano(t), "2026-11-23T12:47:54.242042709Z");
        let t = UNIX_EPOCH + Duration::new(1_795_438_074, 255_674_230);
        assert_eq!(rfc3339_nano(t), "2026-11-23T12:47:54.25567423Z");
        assert_eq!(rfc3339_nano(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        // A leap day.
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339_nano(t), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn http_date_like_go() {
        let t = UNIX_EPOCH + Duration::new(1_795_438_074, 5);
        assert_eq!(http_date(t), "Mon, 23 Nov 2026 12:47:54 GMT");
    }

    #[test]
    fn durations_like_go() {
        let cases = [
            (Duration::ZERO, "0s"),
            (Duration::from_nanos(750), "750ns"),
            (Duration::from_micros(560), "560µs"),
            (Duration::from_nanos(1_234_500), "1.2345ms"),
            (Duration::from_millis(2250), "2.25s"),
            (Duration::from_secs(60), "1m0s"),
            (Duration::from_secs(120), "2m0s"),
            (Duration::from_millis(3_723_500), "1h2m3.5s"),
            (Duration::from_secs(3600), "1h0m0s"),
        ];
        for (d, want) in cases {
            assert_eq!(go_duration(d), want, "{d:?}");
        }
        assert_eq!(rtt(Duration::from_nanos(560_789)), "560µs");
        assert_eq!(rtt(Duration::from_nanos(1_500_001)), "1.500001ms");
    }

    #[test]
    fn uptime_like_nats_server() {
        assert_eq!(uptime(Duration::from_millis(2900)), "2s");
        assert_eq!(uptime(Duration::from_secs(62)), "1m2s");
        assert_eq!(
            uptime(Duration::from_secs(3 * 86_400 + 4 * 3600 + 5 * 60 + 6)),
            "3d4h5m6s"
        );
        assert_eq!(uptime(Duration::from_secs(366 * 86_400)), "1y1d0h0m0s");
    }
}
