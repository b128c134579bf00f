//! End-to-end: the real guestgate binary in front of the real sample app. Every test
//! asserts what the app actually received (or that it received nothing).

mod common;

use std::time::Duration;

use common::{request, Instance, Opts};

const EMAIL: &str = "expert@clinic.example";
const S42: (&str, &str, &str, &str) = ("sh-42", "42", "3", "view-only");

fn guest(g: &Instance) -> String {
    g.cookie(EMAIL, &[S42])
}

/// Asserts a 403 JSON denial with this reason, and returns the deny id.
fn assert_denied(r: &common::Resp, reason: &str) -> String {
    assert_eq!(r.status, 403, "body: {}", r.body);
    let j = r.json();
    assert_eq!(j["error"], "forbidden");
    assert_eq!(j["reason"], reason, "{j}");
    let id = j["deny_id"].as_str().expect("deny_id").to_string();
    assert_eq!(r.header("x-guestgate-deny-id"), Some(id.as_str()));
    id
}

#[test]
fn allowed_reads_reach_the_app_with_identity_and_without_the_cookie() {
    let g = Instance::start(Opts::default());
    let c = guest(&g);
    let cookie = format!("{c}; app_pref=dark");
    for target in [
        "/cases/42/versions/3",
        "/cases/42/versions/3/documents/2",
        "/cases/42/versions/3/summary",
        "/api/cases/42/versions/3/documents",
        "/api/cases/42/versions/3/documents?page=2&per_page=10",
        "/api/cases/42/versions/3/documents/1",
        "/api/cases/42/versions/3/documents/1/content",
        "/api/cases/42/versions/3/reports",
    ] {
        let r = g.send("GET", target, Some(&cookie), &[]);
        assert_eq!(r.status, 200, "{target}: {}", r.body);
    }
    let seen = g.app.seen();
    assert_eq!(seen.len(), 8);
    for s in &seen {
        assert_eq!(s.header("x-guest-email"), Some(EMAIL));
        assert_eq!(s.header("x-guest-share"), Some("sh-42"));
        assert_eq!(s.header("x-guest-scope"), Some("42/3"));
        assert_eq!(s.header("x-guest-profile"), Some("view-only"));
        // guestgate's cookie never reaches the app; the app's own cookies do
        assert_eq!(s.header("cookie"), Some("app_pref=dark"));
        assert!(s
            .headers
            .iter()
            .all(|(_, v)| !v.contains(&c["guestgate_session=".len()..])));
    }
    assert_eq!(
        seen[4].target,
        "/api/cases/42/versions/3/documents?page=2&per_page=10"
    );
}

#[test]
fn forwarded_target_is_exactly_the_canonical_target_matched() {
    let g = Instance::start(Opts::default());
    let c = guest(&g);
    let r = g.send(
        "GET",
        "/cases/%34%32/versions/%33/documents/%31?page=%32",
        Some(&c),
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = g.send(
        "GET",
        "/cases/42/versions/3/documents/caf%c3%a9%20notes",
        Some(&c),
        &[],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let seen = g.app.seen();
    assert_eq!(seen[0].target, "/cases/42/versions/3/documents/1?page=2");
    assert_eq!(
        seen[1].target,
        "/cases/42/versions/3/documents/caf%C3%A9%20notes"
    );
}

#[test]
fn other_cases_versions_writes_and_app_wide_pages_are_denied() {
    let g = Instance::start(Opts::default());
    let c = guest(&g);
    let cases: &[(&str, &str, &str)] = &[
        (
            "GET",
            "/api/cases/43/versions/3/documents",
            "scope_mismatch",
        ),
        ("GET", "/cases/43/versions/1", "scope_mismatch"),
        (
            "GET",
            "/api/cases/042/versions/3/documents",
            "scope_mismatch",
        ),
        (
            "GET",
            "/api/cases/%EF%BC%94%EF%BC%92/versions/3/documents",
            "scope_mismatch",
        ),
        (
            "GET",
            "/api/cases/42/versions/2/documents",
            "scope_mismatch",
        ),
        ("GET", "/cases/42/versions/1", "scope_mismatch"),
        (
            "POST",
            "/api/cases/42/versions/3/documents",
            "method_not_allowed",
        ),
        (
            "PUT",
            "/api/cases/42/versions/3/documents/1",
            "method_not_allowed",
        ),
        (
            "PATCH",
            "/api/cases/42/versions/3/documents/1",
            "method_not_allowed",
        ),
        (
            "DELETE",
            "/api/cases/42/versions/3/documents/1",
            "method_not_allowed",
        ),
        ("PATCH", "/api/cases/42/versions/3/metadata", "no_rule"),
        ("PATCH", "/api/cases/42/versions/3/categories", "no_rule"),
        ("GET", "/api/cases", "no_rule"),
        ("GET", "/settings", "no_rule"),
        ("GET", "/API/cases/42/versions/3/documents", "no_rule"),
        (
            "OPTIONS",
            "/api/cases/42/versions/3/documents",
            "method_not_allowed",
        ),
        (
            "TRACE",
            "/api/cases/42/versions/3/documents",
            "method_not_allowed",
        ),
    ];
    for (method, target, reason) in cases {
        let r = g.send(method, target, Some(&c), &[]);
        assert_eq!(r.status, 403, "{method} {target}: {}", r.body);
        assert_eq!(r.json()["reason"], *reason, "{method} {target}");
    }
    assert!(g.app.seen().is_empty(), "the app saw {:?}", g.app.seen());
}

#[test]
fn browsers_get_a_readable_page_api_calls_get_json() {
    let g = Instance::start(Opts::default());
    let c = guest(&g);
    let r = g.send(
        "GET",
        "/settings",
        Some(&c),
        &["Accept: text/html,application/xhtml+xml"],
    );
    assert_eq!(r.status, 403);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    assert!(
        r.body
            .contains("<h1>This is not part of what was shared with you</h1>"),
        "{}",
        r.body
    );
    let id = r.header("x-guestgate-deny-id").unwrap();
    assert!(r.body.contains(id));
    let r = g.send("GET", "/settings", Some(&c), &["Accept: application/json"]);
    assert_denied(&r, "no_rule");
}

/// One or more raw targets per hostile class (the unit table has the full set).
const HOSTILE: &[(&str, &str, u16)] = &[
    (
        "dot segments",
        "/api/cases/42/versions/3/documents/../../../43/versions/1/documents",
        400,
    ),
    (
        "dot segments, encoded",
        "/api/cases/42/versions/3/%2e%2e/%2E%2E/2/documents",
        400,
    ),
    (
        "dot segments, mixed",
        "/api/cases/42/versions/3/documents/.%2e/1",
        400,
    ),
    (
        "encoded slash",
        "/api/cases/42%2fversions%2f3/documents",
        400,
    ),
    (
        "encoded backslash",
        "/api/cases/42/versions/3/documents/1%5c..%5c2",
        400,
    ),
    (
        "raw backslash",
        "/api/cases/42/versions/3/documents/1\\..\\2",
        400,
    ),
    ("double slash", "/api/cases/42/versions/3//documents", 400),
    (
        "path parameter",
        "/api/cases/42;x=1/versions/3/documents",
        400,
    ),
    (
        "dot-dot-semicolon",
        "/api/cases/42/versions/3/documents/..;/1",
        400,
    ),
    ("NUL", "/api/cases/42/versions/3/documents/1%00", 400),
    (
        "CRLF",
        "/api/cases/42/versions/3/documents/1%0d%0aX-Injected:%201",
        400,
    ),
    ("bad percent", "/api/cases/42/versions/3/documents/%zz", 400),
    ("bad UTF-8", "/api/cases/42/versions/3/documents/%ff", 400),
    (
        "overlong UTF-8",
        "/api/cases/42/versions/3/%c0%ae%c0%ae/2",
        400,
    ),
    (
        "double encoding",
        "/api/cases/42/versions/3/documents/%252e%252e",
        400,
    ),
    (
        "encoded fragment",
        "/api/cases/42/versions/3/documents/1%23x",
        400,
    ),
    (
        "fragment",
        "/api/cases/42/versions/3/documents#/../../43",
        400,
    ),
    (
        "absolute-form",
        "http://app.test/api/cases/42/versions/3/documents",
        400,
    ),
    ("asterisk-form", "*", 400),
    (
        "control in query",
        "/api/cases/42/versions/3/documents?page=%0a1",
        400,
    ),
];

#[test]
fn hostile_targets_never_reach_the_app() {
    let g = Instance::start(Opts::default());
    let c = guest(&g);
    for (class, target, status) in HOSTILE {
        let r = g.send("GET", target, Some(&c), &[]);
        assert_eq!(r.status, *status, "{class}: {target}: {}", r.body);
        let j = r.json();
        assert!(
            j["reason"].as_str().unwrap().starts_with("target_"),
            "{class}: {j}"
        );
    }
    let long = format!("/api/cases/42/versions/3/documents/{}", "a".repeat(5000));
    let r = g.send("GET", &long, Some(&c), &[]);
    assert_eq!(r.status, 414, "{}", r.body);
    assert_eq!(r.json()["reason"], "target_too_long");
    assert!(g.app.seen().is_empty(), "the app saw {:?}", g.app.seen());
    // one audit line per hostile request, each a reject with a deny id
    let audit = g.audit_at_least(HOSTILE.len() + 1);
    assert_eq!(audit.len(), HOSTILE.len() + 1);
    assert!(audit
        .iter()
        .all(|e| e["decision"] == "reject" && e["deny_id"].is_string()));
}

#[test]
fn method_overrides_and_repeated_query_keys_are_refused() {
    let g = Instance::start(Opts::default());
    let c = guest(&g);
    let doc = "/api/cases/42/versions/3/documents/1";
    for h in [
        "X-HTTP-Method-Override: DELETE",
        "X-HTTP-Method: DELETE",
        "X-Method-Override: PUT",
        "X_HTTP_Method_Override: DELETE",
    ] {
        assert_denied(&g.send("GET", doc, Some(&c), &[h]), "method_override");
    }
    assert_denied(
        &g.send("GET", &format!("{doc}?_method=DELETE"), Some(&c), &[]),
        "method_override",
    );
    assert_denied(
        &g.send("POST", &format!("{doc}?_METHOD=delete"), Some(&c), &[]),
        "method_override",
    );
    let list = "/api/cases/42/versions/3/documents";
    assert_denied(
        &g.send("GET", &format!("{list}?page=1&page=2"), Some(&c), &[]),
        "query_repeated_key",
    );
    assert_denied(
        &g.send("GET", &format!("{list}?case=43"), Some(&c), &[]),
        "query_key_not_allowed",
    );
    assert!(g.app.seen().is_empty());
}

#[test]
fn smuggling_shapes_never_reach_the_app_with_or_without_session() {
    let g = Instance::start(Opts::default());
    let c = guest(&g);
    let doc = "/api/cases/42/versions/3/documents";
    let smuggled = "0\r\n\r\nGET /settings HTTP/1.1\r\nHost: app.test\r\n\r\n";
    for cookie in [Some(c.as_str()), None] {
        for framing in [
            &["Content-Length: 4", "Transfer-Encoding: chunked"][..],
            &["Transfer-Encoding: chunked", "Content-Length: 60"][..],
            &["Content-Length: 4", "Content-Length: 5"][..],
            &["Content-Length: 4", "Content-Length: 4"][..],
            &["Content_Length: 4"][..],
        ] {
            let mut req = request("POST", doc, cookie, framing);
            req.push_str(smuggled);
            let r = g.raw(&req);
            assert_eq!(r.status, 400, "{framing:?}: {}", r.body);
            // pingora refuses differing Content-Lengths itself, before any filter runs
            // (empty 400); every other shape is refused by guestgate with its reason.
            if framing != ["Content-Length: 4", "Content-Length: 5"] {
                let reason = r.json()["reason"].as_str().unwrap().to_string();
                assert!(reason.starts_with("framing_"), "{framing:?}: {reason}");
            }
        }
        let r = g.raw(
            "GET /cases/42/versions/3 HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n",
        );
        assert_eq!(r.status, 400);
    }
    assert!(g.app.seen().is_empty(), "the app saw {:?}", g.app.seen());
}

#[test]
fn forged_expired_and_unsigned_tokens_are_no_session() {
    use guestgate::session::{Claims, SessionKeys};
    use guestgate::stamp::unix_now;
    let g = Instance::start(Opts {
        mode: "guest-only",
        ..Opts::default()
    });
    let doc = "/api/cases/42/versions/3/documents";
    let other = SessionKeys::new(&[1u8; 32], &[], "guestgate", "guestgate");
    let forged = other.mint(EMAIL, common::grants(&[S42]), 600).unwrap();
    let valid = g.keys.mint(EMAIL, common::grants(&[S42]), 600).unwrap();
    let mut claims: Claims = (*g.keys.verify(&valid).unwrap()).clone();
    claims.exp = unix_now() - 30;
    let expired = g.keys.sign(&claims).unwrap();
    let parts: Vec<&str> = valid.split('.').collect();
    // {"alg":"none","typ":"guestgate-session+jwt"}
    let unsigned = format!(
        "eyJhbGciOiJub25lIiwidHlwIjoiZ3Vlc3RnYXRlLXNlc3Npb24rand0In0.{}.",
        parts[1]
    );
    let wrong_alg = format!(
        "eyJhbGciOiJIUzUxMiIsInR5cCI6Imd1ZXN0Z2F0ZS1zZXNzaW9uK2p3dCJ9.{}.{}",
        parts[1], parts[2]
    );
    let cases = [
        (forged, "session_unknown_key"),
        (expired, "session_expired"),
        (unsigned, "session_malformed"),
        (wrong_alg, "session_malformed"),
        ("not-a-token".to_string(), "session_malformed"),
    ];
    for (token, reason) in &cases {
        let r = g.send("GET", doc, Some(&format!("guestgate_session={token}")), &[]);
        assert_denied(&r, reason);
    }
    // two copies of the cookie (cookie tossing) are no session either
    let r = g.send(
        "GET",
        doc,
        Some(&format!(
            "guestgate_session={valid}; guestgate_session={valid}"
        )),
        &[],
    );
    assert_denied(&r, "session_ambiguous");
    assert!(g.app.seen().is_empty());
    // the same valid token alone works
    let r = g.send("GET", doc, Some(&format!("guestgate_session={valid}")), &[]);
    assert_eq!(r.status, 200);
}

#[test]
fn mixed_mode_passes_non_guests_through_with_owned_headers_stripped() {
    let g = Instance::start(Opts::default());
    let spoof = [
        "X-Guest-Email: ceo@victim.example",
        "X_Guest_Email: ceo@victim.example",
        "X-Guest-Share: sh-1",
        "X-Guest-Scope: 43/1",
        "X-Forwarded-For: 10.0.0.1",
    ];
    let r = g.send("GET", "/settings", None, &spoof);
    assert_eq!(r.status, 200);
    let r = g.send("GET", "/api/cases", Some("sid=staff"), &spoof);
    assert_eq!(r.status, 200);
    let seen = g.app.seen();
    assert_eq!(seen.len(), 2);
    for s in &seen {
        for h in ["x-guest-email", "x-guest-share", "x-guest-scope"] {
            assert!(
                !s.has_header_folded(h),
                "{h} reached the app: {:?}",
                s.headers
            );
        }
        // not a guest request: the app's own headers are untouched
        assert_eq!(s.header("x-forwarded-for"), Some("10.0.0.1"));
        assert_eq!(s.header("host"), Some("app.test"));
    }
    assert_eq!(seen[1].header("cookie"), Some("sid=staff"));
    let audit = g.audit_at_least(2);
    assert!(audit
        .iter()
        .all(|e| e["decision"] == "pass" && e["reason"] == "no_session"));
}

/// A request that presents guestgate's cookie is a guest request in every state of that
/// cookie: mixed mode never passes it through as one of the app's own users.
#[test]
fn a_presented_guest_cookie_is_never_passed_through() {
    use guestgate::session::{Claims, SessionKeys};
    use guestgate::stamp::unix_now;
    let g = Instance::start(Opts::default());
    let other = SessionKeys::new(&[1u8; 32], &[], "guestgate", "guestgate");
    let forged = other.mint(EMAIL, common::grants(&[S42]), 600).unwrap();
    let valid = g.keys.mint(EMAIL, common::grants(&[S42]), 600).unwrap();
    let mut claims: Claims = (*g.keys.verify(&valid).unwrap()).clone();
    claims.exp = unix_now() - 30;
    let expired = g.keys.sign(&claims).unwrap();
    // a session whose only share is revoked
    let (status, _) = g.api(common::ADMIN_KEY, "DELETE", "/admin/v1/shares/sh-7", None);
    assert_eq!(status, 204);
    let revoked = g
        .keys
        .mint(
            EMAIL,
            common::grants(&[("sh-7", "7", "1", "collaborator")]),
            600,
        )
        .unwrap();
    let cases: &[(String, &str, &str)] = &[
        (
            format!("guestgate_session={forged}; sid=staff"),
            "session_unknown_key",
            "could not be read",
        ),
        (
            format!("GUESTGATE_SESSION={valid}"),
            "session_misnamed",
            "could not be read",
        ),
        (
            format!("__Host-guestgate_session={valid}"),
            "session_misnamed",
            "could not be read",
        ),
        (
            format!("guestgate_session={valid}; Guestgate_Session={valid}"),
            "session_ambiguous",
            "could not be read",
        ),
        (
            "guestgate_session=not-a-token".to_string(),
            "session_malformed",
            "could not be read",
        ),
        (
            "guestgate_session=".to_string(),
            "session_malformed",
            "could not be read",
        ),
        (
            format!("guestgate_session={expired}"),
            "session_expired",
            "access has ended",
        ),
        (
            format!("guestgate_session={revoked}"),
            "share_inactive",
            "access has ended",
        ),
    ];
    for (cookie, reason, page) in cases {
        // an app page, outside anything shared: a non-guest would pass
        let r = g.send(
            "GET",
            "/settings",
            Some(cookie),
            &["Accept: application/json"],
        );
        assert_denied(&r, reason);
        let r = g.send("GET", "/settings", Some(cookie), &["Accept: text/html"]);
        assert_eq!(r.status, 403, "{cookie}");
        assert!(r.body.to_lowercase().contains(page), "{cookie}: {}", r.body);
    }
    assert!(g.app.seen().is_empty(), "the app saw {:?}", g.app.seen());
    let audit = g.audit_at_least(2 * cases.len() + 1);
    assert!(audit
        .iter()
        .filter(|e| e["kind"] == "request")
        .all(|e| e["decision"] == "deny"));
}

#[test]
fn guest_only_mode_denies_requests_without_a_session() {
    let g = Instance::start(Opts {
        mode: "guest-only",
        ..Opts::default()
    });
    let r = g.send(
        "GET",
        "/cases/42/versions/3",
        None,
        &["Accept: text/html", "X-Guest-Email: a@b"],
    );
    assert_eq!(r.status, 403);
    assert!(r.body.contains("Open your invitation link"), "{}", r.body);
    assert_denied(&g.send("GET", "/api/cases", None, &[]), "no_session");
    assert!(g.app.seen().is_empty());
}

/// A `Connection` header may make any end-to-end header hop-by-hop except the ones the
/// proxy sets. Whatever it lists, guestgate's decision is what happens: forwarded (the
/// options stripped) and answered by the app, or refused by guestgate with its reason
/// and an audit line saying so. Never an "allow" that pingora then refuses with an empty
/// 400 the app never sees, as it did for `Connection: Host`.
#[test]
fn connection_options_are_forwarded_or_refused_by_guestgate_never_after_the_decision() {
    let g = Instance::start(Opts::default());
    let c = guest(&g);
    // `request` already sends `Connection: close`, one option of the ten pingora allows.
    // (an option too long to be a header name, which pingora refuses too)
    let too_long = "a".repeat(65_536);
    let refused = [
        too_long.as_str(),
        "Host",
        "keep-alive, host",
        "X-Forwarded-For",
        "X_Forwarded_For",
        "x-forwarded-host",
        "close, X-Forwarded-Proto",
        ":authority",
        "\"X-Guest-Email\"",
        "a, b, c, d, e, f, g, h, i",
    ];
    // Each option with the headers it names: none of them reaches the app.
    let forwarded: [(&str, &[&str]); 6] = [
        ("close", &[]),
        (
            "keep-alive, X-Guest-Email, X-Guest-Share",
            &["Keep-Alive: timeout=5"],
        ),
        ("TE, X-Nominated", &["TE: trailers", "X-Nominated: 1"]),
        ("a, b, c, d, e, f, g, h", &["A: 1", "H: 8"]),
        (
            "Upgrade, HTTP2-Settings",
            &["Upgrade: h2c", "HTTP2-Settings: AAMAAABkAAQAAP__"],
        ),
        // hop-by-hop whether named or not
        (
            "keep-alive",
            &[
                "Upgrade: h2c",
                "HTTP2-Settings: AAMAAABkAAQAAP__",
                "TE: trailers",
            ],
        ),
    ];
    let mut sent = 0;
    for cookie in [Some(c.as_str()), None] {
        let target = "/api/cases/42/versions/3/documents";
        for value in refused {
            let connection = format!("Connection: {value}");
            let r = g.send("GET", target, cookie, &[&connection]);
            sent += 1;
            assert_eq!(r.status, 400, "{connection}: {}", r.body);
            assert_eq!(
                r.json()["reason"],
                "framing_connection_nomination",
                "{connection}"
            );
        }
        for (value, named) in forwarded {
            let connection = format!("Connection: {value}");
            let mut extra = vec![connection.as_str()];
            extra.extend_from_slice(named);
            let seen = g.app.seen().len();
            let r = g.send("GET", target, cookie, &extra);
            sent += 1;
            assert_eq!(r.status, 200, "{connection}: {}", r.body);
            let all = g.app.seen();
            assert_eq!(all.len(), seen + 1, "{connection}");
            let got = &all[seen];
            for h in [
                "keep-alive",
                "te",
                "x-nominated",
                "a",
                "h",
                "upgrade",
                "http2-settings",
            ] {
                assert!(
                    !got.has_header_folded(h),
                    "{connection}: {h} reached the app: {:?}",
                    got.headers
                );
            }
            let identity = got.header_all("x-guest-email");
            if cookie.is_some() {
                assert_eq!(identity, [EMAIL], "{connection}");
            } else {
                assert!(identity.is_empty(), "{connection}");
            }
        }
    }
    assert_eq!(g.app.seen().len(), 2 * forwarded.len());
    // Every line: refused by guestgate with the reason, or forwarded and answered.
    let requests = common::wait_for(
        "every request's audit line",
        Duration::from_secs(10),
        || {
            let lines: Vec<_> = g
                .audit()
                .into_iter()
                .filter(|l| l["kind"] == "request")
                .collect();
            (lines.len() >= sent).then_some(lines)
        },
    );
    assert_eq!(requests.len(), sent);
    for l in &requests {
        match l["decision"].as_str() {
            Some("reject") => assert_eq!(l["reason"], "framing_connection_nomination", "{l}"),
            Some("allow" | "pass") => assert_eq!(l["status"], 200, "{l}"),
            _ => panic!("{l}"),
        }
    }
}

#[test]
fn spoofed_identity_and_url_headers_are_replaced_for_guests() {
    let g = Instance::start(Opts::default());
    let c = guest(&g);
    let r = g.send(
        "GET",
        "/api/cases/42/versions/3/documents",
        Some(&c),
        &[
            "X-Guest-Email: ceo@victim.example",
            "x_guest_share: sh-999",
            "X-Original-URL: /settings",
            "X-Rewrite-URL: /api/cases",
            "X-Forwarded-Host: evil.example",
            "X_Forwarded_Prefix: /admin",
            "X-Envoy-Original-Path: /settings",
            "Connection: keep-alive, X-Guest-Email, X-Guest-Share",
        ],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let s = &g.app.seen()[0];
    assert_eq!(s.header_all("x-guest-email"), [EMAIL]);
    assert_eq!(s.header_all("x-guest-share"), ["sh-42"]);
    assert!(!s.has_header_folded("x-guest-share") || s.header_all("x_guest_share").is_empty());
    for h in [
        "x-original-url",
        "x-rewrite-url",
        "x-forwarded-host",
        "x-forwarded-prefix",
        "x-envoy-original-path",
    ] {
        assert!(
            !s.has_header_folded(h),
            "{h} reached the app: {:?}",
            s.headers
        );
    }
    assert_eq!(s.header("x-forwarded-for"), Some("127.0.0.1"));
    assert!(s
        .header("connection")
        .is_none_or(|v| !v.to_ascii_lowercase().contains("x-guest")));
}

#[test]
fn a_session_with_two_shares_reaches_both_cases_and_no_third() {
    let g = Instance::start(Opts::default());
    let c = g.cookie(EMAIL, &[S42, ("sh-7", "7", "1", "collaborator")]);
    assert_eq!(
        g.send("GET", "/api/cases/42/versions/3/documents", Some(&c), &[])
            .status,
        200
    );
    assert_eq!(
        g.send("GET", "/api/cases/7/versions/1/documents", Some(&c), &[])
            .status,
        200
    );
    // the collaborator share may edit metadata of case 7, the view-only one not of 42
    assert_eq!(
        g.send("PATCH", "/api/cases/7/versions/1/metadata", Some(&c), &[])
            .status,
        200
    );
    // closest miss: the collaborator rule matched the path, but for case 7
    assert_denied(
        &g.send("PATCH", "/api/cases/42/versions/3/metadata", Some(&c), &[]),
        "scope_mismatch",
    );
    assert_denied(
        &g.send("GET", "/api/cases/43/versions/1/documents", Some(&c), &[]),
        "scope_mismatch",
    );
    assert_denied(
        &g.send("GET", "/api/cases/7/versions/2/documents", Some(&c), &[]),
        "scope_mismatch",
    );
    let seen = g.app.seen();
    let targets: Vec<_> = seen
        .iter()
        .map(|s| (s.method.as_str(), s.target.as_str()))
        .collect();
    assert_eq!(
        targets,
        [
            ("GET", "/api/cases/42/versions/3/documents"),
            ("GET", "/api/cases/7/versions/1/documents"),
            ("PATCH", "/api/cases/7/versions/1/metadata"),
        ]
    );
    // identity headers name the share that allowed each request
    assert_eq!(seen[0].header("x-guest-share"), Some("sh-42"));
    assert_eq!(seen[1].header("x-guest-share"), Some("sh-7"));
    assert_eq!(seen[2].header("x-guest-profile"), Some("collaborator"));
}

#[test]
fn one_audit_line_per_decision_with_deny_id_and_no_secrets() {
    let g = Instance::start(Opts::default());
    let c = guest(&g);
    let token = c["guestgate_session=".len()..].to_string();
    assert_eq!(
        g.send("GET", "/api/cases/42/versions/3/documents/1", Some(&c), &[])
            .status,
        200
    );
    let deny_id = assert_denied(
        &g.send(
            "DELETE",
            "/api/cases/42/versions/3/documents/1",
            Some(&c),
            &[],
        ),
        "method_not_allowed",
    );
    assert_eq!(g.send("GET", "/x/../y", Some(&c), &[]).status, 400);
    let audit = g.audit_at_least(3);
    assert_eq!(audit.len(), 3, "{audit:?}");
    let find = |d: &str| {
        audit
            .iter()
            .find(|e| e["decision"] == d)
            .unwrap_or_else(|| panic!("no {d}"))
    };
    let (allow, deny, reject) = (find("allow"), find("deny"), find("reject"));
    assert_eq!(allow["decision"], "allow");
    assert_eq!(allow["rule"], "document");
    assert_eq!(allow["status"], 200);
    assert_eq!(allow["guest"], EMAIL);
    assert_eq!(allow["share"], "sh-42");
    assert_eq!(allow["case"], "42");
    assert_eq!(allow["version"], "3");
    assert_eq!(allow["path"], "/api/cases/42/versions/3/documents/1");
    assert_eq!(allow["client_ip"], "127.0.0.1");
    assert!(allow["deny_id"].is_null());
    assert!(allow["latency_ms"].as_f64().unwrap() >= 0.0);
    assert_eq!(deny["decision"], "deny");
    assert_eq!(deny["status"], 403);
    assert_eq!(deny["method"], "DELETE");
    assert_eq!(deny["deny_id"], deny_id.as_str());
    assert_eq!(deny["reason"], "method_not_allowed");
    assert_eq!(reject["decision"], "reject");
    assert_eq!(reject["reason"], "target_dot_segment");
    let everything = format!(
        "{}\n{}",
        std::fs::read_to_string(g.dir.path().join("audit.log")).unwrap(),
        g.stderr_text()
    );
    assert!(!everything.contains(&token), "the session token was logged");
    let key = std::fs::read_to_string(g.dir.path().join("session.key")).unwrap();
    assert!(
        !everything.contains(key.trim()),
        "the signing key was logged"
    );
}

fn serve_check(config: &std::path::Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_guestgate"))
        .args(["serve", "--check", "--config"])
        .arg(config)
        .output()
        .expect("guestgate serve --check")
}

#[test]
fn serve_check_reports_policy_errors_with_file_line_and_rule() {
    let dir = tempfile::tempdir().unwrap();
    let pol = dir.path().join("policies");
    std::fs::create_dir(&pol).unwrap();
    std::fs::write(pol.join("bad.toml"), "name = \"bad\"\n\n[[rule]]\nname = \"x\"\nmethods = [\"GET\"]\npath = \"/a/{cse}\"\nrewrite = \"/b/{case}/{doc}\"\n").unwrap();
    std::fs::write(
        dir.path().join("g.toml"),
        "[upstream]\naddress = \"127.0.0.1:1\"\n[policies]\ndir = \"policies\"\n",
    )
    .unwrap();
    let out = serve_check(&dir.path().join("g.toml"));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml:7: key `rule[0].rewrite`: rule \"x\": unknown placeholder `{doc}`"),
        "{err}"
    );

    std::fs::write(
        dir.path().join("g.toml"),
        "[upstream]\naddress = \"127.0.0.1:1\"\nport = 3\n",
    )
    .unwrap();
    let out = serve_check(&dir.path().join("g.toml"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("g.toml:3") && err.contains("port"), "{err}");

    // A valid mixed-mode config says plainly what mixed mode does not protect.
    for (mode, warned) in [("mixed", true), ("guest-only", false)] {
        std::fs::write(
            dir.path().join("g.toml"),
            format!(
                "mode = \"{mode}\"\n[upstream]\naddress = \"127.0.0.1:1\"\n[policies]\ndir = \"{}\"\n[session]\nkey_file = \"k\"\n",
                common::repo().join("policies").display()
            ),
        )
        .unwrap();
        let out = serve_check(&dir.path().join("g.toml"));
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{text}");
        assert_eq!(
            text.contains("protects nothing unless the app authenticates its own users"),
            warned,
            "{mode}: {text}"
        );
        // A summary of what would run, and nothing created: no key, no store.
        for line in [
            "  listen    0.0.0.0:8080 http, 2 threads",
            "  upstream  127.0.0.1:1 (127.0.0.1:1), Host 0.0.0.0:8080",
            "(absent: serve creates it, mode 0600)",
            "guestgate.redb (absent: created on start)",
            "collaborator (",
            "view-only (",
        ] {
            assert!(text.contains(line), "{line}: {text}");
        }
        let mut made: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        made.sort();
        assert_eq!(made, ["g.toml", "policies"], "--check created files");
    }

    // A rule under guestgate's own prefix never applies: said plainly.
    std::fs::write(
        dir.path().join("g.toml"),
        format!(
            "[upstream]\naddress = \"127.0.0.1:1\"\n[guest]\nprefix = \"/static\"\n[policies]\ndir = \"{}\"\n",
            common::repo().join("policies").display()
        ),
    )
    .unwrap();
    let out = serve_check(&dir.path().join("g.toml"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(
            "view-only.toml: rule \"static-assets\" matches paths under guest.prefix `/static`"
        ),
        "{text}"
    );

    // A contradiction is refused before anything starts, at the key to change.
    std::fs::write(
        dir.path().join("g.toml"),
        "[upstream]\naddress = \"127.0.0.1:1\"\n[guest]\ndefault_share_lifetime = \"100d\"\n",
    )
    .unwrap();
    let out = serve_check(&dir.path().join("g.toml"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("g.toml:4: key `guest.default_share_lifetime`: 100d is longer than guest.max_share_lifetime (90d)"),
        "{err}"
    );
}

#[test]
fn rewrites_and_profile_header_removals_shape_what_the_app_receives() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("legacy.toml"),
        r#"
name = "legacy"

[[rule]]
name = "old-viewer"
methods = ["GET"]
regex = '^/legacy/(?P<case>[0-9]+)/(?P<doc>[a-z0-9-]+)$'
rewrite = "/api/cases/{case}/versions/{version}/documents/{doc}"
query.allow = ["page"]

[upstream]
set_headers = { "X-Guest-Email" = "{guest.email}", "X-Guest-Rule" = "{rule}" }
remove_headers = ["Authorization"]
"#,
    )
    .unwrap();
    let g = Instance::start(Opts {
        policies: Some(dir.path().to_path_buf()),
        ..Opts::default()
    });
    let c = g.cookie(EMAIL, &[("sh-l", "42", "3", "legacy")]);
    let r = g.send(
        "GET",
        "/legacy/42/intake-form?page=%32",
        Some(&c),
        &["Authorization: Bearer app-token"],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_denied(
        &g.send("GET", "/legacy/43/intake-form", Some(&c), &[]),
        "scope_mismatch",
    );
    let seen = g.app.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].target,
        "/api/cases/42/versions/3/documents/intake-form?page=2"
    );
    assert_eq!(seen[0].header("x-guest-rule"), Some("old-viewer"));
    assert!(seen[0].header("authorization").is_none());
}

#[test]
fn proxy_errors_are_logged_with_the_request_id_and_fail_with_502() {
    let mut g = Instance::start(Opts::default());
    let c = guest(&g);
    g.app.stop();
    let r = g.send("GET", "/cases/42/versions/3", Some(&c), &[]);
    assert_eq!(r.status, 502);
    let audit = g.audit_until("the failed request", |e| e["status"] == 502);
    let id = audit.iter().find(|e| e["status"] == 502).unwrap()["request_id"]
        .as_str()
        .unwrap()
        .to_string();
    let line = common::wait_for(
        "pingora's error line",
        std::time::Duration::from_secs(5),
        || {
            g.stderr_text()
                .lines()
                .find(|l| l.contains(&format!("request_id={id}")))
                .map(String::from)
        },
    );
    assert!(line.contains("GET /cases/42/versions/3"), "{line}");
    assert!(
        !line.contains(&c["guestgate_session=".len()..]),
        "the session token was logged"
    );
}

#[test]
fn guest_requests_reach_the_app_with_the_configured_host_only() {
    let g = Instance::start(Opts::default());
    let c = guest(&g);
    let doc = "/api/cases/42/versions/3/documents";
    let public = format!("127.0.0.1:{}", g.addr.port());
    // The public hosts (public_url's, and guest.public_hosts) in any case.
    for host in [public.as_str(), "app.test", "APP.test"] {
        let req = format!(
            "GET {doc} HTTP/1.1\r\nHost: {host}\r\nCookie: {c}\r\nConnection: close\r\n\r\n"
        );
        assert_eq!(g.raw(&req).status, 200, "{host}");
    }
    // Any other host is refused for guests, before anything is forwarded.
    for host in ["evil.example", "app.test:81", "127.0.0.1", "app.test."] {
        let req = format!(
            "GET {doc} HTTP/1.1\r\nHost: {host}\r\nCookie: {c}\r\nConnection: close\r\n\r\n"
        );
        let r = g.raw(&req);
        assert_eq!(r.status, 421, "{host}: {}", r.body);
        assert_eq!(r.json()["reason"], "host_not_public");
    }
    let seen = g.app.seen();
    assert_eq!(seen.len(), 3);
    // The app sees upstream.host (by default public_url's), never the client's.
    assert!(
        seen.iter()
            .all(|s| s.header("host") == Some(public.as_str())),
        "{seen:?}"
    );
    // Requests without a session are not guests: their Host is the app's business.
    let r = g.send("GET", "/settings", None, &[]);
    assert_eq!(r.status, 200);
    assert_eq!(g.app.seen()[3].header("host"), Some("app.test"));

    let g = Instance::start(Opts {
        upstream_config: "host = \"cases.internal:8443\"".into(),
        ..Opts::default()
    });
    assert_eq!(g.send("GET", doc, Some(&guest(&g)), &[]).status, 200);
    assert_eq!(g.app.seen()[0].header("host"), Some("cases.internal:8443"));
}

#[test]
fn behind_a_trusted_balancer_the_client_is_the_right_most_untrusted_address() {
    let g = Instance::start(Opts {
        listen_config: "trusted_proxies = [\"127.0.0.0/8\"]".into(),
        ..Opts::default()
    });
    let c = guest(&g);
    let doc = "/api/cases/42/versions/3/documents";
    // The balancer appended the client; what the client wrote on the left is ignored.
    let r = g.send(
        "GET",
        doc,
        Some(&c),
        &["X-Forwarded-For: 6.6.6.6, 198.51.100.7"],
    );
    assert_eq!(r.status, 200);
    let seen = g.app.seen();
    assert_eq!(seen[0].header("x-forwarded-for"), Some("198.51.100.7"));
    let audit = g.audit_until("the guest request", |e| e["decision"] == "allow");
    assert_eq!(audit[0]["client_ip"], "198.51.100.7");

    // Without trusted proxies the peer is the client, whatever the header says.
    let g = Instance::start(Opts::default());
    let r = g.send(
        "GET",
        doc,
        Some(&guest(&g)),
        &["X-Forwarded-For: 198.51.100.7"],
    );
    assert_eq!(r.status, 200);
    assert_eq!(g.app.seen()[0].header("x-forwarded-for"), Some("127.0.0.1"));
}
