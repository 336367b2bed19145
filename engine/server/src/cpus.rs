//! The CPUs this process may run on: its affinity mask, as `taskset`, a cgroup cpuset or a
//! container runtime sets it. Shards are pinned inside that mask, never outside it: pinning
//! shard `i` to CPU `i` of the machine would put a server started with `taskset -c 1` on CPU 0,
//! beside whatever the operator kept off CPU 1.

use nix::sched::{sched_getaffinity, CpuSet};
use nix::unistd::Pid;

/// The CPU ids this process may run on, in ascending order; empty when the mask cannot be read.
pub fn allowed() -> Vec<usize> {
    match sched_getaffinity(Pid::from_raw(0)) {
        Ok(set) => (0..CpuSet::count())
            .filter(|&cpu| set.is_set(cpu).unwrap_or(false))
            .collect(),
        Err(e) => {
            tracing::warn!("cannot read the CPU affinity mask ({e}); shards are not pinned");
            Vec::new()
        }
    }
}

/// The CPU shard `id` of `shards` is pinned to: the `id`-th allowed CPU when every shard has
/// one of its own, else none (the shards share the allowed CPUs as the kernel schedules them).
pub fn for_shard(id: usize, shards: usize, allowed: &[usize]) -> Option<usize> {
    assert!(id < shards, "shard {id} of {shards}");
    (shards <= allowed.len()).then(|| allowed[id])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_take_the_allowed_cpus_in_order() {
        // `taskset -c 1,3`: two shards on 1 and 3, never on 0.
        assert_eq!(for_shard(0, 2, &[1, 3]), Some(1));
        assert_eq!(for_shard(1, 2, &[1, 3]), Some(3));
        assert_eq!(for_shard(0, 1, &[1, 3]), Some(1));
        // More shards than CPUs: none pinned.
        assert_eq!(for_shard(0, 3, &[1, 3]), None);
        assert_eq!(for_shard(2, 3, &[1, 3]), None);
        assert_eq!(for_shard(0, 1, &[]), None);
    }

    #[test]
    fn this_process_may_run_somewhere() {
        let cpus = allowed();
        assert!(!cpus.is_empty());
        assert!(cpus.windows(2).all(|w| w[0] < w[1]), "{cpus:?}");
        assert_eq!(
            cpus.len(),
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            "the mask and the standard library disagree"
        );
    }
}
