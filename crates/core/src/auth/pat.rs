//! Personal access token values: `cpat_` + base64url(id ‖ secret ‖ checksum).
//!
//! - `id` (16 bytes) is the token's row id, so a lookup is one indexed read;
//! - `secret` (32 random bytes) is what proves possession; only its SHA-256 is stored;
//! - `checksum` (8 bytes) is an HMAC-SHA256 of id ‖ secret under a server key, so a forged or
//!   mistyped value is refused before any database access (GitHub-style prefix and checksum,
//!   keyed like Cells' HMAC check).

use aws_lc_rs::{digest, hmac};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cells_store::TokenId;
use subtle::ConstantTimeEq;
use uuid::Uuid;

pub const PREFIX: &str = "cpat_";
const ID_LEN: usize = 16;
const SECRET_LEN: usize = 32;
const CHECKSUM_LEN: usize = 8;
const RAW_LEN: usize = ID_LEN + SECRET_LEN + CHECKSUM_LEN;
/// Length of a token value in characters.
pub const VALUE_LEN: usize = PREFIX.len() + (RAW_LEN * 4).div_ceil(3);

/// The parts of a well-formed token value.
#[derive(Clone)]
pub struct TokenValue {
    pub id: TokenId,
    secret: [u8; SECRET_LEN],
}

impl TokenValue {
    /// Lowercase hex SHA-256 of the secret: what the database keeps.
    pub fn secret_hash(&self) -> String {
        hex::encode(digest::digest(&digest::SHA256, &self.secret))
    }

    /// Constant-time comparison with a stored hash.
    pub fn matches(&self, stored_hash: &str) -> bool {
        self.secret_hash().as_bytes().ct_eq(stored_hash.as_bytes()).into()
    }
}

/// The server key behind the checksum.
pub struct PatKey(hmac::Key);

impl PatKey {
    pub fn new(bytes: &[u8]) -> PatKey {
        PatKey(hmac::Key::new(hmac::HMAC_SHA256, bytes))
    }

    fn checksum(&self, id_and_secret: &[u8]) -> [u8; CHECKSUM_LEN] {
        let tag = hmac::sign(&self.0, id_and_secret);
        let mut out = [0u8; CHECKSUM_LEN];
        out.copy_from_slice(&tag.as_ref()[..CHECKSUM_LEN]);
        out
    }

    /// A new random token: its parts and its printable value (shown once, never stored).
    pub fn mint(&self) -> (TokenValue, String) {
        let mut secret = [0u8; SECRET_LEN];
        crate::random::fill(&mut secret);
        let value = TokenValue {
            id: TokenId::random(),
            secret,
        };
        let mut raw = Vec::with_capacity(RAW_LEN);
        raw.extend_from_slice(value.id.uuid().as_bytes());
        raw.extend_from_slice(&value.secret);
        let checksum = self.checksum(&raw);
        raw.extend_from_slice(&checksum);
        (value, format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(raw)))
    }

    /// Parse and check a presented value. `None` for anything that is not a token we made:
    /// wrong prefix, wrong length, bad encoding, or a checksum that does not match.
    pub fn parse(&self, text: &str) -> Option<TokenValue> {
        let body = text.strip_prefix(PREFIX)?;
        if text.len() != VALUE_LEN {
            return None;
        }
        let raw = URL_SAFE_NO_PAD.decode(body).ok()?;
        if raw.len() != RAW_LEN {
            return None;
        }
        let (id_and_secret, checksum) = raw.split_at(ID_LEN + SECRET_LEN);
        if !bool::from(self.checksum(id_and_secret).ct_eq(checksum)) {
            return None;
        }
        let id = TokenId::new(Uuid::from_slice(&id_and_secret[..ID_LEN]).ok()?);
        let mut secret = [0u8; SECRET_LEN];
        secret.copy_from_slice(&id_and_secret[ID_LEN..]);
        Some(TokenValue { id, secret })
    }
}

/// Prefix of a token's S3 access key id: `cpak_` + the token id in 32 hex digits. It names
/// the token without being a credential; the token's S3 secret proves possession.
pub const S3_KEY_PREFIX: &str = "cpak_";

pub fn s3_access_key_id(id: TokenId) -> String {
    format!("{S3_KEY_PREFIX}{}", id.uuid().simple())
}

/// The token id named by an S3 access key id, if `text` is one.
pub fn parse_s3_access_key_id(text: &str) -> Option<TokenId> {
    let hex = text.strip_prefix(S3_KEY_PREFIX)?;
    if hex.len() != 32
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    TokenId::parse(hex)
}

/// A new S3 secret access key: 30 random bytes, 40 characters (the length AWS uses).
pub fn mint_s3_secret() -> String {
    let mut bytes = [0u8; 30];
    crate::random::fill(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The vault name a token's S3 secret is sealed under (binds the sealed value to the token).
pub fn s3_secret_name(id: TokenId) -> String {
    format!("token_s3_secret:{id}")
}

/// Whether `text` claims to be a token (so a Basic-auth secret is checked as a PAT, not as a
/// password, and a wrong one never counts toward the owner's lockout).
pub fn looks_like_token(text: &str) -> bool {
    text.starts_with(PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_values_parse_back() {
        let key = PatKey::new(b"0123456789abcdef0123456789abcdef");
        let (value, text) = key.mint();
        assert_eq!(text.len(), VALUE_LEN);
        assert!(looks_like_token(&text));
        let parsed = key.parse(&text).expect("parses");
        assert_eq!(parsed.id, value.id);
        assert!(parsed.matches(&value.secret_hash()));
    }

    #[test]
    fn refuses_forged_and_mangled_values() {
        let key = PatKey::new(b"0123456789abcdef0123456789abcdef");
        let other = PatKey::new(b"another key entirely, 32 bytes!!");
        let (_, text) = key.mint();
        assert!(other.parse(&text).is_none(), "checksum is keyed");
        let mut flipped = text.clone().into_bytes();
        let last = flipped.len() - 10;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap();
        for bad in [
            "",
            PREFIX,
            "cpat",
            &text[..text.len() - 1],
            &format!("{text}A"),
            &text.replacen(PREFIX, "xpat_", 1),
            &flipped,
            &"A".repeat(100_000),
            &format!("{PREFIX}{}", "!".repeat(VALUE_LEN - PREFIX.len())),
        ] {
            assert!(key.parse(bad).is_none(), "{bad:.40} should be refused");
        }
    }

    #[test]
    fn hash_comparison_is_exact() {
        let key = PatKey::new(b"k");
        let (value, _) = key.mint();
        let (other, _) = key.mint();
        assert!(value.matches(&value.secret_hash()));
        assert!(!value.matches(&other.secret_hash()));
        assert!(!value.matches(""));
    }
}
