//! Issuing and verifying the `Authorization: Token <jwt>` tokens (HS256 only).

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::config::JwtSettings;

/// What a token says: whose it is and until when it holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    pub iat: u64,
    pub exp: u64,
}

/// Why a token was refused. Every variant is a 401; the distinction is for logs.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("token is invalid: {0}")]
    Invalid(String),
    #[error("token could not be signed: {0}")]
    Signing(String),
}

/// Signing and verification keys, built once.
#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKeys")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl JwtKeys {
    pub fn new(settings: &JwtSettings) -> Self {
        // Only HS256 is accepted: `alg: none` and every other algorithm fail validation.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub", "iat"]);
        Self {
            encoding: EncodingKey::from_secret(&settings.secret),
            decoding: DecodingKey::from_secret(&settings.secret),
            validation,
            ttl: settings.ttl,
        }
    }

    /// A token for `user_id`, valid for the configured lifetime from now.
    pub fn issue(&self, user_id: &str) -> Result<String, TokenError> {
        let now = unix_now();
        let claims = Claims {
            sub: user_id.to_owned(),
            iat: now,
            exp: now + self.ttl.as_secs(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| TokenError::Signing(e.to_string()))
    }

    /// The claims of a valid, unexpired HS256 token signed with our key.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| TokenError::Invalid(e.to_string()))
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(secret: &[u8], ttl: u64) -> JwtKeys {
        JwtKeys::new(&JwtSettings::new(secret.to_vec(), Duration::from_secs(ttl)).expect("valid"))
    }

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn issued_tokens_verify() {
        let keys = keys(SECRET, 60);
        let token = keys.issue("u1").expect("signed");
        assert_eq!(keys.verify(&token).expect("valid").sub, "u1");
    }

    #[test]
    fn another_secret_is_refused() {
        let token = keys(SECRET, 60).issue("u1").expect("signed");
        let other = keys(b"another-secret-another-secret-xx", 60);
        assert!(other.verify(&token).is_err());
    }

    #[test]
    fn tampered_tokens_are_refused() {
        let keys = keys(SECRET, 60);
        let token = keys.issue("u1").expect("signed");
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        // Swap the payload for one claiming another user, keep the old signature.
        let forged = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &Claims {
                sub: "admin".into(),
                iat: 0,
                exp: u64::MAX / 2,
            },
            &EncodingKey::from_secret(b"x"),
        )
        .expect("signed");
        parts[1] = forged.split('.').nth(1).unwrap_or_default().to_owned();
        assert!(keys.verify(&parts.join(".")).is_err());
    }

    #[test]
    fn alg_none_is_refused() {
        let keys = keys(SECRET, 60);
        let header = base64url(br#"{"alg":"none","typ":"JWT"}"#);
        let payload =
            base64url(format!(r#"{{"sub":"u1","iat":1,"exp":{}}}"#, unix_now() + 600).as_bytes());
        assert!(keys.verify(&format!("{header}.{payload}.")).is_err());
    }

    #[test]
    fn expired_tokens_are_refused() {
        let keys = keys(SECRET, 60);
        let expired = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &Claims {
                sub: "u1".into(),
                iat: 1,
                exp: unix_now() - 1,
            },
            &EncodingKey::from_secret(SECRET),
        )
        .expect("signed");
        assert!(keys.verify(&expired).is_err());
    }

    fn base64url(bytes: &[u8]) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }
}
