//! Raw request heads: never a panic, and whatever passes has one reading. An
//! independent, naive count of the framing lines must agree that there was at most one
//! Content-Length or one Transfer-Encoding (not both), and a length never above the limit.
#![no_main]

use guestgate::framing::{inspect, Body};
use libfuzzer_sys::fuzz_target;

const MAX: u64 = 1 << 20;

fuzz_target!(|data: &[u8]| {
    for http2 in [false, true] {
        let Ok(head) = inspect(data, http2, MAX) else {
            continue;
        };
        let end = data
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or(data.len());
        let (mut cl, mut te) = (0, 0);
        // The head ends at the first empty line, as httparse reads it (`\r` alone is empty).
        for line in data[..end].split(|&b| b == b'\n').skip(1) {
            if line.is_empty() || line == b"\r" {
                break;
            }
            let name: Vec<u8> = line
                .split(|&b| b == b':')
                .next()
                .unwrap_or(b"")
                .iter()
                .map(|b| b.to_ascii_lowercase())
                .collect();
            if name == b"content-length" || name == b"content_length" {
                cl += 1;
            }
            if name == b"transfer-encoding" || name == b"transfer_encoding" {
                te += 1;
            }
        }
        assert!(
            cl <= 1 && te <= 1 && cl + te <= 1,
            "{cl} CL, {te} TE accepted"
        );
        if let Body::Length(n) = head.body {
            assert!(n > 0 && n <= MAX);
        }
        assert_eq!(head.body == Body::Chunked, te == 1);
    }
});
