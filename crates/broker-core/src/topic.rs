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
    let pattern = words(pattern);
    let key = words(routing_key);
    match_words(&pattern, &key)
}

/// RabbitMQ splits the empty string into zero words (so `*` does not match
/// the empty key, while `#` does).
fn words(s: &str) -> Vec<&str> {
    if s.is_empty() {
        Vec::new()
    } else {
        s.split('.').collect()
    }
}

/// Iterative matcher with backtracking to the last `#` (linear in practice,
/// no recursion so hostile patterns cannot blow the stack).
fn match_words(pattern: &[&str], key: &[&str]) -> bool {
    let (mut p, mut k) = (0usize, 0usize);
    // Position after the last '#' seen in the pattern, and the key index it
    // is currently assumed to have consumed up to.
    let mut backtrack: Option<(usize, usize)> = None;
    loop {
        if p < pattern.len() && pattern[p] == "#" {
            // Collapse consecutive '#'.
            while p < pattern.len() && pattern[p] == "#" {
                p += 1;
            }
            backtrack = Some((p, k));
            continue;
        }
        if k == key.len() && p == pattern.len() {
            return true;
        }
        if k < key.len() && p < pattern.len() && (pattern[p] == "*" || pattern[p] == key[k]) {
            p += 1;
            k += 1;
            continue;
        }
        // Mismatch: let the last '#' swallow one more word.
        match backtrack {
            Some((bp, bk)) if bk < key.len() => {
                backtrack = Some((bp, bk + 1));
                p = bp;
                k = bk + 1;
            }
            _ => return false,
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
}
