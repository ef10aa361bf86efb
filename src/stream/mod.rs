//! Stream framers: bytes in, complete events out, bounded memory. Every streaming path decodes
//! through [`Decoder`], whatever framing its provider uses.

pub mod eventstream;
pub mod sse;

use sse::{Event, Framer};

/// Why a stream could not be decoded any further.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamError {
    /// An event is larger than the configured limit.
    Overflow { limit: usize },
    /// Bytes that break the framing (a checksum or length): nothing after them can be trusted.
    Corrupt(&'static str),
}

/// The framing of a provider's stream.
#[derive(Debug)]
pub enum Decoder {
    Sse(Framer),
    EventStream(eventstream::Framer),
}

impl Decoder {
    pub fn sse(max_event_bytes: usize) -> Self {
        Decoder::Sse(Framer::new(max_event_bytes))
    }

    pub fn event_stream(max_event_bytes: usize) -> Self {
        Decoder::EventStream(eventstream::Framer::new(max_event_bytes))
    }

    pub fn feed<F: FnMut(Event<'_>)>(&mut self, chunk: &[u8], on_event: F) -> Result<(), StreamError> {
        match self {
            Decoder::Sse(f) => f.feed(chunk, on_event).map_err(|o| StreamError::Overflow { limit: o.limit }),
            Decoder::EventStream(f) => f.feed(chunk, on_event),
        }
    }

    pub fn finish<F: FnMut(Event<'_>)>(&mut self, on_event: F) {
        match self {
            Decoder::Sse(f) => f.finish(on_event),
            Decoder::EventStream(f) => f.finish(on_event),
        }
    }

    pub fn pending_len(&self) -> usize {
        match self {
            Decoder::Sse(f) => f.pending_len(),
            Decoder::EventStream(f) => f.pending_len(),
        }
    }
}
