//! Gemini thought signatures carried through the client inside tool-call ids.
//!
//! Gemini 3 models require the `thoughtSignature` of each step's first `functionCall` part to
//! come back with the conversation, or answer 400 "Function call is missing a thought_signature"
//! (https://ai.google.dev/gemini-api/docs/thought-signatures). OpenAI's format has no place for
//! it, but every client sends a tool call's id back verbatim: the id a client gets is
//! `{id}_tsig_{signature}`, the signature in base64's URL-safe alphabet without padding, so the id
//! stays within `[A-Za-z0-9_-]` like the ids of other providers. Where a call has no signature
//! (history from another provider, a signature too long to carry), Google's documented
//! placeholder `skip_thought_signature_validator` (same page, "FAQs") stands in for it.
//!
//! A client can put anything in an id; what comes back is only ever used as that conversation's
//! signature, bounded in size and checked to be base64.

use std::borrow::Cow;

const MARKER: &str = "_tsig_";

/// The longest signature carried, in base64 characters. Signatures grow with the thinking behind
/// them and have no documented bound; longer ones are left out and replaced by the placeholder.
pub const MAX_SIGNATURE_CHARS: usize = 64 * 1024;

/// What Gemini takes in place of a signature it never issued.
pub const PLACEHOLDER: &str = "skip_thought_signature_validator";

/// The id the client gets for a call with `id` and `signature` (standard base64, as Gemini sends
/// bytes in JSON). A signature that is not base64 or too long is not carried; an `id` that holds
/// the marker itself is replaced by `fallback_id`, so that decoding finds the signature.
pub fn encode<'a>(id: Cow<'a, str>, signature: Option<&str>, fallback_id: impl FnOnce() -> String) -> Cow<'a, str> {
    let Some(signature) = signature.filter(|s| s.len() <= MAX_SIGNATURE_CHARS && is_standard_base64(s)) else {
        return id;
    };
    let id = if id.contains(MARKER) { Cow::Owned(fallback_id()) } else { id };
    let url_safe: String = signature
        .chars()
        .filter(|c| *c != '=')
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        })
        .collect();
    Cow::Owned(format!("{id}{MARKER}{url_safe}"))
}

/// The signature a client's tool-call id carries, in standard base64; `None` when it carries
/// none or one that is not well-formed.
pub fn decode(id: &str) -> Option<String> {
    let (_, carried) = id.split_once(MARKER)?;
    let well_formed = !carried.is_empty()
        && carried.len() <= MAX_SIGNATURE_CHARS
        && carried.len() % 4 != 1
        && carried.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !well_formed {
        return None;
    }
    let mut standard: String = carried
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    while !standard.len().is_multiple_of(4) {
        standard.push('=');
    }
    Some(standard)
}

/// Whether a client's tool-call id carries a signature (and is, as a rule, long).
pub fn carries_signature(id: &str) -> bool {
    id.contains(MARKER)
}

/// A short stand-in for `id` for APIs that limit id length: `{prefix}` and 32 hex digits of its
/// SHA-256, the same for a call and for its result.
pub fn digest_id(prefix: &str, id: &str) -> String {
    let digest = super::sigv4::sha256_hex(id.as_bytes());
    format!("{prefix}{}", digest.get(..32).unwrap_or(&digest))
}

/// Standard base64 with optional padding, as Google writes `bytes` fields.
fn is_standard_base64(s: &str) -> bool {
    let data = s.trim_end_matches('=');
    let padding = s.len() - data.len();
    !data.is_empty()
        && padding <= 2
        && (padding == 0 || s.len().is_multiple_of(4))
        && data.len() % 4 != 1
        && data.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(id: &str, signature: Option<&str>) -> String {
        encode(Cow::Borrowed(id), signature, || "call_9".into()).into_owned()
    }

    #[test]
    fn signatures_round_trip_through_ids_of_url_safe_characters() {
        for signature in ["AAEC/+8=", "q80=", "q8/+", "YWJj", "Zm9vYg=="] {
            let id = encoded("call_0", Some(signature));
            assert!(id.starts_with("call_0_tsig_"), "{id}");
            assert!(id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'), "{id}");
            assert_eq!(decode(&id).as_deref(), Some(signature));
        }
    }

    #[test]
    fn ids_without_a_usable_signature_stay_as_they_are() {
        assert_eq!(encoded("call_0", None), "call_0");
        assert_eq!(encoded("call_0", Some("not base64!")), "call_0");
        assert_eq!(encoded("call_0", Some("abcde")), "call_0", "a length base64 cannot have");
        assert_eq!(encoded("call_0", Some("=")), "call_0");
        let long = "A".repeat(MAX_SIGNATURE_CHARS + 4);
        assert_eq!(encoded("call_0", Some(&long)), "call_0");
        let longest = "A".repeat(MAX_SIGNATURE_CHARS);
        assert_eq!(decode(&encoded("call_0", Some(&longest))).unwrap().len(), MAX_SIGNATURE_CHARS);
        // signatures of tens of kilobytes, from long thinking, still travel
        let large = "A".repeat(60 * 1024);
        assert_eq!(decode(&encoded("call_0", Some(&large))).as_deref(), Some(large.as_str()));
    }

    #[test]
    fn an_upstream_id_holding_the_marker_is_replaced() {
        let id = encoded("x_tsig_y", Some("YWJj"));
        assert_eq!(id, "call_9_tsig_YWJj");
        assert_eq!(decode(&id).as_deref(), Some("YWJj"));
    }

    #[test]
    fn malformed_or_oversized_client_ids_carry_no_signature() {
        assert_eq!(decode("call_0"), None);
        assert_eq!(decode("call_0_tsig_"), None);
        assert_eq!(decode("call_0_tsig_ab+c"), None, "standard base64 is not what the gateway writes");
        assert_eq!(decode("call_0_tsig_abcde"), None, "a length base64 cannot have");
        assert_eq!(decode("call_0_tsig_a\"b"), None);
        assert_eq!(decode(&format!("c_tsig_{}", "A".repeat(MAX_SIGNATURE_CHARS + 1))), None);
        // the client's own id, passed back as this conversation's signature: fine, and bounded
        assert_eq!(decode("mine_tsig_abcd").as_deref(), Some("abcd"));
    }
}
