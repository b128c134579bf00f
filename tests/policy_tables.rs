//! The shipped policy test tables, run two ways: by `guestgate policy test` (the binary,
//! as platform teams run it in CI) and case by case against the live binary in front of
//! the sample app, with a real session for a share in the state each case names. Both
//! must agree with each other and with the tables.

mod common;

use std::path::PathBuf;

use common::{Instance, Opts, ADMIN_KEY};
use guestgate::config::Config;
use guestgate::decision::table;
use guestgate::decision::trial::{ShareState, TrialGate};
use guestgate::policy::PolicySet;
use guestgate::session::ShareGrant;
use guestgate::stamp::unix_now;

fn tables() -> Vec<PathBuf> {
    let dir = common::repo().join("policies/tests");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("policies/tests")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn the_shipped_tables_pass_policy_test_with_every_rule_covered() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_guestgate"))
        .args(["policy", "test", "--strict", "--dir"])
        .arg(common::repo().join("policies"))
        .args(["--config", "/nonexistent/guestgate.toml"])
        .output()
        .expect("guestgate policy test");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(" 0 failed") && !text.contains("not covered"),
        "{text}"
    );
    // A wrong expectation fails, with a diff naming the case and what differed.
    let d = tempfile::tempdir().unwrap();
    let bad = d.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[share]\nprofile = \"view-only\"\n[[case]]\nname = \"wrong\"\nrequest = \"GET /api/cases/43/versions/3/documents\"\nexpect = \"allow\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_guestgate"))
        .args(["policy", "test", "--dir"])
        .arg(common::repo().join("policies"))
        .args(["--config", "/nonexistent/guestgate.toml"])
        .arg(&bad)
        .output()
        .expect("guestgate policy test");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("bad.toml:3 (wrong): GET /api/cases/43/versions/3/documents: decision: expected allow, got deny")
            && text.contains("the path names case 43, the share is for case 42"),
        "{text}"
    );
}

/// `--strict` coverage counts every profile a table names: one whose cases only deny has
/// every rule uncovered.
#[test]
fn strict_coverage_counts_a_profile_no_case_allows() {
    let d = tempfile::tempdir().unwrap();
    let only_deny = d.path().join("deny.toml");
    std::fs::write(
        &only_deny,
        "[share]\nprofile = \"view-only\"\n[[case]]\nname = \"other case\"\nrequest = \"GET /api/cases/43/versions/3/documents\"\nexpect = \"deny\"\nreason = \"scope_mismatch\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_guestgate"))
        .args(["policy", "test", "--strict", "--dir"])
        .arg(common::repo().join("policies"))
        .args(["--config", "/nonexistent/guestgate.toml"])
        .arg(&only_deny)
        .output()
        .expect("guestgate policy test");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("not covered: no case allows rule `doclist-page` of profile `view-only`"),
        "{text}"
    );
}

/// `policy check --strict` passes the bundled profiles and fails the leaking first draft
/// the linter exists for (a third-party REST app's view-only policy), naming each leak.
#[test]
fn policy_check_strict_passes_the_bundled_profiles_and_fails_a_leaking_draft() {
    let check = |dir: &std::path::Path, strict: bool| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_guestgate"));
        cmd.args(["policy", "check"]);
        if strict {
            cmd.arg("--strict");
        }
        let out = cmd.arg(dir).output().expect("guestgate policy check");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (code, text) = check(&common::repo().join("policies"), true);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("0 warning(s)"), "{text}");

    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("draft.toml"),
        r#"name = "draft"

[[rule]]
name = "case-documents"
methods = ["GET"]
path = "/cases/{case}/documents"

[[rule]]
name = "search"
methods = ["GET"]
path = "/documents"
query.require = { case_id = "{case}" }
query.allow_other = true

[[rule]]
name = "document"
methods = ["GET"]
path = "/documents/{doc}"

[query]
max_keys = 0
"#,
    )
    .unwrap();
    let (code, text) = check(d.path(), false);
    assert_eq!(
        code,
        Some(0),
        "without --strict warnings do not fail: {text}"
    );
    let (code, text) = check(d.path(), true);
    assert_eq!(code, Some(1), "{text}");
    for finding in [
        "draft.toml:3: warning[case-not-version]: rule \"case-documents\"",
        "draft.toml:8: warning[case-not-version]: rule \"search\"",
        "draft.toml:8: warning[allow-other-with-require]: rule \"search\"",
        "draft.toml:15: warning[unbound]: rule \"document\"",
        "draft.toml: warning[no-query-limit]",
    ] {
        assert!(text.contains(finding), "{finding}: {text}");
    }
}

/// The body a case's framing headers announce, so the live request is complete.
fn body_for(headers: &[String]) -> String {
    for h in headers {
        let (name, value) = h.split_once(':').unwrap_or((h, ""));
        if name.eq_ignore_ascii_case("content-length") {
            if let Ok(n) = value.trim().parse::<usize>() {
                return "x".repeat(n);
            }
        }
        if name.eq_ignore_ascii_case("transfer-encoding") {
            return "0\r\n\r\n".into();
        }
    }
    String::new()
}

#[test]
fn the_live_proxy_and_policy_test_decide_every_case_alike() {
    let g = Instance::start(Opts::default());
    // Shares in each state the tables use: sh-42 is active (seeded), sh-l is revoked
    // here, and a share made now is pending until its code is entered.
    let (st, _) = g.api(ADMIN_KEY, "DELETE", "/admin/v1/shares/sh-l", None);
    assert_eq!(st, 204);
    let (st, created) = g.api(
        ADMIN_KEY,
        "POST",
        "/admin/v1/shares",
        Some(&serde_json::json!({"email": "expert@clinic.example", "case": "1", "version": "1", "notify": false})),
    );
    assert_eq!(st, 201);
    let pending = created["id"].as_str().unwrap().to_string();
    let config = Config::load(&g.dir.path().join("guestgate.toml")).expect("config");
    let gate = TrialGate::new(
        config.decision_settings(),
        PolicySet::load_dir(&common::repo().join("policies")).unwrap(),
    );
    let cases = table::load(&tables()).unwrap_or_else(|e| panic!("{e:?}"));
    assert!(cases.len() >= 40, "{} cases", cases.len());
    let mut compared = 0;
    for case in &cases {
        let trial = gate.decide(&case.trial);
        let mut req = format!("{} {} HTTP/1.1\r\n", case.trial.method, case.trial.target);
        if !case
            .trial
            .headers
            .iter()
            .any(|h| h.to_ascii_lowercase().starts_with("host:"))
        {
            req.push_str("Host: app.test\r\n");
        }
        req.push_str("Accept: application/json\r\nConnection: close\r\n");
        for h in &case.trial.headers {
            req.push_str(&format!("{h}\r\n"));
        }
        if let Some(share) = &case.trial.share {
            let (id, exp) = match share.state {
                ShareState::Active => ("sh-42".to_string(), unix_now() + 3600),
                ShareState::Revoked => ("sh-l".to_string(), unix_now() + 3600),
                ShareState::Pending => (pending.clone(), unix_now() + 3600),
                ShareState::Expired => ("sh-42".to_string(), unix_now() - 60),
            };
            let grant = ShareGrant {
                id,
                case: share.case.clone(),
                version: share.version.clone(),
                profile: share.profile.clone(),
                exp,
            };
            let token = g
                .keys
                .mint("expert@clinic.example", vec![grant], 600)
                .unwrap();
            req.push_str(&format!("Cookie: guestgate_session={token}\r\n"));
        }
        req.push_str("\r\n");
        req.push_str(&body_for(&case.trial.headers));
        let before = g.app.seen().len();
        let r = g.raw(&req);
        let seen = g.app.seen();
        match trial.status {
            0 => {
                // Forwarded: the app received exactly the target policy test reports.
                assert_eq!(
                    seen.len(),
                    before + 1,
                    "{}: the app did not get it ({} {})",
                    case.label,
                    r.status,
                    r.body
                );
                let got = &seen[before];
                assert_eq!(
                    Some(got.target.as_str()),
                    trial.forwards.as_deref(),
                    "{}",
                    case.label
                );
                assert_eq!(got.method, case.trial.method, "{}", case.label);
            }
            status => {
                assert_eq!(
                    seen.len(),
                    before,
                    "{}: refused, yet the app got it",
                    case.label
                );
                assert_eq!(r.status, status, "{}: {}", case.label, r.body);
                assert_eq!(r.json()["reason"], trial.reason, "{}", case.label);
            }
        }
        compared += 1;
    }
    eprintln!("{compared} cases decided alike by the live proxy and policy test");
}

/// An empty or broken `--header` would end the trial's request head early and drop the
/// session cookie after it: refused, not explained as something else.
#[test]
fn explain_refuses_a_header_line_that_would_cut_the_request() {
    for bad in ["", "NoColon", "Bad Name: x", " X: y"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_guestgate"))
            .args([
                "policy",
                "explain",
                "GET",
                "/cases/42/versions/3",
                "--case",
                "42",
                "--version",
                "3",
            ])
            .args(["--dir"])
            .arg(common::repo().join("policies"))
            .args(["--config", "/nonexistent/guestgate.toml", "--header", bad])
            .output()
            .expect("guestgate policy explain");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_ne!(out.status.code(), Some(0), "{bad:?}: {err}");
        assert!(err.contains("--header"), "{bad:?}: {err}");
    }
}
