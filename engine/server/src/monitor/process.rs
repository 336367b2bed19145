//! Process figures for `/varz`: resident memory and CPU use, read from `/proc` on request.

use std::time::Instant;

/// Resident set size in bytes (`/proc/self/statm`); 0 when unreadable.
pub fn rss_bytes() -> u64 {
    let Ok(statm) = std::fs::read_to_string("/proc/self/statm") else {
        return 0;
    };
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    // SAFETY: sysconf only reads a system constant.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * u64::try_from(page).unwrap_or(4096)
}

/// User + system CPU time of the process, in seconds.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name (which may hold spaces): state is field 3,
    // utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut f = rest.split_whitespace().skip(11);
    let utime: u64 = f.next()?.parse().ok()?;
    let stime: u64 = f.next()?.parse().ok()?;
    // SAFETY: sysconf only reads a system constant.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    Some((utime + stime) as f64 / ticks.max(1) as f64)
}

/// CPU percent (100 = one core) since the previous call (or since the meter was made), like
/// nats-server's periodic sample.
pub struct CpuMeter {
    last: (Instant, f64),
}

impl CpuMeter {
    pub fn new() -> Self {
        CpuMeter {
            last: (Instant::now(), cpu_seconds().unwrap_or(0.0)),
        }
    }

    pub fn sample(&mut self) -> f64 {
        let now = Instant::now();
        let Some(cpu) = cpu_seconds() else {
            return 0.0;
        };
        let (since, before) = self.last;
        self.last = (now, cpu);
        let wall = now.duration_since(since).as_secs_f64();
        if wall <= 0.0 {
            return 0.0;
        }
        (((cpu - before) / wall * 100.0) * 10.0).round() / 10.0
    }
}

impl Default for CpuMeter {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        assert!(rss_bytes() > 0);
        assert!(cpu_seconds().is_some());
        let mut m = CpuMeter::new();
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        std::hint::black_box(x);
        assert!(m.sample() >= 0.0);
    }
}
