//! The guest's journey in a real browser: Debian's Chromium, headless, over WebDriver,
//! against the real binary and the sample app. Nothing here sets a header a browser
//! would set: the browser does. Every guestgate page is screenshotted (into
//! `target/browser-screenshots/<test>/`) and checked with axe-core.

mod common;

use std::time::Duration;

use common::browser::{Chrome, ChromeOpts};
use common::{code_and_link, wait_for, Instance, Opts, ADMIN_KEY};
use serde_json::json;

const GUEST: &str = "expert@clinic.example";

fn instance() -> Instance {
    Instance::start(Opts {
        // A host dedicated to guests: without a session, nothing reaches the app.
        mode: "guest-only",
        guest_config: "resend_interval = \"1s\"".into(),
        ..Opts::default()
    })
}

/// Staff share a case; returns (share id, link).
fn share(g: &Instance, case: &str, version: &str) -> (String, String) {
    let (st, body) = g.api(
        ADMIN_KEY,
        "POST",
        "/admin/v1/shares",
        Some(&json!({"email": GUEST, "case": case, "version": version, "created_by": "Ada Okafor", "contact": "ada@firm.example"})),
    );
    assert_eq!(st, 201, "{body}");
    (
        body["id"].as_str().unwrap().to_string(),
        body["link"].as_str().unwrap().to_string(),
    )
}

/// The code in the newest email for `link`.
fn code_for(g: &Instance, link: &str, after: usize) -> String {
    wait_for("the email", Duration::from_secs(10), || {
        let mails = g.outbox();
        (mails.len() > after).then_some(())?;
        mails
            .iter()
            .rev()
            .map(|m| code_and_link(m))
            .find(|(_, l)| l == link)
            .map(|(code, _)| code)
    })
}

/// A guestgate page: screenshot it and require zero axe-core violations.
fn check_page(c: &Chrome, step: &str) {
    c.screenshot(step);
    let violations = c.axe();
    assert!(
        violations.is_empty(),
        "{step}: axe-core found {}",
        serde_json::to_string_pretty(&violations).unwrap_or_default()
    );
}

fn wrong(code: &str) -> &'static str {
    if code == "000000" {
        "111111"
    } else {
        "000000"
    }
}

#[test]
fn a_guest_opens_a_shared_case_and_finds_the_way_back_from_everywhere() {
    let g = instance();
    let c = Chrome::start("journey", ChromeOpts::default());
    let base = format!("http://127.0.0.1:{}", g.addr.port());
    let (id1, link1) = share(&g, "42", "3");
    let code1 = code_for(&g, &link1, 0);

    // The emailed link: the code page, labelled, focused, described.
    c.goto(&link1);
    assert_eq!(c.title(), "Enter your code");
    let text = c.text();
    assert!(
        text.contains("Case 42, version 3") && text.contains("Ada Okafor shared this case"),
        "{text}"
    );
    assert!(text.contains("You can: read the documents"), "{text}");
    assert!(text.contains("in 7 days"), "{text}");
    assert_eq!(
        c.attr("#code", "autocomplete").as_deref(),
        Some("one-time-code")
    );
    assert_eq!(c.attr("#code", "inputmode").as_deref(), Some("numeric"));
    assert_eq!(c.js("return document.activeElement.id"), json!("code"));
    check_page(&c, "01-challenge");

    // A wrong code: back on the page (303, so a reload does not post again), announced.
    c.fill("#code", wrong(&code1));
    c.submit("form[action$='/verify'] button");
    assert!(c.url().contains("?e=wrong&left=4"), "{}", c.url());
    assert!(c.title().starts_with("Error:"), "{}", c.title());
    assert!(c.text().contains("That code is not right. 4 tries left."));
    assert_eq!(c.attr("#code", "aria-invalid").as_deref(), Some("true"));
    assert_eq!(c.js("return document.activeElement.id"), json!("code"));
    assert_eq!(
        c.js("return document.querySelector('[role=alert]').textContent"),
        json!("That code is not right. 4 tries left.")
    );
    check_page(&c, "02-wrong-code");
    // Reloading the page after the redirect is a GET: no try is used.
    c.goto(&c.url());
    assert!(c.text().contains("4 tries left"));

    // A new code.
    std::thread::sleep(Duration::from_millis(1100)); // resend_interval is 1 s here
    let mails = g.outbox().len();
    c.submit("form[action$='/resend'] button");
    assert!(
        c.text()
            .contains("We sent a new code to e•••@clinic.example"),
        "{}",
        c.text()
    );
    check_page(&c, "03-new-code");
    let code1 = code_for(&g, &link1, mails);

    // The right code: onto the case, the app's own page.
    c.fill("#code", &code1);
    c.submit("form[action$='/verify'] button");
    assert_eq!(c.url(), format!("{base}/cases/42/versions/3"));
    assert!(
        c.text().contains("Okafor v. Northwind Insurance"),
        "{}",
        c.text()
    );
    c.click_link("Medical report");
    assert!(
        c.url().ends_with("/cases/42/versions/3/documents/2"),
        "{}",
        c.url()
    );
    assert!(c.text().contains("Viewer for document 2 of case 42"));
    c.goto(&format!("{base}/cases/42/versions/3"));
    c.click_link("AI summary");
    assert!(c.text().contains("The claimant reports a back injury"));

    // Outside what was shared: refused, with the way back.
    c.goto(&format!("{base}/settings"));
    assert!(
        c.text()
            .contains("This is not part of what was shared with you"),
        "{}",
        c.text()
    );
    check_page(&c, "04-not-shared");
    c.click_link("Case 42, version 3");
    assert_eq!(c.url(), format!("{base}/cases/42/versions/3"));

    // A second share in the same browser.
    let (_, link2) = share(&g, "43", "1");
    let code2 = code_for(&g, &link2, g.outbox().len() - 1);
    c.goto(&link2);
    c.fill("#code", &code2);
    c.submit("form[action$='/verify'] button");
    assert_eq!(c.url(), format!("{base}/cases/43/versions/1"));
    c.goto(&format!("{base}/_guestgate/guest"));
    let mine = c.text();
    assert!(
        mine.contains("Case 42, version 3") && mine.contains("Case 43, version 1"),
        "{mine}"
    );
    check_page(&c, "05-my-shares");

    // Staff revoke the first: the guest is told that access ended, and where to go.
    let (st, _) = g.api(
        ADMIN_KEY,
        "DELETE",
        &format!("/admin/v1/shares/{id1}"),
        None,
    );
    assert_eq!(st, 204);
    c.goto(&format!("{base}/cases/42/versions/3"));
    let ended = c.text();
    assert!(
        ended.contains("Your access to case 42, version 3 has ended"),
        "{ended}"
    );
    check_page(&c, "06-access-ended");
    c.click_link("Case 43, version 1");
    assert_eq!(c.url(), format!("{base}/cases/43/versions/1"));

    // Sign out, from the page the browser is on.
    c.goto(&format!("{base}/_guestgate/guest"));
    c.submit("form[action$='/logout'] button");
    assert!(c.text().contains("You are signed out"), "{}", c.text());
    check_page(&c, "07-signed-out");
    assert!(!c.cookie_names().iter().any(|n| n == "guestgate_session"));
    c.goto(&format!("{base}/cases/43/versions/1"));
    assert!(
        c.text().contains("Open your invitation link"),
        "{}",
        c.text()
    );
    check_page(&c, "08-no-session");
    // The links in the app's pages were never followed by guestgate's own pages.
    let seen = g.app.seen();
    assert!(
        seen.iter()
            .all(|s| s.header("x-guest-email") == Some(GUEST)),
        "{seen:?}"
    );
}

/// Under `Referrer-Policy: no-referrer` Chromium posts a form with `Origin: null`: the
/// failure every guest hit before. The page's token carries the form through.
#[test]
fn a_form_posted_with_origin_null_passes_on_its_token() {
    let g = instance();
    let c = Chrome::start("origin-null", ChromeOpts::default());
    let (_, link) = share(&g, "42", "3");
    let code = code_for(&g, &link, 0);
    c.goto(&link);
    c.js("const m = document.createElement('meta'); m.name = 'referrer'; m.content = 'no-referrer'; document.head.appendChild(m); return true;");
    c.fill("#code", &code);
    c.submit("form[action$='/verify'] button");
    assert!(
        c.url().ends_with("/cases/42/versions/3"),
        "{}: {}",
        c.url(),
        c.text()
    );
    let audit = g.audit_until("verified", |e| e["event"] == "verified");
    assert!(audit.iter().all(|e| e["event"] != "cross_origin"));
    // Same page, token removed: Origin null alone is not enough.
    let (_, link2) = share(&g, "43", "1");
    let code2 = code_for(&g, &link2, 1);
    c.goto(&link2);
    c.js("const m = document.createElement('meta'); m.name = 'referrer'; m.content = 'no-referrer'; document.head.appendChild(m); document.querySelectorAll('input[name=form_token]').forEach(i => i.value = 'forged'); return true;");
    c.fill("#code", &code2);
    c.submit("form[action$='/verify'] button");
    assert!(c.text().contains("Please use the page"), "{}", c.text());
}

#[test]
fn the_journey_works_with_javascript_off() {
    let g = instance();
    let c = Chrome::start(
        "no-javascript",
        ChromeOpts {
            javascript: false,
            ..ChromeOpts::default()
        },
    );
    let (_, link) = share(&g, "42", "3");
    let code = code_for(&g, &link, 0);
    c.goto(&link);
    c.screenshot("01-challenge");
    c.fill("#code", wrong(&code));
    c.submit("form[action$='/verify'] button");
    assert!(c.text().contains("That code is not right"), "{}", c.text());
    c.screenshot("02-wrong-code");
    c.fill("#code", &code);
    c.submit("form[action$='/verify'] button");
    assert!(c.url().ends_with("/cases/42/versions/3"), "{}", c.url());
    assert!(c.text().contains("Okafor v. Northwind Insurance"));
    let base = format!("http://127.0.0.1:{}", g.addr.port());
    c.goto(&format!("{base}/_guestgate/guest"));
    c.submit("form[action$='/logout'] button");
    assert!(c.text().contains("You are signed out"));
    c.screenshot("03-signed-out");
}

#[test]
fn the_code_page_fits_a_phone() {
    let g = instance();
    let c = Chrome::start(
        "mobile",
        ChromeOpts {
            mobile: true,
            ..ChromeOpts::default()
        },
    );
    let (_, link) = share(&g, "42", "3");
    let code = code_for(&g, &link, 0);
    c.goto(&link);
    assert_eq!(c.js("return window.innerWidth"), json!(390));
    let overflow = c.js("return document.documentElement.scrollWidth > window.innerWidth");
    assert_eq!(
        overflow,
        json!(false),
        "the page scrolls sideways on a phone"
    );
    check_page(&c, "01-challenge");
    c.fill("#code", &code);
    c.submit("form[action$='/verify'] button");
    assert!(c.url().ends_with("/cases/42/versions/3"), "{}", c.url());
}

/// A page on another site posts the code form: refused, and no try is used.
#[test]
fn a_cross_site_form_post_fails() {
    use std::io::{Read, Write};
    let g = instance();
    let (_, link) = share(&g, "42", "3");
    let code = code_for(&g, &link, 0);
    // The attacker's page, on another site (localhost is not 127.0.0.1).
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let page = format!(
        "<!doctype html><html lang=en><title>win a prize</title><form method=post action=\"{link}/verify\">\
         <input name=code value=\"{code}\"><button id=go>Claim</button></form></html>"
    );
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = s.write_all(
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{page}",
                    page.len()
                )
                .as_bytes(),
            );
        }
    });
    let c = Chrome::start("cross-site", ChromeOpts::default());
    c.goto(&format!("http://localhost:{port}/"));
    c.submit("#go");
    assert!(c.text().contains("Please use the page"), "{}", c.text());
    c.screenshot("01-refused");
    assert!(!c.cookie_names().iter().any(|n| n == "guestgate_session"));
    let audit = g.audit_until("cross-origin refusal", |e| e["event"] == "cross_origin");
    assert!(
        audit.iter().all(|e| e["event"] != "failed"),
        "no try was used"
    );
    // The code still works from the real page.
    c.goto(&link);
    c.fill("#code", &code);
    c.submit("form[action$='/verify'] button");
    assert!(c.url().ends_with("/cases/42/versions/3"), "{}", c.url());
}

/// What the banner looks like in the page, read by the browser.
fn banner_state(c: &Chrome) -> serde_json::Value {
    c.js("const b = document.querySelector('.guestgate-banner');\
          if (!b) return null;\
          const r = b.getBoundingClientRect();\
          const h = document.querySelector('header');\
          const css = performance.getEntriesByType('resource').filter(e => e.name.endsWith('/_guestgate/banner.css'));\
          return {text: b.innerText, top: r.top, bottom: r.bottom, height: r.height,\
                  header: h ? h.getBoundingClientRect().top : null,\
                  bg: getComputedStyle(b).backgroundColor, stylesheet: css.length,\
                  inline: document.querySelectorAll('[style]').length,\
                  scrolls: document.documentElement.scrollWidth > window.innerWidth};")
}

/// On every HTML page of the app, for a guest: visible, styled by its own stylesheet
/// although the app forbids inline styles and scripts (a strict CSP), above the app's own
/// header, accessible, whether the app sends its pages as they are, gzip or brotli. The
/// app's own users never see it, nor does JSON.
#[test]
fn the_banner_marks_every_app_page_under_a_strict_csp_whatever_the_app_compresses() {
    const CSP: &str = "default-src 'self'; style-src 'self'; script-src 'self'; form-action 'self'; frame-ancestors 'none'";
    for (run, coding) in [
        ("identity", None),
        ("gzip", Some("gzip")),
        ("brotli", Some("br")),
    ] {
        let mut app_args = vec!["--csp".to_string(), CSP.to_string()];
        if let Some(c) = coding {
            app_args.extend(["--force-compress".to_string(), c.to_string()]);
        }
        // Mixed mode: the app's own users share the host and must not see the banner.
        let g = Instance::start(Opts {
            app_args,
            ..Opts::default()
        });
        let base = format!("http://127.0.0.1:{}", g.addr.port());
        let c = Chrome::start(&format!("banner-{run}"), ChromeOpts::default());
        c.goto(&format!("{base}/cases/42/versions/3"));
        assert!(
            c.text().contains("Signed in as staff"),
            "{run}: {}",
            c.text()
        );
        assert_eq!(
            banner_state(&c),
            serde_json::Value::Null,
            "{run}: staff see no banner"
        );

        let (_, link) = share(&g, "42", "3");
        let code = code_for(&g, &link, 0);
        c.goto(&link);
        c.fill("#code", &code);
        c.submit("form[action$='/verify'] button");
        for (step, follow) in [
            ("01-case", None),
            ("02-document", Some("Medical report")),
            ("03-summary", Some("AI summary")),
        ] {
            if let Some(link) = follow {
                c.goto(&format!("{base}/cases/42/versions/3"));
                c.click_link(link);
            }
            let b = banner_state(&c);
            let text = b["text"].as_str().unwrap_or_default();
            assert!(
                text.contains("View-only")
                    && text.contains("Case 42, version 3.")
                    && text.contains("My shares")
                    && text.contains("Sign out"),
                "{run} {step}: {b}"
            );
            assert!(
                b["height"].as_f64().unwrap_or(0.0) > 10.0,
                "{run} {step}: visible: {b}"
            );
            assert_eq!(
                b["bg"], "rgb(29, 53, 87)",
                "{run} {step}: its stylesheet applies under the app's CSP: {b}"
            );
            assert_eq!(b["stylesheet"], 1, "{run} {step}: {b}");
            assert_eq!(
                b["inline"], 0,
                "{run} {step}: no inline style anywhere: {b}"
            );
            assert!(
                b["header"].as_f64() >= b["bottom"].as_f64(),
                "{run} {step}: the app's header below it: {b}"
            );
            assert_eq!(b["scrolls"], false, "{run} {step}: {b}");
            assert!(
                c.text().contains("CaseDesk"),
                "{run} {step}: the app's page is whole"
            );
            c.screenshot(step);
            let violations = c.axe_on("'.guestgate-banner'");
            assert!(
                violations.is_empty(),
                "{run} {step}: axe-core: {violations:?}"
            );
        }

        // JSON is the app's, untouched.
        c.goto(&format!("{base}/api/cases/42/versions/3/documents"));
        assert!(
            c.text().starts_with('[') && c.text().contains("\"title\":\"Claim form\""),
            "{run}: {}",
            c.text()
        );
        assert_eq!(banner_state(&c), serde_json::Value::Null);

        // Its links work: My shares, then Sign out from the app's page.
        c.goto(&format!("{base}/cases/42/versions/3"));
        c.click_link("My shares");
        assert!(c.url().ends_with("/_guestgate/guest"), "{run}: {}", c.url());
        c.goto(&format!("{base}/cases/42/versions/3"));
        c.submit(".guestgate-banner button");
        assert!(
            c.text().contains("You are signed out"),
            "{run}: {}",
            c.text()
        );
        c.goto(&format!("{base}/cases/42/versions/3"));
        assert_eq!(
            banner_state(&c),
            serde_json::Value::Null,
            "{run}: signed out, no banner"
        );
    }
}
