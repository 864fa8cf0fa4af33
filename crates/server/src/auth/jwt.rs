//! HS256, the one algorithm session and transfer tokens are signed with, given to
//! `jsonwebtoken` through its provider hook. Built on the `hmac` and `sha2` crates the server
//! already uses, so none of the crate's other backends (and no RSA code, RUSTSEC-2023-0071) is
//! compiled in. Any other algorithm is refused as invalid rather than signed or verified.

use hmac::{Hmac, Mac};
use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{ErrorKind, Result};
use jsonwebtoken::signature::{self, Signer, Verifier};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, EncodingKey};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The provider: HS256 signing and verification, nothing else.
static HS256_ONLY: CryptoProvider = CryptoProvider {
    signer_factory: signer,
    verifier_factory: verifier,
    key_utils: KeyUtils::new_unimplemented(),
};

/// Makes HS256 the process's provider. Idempotent; called wherever keys are made, so every
/// path that signs or verifies (server, tests, benchmarks) finds it installed.
pub(crate) fn install() {
    // An error means a provider is installed already: this one, by an earlier call.
    let _ = HS256_ONLY.install_default();
}

/// The keyed MAC for a secret, or why the key or algorithm does not fit.
fn hs256(alg: &Algorithm, family: AlgorithmFamily, secret: Result<&[u8]>) -> Result<HmacSha256> {
    if *alg != Algorithm::HS256 {
        return Err(ErrorKind::InvalidAlgorithm.into());
    }
    if family != AlgorithmFamily::Hmac {
        return Err(ErrorKind::InvalidKeyFormat.into());
    }
    HmacSha256::new_from_slice(secret?).map_err(|_| ErrorKind::InvalidKeyFormat.into())
}

fn signer(alg: &Algorithm, key: &EncodingKey) -> Result<Box<dyn JwtSigner>> {
    Ok(Box::new(Hs256(hs256(
        alg,
        key.family(),
        Ok(key.as_bytes()),
    )?)))
}

fn verifier(alg: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>> {
    Ok(Box::new(Hs256(hs256(
        alg,
        key.family(),
        key.try_get_as_bytes(),
    )?)))
}

/// A MAC keyed once; each use works on a copy.
struct Hs256(HmacSha256);

impl Signer<Vec<u8>> for Hs256 {
    fn try_sign(&self, msg: &[u8]) -> std::result::Result<Vec<u8>, signature::Error> {
        let mut mac = self.0.clone();
        mac.update(msg);
        Ok(mac.finalize().into_bytes().to_vec())
    }
}

impl Verifier<Vec<u8>> for Hs256 {
    fn verify(&self, msg: &[u8], tag: &Vec<u8>) -> std::result::Result<(), signature::Error> {
        let mut mac = self.0.clone();
        mac.update(msg);
        // Constant-time comparison.
        mac.verify_slice(tag).map_err(|_| signature::Error::new())
    }
}

impl JwtSigner for Hs256 {
    fn algorithm(&self) -> Algorithm {
        Algorithm::HS256
    }
}

impl JwtVerifier for Hs256 {
    fn algorithm(&self) -> Algorithm {
        Algorithm::HS256
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{Header, Validation};
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct Claims {
        sub: String,
        exp: i64,
    }

    fn claims() -> Claims {
        Claims {
            sub: "ada".into(),
            exp: 4_102_444_800,
        }
    }

    #[test]
    fn signs_the_rfc_7515_example_exactly() {
        // RFC 7515 appendix A.1: the JWS signing input and key, and the expected MAC.
        install();
        use base64::Engine;
        let key_b64 = "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";
        let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(key_b64)
            .unwrap();
        let key = EncodingKey::from_secret(&secret);
        let input = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ";
        let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &key, Algorithm::HS256).unwrap();
        assert_eq!(sig, "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
    }

    #[test]
    fn round_trips_and_refuses_a_wrong_key_or_algorithm() {
        install();
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims(),
            &EncodingKey::from_secret(b"secret"),
        )
        .unwrap();
        let good = DecodingKey::from_secret(b"secret");
        let back =
            jsonwebtoken::decode::<Claims>(&token, &good, &Validation::new(Algorithm::HS256));
        assert_eq!(back.unwrap().claims, claims());

        let wrong = DecodingKey::from_secret(b"other");
        let err =
            jsonwebtoken::decode::<Claims>(&token, &wrong, &Validation::new(Algorithm::HS256))
                .unwrap_err();
        assert_eq!(err.kind(), &ErrorKind::InvalidSignature);

        let hs512 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &claims(),
            &EncodingKey::from_secret(b"secret"),
        )
        .unwrap_err();
        assert_eq!(hs512.kind(), &ErrorKind::InvalidAlgorithm);
    }
}
