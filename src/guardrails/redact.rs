//! Redaction: each distinct finding gets a typed placeholder (`<EMAIL_1>`, `<CARD_2>`), the same
//! for every occurrence within the request, and the client's body is rewritten with them.
//!
//! The rewrite works on the raw JSON of the client's body, not on a rendering of the
//! representation: every string value (not the object keys) is decoded, its findings replaced and
//! written back, every other byte kept. So one body serves every path the request can take —
//! translated for another provider, edited in place by the same-dialect fast path (OpenAI →
//! OpenAI, Messages → Anthropic), or re-parsed per attempt by a failover cluster's upstream
//! filter — and the fast path keeps its guarantees (unknown fields, order, cache markers) for
//! everything but the redacted text. The gateway parses the rewritten body again, once, only
//! when something was redacted.

use super::Finding;
use super::detectors::Detectors;
use crate::json;

/// Original text → placeholder, longest original first (so a finding that contains another is
/// replaced whole).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Redaction {
    pairs: Vec<(String, String)>,
}

impl Redaction {
    pub fn new(findings: &[Finding], detectors: &Detectors) -> Self {
        let mut pairs: Vec<(String, String)> = Vec::new();
        let mut numbers: Vec<(&str, u32)> = Vec::new();
        for f in findings {
            if pairs.iter().any(|(original, _)| original == f.value) {
                continue;
            }
            let kind = detectors.placeholder(f.detector);
            let n = match numbers.iter_mut().find(|(k, _)| *k == kind) {
                Some((_, n)) => {
                    *n += 1;
                    *n
                }
                None => {
                    numbers.push((kind, 1));
                    1
                }
            };
            pairs.push((f.value.to_owned(), format!("<{kind}_{n}>")));
        }
        pairs.sort_by_key(|(original, _)| std::cmp::Reverse(original.len()));
        Redaction { pairs }
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// `text` with every original replaced by its placeholder, or `None` when it holds none.
    /// One pass: at each byte only the originals starting with that byte are tried.
    pub fn apply(&self, text: &str) -> Option<String> {
        replace_all(text, self.pairs.iter().map(|(o, p)| (o.as_str(), p.as_str())))
    }

    /// The JSON `body` with the findings in its string values replaced, or `None` when no string
    /// holds one. Object keys are left alone.
    pub fn apply_json(&self, body: &[u8]) -> Option<Vec<u8>> {
        if self.is_empty() {
            return None;
        }
        rewrite_strings(body, |_, text| self.apply(text))
    }
}

/// The JSON `body` with each string value (not the object keys) that `rewrite` changes written
/// back changed, every other byte kept; `None` when it changes none (or the body is not JSON).
/// `rewrite` gets the value's key when it is an object member's (`None` in arrays) and the
/// decoded text.
pub(super) fn rewrite_strings(body: &[u8], mut rewrite: impl FnMut(Option<&str>, &str) -> Option<String>) -> Option<Vec<u8>> {
    let mut out: Vec<u8> = Vec::new();
    let mut copied = 0;
    let mut i = 0;
    let mut key: Option<json::Str> = None;
    while let Some(q) = body.get(i..).and_then(|rest| memchr::memchr(b'"', rest)) {
        let open = i + q;
        let close = json::string_end(body, open + 1)?;
        i = close + 1;
        let literal = body.get(open..=close)?;
        let after = body.get(i..).and_then(|r| r.iter().find(|c| !c.is_ascii_whitespace()));
        if after == Some(&b':') {
            key = Some(serde_json::from_slice(literal).ok()?);
            continue;
        }
        let before = body.get(..open).and_then(|b| b.iter().rev().find(|c| !c.is_ascii_whitespace()));
        let member_of = if before == Some(&b':') { key.as_ref().map(|k| &*k.0) } else { None };
        let decoded: json::Str = serde_json::from_slice(literal).ok()?;
        if let Some(replaced) = rewrite(member_of, &decoded) {
            out.extend_from_slice(body.get(copied..open)?);
            out.extend_from_slice(&json::quote(&replaced));
            copied = close + 1;
        }
    }
    if copied == 0 {
        return None;
    }
    out.extend_from_slice(body.get(copied..)?);
    Some(out)
}

/// `text` with each `(from, to)` replaced, the longest `from` first at any position; `None` when
/// none occurs.
fn replace_all<'p>(text: &str, pairs: impl Iterator<Item = (&'p str, &'p str)> + Clone) -> Option<String> {
    let b = text.as_bytes();
    let shortest = pairs.clone().map(|(f, _)| f.len()).min()?;
    if b.len() < shortest || shortest == 0 {
        return None;
    }
    let mut out: Option<Vec<u8>> = None;
    let mut i = 0;
    let mut copied = 0;
    while i < b.len() {
        let Some(first) = b.get(i) else { break };
        let hit = pairs
            .clone()
            .find(|(from, _)| from.as_bytes().first() == Some(first) && b.get(i..).is_some_and(|r| r.starts_with(from.as_bytes())));
        match hit {
            Some((from, to)) => {
                let o = out.get_or_insert_with(|| Vec::with_capacity(b.len()));
                o.extend_from_slice(b.get(copied..i).unwrap_or_default());
                o.extend_from_slice(to.as_bytes());
                i += from.len();
                copied = i;
            }
            None => i += 1,
        }
    }
    let mut out = out?;
    out.extend_from_slice(b.get(copied..).unwrap_or_default());
    String::from_utf8(out).ok()
}

/// Placeholder → original, for answers: what `restore: true` maps back for the client.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Restore {
    pairs: Vec<(String, String)>,
    /// The longest placeholder, in bytes: the most a stream ever holds back.
    longest: usize,
}

impl Redaction {
    /// The mapping back of the originals `keep` keeps; `None` when it keeps none.
    pub fn restore(&self, keep: impl Fn(&str) -> bool) -> Option<Restore> {
        let pairs: Vec<(String, String)> =
            self.pairs.iter().filter(|(original, _)| keep(original)).map(|(o, p)| (p.clone(), o.clone())).collect();
        let longest = pairs.iter().map(|(p, _)| p.len()).max()?;
        Some(Restore { pairs, longest })
    }
}

impl Restore {
    pub fn apply(&self, text: &str) -> Option<String> {
        replace_all(text, self.pairs.iter().map(|(p, o)| (p.as_str(), o.as_str())))
    }

    /// The values mapped back for the client.
    pub fn originals(&self) -> impl Iterator<Item = &str> {
        self.pairs.iter().map(|(_, original)| original.as_str())
    }

    /// A whole answer's JSON with the placeholders in its string values restored.
    pub fn apply_json(&self, body: &[u8]) -> Option<Vec<u8>> {
        Redaction { pairs: self.pairs.clone() }.apply_json(body)
    }

    /// How many bytes at the end of `text` may be the start of a placeholder the next chunk
    /// completes: from its last `<` when no `>` follows and some placeholder begins so. Never
    /// more than the longest placeholder less one byte.
    fn held(&self, text: &str) -> usize {
        let Some(lt) = text.rfind('<') else { return 0 };
        let tail = text.get(lt..).unwrap_or_default();
        let partial = tail.len() < self.longest && !tail.contains('>') && self.pairs.iter().any(|(p, _)| p.starts_with(tail));
        if partial { tail.len() } else { 0 }
    }
}

/// Restores placeholders in one streamed channel (the answer's text, its reasoning, one tool
/// call's arguments): what arrives is written at once but for a possible placeholder's start
/// at the chunk's end, held until the next chunk (or the channel's end) decides it.
#[derive(Debug, Default)]
pub struct StreamRestore {
    pending: String,
}

impl StreamRestore {
    /// What of `pending` + `chunk` can be written now, restored.
    pub fn push(&mut self, restore: &Restore, chunk: &str) -> String {
        self.pending.push_str(chunk);
        let keep = restore.held(&self.pending);
        let cut = self.pending.len() - keep;
        let ready: String = self.pending.drain(..cut).collect();
        restore.apply(&ready).unwrap_or(ready)
    }

    /// The channel ends: whatever is held, restored.
    pub fn flush(&mut self, restore: &Restore) -> String {
        let rest = std::mem::take(&mut self.pending);
        restore.apply(&rest).unwrap_or(rest)
    }
}
