//! The subject index: a trie over '.'-separated tokens with `*` and `>` edges, holding
//! subscription values, plus a cache of match results keyed by literal subject.
//!
//! The cache belongs to one shard (results are `Rc`) and is bounded. An effective insert or
//! remove of pattern P drops exactly the cached results P could alter, those whose literal
//! subject P matches, as nats-server's sublist does (`addToCache`/`removeFromCache`): one hash
//! lookup when P is literal, a scan of the cache when it has wildcards. Everything else stays
//! cached and stays correct. This matters because every SUB/UNSUB reaches the remote-interest
//! index of every shard: clearing whole caches made one client's churn cost every publisher on
//! every shard a miss.
//!
//! An insert drops the affected results rather than patching the new value into them (which is
//! what nats-server does): the rebuild then always goes through the trie walk, which alone
//! decides order and queue grouping, and it is paid only by subjects published again, where a
//! `>` subscription would otherwise copy every cached result up front.

mod trie;

use std::rc::Rc;

use bytes::Bytes;
use rustc_hash::FxHashMap;

use self::trie::{is_literal, literal_prefix, pattern_matches, Node, Values};

/// Default bound on cached match results.
pub const DEFAULT_CACHE_CAPACITY: usize = 4096;

/// Everything a literal subject matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchResult<T> {
    /// Values subscribed without a queue group; each gets the message.
    pub plain: Vec<T>,
    /// Queue groups with their members; one member of each group gets the message. A group
    /// name appears once even when its members subscribed under different patterns.
    pub queues: Vec<QueueGroup<T>>,
}

impl<T> Default for MatchResult<T> {
    fn default() -> Self {
        Self {
            plain: Vec::new(),
            queues: Vec::new(),
        }
    }
}

impl<T> MatchResult<T> {
    /// Whether nothing matched.
    pub fn is_empty(&self) -> bool {
        self.plain.is_empty() && self.queues.is_empty()
    }
}

/// Members of one queue group that matched a subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueGroup<T> {
    pub name: Bytes,
    pub members: Vec<T>,
}

/// Subscription index for one shard. Not `Send`: results are shared through `Rc`.
pub struct Sublist<T: Clone + PartialEq> {
    /// Patterns with a wildcard token.
    root: Node<T>,
    /// Literal patterns, by subject: one entry instead of a trie node per token. A host with
    /// a subscription per device subject (`bench.device.<n>.telemetry`) paid a node, its map
    /// and its key for each inner token: 1 M such subscriptions took 470 B each in the trie.
    literal: FxHashMap<Box<[u8]>, Values<T>>,
    len: usize,
    generation: u64,
    /// Always exact: every change drops the entries it affects before it returns.
    cache: FxHashMap<Box<[u8]>, Rc<MatchResult<T>>>,
    cache_capacity: usize,
    /// Admission: hashes of subjects that missed once. A subject is cached on its second miss,
    /// so subjects seen once (reply inboxes, JetStream ack subjects: one per message) never
    /// cost a cache entry, its key allocation and its eviction.
    seen: Box<[u64]>,
    /// Admission while the cache thrashes: only subjects whose hash has this many low bits
    /// (above the slot bits) clear are cached, so a fixed subset of a working set larger than
    /// the cache stays cached and hits, instead of every subject being cached and evicted
    /// unused (500 publishers over 100 subjects each: a key allocation, an insert and an
    /// eviction per message). See [`Sublist::evict_half`].
    admit_bits: u32,
    hits: u32,
    inserts: u32,
    misses: u32,
    /// What the latest miss matched, and the walk's buffer: a miss that matches what the one
    /// before it matched (a `telemetry.>` subscriber and a subject per device) shares its
    /// result instead of allocating one.
    last_miss: Option<Rc<MatchResult<T>>>,
    scratch: MatchResult<T>,
    /// The latest subject matched and its result, until the next insert or remove: a
    /// publisher mostly repeats its subject, and comparing a few bytes costs less than
    /// hashing them and probing the cache (a fifth of the shard's time on 16-byte messages).
    recent: Option<Rc<MatchResult<T>>>,
    recent_subject: Vec<u8>,
    /// `recent` is in the cache too: its repeats count as the cache hits they stand for.
    recent_cached: bool,
}

/// At most 1 subject in 2^MAX_ADMIT_BITS is admitted while the cache thrashes.
const MAX_ADMIT_BITS: u32 = 6;
/// Misses after which admission loosens one step, so a working set that shrank is cached
/// whole again.
const ADMIT_DECAY_MISSES: u32 = 1 << 16;

/// Slots of the admission filter (a power of two).
const SEEN_SLOTS: usize = 1024;
const _: () = assert!(SEEN_SLOTS.is_power_of_two());

impl<T: Clone + PartialEq> Default for Sublist<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Clone + PartialEq> Sublist<T> {
    pub fn new() -> Self {
        Self::with_cache_capacity(DEFAULT_CACHE_CAPACITY)
    }

    /// A sublist caching at most `cache_capacity` match results (0 disables the cache).
    pub fn with_cache_capacity(cache_capacity: usize) -> Self {
        Self {
            root: Node::default(),
            literal: FxHashMap::default(),
            len: 0,
            generation: 0,
            cache: FxHashMap::default(),
            cache_capacity,
            seen: vec![0; SEEN_SLOTS].into_boxed_slice(),
            admit_bits: 0,
            hits: 0,
            inserts: 0,
            misses: 0,
            last_miss: None,
            scratch: MatchResult::default(),
            recent: None,
            recent_subject: Vec::new(),
            recent_cached: false,
        }
    }

    /// Stores `value` under a validated subject pattern, optionally in queue group `queue`.
    /// Duplicates are kept: each copy matches and each needs its own `remove`.
    pub fn insert(&mut self, subject: &[u8], queue: Option<&Bytes>, value: T) {
        if is_literal(subject) {
            self.literal
                .entry(Box::from(subject))
                .or_default()
                .add(queue, value);
        } else {
            self.root.insert(subject, queue, value);
        }
        self.len += 1;
        self.generation += 1;
        self.last_miss = None;
        self.recent = None;
        self.drop_cached_matches(subject);
    }

    /// Removes one equal value stored under (subject, queue); returns whether it was present.
    /// The generation moves only when something was removed.
    pub fn remove(&mut self, subject: &[u8], queue: Option<&[u8]>, value: &T) -> bool {
        let removed = if is_literal(subject) {
            match self.literal.get_mut(subject) {
                Some(values) => {
                    let removed = values.remove(queue, value);
                    if values.is_empty() {
                        self.literal.remove(subject);
                    }
                    removed
                }
                None => false,
            }
        } else {
            self.root.remove(subject, queue, value)
        };
        if removed {
            self.len -= 1;
            self.generation += 1;
            // It may hold the removed value: it must not outlive its subscription.
            self.last_miss = None;
            self.recent = None;
            self.drop_cached_matches(subject);
        }
        removed
    }

    /// All values whose pattern matches the literal `subject`, plain ones and queue members
    /// grouped by queue name. A cache hit allocates nothing.
    pub fn match_subject(&mut self, subject: &[u8]) -> Rc<MatchResult<T>> {
        if let Some(recent) = &self.recent {
            if self.recent_subject == subject {
                let recent = Rc::clone(recent);
                if self.recent_cached {
                    self.hits = self.hits.saturating_add(1);
                } else {
                    // A repeat is a miss to the cache, which admits on a subject's second.
                    self.recent_cached = self.admit(subject, &recent);
                }
                return recent;
            }
        }
        let (result, cached) = self.match_cached(subject);
        self.recent_subject.clear();
        self.recent_subject.extend_from_slice(subject);
        self.recent = Some(Rc::clone(&result));
        self.recent_cached = cached;
        result
    }

    /// The result, and whether the cache holds it now.
    fn match_cached(&mut self, subject: &[u8]) -> (Rc<MatchResult<T>>, bool) {
        if let Some(hit) = self.cache.get(subject) {
            self.hits = self.hits.saturating_add(1);
            return (Rc::clone(hit), true);
        }
        let result = self.match_miss(subject);
        let cached = self.admit(subject, &result);
        (result, cached)
    }

    /// Caches a missed subject's result if admission lets it in; whether it did.
    fn admit(&mut self, subject: &[u8], result: &Rc<MatchResult<T>>) -> bool {
        if self.cache_capacity == 0 || !self.admits(subject) {
            return false;
        }
        if self.cache.len() >= self.cache_capacity {
            self.evict_half();
        }
        self.inserts = self.inserts.saturating_add(1);
        self.cache.insert(Box::from(subject), Rc::clone(result));
        true
    }

    /// Walks the trie into the reused buffer; shares the latest miss's result when equal.
    fn match_miss(&mut self, subject: &[u8]) -> Rc<MatchResult<T>> {
        let mut scratch = std::mem::take(&mut self.scratch);
        self.collect(subject, &mut scratch);
        self.scratch = scratch;
        let result = match &self.last_miss {
            Some(last) if **last == self.scratch => Rc::clone(last),
            _ => {
                let fresh = Rc::new(self.scratch.clone());
                self.last_miss = Some(Rc::clone(&fresh));
                fresh
            }
        };
        // The buffer keeps its capacity, not the values (a removed one must not linger).
        self.scratch.plain.clear();
        self.scratch.queues.clear();
        result
    }

    /// Whether a subject that missed is cached now: on its second recent miss, and, while the
    /// cache thrashes, only if it is in the sampled subset.
    fn admits(&mut self, subject: &[u8]) -> bool {
        use std::hash::{BuildHasher, Hasher};
        let mut h = rustc_hash::FxBuildHasher.build_hasher();
        h.write(subject);
        // 0 marks an empty slot.
        let hash = h.finish() | 1;
        self.misses += 1;
        if self.misses >= ADMIT_DECAY_MISSES {
            self.misses = 0;
            self.admit_bits = self.admit_bits.saturating_sub(1);
        }
        let sample = (1u64 << self.admit_bits) - 1;
        if (hash >> SEEN_SLOTS.trailing_zeros()) & sample != 0 {
            return false;
        }
        let slot = &mut self.seen[(hash as usize) & (SEEN_SLOTS - 1)];
        if *slot == hash {
            return true;
        }
        *slot = hash;
        false
    }

    /// Matches without reading or filling the cache.
    pub fn match_uncached(&self, subject: &[u8]) -> MatchResult<T> {
        let mut result = MatchResult::default();
        self.collect(subject, &mut result);
        result
    }

    fn collect(&self, subject: &[u8], out: &mut MatchResult<T>) {
        self.root.collect(subject, out);
        if let Some(values) = self.literal.get(subject) {
            values.append_to(out);
        }
    }

    /// Number of stored values.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bumps on every insert and every remove that removed something.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Trie nodes, the root included, and literal patterns (1 when empty): for leak checks
    /// and monitoring.
    pub fn node_count(&self) -> usize {
        self.root.count_nodes() + self.literal.len()
    }

    /// Cached match results (all of them valid).
    pub fn cache_len(&self) -> usize {
        self.cache.len()
    }

    /// Drops the cached results whose subject `pattern` matches: the only ones a change to the
    /// values stored under `pattern` can alter.
    fn drop_cached_matches(&mut self, pattern: &[u8]) {
        if self.cache.is_empty() {
            return;
        }
        if is_literal(pattern) {
            // A literal pattern matches exactly the subject spelled the same, so there is no
            // need to look at the other entries (inbox subscriptions churn the most).
            self.cache.remove(pattern);
        } else {
            // Whatever the pattern matches starts with its leading literal tokens; a byte
            // prefix test turns most entries away without splitting them into tokens.
            let prefix = literal_prefix(pattern);
            self.cache.retain(|subject, _| {
                !(subject.starts_with(prefix) && pattern_matches(pattern, subject))
            });
        }
    }

    /// Every cached (subject, result), for tests that check the cache against the trie.
    #[cfg(test)]
    fn cached(&self) -> impl Iterator<Item = (&[u8], &MatchResult<T>)> {
        self.cache
            .iter()
            .map(|(subject, result)| (&subject[..], &**result))
    }

    /// Drops every other entry in hash order, which is as good as random here and keeps the
    /// amortised cost per miss constant (a full clear would make a hot working set slightly
    /// larger than the bound miss every time). A cache that filled with fewer hits than
    /// inserts thrashes: admission narrows a step (see `admit_bits`).
    fn evict_half(&mut self) {
        if self.hits < self.inserts {
            self.admit_bits = (self.admit_bits + 1).min(MAX_ADMIT_BITS);
            self.misses = 0;
        }
        self.hits = 0;
        self.inserts = 0;
        // It may be among the evicted; the next lookup finds out.
        self.recent = None;
        let mut keep = false;
        self.cache.retain(|_, _| {
            keep = !keep;
            keep
        });
    }

    /// The admission sample's width, for tests.
    #[cfg(test)]
    fn admit_bits(&self) -> u32 {
        self.admit_bits
    }
}

impl<T: Clone + PartialEq> std::fmt::Debug for Sublist<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sublist")
            .field("len", &self.len)
            .field("generation", &self.generation)
            .field("cached", &self.cache_len())
            .finish()
    }
}

#[cfg(test)]
mod tests;
