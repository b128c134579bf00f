//! What a guest receives from the app, through the real binary: guestgate's response
//! headers (no-store, nosniff, the profile's edits), and the view-only banner in HTML
//! pages, identity or compressed by the app, and in a 50 MB page streamed in bounded
//! memory. Non-guest traffic and non-HTML answers pass byte for byte.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use common::{http, request, Instance, Opts};

const EMAIL: &str = "expert@clinic.example";
const S42: (&str, &str, &str, &str) = ("sh-42", "42", "3", "view-only");
const PAGE: &str = "/cases/42/versions/3";
const HTML: &str = "Accept: text/html,application/xhtml+xml,*/*;q=0.8";

fn guest(g: &Instance) -> String {
    g.cookie(EMAIL, &[S42])
}

/// What the app itself answers, asked directly (no guestgate in between).
fn from_app(g: &Instance, target: &str, extra: &[&str]) -> common::Resp {
    http(g.app.addr, &request("GET", target, None, extra)).expect("app answers")
}

/// The banner's bytes in a guest page: what sits between `<body>` and the app's own
/// `<header>`.
fn banner_of(body: &str) -> Option<&str> {
    let start = body.find("<body>")? + "<body>".len();
    let end = body[start..].find("<header>")? + start;
    Some(&body[start..end]).filter(|b| !b.is_empty())
}

/// An instance whose policies add `custom` (view-only plus `extra`), and a guest cookie
/// for a share of case 42 under it.
fn custom_instance(dir: &Path, extra: &str) -> (Instance, String) {
    let g = Instance::start(Opts {
        policies: Some(profile_dir(dir, extra)),
        ..Opts::default()
    });
    let c = g.cookie(EMAIL, &[("sh-42", "42", "3", "custom")]);
    (g, c)
}

/// A policy directory: the shipped view-only profile with `extra` appended, as `custom`.
fn profile_dir(dir: &Path, extra: &str) -> std::path::PathBuf {
    let pol = dir.join("policies");
    std::fs::create_dir_all(&pol).unwrap();
    for f in ["view-only.toml", "collaborator.toml"] {
        std::fs::copy(common::repo().join("policies").join(f), pol.join(f)).unwrap();
    }
    let view = std::fs::read_to_string(pol.join("view-only.toml")).unwrap();
    let custom = view.replace("name = \"view-only\"", "name = \"custom\"");
    std::fs::write(pol.join("custom.toml"), format!("{custom}\n{extra}")).unwrap();
    pol
}

#[test]
fn guest_responses_are_not_stored_or_sniffed_and_carry_the_profiles_edits() {
    let g = Instance::start(Opts::default());
    let c = guest(&g);
    let r = g.send("GET", PAGE, Some(&c), &[HTML]);
    assert_eq!(r.status, 200, "{}", r.body);
    // The app says `private, max-age=600`; a guest's copy is never stored.
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert!(
        r.headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("set-cookie") && v.starts_with("app_pref=")),
        "the app's own cookie passes under view-only: {:?}",
        r.headers
    );
    let json = g.send(
        "GET",
        "/api/cases/42/versions/3/documents",
        Some(&c),
        &["Accept: application/json"],
    );
    assert_eq!(json.header("cache-control"), Some("no-store"));
    assert_eq!(json.header("x-content-type-options"), Some("nosniff"));

    // The app's own users (mixed mode, no guest cookie) get the app's headers untouched.
    let staff = g.send("GET", PAGE, None, &[HTML]);
    assert_eq!(staff.header("cache-control"), Some("private, max-age=600"));
    assert_eq!(staff.header("x-content-type-options"), None);

    // A profile's own response edits, over guestgate's defaults.
    let d = tempfile::tempdir().unwrap();
    let (g, c) = custom_instance(
        d.path(),
        "[response]\nremove_headers = [\"Set-Cookie\", \"X-Content-Type-Options\"]\nset_headers = { \"Cache-Control\" = \"private, max-age=60\", \"X-Frame-Options\" = \"DENY\" }\n",
    );
    let r = g.send("GET", PAGE, Some(&c), &[HTML]);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("cache-control"), Some("private, max-age=60"));
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    assert_eq!(r.header("x-content-type-options"), None);
    assert!(
        !r.headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("set-cookie") && v.starts_with("app_pref=")),
        "{:?}",
        r.headers
    );
}

#[test]
fn response_edits_are_validated_like_request_edits() {
    for (edit, key, says) in [
        (
            "[response]\nset_headers = { \"Content-Length\" = \"1\" }\n",
            "response.set_headers.Content-Length",
            "managed by guestgate",
        ),
        (
            "[response]\nremove_headers = [\"Transfer-Encoding\"]\n",
            "response.remove_headers[0]",
            "managed by guestgate",
        ),
        (
            "[response]\nset_headers = { \"Set-Cookie\" = \"a=b\" }\n",
            "response.set_headers.Set-Cookie",
            "not set cookies of its own",
        ),
        (
            "[banner]\nlabel = \"\"\n",
            "banner.label",
            "1 to 200 characters",
        ),
    ] {
        let d = tempfile::tempdir().unwrap();
        let pol = profile_dir(d.path(), edit);
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_guestgate"))
            .args(["policy", "check"])
            .arg(&pol)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{edit}: {err}");
        assert!(
            err.contains("custom.toml:")
                && err.contains(&format!("key `{key}`"))
                && err.contains(says),
            "{edit}: {err}"
        );
    }
}

#[test]
fn the_banner_follows_the_body_tag_of_guest_pages_and_nothing_else_changes() {
    let g = Instance::start(Opts::default());
    let c = guest(&g);
    let app_page = from_app(&g, PAGE, &[HTML]);
    for target in [
        PAGE,
        "/cases/42/versions/3/documents/2",
        "/cases/42/versions/3/summary",
    ] {
        let r = g.send("GET", target, Some(&c), &[HTML]);
        assert_eq!(r.status, 200, "{target}: {}", r.body);
        let banner =
            banner_of(&r.body).unwrap_or_else(|| panic!("{target}: no banner: {}", r.body));
        assert!(
            banner.contains("View-only") && banner.contains("Case 42, version 3."),
            "{banner}"
        );
        assert!(banner.contains("You can read the documents"), "{banner}");
        assert!(
            banner.contains("href=\"/_guestgate/guest\">My shares"),
            "{banner}"
        );
        assert!(banner.contains("action=\"/_guestgate/logout\""), "{banner}");
        assert!(
            banner.contains("href=\"/_guestgate/banner.css\""),
            "{banner}"
        );
        assert_eq!(
            r.body.matches("guestgate-banner\"").count(),
            1,
            "exactly one banner"
        );
        assert_eq!(r.header("content-length"), None);
        assert_eq!(r.header("transfer-encoding"), Some("chunked"));
        if target == PAGE {
            // Everything but the banner is the app's page, byte for byte (the app shows
            // the identity headers it received, so compare with the same headers).
            let without = r.body.replacen(banner, "", 1);
            let app_lines: Vec<&str> = app_page.body.split("<header>").collect();
            assert_eq!(without.split("<header>").next(), app_lines.first().copied());
        }
    }
    // The sign-out form works with the cookie the banner's page set.
    let r = g.send("GET", PAGE, Some(&c), &[HTML]);
    let form_cookie = r
        .headers
        .iter()
        .find(|(k, v)| {
            k.eq_ignore_ascii_case("set-cookie") && v.starts_with("guestgate_session_form=")
        })
        .map(|(_, v)| v.split(';').next().unwrap_or("").to_string())
        .expect("a form cookie for the sign-out token");
    let token = r
        .body
        .split("name=\"form_token\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let body = format!("form_token={token}");
    let out = g.raw(&format!(
        "POST /_guestgate/logout HTTP/1.1\r\nHost: app.test\r\nCookie: {c}; {form_cookie}\r\nOrigin: http://127.0.0.1:{}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        g.addr.port(),
        body.len()
    ));
    assert_eq!(out.status, 200, "{}", out.body);
    assert!(out.body.contains("You are signed out"), "{}", out.body);
    assert!(
        out.headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("set-cookie")
                && v.starts_with("guestgate_session=;")),
        "{:?}",
        out.headers
    );

    // JSON, a document's text, HEAD: byte for byte what the app sent.
    for (target, accept) in [
        (
            "/api/cases/42/versions/3/documents",
            "Accept: application/json",
        ),
        (
            "/api/cases/42/versions/3/documents/1/content",
            "Accept: */*",
        ),
    ] {
        let r = g.send("GET", target, Some(&c), &[accept]);
        let direct = from_app(&g, target, &[accept]);
        assert_eq!(r.bytes, direct.bytes, "{target}");
        assert_eq!(
            r.header("content-length"),
            direct.header("content-length"),
            "{target}"
        );
    }
    let head = g.send("HEAD", PAGE, Some(&c), &[HTML]);
    assert_eq!((head.status, head.bytes.len()), (200, 0));
    assert_eq!(
        head.header("content-length"),
        None,
        "HEAD says what GET would: no length"
    );

    // The app's own users never see it.
    let staff = g.send("GET", PAGE, None, &[HTML]);
    assert_eq!(staff.bytes, from_app(&g, PAGE, &[HTML]).bytes);

    // HTTP/1.0: no chunked encoding, the page runs to the close.
    let r = g.raw(&format!(
        "GET {PAGE} HTTP/1.0\r\nHost: app.test\r\nCookie: {c}\r\nAccept: text/html\r\n\r\n"
    ));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("transfer-encoding"), None);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(
        banner_of(&r.body).is_some() && r.body.ends_with("</html>\n"),
        "{}",
        r.body
    );

    // The stylesheet, from guestgate, cacheable, no inline anything.
    let css = g.send("GET", "/_guestgate/banner.css", None, &[]);
    assert_eq!(css.status, 200);
    assert_eq!(css.header("content-type"), Some("text/css; charset=utf-8"));
    assert!(css.body.contains(".guestgate-banner"));

    // Counted.
    assert!(g
        .metrics()
        .contains("guestgate_banner_total{outcome=\"inserted\"}"));
}

#[test]
fn a_profile_words_its_banner_or_turns_it_off() {
    let d = tempfile::tempdir().unwrap();
    let mut pol = profile_dir(
        d.path(),
        "[banner]\nlabel = \"Nur lesen\"\ntext = \"Sie können die Akte lesen — nichts ändern.\"\n",
    );
    let off = std::fs::read_to_string(common::repo().join("policies/view-only.toml"))
        .unwrap()
        .replace("name = \"view-only\"", "name = \"quiet\"");
    std::fs::write(
        pol.join("quiet.toml"),
        format!("{off}\n[banner]\nshow = false\n"),
    )
    .unwrap();
    let g = Instance::start(Opts {
        policies: Some(std::mem::take(&mut pol)),
        ..Opts::default()
    });
    let c = g.cookie(EMAIL, &[("sh-42", "42", "3", "custom")]);
    let r = g.send("GET", PAGE, Some(&c), &[HTML]);
    let banner = banner_of(&r.body).expect("banner");
    assert!(banner.contains(">Nur lesen<"), "{banner}");
    // Beyond ASCII, as character references: right in any ASCII-compatible charset.
    assert!(
        banner.contains("Sie k&#xf6;nnen die Akte lesen &#x2014; nichts &#xe4;ndern."),
        "{banner}"
    );
    let c = g.cookie(EMAIL, &[("sh-42", "42", "3", "quiet")]);
    let r = g.send("GET", PAGE, Some(&c), &[HTML]);
    assert_eq!(banner_of(&r.body), None, "{}", r.body);
    assert!(r.header("content-length").is_some());
}

/// An app that compresses its pages: guestgate asks page requests for `identity`, and
/// decodes gzip, deflate and brotli when the app compresses regardless.
#[test]
fn compressed_pages_get_the_banner_and_compressed_json_passes_as_sent() {
    // An app that honours Accept-Encoding: guestgate asks pages for identity.
    let g = Instance::start(Opts {
        app_args: vec!["--compress".into(), "gzip".into()],
        ..Opts::default()
    });
    let c = guest(&g);
    let r = g.send(
        "GET",
        PAGE,
        Some(&c),
        &[HTML, "Accept-Encoding: gzip, deflate, br, zstd"],
    );
    assert_eq!(r.header("content-encoding"), None);
    assert!(banner_of(&r.body).is_some(), "{}", r.body);
    let json = g.send(
        "GET",
        "/api/cases/42/versions/3/documents",
        Some(&c),
        &["Accept: application/json", "Accept-Encoding: gzip, zstd"],
    );
    assert_eq!(
        json.header("content-encoding"),
        Some("gzip"),
        "JSON stays compressed"
    );
    let seen = g.app.seen();
    let ae: Vec<_> = seen
        .iter()
        .rev()
        .take(2)
        .map(|s| s.header("accept-encoding").unwrap_or("").to_string())
        .collect();
    assert_eq!(
        ae,
        ["gzip", "identity"],
        "JSON: decodable codings only; the page: identity"
    );

    // Apps that compress no matter what: decoded, bannered, sent as identity.
    for coding in ["gzip", "deflate", "br"] {
        let g = Instance::start(Opts {
            app_args: vec!["--force-compress".into(), coding.into()],
            ..Opts::default()
        });
        let c = guest(&g);
        let r = g.send(
            "GET",
            PAGE,
            Some(&c),
            &[HTML, "Accept-Encoding: gzip, deflate, br"],
        );
        assert_eq!(r.status, 200, "{coding}");
        assert_eq!(r.header("content-encoding"), None, "{coding}");
        let banner = banner_of(&r.body).unwrap_or_else(|| panic!("{coding}: {}", r.body));
        assert!(banner.contains("View-only"), "{coding}");
        assert!(
            r.body.ends_with("</html>\n"),
            "{coding}: the whole page: {}",
            r.body
        );
        // JSON is passed on compressed, as the app sent it.
        let json = g.send(
            "GET",
            "/api/cases/42/versions/3/documents",
            Some(&c),
            &[
                "Accept: application/json",
                "Accept-Encoding: gzip, deflate, br",
            ],
        );
        assert_eq!(json.header("content-encoding"), Some(coding));
        let direct = from_app(
            &g,
            "/api/cases/42/versions/3/documents",
            &["Accept-Encoding: gzip, deflate, br"],
        );
        assert_eq!(json.bytes, direct.bytes, "{coding}");
    }
}

/// Peak resident memory of a process, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_50_mb_page_streams_through_in_bounded_memory() {
    let d = tempfile::tempdir().unwrap();
    let (g, c) = custom_instance(
        d.path(),
        "[[rule]]\nname = \"big-page\"\nmethods = [\"GET\"]\npath = \"/cases/{case}/versions/{version}/big\"\nquery.allow = [\"mb\"]\n",
    );
    // Warm up: the first page, so the baseline includes the steady-state allocations.
    let _ = g.send("GET", PAGE, Some(&c), &[HTML]);
    let before = peak_rss_kib(g.pid());

    let mut s = TcpStream::connect(g.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET /cases/42/versions/3/big?mb=50 HTTP/1.1\r\nHost: app.test\r\nCookie: {c}\r\nAccept: text/html\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    // Read slowly at first, so guestgate must hold back rather than buffer.
    let mut head = vec![0u8; 64 * 1024];
    let n = s.read(&mut head).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let mut total = n as u64;
    let mut first = head[..n].to_vec();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = s.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        if first.len() < 64 * 1024 {
            first.extend_from_slice(&buf[..n]);
        }
        total += n as u64;
    }
    let text = String::from_utf8_lossy(&first);
    assert!(
        text.starts_with("HTTP/1.1 200"),
        "{}",
        &text[..200.min(text.len())]
    );
    assert!(text.contains("<body><link rel=\"stylesheet\" href=\"/_guestgate/banner.css\"><aside class=\"guestgate-banner\""));
    assert!(
        total > 50 * 1024 * 1024,
        "the whole page arrived: {total} bytes"
    );
    let after = peak_rss_kib(g.pid());
    eprintln!("guestgate peak RSS: {before} KiB before, {after} KiB after a {total}-byte page");
    assert!(
        after < before + 16 * 1024,
        "a 50 MB page raised guestgate's peak memory by {} KiB",
        after - before
    );
}

/// An app (or anything that can make it emit a cookie) cannot set guestgate's cookies in a
/// guest's browser: sign them out, plant a session, or fix the form cookie.
#[test]
fn the_apps_set_cookie_for_guestgates_cookies_never_reaches_the_browser() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let app = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            let mut buf = [0u8; 8192];
            let _ = s.read(&mut buf);
            let body = "<!doctype html><html><head></head><body><header>x</header></body></html>";
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\n\
                 set-cookie: guestgate_session=planted; Path=/\r\n\
                 set-cookie: __Host-GuestGate_Session=x; Path=/; Secure\r\n\
                 set-cookie: guestgate_session_form=fixed; Path=/\r\n\
                 set-cookie: app_pref=compact; Path=/\r\n\
                 content-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let g = Instance::start(Opts {
        upstream: Some(app),
        ..Opts::default()
    });
    for cookie in [Some(guest(&g)), None] {
        let r = g.send("GET", PAGE, cookie.as_deref(), &[HTML]);
        assert_eq!(r.status, 200, "{}", r.body);
        let set: Vec<&str> = r
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
            .map(|(_, v)| v.as_str())
            .collect();
        assert!(set.contains(&"app_pref=compact; Path=/"), "{set:?}");
        assert!(
            !set.iter()
                .any(|c| c.contains("planted") || c.contains("=fixed") || c.starts_with("__Host-")),
            "guest {}: {set:?}",
            cookie.is_some()
        );
    }
}
