//! Hot reload of policies on `POST /admin/v1/reload` and SIGHUP: a valid set takes
//! effect, an invalid one is refused with its file and line while the old set stays in
//! force, and requests in flight during reloads are unaffected.

mod common;

use std::time::Duration;

use common::{wait_for, Instance, Opts, ADMIN_KEY, SHARER_KEY};

const CASE_LIST_RULE: &str =
    "\n[[rule]]\nname = \"case-list\"\nmethods = [\"GET\"]\npath = \"/api/cases\"\n";

fn with_own_policies() -> (tempfile::TempDir, Instance) {
    let pol = tempfile::tempdir().unwrap();
    for f in ["view-only.toml", "collaborator.toml"] {
        std::fs::copy(common::repo().join("policies").join(f), pol.path().join(f)).unwrap();
    }
    let g = Instance::start(Opts {
        policies: Some(pol.path().to_path_buf()),
        ..Opts::default()
    });
    (pol, g)
}

fn metric(g: &Instance, series: &str) -> f64 {
    let body = g.metrics();
    body.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn reload_through_the_api_applies_valid_sets_and_refuses_invalid_ones() {
    let (pol, g) = with_own_policies();
    let c = g.cookie(
        "expert@clinic.example",
        &[("sh-42", "42", "3", "view-only")],
    );
    assert_eq!(g.send("GET", "/api/cases", Some(&c), &[]).status, 403);

    let file = pol.path().join("view-only.toml");
    let original = std::fs::read_to_string(&file).unwrap();
    let with_rule = original.replace("\n[upstream]", &format!("{CASE_LIST_RULE}\n[upstream]"));
    std::fs::write(&file, &with_rule).unwrap();
    assert_eq!(
        g.api(SHARER_KEY, "POST", "/admin/v1/reload", None).0,
        403,
        "sharers cannot reload"
    );
    let (st, body) = g.api(ADMIN_KEY, "POST", "/admin/v1/reload", None);
    assert_eq!((st, body["profiles"].as_u64()), (200, Some(2)), "{body}");
    assert_eq!(g.send("GET", "/api/cases", Some(&c), &[]).status, 200);

    // an invalid set: refused with file, line and key; the previous set stays
    std::fs::write(
        &file,
        with_rule.replace(
            "path = \"/api/cases\"",
            "path = \"/api/cases/{cse}\"\nrewrite = \"/x/{case}/{doc}\"",
        ),
    )
    .unwrap();
    let (st, body) = g.api(ADMIN_KEY, "POST", "/admin/v1/reload", None);
    assert_eq!(st, 422, "{body}");
    let reason = body["reason"].as_str().unwrap();
    assert!(
        reason.contains("view-only.toml:")
            && reason.contains("rule \"case-list\"")
            && reason.contains("{doc}"),
        "{reason}"
    );
    assert_eq!(
        g.send("GET", "/api/cases", Some(&c), &[]).status,
        200,
        "the previous set stays in force"
    );
    assert_eq!(
        metric(&g, "guestgate_policy_reloads_total{result=\"ok\"}"),
        1.0
    );
    assert_eq!(
        metric(&g, "guestgate_policy_reloads_total{result=\"failed\"}"),
        1.0
    );
    assert!(g.stderr_text().contains("policy reload refused"));
}

/// Identity headers are rendered once per share and rule and then reused; a reload
/// brings new templates, and the very next request of the same session carries them.
#[test]
fn after_a_reload_the_same_session_gets_headers_from_the_new_templates() {
    let (pol, g) = with_own_policies();
    let c = g.cookie(
        "expert@clinic.example",
        &[("sh-42", "42", "3", "view-only")],
    );
    let page = "/cases/42/versions/3";
    for _ in 0..2 {
        assert_eq!(g.send("GET", page, Some(&c), &[]).status, 200);
    }
    let file = pol.path().join("view-only.toml");
    let original = std::fs::read_to_string(&file).unwrap();
    let old = "\"X-Guest-Scope\" = \"{case}/{version}\"";
    assert!(original.contains(old), "the shipped template changed");
    std::fs::write(
        &file,
        original.replace(old, "\"X-Guest-Scope\" = \"case {case} version {version}\""),
    )
    .unwrap();
    let (st, body) = g.api(ADMIN_KEY, "POST", "/admin/v1/reload", None);
    assert_eq!(st, 200, "{body}");
    assert_eq!(g.send("GET", page, Some(&c), &[]).status, 200);
    let scopes: Vec<String> = g
        .app
        .seen()
        .iter()
        .map(|s| s.header_all("x-guest-scope").join(","))
        .collect();
    assert_eq!(scopes, ["42/3", "42/3", "case 42 version 3"]);
}

#[test]
fn sighup_reloads_and_the_process_survives() {
    let (pol, g) = with_own_policies();
    let c = g.cookie(
        "expert@clinic.example",
        &[("sh-42", "42", "3", "view-only")],
    );
    let file = pol.path().join("view-only.toml");
    let original = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        original.replace("\n[upstream]", &format!("{CASE_LIST_RULE}\n[upstream]")),
    )
    .unwrap();
    let kill = |sig: &str| {
        std::process::Command::new("kill")
            .args([sig, &g.pid().to_string()])
            .status()
            .unwrap()
    };
    assert!(kill("-HUP").success());
    wait_for("reload by SIGHUP", Duration::from_secs(10), || {
        (g.send("GET", "/api/cases", Some(&c), &[]).status == 200).then_some(())
    });
    // twice more, with the rule removed again
    std::fs::write(&file, &original).unwrap();
    assert!(kill("-HUP").success());
    wait_for("second reload", Duration::from_secs(10), || {
        (g.send("GET", "/api/cases", Some(&c), &[]).status == 403).then_some(())
    });
    assert_eq!(
        g.send("GET", "/cases/42/versions/3", Some(&c), &[]).status,
        200
    );
}

#[test]
fn requests_in_flight_during_reloads_are_unaffected() {
    let (_pol, g) = with_own_policies();
    let c = g.cookie(
        "expert@clinic.example",
        &[("sh-42", "42", "3", "view-only")],
    );
    let statuses = std::thread::scope(|s| {
        let load = s.spawn(|| {
            (0..300)
                .map(|_| {
                    g.send(
                        "GET",
                        "/api/cases/42/versions/3/documents/1/content",
                        Some(&c),
                        &[],
                    )
                    .status
                })
                .collect::<Vec<_>>()
        });
        for _ in 0..30 {
            assert_eq!(g.api(ADMIN_KEY, "POST", "/admin/v1/reload", None).0, 200);
        }
        load.join().unwrap()
    });
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
    assert_eq!(g.app.seen().len(), 300);
}

#[test]
fn sigterm_lets_in_flight_requests_finish_then_exits() {
    let mut g = Instance::start(Opts::default());
    let addr = g.addr;
    let slow =
        std::thread::spawn(move || common::http(addr, &common::request("GET", "/slow", None, &[])));
    wait_for(
        "the slow request to reach the app",
        Duration::from_secs(10),
        || {
            g.app
                .seen()
                .iter()
                .any(|s| s.target == "/slow")
                .then_some(())
        },
    );
    let term = std::process::Command::new("kill")
        .args(["-TERM", &g.pid().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let r = slow
        .join()
        .unwrap()
        .expect("the in-flight request got an answer");
    assert_eq!((r.status, r.body.as_str()), (200, "slow answer\n"));
    let status = wait_for("guestgate to exit", Duration::from_secs(20), || {
        g.try_exit()
    });
    assert!(status.success(), "exit status {status}");
}
