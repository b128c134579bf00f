//! Criterion benches of the per-request hot path: target canonicalisation, policy
//! evaluation (one RegexSet pass), JWT verification, and the whole decision, with a
//! do-nothing baseline (framing inspection alone) measured in the same run.
//!
//! cargo bench --bench hot_path

use std::path::Path;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use guestgate::decision::Mode;
use guestgate::decision::{Gate, RequestFacts, Settings};
use guestgate::policy::{PolicySet, Scope};
use guestgate::session::{SessionKeys, ShareGrant};
use guestgate::stamp::unix_now;
use guestgate::store::{Share, ShareIndex, ShareStatus};
use guestgate::target::CanonicalTarget;

fn hot_path(c: &mut Criterion) {
    let policies = PolicySet::load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("policies"))
        .unwrap_or_else(|e| panic!("{e}"));
    let keys = SessionKeys::new(&[7u8; 32], &[], "guestgate", "guestgate");
    let grant = ShareGrant {
        id: "sh-42".into(),
        case: "42".into(),
        version: "3".into(),
        profile: "view-only".into(),
        exp: unix_now() + 3600,
    };
    let token = keys
        .mint("g@example.com", vec![grant], 3600)
        .unwrap_or_default();
    let cookie = format!("guestgate_session={token}");
    let target = "/api/cases/42/versions/3/documents/17/content";
    let head = format!(
        "GET {target} HTTP/1.1\r\nHost: app.test\r\nAccept: application/json\r\nCookie: {cookie}\r\n\r\n"
    );
    let index = ShareIndex::default();
    index.upsert(&Share {
        status: ShareStatus::Active,
        accepted_at: Some(0),
        ..Share::pending(
            "sh-42",
            "g@example.com",
            ["42", "3", "view-only"],
            0,
            unix_now() + 3600,
        )
    });
    let gate = Gate {
        settings: Settings {
            mode: Mode::Mixed,
            public_hosts: vec!["app.test".into()],
            wire_cookie_name: "guestgate_session".into(),
            ..Settings::default()
        },
        keys: SessionKeys::new(&[7u8; 32], &[], "guestgate", "guestgate")
            .with_verified_cache(10_000),
        policies: Arc::new(guestgate::reload::LivePolicies::fixed(
            policies.clone(),
            "guestgate_session",
        )),
        index: Arc::new(index),
    };
    let profile = policies
        .get("view-only")
        .unwrap_or_else(|| panic!("view-only"));
    let canonical =
        CanonicalTarget::parse(target.as_bytes(), 4096).unwrap_or_else(|e| panic!("{e}"));
    let scope = Scope {
        case: "42",
        version: "3",
    };

    c.bench_function("baseline: framing inspect", |b| {
        b.iter(|| {
            guestgate::framing::inspect(std::hint::black_box(head.as_bytes()), false, 1 << 30)
                .is_ok()
        })
    });
    c.bench_function("target canonicalise", |b| {
        b.iter(|| CanonicalTarget::parse(std::hint::black_box(target.as_bytes()), 4096).is_ok())
    });
    c.bench_function("policy evaluate (allow, 8 rules)", |b| {
        b.iter(|| {
            profile
                .evaluate("GET", std::hint::black_box(&canonical), scope)
                .is_ok()
        })
    });
    // A profile of 100 rules, the matching one last: how evaluation scales with rules.
    let big_dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut big = String::from("name = \"big\"\ndescription = \"100 rules\"\n");
    for i in 0..99 {
        big.push_str(&format!(
            "[[rule]]\nname = \"r{i}\"\nmethods = [\"GET\"]\npath = \"/api/cases/{{case}}/versions/{{version}}/section{i}/{{item}}\"\n"
        ));
    }
    big.push_str("[[rule]]\nname = \"last\"\nmethods = [\"GET\"]\npath = \"/api/cases/{case}/versions/{version}/documents/{doc}/content\"\n");
    std::fs::write(big_dir.path().join("big.toml"), big).unwrap_or_else(|e| panic!("{e}"));
    let big_set = PolicySet::load_dir(big_dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let big_profile = big_set.get("big").unwrap_or_else(|| panic!("big"));
    c.bench_function("policy evaluate (allow, 100 rules)", |b| {
        b.iter(|| {
            big_profile
                .evaluate("GET", std::hint::black_box(&canonical), scope)
                .is_ok()
        })
    });
    c.bench_function("policy evaluate (deny, no rule)", |b| {
        let t = CanonicalTarget::parse(b"/settings/users", 4096).unwrap_or_else(|e| panic!("{e}"));
        b.iter(|| {
            profile
                .evaluate("GET", std::hint::black_box(&t), scope)
                .is_err()
        })
    });
    c.bench_function("jwt verify (cold: no cache)", |b| {
        b.iter(|| keys.verify(std::hint::black_box(&token)).is_ok())
    });
    let cached =
        SessionKeys::new(&[7u8; 32], &[], "guestgate", "guestgate").with_verified_cache(10_000);
    c.bench_function("jwt verify (cached)", |b| {
        b.iter(|| cached.verify(std::hint::black_box(&token)).is_ok())
    });
    c.bench_function("decide (allowed guest request, token cached)", |b| {
        b.iter(|| {
            let facts = RequestFacts {
                raw_head: head.as_bytes(),
                method: "GET",
                cookies: vec![cookie.as_bytes()],
                header_names: vec!["host", "accept", "cookie"],
                http2: false,
                authority: None,
                frames_carry_body: false,
            };
            matches!(
                gate.decide(&facts, unix_now()),
                guestgate::decision::Verdict::Allow(_)
            )
        })
    });
}

criterion_group!(benches, hot_path);
criterion_main!(benches);
