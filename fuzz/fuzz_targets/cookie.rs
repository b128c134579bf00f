//! Cookie headers: never a panic; a session is found only under the exact name guestgate
//! sets, and what is left for the app never holds guestgate's cookie in any spelling.
#![no_main]

use guestgate::session::{find_cookie, is_session_cookie, strip_cookie, CookieLookup, Stripped};
use libfuzzer_sys::fuzz_target;

const BASE: &str = "guestgate_session";
const WIRE: &str = "__Host-guestgate_session";

fuzz_target!(|data: &[u8]| {
    let values: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    match find_cookie(values.iter().copied(), BASE, WIRE) {
        CookieLookup::One(token) => {
            let found = values.iter().any(|v| {
                String::from_utf8_lossy(v).split(';').any(|pair| {
                    pair.split_once('=').is_some_and(|(k, val)| {
                        k.trim_start_matches(' ') == WIRE && val.trim_matches([' ', '\t']) == token
                    })
                })
            });
            assert!(found, "a session found under another name");
        }
        CookieLookup::Absent | CookieLookup::Ambiguous | CookieLookup::Misnamed => {}
    }
    for v in &values {
        if let Some(kept) = strip_cookie(v, BASE) {
            for pair in kept.split(';') {
                let name = pair.split_once('=').map_or(pair, |(k, _)| k);
                assert!(
                    !is_session_cookie(name, BASE),
                    "{kept:?} still holds the cookie"
                );
            }
        }
    }
});
