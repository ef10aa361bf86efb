//! Stream framers: bytes in, complete events out, bounded memory. Every streaming path decodes
//! through [`Decoder`], whatever framing its provider uses.

pub mod sse;

use sse::{Event, Framer, Overflow};

/// The framing of a provider's stream.
#[derive(Debug)]
pub enum Decoder {
    Sse(Framer),
}

impl Decoder {
    pub fn sse(max_event_bytes: usize) -> Self {
        Decoder::Sse(Framer::new(max_event_bytes))
    }

    pub fn feed<F: FnMut(Event<'_>)>(&mut self, chunk: &[u8], on_event: F) -> Result<(), Overflow> {
        match self {
            Decoder::Sse(f) => f.feed(chunk, on_event),
        }
    }

    pub fn finish<F: FnMut(Event<'_>)>(&mut self, on_event: F) {
        match self {
            Decoder::Sse(f) => f.finish(on_event),
        }
    }

    pub fn pending_len(&self) -> usize {
        match self {
            Decoder::Sse(f) => f.pending_len(),
        }
    }
}
