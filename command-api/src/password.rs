//! Argon2id password hashing, off the async threads.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use common::error::ApiError;

/// Hashes and checks passwords with Argon2id (the crate's default parameters: 19 MiB, t=2, p=1).
#[derive(Clone, Debug, Default)]
pub struct Passwords;

/// A PHC string of a password nobody has: verifying against it costs what a real check costs,
/// so an unknown email answers as slowly as a wrong password.
const DECOY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$4dQ0m6G/1mW0pC0o9M4c3s3VmR3o2l0b1Zz2m0oZ0Qk";

impl Passwords {
    pub async fn hash(&self, password: String) -> Result<String, ApiError> {
        tokio::task::spawn_blocking(move || {
            let salt = SaltString::generate(&mut OsRng);
            Argon2::default()
                .hash_password(password.as_bytes(), &salt)
                .map(|hash| hash.to_string())
                .map_err(|e| ApiError::internal(format!("hashing failed: {e}")))
        })
        .await
        .map_err(|e| ApiError::internal(format!("hashing task failed: {e}")))?
    }

    /// True when `password` matches `hash`; `None` checks against a decoy and is always false.
    pub async fn verify(&self, password: String, hash: Option<String>) -> Result<bool, ApiError> {
        tokio::task::spawn_blocking(move || {
            let known = hash.is_some();
            let stored = hash.unwrap_or_else(|| DECOY_HASH.to_owned());
            let parsed = PasswordHash::new(&stored)
                .map_err(|e| ApiError::internal(format!("stored hash unreadable: {e}")))?;
            let matches = Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok();
            Ok(known && matches)
        })
        .await
        .map_err(|e| ApiError::internal(format!("verify task failed: {e}")))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let passwords = Passwords;
        let hash = passwords.hash("correct horse".into()).await.expect("hash");
        assert!(hash.starts_with("$argon2id$"));
        assert!(passwords
            .verify("correct horse".into(), Some(hash.clone()))
            .await
            .expect("verify"));
        assert!(!passwords
            .verify("wrong".into(), Some(hash))
            .await
            .expect("verify"));
    }

    #[tokio::test]
    async fn the_decoy_never_matches() {
        assert!(!Passwords
            .verify("anything".into(), None)
            .await
            .expect("verify"));
    }
}
