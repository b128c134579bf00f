//! The signed scope assertion: on every allowed guest request, a compact JWT (EdDSA,
//! Ed25519) that tells the app who is asking and what for, which share, case, version,
//! profile and rule, bound to this one request's method and target and valid for
//! seconds. The key is guestgate's own (not the session key), kept in a PKCS#8 PEM file
//! created 0600 on first start; previous keys stay published for rotation. The public
//! keys are served as a JWKS, so an app verifies with any JOSE library.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use http::HeaderName;
use rand::RngExt as _;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// The longest lifetime an assertion may have: it proves one request, now.
pub const MAX_LIFETIME: Duration = Duration::from_secs(60);

/// `[assertion]` in guestgate.toml.
#[derive(Debug, Clone)]
pub struct AssertionConfig {
    /// The header that carries it (stripped from every incoming request either way).
    pub header: HeaderName,
    /// `aud`: the app. `None` turns assertions off.
    pub audience: Option<String>,
    /// `iss`.
    pub issuer: String,
    /// The signing key (PKCS#8 PEM, Ed25519), created 0600 if absent.
    pub key_file: PathBuf,
    /// Older keys, still published in the JWKS while apps hold assertions they signed.
    pub previous_key_files: Vec<PathBuf>,
    /// How long an assertion is valid (at most [`MAX_LIFETIME`]).
    pub lifetime: Duration,
    /// Also serve the JWKS to guests' origin, under guestgate's prefix.
    pub jwks_under_prefix: bool,
}

pub use crate::key_file::KeyFileError as KeyError;

const KEY: &str = "assertion key";

/// The PKCS#8 v1 prefix of an Ed25519 private key (RFC 8410): the 32-byte seed follows.
/// It is what `openssl genpkey -algorithm ed25519` writes.
const PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];
const PEM_BEGIN: &str = "-----BEGIN PRIVATE KEY-----";
const PEM_END: &str = "-----END PRIVATE KEY-----";

/// What one assertion is about: the request and the share that allowed it. Serialised
/// as claims (names documented in the README).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Asserted<'a> {
    /// The request id (the audit event's `request_id`).
    #[serde(rename = "jti")]
    pub request_id: &'a str,
    /// The guest's verified email.
    #[serde(rename = "sub")]
    pub email: &'a str,
    /// Share id.
    pub share: &'a str,
    /// Case.
    pub case: &'a str,
    /// Version.
    pub version: &'a str,
    /// Profile.
    pub profile: &'a str,
    /// The rule that allowed it.
    pub rule: &'a str,
    /// The request's method.
    pub method: &'a str,
    /// The target the app receives (canonical, after any rewrite).
    pub target: &'a str,
}

/// The claims of one assertion.
#[derive(Debug, Serialize)]
struct ScopeClaims<'a> {
    iss: &'a str,
    aud: &'a str,
    iat: u64,
    /// At most 60 s after `iat`.
    exp: u64,
    #[serde(flatten)]
    about: &'a Asserted<'a>,
}

/// One published key.
struct Published {
    kid: String,
    public: VerifyingKey,
}

/// The signing key, its precomputed JWT header, and the JWKS of every published key.
pub struct AssertionKeys {
    signing: SigningKey,
    /// `base64url(header) + "."`, the same for every assertion.
    header_prefix: String,
    jwks: String,
    issuer: String,
    audience: String,
    lifetime: u64,
}

impl std::fmt::Debug for AssertionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AssertionKeys(..)")
    }
}

impl AssertionKeys {
    /// Loads (creating the current one if absent) the configured keys; `None` when
    /// assertions are off.
    pub fn from_config(c: &AssertionConfig) -> Result<Option<Self>, KeyError> {
        let Some(audience) = &c.audience else {
            return Ok(None);
        };
        let current = load_or_create(&c.key_file)?;
        let previous = c
            .previous_key_files
            .iter()
            .map(|p| load(p))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(Self::new(
            current, &previous, &c.issuer, audience, c.lifetime,
        )))
    }

    /// Keys from seeds (tests, benches).
    pub fn new(
        current: SigningKey,
        previous: &[SigningKey],
        issuer: &str,
        audience: &str,
        lifetime: Duration,
    ) -> Self {
        let published: Vec<Published> = std::iter::once(&current)
            .chain(previous)
            .map(|k| Published {
                kid: thumbprint(&k.verifying_key()),
                public: k.verifying_key(),
            })
            .collect();
        let header = serde_json::json!({"alg": "EdDSA", "typ": "JWT", "kid": published[0].kid});
        let header_prefix = format!("{}.", URL_SAFE_NO_PAD.encode(header.to_string()));
        let keys: Vec<_> = published
            .iter()
            .map(|p| {
                serde_json::json!({
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "x": URL_SAFE_NO_PAD.encode(p.public.as_bytes()),
                    "kid": p.kid,
                    "use": "sig",
                    "alg": "EdDSA",
                })
            })
            .collect();
        Self {
            signing: current,
            header_prefix,
            jwks: serde_json::json!({ "keys": keys }).to_string(),
            issuer: issuer.to_string(),
            audience: audience.to_string(),
            lifetime: lifetime.min(MAX_LIFETIME).as_secs().max(1),
        }
    }

    /// The JWKS document (`{"keys": [...]}`), current key first.
    pub fn jwks(&self) -> &str {
        &self.jwks
    }

    /// Signs the assertion for one allowed request.
    pub fn sign(&self, now: u64, a: &Asserted<'_>) -> String {
        let claims = ScopeClaims {
            iss: &self.issuer,
            aud: &self.audience,
            iat: now,
            exp: now + self.lifetime,
            about: a,
        };
        // Serialising plain strings and numbers cannot fail.
        let payload = serde_json::to_vec(&claims).unwrap_or_default();
        let mut token = String::with_capacity(self.header_prefix.len() + payload.len() * 2 + 90);
        token.push_str(&self.header_prefix);
        URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
        let signature = self.signing.sign(token.as_bytes());
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature.to_bytes(), &mut token);
        token
    }
}

/// RFC 7638 thumbprint of an Ed25519 public key: the key id apps look up.
fn thumbprint(key: &VerifyingKey) -> String {
    let canonical = format!(
        r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
        URL_SAFE_NO_PAD.encode(key.as_bytes())
    );
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// Reads a PKCS#8 PEM Ed25519 key, refusing one that others can read.
pub fn load(path: &Path) -> Result<SigningKey, KeyError> {
    let text = crate::key_file::read_private(KEY, path)?;
    let body: String = text
        .lines()
        .map(str::trim)
        .skip_while(|l| *l != PEM_BEGIN)
        .skip(1)
        .take_while(|l| *l != PEM_END)
        .collect();
    let der = STANDARD
        .decode(body)
        .map_err(|_| KeyError::invalid(KEY, path, "not a PEM private key"))?;
    match der.strip_prefix(&PKCS8_PREFIX[..]) {
        Some(seed) if seed.len() == 32 => {
            let mut s = [0u8; 32];
            s.copy_from_slice(seed);
            Ok(SigningKey::from_bytes(&s))
        }
        _ => Err(KeyError::invalid(
            KEY,
            path,
            "not an Ed25519 PKCS#8 key (`openssl genpkey -algorithm ed25519` makes one)",
        )),
    }
}

/// Loads the key, or creates a new one with mode 0600 if the file is absent.
pub fn load_or_create(path: &Path) -> Result<SigningKey, KeyError> {
    crate::key_file::create_private(KEY, path, || {
        let mut seed = [0u8; 32];
        rand::rng().fill(&mut seed);
        pem(&seed)
    })?;
    load(path)
}

/// The PEM text of a seed.
pub fn pem(seed: &[u8; 32]) -> String {
    let mut der = PKCS8_PREFIX.to_vec();
    der.extend_from_slice(seed);
    format!("{PEM_BEGIN}\n{}\n{PEM_END}\n", STANDARD.encode(der))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn keys(seed: u8, lifetime: u64) -> AssertionKeys {
        AssertionKeys::new(
            SigningKey::from_bytes(&[seed; 32]),
            &[SigningKey::from_bytes(&[9; 32])],
            "guestgate",
            "case-app",
            Duration::from_secs(lifetime),
        )
    }

    /// The token verifies with the public key from the JWKS, with another crate's
    /// verifier (jsonwebtoken), and carries exactly the claims filled in.
    #[test]
    fn signs_a_jwt_the_jwks_verifies() {
        let k = keys(1, 30);
        let token = k.sign(
            1_000,
            &Asserted {
                request_id: "req1",
                email: "g@x.test",
                method: "GET",
                target: "/a?b=1",
                ..Asserted::default()
            },
        );
        let jwks: serde_json::Value = serde_json::from_str(k.jwks()).unwrap();
        assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwks["keys"][0].clone()).unwrap();
        let key = jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap();
        let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
        v.set_audience(&["case-app"]);
        v.validate_exp = false;
        let data = jsonwebtoken::decode::<serde_json::Value>(&token, &key, &v).unwrap();
        assert_eq!(data.header.kid.as_deref(), jwks["keys"][0]["kid"].as_str());
        assert_eq!(data.claims["exp"], 1_030);
        assert_eq!(data.claims["target"], "/a?b=1");
        // the previous key's JWK does not verify the current key's token
        let old: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwks["keys"][1].clone()).unwrap();
        let old = jsonwebtoken::DecodingKey::from_jwk(&old).unwrap();
        assert!(jsonwebtoken::decode::<serde_json::Value>(&token, &old, &v).is_err());
        // lifetimes are capped at a minute
        let long = keys(1, 3600).sign(0, &Asserted::default());
        let data = jsonwebtoken::decode::<serde_json::Value>(&long, &key, &v).unwrap();
        assert_eq!(data.claims["exp"], 60);
    }

    #[test]
    fn key_files_round_trip_and_are_private() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub/assertion.key");
        let a = load_or_create(&p).unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(load_or_create(&p).unwrap().to_bytes(), a.to_bytes());
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(load(&p).unwrap_err().to_string().contains("chmod 600"));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(
            &p,
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        assert!(load(&p).unwrap_err().to_string().contains("Ed25519"));
    }
}
