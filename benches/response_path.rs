//! Criterion benches of what guestgate adds to a guest's response and to the request the
//! app receives, each next to its baseline in the same run:
//! - an HTML page (100 KiB, in 16 KiB chunks) passed through untouched vs through the
//!   banner, as the app sent it and gzip-compressed (decoded on the way);
//! - a JSON answer with the banner off vs on (the profile shows a banner, the response is
//!   not a page: the cost must be about nothing);
//! - signing the scope assertion.
//!
//! cargo bench --bench response_path

use std::io::Write as _;
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use guestgate::assertion::{Asserted, AssertionKeys};
use guestgate::banner::decode::Coding;
use guestgate::banner::{render, BannerView, Injector};
use guestgate::proxy::response::{banner_fit, BannerFit};
use pingora::http::ResponseHeader;

const CHUNK: usize = 16 * 1024;

fn page() -> Vec<u8> {
    let mut p = b"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Case</title>\
        <link rel=\"stylesheet\" href=\"/static/app.css\"></head><body><header>CaseDesk</header><main>"
        .to_vec();
    // Varied text (a fixed pseudo-random walk over words), so gzip compresses it about as
    // well as real prose (3-4x), not a thousandfold.
    const WORDS: &[&str] = &[
        "claimant",
        "insurer",
        "dispute",
        "date",
        "injury",
        "report",
        "medical",
        "policy",
        "clause",
        "liability",
        "assessment",
        "witness",
        "statement",
        "invoice",
        "amount",
        "the",
        "of",
        "and",
        "a",
        "to",
        "in",
        "was",
        "on",
        "by",
        "with",
    ];
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut n = 0u64;
    while p.len() < 100 * 1024 {
        p.extend_from_slice(b"<p>");
        for _ in 0..14 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            p.extend_from_slice(WORDS[(x % WORDS.len() as u64) as usize].as_bytes());
            p.push(b' ');
        }
        n += 1;
        p.extend_from_slice(format!("({n})</p>\n").as_bytes());
    }
    p.extend_from_slice(b"</main></body></html>\n");
    p
}

fn chunks(data: &[u8]) -> Vec<Bytes> {
    data.chunks(CHUNK).map(Bytes::copy_from_slice).collect()
}

/// What the proxy does per chunk when no banner is involved: hand the chunk on.
fn pass(chunks: &[Bytes]) -> usize {
    chunks
        .iter()
        .map(|c| std::hint::black_box(c.clone()).len())
        .sum()
}

fn through(coding: Coding, banner: &Bytes, chunks: &[Bytes]) -> usize {
    let mut inj = Injector::new(coding, banner.clone());
    let last = chunks.len() - 1;
    chunks
        .iter()
        .enumerate()
        .map(|(i, c)| {
            inj.push(Some(c.clone()), i == last)
                .ok()
                .flatten()
                .map_or(0, |b| std::hint::black_box(b).len())
        })
        .sum()
}

fn response_path(c: &mut Criterion) {
    let banner = render(&BannerView {
        label: "View-only",
        text: "You can read the documents, the summary and the reports of this case version.",
        case: "42",
        version: "3",
        prefix: "/_guestgate",
        sign_out_token: "0123456789abcdef0123456789abcdef",
    });
    let html = chunks(&page());
    let gz = {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(&page()).unwrap_or_default();
        chunks(&e.finish().unwrap_or_default())
    };
    let json_body =
        chunks(&br#"[{"id":"1","title":"Claim form","case":"42","version":"3"}]"#.repeat(200));
    let mut json_head = ResponseHeader::build(200, None).unwrap_or_else(|e| panic!("{e}"));
    json_head
        .insert_header("content-type", "application/json")
        .unwrap_or_else(|e| panic!("{e}"));

    let mut g = c.benchmark_group("html page 100 KiB");
    g.bench_function("banner off (pass chunks)", |b| b.iter(|| pass(&html)));
    g.bench_function("banner on", |b| {
        b.iter(|| through(Coding::Identity, &banner, &html))
    });
    g.bench_function("banner on, app sent gzip", |b| {
        b.iter(|| through(Coding::Gzip, &banner, &gz))
    });
    g.finish();

    let mut g = c.benchmark_group("json answer 12 KiB");
    g.bench_function("banner off (pass chunks)", |b| b.iter(|| pass(&json_body)));
    g.bench_function("banner on (not a page: head check, pass chunks)", |b| {
        b.iter(|| {
            let fit = banner_fit(&http::Method::GET, std::hint::black_box(&json_head));
            assert_eq!(fit, BannerFit::NotAPage);
            pass(&json_body)
        })
    });
    g.finish();

    let keys = AssertionKeys::new(
        ed25519_dalek::SigningKey::from_bytes(&[7; 32]),
        &[],
        "guestgate",
        "case-app",
        Duration::from_secs(30),
    );
    let asserted = Asserted {
        request_id: "0123456789abcdef",
        email: "expert@clinic.example",
        share: "sh_0123456789abcdef01234567",
        case: "42",
        version: "3",
        profile: "view-only",
        rule: "document-content",
        method: "GET",
        target: "/api/cases/42/versions/3/documents/17/content",
    };
    c.bench_function("scope assertion: sign (Ed25519)", |b| {
        b.iter(|| {
            keys.sign(1_700_000_000, std::hint::black_box(&asserted))
                .len()
        })
    });
}

criterion_group!(benches, response_path);
criterion_main!(benches);
