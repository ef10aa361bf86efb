//! Virtual keys: clients send `Authorization: Bearer <key>`; the configuration holds only the
//! keys' SHA-256 hashes, so a leaked config exposes no usable key.

use sha2::{Digest, Sha256};
use std::collections::HashMap;

pub type KeyHash = [u8; 32];

pub fn hash(secret: &str) -> KeyHash {
    Sha256::digest(secret.as_bytes()).into()
}

pub fn parse_hex(hex: &str) -> Option<KeyHash> {
    let hex = hex.trim();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Equality whose timing does not depend on where the inputs differ.
pub fn constant_time_eq(a: &KeyHash, b: &KeyHash) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The bearer token of an `Authorization` header value.
pub fn bearer(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

/// Looks keys up by hash. The map is keyed by the hash, never the secret, so lookup timing can
/// reveal nothing about a key; the final comparison is constant-time all the same.
#[derive(Debug, Default)]
pub struct KeyIndex<T> {
    by_hash: HashMap<KeyHash, T>,
}

impl<T> KeyIndex<T> {
    pub fn insert(&mut self, hash: KeyHash, value: T) -> bool {
        self.by_hash.insert(hash, value).is_none()
    }

    pub fn find(&self, secret: &str) -> Option<&T> {
        let h = hash(secret);
        self.by_hash.get_key_value(&h).filter(|(stored, _)| constant_time_eq(stored, &h)).map(|(_, v)| v)
    }

    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_matches_the_standard_test_vector() {
        // FIPS 180-2 example: SHA-256("abc")
        assert_eq!(hash("abc"), parse_hex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad").unwrap());
    }

    #[test]
    fn hex_parsing_is_strict() {
        assert!(parse_hex("00").is_none());
        assert!(parse_hex(&"zz".repeat(32)).is_none());
        assert_eq!(parse_hex(&"AB".repeat(32)).unwrap(), [0xab; 32]);
    }

    #[test]
    fn bearer_tokens() {
        assert_eq!(bearer("Bearer tg-123"), Some("tg-123"));
        assert_eq!(bearer("bearer   tg-123 "), Some("tg-123"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("tg-123"), None);
    }

    #[test]
    fn index_finds_by_secret() {
        let mut idx = KeyIndex::default();
        assert!(idx.insert(hash("tg-alice"), "alice"));
        assert!(!idx.insert(hash("tg-alice"), "dup"), "duplicate hashes are reported");
        assert_eq!(idx.find("tg-alice"), Some(&"dup"));
        assert_eq!(idx.find("tg-bob"), None);
        assert!(constant_time_eq(&hash("x"), &hash("x")));
        assert!(!constant_time_eq(&hash("x"), &hash("y")));
    }
}
