//! Bearer tokens: 256 random bits, shown once, stored only as a SHA-256 digest.
//!
//! A token is 32 bytes from the operating system's CSPRNG, written as 64 lowercase hex
//! characters (URL-safe, so it also works as `?token=` on the WebSocket upgrade). The book
//! keeps `hash_token(token)` and nothing else; a stolen journal or snapshot yields digests,
//! and 256-bit random preimages cannot be recovered from them (no salt or slow hash is
//! needed: those defend low-entropy passwords against guessing, and these are not guessable).
//!
//! Lookup is by digest: the server hashes the presented token and looks the digest up in a
//! map. No comparison of secret bytes happens, so there is no timing side channel to close
//! with a constant-time compare: the time a lookup takes depends on the digest, and learning
//! digest bytes by timing does not help anyone forge a token whose digest matches (that is
//! a preimage attack on SHA-256).

use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Bytes of randomness in a token.
pub const TOKEN_BYTES: usize = 32;

/// Length of a token's text form (hex).
pub const TOKEN_CHARS: usize = TOKEN_BYTES * 2;

/// A new token: the text to show once, and the digest to store.
pub fn new_token() -> (String, [u8; 32]) {
    let mut raw = [0u8; TOKEN_BYTES];
    OsRng.fill_bytes(&mut raw);
    let token = hex::encode(raw);
    let digest = hash_token(&token);
    (token, digest)
}

/// The stored form of a presented token: SHA-256 of its text.
///
/// Any string hashes (a malformed token simply matches nothing), so callers need not
/// validate a token's shape before looking it up.
pub fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Whether `token` has the shape of a token this module issues (64 lowercase hex
/// characters). Not needed for lookup; useful to reject junk before hashing it or
/// to refuse an operator-chosen admin token that is too weak.
pub fn looks_like_token(token: &str) -> bool {
    token.len() == TOKEN_CHARS
        && token
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_tokens_are_256_bit_hex_and_stored_as_their_digest() {
        let (t1, d1) = new_token();
        let (t2, d2) = new_token();
        assert_eq!(t1.len(), 64);
        assert!(looks_like_token(&t1) && looks_like_token(&t2));
        assert_ne!(t1, t2, "two draws of 256 bits collided");
        assert_eq!(hash_token(&t1), d1);
        assert_eq!(hash_token(&t2), d2);
        assert_ne!(d1, d2);
        // The digest is not the token.
        assert_ne!(hex::encode(d1), t1);
    }

    #[test]
    fn hash_is_sha256_of_the_text() {
        // SHA-256("abc"), FIPS 180-2 appendix B.1.
        assert_eq!(
            hex::encode(hash_token("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        // Anything hashes; nothing panics.
        let _ = hash_token("");
        let _ = hash_token("\u{0}\u{10FFFF}");
    }

    #[test]
    fn token_shape() {
        assert!(!looks_like_token(""));
        assert!(!looks_like_token(&"A".repeat(64)));
        assert!(!looks_like_token(&"a".repeat(63)));
        assert!(looks_like_token(&"0f".repeat(32)));
    }
}
