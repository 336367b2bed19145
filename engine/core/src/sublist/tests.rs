use super::*;
use proptest::prelude::*;
use std::collections::BTreeMap;

fn q(name: &str) -> Bytes {
    Bytes::copy_from_slice(name.as_bytes())
}

fn plain(list: &mut Sublist<u32>, subject: &str) -> Vec<u32> {
    let mut values = list.match_subject(subject.as_bytes()).plain.clone();
    values.sort_unstable();
    values
}

/// Queue name -> sorted members.
fn groups(result: &MatchResult<u32>) -> BTreeMap<Vec<u8>, Vec<u32>> {
    let mut map = BTreeMap::new();
    for group in &result.queues {
        let mut members = group.members.clone();
        members.sort_unstable();
        assert!(
            map.insert(group.name.to_vec(), members).is_none(),
            "queue group listed twice"
        );
    }
    map
}

#[test]
fn literal_matches_only_itself() {
    let mut list = Sublist::new();
    list.insert(b"foo.bar", None, 1);
    list.insert(b"foo", None, 2);
    assert_eq!(plain(&mut list, "foo.bar"), vec![1]);
    assert_eq!(plain(&mut list, "foo"), vec![2]);
    assert!(plain(&mut list, "foo.baz").is_empty());
    assert!(plain(&mut list, "foo.bar.baz").is_empty());
    assert!(plain(&mut list, "bar").is_empty());
    assert!(list.match_subject(b"nope").is_empty());
    assert_eq!(list.len(), 2);
}

#[test]
fn star_matches_exactly_one_token() {
    let mut list = Sublist::new();
    list.insert(b"foo.*", None, 1);
    list.insert(b"*.bar", None, 2);
    list.insert(b"*", None, 3);
    assert_eq!(plain(&mut list, "foo.bar"), vec![1, 2]);
    assert_eq!(plain(&mut list, "foo.baz"), vec![1]);
    assert_eq!(plain(&mut list, "x.bar"), vec![2]);
    assert_eq!(plain(&mut list, "foo"), vec![3]);
    assert!(plain(&mut list, "foo.bar.baz").is_empty());
}

#[test]
fn full_wildcard_matches_one_or_more_tokens() {
    let mut list = Sublist::new();
    list.insert(b"foo.>", None, 1);
    list.insert(b">", None, 2);
    assert_eq!(plain(&mut list, "foo.bar"), vec![1, 2]);
    assert_eq!(plain(&mut list, "foo.bar.baz.qux"), vec![1, 2]);
    // `foo.>` needs at least one token after foo.
    assert_eq!(plain(&mut list, "foo"), vec![2]);
    assert_eq!(plain(&mut list, "bar.baz"), vec![2]);
}

#[test]
fn mixed_patterns() {
    let mut list = Sublist::new();
    list.insert(b"a.*.c.>", None, 1);
    list.insert(b"a.b.c.d", None, 2);
    list.insert(b"*.b.*.d", None, 3);
    list.insert(b"a.*.*", None, 4);
    list.insert(b"a.>", None, 5);
    assert_eq!(plain(&mut list, "a.b.c.d"), vec![1, 2, 3, 5]);
    assert_eq!(plain(&mut list, "a.x.c.d.e"), vec![1, 5]);
    assert_eq!(plain(&mut list, "a.b.c"), vec![4, 5]);
    assert_eq!(plain(&mut list, "z.b.y.d"), vec![3]);
}

#[test]
fn queue_members_grouped_by_name_across_patterns() {
    let mut list = Sublist::new();
    list.insert(b"orders.*", Some(&q("workers")), 1);
    list.insert(b"orders.new", Some(&q("workers")), 2);
    list.insert(b"orders.>", Some(&q("auditors")), 3);
    list.insert(b"orders.new", None, 4);
    list.insert(b"orders.new", Some(&q("workers")), 5);
    let result = list.match_subject(b"orders.new");
    assert_eq!(result.plain, vec![4]);
    let expected: BTreeMap<Vec<u8>, Vec<u32>> = [
        (b"workers".to_vec(), vec![1, 2, 5]),
        (b"auditors".to_vec(), vec![3]),
    ]
    .into_iter()
    .collect();
    assert_eq!(groups(&result), expected);
    let result = list.match_subject(b"orders.old");
    assert!(result.plain.is_empty());
    assert_eq!(groups(&result).get(&b"workers"[..]), Some(&vec![1]));
}

#[test]
fn remove_takes_one_copy_of_a_duplicate() {
    let mut list = Sublist::new();
    list.insert(b"foo", None, 7);
    list.insert(b"foo", None, 7);
    list.insert(b"foo", Some(&q("g")), 7);
    assert_eq!(list.len(), 3);
    assert!(list.remove(b"foo", None, &7));
    assert_eq!(plain(&mut list, "foo"), vec![7]);
    assert_eq!(list.match_subject(b"foo").queues.len(), 1);
    assert!(list.remove(b"foo", None, &7));
    assert!(!list.remove(b"foo", None, &7), "no copies left");
    assert_eq!(plain(&mut list, "foo"), Vec::<u32>::new());
    // The queue copy is separate and still there.
    assert!(!list.remove(b"foo", Some(b"other"), &7));
    assert!(list.remove(b"foo", Some(b"g"), &7));
    assert!(list.match_subject(b"foo").is_empty());
    assert!(list.is_empty());
}

#[test]
fn remove_of_absent_values_changes_nothing() {
    let mut list = Sublist::new();
    list.insert(b"a.b", None, 1);
    let generation = list.generation();
    assert!(!list.remove(b"a.b", None, &2));
    assert!(!list.remove(b"a.c", None, &1));
    assert!(!list.remove(b"a", None, &1));
    assert!(!list.remove(b"a.b.c", None, &1));
    assert!(!list.remove(b"a.*", None, &1));
    assert_eq!(list.generation(), generation);
    assert_eq!(list.len(), 1);
    assert_eq!(plain(&mut list, "a.b"), vec![1]);
}

#[test]
fn cache_hit_returns_same_result_and_changes_invalidate_it() {
    let mut list = Sublist::new();
    list.insert(b"foo.*", None, 1);
    // Seen once: not cached (a subject used once, an inbox, costs no entry).
    list.match_subject(b"foo.bar");
    assert_eq!(list.cache_len(), 0);
    let first = list.match_subject(b"foo.bar");
    let second = list.match_subject(b"foo.bar");
    assert!(Rc::ptr_eq(&first, &second), "third lookup should be a hit");
    assert_eq!(list.cache_len(), 1);

    let generation = list.generation();
    list.insert(b"foo.bar", None, 2);
    assert!(list.generation() > generation);
    assert_eq!(list.cache_len(), 0);
    let after_insert = list.match_subject(b"foo.bar");
    assert!(!Rc::ptr_eq(&first, &after_insert));
    assert_eq!(after_insert.plain.len(), 2);

    let generation = list.generation();
    assert!(list.remove(b"foo.*", None, &1));
    assert!(list.generation() > generation);
    assert_eq!(list.match_subject(b"foo.bar").plain, vec![2]);
}

/// Matches every subject in `subjects`, so each has a cached result; returns them in order.
/// Caches each subject: a subject is admitted on its second miss.
fn warm(list: &mut Sublist<u32>, subjects: &[&str]) -> Vec<Rc<MatchResult<u32>>> {
    subjects
        .iter()
        .map(|subject| {
            list.match_subject(subject.as_bytes());
            list.match_subject(subject.as_bytes())
        })
        .collect()
}

/// Asserts that each subject in `kept` is still a cache hit: the very `Rc` from `warm`.
fn assert_still_cached(
    list: &mut Sublist<u32>,
    subjects: &[&str],
    warmed: &[Rc<MatchResult<u32>>],
    kept: &[&str],
) {
    for subject in kept {
        let i = subjects
            .iter()
            .position(|s| s == subject)
            .expect("kept subject was warmed");
        let now = list.match_subject(subject.as_bytes());
        assert!(
            Rc::ptr_eq(&now, &warmed[i]),
            "{subject}: cached result was dropped or replaced"
        );
    }
}

#[test]
fn changes_keep_cached_results_they_cannot_match() {
    let mut list = Sublist::new();
    list.insert(b"foo.*", None, 1);
    list.insert(b"bar.>", Some(&q("g")), 2);
    let subjects = ["foo.a", "foo.b", "foo.a.b", "bar.x", "bar.x.y", "baz"];

    // Literal insert: only its own subject is affected.
    let warmed = warm(&mut list, &subjects);
    assert_eq!(list.cache_len(), subjects.len());
    list.insert(b"foo.a", None, 3);
    assert_eq!(list.cache_len(), subjects.len() - 1);
    assert_still_cached(
        &mut list,
        &subjects,
        &warmed,
        &["foo.b", "foo.a.b", "bar.x", "bar.x.y", "baz"],
    );
    assert_eq!(plain(&mut list, "foo.a"), vec![1, 3]);

    // Wildcard insert in an existing queue group: `bar.*` matches bar.x, not bar.x.y.
    let warmed = warm(&mut list, &subjects);
    list.insert(b"bar.*", Some(&q("g")), 4);
    assert_eq!(list.cache_len(), subjects.len() - 1);
    assert_still_cached(
        &mut list,
        &subjects,
        &warmed,
        &["foo.a", "foo.b", "foo.a.b", "bar.x.y", "baz"],
    );
    let result = list.match_subject(b"bar.x");
    assert_eq!(groups(&result).get(&b"g"[..]), Some(&vec![2, 4]));
    assert_eq!(
        groups(&list.match_subject(b"bar.x.y")).get(&b"g"[..]),
        Some(&vec![2])
    );

    // Wildcard remove: `foo.*` matches foo.a and foo.b, not foo.a.b.
    let warmed = warm(&mut list, &subjects);
    assert!(list.remove(b"foo.*", None, &1));
    assert_eq!(list.cache_len(), subjects.len() - 2);
    assert_still_cached(
        &mut list,
        &subjects,
        &warmed,
        &["foo.a.b", "bar.x", "bar.x.y", "baz"],
    );
    assert_eq!(plain(&mut list, "foo.a"), vec![3]);
    assert!(list.match_subject(b"foo.b").is_empty());

    // A remove that removes nothing drops nothing.
    let warmed = warm(&mut list, &subjects);
    assert!(!list.remove(b">", None, &9));
    assert_eq!(list.cache_len(), subjects.len());
    assert_still_cached(&mut list, &subjects, &warmed, &subjects);

    // Interest on an unrelated subject (an inbox) leaves the whole cache alone.
    list.insert(b"_INBOX.abc", None, 5);
    list.insert(b"_INBOX.*", None, 6);
    assert!(list.remove(b"_INBOX.abc", None, &5));
    assert!(list.remove(b"_INBOX.*", None, &6));
    assert_eq!(list.cache_len(), subjects.len());
    assert_still_cached(&mut list, &subjects, &warmed, &subjects);

    // `>` matches every subject, so it drops everything.
    list.insert(b">", None, 7);
    assert_eq!(list.cache_len(), 0);
    assert_eq!(plain(&mut list, "baz"), vec![7]);
}

#[test]
fn cache_stays_bounded() {
    let mut list = Sublist::with_cache_capacity(8);
    list.insert(b">", None, 1);
    for i in 0..100 {
        let subject = format!("s.{i}");
        assert_eq!(list.match_subject(subject.as_bytes()).plain, vec![1]);
        assert_eq!(list.match_subject(subject.as_bytes()).plain, vec![1]);
        assert!(list.cache_len() <= 8);
    }
    assert!(list.cache_len() > 0);
    let mut uncached = Sublist::with_cache_capacity(0);
    uncached.insert(b"a", None, 1);
    assert_eq!(uncached.match_subject(b"a").plain, vec![1]);
    assert_eq!(uncached.cache_len(), 0);
}

#[test]
fn removing_everything_leaves_only_the_root() {
    let mut list = Sublist::new();
    let patterns: &[(&[u8], Option<&str>)] = &[
        (b"a.b.c", None),
        (b"a.b", None),
        (b"a.*.c", Some("g")),
        (b"a.>", None),
        (b"*.*.*.*", None),
        (b">", Some("h")),
        (b"x.y.z.w.v", None),
        (b"a.b.c", None),
    ];
    for (i, (subject, queue)) in patterns.iter().enumerate() {
        list.insert(subject, queue.map(q).as_ref(), i);
    }
    assert!(list.node_count() > 10);
    // Remove in a different order than inserted, so pruning meets shared prefixes.
    for (i, (subject, queue)) in patterns.iter().enumerate().rev() {
        assert!(list.remove(subject, queue.map(|n| n.as_bytes()), &i));
    }
    assert!(list.is_empty());
    assert_eq!(list.node_count(), 1);
    assert!(list.match_subject(b"a.b.c").is_empty());
}

#[test]
fn pruning_keeps_nodes_still_in_use() {
    // Wildcard patterns: literal ones live in the flat map, not in the trie.
    let mut list = Sublist::new();
    list.insert(b"a.b.c.*", None, 1);
    list.insert(b"a.b.*", None, 2);
    list.insert(b"a.b.x.*", None, 3);
    assert_eq!(list.node_count(), 8);
    assert!(list.remove(b"a.b.c.*", None, &1));
    assert_eq!(list.node_count(), 6); // root, a, b, b's *, x, x's *
    assert_eq!(plain(&mut list, "a.b.q"), vec![2]);
    assert_eq!(plain(&mut list, "a.b.x.q"), vec![3]);
    assert!(list.remove(b"a.b.x.*", None, &3));
    assert_eq!(list.node_count(), 4);
    assert!(list.remove(b"a.b.*", None, &2));
    assert_eq!(list.node_count(), 1);
}

#[test]
fn literal_patterns_take_one_entry_each() {
    let mut list = Sublist::new();
    list.insert(b"bench.device.1.telemetry", None, 1);
    list.insert(b"bench.device.2.telemetry", Some(&q("g")), 2);
    list.insert(b"bench.device.*.telemetry", Some(&q("g")), 3);
    assert_eq!(list.node_count(), 1 + 4 + 2);
    assert_eq!(plain(&mut list, "bench.device.1.telemetry"), vec![1]);
    let both = list.match_subject(b"bench.device.2.telemetry");
    assert_eq!(
        groups(&both)[&b"g"[..]],
        vec![2, 3],
        "one group over both kinds"
    );
    assert!(list.remove(b"bench.device.1.telemetry", None, &1));
    assert!(!list.remove(b"bench.device.1.telemetry", None, &1));
    assert!(list.remove(b"bench.device.2.telemetry", Some(b"g"), &2));
    assert_eq!(list.node_count(), 1 + 4);
}

/// Reference semantics, written independently of the trie.
fn brute_matches(pattern: &[u8], subject: &[u8]) -> bool {
    let pattern: Vec<&[u8]> = pattern.split(|&b| b == b'.').collect();
    let subject: Vec<&[u8]> = subject.split(|&b| b == b'.').collect();
    for (i, token) in pattern.iter().enumerate() {
        match *token {
            b">" => return subject.len() > i,
            b"*" => {
                if i >= subject.len() {
                    return false;
                }
            }
            literal => {
                if subject.get(i) != Some(&literal) {
                    return false;
                }
            }
        }
    }
    pattern.len() == subject.len()
}

fn pattern_strategy() -> impl Strategy<Value = String> {
    let token = prop_oneof![Just("a"), Just("b"), Just("c"), Just("*")];
    let with_tokens =
        (proptest::collection::vec(token, 1..5), any::<bool>()).prop_map(|(tokens, fwc)| {
            let mut pattern = tokens.join(".");
            if fwc {
                pattern.push_str(".>");
            }
            pattern
        });
    prop_oneof![9 => with_tokens, 1 => Just(">".to_owned())]
}

fn subject_strategy() -> impl Strategy<Value = String> {
    let token = prop_oneof![Just("a"), Just("b"), Just("c")];
    proptest::collection::vec(token, 1..6).prop_map(|tokens| tokens.join("."))
}

/// What a match result means, independent of order: sorted plain values and queue name ->
/// sorted members (`groups` also checks each queue name appears once).
type Normalized = (Vec<u32>, BTreeMap<Vec<u8>, Vec<u32>>);

fn normalize(result: &MatchResult<u32>) -> Normalized {
    let mut plain = result.plain.clone();
    plain.sort_unstable();
    (plain, groups(result))
}

fn brute_result(live: &[(String, Option<&str>, u32)], subject: &str) -> Normalized {
    let mut want_plain = Vec::new();
    let mut want_groups: BTreeMap<Vec<u8>, Vec<u32>> = BTreeMap::new();
    for (pattern, queue, value) in live {
        if brute_matches(pattern.as_bytes(), subject.as_bytes()) {
            match queue {
                None => want_plain.push(*value),
                Some(name) => want_groups
                    .entry(name.as_bytes().to_vec())
                    .or_default()
                    .push(*value),
            }
        }
    }
    want_plain.sort_unstable();
    want_groups.values_mut().for_each(|m| m.sort_unstable());
    (want_plain, want_groups)
}

#[derive(Debug, Clone)]
enum Op {
    Insert(String, Option<&'static str>),
    /// Removes one live subscription, picked by index.
    Remove(prop::sample::Index),
    /// Removes a value never inserted: must change nothing.
    RemoveAbsent(String),
    Match(String),
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let queue = prop_oneof![Just(None), Just(Some("q1")), Just(Some("q2"))];
    prop_oneof![
        3 => (pattern_strategy(), queue).prop_map(|(p, q)| Op::Insert(p, q)),
        2 => any::<prop::sample::Index>().prop_map(Op::Remove),
        1 => pattern_strategy().prop_map(Op::RemoveAbsent),
        4 => subject_strategy().prop_map(Op::Match),
    ]
}

proptest! {
    /// Inserts, removes and matches interleaved with the cache on: every match, and every
    /// entry left in the cache after every step, must equal a cache-less recomputation.
    #[test]
    fn interleaved_changes_keep_the_cache_exact(
        capacity in prop_oneof![Just(0usize), Just(3), Just(64)],
        ops in proptest::collection::vec(op_strategy(), 1..120),
    ) {
        let mut list = Sublist::with_cache_capacity(capacity);
        let mut live: Vec<(String, Option<&str>, u32)> = Vec::new();
        for (step, op) in ops.into_iter().enumerate() {
            match op {
                Op::Insert(pattern, queue) => {
                    list.insert(pattern.as_bytes(), queue.map(q).as_ref(), step as u32);
                    live.push((pattern, queue, step as u32));
                }
                Op::Remove(index) => {
                    if !live.is_empty() {
                        let (pattern, queue, value) = live.remove(index.index(live.len()));
                        prop_assert!(list.remove(pattern.as_bytes(), queue.map(str::as_bytes), &value));
                    }
                }
                Op::RemoveAbsent(pattern) => {
                    let cached = list.cache_len();
                    prop_assert!(!list.remove(pattern.as_bytes(), None, &u32::MAX));
                    prop_assert_eq!(list.cache_len(), cached);
                }
                Op::Match(subject) => {
                    let result = list.match_subject(subject.as_bytes());
                    let uncached = list.match_uncached(subject.as_bytes());
                    prop_assert_eq!(normalize(&result), normalize(&uncached));
                    prop_assert_eq!(normalize(&result), brute_result(&live, &subject));
                }
            }
            prop_assert_eq!(list.len(), live.len());
            prop_assert!(list.cache_len() <= capacity);
            for (subject, cached) in list.cached() {
                prop_assert_eq!(
                    normalize(cached),
                    normalize(&list.match_uncached(subject)),
                    "stale cache entry for {:?}",
                    String::from_utf8_lossy(subject)
                );
            }
        }
    }

    #[test]
    fn matches_agree_with_brute_force(
        subs in proptest::collection::vec((pattern_strategy(), prop_oneof![Just(None), Just(Some("q1")), Just(Some("q2"))]), 0..40),
        removals in proptest::collection::vec(any::<prop::sample::Index>(), 0..20),
        subjects in proptest::collection::vec(subject_strategy(), 1..20),
    ) {
        let mut list = Sublist::with_cache_capacity(4);
        let mut live: Vec<(String, Option<&str>, u32)> = Vec::new();
        for (i, (pattern, queue)) in subs.iter().enumerate() {
            list.insert(pattern.as_bytes(), queue.map(q).as_ref(), i as u32);
            live.push((pattern.clone(), *queue, i as u32));
        }
        // Warm the cache before removals so stale hits would show.
        for subject in &subjects {
            list.match_subject(subject.as_bytes());
        }
        for index in removals {
            if live.is_empty() {
                break;
            }
            let (pattern, queue, value) = live.remove(index.index(live.len()));
            prop_assert!(list.remove(pattern.as_bytes(), queue.map(str::as_bytes), &value));
        }
        prop_assert_eq!(list.len(), live.len());
        for _pass in 0..2 {
            for subject in &subjects {
                let result = list.match_subject(subject.as_bytes());
                let mut want_plain = Vec::new();
                let mut want_groups: BTreeMap<Vec<u8>, Vec<u32>> = BTreeMap::new();
                for (pattern, queue, value) in &live {
                    if brute_matches(pattern.as_bytes(), subject.as_bytes()) {
                        match queue {
                            None => want_plain.push(*value),
                            Some(name) => want_groups.entry(name.as_bytes().to_vec()).or_default().push(*value),
                        }
                    }
                }
                want_plain.sort_unstable();
                want_groups.values_mut().for_each(|m| m.sort_unstable());
                let mut got_plain = result.plain.clone();
                got_plain.sort_unstable();
                prop_assert_eq!(got_plain, want_plain);
                prop_assert_eq!(groups(&result), want_groups);
            }
        }
        for (pattern, queue, value) in live.drain(..) {
            prop_assert!(list.remove(pattern.as_bytes(), queue.map(str::as_bytes), &value));
        }
        prop_assert_eq!(list.node_count(), 1);
    }
}

#[test]
fn subjects_seen_once_are_not_cached() {
    let mut list = Sublist::new();
    list.insert(b"_INBOX.>", None, 1);
    for i in 0..10_000 {
        let subject = format!("_INBOX.x.{i}");
        assert_eq!(list.match_subject(subject.as_bytes()).plain, vec![1]);
    }
    assert_eq!(list.cache_len(), 0, "unique subjects take no cache entries");
}

#[test]
fn misses_that_match_alike_share_one_result() {
    let mut list = Sublist::with_cache_capacity(0);
    list.insert(b"telemetry.>", None, 1);
    let a = list.match_subject(b"telemetry.1.temp");
    let b = list.match_subject(b"telemetry.2.temp");
    assert!(
        Rc::ptr_eq(&a, &b),
        "the second miss reuses the first one's result"
    );
    assert!(list.match_subject(b"other").is_empty());
    list.insert(b"telemetry.3.*", None, 2);
    let c = list.match_subject(b"telemetry.3.temp");
    assert_eq!(c.plain, vec![1, 2]);
    assert_eq!(list.match_subject(b"telemetry.4.temp").plain, vec![1]);
}

#[test]
fn a_removed_value_is_not_kept_by_the_last_miss() {
    let value = Rc::new(7u32);
    let mut list = Sublist::with_cache_capacity(0);
    list.insert(b"a.>", None, value.clone());
    assert_eq!(*list.match_subject(b"a.b").plain[0], 7);
    assert!(list.remove(b"a.>", None, &value));
    assert_eq!(
        Rc::strong_count(&value),
        1,
        "nothing in the sublist holds it"
    );
}

/// A working set far larger than the cache: admission narrows to a fixed sample, which then
/// stays cached and hits, instead of every subject being cached and evicted unused; once the
/// working set fits again, admission widens back and caches all of it.
#[test]
fn a_thrashing_cache_keeps_a_sample_and_recovers() {
    let mut list = Sublist::with_cache_capacity(256);
    list.insert(b"telemetry.>", None, 1);
    // 50 devices with 100 subjects each, each device's subjects in a burst (one read of its
    // connection), as in a fan-in of many publishers.
    let subjects: Vec<String> = (0..5_000)
        .map(|i| format!("telemetry.{}.{}", i / 100, i % 100))
        .collect();
    let round = |list: &mut Sublist<u32>| {
        for device in subjects.chunks(100) {
            for _ in 0..3 {
                for s in device {
                    assert_eq!(list.match_subject(s.as_bytes()).plain, vec![1]);
                }
            }
        }
    };
    for _ in 0..10 {
        round(&mut list);
    }
    assert!(list.admit_bits() > 0, "admission narrowed");
    let (hits, inserts) = (list.hits, list.inserts);
    round(&mut list);
    assert!(list.hits > hits, "the sample hits");
    assert!(
        list.inserts - inserts < 256,
        "few inserts a round once narrowed: {}",
        list.inserts - inserts
    );
    assert!(list.cache_len() <= 256);
    // A small working set again: cached whole once admission loosened.
    let small: Vec<String> = (0..10).map(|i| format!("small.{i}")).collect();
    list.insert(b"small.*", None, 2);
    let mut rounds = 0;
    while small.iter().any(|s| !list.cache.contains_key(s.as_bytes())) {
        for s in &small {
            assert_eq!(list.match_subject(s.as_bytes()).plain, vec![2]);
        }
        rounds += 1;
        assert!(
            rounds < 100_000,
            "the small working set is never cached whole"
        );
    }
}

#[test]
fn a_literal_queue_group_stays_one_across_resubscribes() {
    let mut list = Sublist::new();
    let g = q("bench-q");
    for v in 0..4 {
        list.insert(b"bench", Some(&g), v);
    }
    for round in 0..100 {
        let r = list.match_subject(b"bench");
        assert_eq!(r.queues.len(), 1, "round {round}");
        assert_eq!(r.queues[0].members.len(), 4);
        assert!(list.remove(b"bench", Some(b"bench-q"), &(round % 4)));
        list.insert(b"bench", Some(&g), round % 4);
    }
}

#[test]
fn a_repeated_subject_sees_every_change_between_its_repeats() {
    let mut list = Sublist::new();
    list.insert(b"a.b", None, 1);
    let first = list.match_subject(b"a.b");
    assert!(
        Rc::ptr_eq(&first, &list.match_subject(b"a.b")),
        "repeat shares"
    );
    list.insert(b"a.*", None, 2);
    assert_eq!(plain(&mut list, "a.b"), vec![1, 2]);
    assert_eq!(plain(&mut list, "a.b"), vec![1, 2]);
    assert!(list.remove(b"a.b", None, &1));
    assert_eq!(plain(&mut list, "a.b"), vec![2]);
    // A repeat that is not in the cache yet is admitted as its second miss would be.
    let mut fresh = Sublist::new();
    fresh.insert(b"x", None, 1);
    fresh.match_subject(b"x");
    assert_eq!(fresh.cache_len(), 0);
    fresh.match_subject(b"x");
    assert_eq!(fresh.cache_len(), 1);
}
