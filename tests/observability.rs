//! Metrics against the real binary: counters move as requests are decided, labels come
//! from fixed sets, and a thousand distinct guests add no series.

mod common;

use common::{Instance, Opts};

/// The value of one series line, 0 when absent.
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

fn series(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.rsplit_once(' ').map_or(l, |(s, _)| s).to_string())
        .collect()
}

#[test]
fn counters_follow_decisions() {
    let g = Instance::start(Opts::default());
    let c = g.cookie(
        "expert@clinic.example",
        &[("sh-42", "42", "3", "view-only")],
    );
    assert_eq!(
        g.send("GET", "/cases/42/versions/3", Some(&c), &[]).status,
        200
    );
    assert_eq!(
        g.send("GET", "/cases/42/versions/3", Some(&c), &[]).status,
        200
    );
    assert_eq!(
        g.send(
            "DELETE",
            "/api/cases/42/versions/3/documents/1",
            Some(&c),
            &[]
        )
        .status,
        403
    );
    assert_eq!(g.send("GET", "/a/../b", Some(&c), &[]).status, 400);
    assert_eq!(g.send("GET", "/settings", None, &[]).status, 200);
    assert_eq!(g.send("GET", "/_guestgate/s/nope", None, &[]).status, 404);
    let m = g.metrics();
    assert_eq!(
        value(
            &m,
            "guestgate_requests_total{decision=\"allow\",reason=\"rule\"}"
        ),
        2.0,
        "{m}"
    );
    assert_eq!(
        value(
            &m,
            "guestgate_requests_total{decision=\"deny\",reason=\"method_not_allowed\"}"
        ),
        1.0
    );
    assert_eq!(
        value(
            &m,
            "guestgate_requests_total{decision=\"reject\",reason=\"target_dot_segment\"}"
        ),
        1.0
    );
    assert_eq!(
        value(
            &m,
            "guestgate_requests_total{decision=\"pass\",reason=\"no_session\"}"
        ),
        1.0
    );
    assert_eq!(
        value(
            &m,
            "guestgate_allowed_requests_total{profile=\"view-only\",rule=\"doclist-page\"}"
        ),
        2.0
    );
    assert_eq!(value(&m, "guestgate_decision_duration_seconds_count"), 5.0);
    assert_eq!(value(&m, "guestgate_upstream_duration_seconds_count"), 3.0);
    assert_eq!(
        value(
            &m,
            "guestgate_challenge_events_total{event=\"invalid_link\"}"
        ),
        1.0
    );
    assert_eq!(value(&m, "guestgate_shares{status=\"active\"}"), 3.0);
    // revoke one seeded share through the API: the counter and the gauge move
    assert_eq!(
        g.api(common::ADMIN_KEY, "DELETE", "/admin/v1/shares/sh-7", None)
            .0,
        204
    );
    let m = g.metrics();
    assert_eq!(value(&m, "guestgate_revocations_total"), 1.0);
    assert_eq!(value(&m, "guestgate_shares{status=\"revoked\"}"), 1.0);
}

#[test]
fn a_thousand_guests_add_no_series_and_no_identities() {
    let g = Instance::start(Opts::default());
    let first = g.cookie("g0@lab.example", &[("sh-42", "42", "3", "view-only")]);
    assert_eq!(
        g.send("GET", "/cases/42/versions/3", Some(&first), &[])
            .status,
        200
    );
    assert_eq!(
        g.send("GET", "/cases/43/versions/1", Some(&first), &[])
            .status,
        403
    );
    let before = series(&g.metrics());
    for i in 1..1000 {
        let c = g.cookie(
            &format!("g{i}@lab.example"),
            &[("sh-42", "42", "3", "view-only")],
        );
        assert_eq!(
            g.send("GET", "/cases/42/versions/3", Some(&c), &[]).status,
            200
        );
        assert_eq!(
            g.send(
                "GET",
                &format!("/cases/{}/versions/1", 1000 + i),
                Some(&c),
                &[]
            )
            .status,
            403
        );
    }
    let text = g.metrics();
    assert_eq!(series(&text), before, "new series appeared");
    assert!(!text.contains("@lab.example") && !text.contains("/cases/"));
    assert_eq!(
        value(
            &text,
            "guestgate_requests_total{decision=\"allow\",reason=\"rule\"}"
        ),
        1000.0
    );
}
