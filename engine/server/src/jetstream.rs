//! Turning JetStream on at start, as nats-server does: its settings from flags and config, its
//! log lines (tools wait for them), and which accounts it serves.

use std::path::PathBuf;
use std::sync::Arc;

use tachyon_config::{JsSync, Options, NATS_VERSION};
use tachyon_core::accounts::Accounts;
use tachyon_core::shard::tasks::ShardParts;
use tachyon_jetstream::api::AccountLimits;
use tachyon_jetstream::{JetStream, JsSettings, API_LEVEL};
use tachyon_storage::SyncPolicy;

/// nats-server's default when the host's memory cannot be read: 256 MiB.
const MAX_MEM_DEFAULT: i64 = 256 << 20;
/// nats-server's default disk limit when the file system cannot be asked: 1 TiB.
const MAX_STORE_DEFAULT: i64 = 1 << 40;

/// JetStream's settings, or `None` when it is off.
pub fn settings(opts: &Options) -> Option<JsSettings> {
    let js = opts.jetstream.as_ref().filter(|j| j.enabled)?;
    // `-sd` on the command line wins over the file's, as `store_dir` is one option there.
    let given = opts
        .store_dir
        .clone()
        .filter(|_| opts.explicit.contains(&"store_dir"))
        .or_else(|| js.store_dir.clone())
        .or_else(|| opts.store_dir.clone());
    let store_dir = match &given {
        Some(d) => d.join("jetstream"),
        None => std::env::temp_dir().join("nats").join("jetstream"),
    };
    let max_memory = js
        .max_memory_store
        .filter(|m| *m >= 0)
        .unwrap_or_else(|| system_memory().map_or(MAX_MEM_DEFAULT, |m| m / 4 * 3));
    let max_store = js
        .max_file_store
        .filter(|m| *m >= 0)
        .unwrap_or_else(|| disk_available(&store_dir).unwrap_or(MAX_STORE_DEFAULT));
    let sync = match js.sync {
        None | Some(JsSync::Always) => SyncPolicy::Always,
        Some(JsSync::Interval(d)) => SyncPolicy::Interval(d),
    };
    Some(JsSettings {
        store_dir,
        max_memory,
        max_store,
        strict: js.strict.unwrap_or(true),
        domain: js.domain.clone().filter(|d| !d.is_empty()),
        sync,
        version: NATS_VERSION.to_string(),
        server_name: String::new(),
    })
}

/// nats-server's `compress_ok`, which its `/jsz` and `/varz` report: set unless it built a
/// dynamic config, i.e. only when both `max_memory_store` and `max_file_store` are above 0.
pub fn compress_ok(opts: &Options) -> bool {
    opts.jetstream.as_ref().is_some_and(|j| {
        j.max_memory_store.is_some_and(|m| m > 0) && j.max_file_store.is_some_and(|m| m > 0)
    })
}

/// Logs nats-server's JetStream start-up lines.
pub fn log_start(s: &JsSettings, temporary: bool) {
    tracing::info!("Starting JetStream");
    if temporary {
        tracing::warn!("Temporary storage directory used, data could be lost on system reboot");
    }
    for line in [
        "    _ ___ _____ ___ _____ ___ ___   _   __  __",
        " _ | | __|_   _/ __|_   _| _ \\ __| /_\\ |  \\/  |",
        "| || | _|  | | \\__ \\ | | |   / _| / _ \\| |\\/| |",
        " \\__/|___| |_| |___/ |_| |_|_\\___/_/ \\_\\_|  |_|",
        "",
        "         https://docs.nats.io/jetstream",
        "",
        "---------------- JETSTREAM ----------------",
    ] {
        tracing::info!("{line}");
    }
    if s.strict {
        tracing::info!("  Strict:          true");
    }
    tracing::info!("  Max Memory:      {}", friendly_bytes(s.max_memory));
    tracing::info!("  Max Storage:     {}", friendly_bytes(s.max_store));
    tracing::info!("  Store Directory: \"{}\"", s.store_dir.display());
    if let Some(d) = &s.domain {
        tracing::info!("  Domain:          {d}");
    }
    tracing::info!("  API Level:       {API_LEVEL}");
    tracing::info!("-------------------------------------------");
}

/// Which accounts JetStream serves, by id, and their limits: only the global account (without
/// limits of its own) when no accounts are configured; otherwise those whose block says
/// `jetstream`.
pub fn account_limits(opts: &Options, accounts: &Accounts) -> Vec<Option<AccountLimits>> {
    let n = accounts.len().max(1);
    if opts.accounts.is_empty() {
        let mut v = vec![None; n];
        v[tachyon_core::accounts::GLOBAL as usize] = Some(AccountLimits::default());
        return v;
    }
    (0..n)
        .map(|id| {
            let name = accounts.name(id as tachyon_core::accounts::AccountId);
            opts.accounts
                .iter()
                .find(|a| a.name == name)
                .and_then(|a| a.jetstream)
                .map(|l| AccountLimits {
                    max_memory: l.max_memory,
                    max_storage: l.max_store,
                    max_streams: l.max_streams,
                    max_consumers: l.max_consumers,
                    max_ack_pending: l.max_ack_pending,
                    memory_max_stream_bytes: l.memory_max_stream_bytes,
                    storage_max_stream_bytes: l.store_max_stream_bytes,
                    max_bytes_required: l.max_bytes_required,
                })
        })
        .collect()
}

/// Starts JetStream on the shards (recovery runs in each shard's start hook).
pub fn install(
    parts: &mut [ShardParts],
    s: JsSettings,
    limits: Vec<Option<AccountLimits>>,
) -> Result<Arc<JetStream>, String> {
    // nats-server refuses to start when the accounts' own limits add up to more than the
    // server has ("Can't start JetStream: ...").
    tachyon_jetstream::limits::sufficient(&s, &limits).map_err(|e| {
        format!(
            "Error enabling jetstream on configured accounts: {} ({})",
            e.description, e.err_code
        )
    })?;
    std::fs::create_dir_all(&s.store_dir).map_err(|e| e.to_string())?;
    let js = Arc::new(JetStream::new(s, parts.len(), limits).map_err(|e| e.to_string())?);
    tachyon_jetstream::install(parts, js.clone());
    Ok(js)
}

/// Go's `friendlyBytes`: "512 B", "1.50 KB", "17.85 GB".
pub fn friendly_bytes(bytes: i64) -> String {
    let f = bytes as f64;
    if f < 1024.0 {
        return format!("{f} B");
    }
    let exp = (f.ln() / 1024f64.ln()) as i32;
    let pre = ["K", "M", "G", "T", "P", "E"];
    let unit = pre.get((exp - 1).max(0) as usize).unwrap_or(&"E");
    format!("{:.2} {unit}B", f / 1024f64.powi(exp))
}

fn system_memory() -> Option<i64> {
    // SAFETY: sysconf reads process-independent constants and has no memory effects.
    let (pages, size) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    (pages > 0 && size > 0).then(|| pages.saturating_mul(size))
}

fn disk_available(dir: &std::path::Path) -> Option<i64> {
    let mut probe: PathBuf = dir.to_path_buf();
    while !probe.exists() {
        probe = probe.parent()?.to_path_buf();
    }
    let c = std::ffi::CString::new(probe.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: statvfs is plain old data; all-zero is a valid value that the call overwrites.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a valid out pointer.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    i64::try_from((st.f_bavail as u128 * st.f_frsize as u128).min(i64::MAX as u128)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn friendly_bytes_reads_like_go() {
        assert_eq!(friendly_bytes(512), "512 B");
        assert_eq!(friendly_bytes(1536), "1.50 KB");
        assert_eq!(friendly_bytes(1 << 30), "1.00 GB");
        assert_eq!(friendly_bytes(MAX_STORE_DEFAULT), "1.00 TB");
    }
}
