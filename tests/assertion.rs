//! The signed scope assertion, checked by an independent implementation: Node's `jose`
//! (not the Rust crates that signed it), fetching the JWKS over HTTP from the admin
//! listener, exactly as an app would. Valid on the request it came with; refused after
//! its expiry, for another audience, or replayed on another request; a key rotation keeps
//! assertions signed with the old key valid while it is published.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Instance, Opts};

const EMAIL: &str = "expert@clinic.example";
const S42: (&str, &str, &str, &str) = ("sh-42", "42", "3", "view-only");
const HEADER: &str = "X-Guestgate-Assertion";

fn with_assertion(lines: &str) -> Instance {
    Instance::start(Opts {
        extra_config: format!("[assertion]\naudience = \"case-app\"\n{lines}\n"),
        ..Opts::default()
    })
}

/// The assertion the app received on its latest request, and that request's target.
fn last_assertion(g: &Instance) -> (String, String, String) {
    let seen = g.app.seen();
    let last = seen.last().expect("the app saw a request");
    let all = last.header_all(HEADER);
    assert_eq!(all.len(), 1, "exactly one assertion: {:?}", last.headers);
    (all[0].to_string(), last.method.clone(), last.target.clone())
}

/// Runs the Node verifier; Ok(claims) or Err(reason).
fn verify(
    g: &Instance,
    audience: &str,
    method: &str,
    target: &str,
    token: &str,
) -> Result<serde_json::Value, String> {
    let jwks = format!("http://127.0.0.1:{}/.well-known/jwks.json", g.admin.port());
    let out = Command::new("node")
        .arg(common::repo().join("tests/node/verify-assertion.mjs"))
        .args([&jwks, audience, method, target, token])
        .output()
        .expect("node must be installed (scripts/setup.sh installs it)");
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).expect("claims JSON"))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

#[test]
fn an_app_verifies_the_assertion_with_jose_and_it_fits_only_its_request() {
    // Long enough for the Node verifications below on a busy machine, short enough to
    // wait out for the expiry check.
    let g = with_assertion("lifetime = \"8s\"");
    let c = g.cookie(EMAIL, &[S42]);
    let r = g.send(
        "GET",
        "/api/cases/42/versions/3/documents/%31?x=1",
        Some(&c),
        &[&format!("{HEADER}: forged.by.client")],
    );
    assert_eq!(r.status, 403, "{}", r.body);
    let r = g.send(
        "GET",
        "/api/cases/42/versions/3/documents?page=2",
        Some(&c),
        &[&format!("{HEADER}: forged.by.client")],
    );
    let issued = std::time::Instant::now();
    assert_eq!(r.status, 200, "{}", r.body);
    let (token, method, target) = last_assertion(&g);
    assert_ne!(token, "forged.by.client");
    assert_eq!(
        (method.as_str(), target.as_str()),
        ("GET", "/api/cases/42/versions/3/documents?page=2")
    );

    let claims = verify(&g, "case-app", &method, &target, &token).expect("valid");
    let audit = g.audit_until("the allow is audited", |e| e["decision"] == "allow");
    let allow = audit
        .iter()
        .rev()
        .find(|e| e["decision"] == "allow")
        .unwrap();
    assert_eq!(
        claims["jti"], allow["request_id"],
        "jti is the audit event's request id"
    );
    for (claim, want) in [
        ("iss", "guestgate"),
        ("aud", "case-app"),
        ("sub", EMAIL),
        ("share", "sh-42"),
        ("case", "42"),
        ("version", "3"),
        ("profile", "view-only"),
        ("rule", "documents-list"),
        ("method", "GET"),
    ] {
        assert_eq!(claims[claim], want, "{claim}: {claims}");
    }
    let (iat, exp) = (
        claims["iat"].as_u64().unwrap(),
        claims["exp"].as_u64().unwrap(),
    );
    assert_eq!(exp - iat, 8, "the configured lifetime");

    // Another app, another request: refused.
    let e = verify(&g, "billing-app", &method, &target, &token).unwrap_err();
    assert!(e.contains("ERR_JWT_CLAIM_VALIDATION_FAILED"), "{e}");
    let e = verify(
        &g,
        "case-app",
        "GET",
        "/api/cases/42/versions/3/documents/1",
        &token,
    )
    .unwrap_err();
    assert_eq!(e, "WRONG_REQUEST");
    let e = verify(&g, "case-app", "DELETE", &target, &token).unwrap_err();
    assert_eq!(e, "WRONG_REQUEST");
    // Tampered: the signature no longer holds.
    let mut parts: Vec<String> = token.split('.').map(String::from).collect();
    parts[1] = parts[1].replacen('e', "f", 1);
    let e = verify(&g, "case-app", &method, &target, &parts.join(".")).unwrap_err();
    assert!(
        e.contains("ERR_JWS_SIGNATURE_VERIFICATION_FAILED") || e.contains("ERR_JWT"),
        "{e}"
    );
    // Expired: once its lifetime (whole seconds) has passed it proves nothing.
    std::thread::sleep(Duration::from_millis(9100).saturating_sub(issued.elapsed()));
    let e = verify(&g, "case-app", &method, &target, &token).unwrap_err();
    assert!(e.contains("ERR_JWT_EXPIRED"), "{e}");

    // Requests that are not a guest's never carry one, and a forged one is stripped.
    let r = g.send(
        "GET",
        "/settings",
        None,
        &[
            &format!("{HEADER}: forged"),
            "X_Guestgate_Assertion: forged",
            "X.Guestgate~Assertion: forged",
        ],
    );
    assert_eq!(r.status, 200);
    let seen = g.app.seen();
    let last = seen.last().unwrap();
    assert!(!last.has_header_folded(HEADER), "{:?}", last.headers);
    assert!(g.metrics().contains("guestgate_assertions_total 1"));
}

#[test]
fn a_rotated_key_keeps_earlier_assertions_valid_while_published() {
    let mut g = with_assertion("lifetime = \"60s\"\njwks_under_prefix = true");
    let c = g.cookie(EMAIL, &[S42]);
    assert_eq!(
        g.send("GET", "/cases/42/versions/3", Some(&c), &[]).status,
        200
    );
    let (old, method, target) = last_assertion(&g);
    let key = g.dir.path().join("assertion.key");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "created private");
    assert!(std::fs::read_to_string(&key)
        .unwrap()
        .starts_with("-----BEGIN PRIVATE KEY-----"));
    let jwks = |g: &Instance| -> serde_json::Value {
        let r = common::http(
            g.admin,
            "GET /.well-known/jwks.json HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
        assert_eq!(r.header("content-type"), Some("application/jwk-set+json"));
        r.json()
    };
    let before = jwks(&g);
    assert_eq!(before["keys"].as_array().unwrap().len(), 1);
    // The JWKS is also published to guests' origin when asked, and never holds a private part.
    let public = g.send("GET", "/_guestgate/jwks.json", None, &[]);
    assert_eq!(public.json(), before);
    assert!(!public.body.contains("\"d\""), "{}", public.body);

    // Rotate: the old key becomes a previous key, a new one is created at restart.
    std::fs::rename(&key, g.dir.path().join("old-assertion.key")).unwrap();
    let cfg = g.dir.path().join("guestgate.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        text.replace(
            "[assertion]\n",
            "[assertion]\nprevious_key_files = [\"old-assertion.key\"]\n",
        ),
    )
    .unwrap();
    g.restart();
    let after = jwks(&g);
    let kids: Vec<&str> = after["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids.len(), 2);
    assert_eq!(
        kids[1],
        before["keys"][0]["kid"].as_str().unwrap(),
        "the old key is still published"
    );
    assert_ne!(kids[0], kids[1]);

    verify(&g, "case-app", &method, &target, &old)
        .expect("an assertion signed before the rotation");
    assert_eq!(
        g.send("GET", "/cases/42/versions/3", Some(&c), &[]).status,
        200
    );
    let (new, method, target) = last_assertion(&g);
    assert_ne!(new, old);
    verify(&g, "case-app", &method, &target, &new).expect("one signed with the new key");

    // Once the old key is retired, what it signed is refused.
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        text.replace("previous_key_files = [\"old-assertion.key\"]\n", ""),
    )
    .unwrap();
    g.restart();
    let e = verify(&g, "case-app", &method, &target, &old).unwrap_err();
    assert!(e.contains("ERR_JWKS_NO_MATCHING_KEY"), "{e}");
}

#[test]
fn without_an_audience_there_are_no_assertions_and_forged_ones_are_still_stripped() {
    let g = Instance::start(Opts::default());
    let c = g.cookie(EMAIL, &[S42]);
    let r = g.send(
        "GET",
        "/cases/42/versions/3",
        Some(&c),
        &[&format!("{HEADER}: forged")],
    );
    assert_eq!(r.status, 200);
    let seen = g.app.seen();
    assert!(!seen.last().unwrap().has_header_folded(HEADER));
    let r = common::http(
        g.admin,
        "GET /.well-known/jwks.json HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert_eq!(r.status, 404);
    assert!(r.body.contains("[assertion] audience"), "{}", r.body);
    assert!(
        !g.dir.path().join("assertion.key").exists(),
        "no key made when off"
    );
}
