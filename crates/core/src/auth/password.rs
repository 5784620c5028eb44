//! Password hashing: Argon2id for new hashes; Cells' PBKDF2 `sha256:1000:salt:key` still verifies.
//!
//! One Argon2id check costs ~28 ms of a core and 19 MiB, so it runs on the blocking pool behind a
//! two-permit semaphore: a password spray can neither starve the async workers nor the memory.
//! The hasher also knows how long a verification usually takes, queue included
//! (`typical_verification`), so that a login refused without one can take as long.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier, phc::PasswordHash};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tokio::sync::Semaphore;

use crate::error::{Error, Result};

/// Longest password we hash: longer input is refused before any work is done.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// What a verification takes before any is measured: Argon2id's cost here, rounded up.
const FIRST_GUESS: Duration = Duration::from_millis(40);

/// A moving average of durations (weight 1/8; a lost race loses one sample).
pub struct Typical(AtomicU64);

impl Default for Typical {
    fn default() -> Typical {
        Typical(AtomicU64::new(FIRST_GUESS.as_micros() as u64))
    }
}

impl Typical {
    pub fn get(&self) -> Duration {
        Duration::from_micros(self.0.load(Ordering::Relaxed))
    }

    pub fn measured(&self, took: Duration) {
        let sample = took.as_micros().min(10_000_000) as u64;
        let old = self.0.load(Ordering::Relaxed);
        let new = old - old / 8 + sample / 8;
        let _ = self
            .0
            .compare_exchange(old, new, Ordering::Relaxed, Ordering::Relaxed);
    }
}

#[derive(Clone)]
pub struct Hasher {
    permits: Arc<Semaphore>,
    /// Verifications run so far.
    verifications: Arc<AtomicU64>,
    /// How long a verification takes, queue included.
    typical: Arc<Typical>,
}

impl Default for Hasher {
    fn default() -> Self {
        Hasher {
            permits: Arc::new(Semaphore::new(2)),
            verifications: Arc::new(AtomicU64::new(0)),
            typical: Arc::default(),
        }
    }
}

impl Hasher {
    /// A new Argon2id PHC string for `password`.
    pub async fn hash(&self, password: &str) -> Result<String> {
        check_password_policy(password)?;
        let password = password.to_string();
        self.run(move || hash_now(&password)).await?
    }

    /// Whether `password` matches `stored` (Argon2id PHC or Cells PBKDF2). Malformed stored
    /// hashes never match.
    pub async fn verify(&self, password: &str, stored: &str) -> Result<bool> {
        let started = Instant::now();
        self.verifications.fetch_add(1, Ordering::Relaxed);
        let matches = if password.len() > MAX_PASSWORD_BYTES {
            false
        } else {
            let (password, stored) = (password.to_string(), stored.to_string());
            self.run(move || verify_now(&password, &stored)).await?
        };
        self.typical.measured(started.elapsed());
        Ok(matches)
    }

    /// How many passwords were verified (for tests and metrics).
    pub fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }

    /// How long a verification usually takes now, waiting for a permit included.
    pub fn typical_verification(&self) -> Duration {
        self.typical.get()
    }

    async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T> {
        let _permit = self.permits.acquire().await.map_err(Error::internal)?;
        tokio::task::spawn_blocking(work).await.map_err(Error::internal)
    }
}

/// Rules for a new password: not empty, not absurdly long.
pub fn check_password_policy(password: &str) -> Result<()> {
    if password.len() < 8 {
        return Err(Error::invalid("password", "must be at least 8 characters long"));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(Error::invalid("password", "must be at most 1024 bytes long"));
    }
    Ok(())
}

fn hash_now(password: &str) -> Result<String> {
    // A fresh random salt comes from the system generator.
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|e| Error::internal(anyhow::anyhow!("argon2: {e}")))
}

fn verify_now(password: &str, stored: &str) -> bool {
    if stored.starts_with("$argon2") {
        return match PasswordHash::new(stored) {
            Ok(parsed) => Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok(),
            Err(_) => false,
        };
    }
    verify_cells_pbkdf2(password, stored)
}

/// Cells' `ALGO:ITERATIONS:base64(salt):base64(key)`. Cells tries the decoded salt first, then
/// the base64 text itself as salt (hashes imported from the PHP Pydio).
fn verify_cells_pbkdf2(password: &str, stored: &str) -> bool {
    let parts: Vec<&str> = stored.split(':').collect();
    let [algorithm, iterations, salt_text, key_text] = parts[..] else {
        return false;
    };
    let algorithm = match algorithm {
        "sha256" => aws_lc_rs::pbkdf2::PBKDF2_HMAC_SHA256,
        "sha1" => aws_lc_rs::pbkdf2::PBKDF2_HMAC_SHA1,
        _ => return false,
    };
    let Some(iterations) = iterations.parse::<u32>().ok().and_then(NonZeroU32::new) else {
        return false;
    };
    let Ok(key) = STANDARD.decode(key_text) else {
        return false;
    };
    if key.is_empty() || iterations.get() > 10_000_000 {
        return false;
    }
    let decoded_salt = STANDARD.decode(salt_text).unwrap_or_default();
    [decoded_salt.as_slice(), salt_text.as_bytes()]
        .iter()
        .any(|salt| aws_lc_rs::pbkdf2::verify(algorithm, iterations, salt, password.as_bytes(), &key).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argon2_round_trip() {
        let hash = hash_now("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_now("correct horse", &hash));
        assert!(!verify_now("correct horsf", &hash));
    }

    #[test]
    fn cells_legacy_pbkdf2_verifies() {
        // The vector of Cells' own hasher test (legacy salt: the base64 text itself).
        let stored =
            "sha256:1000:Xx6Kf8nBRb/RnJJvZGMdgricbJFpZQlahrDOeWf/Ycw=:LlCexjaB6aWT3QuYoMz2YdbymCjPFo2V";
        assert!(verify_now("P@ssw0rd", stored));
        assert!(!verify_now("P@ssw0rD", stored));
    }

    #[test]
    fn malformed_hashes_never_match() {
        for stored in [
            "",
            "x",
            "$argon2id$garbage",
            "sha256:0:a:b",
            "md5:1:a:b",
            "sha256:1000:!!:??",
        ] {
            assert!(!verify_now("anything", stored), "{stored}");
        }
    }

    #[tokio::test]
    async fn verifications_are_counted_and_timed() {
        let hasher = Hasher::default();
        let hash = hasher.hash("correct horse").await.unwrap();
        assert_eq!(hasher.typical_verification(), FIRST_GUESS);
        for _ in 0..3 {
            assert!(!hasher.verify("wrong horse", &hash).await.unwrap());
        }
        assert!(hasher.verify("correct horse", &hash).await.unwrap());
        assert_eq!(hasher.verifications(), 4);
        let typical = hasher.typical_verification();
        assert!(
            typical > Duration::ZERO && typical < Duration::from_secs(10),
            "{typical:?}"
        );
    }

    #[test]
    fn policy_refuses_short_and_huge() {
        assert!(check_password_policy("short").is_err());
        assert!(check_password_policy(&"x".repeat(2000)).is_err());
        assert!(check_password_policy("long enough").is_ok());
    }
}
