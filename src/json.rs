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

/// `i` is just past the opening quote; returns the index of the closing quote: the first quote
/// after an even run of backslashes. Most of a body is string content, so this is where scanning
/// spends its time; it stops at quotes only, not at every escape.
pub fn string_end(b: &[u8], i: usize) -> Option<usize> {
    let mut from = i;
    loop {
        let quote = from + memchr::memchr(b'"', b.get(from..)?)?;
        let backslashes = b.get(i..quote)?.iter().rev().take_while(|c| **c == b'\\').count();
        if backslashes % 2 == 0 {
            return Some(quote);
        }
        from = quote + 1;
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

/// The body with the value of its one member `key` replaced in place, every other byte (order,
/// whitespace) as it was; `None` when the body names `key` not exactly once (then `rewrite`).
pub fn replace_value(body: &[u8], members: &[Member], key: &str, value: &[u8]) -> Option<Vec<u8>> {
    let mut named = members.iter().filter(|m| m.key(body) == key);
    let (Some(m), None) = (named.next(), named.next()) else { return None };
    let mut out = Vec::with_capacity(body.len() + value.len());
    out.extend_from_slice(body.get(..m.value.start)?);
    out.extend_from_slice(value);
    out.extend_from_slice(body.get(m.value.end..)?);
    Some(out)
}

/// Byte offset of a serde_json error position (1-based line and column, which point at the
/// last byte of the offending token).
pub fn offset_of(body: &[u8], line: usize, column: usize) -> usize {
    let line_start = body.iter().enumerate().filter(|(_, b)| **b == b'\n').nth(line.saturating_sub(2)).map_or(0, |(i, _)| i + 1);
    let start = if line <= 1 { 0 } else { line_start };
    (start + column.saturating_sub(1)).min(body.len())
}

/// How deeply Tollgate lets JSON nest (arrays and objects together) in client requests, provider
/// answers, stream events and its own configuration. Deeper JSON is refused by [`check_depth`]
/// before any parser walks it: serde's derived parsers recurse once per level, and the wasm VM's
/// stack is small (a stack overflow kills the VM and every request in flight on it). Real tool
/// schemas and structured outputs nest a few dozen levels at most.
pub const MAX_DEPTH: usize = 64;

/// How many leading path segments [`TooDeep`] names: enough to point at the field
/// (`tools[0].function.parameters`) without spelling out the whole descent.
const NAMED_LEVELS: usize = 4;

/// JSON that nests deeper than [`MAX_DEPTH`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooDeep {
    /// The field holding the deep value (`messages[0].content`), from its first levels; empty
    /// when the body itself is the deep value.
    pub path: String,
}

/// One open array or object while [`check_depth`] scans; kept only for the first levels.
struct Level {
    array: bool,
    index: usize,
    /// The key of the member being read, when the level is an object.
    key: Range<usize>,
}

/// Refuses JSON nested deeper than [`MAX_DEPTH`], in one pass without recursion, whatever the
/// bytes are (brackets inside strings do not count; nothing else is validated, that is the
/// parser's job).
pub fn check_depth(b: &[u8]) -> Result<(), TooDeep> {
    // Every level opens with a bracket byte: a body that holds no more of them than the limit,
    // as most do, cannot nest too deep, and a vectorised count of them is all it costs.
    if memchr::memchr2_iter(b'[', b'{', b).nth(MAX_DEPTH).is_none() {
        return Ok(());
    }
    let mut depth = 0usize;
    let mut levels: Vec<Level> = Vec::new();
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        match c {
            b'"' => {
                let Some(end) = string_end(b, i + 1) else { return Ok(()) };
                if b.get(skip_ws(b, end + 1)) == Some(&b':')
                    && let Some(level) = levels.get_mut(depth.wrapping_sub(1)).filter(|l| !l.array)
                {
                    level.key = i + 1..end;
                }
                i = end;
            }
            b'[' | b'{' => {
                if depth == MAX_DEPTH {
                    return Err(TooDeep { path: named_path(b, &levels) });
                }
                depth += 1;
                if levels.len() < NAMED_LEVELS {
                    levels.push(Level { array: c == b'[', index: 0, key: 0..0 });
                }
            }
            b']' | b'}' => {
                if depth <= levels.len() {
                    levels.pop();
                }
                depth = depth.saturating_sub(1);
            }
            b',' => {
                if let Some(level) = levels.get_mut(depth.wrapping_sub(1)) {
                    level.index += 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// The path of the open levels, without trailing array indices: `messages[0].content[0][0]`
/// names the field `messages[0].content`.
fn named_path(b: &[u8], levels: &[Level]) -> String {
    let named = levels.iter().rposition(|l| !l.array).map_or(0, |last_object| last_object + 1);
    let mut out = String::new();
    for level in levels.iter().take(named) {
        if level.array {
            out.push_str(&format!("[{}]", level.index));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            let key = Member { key: level.key.clone(), value: 0..0 };
            out.push_str(&key.key(b));
        }
    }
    out
}

/// The path (`messages[2].content`) of the innermost value of `body` that contains byte
/// `offset` — used to name the field a parse error points at, only on the error path. Descends
/// without recursion, at most [`MAX_DEPTH`] levels.
pub fn path_at(body: &[u8], offset: usize) -> String {
    let mut out = String::new();
    let mut i = skip_ws(body, 0);
    for _ in 0..=MAX_DEPTH {
        let Some(next) = child_holding(body, i, offset, &mut out) else { break };
        i = next;
    }
    out
}

/// When the value at `i` holds `offset` and one of its members or elements does too, appends
/// that child's segment to `path` and returns where the child starts.
fn child_holding(b: &[u8], i: usize, offset: usize, path: &mut String) -> Option<usize> {
    let end = value_end(b, i).unwrap_or(b.len());
    if !(i..end).contains(&offset) {
        return None;
    }
    let holds = |start: usize| {
        let child_end = value_end(b, start).unwrap_or(b.len());
        ((start..child_end).contains(&offset), child_end)
    };
    let mut j = skip_ws(b, i + 1);
    match b.get(i)? {
        b'{' => {
            while b.get(j) == Some(&b'"') {
                let key_end = string_end(b, j + 1)?;
                let key = Member { key: j + 1..key_end, value: 0..0 };
                let start = skip_ws(b, skip_ws(b, key_end + 1) + 1);
                let (inside, child_end) = holds(start);
                if inside {
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(&key.key(b));
                    return Some(start);
                }
                j = next_member(b, child_end);
            }
            None
        }
        b'[' => {
            let mut index = 0;
            while !matches!(b.get(j), None | Some(b']')) {
                let (inside, child_end) = holds(j);
                if inside {
                    path.push_str(&format!("[{index}]"));
                    return Some(j);
                }
                let next = next_member(b, child_end);
                if next <= j {
                    // A stray `}` or `:`: malformed, and no element further on can be named.
                    return None;
                }
                j = next;
                index += 1;
            }
            None
        }
        _ => None,
    }
}

/// Past the comma (and whitespace) after a member ending at `end`.
fn next_member(b: &[u8], end: usize) -> usize {
    let j = skip_ws(b, end);
    if b.get(j) == Some(&b',') { skip_ws(b, j + 1) } else { j }
}

/// Deserializes a JSON body, checking its UTF-8 once for the whole body rather than string by
/// string as serde_json's byte-slice reader does. A body that is not UTF-8 is read as bytes
/// again, only for serde_json to describe the error as before.
pub fn from_body<'a, T: serde::Deserialize<'a>>(body: &'a [u8]) -> serde_json::Result<T> {
    match std::str::from_utf8(body) {
        Ok(text) => serde_json::from_str(text),
        Err(_) => serde_json::from_slice(body),
    }
}

/// `value` as JSON, written into a buffer sized up front for `expected` bytes (a provider's
/// request is about as large as the client's), so that it does not grow by doubling.
pub fn to_vec_sized<T: serde::Serialize>(value: &T, expected: usize) -> serde_json::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(expected);
    serde_json::to_writer(&mut out, value)?;
    Ok(out)
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

/// A JSON string, borrowed from the body when it contains no escapes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Str<'a>(pub Cow<'a, str>);

impl std::ops::Deref for Str<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'a> From<&'a str> for Str<'a> {
    fn from(s: &'a str) -> Self {
        Str(Cow::Borrowed(s))
    }
}

struct StrVisitor;

impl<'de> serde::de::Visitor<'de> for StrVisitor {
    type Value = Str<'de>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a string")
    }
    fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Str(Cow::Borrowed(v)))
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Str(Cow::Owned(v)))
    }
}

impl<'de: 'a, 'a> serde::Deserialize<'de> for Str<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(StrVisitor)
    }
}

/// The text of a JSON string that keeps the client's quoted bytes: text passed on unchanged is
/// written out as it came (serde_json copies a `RawValue` verbatim) instead of being decoded and
/// escaped again byte by byte. Text with escapes is decoded only when Tollgate reads it (guardrails,
/// routing rules, estimates), once. Text Tollgate makes has no quoted form and is escaped when written.
#[derive(Debug, Clone, Default)]
pub struct Text<'a> {
    quoted: Option<&'a serde_json::value::RawValue>,
    /// The text when made or quoted without escapes; `None`: decoded from `quoted` when read.
    text: Option<Cow<'a, str>>,
    decoded: std::cell::OnceCell<String>,
}

impl<'a> Text<'a> {
    /// The text of `quoted`, a JSON string literal: borrowed when it has no escapes (then its
    /// bytes are the text), decoded when read otherwise. Escapes that name no character (a lone
    /// surrogate) are refused now, as decoding would; serde_json checked the rest of the syntax.
    /// `None` when `quoted` is no string.
    pub fn of_quoted(quoted: &'a serde_json::value::RawValue) -> Option<Result<Self, serde_json::Error>> {
        let json = quoted.get();
        let inner = json.strip_prefix('"')?.strip_suffix('"')?;
        let mut text = None;
        if memchr::memchr(b'\\', inner.as_bytes()).is_none() {
            text = Some(Cow::Borrowed(inner));
        } else if !surrogates_pair(inner.as_bytes()) {
            return Some(Err(serde_json::from_str::<String>(json).err().unwrap_or_else(|| serde::de::Error::custom("lone surrogate"))));
        }
        Some(Ok(Text { quoted: Some(quoted), text, decoded: std::cell::OnceCell::new() }))
    }

    /// Whether the text is empty, without decoding it: every escape stands for a character, so
    /// only `""` quotes the empty text.
    pub fn is_empty(&self) -> bool {
        match (&self.text, self.quoted) {
            (Some(text), _) => text.is_empty(),
            (None, quoted) => quoted.is_none_or(|q| q.get().len() == 2),
        }
    }

    fn made(text: Cow<'a, str>) -> Self {
        Text { quoted: None, text: Some(text), decoded: std::cell::OnceCell::new() }
    }
}

/// Whether every `\u` escape of a JSON string's escaped content names a character: a UTF-16
/// surrogate only as a leading one followed by a trailing one, as serde_json requires of a `str`.
fn surrogates_pair(inner: &[u8]) -> bool {
    let unit = |at: usize| {
        let hex = inner.get(at..at + 4).and_then(|h| std::str::from_utf8(h).ok())?;
        u16::from_str_radix(hex, 16).ok()
    };
    let mut i = 0;
    while let Some(found) = inner.get(i..).and_then(|rest| memchr::memchr(b'\\', rest)) {
        let escape = i + found;
        i = escape + 2;
        if inner.get(escape + 1) != Some(&b'u') {
            continue;
        }
        i = escape + 6;
        match unit(escape + 2) {
            Some(0xDC00..=0xDFFF) | None => return false,
            Some(0xD800..=0xDBFF) => {
                if inner.get(escape + 6..escape + 8) != Some(b"\\u".as_slice()) || !matches!(unit(escape + 8), Some(0xDC00..=0xDFFF)) {
                    return false;
                }
                i = escape + 12;
            }
            Some(_) => {}
        }
    }
    true
}

impl std::ops::Deref for Text<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        if let Some(text) = &self.text {
            return text;
        }
        self.decoded.get_or_init(|| serde_json::from_str(self.quoted.map_or("\"\"", |q| q.get())).unwrap_or_default())
    }
}

impl PartialEq for Text<'_> {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl<'a> From<Str<'a>> for Text<'a> {
    fn from(s: Str<'a>) -> Self {
        Text::made(s.0)
    }
}

impl<'a> From<&'a str> for Text<'a> {
    fn from(s: &'a str) -> Self {
        Text::made(Cow::Borrowed(s))
    }
}

impl<'de: 'a, 'a> serde::Deserialize<'de> for Text<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let quoted: &'de serde_json::value::RawValue = serde::Deserialize::deserialize(d)?;
        match Text::of_quoted(quoted) {
            Some(text) => text.map_err(D::Error::custom),
            None => Err(D::Error::invalid_type(unexpected(quoted), &"a string")),
        }
    }
}

impl serde::Serialize for Text<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.quoted {
            Some(quoted) => quoted.serialize(s),
            None => s.serialize_str(self),
        }
    }
}

/// What kind of JSON value `raw` is, for a type error about it.
pub fn unexpected(raw: &serde_json::value::RawValue) -> serde::de::Unexpected<'static> {
    use serde::de::Unexpected;
    match raw.get().as_bytes().first() {
        Some(b'{') => Unexpected::Map,
        Some(b'[') => Unexpected::Seq,
        Some(b'"') => Unexpected::Other("string"),
        Some(b't') => Unexpected::Bool(true),
        Some(b'f') => Unexpected::Bool(false),
        Some(b'n') => Unexpected::Unit,
        _ => Unexpected::Other("number"),
    }
}

/// A serde error message without its " at line L column C" suffix.
pub fn strip_position(message: &str) -> String {
    match message.find(" at line ") {
        Some(i) => message.get(..i).unwrap_or(message).to_owned(),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(body: &str) -> Vec<(String, String)> {
        let b = body.as_bytes();
        members(b).unwrap().iter().map(|m| (m.key(b).into_owned(), String::from_utf8(m.value(b).to_vec()).unwrap())).collect()
    }

    #[test]
    fn a_value_is_replaced_in_place_or_not_at_all() {
        let body = br#"{ "messages" : [1],"model":"a" , "stream":true}"#;
        let m = members(body).unwrap();
        assert_eq!(replace_value(body, &m, "model", b"\"bb\"").unwrap(), br#"{ "messages" : [1],"model":"bb" , "stream":true}"#);
        assert_eq!(replace_value(body, &m, "absent", b"1"), None);
        let twice = br#"{"model":"a","model":"b"}"#;
        assert_eq!(replace_value(twice, &members(twice).unwrap(), "model", b"1"), None, "a duplicate is for rewrite to remove");
        let escaped = br#"{"mod\u0065l":"a"}"#;
        assert_eq!(replace_value(escaped, &members(escaped).unwrap(), "model", b"\"b\"").unwrap(), br#"{"mod\u0065l":"b"}"#);
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
    fn strings_end_at_the_first_quote_after_an_even_run_of_backslashes() {
        let body = br#"{"a":"x\\","b":"y\\\"]}","c":"\\\\"}"#;
        assert_eq!(
            keys(std::str::from_utf8(body).unwrap()),
            vec![("a".into(), r#""x\\""#.into()), ("b".into(), r#""y\\\"]}""#.into()), ("c".into(), r#""\\\\""#.into())]
        );
        assert_eq!(string_end(br#"\"#, 0), None, "no closing quote");
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

    fn nested(depth: usize, open: &str, close: &str) -> String {
        format!("{}1{}", open.repeat(depth), close.repeat(depth))
    }

    #[test]
    fn depth_up_to_the_limit_passes_and_one_more_is_refused() {
        for (open, close) in [("[", "]"), (r#"{"a":"#, "}")] {
            assert_eq!(check_depth(nested(MAX_DEPTH, open, close).as_bytes()), Ok(()));
            assert!(check_depth(nested(MAX_DEPTH + 1, open, close).as_bytes()).is_err());
            assert!(check_depth(nested(100_000, open, close).as_bytes()).is_err());
        }
        // Siblings do not add up; only nesting counts.
        let wide = format!("[{}]", vec![nested(MAX_DEPTH - 1, "[", "]"); 50].join(","));
        assert_eq!(check_depth(wide.as_bytes()), Ok(()));
    }

    #[test]
    fn brackets_in_strings_and_stray_closers_do_not_count() {
        let in_string = format!(r#"{{"a":"{}\"{}"}}"#, "[".repeat(500), "{".repeat(500));
        assert_eq!(check_depth(in_string.as_bytes()), Ok(()));
        // Closers cannot bank depth for later: the count never goes below zero.
        let stray = format!("{}{}", "]".repeat(500), "[".repeat(MAX_DEPTH));
        assert_eq!(check_depth(stray.as_bytes()), Ok(()));
        assert_eq!(check_depth(br#"{"a":"unterminated [[[["#), Ok(()), "not JSON: left to the parser");
    }

    #[test]
    fn too_deep_names_the_field_holding_the_deep_value() {
        let deep = nested(100_000, "[", "]");
        let deep_object = nested(100_000, r#"{"k":"#, "}");
        let path = |body: String| check_depth(body.as_bytes()).unwrap_err().path;
        assert_eq!(path(format!(r#"{{"model":"m","messages":[{{"role":"user","content":{deep}}}]}}"#)), "messages[0].content");
        assert_eq!(path(format!(r#"{{"a":1,"b":[1,2,{deep}]}}"#)), "b");
        let second = format!(r#"{{"messages":[{{"role":"user","content":"x"}},{{"role":"user","content":{deep}}}]}}"#);
        assert_eq!(path(second), "messages[1].content", "elements are counted");
        assert_eq!(path(format!(r#"{{"tools":[{{"function":{{"parameters":{deep_object}}}}}]}}"#)), "tools[0].function.parameters");
        assert_eq!(path(format!(r#"{{"x":1,"st\u006fp":{deep}}}"#)), "stop", "escaped keys are decoded");
        assert_eq!(path(format!(r#"{{"a":"x\":[","b":{deep}}}"#)), "b", "a string value is no key");
        assert_eq!(path(deep), "", "the body itself");
    }

    #[test]
    fn paths_of_deep_and_malformed_bodies_end() {
        let deep = nested(100_000, "[", "]");
        let path = path_at(deep.as_bytes(), 50_000);
        assert_eq!(path, "[0]".repeat(MAX_DEPTH + 1), "descends at most MAX_DEPTH levels");
        // A stray closer inside an array used to keep the walk in place forever.
        assert_eq!(path_at(br#"{"a":[}"#, 6), "a");
        assert_eq!(path_at(br#"{"a":[1,}:]"#, 8), "a");
        assert_eq!(path_at(br#"[[1,2"#, 4), "[0][1]", "truncated values extend to the end");
    }

    #[test]
    fn texts_keep_their_quoted_form_and_decode_once() {
        let text = |json: &'static str| serde_json::from_str::<Text>(json).unwrap();
        let plain = text(r#""abc""#);
        assert_eq!(&*plain, "abc");
        assert!(matches!(plain.text, Some(Cow::Borrowed(_))), "no escapes: the bytes are the text");
        let escaped = text(r#""a\"\\\n\u00e9\ud83d\ude00""#);
        assert_eq!(&*escaped, "a\"\\\né😀");
        assert_eq!(serde_json::to_string(&escaped).unwrap(), r#""a\"\\\n\u00e9\ud83d\ude00""#, "written as it came");
        assert_eq!(&*text(r#""""#), "");
        let made = Text::from("a\"b\n");
        assert_eq!(serde_json::to_string(&made).unwrap(), r#""a\"b\n""#, "Tollgate's own text is escaped");
        assert_eq!(made, Text::from(Str::from("a\"b\n")));
        for (json, kind) in [("5", "number"), ("[1]", "sequence"), ("{}", "map"), ("true", "boolean"), ("null", "null")] {
            let e = serde_json::from_str::<Text>(json).unwrap_err().to_string();
            assert!(e.starts_with("invalid type:") && e.contains(kind) && e.contains("expected a string"), "{json}: {e}");
        }
        assert!(serde_json::from_str::<Text>(r#""\x""#).is_err(), "a bad escape is refused");
        for lone in [r#""\ud83d""#, r#""\ude00""#, r#""a\ud83dx""#, r#""\ud83d\n""#, r#""\ud83d\u0041""#, r#""\ud83d\ud83d""#] {
            let e = serde_json::from_str::<Text>(lone).unwrap_err().to_string();
            assert_eq!(e, serde_json::from_str::<String>(lone).unwrap_err().to_string(), "{lone}: refused as a decoded string is");
        }
        let lazy = text(r#""\u00e9\\u00e9 \ud83d\ude00""#);
        assert!(!lazy.is_empty() && !text(r#""\u0000""#).is_empty() && text(r#""""#).is_empty() && Text::from("").is_empty());
        assert_eq!(lazy.decoded.get(), None, "decoded only when read");
        assert_eq!(&*lazy, "é\\u00e9 😀");
        assert_eq!(lazy, Text::from("é\\u00e9 😀"));
    }

    #[test]
    fn rewrite_of_everything_removed_is_valid() {
        let body = br#"{"a":1}"#;
        let m = members(body).unwrap();
        assert_eq!(rewrite(body, &m, |_| false, &[]), b"{}");
    }
}
