//! Account and server limits, checked where and as nats-server checks them (one server, no
//! tiers): at start (the accounts' own limits must fit the server's), on stream create and
//! update (stream count, reserved `max_bytes`, per-stream byte caps), and on each publish
//! (bytes in use, per account and per server).
//!
//! Reservations are computed from the registry on the control path. Bytes in use are atomics
//! each stream's owner moves by the change in its stored bytes when it publishes its figures
//! (after a batch, not per message); a publish is checked against them plus what its own batch
//! has queued.

use std::sync::atomic::{AtomicI64, Ordering};

use tachyon_core::accounts::AccountId;

use crate::api::AccountLimits;
use crate::config::StreamConfig;
use crate::errors::{self, ApiError};
use crate::registry::AccountStreams;
use crate::{JetStream, JsSettings};

/// Bytes in use, memory and file, per account and for the server.
#[derive(Debug, Default)]
pub struct Usage {
    accounts: Vec<[AtomicI64; 2]>,
    server: [AtomicI64; 2],
}

fn slot(memory: bool) -> usize {
    usize::from(!memory)
}

impl Usage {
    pub fn new(accounts: usize) -> Usage {
        Usage {
            accounts: (0..accounts.max(1)).map(|_| Default::default()).collect(),
            server: Default::default(),
        }
    }

    /// A stream of `account` now holds `delta` more bytes (negative: fewer).
    pub fn add(&self, account: AccountId, memory: bool, delta: i64) {
        if delta == 0 {
            return;
        }
        if let Some(a) = self.accounts.get(account as usize) {
            a[slot(memory)].fetch_add(delta, Ordering::Relaxed);
        }
        self.server[slot(memory)].fetch_add(delta, Ordering::Relaxed);
    }

    pub fn account(&self, account: AccountId, memory: bool) -> i64 {
        self.accounts
            .get(account as usize)
            .map_or(0, |a| a[slot(memory)].load(Ordering::Relaxed).max(0))
    }

    pub fn server(&self, memory: bool) -> i64 {
        self.server[slot(memory)].load(Ordering::Relaxed).max(0)
    }
}

/// nats-server's `sufficientResources` at start: the accounts' own memory and storage limits
/// together must fit within the server's.
pub fn sufficient(s: &JsSettings, limits: &[Option<AccountLimits>]) -> Result<(), ApiError> {
    let (mut mem, mut store) = (0i64, 0i64);
    for l in limits.iter().flatten() {
        mem = mem.saturating_add(l.max_memory.max(0));
        store = store.saturating_add(l.max_storage.max(0));
    }
    if mem > s.max_memory {
        return Err(errors::MEMORY_RESOURCES_EXCEEDED.err());
    }
    if store > s.max_store {
        return Err(errors::STORAGE_RESOURCES_EXCEEDED.err());
    }
    Ok(())
}

/// The account's per-stream byte rules, part of nats-server's `checkStreamCfg`: `max_bytes`
/// required, and at most the account's per-stream cap for the storage type.
pub fn check_max_bytes(l: &AccountLimits, cfg: &StreamConfig) -> Result<(), ApiError> {
    let cap = if cfg.is_memory() {
        l.memory_max_stream_bytes
    } else {
        l.storage_max_stream_bytes
    };
    if l.max_bytes_required && cfg.max_bytes <= 0 {
        return Err(errors::STREAM_MAX_BYTES_REQUIRED.err());
    }
    if cap > 0 && cfg.max_bytes > cap {
        return Err(errors::STREAM_MAX_STREAM_BYTES_EXCEEDED.err());
    }
    Ok(())
}

/// `max_bytes` the account's other streams of this storage type reserve.
fn reserved_by_others(acc: Option<&AccountStreams>, cfg: &StreamConfig) -> i64 {
    acc.map_or(0, |a| {
        a.streams
            .iter()
            .filter(|(name, s)| **name != cfg.name && s.config.is_memory() == cfg.is_memory())
            .map(|(_, s)| s.config.max_bytes.max(0))
            .fold(0i64, i64::saturating_add)
    })
}

impl JetStream {
    /// The account's limits; `None` when JetStream does not serve it.
    pub fn limits_of(&self, account: AccountId) -> Option<&AccountLimits> {
        self.limits.get(account as usize).and_then(Option::as_ref)
    }

    /// Consumers of all the account's streams.
    pub fn account_consumers(&self, account: AccountId) -> usize {
        self.registry.lock().get(&account).map_or(0, |a| {
            a.streams.values().map(|s| s.figures.consumer_count()).sum()
        })
    }

    /// `max_bytes` every stream on the server reserves, of one storage type.
    fn server_reserved(&self, memory: bool) -> i64 {
        self.registry
            .lock()
            .values()
            .flat_map(|a| a.streams.values())
            .filter(|s| s.config.is_memory() == memory)
            .map(|s| s.config.max_bytes.max(0))
            .fold(0i64, i64::saturating_add)
    }

    /// nats-server's `checkBytesLimits`: `add` more reserved bytes (a config's `max_bytes`, 1
    /// when unlimited) fit within the account's limit beside `reserved`, and within the
    /// server's beside every reservation.
    fn check_bytes(
        &self,
        l: &AccountLimits,
        memory: bool,
        add: i64,
        reserved: i64,
    ) -> Result<(), ApiError> {
        let add = if add < 0 { 1 } else { add };
        let (limit, max, err) = if memory {
            (
                l.max_memory,
                self.settings.max_memory,
                errors::MEMORY_RESOURCES_EXCEEDED,
            )
        } else {
            (
                l.max_storage,
                self.settings.max_store,
                errors::STORAGE_RESOURCES_EXCEEDED,
            )
        };
        if limit >= 0 && (reserved > limit || add > limit - reserved) {
            return Err(err.err());
        }
        let server = self.server_reserved(memory);
        if server > max || add > max - server {
            return Err(err.err());
        }
        Ok(())
    }

    /// nats-server's checks of a create before the stream is made
    /// (`jsNonClusteredStreamLimitsCheck` on the config as sent, then `checkAllLimits` in
    /// `addStream` with defaults applied): the stream count, consumers per stream, and bytes.
    /// A stream of the same name is not counted. Bytes are checked only for a known storage
    /// type (`storage_known`): a request that names none has Go's zero value, neither type.
    pub fn check_create(
        &self,
        account: AccountId,
        cfg: &StreamConfig,
        storage_known: bool,
    ) -> Result<(), ApiError> {
        let Some(l) = self.limits_of(account) else {
            return Err(errors::NOT_ENABLED_FOR_ACCOUNT.err());
        };
        let (others, reserved) = {
            let reg = self.registry.lock();
            let acc = reg.get(&account);
            let others = acc.map_or(0, |a| a.streams.keys().filter(|n| **n != cfg.name).count());
            (others, reserved_by_others(acc, cfg))
        };
        if l.max_streams > 0 && others as i64 >= l.max_streams {
            return Err(errors::MAXIMUM_STREAMS_LIMIT.err());
        }
        if !storage_known {
            return self.check_consumers(l, cfg);
        }
        self.check_consumers_and_bytes(l, cfg, cfg.max_bytes, reserved)
    }

    /// nats-server's limits check of an update: only growth of `max_bytes` is reserved anew.
    pub fn check_update(
        &self,
        account: AccountId,
        old: &StreamConfig,
        new: &StreamConfig,
    ) -> Result<(), ApiError> {
        let Some(l) = self.limits_of(account) else {
            return Err(errors::NOT_ENABLED_FOR_ACCOUNT.err());
        };
        let growth = (new.max_bytes.max(0) - old.max_bytes.max(0)).max(0);
        let reserved = {
            let reg = self.registry.lock();
            reserved_by_others(reg.get(&account), new)
        };
        let reserved = reserved.saturating_add((new.max_bytes - growth).max(0));
        self.check_consumers_and_bytes(l, new, growth, reserved)
    }

    fn check_consumers_and_bytes(
        &self,
        l: &AccountLimits,
        cfg: &StreamConfig,
        add: i64,
        reserved: i64,
    ) -> Result<(), ApiError> {
        self.check_consumers(l, cfg)?;
        self.check_bytes(l, cfg.is_memory(), add, reserved)
    }

    fn check_consumers(&self, l: &AccountLimits, cfg: &StreamConfig) -> Result<(), ApiError> {
        if cfg.max_consumers > 0 && l.max_consumers > 0 && cfg.max_consumers > l.max_consumers {
            return Err(errors::MAXIMUM_CONSUMERS_LIMIT.err());
        }
        Ok(())
    }

    /// nats-server's per-publish checks: the server past its limit (503 "insufficient
    /// resources"), then the account past its own with this message (`size` bytes as the store
    /// counts them) on top of `queued` bytes not yet stored.
    pub fn check_publish(
        &self,
        account: AccountId,
        memory: bool,
        size: u64,
        queued: u64,
    ) -> Result<(), ApiError> {
        let max = if memory {
            self.settings.max_memory
        } else {
            self.settings.max_store
        };
        let queued = i64::try_from(queued).unwrap_or(i64::MAX);
        if self.usage.server(memory).saturating_add(queued) > max {
            self.resources_exceeded(memory);
            return Err(errors::INSUFFICIENT_RESOURCES.err());
        }
        let limit =
            self.limits_of(account).map_or(
                -1,
                |l| {
                    if memory {
                        l.max_memory
                    } else {
                        l.max_storage
                    }
                },
            );
        let size = i64::try_from(size).unwrap_or(i64::MAX);
        if limit >= 0
            && self
                .usage
                .account(account, memory)
                .saturating_add(queued)
                .saturating_add(size)
                > limit
        {
            return Err(errors::ACCOUNT_RESOURCES_EXCEEDED.err());
        }
        Ok(())
    }

    /// nats-server's error line, at most once per 10 s.
    fn resources_exceeded(&self, memory: bool) {
        let now = crate::now_nanos();
        let last = self.resources_alert.load(Ordering::Relaxed);
        if now.saturating_sub(last) > 10_000_000_000
            && self
                .resources_alert
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let kind = if memory { "memory" } else { "file" };
            tracing::error!("JetStream {kind} resource limits exceeded for server");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(mem: i64, store: i64) -> JsSettings {
        JsSettings {
            max_memory: mem,
            max_store: store,
            ..JsSettings::default()
        }
    }

    fn limits(mem: i64, store: i64) -> Option<AccountLimits> {
        Some(AccountLimits {
            max_memory: mem,
            max_storage: store,
            ..AccountLimits::default()
        })
    }

    #[test]
    fn account_limits_must_fit_the_server() {
        let s = settings(100, 1000);
        assert!(sufficient(&s, &[limits(-1, -1), None, limits(60, 600)]).is_ok());
        let e = sufficient(&s, &[limits(60, 1), limits(41, 1)]).unwrap_err();
        assert_eq!(e.err_code, 10028);
        let e = sufficient(&s, &[limits(1, 600), limits(1, 401)]).unwrap_err();
        assert_eq!(e.err_code, 10047);
    }

    #[test]
    fn per_stream_byte_rules() {
        let mut l = AccountLimits {
            max_bytes_required: true,
            storage_max_stream_bytes: 1000,
            ..AccountLimits::default()
        };
        let mut cfg = StreamConfig {
            max_bytes: -1,
            ..StreamConfig::default()
        };
        assert_eq!(check_max_bytes(&l, &cfg).unwrap_err().err_code, 10113);
        cfg.max_bytes = 1001;
        assert_eq!(check_max_bytes(&l, &cfg).unwrap_err().err_code, 10122);
        cfg.max_bytes = 1000;
        assert!(check_max_bytes(&l, &cfg).is_ok());
        l.max_bytes_required = false;
        cfg.max_bytes = -1;
        assert!(check_max_bytes(&l, &cfg).is_ok());
    }

    #[test]
    fn usage_moves_account_and_server_together() {
        let u = Usage::new(3);
        u.add(1, false, 500);
        u.add(2, false, 100);
        u.add(2, true, 7);
        u.add(1, false, -200);
        assert_eq!((u.account(1, false), u.account(2, false)), (300, 100));
        assert_eq!((u.server(false), u.server(true)), (400, 7));
        assert_eq!(u.account(9, false), 0);
    }
}
