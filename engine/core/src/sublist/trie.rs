//! The subject trie: one node per token position, with separate edges for `*` and `>` so a
//! match never has to scan the literal children.

use bytes::Bytes;
use rustc_hash::FxHashMap;

use super::{MatchResult, QueueGroup};

pub(super) struct Node<T> {
    /// Boxed: a map's slots hold a pointer, not a node, so the one-child maps of a subject's
    /// inner tokens (`device.<id>.telemetry`) stay small. Measured: 1 M such subscriptions on
    /// two shards took 2 178 B each with the nodes inline.
    literals: FxHashMap<Box<[u8]>, Box<Node<T>>>,
    /// Child for a `*` token.
    pwc: Option<Box<Node<T>>>,
    /// Child for a `>` token. Only its own values matter: `>` is always the last token.
    fwc: Option<Box<Node<T>>>,
    /// Values whose pattern ends at this node.
    values: Values<T>,
}

impl<T> Default for Node<T> {
    fn default() -> Self {
        Self {
            literals: FxHashMap::default(),
            pwc: None,
            fwc: None,
            values: Values::default(),
        }
    }
}

/// The values stored under one pattern: at a trie node, or under a literal subject in the
/// sublist's flat map.
pub(super) struct Values<T> {
    /// Without a queue group.
    plain: Vec<T>,
    /// Per queue group name.
    queues: Vec<QueueGroup<T>>,
}

impl<T> Default for Values<T> {
    fn default() -> Self {
        Self {
            plain: Vec::new(),
            queues: Vec::new(),
        }
    }
}

impl<T> Values<T> {
    pub(super) fn is_empty(&self) -> bool {
        self.plain.is_empty() && self.queues.is_empty()
    }
}

impl<T: Clone + PartialEq> Values<T> {
    pub(super) fn add(&mut self, queue: Option<&Bytes>, value: T) {
        match queue {
            None => {
                // Most patterns hold one value: room for one, not the four a first push makes.
                if self.plain.capacity() == 0 {
                    self.plain.reserve_exact(1);
                }
                self.plain.push(value)
            }
            Some(name) => match self.queues.iter_mut().find(|g| g.name == *name) {
                Some(group) => group.members.push(value),
                None => self.queues.push(QueueGroup {
                    name: name.clone(),
                    members: vec![value],
                }),
            },
        }
    }

    /// Removes one copy of `value`; whether there was one.
    pub(super) fn remove(&mut self, queue: Option<&[u8]>, value: &T) -> bool {
        match queue {
            None => match self.plain.iter().position(|v| v == value) {
                Some(i) => {
                    self.plain.remove(i);
                    true
                }
                None => false,
            },
            Some(name) => {
                let Some(gi) = self.queues.iter().position(|g| g.name[..] == *name) else {
                    return false;
                };
                let group = &mut self.queues[gi];
                let Some(mi) = group.members.iter().position(|v| v == value) else {
                    return false;
                };
                group.members.remove(mi);
                if group.members.is_empty() {
                    self.queues.remove(gi);
                }
                true
            }
        }
    }

    /// Adds these values to a match result, merging queue groups by name.
    pub(super) fn append_to(&self, out: &mut MatchResult<T>) {
        out.plain.extend_from_slice(&self.plain);
        for group in &self.queues {
            match out.queues.iter_mut().find(|g| g.name == group.name) {
                Some(merged) => merged.members.extend_from_slice(&group.members),
                None => out.queues.push(group.clone()),
            }
        }
    }
}

/// Splits off the first '.'-separated token; `None` as the rest means it was the last one.
fn split_token(subject: &[u8]) -> (&[u8], Option<&[u8]>) {
    match subject.iter().position(|&b| b == b'.') {
        Some(dot) => (&subject[..dot], Some(&subject[dot + 1..])),
        None => (subject, None),
    }
}

fn tokens(subject: &[u8]) -> impl Iterator<Item = &[u8]> {
    subject.split(|&b| b == b'.')
}

/// Whether `pattern` has no `*` or `>` token, so it matches only the subject spelled the same.
pub(super) fn is_literal(pattern: &[u8]) -> bool {
    tokens(pattern).all(|token| token != b"*" && token != b">")
}

/// The bytes of `pattern` before its first wildcard token, the '.' after the last literal token
/// included: every subject the pattern matches starts with them.
pub(super) fn literal_prefix(pattern: &[u8]) -> &[u8] {
    let mut start = 0;
    for token in tokens(pattern) {
        if token == b"*" || token == b">" {
            return &pattern[..start];
        }
        start += token.len() + 1;
    }
    pattern
}

/// Whether `pattern` matches the literal `subject`, by the rules `collect` walks the trie with:
/// subject tokens are plain bytes (a `*` published as a token is just text), a pattern's `*`
/// takes one token and `>` one or more. The cache relies on this agreeing with `collect`: a
/// subject this misses would keep a stale result. A `>` before the last token (which validation
/// rejects) is treated as a match, so any disagreement errs towards dropping too much.
pub(super) fn pattern_matches(pattern: &[u8], subject: &[u8]) -> bool {
    let mut subject_tokens = tokens(subject);
    for token in tokens(pattern) {
        let Some(subject_token) = subject_tokens.next() else {
            return false;
        };
        match token {
            b">" => return true,
            b"*" => {}
            literal if literal == subject_token => {}
            _ => return false,
        }
    }
    subject_tokens.next().is_none()
}

impl<T> Node<T> {
    fn child(&self, token: &[u8]) -> Option<&Node<T>> {
        match token {
            b"*" => self.pwc.as_deref(),
            b">" => self.fwc.as_deref(),
            _ => self.literals.get(token).map(|c| &**c),
        }
    }

    fn child_mut(&mut self, token: &[u8]) -> Option<&mut Node<T>> {
        match token {
            b"*" => self.pwc.as_deref_mut(),
            b">" => self.fwc.as_deref_mut(),
            _ => self.literals.get_mut(token).map(|c| &mut **c),
        }
    }

    fn child_or_insert(&mut self, token: &[u8]) -> &mut Node<T> {
        match token {
            b"*" => self.pwc.get_or_insert_with(Box::default),
            b">" => self.fwc.get_or_insert_with(Box::default),
            _ => self.literals.entry(Box::from(token)).or_default(),
        }
    }

    fn remove_child(&mut self, token: &[u8]) {
        match token {
            b"*" => self.pwc = None,
            b">" => self.fwc = None,
            _ => {
                self.literals.remove(token);
            }
        }
    }

    fn child_count(&self) -> usize {
        self.literals.len() + usize::from(self.pwc.is_some()) + usize::from(self.fwc.is_some())
    }

    fn has_values(&self) -> bool {
        !self.values.is_empty()
    }

    fn is_empty(&self) -> bool {
        !self.has_values() && self.child_count() == 0
    }

    /// Moves all children out so they can be dropped without recursion.
    fn take_children(&mut self, into: &mut Vec<Node<T>>) {
        into.extend(self.literals.drain().map(|(_, child)| *child));
        into.extend(self.pwc.take().map(|child| *child));
        into.extend(self.fwc.take().map(|child| *child));
    }

    /// Nodes in this subtree, this one included.
    pub(super) fn count_nodes(&self) -> usize {
        let mut count = 0;
        let mut stack = vec![self];
        while let Some(node) = stack.pop() {
            count += 1;
            stack.extend(node.literals.values().map(|c| &**c));
            stack.extend(node.pwc.as_deref());
            stack.extend(node.fwc.as_deref());
        }
        count
    }
}

impl<T: Clone + PartialEq> Node<T> {
    pub(super) fn insert(&mut self, subject: &[u8], queue: Option<&Bytes>, value: T) {
        let mut node = self;
        for token in tokens(subject) {
            node = node.child_or_insert(token);
        }
        node.values.add(queue, value);
    }

    /// Removes one copy of `value`, then the nodes on the subject's path left with nothing.
    pub(super) fn remove(&mut self, subject: &[u8], queue: Option<&[u8]>, value: &T) -> bool {
        let mut node = &mut *self;
        for token in tokens(subject) {
            match node.child_mut(token) {
                Some(child) => node = child,
                None => return false,
            }
        }
        if !node.values.remove(queue, value) {
            return false;
        }
        if node.is_empty() {
            self.prune(subject);
        }
        true
    }

    /// Cuts the chain of nodes that exist only to lead to the (now empty) end of `subject`:
    /// below the deepest ancestor that still holds values or has another child.
    fn prune(&mut self, subject: &[u8]) {
        let mut cut_depth = 0;
        let mut node: &Node<T> = self;
        for (depth, token) in tokens(subject).enumerate() {
            if node.has_values() || node.child_count() > 1 {
                cut_depth = depth;
            }
            match node.child(token) {
                Some(child) => node = child,
                None => return,
            }
        }
        if !node.is_empty() {
            return;
        }
        let mut parent = self;
        let mut path = tokens(subject);
        for _ in 0..cut_depth {
            let Some(child) = path.next().and_then(|token| parent.child_mut(token)) else {
                return;
            };
            parent = child;
        }
        if let Some(token) = path.next() {
            parent.remove_child(token);
        }
    }

    /// Appends every value whose pattern matches the literal `subject`.
    pub(super) fn collect(&self, subject: &[u8], out: &mut MatchResult<T>) {
        // An explicit stack, not recursion: the depth follows client-chosen subjects. Inline
        // for the usual depths: an uncached match allocated for its stack alone.
        let mut stack: smallvec::SmallVec<[Walk<'_, T>; 16]> =
            smallvec::smallvec![(self, Some(subject))];
        while let Some((node, rest)) = stack.pop() {
            let Some(rest) = rest else {
                node.append_values(out);
                continue;
            };
            let (token, next) = split_token(rest);
            if let Some(fwc) = node.fwc.as_deref() {
                fwc.append_values(out);
            }
            if let Some(pwc) = node.pwc.as_deref() {
                stack.push((pwc, next));
            }
            if let Some(child) = node.literals.get(token) {
                stack.push((&**child, next));
            }
        }
    }

    fn append_values(&self, out: &mut MatchResult<T>) {
        self.values.append_to(out);
    }
}

/// A node still to visit in a match, with what is left of the subject (`None`: all of it
/// was consumed on the way to the node).
type Walk<'a, T> = (&'a Node<T>, Option<&'a [u8]>);

impl<T> Drop for Node<T> {
    fn drop(&mut self) {
        // Dropping a deep chain of boxed nodes recursively could overflow the stack, and the
        // depth follows client-chosen subjects; flatten the subtree instead.
        if self.child_count() == 0 {
            return;
        }
        let mut pending = Vec::new();
        self.take_children(&mut pending);
        while let Some(mut node) = pending.pop() {
            node.take_children(&mut pending);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_token_cases() {
        assert_eq!(split_token(b"a.b.c"), (&b"a"[..], Some(&b"b.c"[..])));
        assert_eq!(split_token(b"a"), (&b"a"[..], None));
        assert_eq!(split_token(b"a."), (&b"a"[..], Some(&b""[..])));
    }

    #[test]
    fn pattern_matches_cases() {
        let cases: &[(&[u8], &[u8], bool)] = &[
            (b"a.b", b"a.b", true),
            (b"a.b", b"a.c", false),
            (b"a.b", b"a.b.c", false),
            (b"a.b.c", b"a.b", false),
            (b"a.*", b"a.b", true),
            (b"a.*", b"a", false),
            (b"a.*", b"a.b.c", false),
            (b"*.*", b"a.b", true),
            (b"a.>", b"a.b.c", true),
            (b"a.>", b"a", false),
            (b">", b"a", true),
            (b"*.b.>", b"x.b.y", true),
            (b"*.b.>", b"x.c.y", false),
            // Subject tokens are literal text, even ones that look like wildcards.
            (b"a.b", b"a.*", false),
            (b"a.*", b"a.*", true),
            (b"a", b"*", false),
            // Empty tokens are tokens, as in the trie.
            (b"a.*", b"a.", true),
            (b"a.b", b"a..b", false),
        ];
        for &(pattern, subject, want) in cases {
            assert_eq!(
                pattern_matches(pattern, subject),
                want,
                "{:?} vs {:?}",
                String::from_utf8_lossy(pattern),
                String::from_utf8_lossy(subject)
            );
        }
        for &(pattern, prefix) in &[
            (&b"a.b.*"[..], &b"a.b."[..]),
            (b"a.>", b"a."),
            (b"*.a", b""),
            (b">", b""),
            (b"a.b", b"a.b"),
            (b"a..*", b"a.."),
        ] {
            assert_eq!(literal_prefix(pattern), prefix);
        }
        assert!(is_literal(b"a.b"));
        assert!(is_literal(b"a*.b>"));
        assert!(!is_literal(b"a.*"));
        assert!(!is_literal(b">"));
    }

    #[test]
    fn deep_chain_drops_without_recursion() {
        let mut root: Node<u32> = Node::default();
        let subject = format!("{}x", "x.".repeat(199_999)).into_bytes();
        root.insert(&subject, None, 1);
        assert_eq!(root.count_nodes(), 200_001);
        let mut out = MatchResult::default();
        root.collect(&subject, &mut out);
        assert_eq!(out.plain, vec![1]);
        // Runs on the test thread's 2 MiB stack; recursive drop of 200k nodes would overflow it.
        drop(root);
    }

    #[test]
    fn deep_chain_prunes_without_recursion() {
        let mut root: Node<u32> = Node::default();
        let subject = format!("{}x", "x.".repeat(199_999)).into_bytes();
        root.insert(&subject, None, 1);
        assert!(root.remove(&subject, None, &1));
        assert_eq!(root.count_nodes(), 1);
    }
}
