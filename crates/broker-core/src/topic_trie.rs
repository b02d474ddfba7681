//! A topic exchange's bindings indexed by pattern words (a trie, as
//! RabbitMQ's topic exchange keeps them), so routing a message visits only
//! the patterns that can match its key — O(words of the key × branches
//! taken) — instead of testing every binding.
//!
//! Semantics are `topic.rs`'s (RabbitMQ's): words are separated by '.',
//! may be empty, the empty string has zero words; `*` matches one word and
//! `#` zero or more. Consecutive `#` are collapsed at insert (`#.#` is `#`).

use amqp_codec::ShortStr;
use rustc_hash::FxHashMap;

/// Words in a key or pattern: at most one per two bytes of a 255-byte
/// short string (plus one).
const KEY_WORDS_MAX: usize = 129;

/// One node: the patterns that end here and the edges to longer ones.
#[derive(Debug, Default)]
struct Node {
    /// Edges for literal words.
    words: FxHashMap<ShortStr, u32>,
    /// Edge for `*`.
    star: Option<u32>,
    /// Edge for `#`.
    hash: Option<u32>,
    /// Binding slots whose pattern ends at this node.
    slots: Vec<u32>,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.words.is_empty() && self.star.is_none() && self.hash.is_none() && self.slots.is_empty()
    }
}

#[derive(Debug)]
pub struct TopicTrie {
    /// Node 0 is the root; freed nodes are reused.
    nodes: Vec<Node>,
    /// Indexes of freed nodes.
    free: Vec<u32>,
}

impl Default for TopicTrie {
    fn default() -> Self {
        TopicTrie {
            nodes: vec![Node::default()],
            free: Vec::new(),
        }
    }
}

/// The edge a pattern word takes.
enum Edge<'a> {
    Word(&'a str),
    Star,
    Hash,
}

fn edges(pattern: &str) -> impl Iterator<Item = Edge<'_>> {
    let words = if pattern.is_empty() {
        None
    } else {
        Some(pattern.split('.'))
    };
    let mut last_hash = false;
    words.into_iter().flatten().filter_map(move |w| match w {
        "#" if last_hash => None,
        "#" => {
            last_hash = true;
            Some(Edge::Hash)
        }
        "*" => {
            last_hash = false;
            Some(Edge::Star)
        }
        w => {
            last_hash = false;
            Some(Edge::Word(w))
        }
    })
}

impl TopicTrie {
    fn child(&self, node: u32, e: &Edge<'_>) -> Option<u32> {
        let n = &self.nodes[node as usize];
        match e {
            Edge::Word(w) => n.words.get(*w).copied(),
            Edge::Star => n.star,
            Edge::Hash => n.hash,
        }
    }

    fn new_node(&mut self) -> u32 {
        match self.free.pop() {
            Some(i) => i,
            None => {
                self.nodes.push(Node::default());
                (self.nodes.len() - 1) as u32
            }
        }
    }

    /// Adds binding `slot` with `pattern`.
    pub fn insert(&mut self, pattern: &str, slot: u32) {
        let mut node = 0u32;
        for e in edges(pattern) {
            node = match self.child(node, &e) {
                Some(c) => c,
                None => {
                    let c = self.new_node();
                    let n = &mut self.nodes[node as usize];
                    match e {
                        Edge::Word(w) => {
                            n.words.insert(ShortStr::from(w), c);
                        }
                        Edge::Star => n.star = Some(c),
                        Edge::Hash => n.hash = Some(c),
                    }
                    c
                }
            };
        }
        self.nodes[node as usize].slots.push(slot);
    }

    /// Removes binding `slot` with `pattern`, pruning nodes left empty.
    pub fn remove(&mut self, pattern: &str, slot: u32) {
        let mut path: Vec<(u32, Edge<'_>)> = Vec::new();
        let mut node = 0u32;
        for e in edges(pattern) {
            let Some(c) = self.child(node, &e) else {
                return;
            };
            path.push((node, e));
            node = c;
        }
        self.nodes[node as usize].slots.retain(|&s| s != slot);
        // Prune from the leaf up while nodes are empty.
        while let Some((parent, e)) = path.pop() {
            if !self.nodes[node as usize].is_empty() {
                break;
            }
            let p = &mut self.nodes[parent as usize];
            match e {
                Edge::Word(w) => {
                    p.words.remove(w);
                }
                Edge::Star => p.star = None,
                Edge::Hash => p.hash = None,
            }
            self.nodes[node as usize] = Node::default();
            self.free.push(node);
            node = parent;
        }
    }

    /// Calls `f` with every slot whose pattern matches `routing_key` (a
    /// slot may be reported more than once when a pattern with several `#`
    /// matches along several paths; callers de-duplicate destinations).
    pub fn for_each_match(&self, routing_key: &str, f: &mut dyn FnMut(u32)) {
        let mut words = [""; KEY_WORDS_MAX];
        let mut n = 0;
        if !routing_key.is_empty() {
            for w in routing_key.split('.') {
                if n == KEY_WORDS_MAX {
                    // Not a short string: no pattern can be held to it.
                    return;
                }
                words[n] = w;
                n += 1;
            }
        }
        self.walk(0, &words[..n], f);
    }

    fn walk(&self, node: u32, key: &[&str], f: &mut dyn FnMut(u32)) {
        let n = &self.nodes[node as usize];
        if let Some(h) = n.hash {
            // `#` takes zero or more words.
            for skip in 0..=key.len() {
                self.walk(h, &key[skip..], f);
            }
        }
        let Some((first, rest)) = key.split_first() else {
            n.slots.iter().for_each(|&s| f(s));
            return;
        };
        if let Some(&c) = n.words.get(*first) {
            self.walk(c, rest, f);
        }
        if let Some(c) = n.star {
            self.walk(c, rest, f);
        }
    }

    /// Forgets every pattern.
    pub fn clear(&mut self) {
        *self = TopicTrie::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topic::topic_matches;

    #[test]
    fn agrees_with_the_matcher_on_random_patterns_and_keys() {
        let atoms = ["a", "b", "", "*", "#"];
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let gen = |wild: bool, next: &mut dyn FnMut(u64) -> u64| {
            let len = next(5) as usize;
            (0..len)
                .map(|_| atoms[next(if wild { 5 } else { 3 }) as usize])
                .collect::<Vec<_>>()
                .join(".")
        };
        let mut hits = 0;
        for round in 0..200 {
            let mut t = TopicTrie::default();
            let patterns: Vec<String> = (0..40).map(|_| gen(true, &mut next)).collect();
            for (i, p) in patterns.iter().enumerate() {
                t.insert(p, i as u32);
            }
            // Remove a few again, to exercise pruning.
            for (i, p) in patterns
                .iter()
                .enumerate()
                .filter(|(i, _)| i % 7 == round % 7)
            {
                t.remove(p, i as u32);
            }
            for _ in 0..40 {
                let key = gen(false, &mut next);
                let mut got: Vec<u32> = Vec::new();
                t.for_each_match(&key, &mut |s| got.push(s));
                got.sort_unstable();
                got.dedup();
                let want: Vec<u32> = patterns
                    .iter()
                    .enumerate()
                    .filter(|(i, p)| i % 7 != round % 7 && topic_matches(p, &key))
                    .map(|(i, _)| i as u32)
                    .collect();
                assert_eq!(got, want, "key {key:?} patterns {patterns:?}");
                hits += want.len();
            }
        }
        assert!(hits > 5000, "too few matches ({hits})");
    }

    #[test]
    fn removing_everything_prunes_back_to_the_root() {
        let mut t = TopicTrie::default();
        for (i, p) in ["a.b.c", "a.*.#", "#", "a.#.c", ""].iter().enumerate() {
            t.insert(p, i as u32);
        }
        for (i, p) in ["a.b.c", "a.*.#", "#", "a.#.c", ""].iter().enumerate() {
            t.remove(p, i as u32);
        }
        assert!(t.nodes[0].is_empty());
        assert_eq!(t.nodes.len() - 1, t.free.len());
    }
}
