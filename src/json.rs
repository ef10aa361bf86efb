//! Byte-level editing of a JSON object's top-level members, for passthrough requests: the body is
//! forwarded as the client wrote it except for the members Tollgate owns. Call only on bodies that
//! already parsed as a JSON object.

use std::borrow::Cow;
use std::ops::Range;

/// One `"key": value` member: byte ranges into the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The key between its quotes, still escaped.
    pub key: Range<usize>,
    pub value: Range<usize>,
}

impl Member {
    /// The key with escapes decoded (a client may spell `model` as `mod\u0065l`).
    pub fn key<'a>(&self, body: &'a [u8]) -> Cow<'a, str> {
        let raw = body.get(self.key.clone()).unwrap_or_default();
        if raw.contains(&b'\\') {
            let quoted = body.get(self.key.start.saturating_sub(1)..self.key.end + 1).unwrap_or_default();
            serde_json::from_slice::<String>(quoted).map(Cow::Owned).unwrap_or_default()
        } else {
            Cow::Borrowed(std::str::from_utf8(raw).unwrap_or_default())
        }
    }

    pub fn value<'a>(&self, body: &'a [u8]) -> &'a [u8] {
        body.get(self.value.clone()).unwrap_or_default()
    }
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// `i` is just past the opening quote; returns the index of the closing quote.
fn string_end(b: &[u8], mut i: usize) -> Option<usize> {
    loop {
        match b.get(i)? {
            b'"' => return Some(i),
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
}

fn value_end(b: &[u8], i: usize) -> Option<usize> {
    match b.get(i)? {
        b'"' => string_end(b, i + 1).map(|e| e + 1),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            loop {
                match b.get(j)? {
                    b'"' => j = string_end(b, j + 1)?,
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
        }
        _ => {
            let mut j = i;
            while !matches!(b.get(j), None | Some(b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')) {
                j += 1;
            }
            Some(j)
        }
    }
}

/// The top-level members of a JSON object, or `None` when `body` is not one.
pub fn members(body: &[u8]) -> Option<Vec<Member>> {
    let mut out = Vec::with_capacity(16);
    let mut i = skip_ws(body, 0);
    if body.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_ws(body, i + 1);
    if body.get(i) == Some(&b'}') {
        return Some(out);
    }
    loop {
        if body.get(i) != Some(&b'"') {
            return None;
        }
        let key_end = string_end(body, i + 1)?;
        let key = i + 1..key_end;
        i = skip_ws(body, key_end + 1);
        if body.get(i) != Some(&b':') {
            return None;
        }
        i = skip_ws(body, i + 1);
        let end = value_end(body, i)?;
        out.push(Member { key, value: i..end });
        i = skip_ws(body, end);
        match body.get(i)? {
            b',' => i = skip_ws(body, i + 1),
            b'}' => return Some(out),
            _ => return None,
        }
    }
}

/// Rebuilds an object: members for which `keep` is false are removed (every occurrence, so a
/// duplicated key cannot smuggle a value past the rewrite), then `append` members are added.
pub fn rewrite(body: &[u8], members: &[Member], keep: impl Fn(&str) -> bool, append: &[(&str, &[u8])]) -> Vec<u8> {
    let extra: usize = append.iter().map(|(k, v)| k.len() + v.len() + 4).sum();
    let mut out = Vec::with_capacity(body.len() + extra);
    out.push(b'{');
    for m in members {
        if keep(&m.key(body)) {
            if out.len() > 1 {
                out.push(b',');
            }
            out.extend_from_slice(body.get(m.key.start.saturating_sub(1)..m.value.end).unwrap_or_default());
        }
    }
    for (k, v) in append {
        if out.len() > 1 {
            out.push(b',');
        }
        out.push(b'"');
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(b"\":");
        out.extend_from_slice(v);
    }
    out.push(b'}');
    out
}

/// Byte offset of a serde_json error position (1-based line and column, which point at the
/// last byte of the offending token).
pub fn offset_of(body: &[u8], line: usize, column: usize) -> usize {
    let line_start = body.iter().enumerate().filter(|(_, b)| **b == b'\n').nth(line.saturating_sub(2)).map_or(0, |(i, _)| i + 1);
    let start = if line <= 1 { 0 } else { line_start };
    (start + column.saturating_sub(1)).min(body.len())
}

/// The path (`messages[2].content`) of the innermost value of `body` that contains byte
/// `offset` — used to name the field a parse error points at, only on the error path.
pub fn path_at(body: &[u8], offset: usize) -> String {
    let mut best: Vec<String> = Vec::new();
    let mut path: Vec<String> = Vec::new();
    walk(body, skip_ws(body, 0), offset, &mut path, &mut best);
    let mut out = String::new();
    for seg in best {
        if seg.starts_with('[') || out.is_empty() {
            out.push_str(&seg);
        } else {
            out.push('.');
            out.push_str(&seg);
        }
    }
    out
}

/// Walks the value at `i`; records `path` in `best` when the value holds `offset`. Returns the
/// value's end.
fn walk(b: &[u8], i: usize, offset: usize, path: &mut Vec<String>, best: &mut Vec<String>) -> Option<usize> {
    let end = value_end(b, i).unwrap_or(b.len());
    if (i..end).contains(&offset) && path.len() >= best.len() {
        best.clone_from(path);
    }
    match b.get(i)? {
        b'{' => {
            let mut j = skip_ws(b, i + 1);
            while b.get(j) == Some(&b'"') {
                let key_end = string_end(b, j + 1)?;
                let key = serde_json::from_slice::<String>(b.get(j..=key_end)?).unwrap_or_default();
                j = skip_ws(b, key_end + 1);
                j = skip_ws(b, j + 1);
                path.push(key);
                let v_end = walk(b, j, offset, path, best);
                path.pop();
                j = skip_ws(b, v_end?);
                if b.get(j) == Some(&b',') {
                    j = skip_ws(b, j + 1);
                }
            }
        }
        b'[' => {
            let mut j = skip_ws(b, i + 1);
            let mut index = 0;
            while !matches!(b.get(j), None | Some(b']')) {
                path.push(format!("[{index}]"));
                let v_end = walk(b, j, offset, path, best);
                path.pop();
                j = skip_ws(b, v_end?);
                if b.get(j) == Some(&b',') {
                    j = skip_ws(b, j + 1);
                }
                index += 1;
            }
        }
        _ => {}
    }
    Some(end)
}

/// For counters providers sometimes send as `null`.
pub fn null_as_zero<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    use serde::Deserialize;
    Ok(Option::<u64>::deserialize(d)?.unwrap_or(0))
}

/// A JSON string literal for `s`.
pub fn quote(s: &str) -> Vec<u8> {
    serde_json::to_vec(s).unwrap_or_else(|_| b"\"\"".to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(body: &str) -> Vec<(String, String)> {
        let b = body.as_bytes();
        members(b).unwrap().iter().map(|m| (m.key(b).into_owned(), String::from_utf8(m.value(b).to_vec()).unwrap())).collect()
    }

    #[test]
    fn finds_members_with_nested_values_and_tricky_strings() {
        let body = r#" { "model" : "a\"}b", "messages":[{"role":"user","content":"x]}"}], "n": 1 ,"t":true,"o":{},"e":null } "#;
        assert_eq!(
            keys(body),
            vec![
                ("model".into(), r#""a\"}b""#.into()),
                ("messages".into(), r#"[{"role":"user","content":"x]}"}]"#.into()),
                ("n".into(), "1".into()),
                ("t".into(), "true".into()),
                ("o".into(), "{}".into()),
                ("e".into(), "null".into()),
            ]
        );
    }

    #[test]
    fn empty_object_and_non_objects() {
        assert_eq!(members(b"{}").unwrap().len(), 0);
        assert!(members(b"[1]").is_none());
        assert!(members(b"{\"a\" 1}").is_none());
    }

    #[test]
    fn escaped_keys_are_decoded() {
        assert_eq!(keys(r#"{"mod\u0065l":"x"}"#)[0].0, "model");
    }

    #[test]
    fn rewrite_replaces_every_duplicate_and_appends() {
        let body = br#"{"model":"a","x":1,"mod\u0065l":"b","y":[2]}"#;
        let m = members(body).unwrap();
        let out = rewrite(body, &m, |k| k != "model", &[("model", b"\"up\"")]);
        assert_eq!(String::from_utf8(out.clone()).unwrap(), r#"{"x":1,"y":[2],"model":"up"}"#);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["model"], "up");
    }

    #[test]
    fn paths_of_offsets() {
        let body = br#"{"model":"m","messages":[{"role":"user","content":"x"},{"role":"user","content":5}],"n":{"a":[1,2]}}"#;
        // offsets of the last byte of a token, as serde_json reports them
        let at = |needle: &str| path_at(body, String::from_utf8_lossy(body).find(needle).unwrap() + needle.len() - 1);
        assert_eq!(at(":5"), "messages[1].content");
        assert_eq!(at("\"m\""), "model");
        assert_eq!(at("[1,2"), "n.a[1]");
        assert_eq!(at("\"x\"}"), "messages[0]", "a missing field points at the object's closing brace");
        assert_eq!(at("\"role\""), "messages[0]", "an unknown key points into its object");
        assert_eq!(path_at(body, 0), "");
        assert_eq!(offset_of(b"ab\ncd\nef", 3, 1), 6);
        assert_eq!(offset_of(b"abc", 1, 2), 1);
    }

    #[test]
    fn rewrite_of_everything_removed_is_valid() {
        let body = br#"{"a":1}"#;
        let m = members(body).unwrap();
        assert_eq!(rewrite(body, &m, |_| false, &[]), b"{}");
    }
}
