//! `*` wildcards over names (models, headers): `*` matches any run of characters, including none.

/// `Some(prefix)` when the pattern is `prefix*` with no other wildcard.
pub fn prefix_pattern(pattern: &str) -> Option<&str> {
    let prefix = pattern.strip_suffix('*')?;
    (!prefix.contains('*')).then_some(prefix)
}

pub fn matches(pattern: &str, s: &str) -> bool {
    let mut parts = pattern.split('*');
    let Some(first) = parts.next() else { return false };
    let Some(mut rest) = s.strip_prefix(first) else { return false };
    let mut parts: Vec<&str> = parts.collect();
    let Some(last) = parts.pop() else {
        return rest.is_empty();
    };
    for part in parts {
        match rest.find(part) {
            Some(i) => rest = rest.get(i + part.len()..).unwrap_or_default(),
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_matching() {
        assert!(matches("gpt-4o", "gpt-4o"));
        assert!(!matches("gpt-4o", "gpt-4o-mini"));
        assert!(matches("gpt-*", "gpt-4o-mini"));
        assert!(matches("*", ""));
        assert!(matches("claude-opus-5*", "claude-opus-5-20261001"));
        assert!(!matches("claude-opus-5*", "claude-opus-4-5"));
        assert!(matches("*-mini", "o4-mini"));
        assert!(matches("claude-opus-4-7*", "claude-opus-4-7"));
        assert!(matches("a*b*c", "abc"));
        assert!(matches("a*b*c", "axxbyyc"));
        assert!(!matches("a*b*c", "axxbyy"));
        assert!(!matches("ab*ba", "aba"), "prefix and suffix may not overlap");
    }

    #[test]
    fn prefix_patterns() {
        assert_eq!(prefix_pattern("gpt-*"), Some("gpt-"));
        assert_eq!(prefix_pattern("gpt"), None);
        assert_eq!(prefix_pattern("*a*"), None);
    }
}
