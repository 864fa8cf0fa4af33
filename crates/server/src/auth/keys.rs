//! Token signing keys, and the random hex that secrets, token ids and temporary names are
//! made of. Holds nothing that needs the request state, so the state can hold the keys.

use std::sync::Arc;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::Serialize;

/// Signing keys for tokens. [`TokenKeys::load`], which keeps the secret in the database, is
/// in the auth store.
#[derive(Clone)]
pub struct TokenKeys {
    pub(super) encoding: Arc<EncodingKey>,
    pub(super) decoding: Arc<DecodingKey>,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKeys(…)")
    }
}

impl TokenKeys {
    /// Keys from a shared secret.
    pub fn from_secret(secret: &[u8]) -> TokenKeys {
        super::jwt::install();
        TokenKeys {
            encoding: Arc::new(EncodingKey::from_secret(secret)),
            decoding: Arc::new(DecodingKey::from_secret(secret)),
        }
    }

    /// Signs short-lived claims of another kind than session tokens (e.g. blob transfers).
    pub fn sign<T: Serialize>(&self, claims: &T) -> Result<String, jsonwebtoken::errors::Error> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
    }

    /// Checks a token made by `sign` (signature and `exp`) and decodes its claims.
    pub fn verify<T: serde::de::DeserializeOwned>(
        &self,
        token: &str,
    ) -> Result<T, jsonwebtoken::errors::Error> {
        let mut v = Validation::new(Algorithm::HS256);
        v.leeway = 0;
        v.validate_nbf = true;
        v.set_required_spec_claims(&["exp"]);
        jsonwebtoken::decode::<T>(token, &self.decoding, &v).map(|d| d.claims)
    }
}

/// Random bytes as lowercase hex.
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    hex::encode(buf)
}
