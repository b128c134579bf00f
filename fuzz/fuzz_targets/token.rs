//! Session tokens: never a panic, and no token is accepted unless it carries exactly the
//! claims guestgate signed. The input either is a token on its own, or edits a valid
//! token at the positions it names.
#![no_main]

use std::sync::LazyLock;

use guestgate::session::{Claims, SessionKeys, ShareGrant};
use guestgate::stamp::unix_now;
use libfuzzer_sys::fuzz_target;

static KEYS: LazyLock<SessionKeys> =
    LazyLock::new(|| SessionKeys::new(&[7u8; 32], &[], "guestgate", "guestgate"));
static SIGNED: LazyLock<(String, Claims)> = LazyLock::new(|| {
    let grant = ShareGrant {
        id: "sh-1".into(),
        case: "42".into(),
        version: "3".into(),
        profile: "view-only".into(),
        exp: unix_now() + 3600,
    };
    let token = KEYS.mint("g@x.test", vec![grant], 600).expect("mint");
    let claims = KEYS.verify(&token).expect("verify");
    (token, claims)
});

fuzz_target!(|data: &[u8]| {
    let (token, claims) = &*SIGNED;
    if let Some((&mode, rest)) = data.split_first() {
        if mode & 1 == 0 {
            if let Ok(text) = std::str::from_utf8(rest) {
                if let Ok(c) = KEYS.verify(text) {
                    assert_eq!(&c, claims, "accepted a token guestgate did not sign");
                }
            }
            return;
        }
        let mut edited = token.clone().into_bytes();
        for pair in rest.chunks(2) {
            if let [pos, byte] = pair {
                let i = *pos as usize % edited.len();
                edited[i] = *byte;
            }
        }
        if let Ok(text) = String::from_utf8(edited) {
            if let Ok(c) = KEYS.verify(&text) {
                assert_eq!(&c, claims, "an edited token verified with other claims");
            }
        }
    }
});
