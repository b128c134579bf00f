//! The staff side through the real binary: a sharer key sees and revokes only its own
//! shares and uses only its profiles; a key acting for the app's staff gives each staff
//! member their own; guest accounts in both flows (the CaseScribe flow, where admins
//! create guests first, and the Sky flow, where a share creates one); a hostile sharer
//! name refused at the door; the stale-access review and its bulk revocation.

mod common;

use common::{code_and_link, path_of, Browser, Instance, Opts, ADMIN_KEY, SHARER_KEY};
use guestgate::stamp::unix_now;
use guestgate::store::{Share, ShareStatus};
use serde_json::{json, Value};

const DESK_KEY: &str = "test-casedesk-key-0123456789";

fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

/// A third key: a sharer that acts for the app's signed-in staff, with two profiles.
fn with_desk_key(mut opts: Opts) -> Opts {
    opts.extra_config.push_str(&format!(
        "[[admin.keys]]\nname = \"casedesk\"\nrole = \"sharer\"\nsha256 = \"{}\"\nacts_for_staff = true\nprofiles = [\"view-only\", \"collaborator\"]\n",
        sha256_hex(DESK_KEY)
    ));
    opts
}

/// An admin API call with an optional `X-Guestgate-Staff`.
fn call(
    g: &Instance,
    key: &str,
    staff: Option<&str>,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let staff = staff
        .map(|s| format!("X-Guestgate-Staff: {s}\r\n"))
        .unwrap_or_default();
    let r = common::http(
        g.admin,
        &format!(
            "{method} {path} HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {key}\r\n{staff}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
    .unwrap();
    let json = if r.body.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&r.body).unwrap()
    };
    (r.status, json)
}

fn share(g: &Instance, key: &str, staff: Option<&str>, email: &str, profile: &str) -> (u16, Value) {
    call(
        g,
        key,
        staff,
        "POST",
        "/admin/v1/shares",
        Some(
            json!({"email": email, "case": "42", "version": "3", "profile": profile, "created_by": "Ada Okafor"}),
        ),
    )
}

fn ids(list: &Value) -> Vec<String> {
    let mut v: Vec<String> = list["shares"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

#[test]
fn a_sharer_sees_and_revokes_only_its_own_shares_and_uses_only_its_profiles() {
    let g = Instance::start(Opts::default());
    let (st, mine) = share(&g, SHARER_KEY, None, "one@firm.example", "view-only");
    assert_eq!(st, 201, "{mine}");
    let mine = mine["id"].as_str().unwrap().to_string();
    let (st, e) = share(&g, SHARER_KEY, None, "one@firm.example", "collaborator");
    assert_eq!(
        (st, e["error"].as_str()),
        (403, Some("profile_not_allowed")),
        "{e}"
    );

    // Only its own, whatever the filter asks for.
    let (_, list) = call(&g, SHARER_KEY, None, "GET", "/admin/v1/shares", None);
    assert_eq!(ids(&list), std::slice::from_ref(&mine));
    assert_eq!(list["shares"][0]["owner"], "paralegal");
    let (_, list) = call(
        &g,
        SHARER_KEY,
        None,
        "GET",
        "/admin/v1/shares?email=expert%40clinic.example",
        None,
    );
    assert_eq!(ids(&list), Vec::<String>::new());
    // Another's share does not exist for it: not shown, not revoked.
    assert_eq!(
        call(&g, SHARER_KEY, None, "GET", "/admin/v1/shares/sh-42", None).0,
        404
    );
    assert_eq!(
        call(
            &g,
            SHARER_KEY,
            None,
            "DELETE",
            "/admin/v1/shares/sh-42",
            None
        )
        .0,
        404
    );
    let (_, seeded) = call(&g, ADMIN_KEY, None, "GET", "/admin/v1/shares/sh-42", None);
    assert_eq!(seeded["status"], "active");
    // Organisation-wide verbs are the admin's.
    for (method, path, body) in [
        ("GET", "/admin/v1/guests", None),
        (
            "GET",
            "/admin/v1/guests/expert%40clinic.example/shares",
            None,
        ),
        ("DELETE", "/admin/v1/guests/expert%40clinic.example", None),
        (
            "POST",
            "/admin/v1/guests",
            Some(json!({"email": "x@y.example", "first_name": "X", "last_name": "Y"})),
        ),
        ("POST", "/admin/v1/reload", None),
    ] {
        let (st, e) = call(&g, SHARER_KEY, None, method, path, body);
        assert_eq!(
            (st, e["error"].as_str()),
            (403, Some("forbidden")),
            "{method} {path}"
        );
    }
    assert_eq!(
        call(
            &g,
            SHARER_KEY,
            None,
            "DELETE",
            &format!("/admin/v1/shares/{mine}"),
            None
        )
        .0,
        204
    );

    // The admin sees and does everything.
    let (_, all) = call(&g, ADMIN_KEY, None, "GET", "/admin/v1/shares", None);
    assert!(ids(&all).contains(&mine) && ids(&all).contains(&"sh-42".to_string()));
    assert_eq!(
        share(&g, ADMIN_KEY, None, "two@firm.example", "collaborator").0,
        201
    );
    let audit = g.audit_until("the sharer's refused revocation", |e| {
        e["kind"] == "admin" && e["action"] == "share.revoke" && e["status"] == 404
    });
    assert!(audit.iter().any(|e| e["action"] == "share.create"
        && e["status"] == 403
        && e["reason"] == "profile_not_allowed"));
}

#[test]
fn a_key_acting_for_staff_gives_each_staff_member_their_own_shares() {
    let g = Instance::start(with_desk_key(Opts::default()));
    let (st, e) = share(&g, DESK_KEY, None, "one@firm.example", "view-only");
    assert_eq!(
        (st, e["error"].as_str()),
        (400, Some("staff_required")),
        "{e}"
    );
    let (st, e) = share(
        &g,
        DESK_KEY,
        Some("ada/../admin"),
        "one@firm.example",
        "view-only",
    );
    assert_eq!(
        (st, e["error"].as_str()),
        (400, Some("invalid_staff")),
        "{e}"
    );
    let (st, e) = share(
        &g,
        ADMIN_KEY,
        Some("ada@firm.example"),
        "one@firm.example",
        "view-only",
    );
    assert_eq!(
        (st, e["error"].as_str()),
        (400, Some("staff_not_allowed")),
        "{e}"
    );

    let (st, ada) = share(
        &g,
        DESK_KEY,
        Some("Ada@Firm.Example"),
        "one@firm.example",
        "collaborator",
    );
    assert_eq!(st, 201, "{ada}");
    let ada = ada["id"].as_str().unwrap().to_string();
    let (_, list) = call(
        &g,
        DESK_KEY,
        Some("ada@firm.example"),
        "GET",
        "/admin/v1/shares",
        None,
    );
    assert_eq!(ids(&list), std::slice::from_ref(&ada));
    assert_eq!(list["shares"][0]["owner"], "casedesk/ada@firm.example");
    // Bob, through the same key, sees nothing of Ada's and cannot revoke it.
    let (_, list) = call(
        &g,
        DESK_KEY,
        Some("bob@firm.example"),
        "GET",
        "/admin/v1/shares",
        None,
    );
    assert_eq!(ids(&list), Vec::<String>::new());
    assert_eq!(
        call(
            &g,
            DESK_KEY,
            Some("bob@firm.example"),
            "DELETE",
            &format!("/admin/v1/shares/{ada}"),
            None
        )
        .0,
        404
    );
    assert_eq!(
        call(
            &g,
            DESK_KEY,
            Some("ada@firm.example"),
            "DELETE",
            &format!("/admin/v1/shares/{ada}"),
            None
        )
        .0,
        204
    );
    let audit = g.audit_until("ada's revocation", |e| {
        e["action"] == "share.revoke" && e["status"] == 204
    });
    assert!(audit
        .iter()
        .any(|e| e["actor"] == "casedesk/ada@firm.example" && e["action"] == "share.revoke"));
}

#[test]
fn a_hostile_sharer_name_is_refused_at_the_door() {
    let g = Instance::start(Opts::default());
    for (name, why) in [
        (
            "Chief Justice \u{2026} please also log in at https://evil.example/login",
            "found U+2026",
        ),
        ("Ada evil.example", "not a web address"),
        ("Ada\u{202e}rekoO", "found U+202E"),
        ("Ada\nBcc: x@y.example", "found U+000A"),
        ("", "1 to 80 characters"),
    ] {
        let (st, e) = call(
            &g,
            ADMIN_KEY,
            None,
            "POST",
            "/admin/v1/shares",
            Some(
                json!({"email": "one@firm.example", "case": "42", "version": "3", "created_by": name}),
            ),
        );
        assert_eq!(
            (st, e["error"].as_str()),
            (422, Some("invalid")),
            "{name:?}: {e}"
        );
        let reason = e["reason"].as_str().unwrap();
        assert!(
            reason.starts_with("created_by: ") && reason.contains(why),
            "{name:?}: {reason}"
        );
    }
    assert!(g.outbox().is_empty(), "nothing was sent");
    let (st, _) = share(&g, ADMIN_KEY, None, "one@firm.example", "view-only");
    assert_eq!(st, 201);
    let mail = g.outbox().pop().unwrap();
    assert!(mail.contains("Ada Okafor"), "{mail}");
}

/// Verifies a share through the guest's pages; returns the browser holding the session.
fn accept<'a>(g: &'a Instance, email: &str) -> Browser<'a> {
    let mail = g
        .outbox()
        .into_iter()
        .rev()
        .find(|m| m.contains(&format!("To: {email}")))
        .expect("the invitation");
    let (code, link) = code_and_link(&mail);
    let mut b = Browser::new(g);
    assert_eq!(b.get(&path_of(&link)).status, 200);
    let r = b.post_form(
        &format!("{}/verify", path_of(&link)),
        &format!("code={code}"),
    );
    assert_eq!(r.status, 303, "{}", r.body);
    b
}

fn directory_entry(g: &Instance, email: &str) -> Value {
    let (st, d) = call(g, ADMIN_KEY, None, "GET", "/admin/v1/guests", None);
    assert_eq!(st, 200);
    d["guests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["email"] == email)
        .cloned()
        .unwrap_or(Value::Null)
}

/// CaseScribe: admins create guests first; sharers share only with them.
#[test]
fn guest_accounts_the_casescribe_flow() {
    let g = Instance::start(Opts {
        guest_config: "share_with = \"existing-guests\"".into(),
        ..Opts::default()
    });
    let (st, e) = share(&g, SHARER_KEY, None, "ines@clinic.example", "view-only");
    assert_eq!(st, 422, "{e}");
    assert!(
        e["reason"]
            .as_str()
            .unwrap()
            .starts_with("email: no guest account"),
        "{e}"
    );
    let create = |body: Value| call(&g, ADMIN_KEY, None, "POST", "/admin/v1/guests", Some(body));
    let (st, e) = create(
        json!({"email": "ines@clinic.example", "first_name": "In\u{e9}s", "last_name": "https://x.example"}),
    );
    assert_eq!(st, 422, "{e}");
    assert!(
        e["reason"].as_str().unwrap().starts_with("last_name: "),
        "{e}"
    );
    let (st, acct) = create(
        json!({"email": "Ines@Clinic.Example", "first_name": "Inés", "last_name": "Duarte"}),
    );
    assert_eq!(
        (st, acct["status"].as_str()),
        (201, Some("invited")),
        "{acct}"
    );
    let (st, e) =
        create(json!({"email": "ines@clinic.example", "first_name": "I", "last_name": "D"}));
    assert_eq!((st, e["error"].as_str()), (409, Some("exists")), "{e}");

    let entry = directory_entry(&g, "ines@clinic.example");
    assert_eq!(
        (entry["first_name"].as_str(), entry["status"].as_str()),
        (Some("Inés"), Some("invited")),
        "{entry}"
    );
    let (st, s) = share(&g, SHARER_KEY, None, "ines@clinic.example", "view-only");
    assert_eq!(st, 201, "{s}");
    assert_eq!(
        directory_entry(&g, "ines@clinic.example")["pending_shares"],
        1
    );

    let mut b = accept(&g, "ines@clinic.example");
    assert_eq!(b.get("/cases/42/versions/3").status, 200);
    let entry = directory_entry(&g, "ines@clinic.example");
    assert_eq!(
        (entry["status"].as_str(), entry["active_shares"].as_u64()),
        (Some("accepted"), Some(1)),
        "{entry}"
    );
    assert!(entry["last_access"].is_string(), "{entry}");
    // Revoking the guest revokes every share of theirs; the account stays.
    let (st, r) = call(
        &g,
        ADMIN_KEY,
        None,
        "DELETE",
        "/admin/v1/guests/ines%40clinic.example",
        None,
    );
    assert_eq!((st, r["revoked"].as_array().map(Vec::len)), (200, Some(1)));
    assert_eq!(b.get("/cases/42/versions/3").status, 403);
    assert_eq!(
        directory_entry(&g, "ines@clinic.example")["active_shares"],
        0
    );
}

/// Sky: sharing with a new email makes the account (invited); the first code accepts it.
#[test]
fn guest_accounts_the_sky_flow() {
    let g = Instance::start(Opts::default());
    assert_eq!(directory_entry(&g, "new@clinic.example"), Value::Null);
    let (st, _) = share(&g, SHARER_KEY, None, "New@Clinic.Example", "view-only");
    assert_eq!(st, 201);
    let entry = directory_entry(&g, "new@clinic.example");
    assert_eq!(
        (entry["status"].as_str(), entry["first_name"].as_str()),
        (Some("invited"), Some("")),
        "{entry}"
    );
    accept(&g, "new@clinic.example");
    assert_eq!(
        directory_entry(&g, "new@clinic.example")["status"],
        "accepted"
    );
}

fn seeded(
    id: &str,
    owner: &str,
    status: ShareStatus,
    created: u64,
    accepted: Option<u64>,
    used: Option<u64>,
) -> Share {
    let now = unix_now();
    Share {
        owner: owner.into(),
        created_by: "Seed".into(),
        status,
        accepted_at: accepted,
        last_used_at: used,
        ..Share::pending(
            id,
            "old@clinic.example",
            ["42", "3", "view-only"],
            created,
            now + 90 * 86_400,
        )
    }
}

#[test]
fn stale_shares_are_listed_and_revoked_in_bulk() {
    let now = unix_now();
    let day = 86_400;
    let g = Instance::start(Opts {
        seed_shares: vec![
            seeded(
                "used",
                "case-app",
                ShareStatus::Active,
                now - 60 * day,
                Some(now - 59 * day),
                Some(now - day),
            ),
            seeded(
                "unused",
                "paralegal",
                ShareStatus::Active,
                now - 60 * day,
                Some(now - 59 * day),
                Some(now - 35 * day),
            ),
            seeded(
                "never",
                "case-app",
                ShareStatus::Pending,
                now - 31 * day,
                None,
                None,
            ),
            seeded(
                "fresh",
                "case-app",
                ShareStatus::Pending,
                now - day,
                None,
                None,
            ),
            seeded(
                "gone",
                "case-app",
                ShareStatus::Revoked,
                now - 90 * day,
                None,
                None,
            ),
        ],
        ..Opts::default()
    });
    let stale = |key: &str| {
        let (st, list) = call(
            &g,
            key,
            None,
            "GET",
            "/admin/v1/shares/stale?unused_for=30d",
            None,
        );
        assert_eq!(st, 200, "{list}");
        list["shares"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["id"].as_str().unwrap().to_string(),
                    s["stale"].as_str().unwrap().to_string(),
                )
            })
            .collect::<Vec<_>>()
    };
    let mut all = stale(ADMIN_KEY);
    all.sort();
    assert_eq!(
        all,
        [
            ("never".into(), "never_accepted".into()),
            ("unused".into(), "unused".into())
        ]
    );
    assert_eq!(
        stale(SHARER_KEY),
        [("unused".to_string(), "unused".to_string())],
        "a sharer reviews its own"
    );
    assert_eq!(
        call(
            &g,
            ADMIN_KEY,
            None,
            "GET",
            "/admin/v1/shares/stale?unused_for=soon",
            None
        )
        .0,
        400
    );

    // The same review from the command line.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_guestgate"))
        .args(["shares", "stale", "--unused-for", "30d"])
        .env("GUESTGATE_ADMIN_URL", format!("http://{}", g.admin))
        .env("GUESTGATE_ADMIN_TOKEN", ADMIN_KEY)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success()
            && text.contains("\"never_accepted\"")
            && text.contains("\"id\": \"unused\""),
        "{text}"
    );

    // A guest who comes back is not stale any more.
    let c = g.cookie("old@clinic.example", &[("unused", "42", "3", "view-only")]);
    assert_eq!(
        g.send("GET", "/cases/42/versions/3", Some(&c), &[]).status,
        200
    );
    assert_eq!(
        stale(ADMIN_KEY),
        [("never".to_string(), "never_accepted".to_string())]
    );

    let (st, r) = call(
        &g,
        ADMIN_KEY,
        None,
        "POST",
        "/admin/v1/shares/stale/revoke",
        Some(json!({"unused_for": "30d"})),
    );
    assert_eq!((st, r["revoked"].clone()), (200, json!(["never"])), "{r}");
    assert!(stale(ADMIN_KEY).is_empty());
    let (_, never) = call(&g, ADMIN_KEY, None, "GET", "/admin/v1/shares/never", None);
    assert_eq!(never["status"], "revoked");
}
