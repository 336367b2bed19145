//! Publish/subscribe permissions: the form the config gives ([`Permissions`]), the form compiled
//! once per user ([`CompiledPerms`], shared read-only by every connection of that user), and the
//! per-connection checker ([`PermChecker`]) whose caches make a warm publish check a hash lookup
//! without allocation, like nats-server's per-client permission cache.
//!
//! Matching follows nats-server's sublist: a client's subject is taken token by token as a
//! literal (a `*` in it only meets a pattern's `*` or `>`), a permission entry is a pattern.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rustc_hash::FxHashMap;
use tachyon_protocol::subject;

pub use tachyon_settings::permissions::{Permissions, ResponsePermission, SubjectPermission};

/// nats-server's `maxPermCacheSize`: past this many cached publish subjects the cache restarts.
const MAX_PUB_CACHE: usize = 128;
/// nats-server's `maxDenyPermCacheSize`, for the delivery-time deny filter.
const MAX_DENY_CACHE: usize = 256;
/// nats-server prunes tracked reply subjects after this many new ones or this much time.
const REPLY_PRUNE_COUNT: u32 = 4096;
const REPLY_PRUNE_EVERY: Duration = Duration::from_secs(1);

/// A subscribe entry: a subject pattern, optionally limited to a queue group (`"foo q"`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct SubEntry {
    subject: Box<[u8]>,
    queue: Option<Box<[u8]>>,
}

impl SubEntry {
    fn parse(text: &str) -> SubEntry {
        let mut parts = text.split_whitespace();
        let subject = parts.next().unwrap_or("").as_bytes().into();
        let queue = parts.next().map(|q| q.as_bytes().into());
        SubEntry { subject, queue }
    }
}

/// A user's permissions ready for matching; built once, shared by that user's connections.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CompiledPerms {
    pub_allow: Option<Vec<Box<[u8]>>>,
    pub_deny: Vec<Box<[u8]>>,
    /// Empty means no allow list: nats-server builds the subscribe allow list only when it has
    /// entries.
    sub_allow: Vec<SubEntry>,
    sub_deny: Vec<SubEntry>,
    response: Option<ResponsePermission>,
}

impl CompiledPerms {
    pub fn compile(p: &Permissions) -> CompiledPerms {
        let bytes = |s: &String| -> Box<[u8]> { s.as_bytes().into() };
        let (pub_allow, pub_deny) = match &p.publish {
            Some(sp) => (
                sp.allow.as_ref().map(|a| a.iter().map(bytes).collect()),
                // A queue qualifier means nothing for publishing; the subject part still denies.
                sp.deny.iter().map(|d| SubEntry::parse(d).subject).collect(),
            ),
            None => (None, Vec::new()),
        };
        let (sub_allow, sub_deny) = match &p.subscribe {
            Some(sp) => (
                sp.allow
                    .iter()
                    .flatten()
                    .map(|s| SubEntry::parse(s))
                    .collect(),
                sp.deny.iter().map(|s| SubEntry::parse(s)).collect(),
            ),
            None => (Vec::new(), Vec::new()),
        };
        CompiledPerms {
            pub_allow,
            pub_deny,
            sub_allow,
            sub_deny,
            response: p.response,
        }
    }

    fn checks_publish(&self) -> bool {
        self.pub_allow.is_some() || !self.pub_deny.is_empty()
    }

    /// The static lists alone (no reply tracking).
    fn publish_allowed(&self, subj: &[u8]) -> bool {
        let allowed = match &self.pub_allow {
            Some(allow) => allow.iter().any(|p| subject::matches(p, subj)),
            None => true,
        };
        allowed && !self.pub_deny.iter().any(|p| subject::matches(p, subj))
    }

    /// nats-server's `canSubscribe`: plain entries grant plain and queue subscriptions; queue
    /// entries matching the subject decide for a queue subscription alone.
    pub fn can_subscribe(&self, subj: &[u8], queue: Option<&[u8]>) -> bool {
        if !self.sub_allow.is_empty() {
            let mut plain = false;
            let mut queued = false;
            let mut queue_ok = false;
            for e in self
                .sub_allow
                .iter()
                .filter(|e| subject::matches(&e.subject, subj))
            {
                match (&e.queue, queue) {
                    (None, _) => plain = true,
                    (Some(eq), Some(q)) => {
                        queued = true;
                        queue_ok |= subject::matches(eq, q);
                    }
                    (Some(_), None) => queued = true,
                }
            }
            let allowed = match queue {
                Some(_) if queued => queue_ok,
                _ => plain,
            };
            if !allowed {
                return false;
            }
        }
        !self.deny_matches(subj, queue)
    }

    /// Whether the subscribe deny list covers `subj` (for a queue subscription, also the
    /// entries that name a matching queue).
    fn deny_matches(&self, subj: &[u8], queue: Option<&[u8]>) -> bool {
        self.sub_deny.iter().any(|e| {
            subject::matches(&e.subject, subj)
                && match (&e.queue, queue) {
                    (None, _) => true,
                    (Some(eq), Some(q)) => subject::matches(eq, q),
                    (Some(_), None) => false,
                }
        })
    }

    /// Whether deliveries to this subscription must be filtered: a deny entry can match some
    /// of the subjects it receives (nats-server's `loadMsgDenyFilterIfNeeded`).
    pub fn needs_delivery_filter(&self, subj: &[u8], queue: Option<&[u8]>) -> bool {
        (queue.is_some() || !subject::is_literal(subj))
            && self.sub_deny.iter().any(|e| collide(&e.subject, subj))
    }
}

/// Whether some literal subject matches both patterns (nats-server's `SubjectsCollide`).
fn collide(a: &[u8], b: &[u8]) -> bool {
    let mut at = subject::tokens(a);
    let mut bt = subject::tokens(b);
    loop {
        match (at.next(), bt.next()) {
            (None, None) => return true,
            (Some(x), Some(y)) => {
                if x == b">" || y == b">" {
                    return true;
                }
                if x != b"*" && y != b"*" && x != y {
                    return false;
                }
            }
            _ => return false,
        }
    }
}

const LAST_SUBJECT_MAX: usize = 64;

/// One remembered subject (up to 64 bytes) and whether publishing to it is allowed.
#[derive(Debug, Clone, Copy)]
struct LastSubject {
    len: u8,
    allowed: bool,
    bytes: [u8; LAST_SUBJECT_MAX],
}

impl Default for LastSubject {
    fn default() -> Self {
        LastSubject {
            len: 0,
            allowed: false,
            bytes: [0; LAST_SUBJECT_MAX],
        }
    }
}

impl LastSubject {
    #[inline]
    fn get(&self, subj: &[u8]) -> Option<bool> {
        let len = self.len as usize;
        (len != 0 && subj.len() == len && self.bytes.get(..len) == Some(subj))
            .then_some(self.allowed)
    }

    fn set(&mut self, subj: &[u8], allowed: bool) {
        match self.bytes.get_mut(..subj.len()) {
            Some(dst) if !subj.is_empty() => {
                dst.copy_from_slice(subj);
                self.len = subj.len() as u8;
                self.allowed = allowed;
            }
            _ => self.len = 0,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct TrackedReply {
    at: Instant,
    used: i64,
}

/// One connection's view of its user's permissions, with the caches that keep checks cheap.
#[derive(Debug)]
pub struct PermChecker {
    perms: Arc<CompiledPerms>,
    pub_cache: FxHashMap<Bytes, bool>,
    /// The last subject published and its verdict, in front of `pub_cache`: publishers mostly
    /// repeat a subject, and a short byte compare is far cheaper than hashing it. Inline, so
    /// updating it never allocates.
    last_pub: LastSubject,
    /// Per delivered subject: whether a plain deny entry matches, and whether a queue-qualified
    /// one does (then the queue decides, uncached).
    deny_cache: FxHashMap<Bytes, (bool, bool)>,
    replies: FxHashMap<Bytes, TrackedReply>,
    replies_since_prune: u32,
    last_prune: Instant,
}

impl PermChecker {
    pub fn new(perms: Arc<CompiledPerms>) -> PermChecker {
        PermChecker {
            perms,
            pub_cache: FxHashMap::default(),
            last_pub: LastSubject::default(),
            deny_cache: FxHashMap::default(),
            replies: FxHashMap::default(),
            replies_since_prune: 0,
            last_prune: Instant::now(),
        }
    }

    pub fn perms(&self) -> &CompiledPerms {
        &self.perms
    }

    /// Whether a PUB to `subj` passes: cached static lists, then tracked reply subjects.
    pub fn can_publish(&mut self, subj: &[u8]) -> bool {
        if !self.perms.checks_publish() {
            return true;
        }
        if let Some(allowed) = self.last_pub.get(subj) {
            return allowed;
        }
        if let Some(&allowed) = self.pub_cache.get(subj) {
            if allowed || self.perms.response.is_none() {
                self.last_pub.set(subj, allowed);
                return allowed;
            }
        }
        let allowed = self.perms.publish_allowed(subj);
        if !allowed && self.perms.response.is_some() {
            // Reply subjects are one-off: caching their refusal would only churn the cache.
            return self.response_allowed(subj, Instant::now());
        }
        self.cache_pub(subj, allowed);
        allowed
    }

    fn cache_pub(&mut self, subj: &[u8], allowed: bool) {
        if allowed || self.perms.response.is_none() {
            self.last_pub.set(subj, allowed);
        }
        if self.pub_cache.len() >= MAX_PUB_CACHE {
            self.pub_cache.clear();
        }
        self.pub_cache.insert(Bytes::copy_from_slice(subj), allowed);
    }

    fn response_allowed(&mut self, subj: &[u8], now: Instant) -> bool {
        let Some(rp) = self.perms.response else {
            return false;
        };
        let Some(r) = self.replies.get_mut(subj) else {
            return false;
        };
        r.used += 1;
        let over = rp.max_msgs > 0 && r.used > rp.max_msgs;
        let expired = rp.expires.is_some_and(|e| now.duration_since(r.at) > e);
        if over || expired {
            self.replies.remove(subj);
            return false;
        }
        true
    }

    pub fn tracks_replies(&self) -> bool {
        self.perms.response.is_some()
    }

    /// A message with reply subject `reply` was delivered to this client: with
    /// `allow_responses`, it may now answer there.
    pub fn note_reply(&mut self, reply: &[u8], now: Instant) {
        if self.perms.response.is_none() || reply.is_empty() {
            return;
        }
        if self.pub_cache.get(reply) == Some(&true) || self.perms.publish_allowed(reply) {
            return;
        }
        match self.replies.get_mut(reply) {
            Some(r) => *r = TrackedReply { at: now, used: 0 },
            None => {
                self.replies.insert(
                    Bytes::copy_from_slice(reply),
                    TrackedReply { at: now, used: 0 },
                );
            }
        }
        self.replies_since_prune += 1;
        if self.replies_since_prune > REPLY_PRUNE_COUNT
            || now.duration_since(self.last_prune) > REPLY_PRUNE_EVERY
        {
            self.prune_replies(now);
        }
    }

    fn prune_replies(&mut self, now: Instant) {
        if let Some(rp) = self.perms.response {
            self.replies.retain(|_, r| {
                !(rp.max_msgs > 0 && r.used >= rp.max_msgs
                    || rp.expires.is_some_and(|e| now.duration_since(r.at) > e))
            });
        }
        self.replies_since_prune = 0;
        self.last_prune = now;
    }

    pub fn can_subscribe(&self, subj: &[u8], queue: Option<&[u8]>) -> bool {
        self.perms.can_subscribe(subj, queue)
    }

    /// Delivery-time filter for subscriptions flagged by `needs_delivery_filter`: a wildcard
    /// subscription that was allowed must still not receive a denied subject.
    pub fn delivery_denied(&mut self, subj: &[u8], queue: Option<&[u8]>) -> bool {
        let (plain, queued) = match self.deny_cache.get(subj) {
            Some(&hit) => hit,
            None => {
                let mut hit = (false, false);
                for e in self.perms.sub_deny.iter() {
                    if subject::matches(&e.subject, subj) {
                        match e.queue {
                            None => hit.0 = true,
                            Some(_) => hit.1 = true,
                        }
                    }
                }
                if self.deny_cache.len() >= MAX_DENY_CACHE {
                    self.deny_cache.clear();
                }
                self.deny_cache.insert(Bytes::copy_from_slice(subj), hit);
                hit
            }
        };
        plain || (queued && queue.is_some() && self.perms.deny_matches(subj, queue))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn perms(
        pub_allow: Option<&[&str]>,
        pub_deny: &[&str],
        sub_allow: Option<&[&str]>,
        sub_deny: &[&str],
    ) -> Arc<CompiledPerms> {
        Arc::new(CompiledPerms::compile(&Permissions {
            publish: Some(SubjectPermission {
                allow: pub_allow.map(list),
                deny: list(pub_deny),
            }),
            subscribe: Some(SubjectPermission {
                allow: sub_allow.map(list),
                deny: list(sub_deny),
            }),
            response: None,
        }))
    }

    #[test]
    fn publish_allow_and_deny() {
        let mut c = PermChecker::new(perms(Some(&["foo.>", "bar"]), &["foo.secret"], None, &[]));
        assert!(c.can_publish(b"foo.a"));
        assert!(c.can_publish(b"foo.a.b"));
        assert!(c.can_publish(b"bar"));
        assert!(!c.can_publish(b"foo"));
        assert!(!c.can_publish(b"foo.secret"));
        assert!(!c.can_publish(b"baz"));
        // Cached answers agree with the first ones.
        assert!(c.can_publish(b"foo.a"));
        assert!(!c.can_publish(b"foo.secret"));
        assert_eq!(c.pub_cache.len(), 6);
    }

    #[test]
    fn publish_cache_stays_bounded() {
        let mut c = PermChecker::new(perms(Some(&["x.*"]), &[], None, &[]));
        for i in 0..1000 {
            assert!(c.can_publish(format!("x.{i}").as_bytes()));
        }
        assert!(c.pub_cache.len() <= MAX_PUB_CACHE);
    }

    #[test]
    fn no_publish_lists_means_everything() {
        let mut c = PermChecker::new(perms(None, &[], Some(&["a"]), &[]));
        assert!(c.can_publish(b"anything.at.all"));
        assert!(c.pub_cache.is_empty());
    }

    #[test]
    fn subscribe_allow_deny_and_wildcards() {
        let c = PermChecker::new(perms(None, &[], Some(&["foo.>", "bar.*"]), &["foo.secret"]));
        assert!(c.can_subscribe(b"foo.a", None));
        assert!(c.can_subscribe(b"foo.>", None));
        assert!(c.can_subscribe(b"bar.*", None));
        // nats-server's sublist takes the `>` of `bar.>` as one literal token, which `bar.*`
        // matches: it lets this subscription through, and so do we.
        assert!(c.can_subscribe(b"bar.>", None));
        assert!(!c.can_subscribe(b"foo.secret", None));
        assert!(!c.can_subscribe(b"baz", None));
        assert!(!c.can_subscribe(b">", None));
    }

    #[test]
    fn queue_entries() {
        // allow = ["foo", "foo v1"]: plain foo, but queue subscriptions to foo only in v1.
        let c = PermChecker::new(perms(
            None,
            &[],
            Some(&["foo", "foo v1", "bar v.*"]),
            &["baz bad"],
        ));
        assert!(c.can_subscribe(b"foo", None));
        assert!(c.can_subscribe(b"foo", Some(b"v1")));
        assert!(!c.can_subscribe(b"foo", Some(b"v2")));
        // A queue entry alone grants no plain subscription.
        assert!(!c.can_subscribe(b"bar", None));
        assert!(c.can_subscribe(b"bar", Some(b"v.x")));
        assert!(!c.can_subscribe(b"bar", Some(b"w")));
        let d = PermChecker::new(perms(None, &[], None, &["baz bad"]));
        assert!(d.can_subscribe(b"baz", None));
        assert!(d.can_subscribe(b"baz", Some(b"good")));
        assert!(!d.can_subscribe(b"baz", Some(b"bad")));
    }

    #[test]
    fn delivery_filter_for_wildcards_over_deny() {
        let p = perms(None, &[], None, &["foo.secret", "bar.* q"]);
        assert!(p.needs_delivery_filter(b"foo.*", None));
        assert!(p.needs_delivery_filter(b">", None));
        assert!(!p.needs_delivery_filter(b"foo.public", None));
        assert!(!p.needs_delivery_filter(b"baz.*", None));
        assert!(p.needs_delivery_filter(b"bar.x", Some(b"q")));
        let mut c = PermChecker::new(p);
        assert!(c.delivery_denied(b"foo.secret", None));
        assert!(!c.delivery_denied(b"foo.public", None));
        assert!(c.delivery_denied(b"bar.x", Some(b"q")));
        assert!(!c.delivery_denied(b"bar.x", Some(b"other")));
        assert!(!c.delivery_denied(b"bar.x", None));
        // Second time from the cache.
        assert!(c.delivery_denied(b"foo.secret", None));
        assert!(c.delivery_denied(b"bar.x", Some(b"q")));
    }

    #[test]
    fn collisions() {
        assert!(collide(b"foo.*", b"foo.bar"));
        assert!(collide(b"foo.>", b"*.bar.baz"));
        assert!(collide(b">", b"a"));
        assert!(!collide(b"foo", b"foo.>"));
        assert!(!collide(b"foo.*", b"bar.*"));
        assert!(!collide(b"a.b", b"a.b.c"));
    }

    #[test]
    fn responses_max_and_expiry() {
        let mut p = Permissions {
            publish: Some(SubjectPermission {
                allow: Some(vec![]),
                deny: vec![],
            }),
            response: Some(ResponsePermission {
                max_msgs: 2,
                expires: Some(Duration::from_millis(50)),
            }),
            ..Default::default()
        };
        let mut c = PermChecker::new(Arc::new(CompiledPerms::compile(&p)));
        assert!(!c.can_publish(b"_INBOX.1"));
        let t0 = Instant::now();
        c.note_reply(b"_INBOX.1", t0);
        assert!(c.can_publish(b"_INBOX.1"));
        assert!(c.can_publish(b"_INBOX.1"));
        assert!(!c.can_publish(b"_INBOX.1"), "max 2 responses");
        c.note_reply(b"_INBOX.2", t0);
        assert!(!c.response_allowed(b"_INBOX.2", t0 + Duration::from_millis(60)));

        p.response = Some(ResponsePermission {
            max_msgs: 0,
            expires: None,
        });
        let mut c = PermChecker::new(Arc::new(CompiledPerms::compile(&p)));
        c.note_reply(b"r", t0);
        for _ in 0..10 {
            assert!(c.can_publish(b"r"));
        }
        assert!(!c.can_publish(b"other"));
    }

    #[test]
    fn replies_already_allowed_are_not_tracked() {
        let p = Permissions {
            publish: Some(SubjectPermission {
                allow: Some(list(&["_INBOX.>"])),
                deny: vec![],
            }),
            response: Some(ResponsePermission::default()),
            ..Default::default()
        };
        let mut c = PermChecker::new(Arc::new(CompiledPerms::compile(&p)));
        c.note_reply(b"_INBOX.x", Instant::now());
        assert!(c.replies.is_empty());
        c.note_reply(b"svc.reply", Instant::now());
        assert_eq!(c.replies.len(), 1);
    }

    #[test]
    fn last_subject_remembers_one_short_subject() {
        let mut l = LastSubject::default();
        assert_eq!(l.get(b"a"), None);
        l.set(b"orders.new", true);
        assert_eq!(l.get(b"orders.new"), Some(true));
        assert_eq!(l.get(b"orders.ne"), None);
        assert_eq!(l.get(b"orders.newx"), None);
        l.set(b"secret.x", false);
        assert_eq!(l.get(b"secret.x"), Some(false));
        assert_eq!(l.get(b"orders.new"), None);
        // Too long to keep: forgets rather than keeps a stale verdict.
        l.set(&[b'a'; 65], true);
        assert_eq!(l.get(&[b'a'; 65]), None);
        assert_eq!(l.get(b"secret.x"), None);
    }
}
