//! Stream framers: bytes in, complete events out, bounded memory.

pub mod sse;
