//! Topic-exchange pattern matching with RabbitMQ's semantics: words are
//! separated by '.', may be empty ("a..b" has three words), `*` matches
//! exactly one word and `#` matches zero or more words.

/// True when `routing_key` matches the binding `pattern`.
pub fn topic_matches(pattern: &str, routing_key: &str) -> bool {
    // Fast paths for the most common bindings.
    if pattern == "#" {
        return true;
    }
    if !pattern.contains(['*', '#']) {
        return pattern == routing_key;
    }
    match_words(&Words::new(pattern), &Words::new(routing_key))
}

/// The words of a pattern or key, read in place (no allocation per
/// binding). RabbitMQ splits the empty string into zero words (so `*` does
/// not match the empty key, while `#` does).
struct Words<'a> {
    s: &'a [u8],
}

impl<'a> Words<'a> {
    fn new(s: &'a str) -> Words<'a> {
        Words { s: s.as_bytes() }
    }

    /// The word starting at byte `at` and the start of the next one
    /// (`None` once `at` is past the last word).
    fn word(&self, at: usize) -> Option<(&'a [u8], usize)> {
        if self.s.is_empty() || at > self.s.len() {
            return None;
        }
        let rest = &self.s[at..];
        Some(match rest.iter().position(|&b| b == b'.') {
            Some(n) => (&rest[..n], at + n + 1),
            None => (rest, self.s.len() + 1),
        })
    }
}

/// Iterative matcher with backtracking to the last `#` (linear in practice,
/// no recursion so hostile patterns cannot blow the stack). Positions are
/// byte offsets of words.
fn match_words(pattern: &Words<'_>, key: &Words<'_>) -> bool {
    let (mut p, mut k) = (0usize, 0usize);
    // Position after the last '#' seen in the pattern, and the key position
    // it is currently assumed to have consumed up to.
    let mut backtrack: Option<(usize, usize)> = None;
    loop {
        let pw = pattern.word(p);
        if let Some((b"#", _)) = pw {
            // Collapse consecutive '#'.
            while let Some((b"#", next)) = pattern.word(p) {
                p = next;
            }
            backtrack = Some((p, k));
            continue;
        }
        let kw = key.word(k);
        match (pw, kw) {
            (None, None) => return true,
            (Some((w, pn)), Some((kword, kn))) if w == b"*" || w == kword => {
                p = pn;
                k = kn;
                continue;
            }
            _ => {}
        }
        // Mismatch: let the last '#' swallow one more word.
        match backtrack {
            Some((bp, bk)) => match key.word(bk) {
                Some((_, next)) => {
                    backtrack = Some((bp, next));
                    p = bp;
                    k = next;
                }
                None => return false,
            },
            None => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::topic_matches as m;

    #[test]
    fn star_matches_exactly_one_word() {
        assert!(m("a.*.c", "a.b.c"));
        assert!(!m("a.*.c", "a.c"));
        assert!(!m("a.*.c", "a.b.b.c"));
        assert!(m("*", "word"));
        assert!(!m("*", ""));
        assert!(!m("*", "a.b"));
        assert!(m("a.*", "a."));
    }

    #[test]
    fn hash_matches_zero_or_more_words() {
        assert!(m("#", ""));
        assert!(m("#", "a.b.c"));
        assert!(m("a.#", "a"));
        assert!(m("a.#", "a.b.c"));
        assert!(m("#.a", "a"));
        assert!(m("#.a", "x.y.a"));
        assert!(!m("#.a", "x.y.b"));
        assert!(m("a.#.b", "a.b"));
        assert!(m("a.#.b", "a.x.y.b"));
        assert!(m("#.#", "a"));
        assert!(m("a.#.#.b", "a.b"));
        assert!(m("#.b.#", "a.b.c"));
        assert!(!m("#.b.#", "a.c"));
    }

    #[test]
    fn empty_words_count() {
        assert!(m("a..b", "a..b"));
        assert!(m("a.*.b", "a..b"));
        assert!(!m("a.b", "a..b"));
        assert!(m("", ""));
        assert!(!m("", "a"));
        assert!(m("#.#", ""));
        assert!(m("a.*.c", "a..c"));
        assert!(m("#.*", "a"));
        assert!(!m("*.*", "a"));
        assert!(m("*.#", "a"));
    }

    /// Reference matcher: the definition, recursively, on split words.
    fn reference(p: &[&str], k: &[&str]) -> bool {
        match (p.first(), k.first()) {
            (None, None) => true,
            (Some(&"#"), _) => reference(&p[1..], k) || (!k.is_empty() && reference(p, &k[1..])),
            (Some(&"*"), Some(_)) => reference(&p[1..], &k[1..]),
            (Some(w), Some(x)) => w == x && reference(&p[1..], &k[1..]),
            _ => false,
        }
    }

    fn split(s: &str) -> Vec<&str> {
        if s.is_empty() {
            Vec::new()
        } else {
            s.split('.').collect()
        }
    }

    #[test]
    fn agrees_with_the_reference_on_random_inputs() {
        let atoms = ["a", "b", "", "*", "#"];
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let mut next = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let mut matched = 0;
        for _ in 0..20_000 {
            let mut gen = |allow_wild: bool| {
                let n = next(5) as usize;
                let words: Vec<&str> = (0..n)
                    .map(|_| atoms[next(if allow_wild { 5 } else { 3 }) as usize])
                    .collect();
                words.join(".")
            };
            let (p, k) = (gen(true), gen(false));
            let want = reference(&split(&p), &split(&k));
            assert_eq!(m(&p, &k), want, "pattern {p:?} key {k:?}");
            matched += usize::from(want);
        }
        assert!(
            matched > 1000,
            "too few matches ({matched}) to mean anything"
        );
    }
}
