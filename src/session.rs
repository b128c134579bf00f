//! Guest sessions: the signed JWT in guestgate's cookie (claims, mint, verify with a
//! pinned algorithm and key), the signing-key files, and finding / removing the cookie
//! in `Cookie` headers.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::stamp::{random_hex, unix_now};

/// Session cookie and token settings.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Cookie name without prefix (`__Host-` is added when the cookie is Secure).
    pub cookie_name: String,
    /// Signing key file; created (0600) on first start if absent.
    pub key_file: PathBuf,
    /// Older keys still accepted for verification during a rotation.
    pub previous_key_files: Vec<PathBuf>,
    /// `iss` claim.
    pub issuer: String,
    /// `aud` claim.
    pub audience: String,
    /// Whether the cookie is `Secure` (and `__Host-` prefixed).
    pub secure_cookie: bool,
    /// Absolute session lifetime cap.
    pub max_lifetime: Duration,
    /// Verified tokens remembered (0: verify every time).
    pub verified_cache: usize,
}

impl SessionConfig {
    /// The cookie name as sent by browsers.
    pub fn wire_cookie_name(&self) -> String {
        self.wire(&self.cookie_name)
    }

    /// The form cookie (a browser id for anti-forgery tokens): its name without and with
    /// the prefix browsers send.
    pub fn form_cookie_names(&self) -> (String, String) {
        let base = format!("{}{FORM_COOKIE_SUFFIX}", self.cookie_name);
        let wire = self.wire(&base);
        (base, wire)
    }

    fn wire(&self, name: &str) -> String {
        if self.secure_cookie {
            format!("__Host-{name}")
        } else {
            name.to_string()
        }
    }
}

/// The form cookie's name is the session cookie's with this suffix.
pub const FORM_COOKIE_SUFFIX: &str = "_form";

/// The cookie's `SameSite` attribute (`guest.same_site`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum SameSite {
    /// Sent on top-level navigations from other sites (links in emails work).
    #[serde(rename = "lax", alias = "Lax")]
    Lax,
    /// Never sent from other sites.
    #[serde(rename = "strict", alias = "Strict")]
    Strict,
}

impl SameSite {
    /// The attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Lax => "Lax",
            Self::Strict => "Strict",
        }
    }
}

/// The only algorithm guestgate signs with or accepts.
const ALG: Algorithm = Algorithm::HS256;
/// The `typ` header of a guestgate session token; any other type is refused, so a JWT
/// minted for another purpose with the same key can never pass as a session.
pub const TOKEN_TYPE: &str = "guestgate-session+jwt";
/// Clock skew tolerated on `exp` / `nbf`, in seconds.
const LEEWAY_SECS: u64 = 5;
/// More shares than this in one browser is not a guest, it is an attack on header sizes.
pub const MAX_SHARES: usize = 32;

/// One share this browser has verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareGrant {
    /// Share id.
    pub id: String,
    /// Case id the share is bound to.
    pub case: String,
    /// Version id the share is bound to.
    pub version: String,
    /// Policy profile name.
    pub profile: String,
    /// When the share expires (unix seconds).
    pub exp: u64,
}

/// Session token claims (DESIGN §1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// The verified guest email (normalised).
    pub sub: String,
    /// Issued at.
    pub iat: u64,
    /// Not before.
    pub nbf: u64,
    /// Absolute expiry: never past the earliest share expiry or the session maximum.
    pub exp: u64,
    /// Token id.
    pub jti: String,
    /// The shares this browser holds.
    pub shares: Vec<ShareGrant>,
}

/// Why a token is not a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// Not a JWT, or a header/claims guestgate does not accept (`alg`, `typ`, `crit`).
    #[error("malformed session token")]
    Malformed,
    /// `kid` missing or not one of the configured keys.
    #[error("session token signed by an unknown key")]
    UnknownKey,
    /// Signature, issuer, audience or required claims wrong.
    #[error("invalid session token")]
    Invalid,
    /// Past `exp` (or before `nbf`).
    #[error("expired session token")]
    Expired,
    /// No shares, or too many.
    #[error("session token holds no usable share")]
    NoShares,
}

/// Signing and verification keys.
pub struct SessionKeys {
    kid: String,
    encoding: EncodingKey,
    decoding: HashMap<String, DecodingKey>,
    validation: Validation,
    issuer: String,
    audience: String,
    verified: VerifiedCache,
}

/// Tokens whose signature, header and claims were verified, keyed by the token's exact
/// bytes, so a browser's next request skips the HMAC and the JSON parse. Only what the
/// token itself proves is remembered: `exp` and `nbf` are checked again on every use,
/// and the shares' state (revoked, expired) is never cached, it is read from the index
/// on every request. Bounded: when full, an arbitrary entry makes room. It lives with
/// the keys, so new keys start with an empty cache. Read-locked on a hit, so request
/// threads do not wait on each other; write-locked only to add a token.
struct VerifiedCache {
    cap: usize,
    map: std::sync::RwLock<HashMap<Box<str>, Arc<Claims>, TailState>>,
}

/// How many bytes at a token's end the cache hashes: inside its signature (43 bytes of
/// base64 for HS256).
const HASHED_TAIL: usize = 32;

/// The cache's hasher: keyed SipHash, as the standard map's, but over the token's last
/// [`HASHED_TAIL`] bytes only. Hashing all ~500 bytes of every session token cost more
/// than the rest of a cache hit. The key stays random per process, only verified tokens
/// are ever inserted (nobody can fill a bucket with tokens of their choosing), and a
/// lookup still compares every byte of the token.
#[derive(Default)]
struct TailState(std::collections::hash_map::RandomState);

impl std::hash::BuildHasher for TailState {
    type Hasher = TailHasher;
    fn build_hasher(&self) -> TailHasher {
        TailHasher(self.0.build_hasher())
    }
}

struct TailHasher(std::collections::hash_map::DefaultHasher);

impl std::hash::Hasher for TailHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0
            .write(&bytes[bytes.len().saturating_sub(HASHED_TAIL)..]);
    }
    fn finish(&self) -> u64 {
        self.0.finish()
    }
}

impl VerifiedCache {
    fn get(&self, token: &str, now: u64) -> Option<Arc<Claims>> {
        if self.cap == 0 {
            return None;
        }
        let map = self.map.read().ok()?;
        let claims = map.get(token)?;
        // The same window jsonwebtoken applies, on every use.
        (claims.exp + LEEWAY_SECS > now && claims.nbf <= now + LEEWAY_SECS)
            .then(|| Arc::clone(claims))
    }

    fn put(&self, token: &str, claims: &Arc<Claims>) {
        if self.cap == 0 {
            return;
        }
        let Ok(mut map) = self.map.write() else {
            return;
        };
        if map.len() >= self.cap {
            if let Some(old) = map.keys().next().cloned() {
                map.remove(&old);
            }
        }
        map.insert(token.into(), Arc::clone(claims));
    }

    fn len(&self) -> usize {
        self.map.read().map(|m| m.len()).unwrap_or(0)
    }
}

impl std::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("SessionKeys")
            .field("kid", &self.kid)
            .field("verify_kids", &self.decoding.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Key id: a short digest of the key, so rotating keys is a matter of adding files.
fn kid_of(secret: &[u8]) -> String {
    hex::encode(&Sha256::digest(secret)[..8])
}

impl SessionKeys {
    /// Builds keys from raw secrets: `current` signs, all verify.
    pub fn new(current: &[u8], previous: &[Vec<u8>], issuer: &str, audience: &str) -> Self {
        let kid = kid_of(current);
        let mut decoding = HashMap::new();
        decoding.insert(kid.clone(), DecodingKey::from_secret(current));
        for p in previous {
            decoding.insert(kid_of(p), DecodingKey::from_secret(p));
        }
        let mut validation = Validation::new(ALG);
        validation.leeway = LEEWAY_SECS;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "aud", "sub"]);
        Self {
            kid,
            encoding: EncodingKey::from_secret(current),
            decoding,
            validation,
            issuer: issuer.to_string(),
            audience: audience.to_string(),
            verified: VerifiedCache {
                cap: 0,
                map: std::sync::RwLock::new(HashMap::default()),
            },
        }
    }

    /// Remembers up to `entries` verified tokens (see [`VerifiedCache`]).
    pub fn with_verified_cache(mut self, entries: usize) -> Self {
        self.verified.cap = entries;
        self
    }

    /// Verified tokens remembered now.
    pub fn verified_cached(&self) -> usize {
        self.verified.len()
    }

    /// Loads (creating the current one if absent) the key files named in config.
    pub fn from_config(c: &SessionConfig) -> Result<Self, KeyFileError> {
        let current = load_or_create_key(&c.key_file)?;
        let previous = c
            .previous_key_files
            .iter()
            .map(|p| load_key(p))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::new(&current, &previous, &c.issuer, &c.audience)
            .with_verified_cache(c.verified_cache))
    }

    /// Signs claims for `email` holding `shares`, valid for `ttl_secs` but never past
    /// the earliest share expiry.
    pub fn mint(
        &self,
        email: &str,
        shares: Vec<ShareGrant>,
        ttl_secs: u64,
    ) -> Result<String, SessionError> {
        let now = unix_now();
        let earliest = shares.iter().map(|s| s.exp).min().unwrap_or(now);
        let claims = Claims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: email.to_string(),
            iat: now,
            nbf: now,
            exp: (now + ttl_secs).min(earliest),
            jti: random_hex(16),
            shares,
        };
        self.sign(&claims)
    }

    /// Signs arbitrary claims (tests use this to build edge cases).
    pub fn sign(&self, claims: &Claims) -> Result<String, SessionError> {
        let mut header = Header::new(ALG);
        header.typ = Some(TOKEN_TYPE.into());
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).map_err(|_| SessionError::Malformed)
    }

    /// Verifies a token: pinned algorithm, `typ`, `kid` among configured keys (the
    /// `jku`/`x5u`/`jwk` headers are never followed), signature, `iss`, `aud`, `exp`, `nbf`.
    /// The claims are shared with the cache, not copied: a guest's requests all read
    /// the same verified claims.
    pub fn verify(&self, token: &str) -> Result<Arc<Claims>, SessionError> {
        self.verify_at(token, unix_now())
    }

    /// [`SessionKeys::verify`] with the caller's clock (unix seconds) for a cached
    /// token's `exp` and `nbf`: the decision reads the clock once for all its checks.
    pub fn verify_at(&self, token: &str, now: u64) -> Result<Arc<Claims>, SessionError> {
        if let Some(claims) = self.verified.get(token, now) {
            return Ok(claims);
        }
        let claims = Arc::new(self.verify_uncached(token)?);
        self.verified.put(token, &claims);
        Ok(claims)
    }

    fn verify_uncached(&self, token: &str) -> Result<Claims, SessionError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| SessionError::Malformed)?;
        if header.alg != ALG || header.typ.as_deref() != Some(TOKEN_TYPE) || header.crit.is_some() {
            return Err(SessionError::Malformed);
        }
        let key = header
            .kid
            .as_deref()
            .and_then(|k| self.decoding.get(k))
            .ok_or(SessionError::UnknownKey)?;
        let data = jsonwebtoken::decode::<Claims>(token, key, &self.validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            match e.kind() {
                ErrorKind::ExpiredSignature | ErrorKind::ImmatureSignature => SessionError::Expired,
                _ => SessionError::Invalid,
            }
        })?;
        let claims = data.claims;
        if claims.shares.is_empty() || claims.shares.len() > MAX_SHARES {
            return Err(SessionError::NoShares);
        }
        Ok(claims)
    }
}

pub use crate::key_file::KeyFileError;

const KEY: &str = "session key";

/// Reads a key file (hex, at least 32 bytes), refusing one that others can read.
pub fn load_key(path: &Path) -> Result<Vec<u8>, KeyFileError> {
    crate::key_file::load_hex(KEY, path)
}

/// Loads the key, or creates a new random one with mode 0600 if the file is absent.
pub fn load_or_create_key(path: &Path) -> Result<Vec<u8>, KeyFileError> {
    crate::key_file::load_or_create_hex(KEY, path)
}

/// What the `Cookie` headers say about guestgate's cookie.
#[derive(Debug, PartialEq, Eq)]
pub enum CookieLookup<'a> {
    /// Not present.
    Absent,
    /// Exactly one value.
    One(&'a str),
    /// More than one: cookie tossing or confusion; a guest request that has no session.
    Ambiguous,
    /// Exactly one, under another spelling than the one guestgate sets (`GuestGate_Session`,
    /// no `__Host-` prefix over TLS): not a session (a sibling site could have set it), but
    /// still a guest request.
    Misnamed,
}

/// Whether a cookie name, as sent, is guestgate's cookie `base` in any spelling a client
/// or an attacker might use: any case, with or without the `__Host-` / `__Secure-`
/// prefix, with surrounding whitespace. Such a cookie marks a guest request, and is
/// never passed on to the app.
pub fn is_session_cookie(name: &str, base: &str) -> bool {
    unprefixed(name).eq_ignore_ascii_case(base)
}

/// A cookie name without surrounding whitespace and without a `__Host-` / `__Secure-`
/// prefix in any case.
fn unprefixed(name: &str) -> &str {
    let name = name.trim_matches([' ', '\t']);
    ["__host-", "__secure-"]
        .iter()
        .find_map(|p| {
            name.get(..p.len())
                .filter(|head| head.eq_ignore_ascii_case(p))
                .and_then(|_| name.get(p.len()..))
        })
        .unwrap_or(name)
}

/// Whether a cookie name is one of guestgate's: the session cookie `base` or its form
/// cookie, in any spelling.
pub fn is_guestgate_cookie(name: &str, base: &str) -> bool {
    let name = unprefixed(name);
    name.eq_ignore_ascii_case(base)
        || name.len() == base.len() + FORM_COOKIE_SUFFIX.len()
            && name
                .get(..base.len())
                .is_some_and(|h| h.eq_ignore_ascii_case(base))
            && name
                .get(base.len()..)
                .is_some_and(|t| t.eq_ignore_ascii_case(FORM_COOKIE_SUFFIX))
}

/// Finds guestgate's cookie (`base`, in any spelling, see [`is_session_cookie`]) across
/// all `Cookie` header values; only the exact name guestgate sets (`wire`) holds a session.
/// Pairs are separated by `;`; a copy hidden behind a `,` (`a=1, guestgate_session=…`,
/// which RFC 2109-style parsers such as Python's read as two cookies) is a second,
/// misnamed copy, never no copy.
pub fn find_cookie<'a>(
    values: impl Iterator<Item = &'a [u8]>,
    base: &str,
    wire: &str,
) -> CookieLookup<'a> {
    let mut found = CookieLookup::Absent;
    for v in values {
        let Ok(v) = std::str::from_utf8(v) else {
            // Not UTF-8: cannot be read, so it cannot be shown to hold no session cookie.
            if contains_ignore_case(v, base.as_bytes()) {
                return CookieLookup::Ambiguous;
            }
            continue;
        };
        // `memchr` splits: the session pair's value is hundreds of bytes.
        for pair in crate::split::split_str(v, b';') {
            let Some((k, val)) = pair.split_once('=') else {
                continue;
            };
            let hidden = crate::split::split_str(val, b',').skip(1).any(|p| {
                p.split_once('=')
                    .is_some_and(|(k, _)| is_session_cookie(k, base))
            });
            if hidden {
                return match found {
                    CookieLookup::Absent if !is_session_cookie(k, base) => CookieLookup::Misnamed,
                    _ => CookieLookup::Ambiguous,
                };
            }
            if is_session_cookie(k, base) {
                found = match found {
                    CookieLookup::Absent if k.trim_start_matches(' ') == wire => {
                        CookieLookup::One(val.trim_matches([' ', '\t']))
                    }
                    CookieLookup::Absent => CookieLookup::Misnamed,
                    _ => return CookieLookup::Ambiguous,
                };
            }
        }
    }
    found
}

fn contains_ignore_case(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty()
        && hay
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
}

/// A `Cookie` header value without guestgate's cookies (the session cookie `base` and
/// its form cookie, any spelling), the other bytes exactly as sent: `Unchanged` when it
/// holds neither, `Removed(None)` when nothing is left.
pub fn strip_cookie(value: &[u8], base: &str) -> Stripped {
    let is_ours = |pair: &[u8]| {
        let name = pair.split(|&b| b == b'=').next().unwrap_or(pair);
        std::str::from_utf8(name).is_ok_and(|n| is_guestgate_cookie(n, base))
    };
    let pairs = || crate::split::split(value, b';');
    // Where the first of ours is: the pairs before it are not ours, and a guest's
    // `Cookie` is often guestgate's pair alone, judged here once.
    let Some(first) = pairs().position(is_ours) else {
        return Stripped::Unchanged;
    };
    // The remaining pairs, each exactly as sent (their own leading space included).
    let mut out: Vec<u8> = Vec::new();
    let mut kept = 0usize;
    let blank = |p: &[u8]| p.iter().all(|&b| b == b' ' || b == b'\t');
    let before = pairs().take(first).filter(|p| !blank(p));
    let after = pairs().skip(first + 1).filter(|p| !is_ours(p) && !blank(p));
    for p in before.chain(after) {
        if kept > 0 {
            out.push(b';');
        }
        out.extend_from_slice(p);
        kept += 1;
    }
    if kept == 0 {
        return Stripped::Removed(None);
    }
    let lead = out.iter().take_while(|&&b| b == b' ').count();
    out.drain(..lead);
    Stripped::Removed(Some(out))
}

/// What [`strip_cookie`] made of a `Cookie` header value.
#[derive(Debug, PartialEq, Eq)]
pub enum Stripped {
    /// It held no guestgate cookie: forward it as it was.
    Unchanged,
    /// Forward this instead (`None`: drop the header).
    Removed(Option<Vec<u8>>),
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn keys() -> SessionKeys {
        SessionKeys::new(&[7u8; 32], &[], "guestgate", "guestgate")
    }

    fn grant(case: &str) -> ShareGrant {
        ShareGrant {
            id: format!("s-{case}"),
            case: case.into(),
            version: "1".into(),
            profile: "view-only".into(),
            exp: unix_now() + 3600,
        }
    }

    #[test]
    fn round_trip() {
        let k = keys();
        let t = k.mint("g@example.com", vec![grant("42")], 600).unwrap();
        let c = k.verify(&t).unwrap();
        assert_eq!(c.sub, "g@example.com");
        assert_eq!(c.shares, vec![grant("42")]);
        assert!(c.exp <= unix_now() + 600);
    }

    #[test]
    fn the_verified_cache_remembers_only_what_the_token_proves_and_stays_bounded() {
        let k = keys().with_verified_cache(2);
        let t = k.mint("g@example.com", vec![grant("42")], 600).unwrap();
        assert_eq!(k.verify(&t).unwrap().sub, "g@example.com");
        assert_eq!(k.verified_cached(), 1);
        assert_eq!(k.verify(&t).unwrap().shares, vec![grant("42")]);
        // A token that differs in one byte is not the cached one: verified, and refused.
        let mut forged = t.clone().into_bytes();
        let last = forged.len() - 2;
        forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
        assert!(k.verify(std::str::from_utf8(&forged).unwrap()).is_err());
        // The same signature over other claims: the cache hashes only the tail, so this
        // lands in the cached token's bucket; it must still be told apart and refused.
        let mut swapped = t.clone().into_bytes();
        let mid = t.find('.').unwrap() + 5;
        swapped[mid] = if swapped[mid] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            swapped[swapped.len() - HASHED_TAIL..],
            t.as_bytes()[t.len() - HASHED_TAIL..]
        );
        assert!(k.verify(std::str::from_utf8(&swapped).unwrap()).is_err());
        // Expiry is checked on every use, cached or not.
        let now = unix_now();
        let mut c = (*k.verify(&t).unwrap()).clone();
        c.exp = now - 60;
        c.iat = now - 120;
        c.nbf = now - 120;
        let expired = k.sign(&c).unwrap();
        k.verified.put(&expired, &Arc::new(c.clone()));
        assert_eq!(k.verify(&expired), Err(SessionError::Expired));
        // Bounded.
        for case in ["1", "2", "3", "4"] {
            let t = k.mint("g@example.com", vec![grant(case)], 600).unwrap();
            k.verify(&t).unwrap();
        }
        assert_eq!(k.verified_cached(), 2);
    }

    #[test]
    fn session_never_outlives_a_share() {
        let k = keys();
        let mut g = grant("42");
        g.exp = unix_now() + 60;
        let c = k.verify(&k.mint("g@x", vec![g], 3600).unwrap()).unwrap();
        assert!(c.exp <= unix_now() + 60);
    }

    #[test]
    fn other_key_alg_none_typ_and_tampering_are_refused() {
        let k = keys();
        let t = k.mint("g@x", vec![grant("42")], 600).unwrap();
        // Another key with the same kid can't exist; a different key → unknown kid.
        let other = SessionKeys::new(&[8u8; 32], &[], "guestgate", "guestgate");
        assert_eq!(other.verify(&t), Err(SessionError::UnknownKey));
        // alg=none with the same claims.
        let parts: Vec<&str> = t.split('.').collect();
        let none_header = base64url(br#"{"alg":"none","typ":"guestgate-session+jwt"}"#);
        assert_eq!(
            k.verify(&format!("{none_header}.{}.", parts[1])),
            Err(SessionError::Malformed)
        );
        // Payload swapped.
        let other_claims = k.mint("h@x", vec![grant("43")], 600).unwrap();
        let p2: Vec<&str> = other_claims.split('.').collect();
        assert_eq!(
            k.verify(&format!("{}.{}.{}", parts[0], p2[1], parts[2])),
            Err(SessionError::Invalid)
        );
        // Wrong typ.
        let mut h = Header::new(ALG);
        h.kid = Some(kid_of(&[7u8; 32]));
        let c = k.verify(&t).unwrap();
        let plain = jsonwebtoken::encode(&h, &*c, &EncodingKey::from_secret(&[7u8; 32])).unwrap();
        assert_eq!(k.verify(&plain), Err(SessionError::Malformed));
        assert_eq!(k.verify("garbage"), Err(SessionError::Malformed));
    }

    #[test]
    fn expired_wrong_audience_and_empty_are_refused() {
        let k = keys();
        let mut c = (*k
            .verify(&k.mint("g@x", vec![grant("1")], 600).unwrap())
            .unwrap())
        .clone();
        c.exp = unix_now() - 60;
        assert_eq!(k.verify(&k.sign(&c).unwrap()), Err(SessionError::Expired));
        c.exp = unix_now() + 60;
        c.aud = "other".into();
        assert_eq!(k.verify(&k.sign(&c).unwrap()), Err(SessionError::Invalid));
        c.aud = "guestgate".into();
        c.shares.clear();
        assert_eq!(k.verify(&k.sign(&c).unwrap()), Err(SessionError::NoShares));
    }

    #[test]
    fn previous_keys_still_verify() {
        let old = keys();
        let t = old.mint("g@x", vec![grant("1")], 600).unwrap();
        let rotated = SessionKeys::new(&[9u8; 32], &[vec![7u8; 32]], "guestgate", "guestgate");
        assert!(rotated.verify(&t).is_ok());
    }

    #[test]
    fn cookies_are_found_once_and_stripped() {
        let h = [b"a=1; gg=tok; b=2".as_slice()];
        assert_eq!(
            find_cookie(h.iter().copied(), "gg", "gg"),
            CookieLookup::One("tok")
        );
        let h = [b"gg=1".as_slice(), b"gg=2".as_slice()];
        assert_eq!(
            find_cookie(h.iter().copied(), "gg", "gg"),
            CookieLookup::Ambiguous
        );
        let h = [b"xgg=1; gg2=2".as_slice()];
        assert_eq!(
            find_cookie(h.iter().copied(), "gg", "gg"),
            CookieLookup::Absent
        );
        assert_eq!(
            strip_cookie(b"a=1; gg=tok; b=2", "gg"),
            Stripped::Removed(Some(b"a=1; b=2".to_vec()))
        );
        assert_eq!(strip_cookie(b"gg=tok", "gg"), Stripped::Removed(None));
        // The form cookie is guestgate's too, in every spelling; lookalikes are not.
        assert_eq!(
            strip_cookie(b"a=1; gg_form=f; __Host-GG_FORM=f; gg_formx=k", "gg"),
            Stripped::Removed(Some(b"a=1; gg_formx=k".to_vec()))
        );
        // The app's own cookies are never rewritten: not when guestgate's is absent ...
        let odd = b"a=\xff\xfe;  b=\"x;y\" ;;c";
        assert_eq!(strip_cookie(odd, "gg"), Stripped::Unchanged);
        // ... and not around it when it is there.
        assert_eq!(
            strip_cookie(b"a=\xff\xfe;gg=t;  b=\"x;y\" ;;c", "gg"),
            Stripped::Removed(Some(b"a=\xff\xfe;  b=\"x;y\" ;c".to_vec()))
        );
    }

    #[test]
    fn every_spelling_of_the_cookie_name_is_guestgates() {
        fn find<'a>(h: &[&'a [u8]], wire: &str) -> CookieLookup<'a> {
            find_cookie(h.iter().copied(), "gg", wire)
        }
        // Only the exact name guestgate sets holds a session ...
        assert_eq!(find(&[b"__Host-gg=t"], "__Host-gg"), CookieLookup::One("t"));
        assert_eq!(find(&[b" gg=t "], "gg"), CookieLookup::One("t"));
        // ... every other spelling still marks the request as a guest's.
        for spelled in [
            "GG=t",
            "Gg=t",
            "__Host-gg=t",
            "__host-GG=t",
            "__Secure-gg=t",
            "__SECURE-gg=t",
            " gg =t",
            "\tgg=t",
        ] {
            assert_eq!(
                find(&[spelled.as_bytes()], "gg"),
                CookieLookup::Misnamed,
                "{spelled:?}"
            );
            assert_eq!(
                strip_cookie(format!("a=1; {spelled}").as_bytes(), "gg"),
                Stripped::Removed(Some(b"a=1".to_vec())),
                "{spelled:?}"
            );
        }
        assert_eq!(find(&[b"gg=t"], "__Host-gg"), CookieLookup::Misnamed);
        // Two spellings at once are two cookies: ambiguous, never "no cookie".
        assert_eq!(
            find(&[b"__Host-gg=a; gg=b"], "__Host-gg"),
            CookieLookup::Ambiguous
        );
        assert_eq!(find(&[b"a=1", b"GG=b"], "gg"), CookieLookup::Misnamed);
        // A copy hidden behind a comma, as RFC 2109-style parsers read it.
        assert_eq!(find(&[b"sid=staff, gg=t"], "gg"), CookieLookup::Misnamed);
        assert_eq!(find(&[b"gg=t; sid=a,GG=u"], "gg"), CookieLookup::Ambiguous);
        assert_eq!(find(&[b"sid=a,b"], "gg"), CookieLookup::Absent);
        // A value that is not UTF-8 and names the cookie cannot be shown to lack it.
        assert_eq!(find(&[b"gg=\xff"], "gg"), CookieLookup::Ambiguous);
        for other in ["__Host-gg2=t", "xgg=t", "__Hostgg=t", "g g=t"] {
            assert_eq!(
                find(&[other.as_bytes()], "gg"),
                CookieLookup::Absent,
                "{other:?}"
            );
        }
    }

    #[test]
    fn key_files_are_created_private_and_world_readable_ones_refused() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub/session.key");
        let k1 = load_or_create_key(&p).unwrap();
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(load_or_create_key(&p).unwrap(), k1);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(load_key(&p), Err(KeyFileError::Invalid { .. })));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(load_key(&p).is_ok());
    }

    fn base64url(b: &[u8]) -> String {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in b.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |acc, (i, &x)| acc | (x as u32) << (16 - 8 * i));
            for i in 0..=chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            }
        }
        out
    }
}
