//! Incremental Server-Sent Events framing, per the WHATWG event-stream format
//! (https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation).
//!
//! Bytes arrive in arbitrary chunks: an event may be split anywhere (inside a UTF-8 sequence,
//! between `\r` and `\n`) and one chunk may hold many events. The framer yields each event once it
//! is complete and keeps only the unfinished tail, bounded by `max_event_bytes`.

use std::borrow::Cow;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overflow {
    pub limit: usize,
}

/// One complete event. `raw` is the event exactly as received, terminator included, so
/// passthrough paths can forward it without re-encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event<'a> {
    pub name: &'a [u8],
    pub data: Cow<'a, [u8]>,
    pub raw: &'a [u8],
    /// True when the event carries at least one `data` line.
    pub has_data: bool,
    /// False for the unterminated tail the stream ended with: what it holds may be cut short,
    /// so a passthrough does not forward it.
    pub complete: bool,
}

#[derive(Debug)]
pub struct Framer {
    pending: Vec<u8>,
    /// Bytes of `pending` already scanned for an event end.
    scanned: usize,
    at_line_start: bool,
    after_cr: bool,
    max_event_bytes: usize,
}

impl Framer {
    pub fn new(max_event_bytes: usize) -> Self {
        Framer { pending: Vec::new(), scanned: 0, at_line_start: true, after_cr: false, max_event_bytes }
    }

    /// Bytes held back waiting for the rest of an event.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Feeds a chunk, calling `on_event` for every event it completes, in order.
    pub fn feed<F: FnMut(Event<'_>)>(&mut self, chunk: &[u8], mut on_event: F) -> Result<(), Overflow> {
        if self.pending.is_empty() {
            // Fast path: parse straight from the chunk and keep only its unfinished tail.
            let consumed = self.scan(chunk, 0, &mut on_event);
            let tail = chunk.get(consumed..).unwrap_or_default();
            self.scanned = tail.len();
            self.pending.extend_from_slice(tail);
        } else {
            let from = self.scanned;
            self.pending.extend_from_slice(chunk);
            let pending = std::mem::take(&mut self.pending);
            let consumed = self.scan(&pending, from, &mut on_event);
            self.pending = pending;
            self.pending.drain(..consumed);
            self.scanned = self.pending.len();
        }
        if self.pending.len() > self.max_event_bytes {
            self.pending = Vec::new();
            self.scanned = 0;
            return Err(Overflow { limit: self.max_event_bytes });
        }
        Ok(())
    }

    /// Ends the stream: an unterminated final event is delivered if it carries data (lenient
    /// towards servers that close without the last blank line).
    pub fn finish<F: FnMut(Event<'_>)>(&mut self, mut on_event: F) {
        let pending = std::mem::take(&mut self.pending);
        self.scanned = 0;
        if !pending.is_empty() {
            let event = parse_event(&pending, false);
            if event.has_data {
                on_event(event);
            }
        }
    }

    /// Scans `buf` from `from`, emitting complete events; returns how many bytes they used.
    /// Jumps from line end to line end (memchr), so the cost is per line, not per byte.
    fn scan<F: FnMut(Event<'_>)>(&mut self, buf: &[u8], from: usize, on_event: &mut F) -> usize {
        let mut event_start = 0;
        let mut i = from;
        while let Some(rest) = buf.get(i..).filter(|r| !r.is_empty()) {
            if std::mem::take(&mut self.after_cr) && rest.first() == Some(&b'\n') {
                // The `\n` of a `\r\n` split across chunks: part of the line end already seen.
                i += 1;
                continue;
            }
            let Some(offset) = memchr::memchr2(b'\r', b'\n', rest) else {
                self.at_line_start = false;
                break;
            };
            if offset > 0 {
                self.at_line_start = false;
            }
            let end = i + offset;
            let mut next = end + 1;
            if rest.get(offset) == Some(&b'\r') {
                match buf.get(next) {
                    Some(b'\n') => next += 1,
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
            if self.at_line_start {
                let raw = buf.get(event_start..next).unwrap_or_default();
                let event = parse_event(raw, true);
                if event.has_data || !event.name.is_empty() || is_comment_only(raw) {
                    on_event(event);
                }
                event_start = next;
            }
            self.at_line_start = true;
            i = next;
        }
        event_start
    }
}

fn is_comment_only(raw: &[u8]) -> bool {
    lines(raw).any(|l| l.first() == Some(&b':'))
}

/// Splits on `\r\n`, `\r` or `\n`.
fn lines(raw: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = raw;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        match memchr::memchr2(b'\r', b'\n', rest) {
            Some(end) => {
                let line = rest.get(..end).unwrap_or_default();
                let mut next = end + 1;
                if rest.get(end) == Some(&b'\r') && rest.get(next) == Some(&b'\n') {
                    next += 1;
                }
                rest = rest.get(next..).unwrap_or_default();
                Some(line)
            }
            None => {
                let line = rest;
                rest = &[];
                Some(line)
            }
        }
    })
}

fn parse_event(raw: &[u8], complete: bool) -> Event<'_> {
    let mut name: &[u8] = &[];
    let mut data: Option<Cow<[u8]>> = None;
    for line in lines(raw) {
        if line.is_empty() || line.first() == Some(&b':') {
            continue;
        }
        let (field, value) = match memchr::memchr(b':', line) {
            Some(colon) => {
                let value = line.get(colon + 1..).unwrap_or_default();
                let value = value.strip_prefix(b" ").unwrap_or(value);
                (line.get(..colon).unwrap_or_default(), value)
            }
            None => (line, &[][..]),
        };
        match field {
            b"event" => name = value,
            b"data" => {
                data = Some(match data {
                    None => Cow::Borrowed(value),
                    Some(prev) => {
                        let mut joined = prev.into_owned();
                        joined.push(b'\n');
                        joined.extend_from_slice(value);
                        Cow::Owned(joined)
                    }
                })
            }
            _ => {}
        }
    }
    Event { name, has_data: data.is_some(), data: data.unwrap_or(Cow::Borrowed(&[])), raw, complete }
}

/// The named events of a stream a test wrote, `(event name, JSON data)`, in order.
#[cfg(test)]
pub fn named_events(out: &[u8]) -> Vec<(String, serde_json::Value)> {
    let text = std::str::from_utf8(out).unwrap();
    text.split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            let (name, data) = e.split_once('\n').unwrap();
            (name.strip_prefix("event: ").unwrap().to_owned(), serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct Owned {
        name: String,
        data: String,
    }

    fn collect(chunks: &[&[u8]]) -> (Vec<Owned>, Vec<u8>) {
        let mut f = Framer::new(1 << 20);
        let mut events = Vec::new();
        let mut raw = Vec::new();
        for c in chunks {
            f.feed(c, |e| {
                raw.extend_from_slice(e.raw);
                events.push(Owned { name: String::from_utf8(e.name.to_vec()).unwrap(), data: String::from_utf8(e.data.to_vec()).unwrap() })
            })
            .unwrap();
        }
        f.finish(|e| {
            raw.extend_from_slice(e.raw);
            events.push(Owned { name: String::from_utf8(e.name.to_vec()).unwrap(), data: String::from_utf8(e.data.to_vec()).unwrap() })
        });
        (events, raw)
    }

    const BODY: &str = "event: message_start\ndata: {\"a\":\"h\u{e9}llo \u{1F600}\"}\n\n: keep-alive\n\nevent: delta\r\ndata: line1\r\ndata: line2\r\n\r\ndata: [DONE]\r\r";

    #[test]
    fn frames_every_split_position_identically() {
        let body = BODY.as_bytes();
        let (whole, whole_raw) = collect(&[body]);
        assert_eq!(whole.len(), 4, "{whole:?}");
        assert_eq!(whole[0], Owned { name: "message_start".into(), data: "{\"a\":\"h\u{e9}llo \u{1F600}\"}".into() });
        assert_eq!(whole[1], Owned { name: "".into(), data: "".into() });
        assert_eq!(whole[2], Owned { name: "delta".into(), data: "line1\nline2".into() });
        assert_eq!(whole[3], Owned { name: "".into(), data: "[DONE]".into() });
        assert_eq!(whole_raw, body, "raw bytes of all events reproduce the input");
        for i in 0..=body.len() {
            let (a, b) = body.split_at(i);
            assert_eq!(collect(&[a, b]).0, whole, "split at {i}");
            for j in i..=body.len() {
                let (b1, b2) = b.split_at(j - i);
                let (events, raw) = collect(&[a, b1, b2]);
                assert_eq!(events, whole, "split at {i},{j}");
                assert_eq!(raw, body);
            }
        }
    }

    #[test]
    fn byte_at_a_time() {
        let body = BODY.as_bytes();
        let chunks: Vec<&[u8]> = body.chunks(1).collect();
        assert_eq!(collect(&chunks).0, collect(&[body]).0);
    }

    #[test]
    fn crlf_split_between_cr_and_lf_is_one_line_end() {
        let (events, _) = collect(&[b"data: a\r", b"\n", b"\r", b"\ndata: b\n\n"]);
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].data, "a");
        assert_eq!(events[1].data, "b");
    }

    #[test]
    fn field_without_space_and_without_colon() {
        let (events, _) = collect(&[b"data:x\ndata\n\n"]);
        assert_eq!(events[0].data, "x\n");
    }

    #[test]
    fn unterminated_final_event_is_delivered_at_finish() {
        let (events, _) = collect(&[b"data: a\n\ndata: tail"]);
        assert_eq!(events.len(), 2);
        assert_eq!(events[1].data, "tail");
    }

    #[test]
    fn overflow_is_reported_and_memory_released() {
        let mut f = Framer::new(16);
        assert!(f.feed(b"data: 0123456789", |_| {}).is_ok());
        let err = f.feed(b"abcdefghij", |_| {}).unwrap_err();
        assert_eq!(err.limit, 16);
        assert_eq!(f.pending_len(), 0);
        // a complete large event within one chunk never counts against the limit
        let mut f = Framer::new(16);
        let mut n = 0;
        f.feed(b"data: 0123456789abcdefghij\n\n", |_| n += 1).unwrap();
        assert_eq!(n, 1);
    }

    #[test]
    fn pending_is_only_the_unfinished_tail() {
        let mut f = Framer::new(1024);
        f.feed(b"data: a\n\ndata: b", |_| {}).unwrap();
        assert_eq!(f.pending_len(), 7);
        f.feed(b"\n\n", |_| {}).unwrap();
        assert_eq!(f.pending_len(), 0);
    }
}
