//! One-time codes and link tokens: 6-digit codes from the OS CSPRNG, stored only as
//! HMAC-SHA256 keyed with a server secret and bound to one share (a code of share A
//! can never open share B); link tokens of 192 bits, stored only as SHA-256.

use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use rand::RngExt;
use sha2::{Digest, Sha256};

/// Wrong tries that kill one code.
pub const MAX_ATTEMPTS: u32 = 5;
/// Consecutive failures across re-issued codes that lock a share (NIST 800-63B §5.2.2).
pub const FAILURE_BUDGET: u32 = 100;

/// The key codes are hashed with.
#[derive(Clone)]
pub struct CodeKey([u8; 32]);

impl std::fmt::Debug for CodeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CodeKey(..)")
    }
}

/// HMAC-SHA256 with a 32-byte key. HMAC zero-pads keys shorter than its 64-byte block,
/// so padding here and using the infallible block-size constructor is the same MAC.
pub(crate) fn hmac(key: &[u8; 32]) -> Hmac<Sha256> {
    let mut block = [0u8; 64];
    block[..32].copy_from_slice(key);
    <Hmac<Sha256> as KeyInit>::new(&block.into())
}

impl CodeKey {
    /// Derives the code key from a server secret, domain-separated from other uses.
    pub fn derive(secret: &[u8]) -> Self {
        let mut m = hmac(&Sha256::digest(secret).into());
        m.update(b"guestgate one-time code key v1");
        Self(m.finalize().into_bytes().into())
    }

    /// The stored form of `code` for `share_id`.
    pub fn mac(&self, share_id: &str, code: &str) -> String {
        let mut m = hmac(&self.0);
        m.update(share_id.as_bytes());
        m.update(&[0]);
        m.update(code.as_bytes());
        hex::encode(m.finalize().into_bytes())
    }
}

/// A fresh 6-digit code.
pub fn new_code() -> String {
    format!("{:06}", rand::rng().random_range(0..1_000_000u32))
}

/// What the guest typed, if it is 6 digits once spaces and dashes are removed.
pub fn normalise_input(typed: &str) -> Option<String> {
    let digits: String = typed
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '\t'))
        .collect();
    (digits.len() == 6 && digits.bytes().all(|b| b.is_ascii_digit())).then_some(digits)
}

/// A fresh link token (192 bits, hex).
pub fn new_link_token() -> String {
    crate::stamp::random_hex(24)
}

/// The stored form of a link token.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Whether a string looks like a link token (before any store lookup).
pub fn plausible_token(token: &str) -> bool {
    token.len() == 48
        && token
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_six_digits_and_bound_to_their_share() {
        for _ in 0..200 {
            let c = new_code();
            assert_eq!(c.len(), 6);
            assert!(c.bytes().all(|b| b.is_ascii_digit()));
        }
        let k = CodeKey::derive(&[1u8; 32]);
        assert_eq!(k.mac("a", "123456"), k.mac("a", "123456"));
        assert_ne!(k.mac("a", "123456"), k.mac("b", "123456"));
        assert_ne!(
            k.mac("a", "123456"),
            CodeKey::derive(&[2u8; 32]).mac("a", "123456")
        );
        // no ambiguity between id and code boundaries
        assert_ne!(k.mac("a1", "23456"), k.mac("a", "123456"));
    }

    #[test]
    fn input_is_normalised() {
        assert_eq!(normalise_input(" 123 456 ").as_deref(), Some("123456"));
        assert_eq!(normalise_input("123-456").as_deref(), Some("123456"));
        assert_eq!(normalise_input("12345"), None);
        assert_eq!(normalise_input("１２３４５６"), None);
        assert_eq!(normalise_input("12345a"), None);
    }

    #[test]
    fn tokens_are_long_random_and_stored_hashed() {
        let t = new_link_token();
        assert!(plausible_token(&t));
        assert_ne!(t, new_link_token());
        assert_eq!(token_hash(&t).len(), 64);
        assert!(!plausible_token("../etc"));
    }
}
