//! A file stream on disk: `<store_dir>/jetstream/<account>/streams/<stream>/` holds
//! `meta.json` (its config and creation time, with a checksum) and `msgs/` (the store).
//! Memory streams are not recovered, as in nats-server.

use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tachyon_core::shard::Shard;
use tachyon_storage::{ByteAccounting, FileStore, FileStoreConfig, SyncPolicy};

use crate::config::StreamConfig;
use crate::stream::{Backend, Opened, StreamTask};
use crate::JetStream;

const META: &str = "meta.json";
const MSGS: &str = "msgs";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Meta {
    pub config: StreamConfig,
    pub created: i64,
}

#[derive(Serialize, Deserialize)]
struct OnDisk {
    meta: Meta,
    /// CRC32C of `meta` as JSON: a torn or edited file is refused, not half-read.
    checksum: u32,
}

impl Meta {
    /// Writes `meta.json` atomically (tmp, fsync, rename, directory fsync).
    pub fn save(&self, dir: &Path) -> std::io::Result<()> {
        use std::io::Write;
        std::fs::create_dir_all(dir)?;
        let body = serde_json::to_vec(self).map_err(std::io::Error::other)?;
        let disk = OnDisk {
            meta: self.clone(),
            checksum: crc32c::crc32c(&body),
        };
        let bytes = serde_json::to_vec(&disk).map_err(std::io::Error::other)?;
        let tmp = dir.join("meta.json.tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, dir.join(META))?;
        std::fs::File::open(dir)?.sync_all()
    }

    pub fn load(dir: &Path) -> std::io::Result<Meta> {
        let bytes = std::fs::read(dir.join(META))?;
        let disk: OnDisk = serde_json::from_slice(&bytes).map_err(std::io::Error::other)?;
        let body = serde_json::to_vec(&disk.meta).map_err(std::io::Error::other)?;
        if crc32c::crc32c(&body) != disk.checksum {
            return Err(std::io::Error::other("checksum mismatch"));
        }
        Ok(disk.meta)
    }
}

/// A stream found on disk at start, not opened yet.
pub(crate) struct Recovered {
    account: String,
    dir: PathBuf,
    meta: Meta,
}

/// Lists the streams under the store directory (their stores open on their shards).
pub(crate) fn recover(js: &JetStream) -> Vec<Recovered> {
    let mut out = Vec::new();
    let Ok(accounts) = std::fs::read_dir(&js.settings.store_dir) else {
        return out;
    };
    for acc in accounts.flatten() {
        let account = acc.file_name().to_string_lossy().into_owned();
        let Ok(streams) = std::fs::read_dir(acc.path().join("streams")) else {
            continue;
        };
        for s in streams.flatten() {
            let dir = s.path();
            match Meta::load(&dir) {
                Ok(meta) => out.push(Recovered {
                    account: account.clone(),
                    dir,
                    meta,
                }),
                Err(e) => tracing::warn!(
                    "JetStream: skipping stream in {}: metadata unreadable ({e})",
                    dir.display()
                ),
            }
        }
    }
    out.sort_by(|a, b| (&a.account, &a.meta.config.name).cmp(&(&b.account, &b.meta.config.name)));
    out
}

/// The store configuration a stream's file store opens with.
pub(crate) fn file_config(js: &JetStream, cfg: &StreamConfig) -> FileStoreConfig {
    FileStoreConfig {
        limits: cfg.limits(),
        sync: js.settings.sync,
        // `state.bytes` and `max_bytes` as nats-server's file store counts them.
        accounting: ByteAccounting::NatsFile,
        ..FileStoreConfig::default()
    }
}

/// Opens one file stream's store off the executor.
pub(crate) async fn open_file(
    js: &JetStream,
    dir: PathBuf,
    cfg: &StreamConfig,
) -> Result<FileStore, String> {
    let fc = file_config(js, cfg);
    let msgs = dir.join(MSGS);
    let r = crate::offload::off_executor(move || FileStore::open_fs(msgs, fc)).await;
    match r {
        Some(Ok(f)) => Ok(f),
        Some(Err(e)) => Err(e.to_string()),
        None => Err("the store panicked while opening".into()),
    }
}

/// Opens a recovered stream on this shard and starts it.
pub(crate) async fn open_recovered(js: &Arc<JetStream>, shard: &Rc<Shard>, r: Recovered) {
    let account = if r.account == "$G" {
        Some(tachyon_core::accounts::GLOBAL)
    } else {
        shard.global.accounts.id(&r.account)
    };
    let Some(account) = account.filter(|a| js.enabled_for(*a)) else {
        tracing::warn!(
            "JetStream: stream '{} > {}' belongs to no JetStream account here; left on disk",
            r.account,
            r.meta.config.name
        );
        return;
    };
    let name = r.meta.config.name.clone();
    let store = match open_file(js, r.dir.clone(), &r.meta.config).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(
                "JetStream: stream '{} > {name}' failed to open: {e}",
                r.account
            );
            return;
        }
    };
    // Only a store that never took a message: a crash came between writing the metadata of a
    // stream created with a first sequence and moving its store there.
    let backend = match crate::stream::start_at(
        Backend::File(Box::new(store)),
        r.meta.config.first_seq,
    )
    .await
    {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(
                "JetStream: stream '{} > {name}' failed to move to its first sequence: {e}",
                r.account
            );
            return;
        }
    };
    let st = tachyon_storage::Store::state(backend.store());
    tracing::info!(
        "  Restored {} messages for stream '{} > {name}'",
        st.msgs,
        r.account
    );
    let opened = Opened {
        config: r.meta.config,
        created: r.meta.created,
        backend,
        dir: Some(r.dir),
    };
    match StreamTask::start(js, shard, account, opened) {
        Ok(t) => {
            crate::consumer_api::recover(&t).await;
            crate::service::adopt(t)
        }
        Err(e) => tracing::error!(
            "JetStream: stream '{} > {name}' failed to start: {}",
            r.account,
            e.description
        ),
    }
}

/// Whether a sync policy needs the once-a-second `sync` call (nats-server's interval).
pub(crate) fn syncs_on_timer(p: SyncPolicy) -> bool {
    matches!(p, SyncPolicy::Interval(_))
}
