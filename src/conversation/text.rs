//! Answer text on its way from a provider's JSON to the client's. A JSON string is kept as the
//! provider escaped it and written to the client as those bytes: JSON escapes mean the same in
//! every API, so decoding and escaping again would only spend time. Text is decoded only where
//! Tollgate reads it (the guardrails).

use serde::de::{Deserialize, Deserializer, Error, Unexpected};
use serde::{Serialize, Serializer};
use serde_json::value::RawValue;
use std::borrow::Cow;

/// A JSON string exactly as it was written, quotes and escapes included. Deserializing one
/// checks it as decoding would: a string, and no lone surrogate in its `\u` escapes.
#[derive(Debug, Clone, Copy)]
pub struct JsonStr<'a> {
    raw: &'a RawValue,
}

impl<'a> JsonStr<'a> {
    /// The string with its quotes, escapes as written.
    fn quoted(&self) -> &'a str {
        self.raw.get()
    }

    /// The string's bytes between its quotes, escapes as written.
    pub fn escaped(&self) -> &'a str {
        let quoted = self.quoted();
        quoted.get(1..quoted.len().saturating_sub(1)).unwrap_or_default()
    }

    pub fn is_empty(&self) -> bool {
        self.escaped().is_empty()
    }

    /// The text the string holds: borrowed when it has no escapes.
    pub fn decode(&self) -> Cow<'a, str> {
        let escaped = self.escaped();
        if !escaped.contains('\\') {
            return Cow::Borrowed(escaped);
        }
        // It parsed as a string when deserialized, so it decodes.
        serde_json::from_str::<String>(self.quoted()).map(Cow::Owned).unwrap_or_default()
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for JsonStr<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = <&'de RawValue>::deserialize(d)?;
        if !raw.get().starts_with('"') {
            return Err(D::Error::invalid_type(Unexpected::Other(raw.get()), &"a string"));
        }
        let s = JsonStr { raw };
        if !surrogates_pair(s.escaped()) {
            // serde_json's own words for the string it would not decode.
            return Err(D::Error::custom("lone leading surrogate in hex escape"));
        }
        Ok(s)
    }
}

/// Every `\u` escape of a UTF-16 surrogate is half of a pair, as decoding requires (serde_json
/// checks the escapes' syntax when it skips a string, but pairs only when it decodes one).
fn surrogates_pair(escaped: &str) -> bool {
    let b = escaped.as_bytes();
    let hex_at = |i: usize| b.get(i..i + 4).and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u16::from_str_radix(h, 16).ok());
    let mut i = 0;
    while let Some(at) = b.get(i..).and_then(|rest| memchr::memchr(b'\\', rest)) {
        let escape = i + at;
        if b.get(escape + 1) != Some(&b'u') {
            i = escape + 2;
            continue;
        }
        let unit = hex_at(escape + 2).unwrap_or(0);
        i = escape + 6;
        match unit {
            0xDC00..=0xDFFF => return false,
            0xD800..=0xDBFF => {
                let low = (b.get(i..i + 2) == Some(b"\\u")).then(|| hex_at(i + 2)).flatten();
                if !low.is_some_and(|l| (0xDC00..=0xDFFF).contains(&l)) {
                    return false;
                }
                i += 6;
            }
            _ => {}
        }
    }
    true
}

/// A piece of the answer's text, decoded or as a provider's JSON string.
#[derive(Debug, Clone, Copy)]
pub enum Text<'a> {
    Plain(&'a str),
    Json(JsonStr<'a>),
}

impl<'a> Text<'a> {
    pub fn is_empty(&self) -> bool {
        match self {
            Text::Plain(s) => s.is_empty(),
            Text::Json(j) => j.is_empty(),
        }
    }

    pub fn decode(&self) -> Cow<'a, str> {
        match self {
            Text::Plain(s) => Cow::Borrowed(s),
            Text::Json(j) => j.decode(),
        }
    }

    /// Writes the text as a JSON string: a provider's as it came, decoded text escaped.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        match self {
            Text::Json(j) => out.extend_from_slice(j.quoted().as_bytes()),
            // Serialising a str into a Vec cannot fail.
            Text::Plain(s) => drop(serde_json::to_writer(&mut *out, s)),
        }
    }
}

/// Written by serde_json as [`Text::write_json`] writes it (a provider's string is a raw value).
impl Serialize for Text<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Text::Plain(text) => s.serialize_str(text),
            Text::Json(j) => j.raw.serialize(s),
        }
    }
}

/// The answer's text, gathered from its blocks: while it is one provider string (the usual
/// answer) it stays that string, escaped as written; joined pieces are decoded.
#[derive(Debug, Default)]
pub struct AnswerText<'a> {
    /// The text while it is one provider string (`plain` is then empty).
    json: Option<JsonStr<'a>>,
    plain: String,
}

impl<'a> AnswerText<'a> {
    pub fn push_str(&mut self, text: &str) {
        if !text.is_empty() {
            self.plain().push_str(text);
        }
    }

    /// Appends a provider's string.
    pub fn push_json(&mut self, text: JsonStr<'a>) {
        if text.is_empty() {
            return;
        }
        if self.is_empty() {
            self.json = Some(text);
        } else {
            self.plain().push_str(&text.decode());
        }
    }

    /// The text decoded, for appending to.
    fn plain(&mut self) -> &mut String {
        if let Some(j) = self.json.take() {
            self.plain = j.decode().into_owned();
        }
        &mut self.plain
    }

    pub fn is_empty(&self) -> bool {
        self.json.is_none() && self.plain.is_empty()
    }

    /// About the bytes the text takes in JSON (more where decoded text gets escapes).
    pub fn len(&self) -> usize {
        self.json.map_or(self.plain.len(), |j| j.quoted().len())
    }

    pub fn as_text(&self) -> Text<'_> {
        match self.json {
            Some(j) => Text::Json(j),
            None => Text::Plain(&self.plain),
        }
    }

    pub fn decode(&self) -> Cow<'_, str> {
        self.as_text().decode()
    }
}

impl From<&str> for AnswerText<'_> {
    fn from(s: &str) -> Self {
        AnswerText { json: None, plain: s.to_owned() }
    }
}

impl From<String> for AnswerText<'_> {
    fn from(plain: String) -> Self {
        AnswerText { json: None, plain }
    }
}

impl<'a> From<&'a str> for Text<'a> {
    fn from(s: &'a str) -> Self {
        Text::Plain(s)
    }
}

impl<'a> From<JsonStr<'a>> for Text<'a> {
    fn from(j: JsonStr<'a>) -> Self {
        Text::Json(j)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<JsonStr<'_>, serde_json::Error> {
        serde_json::from_str(json)
    }

    /// The text as written to a client, read back.
    fn round_trip(text: Text) -> String {
        let mut out = Vec::new();
        text.write_json(&mut out);
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn a_string_is_kept_as_written_and_decodes_as_serde_does() {
        let cases = [
            r#""""#,
            r#""plain text, no escapes""#,
            r#""quotes \" and \\ backslashes \/ slash""#,
            r#""lines\nand\ttabs\r\b\f""#,
            r#""\u00e9t\u00E9 and h\u00e9llo""#,
            r#""\ud83d\ude00 a pair, and \u2028""#,
            "\"h\u{e9}llo \u{1F600} raw UTF-8\"",
            r#""\\u0041 is an escaped backslash, then u0041""#,
            r#""ends in an escaped backslash \\""#,
        ];
        for json in cases {
            let s = parse(json).unwrap_or_else(|e| panic!("{json}: {e}"));
            let expected: String = serde_json::from_str(json).unwrap();
            assert_eq!(s.decode(), expected, "{json}");
            assert_eq!(s.escaped(), &json[1..json.len() - 1]);
            assert_eq!(round_trip(Text::Json(s)), expected, "{json}");
            assert_eq!(round_trip(Text::Plain(&expected)), expected, "{json}");
            assert_eq!(s.is_empty(), expected.is_empty());
        }
        assert!(matches!(s_decode(r#""no escapes""#), Cow::Borrowed("no escapes")));
    }

    fn s_decode(json: &str) -> Cow<'_, str> {
        parse(json).unwrap().decode()
    }

    #[test]
    fn what_would_not_decode_does_not_parse() {
        for json in [
            r#""\ud83d""#,
            r#""\ude00""#,
            r#""\ud83d\u0041""#,
            r#""\ud83dx\ude00""#,
            r#""\ud83d\""#,
            r#""\x""#,
            "\"a\nraw line end\"",
            r#""unterminated"#,
            "42",
            "null",
            r#"{"text":"an object"}"#,
            r#"["an array"]"#,
        ] {
            assert!(parse(json).is_err(), "{json}");
            assert!(serde_json::from_str::<String>(json).is_err(), "serde refuses {json} too");
        }
    }

    #[test]
    fn a_field_of_a_borrowed_struct() {
        #[derive(serde::Deserialize)]
        struct Delta<'a> {
            #[serde(borrow, default)]
            text: Option<JsonStr<'a>>,
        }
        let d: Delta = serde_json::from_slice(br#"{"text":"a \"quoted\" word"}"#).unwrap();
        assert_eq!(d.text.unwrap().escaped(), r#"a \"quoted\" word"#);
        let d: Delta = serde_json::from_slice(br#"{"text":null}"#).unwrap();
        assert!(d.text.is_none());
        assert!(serde_json::from_slice::<Delta>(br#"{"text":7}"#).is_err());
    }
}
