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

/// A request id: 8 random bytes as 16 hex digits, written straight into one string
/// (every request makes one).
pub fn request_id() -> String {
    // As the audit chain writes its hashes: hex digits into a stack buffer, then one
    // string (`hex::encode`'s char iterator cost 0.4k instructions more per request).
    let mut digits = [0u8; 16];
    // 8 bytes always fit 16 digits.
    let _ = hex::encode_to_slice(rand::rng().random::<[u8; 8]>(), &mut digits);
    String::from_utf8_lossy(&digits).into_owned()
}

/// RFC 3339 (UTC, milliseconds) of an instant: the form of audit lines,
/// `2026-11-24T09:30:05.123Z`. Written by hand (one per audit line): the civil date
/// from the day count (`civil_from_days`), no formatting machinery; and the part up to
/// the second is kept per thread, since consecutive lines nearly always share it.
pub fn timestamp(t: SystemTime) -> String {
    thread_local! {
        static SECOND: std::cell::Cell<(u64, [u8; 20])> = const { std::cell::Cell::new((u64::MAX, [0; 20])) };
    }
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let head = SECOND.with(|c| {
        let (at, head) = c.get();
        if at == secs {
            return head;
        }
        let head = second_prefix(secs);
        c.set((secs, head));
        head
    });
    let ms = since.subsec_millis();
    let mut out = [0u8; 24];
    out[..20].copy_from_slice(&head);
    for (slot, digit) in out[20..23]
        .iter_mut()
        .zip([ms / 100, ms / 10 % 10, ms % 10])
    {
        *slot = b'0' + digit as u8;
    }
    out[23] = b'Z';
    // ASCII digits and separators only: always UTF-8.
    std::str::from_utf8(&out)
        .map(str::to_owned)
        .unwrap_or_default()
}

/// `YYYY-MM-DDTHH:MM:SS.` of a Unix second.
fn second_prefix(secs: u64) -> [u8; 20] {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days);
    let fields = [
        (y, 4, b'-'),
        (m, 2, b'-'),
        (d, 2, b'T'),
        (rem / 3600, 2, b':'),
        (rem / 60 % 60, 2, b':'),
        (rem % 60, 2, b'.'),
    ];
    let mut out = [0u8; 20];
    let mut at = 0;
    for (value, width, sep) in fields {
        for i in (0..width).rev() {
            if let Some(slot) = out.get_mut(at) {
                *slot = b'0' + (value / 10u64.pow(i) % 10) as u8;
            }
            at += 1;
        }
        if let Some(slot) = out.get_mut(at) {
            *slot = sep;
        }
        at += 1;
    }
    out
}

/// A moment as people read it, with the zone and how far away it is:
/// `Tuesday 1 December 2026, 14:05 UTC (in 7 days)`.
pub fn human(secs: u64, now: u64) -> String {
    const DAYS: [&str; 7] = [
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
        "Monday",
        "Tuesday",
        "Wednesday",
    ];
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let days = secs / 86_400;
    let (y, m, d) = civil_from_days(days);
    let (hh, mm) = ((secs % 86_400) / 3600, (secs % 3600) / 60);
    format!(
        "{} {d} {} {y}, {hh:02}:{mm:02} UTC ({})",
        DAYS[(days % 7) as usize],
        MONTHS[(m - 1) as usize],
        relative(secs, now)
    )
}

/// `in 7 days`, `in 3 hours`, `in 10 minutes`, `2 days ago`, `now`.
pub fn relative(secs: u64, now: u64) -> String {
    let (delta, future) = if secs >= now {
        (secs - now, true)
    } else {
        (now - secs, false)
    };
    // Rounded to the nearest unit, as people count: 6 days 23 hours is "in 7 days".
    let (n, unit) = match delta {
        d if d < 60 => return "now".into(),
        d if d < 3600 => ((d + 30) / 60, "minute"),
        d if d < 86_400 * 2 => ((d + 1800) / 3600, "hour"),
        d => ((d + 43_200) / 86_400, "day"),
    };
    let s = if n == 1 { "" } else { "s" };
    if future {
        format!("in {n} {unit}{s}")
    } else {
        format!("{n} {unit}{s} ago")
    }
}

/// (year, month, day) of a count of days since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The hand-written stamp is exactly humantime's RFC 3339 with milliseconds,
        /// for any instant from 1970 to 9999.
        #[test]
        fn timestamp_matches_humantime(secs in 0u64..253_402_300_799, millis in 0u64..1000) {
            let t = UNIX_EPOCH + Duration::from_millis(secs * 1000 + millis);
            proptest::prop_assert_eq!(timestamp(t), humantime::format_rfc3339_millis(t).to_string());
            // Another moment of the same second: written from the kept prefix.
            let again = UNIX_EPOCH + Duration::from_millis(secs * 1000 + (millis + 7) % 1000);
            proptest::prop_assert_eq!(timestamp(again), humantime::format_rfc3339_millis(again).to_string());
        }
    }

    #[test]
    fn request_ids_are_16_hex_digits_and_differ() {
        let id = request_id();
        assert_eq!(id.len(), 16);
        assert!(id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_ne!(id, request_id());
    }

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

    #[test]
    fn dates_read_as_people_read_them() {
        // 2026-12-01T14:05:00Z, a Tuesday
        let t = 1_796_133_900;
        assert_eq!(rfc3339(t), "2026-12-01T14:05:00Z");
        assert_eq!(
            human(t, t - 7 * 86_400),
            "Tuesday 1 December 2026, 14:05 UTC (in 7 days)"
        );
        assert_eq!(human(0, 0), "Thursday 1 January 1970, 00:00 UTC (now)");
        assert_eq!(
            human(951_782_400, 0).split(',').next(),
            Some("Tuesday 29 February 2000")
        );
        assert_eq!(relative(100, 100 + 600), "10 minutes ago");
        assert_eq!(relative(100 + 3600, 100), "in 1 hour");
        assert_eq!(relative(100 + 30 * 3600, 100), "in 30 hours");
        assert_eq!(relative(100 + 2 * 86_400, 100), "in 2 days");
        assert_eq!(relative(7 * 86_400 - 5, 0), "in 7 days");
        assert_eq!(relative(0, 90 * 60 - 1), "1 hour ago");
    }
}
