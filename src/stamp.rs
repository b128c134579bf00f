//! What every event is stamped with: the time (unix seconds, RFC 3339 for people and
//! logs) and random ids (request ids, share ids, token ids). A leaf: it imports nothing
//! from guestgate.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::RngExt;

/// Current unix time in seconds.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `n` random bytes from the OS CSPRNG, hex-encoded.
pub fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    rand::rng().fill(&mut b[..]);
    hex::encode(b)
}

/// RFC 3339 (UTC, seconds) from unix seconds: the form of API answers.
pub fn rfc3339(secs: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string()
}

/// RFC 3339 (UTC, milliseconds) of an instant: the form of audit lines.
pub fn timestamp(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_have_their_forms() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            timestamp(UNIX_EPOCH + Duration::from_millis(1_500)),
            "1970-01-01T00:00:01.500Z"
        );
        let id = random_hex(8);
        assert_eq!(id.len(), 16);
        assert_ne!(id, random_hex(8));
        assert!(unix_now() > 1_700_000_000);
    }
}
