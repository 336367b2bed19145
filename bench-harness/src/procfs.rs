//! The few /proc figures the comparison needs: a process's CPU time and peak
//! RSS, and the whole machine's busy time (to tell how loaded the shared host was).

use std::fs;

/// utime + stime of a process, in clock ticks.
pub fn parse_pid_stat_ticks(stat: &str) -> Option<u64> {
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    // After ')' come state(3) ... utime(14), stime(15): utime is the 12th here.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// VmHWM (peak resident set) in KiB from /proc/PID/status.
pub fn parse_vm_hwm_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_ascii_whitespace().next())
        .and_then(|n| n.parse().ok())
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MachineTicks {
    pub busy: u64,
    pub total: u64,
}

/// Busy and total ticks summed over all CPUs, from the `cpu` line of /proc/stat.
pub fn parse_machine_ticks(stat: &str) -> Option<MachineTicks> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_ascii_whitespace()
        .skip(1)
        .map(|f| f.parse().ok())
        .collect::<Option<Vec<u64>>>()?;
    let get = |i: usize| v.get(i).copied().unwrap_or(0);
    // user nice system idle iowait irq softirq steal (guest is already in user).
    let idle = get(3) + get(4);
    let busy = get(0) + get(1) + get(2) + get(5) + get(6) + get(7);
    Some(MachineTicks {
        busy,
        total: busy + idle,
    })
}

/// The command name between the parentheses of a stat line (for a thread, its name).
pub fn parse_stat_name(stat: &str) -> Option<&str> {
    Some(&stat[stat.find('(')? + 1..stat.rfind(')')?])
}

/// utime + stime of each thread of a process, by thread name (threads sharing a name summed).
pub fn pid_thread_ticks(pid: u32) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = Vec::new();
    let Ok(dir) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for task in dir.flatten() {
        let Ok(stat) = fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        let (Some(name), Some(ticks)) = (parse_stat_name(&stat), parse_pid_stat_ticks(&stat))
        else {
            continue;
        };
        match out.iter_mut().find(|(n, _)| n == name) {
            Some(e) => e.1 += ticks,
            None => out.push((name.to_string(), ticks)),
        }
    }
    out.sort();
    out
}

pub fn pid_cpu_ticks(pid: u32) -> Option<u64> {
    parse_pid_stat_ticks(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

pub fn self_cpu_ticks() -> Option<u64> {
    parse_pid_stat_ticks(&fs::read_to_string("/proc/self/stat").ok()?)
}

pub fn pid_vm_hwm_kib(pid: u32) -> Option<u64> {
    parse_vm_hwm_kib(&fs::read_to_string(format!("/proc/{pid}/status")).ok()?)
}

pub fn machine_ticks() -> Option<MachineTicks> {
    parse_machine_ticks(&fs::read_to_string("/proc/stat").ok()?)
}

/// Clock ticks per second (`getconf CLK_TCK`); Linux uses 100 everywhere we run.
pub fn clock_ticks_per_sec() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|v| *v > 0.0)
        .unwrap_or(100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_stat_with_tricky_name() {
        let s = "1234 (nats server) (x)) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 9 0 123 456 789";
        assert_eq!(parse_pid_stat_ticks(s), Some(325));
        assert_eq!(parse_pid_stat_ticks("garbage"), None);
        assert_eq!(parse_pid_stat_ticks("1 (a) S 1 2"), None);
    }

    #[test]
    fn stat_name_and_own_threads() {
        let s = "1234 (shard-0 (x)) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0";
        assert_eq!(parse_stat_name(s), Some("shard-0 (x)"));
        assert_eq!(parse_stat_name("no parens"), None);
        let mine = pid_thread_ticks(std::process::id());
        assert!(!mine.is_empty());
    }

    #[test]
    fn own_stat_parses() {
        assert!(self_cpu_ticks().is_some());
        assert!(machine_ticks().is_some_and(|m| m.total >= m.busy && m.total > 0));
        assert!(pid_vm_hwm_kib(std::process::id()).is_some_and(|k| k > 0));
    }

    #[test]
    fn vm_hwm() {
        let s = "Name:\tnats-server\nVmPeak:\t  1000 kB\nVmHWM:\t   15872 kB\nVmRSS:\t 100 kB\n";
        assert_eq!(parse_vm_hwm_kib(s), Some(15872));
        assert_eq!(parse_vm_hwm_kib("Name: x\n"), None);
    }

    #[test]
    fn machine_stat() {
        let s = "cpu  100 5 50 1000 20 3 2 1 7 0\ncpu0 50 2 25 500 10 1 1 0 0 0\n";
        let m = parse_machine_ticks(s).unwrap();
        assert_eq!(m.busy, 100 + 5 + 50 + 3 + 2 + 1);
        assert_eq!(m.total, m.busy + 1020);
        assert_eq!(parse_machine_ticks("intr 1 2 3\n"), None);
    }
}
