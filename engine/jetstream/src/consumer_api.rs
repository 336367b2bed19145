//! The consumer half of the JetStream API, answered by the stream's owner: `CONSUMER.CREATE`
//! (and `DURABLE.CREATE`), `INFO`, `DELETE`, `NAMES`, `LIST` for the stream's consumers, and
//! each consumer's `MSG.NEXT`, acks and flow-control replies. Shard 0 answers "stream not
//! found" when no stream of the name exists (`service.rs`).

use std::cell::{Cell, RefCell};
use std::io::Write as _;
use std::path::Path;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::Duration;

use tachyon_storage::{ConsumerState, ConsumerStateFile, StdIo};

use bytes::Bytes;
use tachyon_core::service::Delivery;

use crate::api::GoTime;
use crate::consumer::Consumer;
use crate::consumer_config::{
    self as cc, AckKind, ConsumerApi, ConsumerInfo, ConsumerReply, CreateAction, SequenceInfo,
};
use crate::errors::{self, ApiError};
use crate::now_nanos;
use crate::stream::StreamTask;

/// Names and infos per page, as nats-server pages them.
const NAMES_PAGE: usize = 1024;
const LIST_PAGE: usize = 256;

/// A consumer's info as nats-server reports it. Create and info replies show the config with
/// the server's version and API level in its metadata (`dynamic`); lists show it as stored.
pub(crate) fn info_of(t: &StreamTask, c: &Consumer, dynamic: bool) -> ConsumerInfo {
    let st = c.state.borrow();
    let when = |ns: i64| (ns > 0).then(|| GoTime::from_unix_nanos(ns));
    let config = if dynamic {
        c.config
            .borrow()
            .with_dynamic_metadata(&t.js.settings.version, crate::API_LEVEL)
    } else {
        c.config.borrow().clone()
    };
    let max_deliver = config.max_deliver;
    ConsumerInfo {
        stream_name: t.name(),
        name: c.name.clone(),
        created: GoTime::from_unix_nanos(c.created),
        config,
        delivered: SequenceInfo {
            consumer_seq: st.delivered.consumer_seq,
            stream_seq: st.delivered.stream_seq,
            last_active: when(c.delivered_at.get()),
        },
        ack_floor: SequenceInfo {
            consumer_seq: st.ack_floor.consumer_seq,
            stream_seq: st.ack_floor.stream_seq,
            last_active: when(c.acked_at.get()),
        },
        num_ack_pending: st.pending.len() as u64,
        // As nats-server: with one delivery allowed nothing counts as redelivered.
        num_redelivered: if max_deliver == 1 {
            0
        } else {
            st.redelivered.len() as u64
        },
        num_waiting: c.num_waiting(),
        num_pending: {
            drop(st);
            c.num_pending(t)
        },
        // A server outside a cluster writes no `cluster` in consumer info.
        cluster_leader: String::new(),
        push_bound: !c.is_pull() && t.has_interest(c.config.borrow().deliver_subject.as_bytes()),
        paused: c.paused_for(now_nanos()) > 0,
        pause_remaining: c.paused_for(now_nanos()),
        ts: GoTime::from_unix_nanos(now_nanos()),
    }
}

/// The consumer API request `d` for stream `t`.
pub(crate) async fn handle(t: &Rc<StreamTask>, api: ConsumerApi, d: &Delivery) {
    let subject = String::from_utf8_lossy(&t.js.local_api_subject(&d.subject)).into_owned();
    let r = match api {
        ConsumerApi::Create => create(t, &subject, &d.payload).await,
        ConsumerApi::Info => {
            let name = subject.rsplit('.').next().unwrap_or_default();
            match t.consumer(name) {
                Some(c) => Ok(cc::consumer_info_response(
                    ConsumerReply::Info,
                    &info_of(t, &c, true),
                )),
                None => Err(errors::CONSUMER_NOT_FOUND.err()),
            }
        }
        ConsumerApi::Delete => {
            let name = subject.rsplit('.').next().unwrap_or_default().to_string();
            match t.consumer(&name) {
                Some(c) => {
                    remove(t, &c).await;
                    Ok(cc::consumer_delete_response())
                }
                None => Err(errors::CONSUMER_NOT_FOUND.err()),
            }
        }
        ConsumerApi::Names => cc::parse_paged(&d.payload, t.js.settings.strict).map(|offset| {
            let names: Vec<String> = t.consumer_names();
            let total = names.len();
            let page: Vec<String> = names.into_iter().skip(offset).take(NAMES_PAGE).collect();
            cc::consumer_names_response(total, offset, NAMES_PAGE, &page)
        }),
        ConsumerApi::List => cc::parse_paged(&d.payload, t.js.settings.strict).map(|offset| {
            let all = t.consumers_sorted();
            let total = all.len();
            let infos: Vec<ConsumerInfo> = all
                .iter()
                .skip(offset)
                .take(LIST_PAGE)
                .map(|c| info_of(t, c, false))
                .collect();
            cc::consumer_list_response(total, offset, LIST_PAGE, &infos)
        }),
        ConsumerApi::Pause => {
            let name = subject.rsplit('.').next().unwrap_or_default().to_string();
            match cc::parse_pause(&d.payload, t.js.settings.strict) {
                Err(e) => Err(e),
                Ok(until) => match t.consumer(&name) {
                    None => Err(errors::CONSUMER_NOT_FOUND.err()),
                    Some(c) => {
                        {
                            let mut cfg = c.config.borrow_mut();
                            cfg.pause_until = (!until.is_zero()).then_some(until);
                            cfg.set_static_metadata();
                        }
                        c.dirty.set(true);
                        t.save_consumer_meta(&c).await;
                        t.timer_wake.wake();
                        t.pump_one(&c);
                        let remaining = until.unix_nanos().saturating_sub(now_nanos());
                        let paused = !until.is_zero() && remaining > 0;
                        Ok(cc::consumer_pause_response(
                            paused,
                            until,
                            if paused { remaining } else { 0 },
                        ))
                    }
                },
            }
        }
        ConsumerApi::Next => return,
    };
    t.count_api(r.is_err());
    if let Some(reply) = &d.reply {
        let body = match r {
            Ok(b) => b,
            Err(e) => cc::consumer_error(api, &e),
        };
        t.respond_raw(reply, &body);
    }
}

async fn create(t: &Rc<StreamTask>, subject: &str, body: &[u8]) -> Result<Vec<u8>, ApiError> {
    let stream_cfg = t.config.borrow().clone();
    let limits =
        t.js.limits_of(t.account())
            .cloned()
            .ok_or_else(|| errors::NOT_ENABLED_FOR_ACCOUNT.err())?;
    let req = cc::parse_create(subject, body, &stream_cfg, &limits, t.js.settings.strict)?;
    let mut cfg = req.config;
    let name = if !cfg.name.is_empty() {
        cfg.name.clone()
    } else if !cfg.durable_name.is_empty() {
        cfg.durable_name.clone()
    } else {
        random_name()
    };
    if let Some(existing) = t.consumer(&name) {
        let old = existing.config.borrow().clone();
        cc::prepare_for_existing(&mut cfg, &old);
        let same = cc::same_config(&old, &cfg);
        if req.action == CreateAction::Create && (!same || req.inactive_threshold_defaulted) {
            return Err(errors::CONSUMER_ALREADY_EXISTS.err());
        }
        if same {
            return Ok(cc::consumer_info_response(
                ConsumerReply::Create,
                &info_of(t, &existing, true),
            ));
        }
        cc::check_update(&old, &cfg)?;
        // A push consumer keeps its deliver subject while someone still listens there.
        if !old.deliver_subject.is_empty()
            && !cfg.deliver_subject.is_empty()
            && old.deliver_subject != cfg.deliver_subject
            && t.has_interest(old.deliver_subject.as_bytes())
        {
            return Err(errors::CONSUMER_NAME_EXIST.err());
        }
        *existing.config.borrow_mut() = cfg;
        existing.dirty.set(true);
        t.save_consumer_meta(&existing).await;
        t.pump_one(&existing);
        return Ok(cc::consumer_info_response(
            ConsumerReply::Create,
            &info_of(t, &existing, true),
        ));
    }
    if req.action == CreateAction::Update {
        return Err(errors::CONSUMER_DOES_NOT_EXIST.err());
    }
    // The stream's limit, or the account's when that is lower or the stream has none.
    let mut max = stream_cfg.max_consumers;
    if limits.max_consumers > 0 && (max <= 0 || limits.max_consumers < max) {
        max = limits.max_consumers;
    }
    if max > 0 && t.consumer_count() as i64 >= max {
        return Err(errors::MAXIMUM_CONSUMERS_LIMIT.err());
    }
    let dir = t.consumer_dir(&name);
    let c = Rc::new(Consumer::new(
        name.clone(),
        cfg,
        now_nanos(),
        Default::default(),
        dir,
    ));
    c.position(t, false);
    t.save_consumer_meta(&c).await;
    t.add_consumer(c.clone())
        .map_err(|e| errors::CONSUMER_CREATE.with("err", e))?;
    // The reply must not overtake the consumer's subscriptions: a fetch right after it works.
    t.barrier().await;
    ensure_timer(t);
    // Its timers (interest, heartbeats, expiry) start now, not at the timer's next round.
    t.timer_wake.wake();
    t.pump_one(&c);
    Ok(cc::consumer_info_response(
        ConsumerReply::Create,
        &info_of(t, &c, true),
    ))
}

/// nats-server's generated names: 8 random letters and digits... it uses the stream's hash
/// scheme; any unique name of its length will do for clients.
fn random_name() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut x = now_nanos() as u64 ^ (std::process::id() as u64).rotate_left(32);
    let mut s = String::with_capacity(22);
    for _ in 0..22 {
        // xorshift: names need to be unlikely to collide, not unpredictable.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.push(ALPHABET[(x % ALPHABET.len() as u64) as usize] as char);
    }
    s
}

/// Removes a consumer: its subscriptions, its waiting requests (`409 Consumer Deleted`), its
/// files.
pub(crate) async fn remove(t: &StreamTask, c: &Rc<Consumer>) {
    c.close(t);
    t.remove_consumer(&c.name);
    t.drop_interest_of(c);
    if let Some(dir) = c.dir.clone() {
        let _ = crate::offload::off_executor(move || {
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::error!("JetStream: removing {}: {e}", dir.display());
                }
            }
        })
        .await;
    }
}

/// A `MSG.NEXT` request for consumer `c`.
pub(crate) fn next(t: &StreamTask, c: &Consumer, d: &Delivery) {
    let Some(reply) = d.reply.clone() else { return };
    if !c.is_pull() {
        t.send_status(&reply, b"NATS/1.0 409 Consumer is push based\r\n\r\n");
        return;
    }
    let checked = cc::parse_next(&d.payload).and_then(|r| {
        r.check_limits(&c.config.borrow())?;
        Ok(r)
    });
    let r = match checked {
        Ok(r) => r,
        Err(refusal) => {
            t.send_status(&reply, &refusal.header());
            return;
        }
    };
    let timed = r.expires > 0 || r.idle_heartbeat > 0;
    c.add_request(t, reply, r, t.durable_seq());
    if timed {
        t.timer_wake.wake();
    }
}

/// An ack on `$JS.ACK.<stream>.<consumer>.…` for consumer `c`.
pub(crate) fn ack(t: &StreamTask, c: &Consumer, d: &Delivery) {
    let Some((_, _, tokens)) = cc::parse_ack_subject(&d.subject) else {
        return;
    };
    let now = now_nanos();
    let Some(kind) = cc::parse_ack(&d.payload) else {
        // A body nats-server ignores is still confirmed.
        if let Some(reply) = &d.reply {
            t.respond_raw(reply, b"");
        }
        return;
    };
    let settled = c.on_ack(&kind, tokens.sseq, now);
    if !settled.is_empty() {
        t.settled(&settled);
    }
    match kind {
        AckKind::Next { request } => {
            if let Some(reply) = d.reply.clone() {
                let next = Delivery {
                    subject: d.subject.clone(),
                    reply: Some(reply),
                    headers: None,
                    payload: Bytes::from(request),
                    sid: d.sid.clone(),
                };
                self::next(t, c, &next);
            }
        }
        _ => {
            // An ack with a reply subject is confirmed with an empty message.
            if let Some(reply) = &d.reply {
                t.respond_raw(reply, b"");
            }
        }
    }
    t.pump_one(c);
}

/// Starts the stream's consumer timer once: redeliveries, request expiry, heartbeats and
/// idle ephemerals, at the earliest time any consumer needs it (at least once a second).
pub(crate) fn ensure_timer(t: &Rc<StreamTask>) {
    if t.timer_started.replace(true) {
        return;
    }
    let weak: Weak<StreamTask> = Rc::downgrade(t);
    glommio::spawn_local(async move {
        loop {
            let wait = {
                let Some(t) = weak.upgrade() else { return };
                if t.is_stopped() {
                    return;
                }
                let now = now_nanos();
                let mut next = now + 1_000_000_000;
                let mut expired = Vec::new();
                for c in t.consumers_sorted() {
                    let (gone, at) = c.tick(&t, now);
                    if gone {
                        expired.push(c);
                    } else {
                        next = next.min(at);
                    }
                }
                for c in &expired {
                    remove(&t, c).await;
                }
                t.pump_consumers();
                t.save_dirty_consumers().await;
                Duration::from_nanos((next - now).clamp(1_000_000, 1_000_000_000) as u64)
            };
            let Some(t) = weak.upgrade() else { return };
            let woken = t.timer_wake.clone();
            drop(t);
            futures_lite::future::or(glommio::timer::sleep(wait), async move {
                woken.notified().await;
            })
            .await;
        }
    })
    .detach();
}

/// Wakes the consumers' timer early (a request with an expiry or heartbeat sooner than it
/// would look).
#[derive(Default)]
pub(crate) struct Wake {
    flag: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl Wake {
    pub(crate) fn wake(&self) {
        self.flag.set(true);
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }

    pub(crate) async fn notified(self: Rc<Self>) {
        std::future::poll_fn(move |cx| {
            if self.flag.replace(false) {
                Poll::Ready(())
            } else {
                *self.waker.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }
}

/// A consumer's saved config: `{"config":<as nats-server writes it>,"created":<ns>}`.
pub(crate) fn meta_json(c: &Consumer) -> Vec<u8> {
    let mut v = b"{\"config\":".to_vec();
    v.extend_from_slice(&crate::api::gojson::to_vec(&*c.config.borrow()));
    v.extend_from_slice(format!(",\"created\":{}}}", c.created).as_bytes());
    v
}

/// Writes a consumer's metadata whole or not at all (temporary file, sync, rename).
pub(crate) fn write_meta(dir: &Path, body: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join("meta.json.tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(body)?;
        f.sync_data()?;
    }
    std::fs::rename(&tmp, dir.join(META))?;
    std::fs::File::open(dir)?.sync_all()
}

pub(crate) fn write_state(dir: &Path, state: &ConsumerState) -> Result<(), String> {
    let f = ConsumerStateFile::new(Arc::new(StdIo), dir, STATE).map_err(|e| e.to_string())?;
    f.save(state).map_err(|e| e.to_string())
}

const META: &str = "meta.json";
const STATE: &str = "state";

/// What one consumer directory held.
struct Saved {
    name: String,
    config: cc::ConsumerConfig,
    created: i64,
    state: ConsumerState,
}

fn read_saved(dir: &Path, stream: &crate::config::StreamConfig) -> Result<Saved, String> {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let raw = std::fs::read(dir.join(META)).map_err(|e| e.to_string())?;
    let v: serde_json::Value = serde_json::from_slice(&raw).map_err(|e| e.to_string())?;
    let created = v["created"].as_i64().unwrap_or(0);
    // Read back as the create request it was made from: the same decoding and defaults.
    let request = serde_json::json!({"stream_name": stream.name, "config": v["config"]});
    let body = serde_json::to_vec(&request).map_err(|e| e.to_string())?;
    // A legacy ephemeral's config names nothing: its name is the folder's.
    let named = v["config"]["name"].as_str().is_some_and(|n| !n.is_empty())
        || v["config"]["durable_name"]
            .as_str()
            .is_some_and(|n| !n.is_empty());
    let subject = if named {
        format!("$JS.API.CONSUMER.CREATE.{}.{name}", stream.name)
    } else {
        format!("$JS.API.CONSUMER.CREATE.{}", stream.name)
    };
    let config = cc::parse_create(
        &subject,
        &body,
        stream,
        &crate::api::AccountLimits::default(),
        false,
    )
    .map_err(|e| e.description)?
    .config;
    let state = ConsumerStateFile::new(Arc::new(StdIo), dir, STATE)
        .and_then(|f| f.load())
        .map_err(|e| e.to_string())?
        .unwrap_or_default();
    Ok(Saved {
        name,
        config,
        created,
        state,
    })
}

/// Recovers a file stream's consumers (configs and last saved state), off the executor, and
/// subscribes them; the start barrier makes them visible before clients connect.
pub(crate) async fn recover(t: &Rc<StreamTask>) {
    let Some(obs) = t.consumers_dir() else {
        return;
    };
    let stream = t.config.borrow().clone();
    let found = crate::offload::off_executor(move || {
        let mut out = Vec::new();
        let Ok(entries) = std::fs::read_dir(&obs) else {
            return out;
        };
        for e in entries.flatten() {
            let dir = e.path();
            if dir.is_dir() {
                out.push((dir.clone(), read_saved(&dir, &stream)));
            }
        }
        out
    })
    .await
    .unwrap_or_default();
    for (dir, saved) in found {
        match saved {
            Ok(s) => {
                let c = Rc::new(Consumer::new(
                    s.name,
                    s.config,
                    s.created,
                    s.state,
                    Some(dir),
                ));
                c.position(t, true);
                if let Err(e) = t.add_consumer(c) {
                    tracing::error!("JetStream: stream '{}': a consumer: {e}", t.name());
                }
            }
            Err(e) => tracing::error!(
                "JetStream: stream '{}': a consumer in {} failed to load: {e}",
                t.name(),
                dir.display()
            ),
        }
    }
    if t.consumer_count() > 0 {
        ensure_timer(t);
    }
}
