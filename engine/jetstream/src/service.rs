//! The account-wide JetStream API on shard 0, and each shard's command loop.
//!
//! Shard 0 subscribes, in every JetStream account, the requests no single stream answers:
//! `$JS.API.INFO`, `STREAM.CREATE.*`, `STREAM.NAMES`, `STREAM.LIST`, and the stream-scoped
//! ones only to say "stream not found" when no stream of that name exists (the owner of an
//! existing stream subscribes its own subjects and answers them itself).

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;
use tachyon_core::accounts::AccountId;
use tachyon_core::doorbell::BellReceiver;
use tachyon_core::service::{Delivery, InternalClient};
use tachyon_core::shard::Shard;
use tachyon_storage::{ByteAccounting, MemoryStore};

use crate::api::{ApiKind, StreamInfoRequest};
use crate::config::StreamConfig;
use crate::consumer_config::ConsumerApi;
use crate::errors::{self, ApiError};
use crate::meta::{self, Meta};
use crate::registry::{StreamEntry, StreamFigures};
use crate::stream::{Backend, Opened, StreamTask};
use crate::{now_nanos, reply, Command, JetStream};

thread_local! {
    /// The streams this shard owns.
    static LOCAL: RefCell<Vec<Rc<StreamTask>>> = const { RefCell::new(Vec::new()) };
}

/// Keeps a started stream for this shard's maintenance.
pub(crate) fn adopt(t: Rc<StreamTask>) {
    LOCAL.with(|l| l.borrow_mut().push(t));
}

/// Saves the state of this shard's consumers that changed since their last save.
pub(crate) async fn save_consumers() {
    let streams: Vec<Rc<StreamTask>> = LOCAL.with(|l| l.borrow().clone());
    for s in streams {
        s.save_dirty_consumers().await;
    }
}

/// Forgets a deleted stream.
pub(crate) fn forget(t: &Rc<StreamTask>) {
    LOCAL.with(|l| l.borrow_mut().retain(|x| !Rc::ptr_eq(x, t)));
}

/// Once a second on each shard: age limits, interval syncs, deferred evictions, compaction.
pub(crate) fn maintain(_shard: &Rc<Shard>) {
    let streams: Vec<Rc<StreamTask>> = LOCAL.with(|l| l.borrow().clone());
    for s in streams {
        if s.is_stopped() {
            forget(&s);
            continue;
        }
        s.maintain(now_nanos());
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Info,
    Create,
    Names,
    List,
    /// A request naming one stream: answered here only when it does not exist.
    Scoped(ApiKind),
    /// A consumer request naming one stream (the stream's name is token `1` of the subject's
    /// tokens after `$JS.API.CONSUMER.`... see [`consumer_stream`]): "stream not found" here
    /// when it does not exist; its owner answers otherwise.
    ConsumerScoped(ConsumerApi),
}

/// The stream a consumer API subject names: `$JS.API.CONSUMER.<OP>.<stream>...`, or
/// `$JS.API.CONSUMER.DURABLE.CREATE.<stream>.<durable>`.
fn consumer_stream(subject: &[u8]) -> String {
    let tokens: Vec<&[u8]> = subject.split(|b| *b == b'.').collect();
    let i = if tokens.get(3) == Some(&&b"DURABLE"[..]) {
        5
    } else {
        4
    };
    tokens
        .get(i)
        .map(|t| String::from_utf8_lossy(t).into_owned())
        .unwrap_or_default()
}

/// Starts the API service of every JetStream account on this shard (shard 0).
pub(crate) fn start(js: &Arc<JetStream>, shard: &Rc<Shard>) {
    let accounts = shard.global.accounts.len().max(1);
    for account in 0..accounts {
        let account = account as AccountId;
        let client = InternalClient::new(shard, account);
        let mut routes: Vec<(Bytes, Op)> = Vec::new();
        let subs: [(&str, Op); 18] = [
            (
                "$JS.API.CONSUMER.PAUSE.*.*",
                Op::ConsumerScoped(ConsumerApi::Pause),
            ),
            (
                "$JS.API.CONSUMER.CREATE.*",
                Op::ConsumerScoped(ConsumerApi::Create),
            ),
            (
                "$JS.API.CONSUMER.CREATE.*.>",
                Op::ConsumerScoped(ConsumerApi::Create),
            ),
            (
                "$JS.API.CONSUMER.DURABLE.CREATE.*.*",
                Op::ConsumerScoped(ConsumerApi::Create),
            ),
            (
                "$JS.API.CONSUMER.INFO.*.*",
                Op::ConsumerScoped(ConsumerApi::Info),
            ),
            (
                "$JS.API.CONSUMER.DELETE.*.*",
                Op::ConsumerScoped(ConsumerApi::Delete),
            ),
            (
                "$JS.API.CONSUMER.NAMES.*",
                Op::ConsumerScoped(ConsumerApi::Names),
            ),
            (
                "$JS.API.CONSUMER.LIST.*",
                Op::ConsumerScoped(ConsumerApi::List),
            ),
            ("$JS.API.INFO", Op::Info),
            ("$JS.API.STREAM.CREATE.*", Op::Create),
            ("$JS.API.STREAM.NAMES", Op::Names),
            ("$JS.API.STREAM.LIST", Op::List),
            ("$JS.API.STREAM.INFO.*", Op::Scoped(ApiKind::StreamInfo)),
            ("$JS.API.STREAM.UPDATE.*", Op::Scoped(ApiKind::StreamUpdate)),
            ("$JS.API.STREAM.DELETE.*", Op::Scoped(ApiKind::StreamDelete)),
            ("$JS.API.STREAM.PURGE.*", Op::Scoped(ApiKind::StreamPurge)),
            ("$JS.API.STREAM.MSG.GET.*", Op::Scoped(ApiKind::MsgGet)),
            (
                "$JS.API.STREAM.MSG.DELETE.*",
                Op::Scoped(ApiKind::MsgDelete),
            ),
        ];
        for (base, op) in subs {
            for subject in js.api_subjects(base) {
                match client.subscribe(&subject, None) {
                    Ok(sid) => routes.push((sid, op)),
                    Err(e) => tracing::error!("JetStream API: subscribing {subject}: {e}"),
                }
            }
        }
        let api = Api {
            js: js.clone(),
            account,
            out: InternalClient::new(shard, account),
        };
        let enabled = js.enabled_for(account);
        glommio::spawn_local(async move {
            let mut client = client;
            while let Some(d) = client.next().await {
                let op = routes.iter().find(|(s, _)| *s == d.sid).map(|(_, op)| *op);
                match op {
                    Some(op) if enabled => api.handle(op, d),
                    // An account without JetStream gets nats-server's 503 for every request.
                    Some(Op::ConsumerScoped(c)) => api.respond(
                        &d.reply,
                        &crate::consumer_config::consumer_error(
                            c,
                            &errors::NOT_ENABLED_FOR_ACCOUNT.err(),
                        ),
                    ),
                    Some(op) => api.respond(
                        &d.reply,
                        &reply::error(op.kind(), &errors::NOT_ENABLED_FOR_ACCOUNT.err()),
                    ),
                    None => {}
                }
            }
        })
        .detach();
    }
}

impl Op {
    /// The reply type of the request.
    fn kind(self) -> ApiKind {
        match self {
            Op::Info => ApiKind::AccountInfo,
            Op::Create => ApiKind::StreamCreate,
            Op::Names => ApiKind::StreamNames,
            Op::List => ApiKind::StreamList,
            Op::Scoped(k) => k,
            // Consumer replies are written by `consumer_config`; never asked for here.
            Op::ConsumerScoped(_) => ApiKind::StreamInfo,
        }
    }
}

struct Api {
    js: Arc<JetStream>,
    account: AccountId,
    out: InternalClient,
}

impl Api {
    fn respond(&self, to: &Option<Bytes>, body: &[u8]) {
        if let Some(r) = to {
            self.out.publish(r, None, None, body);
        }
    }

    fn count(&self, failed: bool) {
        if let Some(c) = self.js.registry.api(self.account) {
            c.count(failed);
        }
    }

    fn answer(&self, to: &Option<Bytes>, kind: ApiKind, r: Result<Vec<u8>, ApiError>) {
        reply::answer(&self.out, self.js.registry.api(self.account), to, kind, r);
    }

    fn handle(&self, op: Op, d: Delivery) {
        let last_token = d
            .subject
            .rsplit(|b| *b == b'.')
            .next()
            .map(|t| String::from_utf8_lossy(t).into_owned())
            .unwrap_or_default();
        match op {
            Op::Info => {
                let body = reply::account_info(&self.js, self.account);
                self.count(false);
                self.respond(&d.reply, &body);
            }
            Op::Names => {
                let r = reply::stream_names(&self.js, self.account, &d.payload);
                self.answer(&d.reply, ApiKind::StreamNames, r);
            }
            Op::List => {
                let r = reply::stream_list(&self.js, self.account, &d.payload);
                self.answer(&d.reply, ApiKind::StreamList, r);
            }
            Op::Scoped(kind) => {
                let entry = self.js.registry.get(self.account, &last_token);
                match entry {
                    None => self.answer(&d.reply, kind, Err(errors::STREAM_NOT_FOUND.err())),
                    // Deletes are decided here, so one is never answered twice ("deleted" by
                    // its owner, "not found" here once the owner removed it).
                    Some(e) if kind == ApiKind::StreamDelete && e.ready => self.js.send(
                        e.owner,
                        Command::Delete {
                            account: self.account,
                            name: last_token,
                            reply: d.reply.clone(),
                        },
                    ),
                    Some(_) => {}
                }
            }
            Op::ConsumerScoped(c) => {
                let local = self.js.local_api_subject(&d.subject);
                let stream = consumer_stream(&local);
                if self.js.registry.get(self.account, &stream).is_none() {
                    self.count(true);
                    let e = errors::STREAM_NOT_FOUND.err();
                    self.respond(&d.reply, &crate::consumer_config::consumer_error(c, &e));
                }
            }
            Op::Create => {
                let kind = ApiKind::StreamCreate;
                match self.create(&last_token, &d) {
                    Ok(Some(body)) => {
                        self.count(false);
                        self.respond(&d.reply, &body);
                    }
                    // Handed to the owner shard, which answers.
                    Ok(None) => self.count(false),
                    Err(e) => {
                        self.count(true);
                        self.respond(&d.reply, &reply::error(kind, &e));
                    }
                }
            }
        }
    }

    /// Checks a create and places it; `Some(reply)` when it is answered here (the stream
    /// exists with this very config), `None` once its owner shard took it over.
    fn create(&self, name: &str, d: &Delivery) -> Result<Option<Vec<u8>>, ApiError> {
        let js = &self.js;
        let limits = js
            .limits_of(self.account)
            .ok_or_else(|| errors::NOT_ENABLED_FOR_ACCOUNT.err())?;
        let cfg = crate::config::parse_create_for(
            &d.payload,
            name,
            js.settings.strict,
            limits,
            |raw, sent| js.check_create(self.account, raw, sent),
        )?;
        if let Some(feature) = cfg.unsupported() {
            return Err(errors::not_supported(feature));
        }
        if let Some(existing) = js.registry.get(self.account, &cfg.name) {
            if existing.ready && cfg.same_as_existing(&existing.config) {
                return Ok(Some(reply::stream_info_of_entry(js, &existing)));
            }
            return Err(errors::STREAM_NAME_EXIST.err());
        }
        // Again with the defaults filled in (an unlimited `max_bytes` reserves 1 byte).
        js.check_create(self.account, &cfg, true)?;
        self.js.check_overlap(self.account, &cfg, None)?;
        let owner = self.js.place();
        let created = now_nanos();
        // Reserved now, so a second create of the name or of overlapping subjects is refused
        // while the owner opens the store.
        {
            let mut reg = self.js.registry.lock();
            reg.entry(self.account).or_default().streams.insert(
                cfg.name.clone(),
                StreamEntry {
                    config: cfg.clone(),
                    owner,
                    created,
                    figures: Arc::new(StreamFigures::default()),
                    ready: false,
                },
            );
        }
        self.js.send(
            owner,
            Command::Create {
                account: self.account,
                config: Box::new(cfg),
                reply: d.reply.clone(),
                created,
            },
        );
        Ok(None)
    }
}

/// A shard's command loop: creates placed here by shard 0's API service.
pub(crate) async fn commands(js: Arc<JetStream>, shard: Rc<Shard>, rx: BellReceiver) {
    let mut waiter = rx.attach();
    loop {
        let j = js.clone();
        let id = shard.id;
        waiter.wait_until(move || j.has_command(id)).await;
        while let Some(cmd) = js.take_command(shard.id) {
            match cmd {
                Command::Create {
                    account,
                    config,
                    reply,
                    created,
                } => create_here(&js, &shard, account, *config, reply, created).await,
                Command::Delete {
                    account,
                    name,
                    reply,
                } => {
                    let task = LOCAL.with(|l| {
                        l.borrow()
                            .iter()
                            .find(|t| t.account() == account && t.name() == name && !t.is_stopped())
                            .cloned()
                    });
                    match task {
                        Some(t) => {
                            t.delete(reply).await;
                            forget(&t);
                        }
                        None => {
                            let out = InternalClient::new(&shard, account);
                            if let Some(r) = &reply {
                                let e = errors::STREAM_NOT_FOUND.err();
                                out.publish(
                                    r,
                                    None,
                                    None,
                                    &reply::error(ApiKind::StreamDelete, &e),
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}

async fn create_here(
    js: &Arc<JetStream>,
    shard: &Rc<Shard>,
    account: AccountId,
    config: StreamConfig,
    reply_to: Option<Bytes>,
    created: i64,
) {
    let kind = ApiKind::StreamCreate;
    let out = InternalClient::new(shard, account);
    let name = config.name.clone();
    let fail = |e: ApiError| {
        if let Some(acc) = js.registry.lock().get_mut(&account) {
            acc.streams.remove(&name);
        }
        if let Some(c) = js.registry.api(account) {
            c.errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        if let Some(r) = &reply_to {
            out.publish(r, None, None, &reply::error(kind, &e));
        }
    };
    let (backend, dir) = if config.is_memory() {
        let store = MemoryStore::with_accounting(config.limits(), ByteAccounting::NatsMemory);
        (Backend::Memory(store), None)
    } else {
        let acc_name = if account == tachyon_core::accounts::GLOBAL {
            "$G".to_string()
        } else {
            shard.global.accounts.name(account).to_string()
        };
        let dir = js.account_dir(&acc_name).join(&name);
        let m = Meta {
            config: config.clone(),
            created,
        };
        let d2 = dir.clone();
        match crate::offload::off_executor(move || m.save(&d2)).await {
            Some(Ok(())) => {}
            Some(Err(e)) => return fail(errors::STREAM_CREATE.with("err", e)),
            None => return fail(errors::STREAM_CREATE.with("err", "storage panicked")),
        }
        match meta::open_file(js, dir.clone(), &config).await {
            Ok(f) => (Backend::File(Box::new(f)), Some(dir)),
            Err(e) => return fail(errors::STREAM_CREATE.with("err", e)),
        }
    };
    // A configured first sequence: the first publish gets it.
    let backend = match crate::stream::start_at(backend, config.first_seq).await {
        Ok(b) => b,
        Err(e) => return fail(errors::STREAM_CREATE.with("err", e)),
    };
    let opened = Opened {
        config,
        created,
        backend,
        dir,
    };
    let task = match StreamTask::start(js, shard, account, opened) {
        Ok(t) => t,
        Err(e) => return fail(e),
    };
    // The reply must not overtake the interest: a publish sent right after it is stored.
    shard.barrier().await;
    adopt(task.clone());
    if let Some(r) = &reply_to {
        let body = reply::stream_info(&task, kind, &StreamInfoRequest::default());
        out.publish(r, None, None, &body);
    }
}
