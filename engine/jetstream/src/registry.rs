//! What every shard may ask about streams: names, configs, owners and live figures. Streams
//! are owned by one shard each; the registry is how the others (the API service, account-wide
//! answers, overlap checks) see them without a round trip. Control path only: the lock is
//! taken per API request, never per message (the figures are atomics the owner stores).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tachyon_core::accounts::AccountId;

use crate::config::StreamConfig;

/// A stream's state as its owner last published it (after each batch, purge or delete).
#[derive(Debug, Default)]
pub struct StreamFigures {
    pub msgs: AtomicU64,
    pub bytes: AtomicU64,
    pub first_seq: AtomicU64,
    pub first_ts: AtomicI64,
    pub last_seq: AtomicU64,
    pub last_ts: AtomicI64,
    pub num_deleted: AtomicU64,
    pub num_subjects: AtomicU64,
    /// Its consumers (not part of the store's state).
    pub consumers: AtomicU64,
}

/// One snapshot of [`StreamFigures`]: the store's state as the stream publishes it.
pub type Figures = tachyon_storage::StreamState;

impl StreamFigures {
    pub fn store(&self, f: &Figures) {
        self.msgs.store(f.msgs, Ordering::Relaxed);
        self.bytes.store(f.bytes, Ordering::Relaxed);
        self.first_seq.store(f.first_seq, Ordering::Relaxed);
        self.first_ts.store(f.first_ts, Ordering::Relaxed);
        self.last_seq.store(f.last_seq, Ordering::Relaxed);
        self.last_ts.store(f.last_ts, Ordering::Relaxed);
        self.num_deleted.store(f.num_deleted, Ordering::Relaxed);
        self.num_subjects.store(f.num_subjects, Ordering::Relaxed);
    }

    pub fn consumer_count(&self) -> usize {
        self.consumers.load(Ordering::Relaxed) as usize
    }

    pub fn load(&self) -> Figures {
        Figures {
            msgs: self.msgs.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            first_seq: self.first_seq.load(Ordering::Relaxed),
            first_ts: self.first_ts.load(Ordering::Relaxed),
            last_seq: self.last_seq.load(Ordering::Relaxed),
            last_ts: self.last_ts.load(Ordering::Relaxed),
            num_deleted: self.num_deleted.load(Ordering::Relaxed),
            num_subjects: self.num_subjects.load(Ordering::Relaxed),
        }
    }
}

/// A stream as the registry lists it.
#[derive(Debug, Clone)]
pub struct StreamEntry {
    pub config: StreamConfig,
    /// The shard that holds its store and answers its requests.
    pub owner: u16,
    /// Creation time, nanoseconds since the Unix epoch.
    pub created: i64,
    pub figures: Arc<StreamFigures>,
    /// False while the owner is still opening it (a create in progress, or a delete).
    pub ready: bool,
}

/// An account's JetStream: its streams by name, and API counters.
#[derive(Debug, Default)]
pub struct AccountStreams {
    pub streams: BTreeMap<String, StreamEntry>,
}

#[derive(Debug, Default)]
pub struct ApiCounters {
    pub total: AtomicU64,
    pub errors: AtomicU64,
}

impl ApiCounters {
    /// One API request answered (`failed`: with an error).
    pub fn count(&self, failed: bool) {
        self.total.fetch_add(1, Ordering::Relaxed);
        if failed {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[derive(Default)]
pub struct Registry {
    accounts: Mutex<BTreeMap<AccountId, AccountStreams>>,
    /// Per account, indexed by account id (sized at start).
    api: Vec<ApiCounters>,
}

impl Registry {
    pub fn new(accounts: usize) -> Registry {
        Registry {
            accounts: Mutex::new(BTreeMap::new()),
            api: (0..accounts.max(1))
                .map(|_| ApiCounters::default())
                .collect(),
        }
    }

    /// The registry, locked. A panic elsewhere while it was held leaves a consistent map (each
    /// change is one insert or remove), so a poisoned lock is taken over rather than spread.
    pub fn lock(&self) -> MutexGuard<'_, BTreeMap<AccountId, AccountStreams>> {
        self.accounts.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn api(&self, account: AccountId) -> Option<&ApiCounters> {
        self.api.get(account as usize)
    }

    /// A copy of one stream's entry.
    pub fn get(&self, account: AccountId, name: &str) -> Option<StreamEntry> {
        self.lock()
            .get(&account)
            .and_then(|a| a.streams.get(name))
            .cloned()
    }

    /// Streams per shard, for placing a new one on the least loaded shard.
    pub fn load_per_shard(&self, shards: usize) -> Vec<usize> {
        let mut load = vec![0; shards.max(1)];
        for a in self.lock().values() {
            for s in a.streams.values() {
                if let Some(n) = load.get_mut(s.owner as usize) {
                    *n += 1;
                }
            }
        }
        load
    }
}
