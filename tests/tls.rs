//! TLS termination with HTTP/2 to guests, against a self-signed certificate: the code
//! flow sets the `__Host-` Secure cookie, scoped requests work over h2, and h2 requests
//! get the same target and policy checks.

mod common;

use std::process::Command;

use common::{code_and_link, path_of, self_signed, Instance, Opts, ADMIN_KEY};

/// curl over TLS (certificate pinned with --cacert); returns (http version, status, headers, body).
fn curl(ca: &std::path::Path, args: &[&str], url: &str) -> (String, u16, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let headers = dir.path().join("h");
    let out = Command::new("curl")
        .args(["-s", "--http2", "--path-as-is", "--cacert"])
        .arg(ca)
        .arg("-D")
        .arg(&headers)
        .args(["-w", "\n%{http_version} %{http_code}"])
        .args(args)
        .arg(url)
        .output()
        .expect("curl must be installed");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, tail) = text.rsplit_once('\n').unwrap_or(("", ""));
    let (version, code) = tail.split_once(' ').unwrap_or(("", "0"));
    (
        version.to_string(),
        code.parse().unwrap_or(0),
        std::fs::read_to_string(headers).unwrap_or_default(),
        body.to_string(),
    )
}

#[test]
fn guests_use_https_and_http2_with_a_secure_host_cookie() {
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(certs.path());
    let g = Instance::start(Opts {
        tls: Some((cert.clone(), key)),
        ..Opts::default()
    });
    let base = format!("https://127.0.0.1:{}", g.addr.port());
    let (st, body) = g.api(
        ADMIN_KEY,
        "POST",
        "/admin/v1/shares",
        Some(&serde_json::json!({"email": "tls@lab.example", "case": "43", "version": "1"})),
    );
    assert_eq!(st, 201);
    let link = body["link"].as_str().unwrap();
    assert!(link.starts_with(&base), "{link}");
    let (code, _) = code_and_link(g.outbox().last().unwrap());

    let (v, st, _, page) = curl(&cert, &[], link);
    assert_eq!((v.as_str(), st), ("2", 200), "{page}");
    let origin = format!("Origin: {base}");
    let (v, st, headers, _) = curl(
        &cert,
        &["-H", &origin, "-d", &format!("code={code}")],
        &format!("{base}{}/verify", path_of(link)),
    );
    assert_eq!((v.as_str(), st), ("2", 303), "{headers}");
    let set = headers
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap_or_else(|| panic!("{headers}"));
    assert!(
        set.contains("__Host-guestgate_session=")
            && set.contains("Secure")
            && set.contains("HttpOnly")
            && set.contains("Path=/"),
        "{set}"
    );
    assert!(!set.to_ascii_lowercase().contains("domain="), "{set}");
    let cookie = set
        .split_once(':')
        .unwrap()
        .1
        .trim()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let with_cookie = format!("Cookie: {cookie}");

    let (v, st, _, _) = curl(
        &cert,
        &["-H", &with_cookie],
        &format!("{base}/cases/43/versions/1"),
    );
    assert_eq!((v.as_str(), st), ("2", 200));
    let (_, st, _, body) = curl(&cert, &["-H", &with_cookie], &format!("{base}/api/cases"));
    assert_eq!(st, 403, "{body}");
    let (_, st, _, body) = curl(
        &cert,
        &["-H", &with_cookie],
        &format!("{base}/cases/43/versions/1/../../44/versions/1"),
    );
    assert_eq!(st, 400, "{body}");
    let (_, st, _, body) = curl(
        &cert,
        &["-H", &with_cookie],
        &format!("{base}/cases/43/versions/%2e%2e/1"),
    );
    assert_eq!(st, 400, "{body}");
    // without its `__Host-` prefix the cookie holds no session (a sibling site could
    // have set it), but it is still a guest request: denied, never passed through
    let (_, st, _, body) = curl(
        &cert,
        &["-H", &format!("Cookie: {}", cookie.replace("__Host-", ""))],
        &format!("{base}/cases/43/versions/1"),
    );
    assert_eq!(st, 403, "{body}");
    assert!(body.contains("session_misnamed"), "{body}");

    let seen = g.app.seen();
    let guest_requests: Vec<_> = seen
        .iter()
        .filter(|s| s.header("x-guest-email").is_some())
        .collect();
    assert_eq!(guest_requests.len(), 1);
    assert_eq!(guest_requests[0].target, "/cases/43/versions/1");
    assert!(seen.iter().all(|s| s
        .header("cookie")
        .is_none_or(|c| !c.contains("__Host-guestgate_session"))));
}

#[test]
fn sighup_reloads_the_certificate_without_a_restart() {
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(certs.path());
    let old_ca = certs.path().join("old-ca.pem");
    std::fs::copy(&cert, &old_ca).unwrap();
    let g = Instance::start(Opts {
        tls: Some((cert.clone(), key)),
        ..Opts::default()
    });
    let url = format!("https://127.0.0.1:{}/settings", g.addr.port());
    assert_eq!(curl(&old_ca, &[], &url).1, 200);

    // a broken file is refused and the current certificate stays
    std::fs::write(&cert, "not a certificate").unwrap();
    let hup = || {
        assert!(Command::new("kill")
            .args(["-HUP", &g.pid().to_string()])
            .status()
            .unwrap()
            .success())
    };
    hup();
    common::wait_for("refusal logged", std::time::Duration::from_secs(10), || {
        g.stderr_text()
            .contains("TLS certificate reload refused")
            .then_some(())
    });
    assert_eq!(curl(&old_ca, &[], &url).1, 200);

    // a new pair is served after SIGHUP; the old CA no longer verifies it
    let fresh = tempfile::tempdir().unwrap();
    let (new_cert, new_key) = self_signed(fresh.path());
    std::fs::copy(&new_cert, &cert).unwrap();
    std::fs::copy(&new_key, certs.path().join("key.pem")).unwrap();
    hup();
    common::wait_for(
        "new certificate served",
        std::time::Duration::from_secs(10),
        || (curl(&new_cert, &[], &url).1 == 200).then_some(()),
    );
    assert_eq!(
        curl(&old_ca, &[], &url).1,
        0,
        "the old certificate is still served"
    );
}
