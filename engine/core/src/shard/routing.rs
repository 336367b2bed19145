//! The publish path: a PUB from a connection of this shard (or a routed message from another
//! shard) is delivered to local subscribers, pushed once to each interested shard, and given
//! to exactly one member of each queue group; imports route it again into other accounts.

use std::rc::Rc;

use bytes::Bytes;
use tachyon_protocol::headers;

use super::responses::{self, Verdict};
use super::{LinkSource, Shard};
use crate::accounts::AccountId;
use crate::client::{ClientState, SendStatus, SubRef};
use crate::envelope::{Envelope, ForwardedResponse, MsgBody, MsgParts, QueuePicks, RoutedMsg};
use crate::piece::Piece;
use crate::ring::InSlot;
use crate::sublist::MatchResult;

const _: () = assert!(tachyon_settings::options::MAX_PAYLOAD_LIMIT <= u32::MAX as usize);

/// A message crossing shards whose subject, reply and payload come to at most this many bytes
/// is copied into the ring rather than sharing the publisher's buffer: a reference count that
/// two cores pass back and forth costs more than a copy this size. `perf/benches/ring.rs`
/// (`ring_message_bytes`, two threads): copied / shared 85 / 121 ns at 16 B, 85 / 137 at
/// 128 B, 124 / 128 at 1 KiB, 161 / 133 at 2 KiB; so a 1 KiB payload with its subject still
/// copies, 2 KiB does not.
pub(crate) const COPY_MAX: usize = 1280;
/// One message as delivery sees it: borrowed from the publisher's read buffer.
#[derive(Clone, Copy)]
struct MsgView<'a> {
    /// What the subscription matched.
    subject: &'a [u8],
    /// What the MSG line says: `subject`, except for a JetStream delivery, which is routed to
    /// an inbox or deliver subject and shows the message's own subject.
    shown: &'a [u8],
    reply: Option<&'a [u8]>,
    /// Set for HMSG: `payload` starts with this many bytes of header block.
    header_len: Option<usize>,
    payload: &'a [u8],
    /// The shard it was published on.
    src: u16,
    /// The publishing connection's id there (0 for none).
    origin: u64,
}

/// One published message as routing passes it on: `Bytes` handles, so a remote shard gets a
/// clone, not a copy. Imports route the same message again under another subject or reply.
#[derive(Clone, Copy)]
struct Published<'a> {
    subject: Piece<'a>,
    reply: Option<Piece<'a>>,
    header_len: Option<usize>,
    payload: Piece<'a>,
    /// Delivered showing this subject instead of `subject` ([`Shard::publish_as`]).
    shown: Option<Piece<'a>>,
}

/// Where one publish goes on one remote shard; reused between publishes.
#[derive(Default)]
pub(super) struct Target {
    plain: bool,
    picks: QueuePicks,
    touched: bool,
}

impl Shard {
    fn deliver(&self, sub: &SubRef, m: MsgView<'_>) -> bool {
        let MsgView {
            subject,
            shown,
            reply,
            header_len,
            payload,
            src,
            origin,
        } = m;
        let client = &sub.client;
        if sub.removed.get() || client.is_closed() || client.affinity.skips(src) {
            return false;
        }
        if client.link.get() {
            return self.leaf_hit(sub);
        }
        client.affinity.note(src);
        if sub.deny_filter.get() && denied_delivery(client, subject, sub.queue.as_deref()) {
            return false;
        }
        let max = sub.max.get();
        let n = sub.delivered.get() + 1;
        if max != 0 && n > max {
            return false;
        }
        sub.delivered.set(n);
        // A client that did not ask for headers gets the body only, as nats-server does.
        let (header_len, payload) = match header_len {
            Some(h) if !client.flags.get().headers => (None, payload.get(h..).unwrap_or(&[])),
            h => (h, payload),
        };
        let status = if client.defers() {
            // A client past its stall mark: held in its backlog, in arrival order whichever
            // shard it came from, and the ring that brought it goes on (`defer_msg`).
            client.defer_msg(shown, &sub.sid, reply, header_len, payload)
        } else {
            client.send_msg(shown, &sub.sid, reply, header_len, payload)
        };
        match status {
            SendStatus::Queued => {}
            SendStatus::Stalled if src == self.id => {
                // The publisher's reader pauses right after this op (each feeder checks after
                // its own), so the list only needs the client once per run of deliveries.
                let mut stalled = self.stalled.borrow_mut();
                if stalled.last().is_none_or(|g| g.cid != client.id) {
                    stalled.push(client.gate.clone());
                }
            }
            // From another shard's publisher: the ring consumer tells that shard, and its
            // reader pauses instead of this ring (which carries everyone else too).
            SendStatus::Stalled => {
                self.note_remote_stall(src, origin, &client.gate);
                self.note_remote_hold(src, sub);
            }
            // Slow consumers are counted once, when the connection is removed.
            SendStatus::Dropped => {}
        }
        let ok = status != SendStatus::Dropped;
        if let Some(reply) = reply.filter(|_| ok) {
            note_reply(client, reply);
        }
        if max != 0 && n == max {
            self.auto_unsub.borrow_mut().push(sub.clone());
        }
        ok
    }

    /// Delivers to one member of a local queue group, starting at `start` and moving on past
    /// members that can no longer take messages.
    fn deliver_queue_member(
        &self,
        members: &[SubRef],
        start: usize,
        from: Option<&Rc<ClientState>>,
        msg: MsgView<'_>,
    ) -> bool {
        self.deliver_queue_member_of(members, start, from, msg, None)
    }

    /// A PUB/HPUB from a client of this shard.
    /// Publishes on `subject` (what subscriptions match) a message that shows `shown` in its
    /// MSG line, as nats-server delivers a JetStream message to an inbox or deliver subject
    /// under the subject it was stored with. Stays in the publisher's account (no import is
    /// applied); a reply with no subscriber gets no 503.
    pub fn publish_as(
        &self,
        from: &Rc<ClientState>,
        subject: Piece<'_>,
        shown: Piece<'_>,
        reply: Option<Piece<'_>>,
        header_len: Option<usize>,
        payload: Piece<'_>,
    ) -> bool {
        let m = Published {
            subject,
            reply,
            header_len,
            payload,
            shown: Some(shown),
        };
        let delivered = self.route(from.account.get(), from, m);
        if self.routed.replace(false) {
            from.interest_dirty.set(true);
        }
        self.finish_auto_unsubs();
        delivered
    }

    pub fn publish(
        &self,
        from: &Rc<ClientState>,
        subject: Piece<'_>,
        reply: Option<Piece<'_>>,
        header_len: Option<usize>,
        payload: Piece<'_>,
    ) {
        let account = from.account.get();
        let m = Published {
            subject,
            reply,
            header_len,
            payload,
            shown: None,
        };
        let delivered = if self.global.accounts.any_imports {
            self.publish_across_accounts(account, from, m)
        } else {
            self.route(account, from, m)
        };
        if self.routed.replace(false) {
            from.interest_dirty.set(true);
        }
        if !delivered {
            if let Some(reply) = reply {
                if from.flags.get().no_responders {
                    self.send_no_responders(from, &subject, &reply);
                }
            }
        }
        self.finish_auto_unsubs();
    }

    /// Routes in the publisher's account, then along the account's import routes: stream
    /// exports others import, service imports of its own (their replies signed into `_R_`
    /// subjects), and responses coming back on such a subject.
    fn publish_across_accounts(
        &self,
        account: AccountId,
        from: &Rc<ClientState>,
        m: Published<'_>,
    ) -> bool {
        let accounts = &self.global.accounts;
        if let Some((shard, token)) = responses::parse(&m.subject) {
            return self.respond(account, from, shard, token, m);
        }
        let mut delivered = self.route(account, from, m);
        let Some(routes) = accounts.routes(account) else {
            return delivered;
        };
        for r in &routes.streams {
            if r.map.matches(&m.subject) {
                let mapped = r.map.apply(m.subject);
                delivered |= self.route(
                    r.to,
                    from,
                    Published {
                        subject: Piece::from(&mapped),
                        ..m
                    },
                );
            }
        }
        for r in &routes.services {
            if r.map.matches(&m.subject) {
                let mapped = r.map.apply(m.subject);
                let back = m.reply.map(|rp| {
                    self.responses.borrow_mut().open(
                        account,
                        rp,
                        r.to,
                        r.responses,
                        std::time::Instant::now(),
                    )
                });
                let (header_len, payload) = responses::with_request_info(
                    accounts.name(account),
                    from.rtt.get(),
                    m.header_len,
                    &m.payload,
                );
                let sent = self.route(
                    r.to,
                    from,
                    Published {
                        subject: Piece::from(&mapped),
                        reply: back.as_ref().map(Piece::from),
                        header_len: Some(header_len),
                        payload: Piece::from(&payload),
                        shown: None,
                    },
                );
                if let (false, Some(b)) = (sent, &back) {
                    // Nobody took the request: its reply subject closes, as in nats-server.
                    self.responses.borrow_mut().close(b);
                }
                delivered |= sent;
            }
        }
        delivered
    }

    /// A publish on `_R_.<shard>.<token>`: a response to a service-import request whose reply
    /// subject shard `shard` opened, which alone decides where it goes.
    fn respond(
        &self,
        account: AccountId,
        from: &Rc<ClientState>,
        shard: u16,
        token: u64,
        m: Published<'_>,
    ) -> bool {
        if shard == self.id {
            return self.answer(account, from, token, m);
        }
        let Some(Some(o)) = self.outlets.get(shard as usize) else {
            // No such shard: an ordinary subject.
            return self.route(account, from, m);
        };
        o.send(Envelope::Response(Box::new(ForwardedResponse {
            token,
            account,
            subject: m.subject.to_bytes(),
            reply: m.reply.map(Piece::to_bytes),
            header_len: m.header_len,
            payload: m.payload.to_bytes(),
        })));
        from.affinity.note(shard);
        self.routed.set(true);
        true
    }

    /// A response to one of this shard's reply subjects, published in `account`: to the
    /// requester if the subject is open and the answer is the exporter's; otherwise an ordinary
    /// publish in `account` (nats-server routes it there once the response import is gone).
    fn answer(
        &self,
        account: AccountId,
        from: &Rc<ClientState>,
        token: u64,
        m: Published<'_>,
    ) -> bool {
        let empty = m.payload.is_empty();
        let verdict =
            self.responses
                .borrow_mut()
                .answer(token, account, empty, std::time::Instant::now());
        match verdict {
            Verdict::Deliver { to, reply } => self.route(
                to,
                from,
                Published {
                    subject: Piece::from(&reply),
                    ..m
                },
            ),
            Verdict::Drop => self.route(account, from, m),
        }
    }

    pub(super) fn on_forwarded_response(&self, r: &ForwardedResponse) {
        let relay = self.relay.clone();
        self.answer(
            r.account,
            &relay,
            r.token,
            Published {
                subject: Piece::from(&r.subject),
                reply: r.reply.as_ref().map(Piece::from),
                header_len: r.header_len,
                payload: Piece::from(&r.payload),
                shown: None,
            },
        );
        self.finish_auto_unsubs();
        // The ring consumer never pauses (`backpressure.rs`): no reader may pause for these.
        self.forget_stalled();
    }

    /// Delivers one message in one account's subject space: local subscribers, other shards,
    /// one member per queue group. Returns whether anyone will get it.
    fn route(&self, account: AccountId, from: &Rc<ClientState>, m: Published<'_>) -> bool {
        let Published {
            subject,
            reply,
            header_len,
            payload,
            shown,
        } = m;
        let msg = MsgView {
            subject: subject.as_slice(),
            shown: shown.unwrap_or(subject).as_slice(),
            reply: reply.map(Piece::as_slice),
            header_len,
            payload: payload.as_slice(),
            src: self.id,
            origin: from.id,
        };
        let echo = from.flags.get().echo;
        let a = account as usize;
        let local = {
            let mut spaces = self.local.borrow_mut();
            let Some(space) = spaces.get_mut(a) else {
                return false;
            };
            if space.is_empty() && self.remote.borrow().get(a).is_none_or(|r| r.is_empty()) {
                // Nobody subscribes to anything in this account: skip matching (the
                // publisher's reply subscription cannot exist either, so no 503 goes out).
                return false;
            }
            space.match_subject(&subject)
        };
        let mut delivered = false;
        for sub in &local.plain {
            if !echo && Rc::ptr_eq(&sub.client, from) {
                continue;
            }
            delivered |= self.deliver(sub, msg);
        }
        if delivered {
            from.affinity.note(self.id);
        }

        let remote = if self.nshards > 1 {
            let mut spaces = self.remote.borrow_mut();
            match spaces.get_mut(a) {
                Some(r) if !r.is_empty() => Some(r.match_subject(&subject)),
                _ => None,
            }
        } else {
            None
        };
        let remote = remote.filter(|r| !r.plain.is_empty() || !r.queues.is_empty());
        // From a link: only the queue groups the other server named.
        let from_leaf = from.link.get();
        // Queue groups: exactly one member over all shards, weighted by member counts (a
        // leafnode link's only when the group has no other member, nor a route's when the
        // message came from a route or our hub).
        let prefer_local = self.leaf_present.get() || from_leaf;
        for group in &local.queues {
            if from_leaf && !self.leaf_names_group(&group.name) {
                continue;
            }
            let rgroup = remote
                .as_ref()
                .and_then(|r| r.queues.iter().find(|g| g.name == group.name));
            if prefer_local {
                let members = rgroup.map_or(&[][..], |g| &g.members[..]);
                if self.pick_preferring_local(&group.members, members, &group.name, from, msg) {
                    delivered = true;
                }
                continue;
            }
            let remote_weight: usize = rgroup
                .map(|g| g.members.iter().map(|e| e.weight.get() as usize).sum())
                .unwrap_or(0);
            let pick = self.rand_below(group.members.len() + remote_weight);
            if pick < group.members.len() {
                if self.deliver_queue_member(&group.members, pick, Some(from), msg) {
                    from.affinity.note(self.id);
                    delivered = true;
                    continue;
                }
                if remote_weight == 0 {
                    continue;
                }
            }
            if let Some(g) = rgroup {
                let offset = self.rand_below(remote_weight);
                self.pick_remote(&g.members, offset, &group.name);
                delivered = true;
            }
        }
        if let Some(r) = &remote {
            for g in &r.queues {
                if local.queues.iter().any(|l| l.name == g.name) {
                    continue;
                }
                if from_leaf && !self.leaf_names_group(&g.name) {
                    continue;
                }
                if prefer_local {
                    delivered |= self.pick_preferring_local(&[], &g.members, &g.name, from, msg);
                    continue;
                }
                let w: usize = g.members.iter().map(|e| e.weight.get() as usize).sum();
                let offset = self.rand_below(w);
                self.pick_remote(&g.members, offset, &g.name);
                delivered = true;
            }
            {
                let mut targets = self.targets.borrow_mut();
                let mut touched = self.touched.borrow_mut();
                for e in &r.plain {
                    let t = &mut targets[e.shard as usize];
                    t.plain = true;
                    if !t.touched {
                        t.touched = true;
                        touched.push(e.shard);
                    }
                }
            }
            delivered |= self.send_targets(account, from, m);
        }
        if !self.leaf_hits.borrow().is_empty() {
            self.flush_leaf_hits(msg);
        }
        delivered
    }

    /// A link's subscription matched: noted, written once per link at the end (unless the
    /// message may not go on to that link).
    #[cold]
    fn leaf_hit(&self, sub: &SubRef) -> bool {
        if self.tier_of(&sub.client).is_none() {
            return false;
        }
        self.leaf_hits
            .borrow_mut()
            .push((sub.client.clone(), sub.queue.clone()));
        true
    }

    /// Writes the message once to each link it matched, naming the queue groups picked for
    /// the hub's members (`LMSG subject + reply q1 q2 size` / `| q1 size`).
    #[cold]
    fn flush_leaf_hits(&self, m: MsgView<'_>) {
        let mut hits = self.leaf_hits.borrow_mut();
        if crate::leaf::js_denied(m.subject) {
            // A hub's wildcard interest does not carry JetStream's subjects; a route's does.
            hits.retain(|(link, _)| link.route.get());
        }
        let mut names = self.leaf_names.borrow_mut();
        while let Some((link, first)) = hits.pop() {
            names.clear();
            names.extend(first);
            let mut i = 0;
            while i < hits.len() {
                if Rc::ptr_eq(&hits[i].0, &link) {
                    let (_, q) = hits.swap_remove(i);
                    if let Some(q) = q.filter(|q| !names.contains(q)) {
                        names.push(q);
                    }
                } else {
                    i += 1;
                }
            }
            let writer = link.writer_of();
            let status = {
                let via = link.route_via.borrow();
                let account = via.as_ref().map(|(_, name)| &name[..]);
                writer.send_leaf_msg(account, m.subject, m.reply, &names, m.header_len, m.payload)
            };
            match status {
                SendStatus::Stalled if m.src == self.id => {
                    self.stalled.borrow_mut().push(writer.gate.clone())
                }
                SendStatus::Stalled => self.note_remote_stall(m.src, m.origin, &writer.gate),
                SendStatus::Queued | SendStatus::Dropped => {}
            }
        }
    }

    /// Whether the `LMSG` a link is publishing names queue group `name`.
    #[cold]
    fn leaf_names_group(&self, name: &[u8]) -> bool {
        self.leaf_only
            .borrow()
            .as_deref()
            .is_some_and(|list| tachyon_protocol::leaf::queue_names(list).any(|q| q == name))
    }

    /// Publishes what a link received from the server at its other end: to every plain
    /// subscriber (the link's own excepted) and to one member of each queue group that server
    /// named, on the links the delivery rules let it reach.
    pub fn publish_from_leaf(
        &self,
        link: &Rc<ClientState>,
        subject: &Bytes,
        reply: Option<&Bytes>,
        queues: Option<Bytes>,
        header_len: Option<usize>,
        payload: &Bytes,
    ) {
        debug_assert!(link.link.get() && !link.flags.get().echo);
        let source = if link.route.get() {
            LinkSource::Route
        } else if link.leaf_accepted.get() {
            LinkSource::Leaf
        } else {
            LinkSource::Hub
        };
        self.link_source.set(source);
        *self.leaf_only.borrow_mut() = queues;
        self.publish(
            link,
            subject.into(),
            reply.map(Piece::from),
            header_len,
            payload.into(),
        );
        *self.leaf_only.borrow_mut() = None;
        self.link_source.set(LinkSource::Client);
    }

    /// How a queue member ranks for the message being published: `Some(false)` a first
    /// choice (a client, or a route unless the message came from a route or our hub),
    /// `Some(true)` only when no first choice exists (a leafnode link), `None` never (nats-server's
    /// one hop over routes, and no hub message onto a route). Also decides which links a plain
    /// subscription's match reaches.
    fn tier_of(&self, c: &ClientState) -> Option<bool> {
        if !c.link.get() {
            return Some(false);
        }
        let source = self.link_source.get();
        if c.route.get() {
            return matches!(source, LinkSource::Client | LinkSource::Leaf).then_some(false);
        }
        if source == LinkSource::Route && !c.leaf_accepted.get() {
            // A routed message reaches our leafs, not our hubs.
            return None;
        }
        Some(true)
    }

    /// One member of a queue group that has leafnode members somewhere: a member that is not
    /// a link's if the group has any (here or on another shard), else a link's (nats-server
    /// sends a client's message to a leaf's queue member only when no local one exists).
    #[cold]
    fn pick_preferring_local(
        &self,
        local: &[SubRef],
        remote: &[crate::interest::RemoteEntry],
        name: &Bytes,
        from: &Rc<ClientState>,
        msg: MsgView<'_>,
    ) -> bool {
        for leaf in [false, true] {
            let local_n = local
                .iter()
                .filter(|s| self.tier_of(&s.client) == Some(leaf))
                .count();
            let remote_n: usize = remote
                .iter()
                .filter(|e| e.leaf == leaf)
                .map(|e| e.weight.get() as usize)
                .sum();
            if local_n + remote_n == 0 {
                continue;
            }
            let pick = self.rand_below(local_n + remote_n);
            if pick < local_n {
                let start = self.rand_below(local.len());
                if self.deliver_queue_member_of(local, start, Some(from), msg, Some(leaf)) {
                    from.affinity.note(self.id);
                    return true;
                }
            }
            if remote_n > 0 {
                let offset = self.rand_below(remote_n);
                self.pick_remote_of(remote, offset, name, Some(leaf));
                return true;
            }
        }
        false
    }

    /// As `deliver_queue_member`, among members that are (or are not, or either when `leaf`
    /// is `None`) leafnode links.
    fn deliver_queue_member_of(
        &self,
        members: &[SubRef],
        start: usize,
        from: Option<&Rc<ClientState>>,
        msg: MsgView<'_>,
        leaf: Option<bool>,
    ) -> bool {
        let n = members.len();
        for i in 0..n {
            let sub = &members[(start + i) % n];
            if leaf.is_some_and(|l| self.tier_of(&sub.client) != Some(l)) {
                continue;
            }
            if let Some(from) = from {
                if !from.flags.get().echo && Rc::ptr_eq(&sub.client, from) {
                    continue;
                }
            }
            if self.deliver(sub, msg) {
                return true;
            }
        }
        false
    }

    /// As `pick_remote`, among entries that are (or are not) leafnode links'.
    fn pick_remote_of(
        &self,
        members: &[crate::interest::RemoteEntry],
        offset: usize,
        name: &Bytes,
        leaf: Option<bool>,
    ) {
        let mut offset = offset;
        for e in members.iter().filter(|e| leaf.is_none_or(|l| e.leaf == l)) {
            let w = e.weight.get() as usize;
            if offset < w {
                let mut targets = self.targets.borrow_mut();
                let t = &mut targets[e.shard as usize];
                t.picks.push(name.clone());
                if !t.touched {
                    t.touched = true;
                    self.touched.borrow_mut().push(e.shard);
                }
                return;
            }
            offset -= w;
        }
    }

    fn pick_remote(&self, members: &[crate::interest::RemoteEntry], offset: usize, name: &Bytes) {
        self.pick_remote_of(members, offset, name, None);
    }

    fn send_targets(&self, account: AccountId, from: &ClientState, m: Published<'_>) -> bool {
        let Published {
            subject,
            reply,
            header_len,
            payload,
            shown,
        } = m;
        let mut touched = self.touched.borrow_mut();
        if touched.is_empty() {
            return false;
        }
        let shown = shown.filter(|sh| sh.len() <= u16::MAX as usize);
        let shown_len = shown.as_ref().map_or(0, |sh| sh.len() as u16);
        let reply_bytes = reply.as_ref().map_or(&[][..], |r| r.as_slice());
        let shown_bytes = shown.as_ref().map_or(&[][..], |sh| sh.as_slice());
        let parts = [
            subject.as_slice(),
            reply_bytes,
            shown_bytes,
            payload.as_slice(),
        ];
        let size: usize = parts.iter().map(|p| p.len()).sum();
        // Handles on the publisher's buffer, made once for every target that could not take a
        // copy in its ring.
        let mut handles: Option<(Bytes, Option<Bytes>, Bytes)> = None;
        // Within `MAX_PAYLOAD_LIMIT` (const-asserted above): the parser refused larger.
        let header_len = header_len.map(|h| h as u32);
        let origin = from.id;
        let msg = |body, plain, picks| {
            Envelope::Msg(RoutedMsg {
                account,
                body,
                header_len,
                shown_len,
                plain,
                picks,
                origin,
            })
        };
        let mut targets = self.targets.borrow_mut();
        let mut sent = 0;
        for &shard in touched.iter() {
            let t = &mut targets[shard as usize];
            let plain = std::mem::take(&mut t.plain);
            // The usual single queue pick travels in the ring with the message.
            let (pick, mut picks) = match std::mem::take(&mut t.picks) {
                QueuePicks::One(name) => (Some(name), QueuePicks::None),
                other => (None, other),
            };
            t.touched = false;
            let Some(Some(o)) = self.outlets.get(shard as usize) else {
                continue;
            };
            let pick_bytes = pick.as_deref().unwrap_or_default();
            // Lengths fit in u32: the total is at most `COPY_MAX`.
            let copied = size + pick_bytes.len() <= COPY_MAX && {
                let all = [parts[0], parts[1], parts[2], parts[3], pick_bytes];
                o.send_with_bytes(&all, |bytes| {
                    let body = MsgBody::InRing {
                        bytes,
                        subject_len: subject.len() as u32,
                        reply_len: reply.as_ref().map(|r| r.len() as u32),
                        pick_len: pick.as_ref().map(|p| p.len() as u32),
                    };
                    msg(body, plain, std::mem::take(&mut picks))
                })
            };
            if !copied {
                let (subject, reply, payload) = handles.get_or_insert_with(|| {
                    // A shown subject travels at the front of the payload (the envelope has
                    // no room for another handle): one copy per JetStream delivery.
                    let payload = match &shown {
                        Some(sh) => {
                            let mut b = bytes::BytesMut::with_capacity(sh.len() + payload.len());
                            b.extend_from_slice(sh);
                            b.extend_from_slice(&payload);
                            b.freeze()
                        }
                        None => payload.to_bytes(),
                    };
                    (subject.to_bytes(), reply.map(Piece::to_bytes), payload)
                });
                let body = MsgBody::Shared {
                    subject: subject.clone(),
                    reply: reply.clone(),
                    payload: payload.clone(),
                };
                if let Some(name) = pick {
                    picks.push(name);
                }
                o.send(msg(body, plain, picks));
            }
            from.affinity.note(shard);
            self.apply_holds(account, from, shard, subject.as_slice());
            sent += 1;
        }
        touched.clear();
        self.bump_stats(|s| s.routed_out += sent);
        if sent > 0 {
            self.routed.set(true);
        }
        sent > 0
    }

    /// nats-server's no-responders answer: a 503 status message on the requester's own
    /// subscription that matches the reply subject.
    fn send_no_responders(&self, from: &Rc<ClientState>, subject: &[u8], reply: &[u8]) {
        let matched = self.local_space(from.account.get()).match_subject(reply);
        let Some(sub) = matched.plain.iter().find(|s| Rc::ptr_eq(&s.client, from)) else {
            return;
        };
        let mut block = Vec::with_capacity(48 + subject.len());
        headers::no_responders_block(&mut block, subject);
        let _ = from.send_msg(reply, &sub.sid, None, Some(block.len()), &block);
    }

    pub(super) fn deliver_routed(&self, from: u16, msg: &RoutedMsg, slot: &InSlot<'_>) {
        self.bump_stats(|s| s.routed_in += 1);
        let MsgParts {
            subject,
            reply,
            payload,
            pick,
        } = msg.body.parts(slot);
        let local: Rc<MatchResult<SubRef>> = self.local_space(msg.account).match_subject(subject);
        let (shown, payload) = if msg.shown_len == 0 {
            (subject, payload)
        } else {
            payload.split_at((msg.shown_len as usize).min(payload.len()))
        };
        let m = MsgView {
            subject,
            shown,
            reply,
            header_len: msg.header_len.map(|h| h as usize),
            payload,
            src: from,
            origin: msg.origin,
        };
        if msg.plain {
            for sub in &local.plain {
                self.deliver(sub, m);
            }
        }
        let prefer_local = self.leaf_present.get();
        let deliver_pick = |name: &[u8]| {
            if let Some(g) = local.queues.iter().find(|g| g.name == name) {
                let start = self.rand_below(g.members.len());
                if prefer_local {
                    // The picker counted this shard for its members that are not links', if
                    // any; its link only when the group had nothing else.
                    let _ = self.deliver_queue_member_of(&g.members, start, None, m, Some(false))
                        || self.deliver_queue_member_of(&g.members, start, None, m, Some(true));
                } else {
                    self.deliver_queue_member(&g.members, start, None, m);
                }
            }
        };
        if let Some(name) = pick {
            deliver_pick(name);
        }
        msg.picks.for_each(|name| deliver_pick(name));
        if !self.leaf_hits.borrow().is_empty() {
            self.flush_leaf_hits(m);
        }
        self.finish_auto_unsubs();
    }
}

#[cold]
fn denied_delivery(client: &ClientState, subject: &[u8], queue: Option<&[u8]>) -> bool {
    client
        .perms
        .borrow_mut()
        .as_mut()
        .is_some_and(|p| p.delivery_denied(subject, queue))
}

/// `allow_responses`: a client that receives a request may publish its answer.
#[inline]
fn note_reply(client: &ClientState, reply: &[u8]) {
    if let Some(p) = client.perms.borrow_mut().as_mut() {
        if p.tracks_replies() {
            p.note_reply(reply, std::time::Instant::now());
        }
    }
}
