//! Incremental AWS event-stream framing (`application/vnd.amazon.eventstream`), the binary
//! format of Bedrock's streaming APIs. Format references:
//! https://docs.aws.amazon.com/AmazonS3/latest/API/RESTSelectObjectAppendix.html,
//! https://docs.aws.amazon.com/transcribe/latest/dg/event-stream.html and
//! https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_ConverseStream.html.
//!
//! A message is a 12-byte prelude (total length, headers length, CRC32 of those 8 bytes), the
//! headers, the payload and a CRC32 of everything before it, integers big-endian. Bytes arrive in
//! arbitrary chunks: the framer yields each message once it is complete and its checksums hold,
//! and keeps only the unfinished one, whose declared length is checked against the limit before
//! any of it is buffered. A bad checksum or impossible length means the rest of the stream cannot
//! be trusted, so it is an error, never an event.

use super::StreamError;
use super::sse::Event;
use std::borrow::Cow;

const PRELUDE_LEN: usize = 12;
const CRC_LEN: usize = 4;
/// Prelude and message CRC: the size of a message with no headers and no payload.
const MIN_MESSAGE_LEN: usize = PRELUDE_LEN + CRC_LEN;

#[derive(Debug)]
pub struct Framer {
    pending: Vec<u8>,
    max_message_bytes: usize,
}

impl Framer {
    pub fn new(max_message_bytes: usize) -> Self {
        Framer { pending: Vec::new(), max_message_bytes }
    }

    /// Bytes held back waiting for the rest of a message.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Feeds a chunk, calling `on_event` for every message it completes, in order. After an
    /// error the framer holds nothing and the stream must be abandoned.
    pub fn feed<F: FnMut(Event<'_>)>(&mut self, chunk: &[u8], mut on_event: F) -> Result<(), StreamError> {
        let fed = self.feed_inner(chunk, &mut on_event);
        if fed.is_err() {
            self.pending = Vec::new();
        }
        fed
    }

    /// The upstream ended: an unfinished message is dropped (the translator reports the cut).
    pub fn finish<F: FnMut(Event<'_>)>(&mut self, _on_event: F) {
        self.pending = Vec::new();
    }

    fn feed_inner<F: FnMut(Event<'_>)>(&mut self, chunk: &[u8], on_event: &mut F) -> Result<(), StreamError> {
        let mut rest = chunk;
        if !self.pending.is_empty() {
            // Complete the held-back message from the front of the chunk, and no more, so the
            // rest of the chunk is parsed in place.
            if self.pending.len() < PRELUDE_LEN {
                rest = self.top_up(rest, PRELUDE_LEN);
                if self.pending.len() < PRELUDE_LEN {
                    return Ok(());
                }
            }
            let total = prelude(&self.pending, self.max_message_bytes)?;
            rest = self.top_up(rest, total);
            if self.pending.len() < total {
                return Ok(());
            }
            let message = std::mem::take(&mut self.pending);
            on_event(parse_message(&message)?);
        }
        while rest.len() >= PRELUDE_LEN {
            let total = prelude(rest, self.max_message_bytes)?;
            let Some(message) = rest.get(..total) else { break };
            on_event(parse_message(message)?);
            rest = rest.get(total..).unwrap_or_default();
        }
        // Shorter than its validated declared length, or than a prelude: bounded by the limit.
        self.pending.extend_from_slice(rest);
        Ok(())
    }

    /// Moves bytes from the front of `rest` into `pending` until it holds `want`; returns the rest.
    fn top_up<'c>(&mut self, rest: &'c [u8], want: usize) -> &'c [u8] {
        let take = want.saturating_sub(self.pending.len()).min(rest.len());
        let (head, tail) = rest.split_at(take);
        self.pending.extend_from_slice(head);
        tail
    }
}

fn be_u32(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    if let Some(b) = bytes.get(at..at + 4) {
        word.copy_from_slice(b);
    }
    u32::from_be_bytes(word)
}

fn usize_of(n: u32) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// Validates the prelude at the start of `buf` (at least 12 bytes); returns the message length.
fn prelude(buf: &[u8], max_message_bytes: usize) -> Result<usize, StreamError> {
    let lengths = buf.get(..8).unwrap_or_default();
    if crc32fast::hash(lengths) != be_u32(buf, 8) {
        return Err(StreamError::Corrupt("event-stream prelude checksum mismatch"));
    }
    let total = usize_of(be_u32(buf, 0));
    let headers = usize_of(be_u32(buf, 4));
    if total < MIN_MESSAGE_LEN || headers > total - MIN_MESSAGE_LEN {
        return Err(StreamError::Corrupt("event-stream message lengths are inconsistent"));
    }
    if total > max_message_bytes {
        return Err(StreamError::Overflow { limit: max_message_bytes });
    }
    Ok(total)
}

/// The event of one complete message whose prelude was validated.
fn parse_message(message: &[u8]) -> Result<Event<'_>, StreamError> {
    let crc_at = message.len().saturating_sub(CRC_LEN);
    let checked = message.get(..crc_at).unwrap_or_default();
    if crc32fast::hash(checked) != be_u32(message, crc_at) {
        return Err(StreamError::Corrupt("event-stream message checksum mismatch"));
    }
    let headers_end = PRELUDE_LEN + usize_of(be_u32(message, 4));
    let headers = message.get(PRELUDE_LEN..headers_end).unwrap_or_default();
    let payload = message.get(headers_end..crc_at).unwrap_or_default();
    let h = Headers::parse(headers)?;
    // Events and exceptions are members of the same union of the operation's output (e.g.
    // `contentBlockDelta`, `throttlingException`), so their type names never collide.
    let (name, data) = match h.message_type {
        Some(b"event") => (h.event_type, payload),
        Some(b"exception") => (h.exception_type, payload),
        Some(b"error") => (h.error_code, h.error_message.unwrap_or(payload)),
        _ => return Err(StreamError::Corrupt("event-stream message without a known :message-type")),
    };
    let name = name.ok_or(StreamError::Corrupt("event-stream message without its type header"))?;
    Ok(Event { name, data: Cow::Borrowed(data), raw: message, has_data: true, complete: true })
}

/// The string headers the framing defines; every other header is skipped by its type's size.
#[derive(Default)]
struct Headers<'a> {
    message_type: Option<&'a [u8]>,
    event_type: Option<&'a [u8]>,
    exception_type: Option<&'a [u8]>,
    error_code: Option<&'a [u8]>,
    error_message: Option<&'a [u8]>,
}

fn take<'a>(buf: &mut &'a [u8], n: usize) -> Result<&'a [u8], StreamError> {
    let Some(head) = buf.get(..n) else {
        return Err(StreamError::Corrupt("event-stream header runs past the headers section"));
    };
    *buf = buf.get(n..).unwrap_or_default();
    Ok(head)
}

impl<'a> Headers<'a> {
    fn parse(mut buf: &'a [u8]) -> Result<Self, StreamError> {
        let mut h = Headers::default();
        while !buf.is_empty() {
            let name_len = take(&mut buf, 1)?.first().copied().map_or(0, usize::from);
            if name_len == 0 {
                return Err(StreamError::Corrupt("event-stream header with an empty name"));
            }
            let name = take(&mut buf, name_len)?;
            let kind = take(&mut buf, 1)?.first().copied().unwrap_or(u8::MAX);
            let value_len = match kind {
                0 | 1 => 0, // boolean true / false: the type is the value
                2 => 1,     // byte
                3 => 2,     // short
                4 => 4,     // integer
                5 | 8 => 8, // long, timestamp
                9 => 16,    // uuid
                6 | 7 => {
                    // byte array, string: 2-byte length prefix
                    let len = take(&mut buf, 2)?;
                    usize::from(u16::from_be_bytes([len.first().copied().unwrap_or(0), len.get(1).copied().unwrap_or(0)]))
                }
                _ => return Err(StreamError::Corrupt("event-stream header of an unknown type")),
            };
            let value = take(&mut buf, value_len)?;
            if kind != 7 {
                continue;
            }
            let slot = match name {
                b":message-type" => &mut h.message_type,
                b":event-type" => &mut h.event_type,
                b":exception-type" => &mut h.exception_type,
                b":error-code" => &mut h.error_code,
                b":error-message" => &mut h.error_message,
                _ => continue,
            };
            *slot = Some(value);
        }
        Ok(h)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Encodes one message with string headers, as AWS services do.
    pub(crate) fn frame(headers: &[(&str, &str)], payload: &[u8]) -> Vec<u8> {
        let mut h = Vec::new();
        for (name, value) in headers {
            h.push(u8::try_from(name.len()).unwrap());
            h.extend_from_slice(name.as_bytes());
            h.push(7);
            h.extend_from_slice(&u16::try_from(value.len()).unwrap().to_be_bytes());
            h.extend_from_slice(value.as_bytes());
        }
        frame_raw(&h, payload)
    }

    pub(crate) fn frame_raw(headers: &[u8], payload: &[u8]) -> Vec<u8> {
        let total = u32::try_from(MIN_MESSAGE_LEN + headers.len() + payload.len()).unwrap();
        let mut out = Vec::new();
        out.extend_from_slice(&total.to_be_bytes());
        out.extend_from_slice(&u32::try_from(headers.len()).unwrap().to_be_bytes());
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out.extend_from_slice(headers);
        out.extend_from_slice(payload);
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    pub(crate) fn event(kind: &str, payload: &str) -> Vec<u8> {
        frame(&[(":event-type", kind), (":content-type", "application/json"), (":message-type", "event")], payload.as_bytes())
    }

    #[derive(Debug, PartialEq)]
    struct Owned {
        name: String,
        data: String,
        raw_len: usize,
    }

    fn collect(chunks: &[&[u8]]) -> Result<Vec<Owned>, StreamError> {
        let mut f = Framer::new(1 << 16);
        let mut events = Vec::new();
        for c in chunks {
            f.feed(c, |e| {
                events.push(Owned {
                    name: String::from_utf8(e.name.to_vec()).unwrap(),
                    data: String::from_utf8(e.data.to_vec()).unwrap(),
                    raw_len: e.raw.len(),
                })
            })?;
        }
        f.finish(|_| panic!("finish never yields"));
        Ok(events)
    }

    fn body() -> Vec<u8> {
        let mut body = event("messageStart", r#"{"role":"assistant","p":"abcdefgh"}"#);
        body.extend(event("contentBlockDelta", "{\"contentBlockIndex\":0,\"delta\":{\"text\":\"h\u{e9}llo \u{1F600}\"}}"));
        body.extend(frame(&[(":message-type", "event"), (":event-type", "contentBlockStop")], b""));
        body.extend(frame(
            &[(":exception-type", "throttlingException"), (":message-type", "exception"), (":content-type", "application/json")],
            br#"{"message":"Too many requests"}"#,
        ));
        body
    }

    /// A message built by an independent CRC32 implementation (Python's `zlib.crc32`):
    /// `:message-type`=`event`, `:event-type`=`messageStop`, payload `{"stopReason":"end_turn"}`.
    const GOLDEN: &str = "000000590000003076f8427f0d3a6d6573736167652d747970650700056576656e740b3a6576656e742d7479706507000b6d65737361676553746f707b2273746f70526561736f6e223a22656e645f7475726e227def4f02c7";

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    #[test]
    fn decodes_a_golden_message() {
        let golden = unhex(GOLDEN);
        assert_eq!(golden, frame(&[(":message-type", "event"), (":event-type", "messageStop")], br#"{"stopReason":"end_turn"}"#));
        let events = collect(&[&golden]).unwrap();
        assert_eq!(events, vec![Owned { name: "messageStop".into(), data: r#"{"stopReason":"end_turn"}"#.into(), raw_len: golden.len() }]);
    }

    #[test]
    fn frames_every_split_position_identically() {
        let body = body();
        let whole = collect(&[&body]).unwrap();
        assert_eq!(whole.len(), 4);
        assert_eq!(whole[0].name, "messageStart");
        assert_eq!(whole[1].data, "{\"contentBlockIndex\":0,\"delta\":{\"text\":\"h\u{e9}llo \u{1F600}\"}}");
        assert_eq!((whole[2].name.as_str(), whole[2].data.as_str()), ("contentBlockStop", ""));
        assert_eq!((whole[3].name.as_str(), whole[3].data.as_str()), ("throttlingException", r#"{"message":"Too many requests"}"#));
        assert_eq!(whole.iter().map(|e| e.raw_len).sum::<usize>(), body.len(), "raw is each whole message");
        for i in 0..=body.len() {
            let (a, b) = body.split_at(i);
            assert_eq!(collect(&[a, b]).unwrap(), whole, "split at {i}");
        }
        let bytes: Vec<&[u8]> = body.chunks(1).collect();
        assert_eq!(collect(&bytes).unwrap(), whole);
        for size in [2, 3, 5, 7, 11, 13] {
            let chunks: Vec<&[u8]> = body.chunks(size).collect();
            assert_eq!(collect(&chunks).unwrap(), whole, "chunks of {size}");
        }
    }

    #[test]
    fn three_way_splits_of_a_short_stream() {
        let mut body = event("messageStop", r#"{"stopReason":"end_turn"}"#);
        body.extend(event("metadata", r#"{"usage":{"inputTokens":1}}"#));
        let whole = collect(&[&body]).unwrap();
        for i in 0..=body.len() {
            for j in i..=body.len() {
                assert_eq!(collect(&[&body[..i], &body[i..j], &body[j..]]).unwrap(), whole, "split at {i},{j}");
            }
        }
    }

    #[test]
    fn a_corrupted_byte_anywhere_is_an_error_not_an_event() {
        let message = event("contentBlockDelta", r#"{"contentBlockIndex":0,"delta":{"text":"hi"}}"#);
        for at in 0..message.len() {
            let mut bad = message.clone();
            bad[at] ^= 0x20;
            let mut seen = 0;
            let mut f = Framer::new(1 << 16);
            let fed = f.feed(&bad, |_| seen += 1);
            // A flipped length byte may announce a longer message that is still incomplete.
            assert!(fed.is_err() || f.pending_len() == bad.len(), "byte {at}: {fed:?}");
            assert_eq!(seen, 0, "byte {at} yielded an event");
            if fed.is_err() {
                assert_eq!(f.pending_len(), 0, "memory is released after an error");
            }
        }
        let mut bad_crc = message.clone();
        let last = bad_crc.len() - 1;
        bad_crc[last] ^= 1;
        assert_eq!(collect(&[&bad_crc]), Err(StreamError::Corrupt("event-stream message checksum mismatch")));
        let mut bad_prelude = message;
        bad_prelude[9] ^= 1;
        for i in 0..bad_prelude.len() {
            let got = collect(&[&bad_prelude[..i], &bad_prelude[i..]]);
            assert_eq!(got, Err(StreamError::Corrupt("event-stream prelude checksum mismatch")), "split at {i}");
        }
    }

    #[test]
    fn impossible_lengths_are_corrupt() {
        // headers longer than the message, with a valid prelude checksum
        let mut bad = Vec::new();
        bad.extend_from_slice(&20u32.to_be_bytes());
        bad.extend_from_slice(&10u32.to_be_bytes());
        bad.extend_from_slice(&crc32fast::hash(&bad.clone()).to_be_bytes());
        assert_eq!(collect(&[&bad]), Err(StreamError::Corrupt("event-stream message lengths are inconsistent")));
        let unknown_type = frame_raw(b"\x02:x\x0a", b"");
        assert_eq!(collect(&[&unknown_type]), Err(StreamError::Corrupt("event-stream header of an unknown type")));
        let short_value = frame_raw(b"\x02:x\x07\x00\x09abc", b"");
        assert_eq!(collect(&[&short_value]), Err(StreamError::Corrupt("event-stream header runs past the headers section")));
        let untyped = frame(&[(":event-type", "messageStart")], b"{}");
        assert!(matches!(collect(&[&untyped]), Err(StreamError::Corrupt(_))));
        let nameless = frame(&[(":message-type", "event")], b"{}");
        assert!(matches!(collect(&[&nameless]), Err(StreamError::Corrupt(_))));
    }

    #[test]
    fn headers_of_every_type_are_skipped() {
        let mut h = Vec::new();
        let mut header = |name: &str, kind: u8, value: &[u8]| {
            h.push(u8::try_from(name.len()).unwrap());
            h.extend_from_slice(name.as_bytes());
            h.push(kind);
            h.extend_from_slice(value);
        };
        header("t", 0, b"");
        header("f", 1, b"");
        header("b", 2, b"\x07");
        header("s", 3, b"\x00\x07");
        header("i", 4, b"\x00\x00\x00\x07");
        header("l", 5, &[0; 8]);
        header("a", 6, b"\x00\x03\x01\x02\x03");
        header(":message-type", 7, b"\x00\x05event");
        header("d", 8, &[1; 8]);
        header("u", 9, &[2; 16]);
        // a string-typed lookalike of a type header, as bytes, is ignored
        header(":event-type", 6, b"\x00\x04fake");
        header(":event-type", 7, b"\x00\x08metadata");
        let events = collect(&[&frame_raw(&h, b"{}")]).unwrap();
        assert_eq!((events[0].name.as_str(), events[0].data.as_str()), ("metadata", "{}"));
    }

    #[test]
    fn protocol_errors_carry_their_code_and_message() {
        let message = frame(&[(":message-type", "error"), (":error-code", "InternalFailure"), (":error-message", "Something broke")], b"");
        let events = collect(&[&message]).unwrap();
        assert_eq!((events[0].name.as_str(), events[0].data.as_str()), ("InternalFailure", "Something broke"));
    }

    #[test]
    fn oversized_messages_are_refused_from_the_prelude() {
        let big = event("contentBlockDelta", &format!(r#"{{"delta":{{"text":"{}"}}}}"#, "x".repeat(200)));
        let mut f = Framer::new(128);
        // the prelude alone is enough to refuse it, before the body is buffered
        assert_eq!(f.feed(&big[..PRELUDE_LEN], |_| {}), Err(StreamError::Overflow { limit: 128 }));
        assert_eq!(f.pending_len(), 0);
        let mut f = Framer::new(128);
        assert_eq!(f.feed(&big, |_| {}), Err(StreamError::Overflow { limit: 128 }));
    }

    #[test]
    fn pending_is_only_the_unfinished_message() {
        let first = event("messageStart", "{}");
        let second = event("messageStop", "{}");
        let mut both = first.clone();
        both.extend_from_slice(&second[..5]);
        let mut f = Framer::new(1024);
        let mut n = 0;
        f.feed(&both, |_| n += 1).unwrap();
        assert_eq!((n, f.pending_len()), (1, 5));
        f.feed(&second[5..], |_| n += 1).unwrap();
        assert_eq!((n, f.pending_len()), (2, 0));
        f.feed(&first[..20], |_| n += 1).unwrap();
        f.finish(|_| n += 1);
        assert_eq!((n, f.pending_len()), (2, 0), "a cut message is dropped at the end");
    }
}
