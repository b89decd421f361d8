//! API bearer tokens: generation and hashing. Only the hash is ever stored or compared.

use rand::RngExt;
use sha2::{Digest, Sha256};

/// Prefix that makes leaked tokens easy to recognise by secret scanners.
const TOKEN_PREFIX: &str = "tl_";

/// A new random token: 256 bits from the OS generator, hex-encoded, with a prefix.
pub fn generate_token() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    format!("{TOKEN_PREFIX}{}", hex::encode(bytes))
}

/// A new dashboard session id: 256 bits from the OS generator, hex (cookie-safe). Stored only
/// as its [`hash_token`].
pub fn generate_session_id() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    hex::encode(bytes)
}

/// The SHA-256 of a token, as stored in `api_tokens.token_hash`. A plain hash suffices: the
/// token has 256 bits of entropy, so there is nothing to brute-force.
pub fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_and_hash_stably() {
        let (a, b) = (generate_token(), generate_token());
        assert_ne!(a, b);
        assert!(a.starts_with("tl_") && a.len() == 3 + 64);
        assert_eq!(hash_token(&a), hash_token(&a));
        assert_ne!(hash_token(&a), hash_token(&b));
    }
}
