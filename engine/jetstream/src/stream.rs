//! One stream on its owner shard: its store, its subjects (an internal subscription, so
//! publishes from every shard arrive over the ordinary rings, in per-publisher order), its
//! dedupe window, its publish acks, and the API requests that name it.
//!
//! A publish ack is sent only when its message is durable under the stream's sync policy: a
//! file stream under `always` (the default) appends with a pipelined group commit and acks once
//! the syncer's fdatasync covers the sequence; memory streams and `sync_interval` streams ack
//! at once. Acks leave in sequence order whatever the policy.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use tachyon_core::accounts::AccountId;
use tachyon_core::doorbell;
use tachyon_core::service::{Delivery, InternalClient, InternalHandle};
use tachyon_core::shard::Shard;
use tachyon_protocol::headers;
use tachyon_storage::{
    ByteAccounting, FileStore, MemoryStore, MsgRef, NewMsg, PurgeRequest, Store, StoreError,
    StoredMsg, SyncPolicy,
};

use crate::acks::{AckBody, AckQueue};
use crate::api::{self, ApiKind};
use crate::config::StreamConfig;
use crate::consumer::Consumer;
use crate::consumer_config::ConsumerApi;
use crate::errors::{self, ApiError};
use crate::registry::{Figures, StreamEntry, StreamFigures};
use crate::{now_nanos, reply, JetStream};

/// Deliveries drained into one append (one write, one sync).
const MAX_BATCH: usize = 1024;

/// How far a stream's ingest may fall behind before its subscription is cut (1 GiB).
const INGEST_MAX_PENDING: usize = 1 << 30;

/// The store behind a stream.
pub enum Backend {
    File(Box<FileStore>),
    Memory(MemoryStore),
}

impl Backend {
    pub(crate) fn store(&self) -> &dyn Store {
        match self {
            Backend::File(f) => f.as_ref(),
            Backend::Memory(m) => m,
        }
    }

    fn store_mut(&mut self) -> &mut dyn Store {
        match self {
            Backend::File(f) => f.as_mut(),
            Backend::Memory(m) => m,
        }
    }
}

/// Moves a store that never held a message to the stream's configured first sequence
/// (nats-server's `FirstSeq`, applied as `Compact(first_seq)` when the store is made), so the
/// first publish gets it; durable before it returns. Only a store whose last sequence is 0 is
/// moved: at creation, and at recovery when a crash came between writing the stream's metadata
/// and this. A store that took messages or was moved already is left as it is.
pub(crate) async fn start_at(backend: Backend, first_seq: u64) -> Result<Backend, String> {
    if first_seq <= 1 || backend.store().state().last_seq != 0 {
        return Ok(backend);
    }
    match backend {
        Backend::Memory(mut m) => {
            m.compact(first_seq).map_err(|e| e.to_string())?;
            Ok(Backend::Memory(m))
        }
        Backend::File(mut f) => {
            let r = crate::offload::off_executor(move || f.compact(first_seq).map(|_| f)).await;
            match r {
                Some(Ok(f)) => Ok(Backend::File(f)),
                Some(Err(e)) => Err(e.to_string()),
                None => Err("the store panicked while moving to its first sequence".into()),
            }
        }
    }
}

/// Where a delivery to the stream's internal client came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Data,
    Info,
    Update,
    Purge,
    MsgGet,
    MsgDelete,
    DirectGet,
    /// The stream's consumer API (create, info, delete, names, list).
    Consumer(ConsumerApi),
    /// One consumer's own subscription (`consumer_sids` says which and what for).
    ConsumerSub,
}

/// What a consumer's own subscription is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConsumerSub {
    Next,
    Ack,
    FlowControl,
}

/// Message ids seen within the duplicate window, oldest first.
#[derive(Default)]
struct Dedupe {
    ids: HashMap<String, u64>,
    order: VecDeque<(i64, String)>,
}

impl Dedupe {
    fn insert(&mut self, id: String, seq: u64, ts: i64) {
        self.ids.insert(id.clone(), seq);
        self.order.push_back((ts, id));
    }

    fn expire(&mut self, now: i64, window: i64) {
        while let Some((ts, _)) = self.order.front() {
            if window > 0 && now.saturating_sub(*ts) <= window {
                break;
            }
            if let Some((_, id)) = self.order.pop_front() {
                self.ids.remove(&id);
            }
        }
    }
}

/// A publish waiting for the next append.
struct Incoming {
    subject: Bytes,
    reply: Option<Bytes>,
    headers: Bytes,
    payload: Bytes,
    msg_id: Option<String>,
    rollup: Option<Rollup>,
    /// `Nats-TTL` in seconds (0: none; -1: never).
    ttl: i64,
}

/// What a round of expiries removed, and the subject delete markers to append for it.
#[derive(Default)]
struct Gone {
    removed: bool,
    markers: Vec<Incoming>,
}

/// A stored message's `Nats-TTL` (seconds; -1: never), if it has a valid one.
fn ttl_of(m: &StoredMsg) -> Option<i64> {
    if m.headers.is_empty() {
        return None;
    }
    let h = headers::parse(&m.headers).ok()?;
    crate::ttl::parse(h.get(b"Nats-TTL")?).ok()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rollup {
    Subject,
    All,
}

pub struct StreamTask {
    pub(crate) js: Arc<JetStream>,
    shard: Rc<Shard>,
    account: AccountId,
    pub(crate) config: RefCell<StreamConfig>,
    created: i64,
    backend: RefCell<Backend>,
    figures: Arc<StreamFigures>,
    dedupe: RefCell<Dedupe>,
    last_msg_id: RefCell<String>,
    acks: RefCell<AckQueue>,
    /// Highest sequence an fdatasync covered (file streams under `always`).
    durable: Arc<AtomicU64>,
    waits_for_sync: bool,
    /// Publishes the stream's acks and API replies.
    out: InternalClient,
    /// The subscriptions (subjects and API) of the client the ingest task reads.
    sub: InternalHandle,
    /// Wakes the ack task: the syncer rings it after each fdatasync, a stop rings it too.
    bell: Arc<doorbell::Doorbell>,
    routes: RefCell<HashMap<Bytes, Route>>,
    stopped: Arc<AtomicBool>,
    dir: Option<PathBuf>,
    /// Time of the last message, so timestamps never go back (age limits rely on it).
    last_ts: Cell<i64>,
    /// Bytes accepted into the pending batch, not yet stored: the limit checks count them.
    queued_bytes: Cell<u64>,
    /// Where acks are rendered: starts with the stream's ack prefix (`{"stream":..,"seq":`,
    /// `ack_prefix_len` bytes), reused for every ack.
    ack_buf: RefCell<Vec<u8>>,
    ack_prefix_len: usize,
    /// Its consumers, by name, and their subscriptions.
    consumers: RefCell<BTreeMap<String, Rc<Consumer>>>,
    consumer_sids: RefCell<HashMap<Bytes, (Rc<Consumer>, ConsumerSub)>>,
    /// The consumers' timer task runs (`consumer_api::ensure_timer`) and how to wake it.
    pub(crate) timer_started: Cell<bool>,
    pub(crate) timer_wake: Rc<crate::consumer_api::Wake>,
    /// Rung when a pump stopped at its budget: the continuation task goes on after the
    /// shard's other tasks had their turn.
    pub(crate) pump_more: Rc<crate::consumer_api::Wake>,
    /// Per-message TTLs: what expires when, and the task that removes them (woken when an
    /// earlier expiry arrives).
    expiries: RefCell<crate::ttl::Expiries>,
    /// Consumer deliveries are built here (shown subject, ack subject, message), each frozen
    /// into slices of one chunk: no allocation per delivery, one per chunk.
    arena: RefCell<bytes::BytesMut>,
    /// Where the next age check starts (streams that age their messages themselves).
    age_from: Cell<u64>,
    ttl_wake: Rc<crate::consumer_api::Wake>,
    /// The durable sequence consumers last pumped at: a sync past it wakes them.
    consumer_durable: Cell<u64>,
}

/// What [`StreamTask::start`] needs about a stream that exists (recovered or just opened).
pub struct Opened {
    pub config: StreamConfig,
    pub created: i64,
    pub backend: Backend,
    pub dir: Option<PathBuf>,
}

impl StreamTask {
    /// Subscribes the stream's subjects and API subjects on `shard` and starts its tasks.
    /// The caller makes the interest visible (a barrier) before it tells anyone.
    pub fn start(
        js: &Arc<JetStream>,
        shard: &Rc<Shard>,
        account: AccountId,
        opened: Opened,
    ) -> Result<Rc<StreamTask>, ApiError> {
        let Opened {
            config,
            created,
            backend,
            dir,
        } = opened;
        let waits_for_sync =
            matches!(&backend, Backend::File(_)) && js.settings.sync == SyncPolicy::Always;
        let durable = Arc::new(AtomicU64::new(0));
        let stopped = Arc::new(AtomicBool::new(false));
        let (bell, receiver) = doorbell::doorbell()
            .map_err(|e| errors::STREAM_CREATE.with("err", format!("doorbell: {e}")))?;
        let bell = Arc::new(bell);
        let mut backend = backend;
        if let Backend::File(f) = &mut backend {
            durable.store(f.durable_seq(), Ordering::Release);
            if waits_for_sync {
                let (d, bell) = (durable.clone(), bell.clone());
                f.set_durable_notify(Box::new(move |seq| {
                    d.fetch_max(seq, Ordering::AcqRel);
                    bell.ring();
                }))
                .map_err(|e| errors::STREAM_CREATE.with("err", e))?;
            }
        }
        // Publishers pause at the stall mark as for any subscriber; the stream is cut off only
        // past this, which a reading stream task never reaches.
        let sub = InternalClient::with_max_pending(shard, account, INGEST_MAX_PENDING);
        let ack_prefix = api::pub_ack_prefix(&config.name, js.settings.domain.as_deref());
        let task = Rc::new(StreamTask {
            bell,
            sub: sub.handle(),
            js: js.clone(),
            shard: shard.clone(),
            account,
            created,
            backend: RefCell::new(backend),
            figures: Arc::new(StreamFigures::default()),
            dedupe: RefCell::new(Dedupe::default()),
            last_msg_id: RefCell::new(String::new()),
            acks: RefCell::new(AckQueue::default()),
            durable,
            waits_for_sync,
            out: InternalClient::new(shard, account),
            routes: RefCell::new(HashMap::new()),
            stopped,
            dir,
            last_ts: Cell::new(0),
            queued_bytes: Cell::new(0),
            ack_prefix_len: ack_prefix.len(),
            ack_buf: RefCell::new(ack_prefix),
            consumers: RefCell::new(BTreeMap::new()),
            consumer_sids: RefCell::new(HashMap::new()),
            timer_started: Cell::new(false),
            timer_wake: Rc::new(crate::consumer_api::Wake::default()),
            pump_more: Rc::new(crate::consumer_api::Wake::default()),
            expiries: RefCell::new(crate::ttl::Expiries::default()),
            age_from: Cell::new(0),
            arena: RefCell::new(bytes::BytesMut::new()),
            ttl_wake: Rc::new(crate::consumer_api::Wake::default()),
            consumer_durable: Cell::new(0),
            config: RefCell::new(config),
        });
        task.subscribe_all()?;
        task.rebuild_dedupe();
        task.publish_figures();
        task.register();

        let t = task.clone();
        glommio::spawn_local(async move { t.ingest(sub).await }).detach();
        glommio::spawn_local(expire_task(Rc::downgrade(&task), task.ttl_wake.clone())).detach();
        let weak = Rc::downgrade(&task);
        let more = task.pump_more.clone();
        glommio::spawn_local(async move {
            loop {
                more.clone().notified().await;
                let Some(t) = weak.upgrade() else { return };
                if t.is_stopped() {
                    return;
                }
                t.pump_consumers();
            }
        })
        .detach();
        let t = task.clone();
        glommio::spawn_local(async move {
            let mut waiter = receiver.attach();
            loop {
                let t2 = t.clone();
                waiter
                    .wait_until(move || {
                        t2.stopped.load(Ordering::Acquire)
                            || t2.has_due_acks()
                            || t2.consumers_may_advance()
                    })
                    .await;
                if t.stopped.load(Ordering::Acquire) {
                    return;
                }
                t.flush_acks();
                t.pump_consumers();
            }
        })
        .detach();
        Ok(task)
    }

    pub fn name(&self) -> String {
        self.config.borrow().name.clone()
    }

    /// This stream as the registry lists it.
    pub(crate) fn entry(&self) -> StreamEntry {
        StreamEntry {
            config: self.config.borrow().clone(),
            owner: self.shard.id,
            created: self.created,
            figures: self.figures.clone(),
            ready: true,
        }
    }

    fn register(&self) {
        let config = self.config.borrow().clone();
        let mut reg = self.js.registry.lock();
        let acc = reg.entry(self.account).or_default();
        acc.streams.insert(
            config.name.clone(),
            StreamEntry {
                config,
                owner: self.shard.id,
                created: self.created,
                figures: self.figures.clone(),
                ready: true,
            },
        );
    }

    fn subscribe_all(&self) -> Result<(), ApiError> {
        let sub = &self.sub;
        let config = self.config.borrow().clone();
        let mut routes = self.routes.borrow_mut();
        let js = self.js.clone();
        let mut add_one = |subject: &str, route: Route| -> Result<(), ApiError> {
            let sid = sub
                .subscribe(subject, None)
                .map_err(|e| errors::STREAM_CREATE.with("err", e))?;
            routes.insert(sid, route);
            Ok(())
        };
        for s in &config.subjects {
            add_one(s, Route::Data)?;
        }
        // API subjects, in their domain form too.
        let mut add = |subject: &str, route: Route| -> Result<(), ApiError> {
            for s in js.api_subjects(subject) {
                add_one(&s, route)?;
            }
            Ok(())
        };
        let n = &config.name;
        add(&format!("$JS.API.STREAM.INFO.{n}"), Route::Info)?;
        add(&format!("$JS.API.STREAM.UPDATE.{n}"), Route::Update)?;
        add(&format!("$JS.API.STREAM.PURGE.{n}"), Route::Purge)?;
        add(&format!("$JS.API.STREAM.MSG.GET.{n}"), Route::MsgGet)?;
        add(&format!("$JS.API.STREAM.MSG.DELETE.{n}"), Route::MsgDelete)?;
        if config.allow_direct {
            add(&format!("$JS.API.DIRECT.GET.{n}"), Route::DirectGet)?;
            add(&format!("$JS.API.DIRECT.GET.{n}.>"), Route::DirectGet)?;
        }
        let c = |a| Route::Consumer(a);
        add(
            &format!("$JS.API.CONSUMER.CREATE.{n}"),
            c(ConsumerApi::Create),
        )?;
        add(
            &format!("$JS.API.CONSUMER.CREATE.{n}.>"),
            c(ConsumerApi::Create),
        )?;
        add(
            &format!("$JS.API.CONSUMER.DURABLE.CREATE.{n}.*"),
            c(ConsumerApi::Create),
        )?;
        add(
            &format!("$JS.API.CONSUMER.INFO.{n}.*"),
            c(ConsumerApi::Info),
        )?;
        add(
            &format!("$JS.API.CONSUMER.DELETE.{n}.*"),
            c(ConsumerApi::Delete),
        )?;
        add(
            &format!("$JS.API.CONSUMER.NAMES.{n}"),
            c(ConsumerApi::Names),
        )?;
        add(&format!("$JS.API.CONSUMER.LIST.{n}"), c(ConsumerApi::List))?;
        add(
            &format!("$JS.API.CONSUMER.PAUSE.{n}.*"),
            c(ConsumerApi::Pause),
        )?;
        Ok(())
    }

    /// Message ids published within the duplicate window before a restart still dedupe.
    fn rebuild_dedupe(&self) {
        let window = self.config.borrow().duplicate_window;
        let backend = self.backend.borrow();
        let store = backend.store();
        let st = store.state();
        self.last_ts.set(st.last_ts);
        if window <= 0 || st.msgs == 0 {
            return;
        }
        let from = store
            .seq_at_time(now_nanos().saturating_sub(window))
            .unwrap_or(st.last_seq + 1);
        let mut seq = from;
        let mut dd = self.dedupe.borrow_mut();
        while let Ok(Some(m)) = store.load_next(seq, "") {
            seq = m.seq + 1;
            let id = header_value(&m.headers, b"Nats-Msg-Id");
            *self.last_msg_id.borrow_mut() = id.clone().unwrap_or_default();
            if let Some(id) = id {
                dd.insert(id, m.seq, m.timestamp);
            }
        }
    }

    fn publish_figures(&self) {
        // A stopped (deleted) stream's bytes were taken out of the usage already.
        if self.is_stopped() {
            return;
        }
        let mut st = self.backend.borrow().store().state();
        // As nats-server: the time of the last sequence, kept when that message is deleted or
        // purged (the store only knows its remaining messages' times).
        if st.last_seq != 0 {
            st.last_ts = st.last_ts.max(self.last_ts.get());
        }
        let before = self.figures.bytes.load(Ordering::Relaxed);
        self.figures.store(&st);
        self.count_usage(st.bytes as i64 - before as i64);
    }

    /// The account's and server's bytes in use move with this stream's.
    fn count_usage(&self, delta: i64) {
        let memory = self.config.borrow().is_memory();
        self.js.usage.add(self.account, memory, delta);
    }

    /// How the store counts a message's bytes (nats-server's file or memory store sizes), and
    /// whether that is memory.
    fn accounting(&self) -> (ByteAccounting, bool) {
        if self.config.borrow().is_memory() {
            (ByteAccounting::NatsMemory, true)
        } else {
            (ByteAccounting::NatsFile, false)
        }
    }

    pub fn figures(&self) -> Figures {
        self.figures.load()
    }

    async fn ingest(self: Rc<Self>, mut sub: InternalClient) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        let mut pending: Vec<Incoming> = Vec::with_capacity(MAX_BATCH);
        loop {
            let Some(first) = sub.next().await else {
                if !self.is_stopped() {
                    tracing::error!(
                        "JetStream stream '{}' stopped taking messages: its subscription was cut off",
                        self.name()
                    );
                }
                break;
            };
            batch.push(first);
            while batch.len() < MAX_BATCH {
                match sub.try_next() {
                    Some(d) => batch.push(d),
                    None => break,
                }
            }
            for d in batch.drain(..) {
                let route = self.routes.borrow().get(&d.sid).copied();
                match route {
                    Some(Route::Data) => self.accept(d, &mut pending),
                    Some(r) => {
                        self.append(&mut pending);
                        self.consumer_request(r, d).await;
                    }
                    None => {}
                }
            }
            self.append(&mut pending);
            self.flush_acks();
            self.pump_consumers();
            // A batch is a burst of work on the shard: the connections it shares the shard
            // with run before the next one.
            futures_lite::future::yield_now().await;
        }
        self.stop(sub);
    }

    fn stop(&self, sub: InternalClient) {
        sub.close();
        self.halt();
    }

    /// Marks the stream stopped and wakes its ack task so it ends too.
    fn halt(&self) {
        self.stopped.store(true, Ordering::Release);
        self.bell.ring();
        self.pump_more.wake();
        self.ttl_wake.wake();
    }

    /// Checks one publish in nats-server's order and queues it for the next append. A publish
    /// whose checks depend on the stream's last state (expected sequences, message ids,
    /// rollups) first appends what is queued.
    fn accept(&self, d: Delivery, pending: &mut Vec<Incoming>) {
        let hdrs = d.headers.clone().unwrap_or_default();
        let parsed = if hdrs.is_empty() {
            None
        } else {
            headers::parse(&hdrs).ok()
        };
        let get = |k: &[u8]| parsed.as_ref().and_then(|h| h.get(k));
        let reply = d.reply.clone();
        // The stream's name is copied only for a reply that needs it, not per message.
        let reject = |e: ApiError| self.queue_error(reply.clone(), &self.name(), &e);
        let (sealed, max_msg_size, allow_rollup, deny_purge) = {
            let c = self.config.borrow();
            (c.sealed, c.max_msg_size, c.allow_rollup_hdrs, c.deny_purge)
        };
        if sealed {
            return reject(errors::STREAM_SEALED.err());
        }
        let stateful = get(b"Nats-Expected-Stream").is_some()
            || get(b"Nats-Expected-Last-Subject-Sequence").is_some()
            || get(b"Nats-Expected-Last-Sequence").is_some()
            || get(b"Nats-Msg-Id").is_some()
            || get(b"Nats-Expected-Last-Msg-Id").is_some()
            || get(b"Nats-Rollup").is_some();
        if stateful {
            self.append(pending);
        }
        if let Some(s) = get(b"Nats-Expected-Stream") {
            if !s.is_empty() && s != self.config.borrow().name.as_bytes() {
                return reject(errors::STREAM_NOT_MATCH.err());
            }
        }
        // As nats-server: a valid TTL where TTLs are off is refused here; an invalid one
        // (whatever the stream allows) just before storing.
        let ttl = match get(b"Nats-TTL").filter(|v| !v.is_empty()) {
            None => Ok(0),
            Some(v) => crate::ttl::parse(v),
        };
        if matches!(ttl, Ok(t) if t != 0) && !self.config.borrow().allow_msg_ttl {
            return reject(errors::MESSAGE_TTL_DISABLED.err());
        }
        if let Some(v) = get(b"Nats-Expected-Last-Subject-Sequence") {
            let want = parse_u64(v);
            let subj = get(b"Nats-Expected-Last-Subject-Sequence-Subject")
                .filter(|s| !s.is_empty())
                .unwrap_or(&d.subject);
            let last = std::str::from_utf8(subj)
                .ok()
                .and_then(|s| self.backend.borrow().store().load_last(s).ok().flatten())
                .map_or(0, |m| m.seq);
            if want != Some(last) {
                return reject(errors::STREAM_WRONG_LAST_SEQUENCE.with("seq", last));
            }
        } else if get(b"Nats-Expected-Last-Subject-Sequence-Subject").is_some() {
            return reject(errors::STREAM_EXPECTED_LAST_SEQ_PER_SUBJECT_INVALID.err());
        }
        if let Some(v) = get(b"Nats-Expected-Last-Sequence") {
            let last = self.backend.borrow().store().state().last_seq;
            if parse_u64(v) != Some(last) {
                return reject(errors::STREAM_WRONG_LAST_SEQUENCE.with("seq", last));
            }
        }
        let msg_id = get(b"Nats-Msg-Id")
            .filter(|v| !v.is_empty())
            .map(|v| String::from_utf8_lossy(v).into_owned());
        if let Some(id) = &msg_id {
            let window = self.config.borrow().duplicate_window;
            let mut dd = self.dedupe.borrow_mut();
            dd.expire(now_nanos(), window);
            if let Some(&seq) = dd.ids.get(id) {
                drop(dd);
                if let Some(r) = reply {
                    let body =
                        reply::pub_ack(&self.name(), seq, true, self.js.settings.domain.as_deref());
                    self.queue_ack(r, body, 0);
                }
                return;
            }
        }
        if let Some(v) = get(b"Nats-Expected-Last-Msg-Id") {
            if !v.is_empty() {
                let last = self.last_msg_id.borrow().clone();
                if v != last.as_bytes() {
                    return reject(errors::STREAM_WRONG_LAST_MSG_ID.with("id", last));
                }
            }
        }
        let rollup = match get(b"Nats-Rollup") {
            None => None,
            Some(v) => {
                if !allow_rollup || deny_purge {
                    return reject(
                        errors::STREAM_ROLLUP_FAILED.with("err", "rollup not permitted"),
                    );
                }
                match v {
                    b"sub" => Some(Rollup::Subject),
                    b"all" => Some(Rollup::All),
                    other => {
                        let text =
                            format!("rollup value invalid: {:?}", String::from_utf8_lossy(other));
                        return reject(errors::STREAM_ROLLUP_FAILED.with("err", text));
                    }
                }
            }
        };
        let mut ttl = match ttl {
            Ok(t) => t,
            Err(e) => return reject(e),
        };
        let mut hdrs = hdrs;
        {
            // Subject delete markers need a TTL at least theirs (but with one message per
            // subject there is nothing a marker could be missed behind).
            let c = self.config.borrow();
            let sdm = c.subject_delete_marker_ttl / 1_000_000_000;
            if ttl > 0 && sdm > 0 && c.max_msgs_per_subject != 1 && ttl < sdm {
                ttl = sdm;
                hdrs = Bytes::from(crate::ttl::with_ttl(&hdrs, ttl));
            }
        }
        let max_payload = self.shard.global.config().opts.max_payload as u64;
        let (hl, pl) = (hdrs.len() as u64, d.payload.len() as u64);
        if hl > max_payload || pl > max_payload.saturating_sub(hl) {
            return reject(errors::STREAM_MESSAGE_EXCEEDS_MAXIMUM.err());
        }
        if max_msg_size >= 0
            && (hl > max_msg_size as u64 || pl > (max_msg_size as u64).saturating_sub(hl))
        {
            return reject(errors::STREAM_MESSAGE_EXCEEDS_MAXIMUM.err());
        }
        if hl > u16::MAX as u64 {
            return reject(errors::STREAM_HEADER_EXCEEDS_MAXIMUM.err());
        }
        let (acct, memory) = self.accounting();
        let size = acct.size_of(d.subject.len() as u64, hl, pl);
        let queued = self.queued_bytes.get();
        if let Err(e) = self.js.check_publish(self.account, memory, size, queued) {
            return reject(e);
        }
        self.queued_bytes.set(queued + size);
        pending.push(Incoming {
            subject: d.subject,
            reply: d.reply,
            headers: hdrs,
            payload: d.payload,
            msg_id,
            rollup,
            ttl,
        });
        if stateful {
            self.append(pending);
        }
    }

    /// Appends what is queued as one batch and queues its acks.
    fn append(&self, pending: &mut Vec<Incoming>) {
        if pending.is_empty() {
            return;
        }
        self.queued_bytes.set(0);
        let name = self.config.borrow().name.clone();
        let ts = now_nanos().max(self.last_ts.get());
        let mut msgs = Vec::with_capacity(pending.len());
        let mut bad_subject = vec![false; pending.len()];
        for (i, p) in pending.iter().enumerate() {
            match std::str::from_utf8(&p.subject) {
                Ok(subject) => msgs.push(NewMsg {
                    subject,
                    headers: &p.headers,
                    payload: &p.payload,
                    timestamp: ts,
                }),
                Err(_) => bad_subject[i] = true,
            }
        }
        let result = {
            let mut b = self.backend.borrow_mut();
            match &mut *b {
                Backend::File(f) if self.waits_for_sync => f.append_batch_pipelined(&msgs),
                other => other.store_mut().append_batch(&msgs),
            }
        };
        drop(msgs);
        let mut results = match result {
            Ok(r) => r.into_iter(),
            Err(e) => {
                tracing::error!("JetStream stream '{name}': append failed: {e}");
                let err = errors::STREAM_STORE_FAILED.with("err", &e);
                for p in pending.drain(..) {
                    self.queue_error(p.reply, &name, &err);
                }
                return;
            }
        };
        let window = self.config.borrow().duplicate_window;
        let mut no_interest = Vec::new();
        for (i, p) in pending.drain(..).enumerate() {
            let r = if bad_subject[i] {
                Err(StoreError::BadSubject { max: 0 })
            } else {
                match results.next() {
                    Some(r) => r,
                    None => Err(StoreError::Misuse {
                        what: "the store returned fewer results than messages".into(),
                    }),
                }
            };
            match r {
                Ok(seq) => {
                    self.last_ts.set(ts);
                    let subject = std::str::from_utf8(&p.subject).unwrap_or("");
                    if !self.consumers.borrow().is_empty() {
                        for c in self.consumers.borrow().values() {
                            c.on_stored(subject, seq);
                        }
                    }
                    // An interest stream keeps nothing nobody consumes (nats-server skips
                    // the sequence; the ack still names it).
                    if self.config.borrow().retention == crate::config::RetentionPolicy::Interest
                        && !self.consumers.borrow().values().any(|c| c.wants(subject))
                    {
                        no_interest.push(seq);
                    }
                    // As nats-server: the last message's id, "" when it had none.
                    *self.last_msg_id.borrow_mut() = p.msg_id.clone().unwrap_or_default();
                    if let Some(id) = p.msg_id {
                        if window > 0 {
                            self.dedupe.borrow_mut().insert(id, seq, ts);
                        }
                    }
                    if let Some(r) = p.rollup {
                        self.roll_up(r, &p.subject, seq);
                    }
                    if p.ttl > 0 {
                        self.expire_at(ts + p.ttl * 1_000_000_000, seq);
                    }
                    if let Some(reply) = p.reply {
                        let due = if self.waits_for_sync { seq } else { 0 };
                        self.queue_ack(reply, AckBody::Stored(seq), due);
                    }
                }
                Err(e) => {
                    let err = store_error(&e);
                    self.queue_error(p.reply, &name, &err);
                }
            }
        }
        if !no_interest.is_empty() {
            let mut b = self.backend.borrow_mut();
            for seq in no_interest {
                if let Err(e) = b.store_mut().delete(seq, false) {
                    tracing::error!("JetStream stream '{name}': removing {seq}: {e}");
                }
            }
        }
        self.publish_figures();
    }

    /// Queues `seq` to expire at `at`; wakes the expiry task when it is the soonest.
    fn expire_at(&self, at: i64, seq: u64) {
        let mut e = self.expiries.borrow_mut();
        let sooner = e.next().is_none_or(|n| at < n);
        e.push(at, seq);
        drop(e);
        if sooner {
            self.ttl_wake.wake();
        }
    }

    /// Removes the messages whose TTL ran out by `now`. With subject delete markers, the last
    /// message of a subject is replaced by a marker (which rolls the subject up) instead.
    fn expire_due(&self, now: i64) {
        let due = self.expiries.borrow_mut().take_due(now);
        if due.is_empty() {
            return;
        }
        let mut gone = Gone::default();
        for seq in due {
            if let Some(m) = self.load(seq) {
                self.remove_or_mark(m, &mut gone);
            }
        }
        self.finish_removals(gone);
    }

    /// Messages of a stream that allows TTLs older than `max_age` go, except those whose
    /// `Nats-TTL` says never, a bounded number a call (the rest at the next).
    fn expire_by_age(&self, now: i64) {
        const STEP: usize = 10_000;
        let max_age = {
            let c = self.config.borrow();
            if !c.allow_msg_ttl || c.max_age <= 0 {
                return;
            }
            c.max_age
        };
        let cutoff = now - max_age;
        let mut gone = Gone::default();
        let mut seq = self.age_from.get().max(self.first_last().0);
        for _ in 0..STEP {
            let Some(m) = self.load_next(seq, "") else {
                break;
            };
            if m.timestamp > cutoff {
                break;
            }
            seq = m.seq + 1;
            if ttl_of(&m) == Some(-1) {
                continue;
            }
            self.remove_or_mark(m, &mut gone);
        }
        self.age_from.set(seq);
        self.finish_removals(gone);
    }

    /// Removes `m`, or (with subject delete markers, `m` the last of its subject and not a
    /// marker itself) queues the marker that replaces it.
    fn remove_or_mark(&self, m: StoredMsg, gone: &mut Gone) {
        let sdm = self.config.borrow().subject_delete_marker_ttl / 1_000_000_000;
        let is_marker = !m.headers.is_empty()
            && headers::parse(&m.headers)
                .ok()
                .is_some_and(|h| h.get(b"Nats-Marker-Reason").is_some());
        if sdm > 0 && !is_marker && self.last_seq_of(&m.subject) == Some(m.seq) {
            gone.markers.push(Incoming {
                subject: Bytes::from(m.subject),
                reply: None,
                headers: Bytes::from(crate::ttl::marker_headers(sdm)),
                payload: Bytes::new(),
                msg_id: None,
                rollup: Some(Rollup::Subject),
                ttl: sdm,
            });
            return;
        }
        match self.backend.borrow_mut().store_mut().delete(m.seq, false) {
            Ok(r) => gone.removed |= r,
            Err(e) => tracing::error!(
                "JetStream stream '{}': expiring {}: {e}",
                self.name(),
                m.seq
            ),
        }
    }

    fn finish_removals(&self, mut gone: Gone) {
        if !gone.markers.is_empty() {
            self.append(&mut gone.markers);
            gone.removed = true;
        }
        if gone.removed {
            self.publish_figures();
            self.consumers_removed();
            self.pump_consumers();
        }
    }

    /// After a restart: the TTLs of the stored messages, read from their headers.
    fn recover_expiries_from(&self, from: u64, max: usize) -> Option<u64> {
        let mut seq = from;
        for _ in 0..max {
            let m = self.load_next(seq, "")?;
            seq = m.seq + 1;
            if let Some(t) = ttl_of(&m).filter(|t| *t > 0) {
                self.expiries
                    .borrow_mut()
                    .push(m.timestamp + t * 1_000_000_000, m.seq);
            }
        }
        Some(seq)
    }

    fn roll_up(&self, r: Rollup, subject: &[u8], seq: u64) {
        let filter = match r {
            Rollup::Subject => Some(String::from_utf8_lossy(subject).into_owned()),
            Rollup::All => None,
        };
        let req = PurgeRequest {
            filter,
            up_to_seq: Some(seq),
            keep: None,
        };
        if let Err(e) = self.backend.borrow_mut().store_mut().purge(&req) {
            tracing::error!("JetStream rollup purge failed: {e}");
        }
    }

    fn queue_error(&self, reply: Option<Bytes>, name: &str, err: &ApiError) {
        if let Some(r) = reply {
            let body = reply::pub_ack_error(name, err);
            self.queue_ack(r, body, 0);
        }
    }

    /// Queues an ack behind those before it; `due` 0 means "as soon as its turn comes".
    fn queue_ack(&self, reply: Bytes, body: impl Into<AckBody>, due: u64) {
        self.acks.borrow_mut().push(reply, body, due);
    }

    fn has_due_acks(&self) -> bool {
        self.acks.borrow().has_due(self.durable_seq())
    }

    pub(crate) fn durable_seq(&self) -> u64 {
        if self.waits_for_sync {
            self.durable.load(Ordering::Acquire)
        } else {
            u64::MAX
        }
    }

    /// Sends every ack whose message is durable, in order.
    fn flush_acks(&self) {
        let durable = self.durable_seq();
        let mut buf = self.ack_buf.borrow_mut();
        loop {
            let next = self.acks.borrow_mut().pop_due(durable);
            let Some(a) = next else { return };
            match &a.body {
                AckBody::Stored(seq) => {
                    buf.truncate(self.ack_prefix_len);
                    api::finish_pub_ack(&mut buf, *seq, false);
                    self.out.publish(&a.reply, None, None, &buf);
                }
                AckBody::Raw(body) => self.out.publish(&a.reply, None, None, body),
            }
        }
    }

    fn respond(&self, reply: &Option<Bytes>, body: &[u8]) {
        if let Some(r) = reply {
            self.out.publish(r, None, None, body);
        }
    }

    fn respond_with_headers(&self, reply: &Option<Bytes>, hdrs: &[u8], body: &[u8]) {
        if let Some(r) = reply {
            self.out.publish(r, None, Some(hdrs), body);
        }
    }

    pub(crate) fn count_api(&self, failed: bool) {
        if let Some(c) = self.js.registry.api(self.account) {
            c.count(failed);
        }
    }

    /// One API request for this stream.
    async fn api(&self, route: Route, d: Delivery) {
        let body: &[u8] = &d.payload;
        let strict = self.js.settings.strict;
        match route {
            Route::Data => {}
            Route::Info => {
                let r = api::parse_stream_info_request(body, strict)
                    .map(|req| reply::stream_info(self, ApiKind::StreamInfo, &req));
                self.answer(&d.reply, ApiKind::StreamInfo, r);
            }
            Route::Update => {
                let r = self.update(body).await;
                self.answer(&d.reply, ApiKind::StreamUpdate, r);
            }
            Route::Purge => {
                let r = self.purge(body);
                self.answer(&d.reply, ApiKind::StreamPurge, r);
            }
            Route::MsgGet => match self.msg_get(body) {
                // As nats-server: a found message is sent past the API layer, so it does not
                // count in the account's API totals (failures do).
                Ok((m, no_hdr)) => {
                    let msg = api::StoredMsg::from_store(&m, !no_hdr);
                    self.respond(&d.reply, &api::msg_get_response(&msg));
                }
                Err(e) => self.answer(&d.reply, ApiKind::MsgGet, Err(e)),
            },
            Route::MsgDelete => {
                let r = self.msg_delete(body);
                self.answer(&d.reply, ApiKind::MsgDelete, r);
            }
            Route::DirectGet => self.direct_get(&d),
            // Handled in `api_rc` (needs the stream's Rc).
            Route::Consumer(_) | Route::ConsumerSub => {}
        }
    }

    /// One request for the stream's consumers, or for one consumer.
    async fn consumer_request(self: &Rc<Self>, route: Route, d: Delivery) {
        match route {
            Route::Consumer(api) => crate::consumer_api::handle(self, api, &d).await,
            Route::ConsumerSub => {
                let target = self.consumer_sids.borrow().get(&d.sid).cloned();
                match target {
                    Some((c, ConsumerSub::Next)) => crate::consumer_api::next(self, &c, &d),
                    Some((c, ConsumerSub::Ack)) => crate::consumer_api::ack(self, &c, &d),
                    Some((c, ConsumerSub::FlowControl)) => {
                        c.on_flow_control(&d.subject);
                        self.pump_one(&c);
                    }
                    None => {}
                }
            }
            _ => self.api(route, d).await,
        }
    }

    fn answer(&self, to: &Option<Bytes>, kind: ApiKind, r: Result<Vec<u8>, ApiError>) {
        reply::answer(&self.out, self.js.registry.api(self.account), to, kind, r);
    }

    async fn update(&self, body: &[u8]) -> Result<Vec<u8>, ApiError> {
        let name = self.name();
        let limits = self
            .js
            .limits_of(self.account)
            .ok_or_else(|| errors::NOT_ENABLED_FOR_ACCOUNT.err())?;
        let requested =
            crate::config::parse_update_for(body, &name, self.js.settings.strict, limits)?;
        let old = self.config.borrow().clone();
        let new = crate::config::apply_update(&old, &requested)?;
        self.js.check_update(self.account, &old, &new)?;
        if let Some(feature) = new.unsupported() {
            return Err(errors::not_supported(feature));
        }
        self.js.check_overlap(self.account, &new, Some(&name))?;
        if new.subjects != old.subjects || new.allow_direct != old.allow_direct {
            // Re-subscribe: the old subscriptions go with their routes.
            let sids: Vec<Bytes> = self.routes.borrow().keys().cloned().collect();
            for sid in sids {
                self.sub.unsubscribe(&sid, None);
            }
            self.routes.borrow_mut().clear();
            *self.config.borrow_mut() = new.clone();
            self.subscribe_all()?;
            self.sub.barrier().await;
        } else {
            *self.config.borrow_mut() = new.clone();
        }
        {
            let mut b = self.backend.borrow_mut();
            if let Err(e) = b.store_mut().set_limits(new.limits()) {
                return Err(errors::STREAM_UPDATE.with("err", e));
            }
        }
        self.publish_figures();
        self.register();
        self.save_meta().await;
        Ok(reply::stream_info(
            self,
            ApiKind::StreamUpdate,
            &api::StreamInfoRequest::default(),
        ))
    }

    /// Writes the stream's config next to its messages (file streams), off the executor.
    pub(crate) async fn save_meta(&self) {
        let Some(dir) = self.dir.clone() else { return };
        let meta = crate::meta::Meta {
            config: self.config.borrow().clone(),
            created: self.created,
        };
        let r = crate::offload::off_executor(move || meta.save(&dir)).await;
        if let Some(Err(e)) = r {
            tracing::error!("JetStream: saving stream metadata: {e}");
        }
    }

    /// STREAM.DELETE, handed over by shard 0 (the one place that decides whether the stream
    /// exists, so a delete is answered once). Publishes stop reaching the stream before it
    /// leaves the registry; its files are gone before the reply.
    pub(crate) async fn delete(&self, reply_to: Option<Bytes>) {
        let name = self.name();
        // Waiting pull requests hear that their consumer is gone.
        for c in self.consumers_sorted() {
            c.close(self);
        }
        // Stopped first: the ingest task sees its subscription end as the delete it is.
        self.halt();
        self.sub.close();
        self.sub.barrier().await;
        self.acks.borrow_mut().clear();
        let old = std::mem::replace(
            &mut *self.backend.borrow_mut(),
            Backend::Memory(MemoryStore::new(Default::default())),
        );
        // Its bytes no longer count against the account or the server.
        let held = self.figures.bytes.swap(0, Ordering::Relaxed);
        self.count_usage(-(held as i64));
        let dir = self.dir.clone();
        let _ = crate::offload::off_executor(move || {
            drop(old);
            if let Some(d) = dir {
                if let Err(e) = std::fs::remove_dir_all(&d) {
                    tracing::error!("JetStream: removing {}: {e}", d.display());
                }
            }
        })
        .await;
        if let Some(acc) = self.js.registry.lock().get_mut(&self.account) {
            acc.streams.remove(&name);
        }
        self.count_api(false);
        self.respond(&reply_to, &api::stream_delete_response());
    }

    /// In nats-server's order: the request, then sealed, then deny_purge. As nats-server's
    /// `PurgeEx`, a purge without a subject filter (or with `>`) up to a sequence is a
    /// compaction: everything below it goes, and a sequence past the end moves the stream's
    /// sequences there (the next publish gets it).
    fn purge(&self, body: &[u8]) -> Result<Vec<u8>, ApiError> {
        let parsed = api::parse_purge_request(body, self.js.settings.strict)?;
        let compact_to = parsed
            .as_ref()
            .filter(|r| r.seq > 1 && (r.filter.is_empty() || r.filter == ">"))
            .map(|r| r.seq);
        let req = parsed.map(|r| r.to_storage()).unwrap_or_default();
        let (sealed, deny_purge) = {
            let c = self.config.borrow();
            (c.sealed, c.deny_purge)
        };
        if sealed {
            return Err(errors::STREAM_SEALED.err());
        }
        if deny_purge {
            return Err(errors::STREAM_PURGE_FAILED.with("err", "stream purge not permitted"));
        }
        let purged = {
            let mut b = self.backend.borrow_mut();
            match compact_to {
                Some(seq) => b.store_mut().compact(seq),
                None => b.store_mut().purge(&req),
            }
        };
        let purged = match purged {
            Ok(n) => n,
            // As nats-server: a general error, sent as a response (not counted as an API
            // error).
            Err(e) => {
                let e = errors::STREAM_GENERAL_ERROR.with("err", e);
                return Ok(reply::error(ApiKind::StreamPurge, &e));
            }
        };
        self.publish_figures();
        self.consumers_removed();
        Ok(api::stream_purge_response(purged))
    }

    /// The message a MSG.GET names, and whether the request asked for no headers.
    fn msg_get(&self, body: &[u8]) -> Result<(StoredMsg, bool), ApiError> {
        let req = api::parse_msg_get_request(body, self.js.settings.strict)?;
        match self.lookup(&req) {
            Ok(Some(m)) => Ok((m, req.no_hdr)),
            Ok(None) => Err(errors::NO_MESSAGE_FOUND.err()),
            Err(e) => {
                tracing::error!("JetStream stream '{}': {e}", self.name());
                Err(errors::NO_MESSAGE_FOUND.err())
            }
        }
    }

    /// In nats-server's order: the request, then sealed, then deny_delete.
    fn msg_delete(&self, body: &[u8]) -> Result<Vec<u8>, ApiError> {
        let req = api::parse_msg_delete_request(body, self.js.settings.strict)?;
        let (sealed, deny_delete) = {
            let c = self.config.borrow();
            (c.sealed, c.deny_delete)
        };
        if sealed {
            return Err(errors::STREAM_SEALED.err());
        }
        if deny_delete {
            return Err(
                errors::STREAM_MSG_DELETE_FAILED.with("err", "message delete not permitted")
            );
        }
        // A failure past this point is an error in the reply, but nats-server sends it as a
        // response (counted in the API totals, not in its errors): hence `Ok(error body)`.
        let failed = |e: ApiError| Ok(reply::error(ApiKind::MsgDelete, &e));
        let (removed, file, st) = {
            let mut b = self.backend.borrow_mut();
            let removed = match b.store_mut().delete(req.seq, !req.no_erase) {
                Ok(r) => r,
                Err(e) => return failed(errors::STREAM_MSG_DELETE_FAILED.with("err", e)),
            };
            (removed, matches!(&*b, Backend::File(_)), b.store().state())
        };
        if !removed {
            // nats-server's file store fails a sequence outside its messages' range ("no
            // message found" up to the last sequence, "stream store EOF" past it); a gap
            // inside the range, and anything in a memory store, is "sequence N not found".
            if file && (req.seq < st.first_seq || req.seq > st.last_seq || st.msgs == 0) {
                let text = if req.seq > st.last_seq {
                    "stream store EOF"
                } else {
                    "no message found"
                };
                return failed(errors::STREAM_MSG_DELETE_FAILED.with("err", text));
            }
            return failed(errors::SEQUENCE_NOT_FOUND.with("seq", req.seq));
        }
        self.publish_figures();
        self.consumers_removed();
        Ok(api::msg_delete_response())
    }

    /// The message a get request names: by sequence, last by subject, or next by subject
    /// from a sequence (or from a time).
    fn lookup(&self, req: &api::MsgGetRequest) -> tachyon_storage::Result<Option<StoredMsg>> {
        let b = self.backend.borrow();
        let store = b.store();
        if !req.last_by_subj.is_empty() {
            return store.load_last(&req.last_by_subj);
        }
        let from = match &req.start_time {
            Some(t) => match store.seq_at_time(t.unix_nanos()) {
                Some(seq) => seq,
                None => return Ok(None),
            },
            None => req.seq,
        };
        if !req.next_by_subj.is_empty() {
            return store.load_next(from.max(1), &req.next_by_subj);
        }
        if req.start_time.is_some() {
            return store.load_next(from, "");
        }
        store.load(req.seq)
    }

    /// `DIRECT.GET.<stream>` (JSON body) and `DIRECT.GET.<stream>.<subject>` (last by
    /// subject): the message itself with Nats-Stream/-Subject/-Sequence/-Time-Stamp headers,
    /// or a status as nats-server sends it (404 Message Not Found, 408 Empty Request /
    /// Malformed Request / Bad Request).
    fn direct_get(&self, d: &Delivery) {
        let status = |code: u16, text: &str| {
            self.respond_with_headers(&d.reply, &headers::status_block(code, Some(text)), b"");
        };
        let name = self.name();
        let prefix = format!("$JS.API.DIRECT.GET.{name}");
        let subject = self.js.local_api_subject(&d.subject);
        let tail = subject.get(prefix.len()..).unwrap_or_default();
        let req = if let Some(subject) = tail.strip_prefix(b".") {
            let mut req = api::MsgGetRequest::default();
            if !d.payload.is_empty() {
                match api::decode_msg_get_request(&d.payload, false) {
                    Ok(r) => req = r,
                    Err(_) => return status(408, "Malformed Request"),
                }
            }
            let extra = !req.last_by_subj.is_empty()
                || !req.next_by_subj.is_empty()
                || !req.multi_last.is_empty()
                || req.seq != 0
                || req.batch != 0
                || req.start_time.is_some()
                || req.up_to_seq != 0
                || req.up_to_time.is_some();
            if subject.is_empty() || extra {
                return status(408, "Bad Request");
            }
            req.last_by_subj = String::from_utf8_lossy(subject).into_owned();
            req
        } else {
            if d.payload.is_empty() {
                return status(408, "Empty Request");
            }
            let Ok(req) = api::decode_msg_get_request(&d.payload, false) else {
                return status(408, "Malformed Request");
            };
            let (last, next, multi) = (
                !req.last_by_subj.is_empty(),
                !req.next_by_subj.is_empty(),
                !req.multi_last.is_empty(),
            );
            let start = req.start_time.is_some();
            if req.seq == 0 && !last && !next && !multi && !start {
                return status(408, "Empty Request");
            }
            // At most one of sequence, last-by-subject and start time; last-by-subject alone.
            let picks = [req.seq > 0, last, start].iter().filter(|p| **p).count();
            let conflicting =
                picks > 1 || (last && next) || (req.up_to_seq > 0 && req.up_to_time.is_some());
            // Batches and multi-last gets are not served yet: refused rather than half done.
            if conflicting || req.batch > 0 || multi {
                return status(408, "Bad Request");
            }
            req
        };
        match self.lookup(&req) {
            Ok(Some(m)) => {
                let hdrs = reply::direct_headers(&name, &m);
                let payload = if req.no_hdr { Vec::new() } else { hdrs };
                if payload.is_empty() {
                    self.respond(&d.reply, &m.payload);
                } else {
                    self.respond_with_headers(&d.reply, &payload, &m.payload);
                }
            }
            _ => status(404, "Message Not Found"),
        }
    }

    pub(crate) fn account(&self) -> AccountId {
        self.account
    }

    pub(crate) fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    /// The once-a-second work: age limits, the dedupe window, interval syncs, deferred
    /// evictions and compaction (bounded: one segment at most).
    pub(crate) fn maintain(&self, now: i64) {
        self.expire_by_age(now);
        let window = self.config.borrow().duplicate_window;
        self.dedupe.borrow_mut().expire(now, window);
        let r = {
            let mut b = self.backend.borrow_mut();
            match &mut *b {
                Backend::File(f) => {
                    let m = f.maintain(now).map(|m| m.expired);
                    if crate::meta::syncs_on_timer(self.js.settings.sync) {
                        m.and_then(|n| f.sync().map(|()| n))
                    } else {
                        m
                    }
                }
                Backend::Memory(m) => m.expire(now),
            }
        };
        match r {
            Ok(0) => {}
            Ok(_) => {
                self.publish_figures();
                self.consumers_removed();
            }
            Err(e) => tracing::error!("JetStream stream '{}': {e}", self.name()),
        }
    }

    /// The sequences between the first and the last that are gone (INFO's
    /// `deleted_details`): the gaps between the stored messages, found by walking them.
    pub(crate) fn deleted_seqs(&self) -> Vec<u64> {
        let b = self.backend.borrow();
        let store = b.store();
        let st = store.state();
        let mut out = Vec::new();
        if st.msgs == 0 || st.num_deleted == 0 {
            return out;
        }
        let mut expect = st.first_seq;
        while (out.len() as u64) < st.num_deleted {
            let Ok(Some(m)) = store.load_next(expect, "") else {
                break;
            };
            out.extend(expect..m.seq);
            expect = m.seq + 1;
        }
        // The last messages themselves may be gone: the last sequence stays.
        if (out.len() as u64) < st.num_deleted {
            out.extend(expect..=st.last_seq);
        }
        out
    }

    /// Subject counts for `subjects_filter` in INFO.
    pub(crate) fn subject_counts(&self, filter: &str) -> std::collections::BTreeMap<String, u64> {
        self.backend.borrow().store().subject_counts(filter)
    }
}

fn parse_u64(v: &[u8]) -> Option<u64> {
    std::str::from_utf8(v).ok()?.trim().parse().ok()
}

fn header_value(block: &[u8], key: &[u8]) -> Option<String> {
    if block.is_empty() {
        return None;
    }
    let h = headers::parse(block).ok()?;
    h.get(key)
        .filter(|v| !v.is_empty())
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// A store's refusal as nats-server words it (store.go's `ErrMaxMsgs` and friends).
fn store_error(e: &StoreError) -> ApiError {
    let text = match e {
        StoreError::MaxMsgs { .. } => "maximum messages exceeded".to_string(),
        StoreError::MaxBytes { .. } => "maximum bytes exceeded".to_string(),
        StoreError::MaxMsgsPerSubject { .. } => "maximum messages per subject exceeded".to_string(),
        StoreError::MessageTooLarge { .. } => return errors::STREAM_MESSAGE_EXCEEDS_MAXIMUM.err(),
        other => other.to_string(),
    };
    errors::STREAM_STORE_FAILED.with("err", text)
}

/// Consumers: what `consumer.rs` and `consumer_api.rs` use of their stream.
impl StreamTask {
    pub(crate) fn consumer(&self, name: &str) -> Option<Rc<Consumer>> {
        self.consumers.borrow().get(name).cloned()
    }

    pub(crate) fn consumer_names(&self) -> Vec<String> {
        self.consumers.borrow().keys().cloned().collect()
    }

    pub(crate) fn consumers_sorted(&self) -> Vec<Rc<Consumer>> {
        self.consumers.borrow().values().cloned().collect()
    }

    pub(crate) fn consumer_count(&self) -> usize {
        self.consumers.borrow().len()
    }

    /// Subscribes a new (or recovered) consumer's own subjects and lists it.
    pub(crate) fn add_consumer(&self, c: Rc<Consumer>) -> Result<(), String> {
        let stream = self.name();
        let name = c.name.clone();
        let mut subs: Vec<(String, ConsumerSub)> = Vec::new();
        if c.is_pull() {
            for s in self
                .js
                .api_subjects(&format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.{name}"))
            {
                subs.push((s, ConsumerSub::Next));
            }
        }
        subs.push((format!("$JS.ACK.{stream}.{name}.>"), ConsumerSub::Ack));
        if !c.is_pull() {
            subs.push((
                format!("$JS.FC.{stream}.{name}.*"),
                ConsumerSub::FlowControl,
            ));
        }
        for (subject, what) in subs {
            let sid = self
                .sub
                .subscribe(&subject, None)
                .map_err(|e| e.to_string())?;
            self.routes
                .borrow_mut()
                .insert(sid.clone(), Route::ConsumerSub);
            self.consumer_sids
                .borrow_mut()
                .insert(sid.clone(), (c.clone(), what));
            c.sids.borrow_mut().push(sid);
        }
        self.consumers.borrow_mut().insert(name, c);
        self.figures
            .consumers
            .store(self.consumers.borrow().len() as u64, Ordering::Relaxed);
        Ok(())
    }

    pub(crate) fn remove_consumer(&self, name: &str) {
        let Some(c) = self.consumers.borrow_mut().remove(name) else {
            return;
        };
        for sid in c.sids.borrow_mut().drain(..) {
            self.sub.unsubscribe(&sid, None);
            self.routes.borrow_mut().remove(&sid);
            self.consumer_sids.borrow_mut().remove(&sid);
        }
        self.figures
            .consumers
            .store(self.consumers.borrow().len() as u64, Ordering::Relaxed);
    }

    /// Every shard sees this stream's subscriptions made so far.
    pub(crate) async fn barrier(&self) {
        self.sub.barrier().await;
    }

    /// Where a file stream's consumers keep their configs and states, one folder each.
    pub(crate) fn consumers_dir(&self) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join("obs"))
    }

    pub(crate) fn consumer_dir(&self, name: &str) -> Option<PathBuf> {
        self.consumers_dir().map(|d| d.join(name))
    }

    /// Whether a sync since the consumers last looked lets them hand out more.
    fn consumers_may_advance(&self) -> bool {
        !self.consumers.borrow().is_empty() && self.durable_seq() > self.consumer_durable.get()
    }

    /// Lets every consumer hand out what it can.
    pub(crate) fn pump_consumers(&self) {
        if self.consumers.borrow().is_empty() {
            return;
        }
        let durable = self.durable_seq();
        self.consumer_durable.set(durable.min(self.last_seq()));
        let mut more = false;
        for c in self.consumers_sorted() {
            more |= c.pump(self, durable);
        }
        if more {
            self.pump_more.wake();
        }
    }

    pub(crate) fn pump_one(&self, c: &Consumer) {
        if c.pump(self, self.durable_seq()) {
            self.pump_more.wake();
        }
    }

    /// Messages a consumer settled: a workqueue stream removes them; an interest stream
    /// removes those no consumer still needs.
    pub(crate) fn settled(&self, seqs: &[u64]) {
        let retention = self.config.borrow().retention;
        if retention == crate::config::RetentionPolicy::Limits {
            return;
        }
        let mut removed = false;
        for &seq in seqs {
            let remove = match retention {
                crate::config::RetentionPolicy::WorkQueue => true,
                _ => match self.load(seq) {
                    Some(m) => self
                        .consumers
                        .borrow()
                        .values()
                        .all(|c| c.done_with(seq, &m.subject)),
                    None => false,
                },
            };
            if remove {
                let r = self.backend.borrow_mut().store_mut().delete(seq, false);
                removed |= matches!(r, Ok(true));
            }
        }
        if removed {
            self.publish_figures();
            self.consumers_removed();
        }
    }

    /// A consumer of an interest stream is gone: messages only it still needed go too, as
    /// nats-server's `cleanupNoInterestMessages`: all of them when no consumer is left,
    /// else those from its ack floor on that no other consumer needs (not past 100 000
    /// messages, where nats-server also leaves them to later checks).
    pub(crate) fn drop_interest_of(&self, c: &Consumer) {
        const SCAN_LIMIT: u64 = 100_000;
        if self.config.borrow().retention != crate::config::RetentionPolicy::Interest {
            return;
        }
        let (first, last) = self.first_last();
        if self.consumers.borrow().is_empty() {
            let r = self
                .backend
                .borrow_mut()
                .store_mut()
                .purge(&PurgeRequest::default());
            if let Err(e) = r {
                tracing::error!("JetStream stream '{}': purging: {e}", self.name());
            }
            self.publish_figures();
            return;
        }
        let start = (c.state.borrow().ack_floor.stream_seq + 1).max(first);
        if last < start || last - start > SCAN_LIMIT {
            return;
        }
        let seqs: Vec<u64> = (start..=last).collect();
        self.settled(&seqs);
    }

    /// Messages went away (purge, delete, limits): pending counts are recounted.
    pub(crate) fn consumers_removed(&self) {
        for c in self.consumers.borrow().values() {
            c.on_removed();
        }
    }

    fn last_seq(&self) -> u64 {
        self.backend.borrow().store().state().last_seq
    }

    /// The stream's first and last sequences.
    pub(crate) fn first_last(&self) -> (u64, u64) {
        let st = self.backend.borrow().store().state();
        (st.first_seq, st.last_seq)
    }

    pub(crate) fn seq_at_time(&self, ts: i64) -> Option<u64> {
        self.backend.borrow().store().seq_at_time(ts)
    }

    pub(crate) fn last_seq_of(&self, filter: &str) -> Option<u64> {
        self.backend
            .borrow()
            .store()
            .load_last(filter)
            .ok()
            .flatten()
            .map(|m| m.seq)
    }

    pub(crate) fn last_per_subject(&self, filter: &str) -> Vec<u64> {
        self.backend.borrow().store().last_per_subject(filter)
    }

    pub(crate) fn count_from(&self, from: u64, filter: &str) -> u64 {
        self.backend.borrow().store().count_from(from, filter)
    }

    pub(crate) fn load(&self, seq: u64) -> Option<StoredMsg> {
        match self.backend.borrow().store().load(seq) {
            Ok(m) => m,
            Err(e) => {
                tracing::error!("JetStream stream '{}': reading {seq}: {e}", self.name());
                None
            }
        }
    }

    pub(crate) fn load_next(&self, from: u64, filter: &str) -> Option<StoredMsg> {
        match self.backend.borrow().store().load_next(from, filter) {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(
                    "JetStream stream '{}': reading from {from}: {e}",
                    self.name()
                );
                None
            }
        }
    }

    /// The stream's name, borrowed.
    pub(crate) fn name_ref(&self) -> std::cell::Ref<'_, str> {
        std::cell::Ref::map(self.config.borrow(), |c| c.name.as_str())
    }

    pub(crate) fn respond_raw(&self, reply: &Bytes, body: &[u8]) {
        self.out.publish(reply, None, None, body);
    }

    /// A status-only message (`NATS/1.0 <code> ...`) to a pull request or deliver subject.
    pub(crate) fn send_status(&self, to: &Bytes, header_block: &[u8]) {
        self.out.publish(to, None, Some(header_block), b"");
    }

    pub(crate) fn send_status_with_reply(&self, to: &Bytes, reply: &Bytes, header_block: &[u8]) {
        self.out.publish(to, Some(reply), Some(header_block), b"");
    }

    /// Lends message `seq` to `f`; false when it is gone (or unreadable, which is logged).
    pub(crate) fn read_with(&self, seq: u64, f: &mut dyn FnMut(MsgRef<'_>)) -> bool {
        match self.backend.borrow().store().read_with(seq, f) {
            Ok(found) => found,
            Err(e) => {
                tracing::error!("JetStream stream '{}': reading {seq}: {e}", self.name());
                false
            }
        }
    }

    pub(crate) fn next_seq(&self, from: u64, filter: &str) -> Option<u64> {
        self.backend.borrow().store().next_seq(from, filter)
    }

    pub(crate) fn contains(&self, seq: u64) -> bool {
        self.backend.borrow().store().contains(seq)
    }

    /// A consumer delivery of `m` to `to` with `ack` as its reply, built in the arena (with
    /// `headers_only`, no body but `Nats-Msg-Size`). Returns the bytes it carried (subject,
    /// reply, headers, body), what flow control counts.
    pub(crate) fn deliver_ref(
        &self,
        to: &Bytes,
        m: MsgRef<'_>,
        ack: &[u8],
        headers_only: bool,
    ) -> usize {
        const CHUNK: usize = 64 * 1024;
        let mut a = self.arena.borrow_mut();
        let need = m.subject.len() + ack.len() + m.headers.len() + m.payload.len() + 48;
        if a.capacity() - a.len() < need {
            a.reserve(need.max(CHUNK));
        }
        a.extend_from_slice(m.subject.as_bytes());
        a.extend_from_slice(ack);
        let header_len = if headers_only {
            let start = a.len();
            if m.headers.is_empty() {
                a.extend_from_slice(b"NATS/1.0\r\n");
            } else {
                a.extend_from_slice(&m.headers[..m.headers.len().saturating_sub(2)]);
            }
            a.extend_from_slice(b"Nats-Msg-Size: ");
            a.extend_from_slice(crate::consumer_config::decimal(
                &mut [0; 20],
                m.payload.len() as u64,
            ));
            a.extend_from_slice(b"\r\n\r\n");
            Some(a.len() - start)
        } else {
            a.extend_from_slice(m.headers);
            a.extend_from_slice(m.payload);
            (!m.headers.is_empty()).then_some(m.headers.len())
        };
        let chunk = a.split().freeze();
        drop(a);
        let (s, r) = (m.subject.len(), ack.len());
        let shown = chunk.slice(..s);
        let reply = chunk.slice(s..s + r);
        let message = chunk.slice(s + r..);
        self.out
            .publish_built(to, &shown, Some(&reply), header_len, &message);
        s + r + message.len()
    }

    pub(crate) fn has_interest(&self, subject: &[u8]) -> bool {
        !subject.is_empty() && self.shard.has_interest(self.account, subject)
    }

    /// Writes a consumer's config (file streams), off the executor.
    pub(crate) async fn save_consumer_meta(&self, c: &Consumer) {
        let Some(dir) = c.dir.clone() else { return };
        let body = crate::consumer_api::meta_json(c);
        let r = crate::offload::off_executor(move || crate::consumer_api::write_meta(&dir, &body))
            .await;
        if let Some(Err(e)) = r {
            tracing::error!("JetStream: saving consumer metadata: {e}");
        }
    }

    /// Saves the state of consumers that changed (file streams), off the executor.
    pub(crate) async fn save_dirty_consumers(&self) {
        let dirty: Vec<Rc<Consumer>> = self
            .consumers
            .borrow()
            .values()
            .filter(|c| c.dirty.get() && c.dir.is_some())
            .cloned()
            .collect();
        for c in dirty {
            c.dirty.set(false);
            let Some(dir) = c.dir.clone() else { continue };
            let state = c.snapshot();
            let r = crate::offload::off_executor(move || {
                crate::consumer_api::write_state(&dir, &state)
            })
            .await;
            if let Some(Err(e)) = r {
                tracing::error!("JetStream: saving consumer state: {e}");
                c.dirty.set(true);
            }
        }
    }
}

/// A stream's expiry task: rebuilds the TTL queue from the stored messages (streams that allow
/// TTLs), then removes what expires, sleeping until the next expiry or an earlier one arrives.
async fn expire_task(weak: std::rc::Weak<StreamTask>, wake: Rc<crate::consumer_api::Wake>) {
    const SCAN_STEP: usize = 1024;
    let mut next = {
        let Some(t) = weak.upgrade() else { return };
        let allowed = t.config.borrow().allow_msg_ttl;
        allowed.then(|| t.first_last().0.max(1))
    };
    while let Some(from) = next {
        let Some(t) = weak.upgrade() else { return };
        if t.is_stopped() {
            return;
        }
        next = t.recover_expiries_from(from, SCAN_STEP);
        drop(t);
        futures_lite::future::yield_now().await;
    }
    loop {
        let wait = {
            let Some(t) = weak.upgrade() else { return };
            if t.is_stopped() {
                return;
            }
            let now = now_nanos();
            t.expire_due(now);
            let next = t.expiries.borrow().next();
            next.map_or(std::time::Duration::from_secs(3600), |n| {
                std::time::Duration::from_nanos((n - now).clamp(1_000_000, 3_600_000_000_000) as u64)
            })
        };
        futures_lite::future::or(glommio::timer::sleep(wait), wake.clone().notified()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedupe_forgets_ids_older_than_the_window() {
        let mut d = Dedupe::default();
        d.insert("a".into(), 1, 100);
        d.insert("b".into(), 2, 200);
        d.expire(250, 100);
        assert!(!d.ids.contains_key("a"));
        assert_eq!(d.ids.get("b"), Some(&2));
        d.expire(1_000, 100);
        assert!(d.ids.is_empty());
    }

    #[test]
    fn store_refusals_use_nats_server_texts() {
        let e = store_error(&StoreError::MaxMsgs { max: 1 });
        assert_eq!((e.code, e.err_code), (503, 10077));
        assert_eq!(e.description, "maximum messages exceeded");
        let e = store_error(&StoreError::MaxBytes { max: 1 });
        assert_eq!(e.description, "maximum bytes exceeded");
    }
}
