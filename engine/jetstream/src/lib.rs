//! JetStream on the shards (DESIGN.md, "JetStream"; ARCHITECTURE.md says where each part runs).
//! Depends on the shard core and the storage crate; neither knows of it.
//!
//! - Each stream is owned by one shard ([`stream::StreamTask`]): its store, dedupe window,
//!   publish acks, and the API requests that name it (its owner subscribes them directly, so
//!   they reach it over the ordinary rings from any shard).
//! - Shard 0 runs the account-wide API ([`service`]): INFO, stream create, names and list,
//!   and "stream not found" for streams nobody owns. It places a new stream on the shard with
//!   the fewest and hands the create over through that shard's command queue.
//! - The [`registry::Registry`] lets any shard see every stream (configs, owners, figures).

pub mod acks;
pub mod api;
pub mod config;
pub mod consumer;
mod consumer_api;
pub mod consumer_config;
pub mod errors;
pub mod limits;
mod meta;
pub mod offload;
pub mod registry;
mod reply;
mod service;
pub mod stream;
mod ttl;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tachyon_core::accounts::AccountId;
use tachyon_core::doorbell::{self, BellReceiver, Doorbell};
use tachyon_core::shard::tasks::ShardParts;
use tachyon_core::shard::Shard;
use tachyon_storage::SyncPolicy;

use crate::api::AccountLimits;
use crate::config::StreamConfig;
use crate::errors::ApiError;
use crate::registry::Registry;

/// The API level of the nats-server version Tachyon claims (2.12 → 2).
pub const API_LEVEL: u32 = 2;

/// JetStream's settings, as the server resolved them from flags and config.
#[derive(Debug, Clone, Default)]
pub struct JsSettings {
    /// Where streams live: `<store_dir>/jetstream` as nats-server lays it out.
    pub store_dir: PathBuf,
    pub max_memory: i64,
    pub max_store: i64,
    pub strict: bool,
    pub domain: Option<String>,
    /// `Always` (Tachyon's default: an ack means fdatasync'd) or nats-server's interval.
    pub sync: SyncPolicy,
    /// The nats-server version Tachyon claims, for stream metadata.
    pub version: String,
    /// The server's name: a stream's `cluster.leader` in INFO.
    pub server_name: String,
}

/// What a shard's JetStream task is asked to do by another shard.
pub(crate) enum Command {
    /// Open (create) a stream placed here and answer the create request.
    Create {
        account: AccountId,
        config: Box<StreamConfig>,
        reply: Option<Bytes>,
        created: i64,
    },
    /// Delete a stream this shard owns and answer the request.
    Delete {
        account: AccountId,
        name: String,
        reply: Option<Bytes>,
    },
}

struct ShardQueue {
    commands: Mutex<VecDeque<Command>>,
    bell: Doorbell,
}

/// JetStream for the whole process.
pub struct JetStream {
    pub settings: JsSettings,
    pub registry: Registry,
    shards: usize,
    /// By account id: the limits of an account JetStream serves, `None` for the others.
    limits: Vec<Option<AccountLimits>>,
    /// Bytes the streams hold, per account and server, for the publish limit checks.
    pub usage: limits::Usage,
    /// When the server's limits were last reported exceeded (ns), to log it once per 10 s.
    resources_alert: std::sync::atomic::AtomicI64,
    queues: Vec<ShardQueue>,
    receivers: Mutex<Vec<Option<BellReceiver>>>,
}

impl JetStream {
    /// JetStream over `shards` shards for the accounts whose ids have limits in `limits`.
    pub fn new(
        settings: JsSettings,
        shards: usize,
        limits: Vec<Option<AccountLimits>>,
    ) -> std::io::Result<Self> {
        let mut queues = Vec::with_capacity(shards);
        let mut receivers = Vec::with_capacity(shards);
        for _ in 0..shards {
            let (bell, rx) = doorbell::doorbell()?;
            queues.push(ShardQueue {
                commands: Mutex::new(VecDeque::new()),
                bell,
            });
            receivers.push(Some(rx));
        }
        Ok(JetStream {
            settings,
            registry: Registry::new(limits.len()),
            usage: limits::Usage::new(limits.len()),
            resources_alert: std::sync::atomic::AtomicI64::new(0),
            shards,
            limits,
            queues,
            receivers: Mutex::new(receivers),
        })
    }

    /// An API subject (`$JS.API.…`) as served: itself, and with a domain also its
    /// `$JS.<domain>.API.…` form, which clients of that domain send (`nc.jetstream(domain)`).
    pub fn api_subjects(&self, subject: &str) -> Vec<String> {
        let mut v = vec![subject.to_string()];
        if let (Some(d), Some(rest)) = (&self.settings.domain, subject.strip_prefix("$JS.API.")) {
            v.push(format!("$JS.{d}.API.{rest}"));
        }
        v
    }

    /// The `$JS.API.…` form of a subject received in either form.
    pub fn local_api_subject<'a>(&self, subject: &'a [u8]) -> std::borrow::Cow<'a, [u8]> {
        if let Some(d) = &self.settings.domain {
            let prefix = format!("$JS.{d}.API.");
            if let Some(rest) = subject.strip_prefix(prefix.as_bytes()) {
                let mut v = b"$JS.API.".to_vec();
                v.extend_from_slice(rest);
                return std::borrow::Cow::Owned(v);
            }
        }
        std::borrow::Cow::Borrowed(subject)
    }

    pub fn enabled_for(&self, account: AccountId) -> bool {
        self.limits_of(account).is_some()
    }

    /// Where an account's file streams live.
    pub fn account_dir(&self, account_name: &str) -> PathBuf {
        self.settings.store_dir.join(account_name).join("streams")
    }

    pub(crate) fn send(&self, shard: u16, cmd: Command) {
        if let Some(q) = self.queues.get(shard as usize) {
            q.commands
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push_back(cmd);
            q.bell.ring();
        }
    }

    fn take_command(&self, shard: u16) -> Option<Command> {
        self.queues.get(shard as usize).and_then(|q| {
            q.commands
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .pop_front()
        })
    }

    fn has_command(&self, shard: u16) -> bool {
        self.queues.get(shard as usize).is_some_and(|q| {
            !q.commands
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_empty()
        })
    }

    /// Refuses a config whose subjects overlap another stream's in the account (`except` is
    /// the stream being updated).
    pub(crate) fn check_overlap(
        &self,
        account: AccountId,
        cfg: &StreamConfig,
        except: Option<&str>,
    ) -> Result<(), ApiError> {
        let reg = self.registry.lock();
        let Some(acc) = reg.get(&account) else {
            return Ok(());
        };
        for (name, s) in &acc.streams {
            if Some(name.as_str()) == except {
                continue;
            }
            for a in &cfg.subjects {
                for b in &s.config.subjects {
                    if config::subjects_overlap(a, b) {
                        return Err(errors::STREAM_SUBJECT_OVERLAP.err());
                    }
                }
            }
        }
        Ok(())
    }

    /// The shard with the fewest streams.
    pub(crate) fn place(&self) -> u16 {
        let load = self.registry.load_per_shard(self.shards);
        load.iter()
            .enumerate()
            .min_by_key(|(_, n)| **n)
            .map_or(0, |(i, _)| i as u16)
    }
}

/// Nanoseconds since the Unix epoch.
pub fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// Runs JetStream on every shard: at start each shard recovers the streams placed on it and
/// subscribes them (the start barrier then makes the interest visible before any client is
/// accepted), shard 0 starts the API service, and each shard waits for commands.
pub fn install(parts: &mut [ShardParts], js: Arc<JetStream>) {
    let recovered = meta::recover(&js);
    let mut per_shard: Vec<Vec<meta::Recovered>> = (0..parts.len()).map(|_| Vec::new()).collect();
    for (i, r) in recovered.into_iter().enumerate() {
        let n = per_shard.len().max(1);
        if let Some(v) = per_shard.get_mut(i % n) {
            v.push(r);
        }
    }
    for (part, mine) in parts.iter_mut().zip(per_shard) {
        let js = js.clone();
        let receiver = js
            .receivers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(part.id)
            .and_then(Option::take);
        let mine = Mutex::new(mine);
        part.on_start.push(Box::new(move |shard: Rc<Shard>| {
            let mine = std::mem::take(&mut *mine.lock().unwrap_or_else(|p| p.into_inner()));
            Box::pin(async move {
                for r in mine {
                    meta::open_recovered(&js, &shard, r).await;
                }
                if shard.id == 0 {
                    service::start(&js, &shard);
                }
                if let Some(rx) = receiver {
                    glommio::spawn_local(service::commands(js.clone(), shard.clone(), rx)).detach();
                }
                glommio::spawn_local(maintenance(js.clone(), shard.clone())).detach();
                // Every shard applies this shard's stream and API interest before any shard
                // accepts a client: a publish right after connecting is stored.
                shard.barrier().await;
            })
        }));
        // At shutdown each shard saves its consumers' state (between saves it is written
        // at most once a second while it changes).
        part.on_stop.push(Box::new(|_shard: Rc<Shard>| {
            Box::pin(async move {
                service::save_consumers().await;
            })
        }));
    }
}

/// Once a second: age limits, interval syncs, compaction, on the streams this shard owns.
async fn maintenance(_js: Arc<JetStream>, shard: Rc<Shard>) {
    loop {
        glommio::timer::sleep(Duration::from_secs(1)).await;
        service::maintain(&shard);
    }
}
