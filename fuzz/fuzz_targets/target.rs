//! Request targets: never a panic; whatever passes is canonical (its forwarded form
//! parses back to exactly what policies matched) and holds no dot segment, no `//` run,
//! no smuggled delimiter and no segment a Windows-family server would trim.
#![no_main]

use guestgate::target::CanonicalTarget;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(t) = CanonicalTarget::parse(data, 4096) else {
        return;
    };
    let forwarded = t.to_target();
    let again = CanonicalTarget::parse(forwarded.as_bytes(), 4096 * 4)
        .expect("the forwarded target is itself canonical");
    assert_eq!(again, t);
    assert_eq!(again.to_target(), forwarded);
    let segments: Vec<&str> = t.path.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    for (i, s) in segments.iter().enumerate() {
        assert!(!s.is_empty() || i == last, "empty segment in {:?}", t.path);
        if s.is_empty() {
            continue;
        }
        assert!(!s.chars().all(|c| c == '.'), "dot segment in {:?}", t.path);
        assert!(!s.ends_with(['.', ' ']), "trimmed segment in {:?}", t.path);
        assert!(
            !s.contains(['\\', ';', '#', '?', '%']) && !s.chars().any(char::is_control),
            "delimiter in {:?}",
            t.path
        );
    }
});
