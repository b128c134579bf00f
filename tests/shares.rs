//! End-to-end share flow against the real binary and the sample app: admin API → email
//! (outbox or a real SMTP listener) → link → code → session → scoped requests →
//! revocation; plus the code rules, the guest directory and restarts.

mod common;

use std::time::Instant;

use common::{code_and_link, path_of, Browser, Instance, Opts, SmtpSink, ADMIN_KEY, SHARER_KEY};
use serde_json::json;

const GUEST: &str = "expert@clinic.example";

fn create(g: &Instance, key: &str, case: &str, version: &str) -> (String, String) {
    let (st, body) = g.api(
        key,
        "POST",
        "/admin/v1/shares",
        Some(&json!({"email": "  Expert@Clinic.Example ", "case": case, "version": version, "created_by": "Ada Staff"})),
    );
    assert_eq!(st, 201, "{body}");
    assert_eq!(body["status"], "pending");
    assert_eq!(body["email"], "sent");
    assert!(
        body.get("code").is_none(),
        "the API must never return the code"
    );
    (
        body["id"].as_str().unwrap().to_string(),
        body["link"].as_str().unwrap().to_string(),
    )
}

/// The code of the newest email in the outbox, checking it names this link.
fn newest_code(g: &Instance, link: &str) -> String {
    let mails = g.outbox();
    let (code, mailed_link) = code_and_link(mails.last().expect("an email"));
    assert_eq!(mailed_link, link);
    code
}

fn verify(b: &mut Browser<'_>, link: &str, code: &str) -> common::Resp {
    b.post_form(
        &format!("{}/verify", path_of(link)),
        &format!("code={code}"),
    )
}

#[test]
fn the_whole_flow_from_share_to_revoke_all() {
    let g = Instance::start(Opts::default());
    let (id1, link1) = create(&g, SHARER_KEY, "43", "1");
    let code1 = newest_code(&g, &link1);
    let mail = &g.outbox()[0];
    assert!(mail.contains("To: expert@clinic.example"), "{mail}");
    assert!(mail.contains("Ada Staff"), "{mail}");
    assert!(mail.contains("Content-Type: text/html"), "{mail}");

    let mut b = Browser::new(&g);
    let page = b.get(&path_of(&link1));
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("Case 43, version 1") && page.body.contains("e•••@clinic.example"));
    assert!(
        page.body.contains("You can:</strong> read the documents"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("Ada Staff shared this case"),
        "{}",
        page.body
    );
    assert_eq!(page.header("referrer-policy"), Some("same-origin"));

    let r = verify(&mut b, &link1, &code1);
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.header("location"), Some("/cases/43/versions/1"));
    let set = r.header("set-cookie").unwrap();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Lax") && set.contains("Path=/"),
        "{set}"
    );
    assert!(b.cookie.is_some());

    // follow the redirect, read a document, a write is denied
    assert_eq!(b.get("/cases/43/versions/1").status, 200);
    assert_eq!(
        b.get("/api/cases/43/versions/1/documents/2/content").status,
        200
    );
    let del = g.send(
        "DELETE",
        "/api/cases/43/versions/1/documents/2",
        b.cookie.as_deref(),
        &[],
    );
    assert_eq!(del.status, 403);
    let seen = g.app.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].header("x-guest-share"), Some(id1.as_str()));
    assert_eq!(seen[0].header("x-guest-email"), Some(GUEST));

    // the API shows the share accepted
    let (_, s) = g.api(SHARER_KEY, "GET", &format!("/admin/v1/shares/{id1}"), None);
    assert_eq!(s["status"], "active");
    assert!(s["accepted_at"].is_string() && s["last_access"].is_string());

    // a second share for the same guest, verified in the same browser: both cases
    let (id2, link2) = create(&g, SHARER_KEY, "7", "2");
    let code2 = newest_code(&g, &link2);
    assert_eq!(verify(&mut b, &link2, &code2).status, 303);
    assert_eq!(b.get("/cases/43/versions/1").status, 200);
    assert_eq!(b.get("/cases/7/versions/2").status, 200);
    assert_eq!(
        b.get("/cases/42/versions/3").status,
        403,
        "a share of this guest not verified in this browser"
    );
    let held = b.get("/_guestgate/guest");
    assert!(
        held.body.contains("Case 43, version 1") && held.body.contains("Case 7, version 2"),
        "{}",
        held.body
    );

    // revoke one: the very next request is denied, the other still works
    let (st, _) = g.api(
        SHARER_KEY,
        "DELETE",
        &format!("/admin/v1/shares/{id1}"),
        None,
    );
    assert_eq!(st, 204);
    let returned = Instant::now();
    let after = g.send("GET", "/cases/43/versions/1", b.cookie.as_deref(), &[]);
    let lag = returned.elapsed();
    assert_eq!(after.status, 403);
    assert_eq!(after.json()["reason"], "share_inactive");
    println!("revocation: next request denied {lag:?} after DELETE returned");
    assert_eq!(b.get("/cases/7/versions/2").status, 200);
    // revoking again is idempotent
    assert_eq!(
        g.api(
            SHARER_KEY,
            "DELETE",
            &format!("/admin/v1/shares/{id1}"),
            None
        )
        .0,
        204
    );

    // the directory; sharers cannot see or revoke guests organisation-wide
    assert_eq!(g.api(SHARER_KEY, "GET", "/admin/v1/guests", None).0, 403);
    assert_eq!(
        g.api(
            SHARER_KEY,
            "DELETE",
            "/admin/v1/guests/expert%40clinic.example",
            None
        )
        .0,
        403
    );
    let (st, guests) = g.api(ADMIN_KEY, "GET", "/admin/v1/guests", None);
    assert_eq!(st, 200);
    let me = guests["guests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["email"] == GUEST)
        .unwrap()
        .clone();
    // the share made an invited account; the verified code accepted it
    assert_eq!(me["status"], "accepted");
    // seeded sh-42, sh-7, sh-l are active too; id2 active, id1 revoked
    assert_eq!(me["active_shares"], 4);
    assert!(me["last_access"].is_string());
    let (_, theirs) = g.api(
        ADMIN_KEY,
        "GET",
        "/admin/v1/guests/expert%40clinic.example/shares",
        None,
    );
    let ids: Vec<&str> = theirs["shares"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&id1.as_str()) && ids.contains(&id2.as_str()));
    let revoked = theirs["shares"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id1.as_str())
        .unwrap();
    assert_eq!(revoked["status"], "revoked");
    assert_eq!(revoked["revoked_by"], "paralegal");

    // revoke everything of this guest: everything denied
    let (st, r) = g.api(
        ADMIN_KEY,
        "DELETE",
        "/admin/v1/guests/expert%40clinic.example",
        None,
    );
    assert_eq!(st, 200, "{r}");
    assert!(r["revoked"]
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x == id2.as_str()));
    assert_eq!(b.get("/cases/7/versions/2").status, 403);
    // a revoked link shows the same page as an unknown one
    let dead = b.get(&path_of(&link1));
    let unknown = b.get(&format!("/_guestgate/s/{}", "ab".repeat(24)));
    assert_eq!((dead.status, unknown.status), (404, 404));
    assert_eq!(dead.body, unknown.body);

    // audit: admin actions and challenge events are in the same stream, no secrets
    // the last event written is the denial after revoke-all; wait for the revoke itself
    let audit = g.audit_until("guest.revoke audit line", |e| {
        e["action"] == "guest.revoke" && e["status"] == 200
    });
    assert!(audit.iter().any(|e| e["kind"] == "admin"
        && e["action"] == "share.create"
        && e["actor"] == "paralegal"));
    assert!(audit
        .iter()
        .any(|e| e["kind"] == "admin" && e["action"] == "guest.revoke" && e["count"] == 4));
    assert!(audit.iter().any(|e| e["kind"] == "challenge"
        && e["event"] == "verified"
        && e["share"] == id1.as_str()));
    let everything = format!(
        "{}\n{}",
        std::fs::read_to_string(g.dir.path().join("audit.log")).unwrap(),
        g.stderr_text()
    );
    let token1 = link1.rsplit('/').next().unwrap();
    let signing_key = std::fs::read_to_string(g.dir.path().join("session.key")).unwrap();
    for secret in [
        code1.as_str(),
        code2.as_str(),
        token1,
        &b.cookie.clone().unwrap_or_default(),
        signing_key.trim(),
        common::ADMIN_KEY,
        common::SHARER_KEY,
    ] {
        assert!(
            !secret.is_empty() && !everything.contains(secret),
            "a secret reached the logs"
        );
    }
}

#[test]
fn five_wrong_codes_kill_the_code_and_a_used_code_fails() {
    let g = Instance::start(Opts::default());
    let (_, link) = create(&g, ADMIN_KEY, "43", "1");
    let code = newest_code(&g, &link);
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let mut b = Browser::new(&g);
    for left in (0..5).rev() {
        // a wrong code sends the browser back to the code page (303), never re-posting
        let r = verify(&mut b, &link, wrong);
        assert_eq!(r.sent_back(), Some(format!("e=wrong&left={left}")), "{r:?}");
        let page = b.get(r.header("location").unwrap());
        let said = if left > 0 {
            format!("{left} tr")
        } else {
            "can no longer be used".to_string()
        };
        assert!(page.body.contains(&said), "{}", page.body);
    }
    let r = verify(&mut b, &link, &code);
    assert_eq!(
        r.sent_back().as_deref(),
        Some("e=expired"),
        "the right code must fail once the code is dead"
    );
    assert!(b.cookie.is_none());

    // a new code (after the resend interval is configured to 1s below) works once
    let g = Instance::start(Opts {
        guest_config: "resend_interval = \"1s\"".into(),
        ..Opts::default()
    });
    let (_, link) = create(&g, ADMIN_KEY, "43", "1");
    let code = newest_code(&g, &link);
    let mut b = Browser::new(&g);
    assert_eq!(verify(&mut b, &link, &code).status, 303);
    let mut other = Browser::new(&g);
    let r = verify(&mut other, &link, &code);
    assert_eq!(
        r.sent_back().as_deref(),
        Some("e=expired"),
        "a used code fails"
    );
    let page = other.get(r.header("location").unwrap());
    assert!(page.body.contains("already used"), "{}", page.body);
}

#[test]
fn expired_codes_fail_and_resend_is_rate_limited() {
    let g = Instance::start(Opts {
        guest_config: "code_lifetime = \"1s\"".into(),
        ..Opts::default()
    });
    let (_, link) = create(&g, ADMIN_KEY, "43", "1");
    let code = newest_code(&g, &link);
    // The code lives one second; wait past it (expiry is wall-clock by nature).
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let mut b = Browser::new(&g);
    let r = verify(&mut b, &link, &code);
    assert_eq!(r.sent_back().as_deref(), Some("e=expired"));
    assert!(b
        .get(r.header("location").unwrap())
        .body
        .contains("expired"));
    // resend right after the invitation: refused (default interval 60 s)
    let r = b.post_form(&format!("{}/resend", path_of(&link)), "");
    let back = r.sent_back().unwrap_or_else(|| panic!("{r:?}"));
    assert!(back.starts_with("e=wait&s="), "{back}");
    assert!(b
        .get(r.header("location").unwrap())
        .body
        .contains("You can ask for another in"));
    assert_eq!(g.outbox().len(), 1);
}

#[test]
fn parallel_verification_of_one_code_yields_one_session() {
    let g = Instance::start(Opts::default());
    let (_, link) = create(&g, ADMIN_KEY, "43", "1");
    let code = newest_code(&g, &link);
    let outcomes: Vec<Option<String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    let mut b = Browser::new(&g);
                    let r = verify(&mut b, &link, &code);
                    // None: verified (a session); Some: sent back to the code page
                    r.sent_back()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        outcomes.iter().filter(|o| o.is_none()).count(),
        1,
        "{outcomes:?}"
    );
    assert!(
        outcomes.iter().flatten().all(|o| o == "e=expired"),
        "{outcomes:?}"
    );
}

#[test]
fn cross_origin_posts_and_bad_admin_calls_are_refused() {
    let g = Instance::start(Opts::default());
    let (_, link) = create(&g, ADMIN_KEY, "43", "1");
    let code = newest_code(&g, &link);
    let body = format!("code={code}");
    let len = format!("Content-Length: {}", body.len());
    for origin in [None, Some("Origin: https://evil.example")] {
        let mut extra = vec![
            "Content-Type: application/x-www-form-urlencoded",
            len.as_str(),
        ];
        if let Some(o) = origin {
            extra.push(o);
        }
        let mut req = common::request("POST", &format!("{}/verify", path_of(&link)), None, &extra);
        req.push_str(&body);
        assert_eq!(g.raw(&req).status, 403);
    }
    // the code was not consumed by those
    assert_eq!(verify(&mut Browser::new(&g), &link, &code).status, 303);

    assert_eq!(g.api("wrong-key", "GET", "/admin/v1/shares", None).0, 401);
    let (st, e) = g.api(
        ADMIN_KEY,
        "POST",
        "/admin/v1/shares",
        Some(&json!({"email": "not-an-email", "case": "1", "version": "1"})),
    );
    assert_eq!((st, e["error"].as_str()), (422, Some("invalid")));
    assert!(e["reason"].as_str().unwrap().starts_with("email:"));
    let (st, e) = g.api(
        ADMIN_KEY,
        "POST",
        "/admin/v1/shares",
        Some(&json!({"email": "a@b.example", "case": "1", "version": "1", "profile": "owner"})),
    );
    assert_eq!(st, 422);
    assert!(
        e["reason"].as_str().unwrap().contains("no profile `owner`"),
        "{e}"
    );
    let (st, _) = g.api(
        ADMIN_KEY,
        "POST",
        "/admin/v1/shares",
        Some(&json!({"email": "a@b.example", "case": "../1", "version": "1"})),
    );
    assert_eq!(st, 422);
    let (st, _) = g.api(ADMIN_KEY, "POST", "/admin/v1/shares", Some(&json!({"email": "a@b.example", "case": "1", "version": "1", "expires_in": 999_999_999})));
    assert_eq!(st, 422);
    let (st, e) = g.api(
        ADMIN_KEY,
        "POST",
        "/admin/v1/shares",
        Some(&json!({"email": "a@b.example", "case": "1", "version": "1", "extra": true})),
    );
    assert_eq!((st, e["error"].as_str()), (400, Some("invalid_json")));
    let big = json!({"email": "a@b.example", "case": "1", "version": "1", "created_by": "x".repeat(20_000)});
    assert_eq!(
        g.api(ADMIN_KEY, "POST", "/admin/v1/shares", Some(&big)).0,
        413
    );
    assert_eq!(
        g.api(ADMIN_KEY, "DELETE", "/admin/v1/shares/sh_nope", None)
            .0,
        404
    );
}

#[test]
fn a_restart_keeps_every_share_revocation_and_session() {
    let mut g = Instance::start(Opts::default());
    let (_, link_a) = create(&g, ADMIN_KEY, "43", "1");
    let code_a = newest_code(&g, &link_a);
    let mut b = Browser::new(&g);
    assert_eq!(verify(&mut b, &link_a, &code_a).status, 303);
    let cookie = b.cookie.clone();
    let (id_b, link_b) = create(&g, ADMIN_KEY, "7", "2");
    let code_b = newest_code(&g, &link_b);
    let (id_c, _) = create(&g, ADMIN_KEY, "7", "1");
    assert_eq!(
        g.api(
            ADMIN_KEY,
            "DELETE",
            &format!("/admin/v1/shares/{id_c}"),
            None
        )
        .0,
        204
    );

    g.restart();

    let (_, list) = g.api(
        ADMIN_KEY,
        "GET",
        "/admin/v1/shares?email=expert%40clinic.example",
        None,
    );
    let status = |id: &str| {
        list["shares"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == id)
            .unwrap()["status"]
            .clone()
    };
    assert_eq!(status(&id_b), "pending");
    assert_eq!(status(&id_c), "revoked");
    // the session from before the restart still works (same key, same share state)
    assert_eq!(
        g.send("GET", "/cases/43/versions/1", cookie.as_deref(), &[])
            .status,
        200
    );
    // the pending code from before the restart still works
    let mut b2 = Browser::new(&g);
    assert_eq!(verify(&mut b2, &link_b, &code_b).status, 303);
}

#[test]
fn invitations_go_through_a_real_smtp_listener() {
    let sink = SmtpSink::start();
    let g = Instance::start(Opts {
        mail_config: Some(format!(
            "transport = \"smtp\"\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {}\nsmtp_security = \"none\"\nfrom = \"Case Desk <cases@firm.example>\"",
            sink.port
        )),
        ..Opts::default()
    });
    let (_, link) = create(&g, ADMIN_KEY, "43", "1");
    let msgs = sink.messages.lock().unwrap().clone();
    assert_eq!(msgs.len(), 1);
    assert!(
        msgs[0].contains("From: \"Case Desk\" <cases@firm.example>")
            || msgs[0].contains("From: Case Desk <cases@firm.example>"),
        "{}",
        msgs[0]
    );
    let (code, mailed) = code_and_link(&msgs[0]);
    assert_eq!(mailed, link);
    assert_eq!(verify(&mut Browser::new(&g), &link, &code).status, 303);
}

#[test]
fn revocation_is_seen_by_the_very_next_request_every_time() {
    // 100 verifications from one address: lift the per-IP throttle for this test.
    let g = Instance::start(Opts {
        guest_config: "verify_per_ip_per_minute = 1000".into(),
        ..Opts::default()
    });
    let mut lags = Vec::new();
    for i in 0..100 {
        let (st, body) = g.api(
            ADMIN_KEY,
            "POST",
            "/admin/v1/shares",
            Some(&json!({"email": format!("g{i}@lab.example"), "case": "43", "version": "1"})),
        );
        assert_eq!(st, 201);
        let (id, link) = (
            body["id"].as_str().unwrap().to_string(),
            body["link"].as_str().unwrap().to_string(),
        );
        let code = newest_code(&g, &link);
        let mut b = Browser::new(&g);
        assert_eq!(verify(&mut b, &link, &code).status, 303);
        assert_eq!(b.get("/cases/43/versions/1").status, 200);
        assert_eq!(
            g.api(ADMIN_KEY, "DELETE", &format!("/admin/v1/shares/{id}"), None)
                .0,
            204
        );
        let returned = Instant::now();
        let r = g.send("GET", "/cases/43/versions/1", b.cookie.as_deref(), &[]);
        lags.push(returned.elapsed());
        assert_eq!(r.status, 403, "revocation {i} not seen by the next request");
    }
    lags.sort();
    println!(
        "revocation → next request denied, 100 revocations: p50 {:?}, p99 {:?}, max {:?} (first request after DELETE denied 100/100)",
        lags[49], lags[98], lags[99]
    );
}

#[test]
fn verification_is_throttled_per_client_address() {
    let g = Instance::start(Opts {
        guest_config: "verify_per_ip_per_minute = 3".into(),
        ..Opts::default()
    });
    let (_, link) = create(&g, ADMIN_KEY, "43", "1");
    let code = newest_code(&g, &link);
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let mut b = Browser::new(&g);
    common::clear_of_minute_boundary();
    for _ in 0..3 {
        assert!(verify(&mut b, &link, wrong).sent_back().is_some());
    }
    let r = verify(&mut b, &link, &code);
    assert_eq!(
        r.status, 429,
        "the 4th try this minute is refused before the code is checked"
    );
    assert_eq!(r.header("retry-after"), Some("60"));
    assert!(b.cookie.is_none());
}

/// Behind a load balancer every guest arrives from the balancer's address: with
/// `listen.trusted_proxies` each is throttled on its own forwarded address, so one holder
/// of a link cannot keep everyone else at 429.
#[test]
fn behind_a_trusted_balancer_each_client_has_its_own_throttle() {
    let g = Instance::start(Opts {
        guest_config: "verify_per_ip_per_minute = 3".into(),
        listen_config: "trusted_proxies = [\"127.0.0.1\"]".into(),
        ..Opts::default()
    });
    let (_, link) = create(&g, ADMIN_KEY, "43", "1");
    let code = newest_code(&g, &link);
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let mut noisy = Browser::new(&g);
    noisy.extra = vec!["X-Forwarded-For: 203.0.113.10".into()];
    let mut guest = Browser::new(&g);
    guest.extra = vec!["X-Forwarded-For: 203.0.113.20".into()];
    common::clear_of_minute_boundary();
    for _ in 0..4 {
        verify(&mut noisy, &link, wrong);
    }
    assert_eq!(verify(&mut noisy, &link, wrong).status, 429);
    // a forged left-hand entry does not escape the throttle either
    noisy.extra = vec!["X-Forwarded-For: 192.0.2.1, 203.0.113.10".into()];
    assert_eq!(verify(&mut noisy, &link, wrong).status, 429);
    let r = verify(&mut guest, &link, &code);
    assert_eq!(r.status, 303, "{}", r.body);
    let audit = g.audit_until("verified", |e| e["event"] == "verified");
    let verified = audit.iter().find(|e| e["event"] == "verified").unwrap();
    assert_eq!(verified["client_ip"], "203.0.113.20");
}

#[test]
fn the_cli_verbs_drive_the_admin_api() {
    let g = Instance::start(Opts::default());
    let cli = |key: &str, args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_guestgate"))
            .args(args)
            .env("GUESTGATE_ADMIN_URL", format!("http://{}", g.admin))
            .env("GUESTGATE_ADMIN_TOKEN", key)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = cli(
        SHARER_KEY,
        &[
            "share",
            "create",
            "--email",
            "cli@lab.example",
            "--case",
            "43",
            "--version",
            "1",
            "--expires-in",
            "2d",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    let created: serde_json::Value = serde_json::from_str(&out).unwrap();
    let id = created["id"].as_str().unwrap().to_string();
    assert!(created["link"].as_str().unwrap().contains("/_guestgate/s/"));
    let (_, out, _) = cli(SHARER_KEY, &["share", "list", "--email", "cli@lab.example"]);
    assert!(out.contains(&id));
    let (_, out, _) = cli(SHARER_KEY, &["share", "show", &id]);
    assert!(out.contains("\"status\": \"pending\""), "{out}");
    let (code, _, err) = cli(SHARER_KEY, &["guests", "list"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("403 forbidden"), "{err}");
    let (code, out, _) = cli(ADMIN_KEY, &["guests", "shares", "cli@lab.example"]);
    assert_eq!(code, Some(0));
    assert!(out.contains(&id));
    let (code, _, _) = cli(SHARER_KEY, &["share", "revoke", &id]);
    assert_eq!(code, Some(0));
    let (_, out, _) = cli(ADMIN_KEY, &["guests", "revoke", "cli@lab.example"]);
    assert!(out.contains("\"revoked\": []"), "already revoked: {out}");
    let (code, _, err) = cli("bad-key", &["share", "list"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("401"), "{err}");
    let (code, out, _) = cli(
        "",
        &["admin", "new-key", "--name", "case-app", "--role", "admin"],
    );
    assert_eq!(code, Some(0));
    assert!(
        out.contains("[[admin.keys]]") && out.contains("sha256 = \""),
        "{out}"
    );
}

#[test]
fn logout_ends_the_session_and_pages_say_what_the_profile_allows() {
    let g = Instance::start(Opts::default());
    let (st, body) = g.api(
        ADMIN_KEY,
        "POST",
        "/admin/v1/shares",
        Some(&json!({"email": "collab@lab.example", "case": "7", "version": "1", "profile": "collaborator"})),
    );
    assert_eq!(st, 201);
    let link = body["link"].as_str().unwrap().to_string();
    let mut b = Browser::new(&g);
    let page = b.get(&path_of(&link));
    assert!(
        page.body.contains(
            "read the documents of this case version and edit its metadata and categories"
        ),
        "{}",
        page.body
    );
    assert!(page
        .body
        .contains("You cannot:</strong> upload or delete documents"));
    let code = newest_code(&g, &link);
    assert_eq!(verify(&mut b, &link, &code).status, 303);
    assert_eq!(
        g.send(
            "PATCH",
            "/api/cases/7/versions/1/metadata",
            b.cookie.as_deref(),
            &[]
        )
        .status,
        200
    );

    let r = b.post_form("/_guestgate/logout", "");
    assert_eq!(r.status, 200);
    assert!(r.header("set-cookie").unwrap().contains("Max-Age=0"));
    assert!(b.cookie.is_none());
    assert!(b
        .get("/_guestgate/guest")
        .body
        .contains("No case is shared with you"));

    let audit = g.audit_until("logout event", |e| e["event"] == "logout");
    let create = audit
        .iter()
        .find(|e| e["action"] == "share.create")
        .unwrap();
    assert_eq!(create["email"], "sent");
    assert_eq!(create["case"], "7");
}
