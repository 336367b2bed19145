//! CPU masks for side-by-side runs that give the server and the load generator cores of their
//! own (`compare --server-cpus 1 --client-cpus 0`): on a small host the client otherwise takes
//! CPU from whichever server it drives, and a ratio then mixes server and client cost.
//!
//! A process inherits the mask of the thread that starts it, so masks are set on the calling
//! thread: [`set_current`] for the harness (its load threads and `natsbench` inherit it), and
//! [`inside`] around a server's start.

use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
use nix::unistd::Pid;

use crate::error::{BenchError, Result};

/// `taskset -c` syntax: `1`, `0,2`, `0-3`, `0-1,4`.
pub fn parse_list(text: &str) -> Result<Vec<usize>> {
    let bad = || BenchError::Config(format!("not a CPU list: {text:?} (e.g. 1, 0,2 or 0-3)"));
    let mut cpus = Vec::new();
    for part in text.split(',').map(str::trim) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let a: usize = a.trim().parse().map_err(|_| bad())?;
        let b: usize = b.trim().parse().map_err(|_| bad())?;
        if a > b || b >= CpuSet::count() {
            return Err(bad());
        }
        cpus.extend(a..=b);
    }
    cpus.sort_unstable();
    cpus.dedup();
    Ok(cpus)
}

/// The CPUs the calling thread may run on.
pub fn current() -> Result<Vec<usize>> {
    let set = sched_getaffinity(Pid::from_raw(0))
        .map_err(|e| BenchError::Config(format!("cannot read the CPU mask: {e}")))?;
    Ok((0..CpuSet::count())
        .filter(|&c| set.is_set(c).unwrap_or(false))
        .collect())
}

/// Confines the calling thread (and what it starts from now on) to `cpus`.
pub fn set_current(cpus: &[usize]) -> Result<()> {
    let mut set = CpuSet::new();
    for &c in cpus {
        set.set(c)
            .map_err(|e| BenchError::Config(format!("CPU {c}: {e}")))?;
    }
    sched_setaffinity(Pid::from_raw(0), &set)
        .map_err(|e| BenchError::Config(format!("cannot run on CPUs {cpus:?}: {e}")))
}

/// Runs `f` (which starts a process) with the calling thread confined to `cpus`, then puts the
/// thread's own mask back. `None` runs `f` as is.
pub fn inside<T>(cpus: Option<&[usize]>, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let Some(cpus) = cpus else { return f() };
    let before = current()?;
    set_current(cpus)?;
    let out = f();
    set_current(&before)?;
    out
}

/// How a mask is shown in a report: `0-1,4`.
pub fn show(cpus: &[usize]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let mut j = i;
        while j + 1 < cpus.len() && cpus[j + 1] == cpus[j] + 1 {
            j += 1;
        }
        out.push(if i == j {
            cpus[i].to_string()
        } else {
            format!("{}-{}", cpus[i], cpus[j])
        });
        i = j + 1;
    }
    out.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_parse_as_taskset_reads_them() {
        assert_eq!(parse_list("1").unwrap(), vec![1]);
        assert_eq!(parse_list("0,2").unwrap(), vec![0, 2]);
        assert_eq!(parse_list("0-3,2").unwrap(), vec![0, 1, 2, 3]);
        assert_eq!(show(&[0, 1, 2, 4, 6, 7]), "0-2,4,6-7");
        for bad in ["", "a", "3-1", "1-", "99999"] {
            assert!(parse_list(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_process_started_inside_a_mask_inherits_it() {
        let mine = current().unwrap();
        let one = [*mine.last().unwrap()];
        let child = inside(Some(&one), || {
            std::process::Command::new("sleep")
                .arg("2")
                .spawn()
                .map_err(BenchError::from)
        })
        .unwrap();
        // The thread's own mask is back.
        assert_eq!(current().unwrap(), mine);
        let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
        let list = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .unwrap();
        assert_eq!(parse_list(list.trim()).unwrap(), one);
        let mut child = child;
        let _ = child.kill();
        let _ = child.wait();
    }
}
