//! Two real guestgate replicas sharing one real redis-server: revocations propagate,
//! attempt counters cannot be split, a restart loses nothing, and losing Redis fails
//! closed and recovers by itself.

mod common;

use std::time::{Duration, Instant};

use common::{code_and_link, path_of, Browser, Instance, Opts, RedisServer, ADMIN_KEY};
use serde_json::json;

/// A one-second staleness bound, and a store timeout below it (required).
const TIGHT: &str = "staleness_bound = \"1s\"\ntimeout = \"300ms\"";

fn replica(redis: &RedisServer, key_from: Option<&Instance>, store_extra: &str) -> Instance {
    Instance::start(Opts {
        redis: Some(redis.endpoint()),
        store_config: store_extra.to_string(),
        key_file: key_from.map(|g| g.dir.path().join("session.key")),
        guest_config: "verify_per_ip_per_minute = 10000".into(),
        ..Opts::default()
    })
}

/// Creates a share through `on`, returns (id, link, code from `on`'s outbox).
fn share(on: &Instance, email: &str) -> (String, String, String) {
    let (st, body) = on.api(
        ADMIN_KEY,
        "POST",
        "/admin/v1/shares",
        Some(&json!({"email": email, "case": "43", "version": "1"})),
    );
    assert_eq!(st, 201, "{body}");
    let link = body["link"].as_str().unwrap().to_string();
    let (code, mailed) = code_and_link(on.outbox().last().unwrap());
    assert_eq!(mailed, link);
    (body["id"].as_str().unwrap().to_string(), link, code)
}

/// 303 when the code opened the case; 401 when the browser was sent back to the code
/// page (a wrong, used or dead code); any other status as is.
fn verify(b: &mut Browser<'_>, link: &str, code: &str) -> u16 {
    let r = b.post_form(
        &format!("{}/verify", path_of(link)),
        &format!("code={code}"),
    );
    if r.sent_back().is_some() {
        401
    } else {
        r.status
    }
}

#[test]
fn a_revocation_through_one_replica_is_seen_by_the_other() {
    let d = tempfile::tempdir().unwrap();
    let redis = RedisServer::start(d.path(), false);
    let a = replica(&redis, None, "");
    let b = replica(&redis, Some(&a), "");
    let mut lags = Vec::new();
    for i in 0..100 {
        let (id, link, code) = share(&a, &format!("g{i}@lab.example"));
        // created on A, verified and used through B
        let mut browser = Browser::new(&b);
        assert_eq!(verify(&mut browser, &link, &code), 303, "share {i}");
        assert_eq!(browser.get("/cases/43/versions/1").status, 200);
        assert_eq!(
            a.api(ADMIN_KEY, "DELETE", &format!("/admin/v1/shares/{id}"), None)
                .0,
            204
        );
        let returned = Instant::now();
        loop {
            let r = b.send(
                "GET",
                "/cases/43/versions/1",
                browser.cookie.as_deref(),
                &[],
            );
            if r.status == 403 {
                break;
            }
            assert_eq!(r.status, 200);
            assert!(
                returned.elapsed() < Duration::from_secs(5),
                "B never saw revocation {i}"
            );
        }
        lags.push(returned.elapsed());
    }
    lags.sort();
    println!(
        "revocation through A → denied by B, 100 revocations: p50 {:?}, p99 {:?}, max {:?}",
        lags[49], lags[98], lags[99]
    );
    // Target: p99 ≤ 100 ms on loopback; asserted with room for a loaded CI machine.
    assert!(lags[98] < Duration::from_millis(500), "p99 {:?}", lags[98]);
    // B measured the propagation of every change it applied
    let m = b.metrics();
    let applied: f64 = m
        .lines()
        .find(|l| l.starts_with("guestgate_revocation_propagation_seconds_count"))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0);
    assert!(applied >= 100.0, "propagation observed {applied} times");
}

#[test]
fn wrong_codes_spread_across_replicas_lock_the_code() {
    let d = tempfile::tempdir().unwrap();
    let redis = RedisServer::start(d.path(), false);
    let a = replica(&redis, None, "");
    let b = replica(&redis, Some(&a), "");
    let (_, link, code) = share(&a, "spread@lab.example");
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for (i, g) in [&a, &b, &a, &b, &a].iter().enumerate() {
        assert_eq!(verify(&mut Browser::new(g), &link, wrong), 401, "try {i}");
    }
    assert_eq!(
        verify(&mut Browser::new(&b), &link, &code),
        401,
        "the code must be dead on every replica"
    );
    assert_eq!(verify(&mut Browser::new(&a), &link, &code), 401);
}

#[test]
fn a_share_made_on_one_replica_works_on_the_other_and_a_restart_loses_nothing() {
    let d = tempfile::tempdir().unwrap();
    let redis = RedisServer::start(d.path(), false);
    let mut a = replica(&redis, None, "");
    let b = replica(&redis, Some(&a), "");
    let (id, link, code) = share(&a, "both@lab.example");
    let mut browser = Browser::new(&b);
    assert_eq!(verify(&mut browser, &link, &code), 303);
    assert_eq!(
        a.send(
            "GET",
            "/cases/43/versions/1",
            browser.cookie.as_deref(),
            &[]
        )
        .status,
        200
    );
    a.restart();
    assert_eq!(
        a.send(
            "GET",
            "/cases/43/versions/1",
            browser.cookie.as_deref(),
            &[]
        )
        .status,
        200
    );
    let (_, s) = a.api(ADMIN_KEY, "GET", &format!("/admin/v1/shares/{id}"), None);
    assert_eq!(s["status"], "active");
}

/// Statuses seen by a bounded loop of guest requests, with when they were seen.
fn hammer(
    g: &Instance,
    cookie: &str,
    until: impl Fn(&[(Instant, u16)]) -> bool,
    limit: Duration,
) -> Vec<(Instant, u16)> {
    let start = Instant::now();
    let mut seen = Vec::new();
    while start.elapsed() < limit {
        // When the request was sent: guestgate decided on it no earlier than this. (The
        // time of the answer would charge a slow reply on a loaded machine to guestgate.)
        let sent = Instant::now();
        let r = g.send(
            "GET",
            "/cases/43/versions/1",
            Some(cookie),
            &["Accept: text/html"],
        );
        seen.push((sent, r.status));
        if until(&seen) {
            break;
        }
    }
    seen
}

fn ready(g: &Instance) -> u16 {
    common::http(
        g.admin,
        "GET /readyz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .map_or(0, |r| r.status)
}

#[test]
fn losing_redis_fails_closed_within_the_bound_and_service_comes_back() {
    let d = tempfile::tempdir().unwrap();
    let mut redis = RedisServer::start(d.path(), true);
    let bound = Duration::from_secs(1);
    let a = replica(&redis, None, TIGHT);
    let b = replica(&redis, Some(&a), TIGHT);
    let (_, link, code) = share(&a, "outage@lab.example");
    let mut browser = Browser::new(&a);
    assert_eq!(verify(&mut browser, &link, &code), 303);
    let cookie = browser.cookie.clone().unwrap();
    assert_eq!(
        b.send("GET", "/cases/43/versions/1", Some(&cookie), &[])
            .status,
        200
    );

    redis.kill();
    let died = Instant::now();
    for g in [&a, &b] {
        let seen = hammer(
            g,
            &cookie,
            |s| s.last().is_some_and(|(_, st)| *st == 503),
            Duration::from_secs(10),
        );
        let first_503 = seen
            .iter()
            .find(|(_, s)| *s == 503)
            .map(|(t, _)| t.duration_since(died));
        let last_200 = seen
            .iter()
            .filter(|(_, s)| *s == 200)
            .map(|(t, _)| t.duration_since(died))
            .max();
        println!("redis killed: first 503 after {first_503:?}, last 200 after {last_200:?} (bound {bound:?})");
        assert!(first_503.is_some(), "guests were never refused");
        // A 200 is allowed only while the index is within its bound. Times are when each
        // request was sent, so a slow answer on a busy machine is not charged to
        // guestgate; the slack covers a request sent just inside the bound and decided
        // a scheduling delay later.
        assert!(
            last_200.is_none_or(|t| t <= bound + Duration::from_millis(700)),
            "served on stale state: {last_200:?}"
        );
        assert!(seen.iter().all(|(_, s)| *s == 200 || *s == 503), "{seen:?}");
    }
    let page = a.send(
        "GET",
        "/cases/43/versions/1",
        Some(&cookie),
        &["Accept: text/html"],
    );
    assert_eq!(page.status, 503);
    assert!(page.body.contains("Temporarily unavailable"));
    assert_eq!((ready(&a), ready(&b)), (503, 503));
    // the admin API fails closed too, with a reason
    let (st, e) = a.api(ADMIN_KEY, "GET", "/admin/v1/shares", None);
    assert_eq!((st, e["error"].as_str()), (503, Some("store_unavailable")));
    // the error is logged as JSON with the request's id
    let line = common::wait_for("logged store error", Duration::from_secs(5), || {
        a.stderr_text()
            .lines()
            .find(|l| l.contains("store error in admin API"))
            .map(String::from)
    });
    let logged: serde_json::Value = serde_json::from_str(&line).expect("JSON log line");
    assert!(
        logged["span"]["request_id"]
            .as_str()
            .is_some_and(|id| id.len() == 16),
        "{line}"
    );

    redis.restart();
    let back = Instant::now();
    for g in [&a, &b] {
        let seen = hammer(
            g,
            &cookie,
            |s| s.last().is_some_and(|(_, st)| *st == 200),
            Duration::from_secs(20),
        );
        assert_eq!(
            seen.last().map(|(_, s)| *s),
            Some(200),
            "replica did not recover"
        );
        println!(
            "redis back: service restored after {:?}",
            seen.last().unwrap().0.duration_since(back)
        );
    }
    assert_eq!((ready(&a), ready(&b)), (200, 200));
}

#[test]
fn a_revocation_redis_lost_in_a_failover_is_applied_again() {
    let d = tempfile::tempdir().unwrap();
    let redis = RedisServer::start(d.path(), false);
    let a = replica(&redis, None, TIGHT);
    let b = replica(&redis, Some(&a), TIGHT);
    let (id, link, code) = share(&a, "lostrevoke@lab.example");
    let mut browser = Browser::new(&b);
    assert_eq!(verify(&mut browser, &link, &code), 303);
    let cookie = browser.cookie.clone().unwrap();
    let key = format!("{{guestgate}}:share:{id}");
    // What a lagging Redis replica holds: the share active, an older generation.
    let (before, gen) = (
        redis.cli(&["GET", &key]),
        redis.cli(&["GET", "{guestgate}:gen"]),
    );
    assert!(before.contains("\"active\""), "{before}");
    assert_eq!(
        a.api(ADMIN_KEY, "DELETE", &format!("/admin/v1/shares/{id}"), None)
            .0,
        204
    );
    common::wait_for("B denies", Duration::from_secs(5), || {
        (b.send("GET", "/cases/43/versions/1", Some(&cookie), &[])
            .status
            == 403)
            .then_some(())
    });
    // The failover to that replica: the revocation is gone from Redis.
    assert_eq!(redis.cli(&["SET", &key, &before]), "OK");
    assert_eq!(redis.cli(&["SET", "{guestgate}:gen", &gen]), "OK");
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(3) {
        for g in [&a, &b] {
            let st = g
                .send("GET", "/cases/43/versions/1", Some(&cookie), &[])
                .status;
            assert_eq!(st, 403, "a lost revocation must not let the guest back in");
        }
    }
    let now = redis.cli(&["GET", &key]);
    assert!(now.contains("\"revoked\""), "re-applied in redis: {now}");
    assert!(now.contains("lost revocation re-applied"), "{now}");
    // Counted by whichever replica re-applied it first (the other may find it done).
    let counted = [&a, &b].iter().any(|g| {
        g.metrics()
            .lines()
            .any(|l| l.starts_with("guestgate_store_errors_total{operation=\"lost_revocation\"}"))
    });
    assert!(counted, "the lost revocation is counted");
}

#[test]
fn a_redis_that_comes_back_empty_denies() {
    let d = tempfile::tempdir().unwrap();
    let mut redis = RedisServer::start(d.path(), false);
    let a = replica(&redis, None, TIGHT);
    let (_, link, code) = share(&a, "lost@lab.example");
    let mut browser = Browser::new(&a);
    assert_eq!(verify(&mut browser, &link, &code), 303);
    let cookie = browser.cookie.clone().unwrap();
    assert_eq!(
        a.send("GET", "/cases/43/versions/1", Some(&cookie), &[])
            .status,
        200
    );
    redis.kill();
    let died = Instant::now();
    redis.restart(); // no persistence: every share is gone
    let seen = hammer(
        &a,
        &cookie,
        |s| s.last().is_some_and(|(_, st)| *st == 403),
        Duration::from_secs(20),
    );
    assert_eq!(seen.last().map(|(_, s)| *s), Some(403), "{seen:?}");
    // Anything served after the kill must be within the staleness bound; then deny.
    let last_200 = seen
        .iter()
        .filter(|(_, s)| *s == 200)
        .map(|(t, _)| t.duration_since(died))
        .max();
    assert!(
        last_200.is_none_or(|t| t <= Duration::from_millis(1700)),
        "served on stale state: {last_200:?}"
    );
    assert!(seen.iter().all(|(_, s)| matches!(s, 200 | 503 | 403)));
    let after_restart: Vec<u16> = seen.iter().map(|(_, s)| *s).collect();
    let r = a.send("GET", "/cases/43/versions/1", Some(&cookie), &[]);
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["reason"], "share_inactive");
    println!("redis restarted empty: statuses until denial {after_restart:?}");
}

#[test]
fn the_per_address_throttle_is_shared_by_replicas() {
    let d = tempfile::tempdir().unwrap();
    let redis = RedisServer::start(d.path(), false);
    let throttled = |key_from: Option<&Instance>| {
        Instance::start(Opts {
            redis: Some(redis.endpoint()),
            key_file: key_from.map(|g| g.dir.path().join("session.key")),
            guest_config: "verify_per_ip_per_minute = 3".into(),
            ..Opts::default()
        })
    };
    let a = throttled(None);
    let b = throttled(Some(&a));
    let (_, link, code) = share(&a, "throttle@lab.example");
    let wrong = if code == "000000" { "111111" } else { "000000" };
    common::clear_of_minute_boundary();
    assert_eq!(verify(&mut Browser::new(&a), &link, wrong), 401);
    assert_eq!(verify(&mut Browser::new(&b), &link, wrong), 401);
    assert_eq!(verify(&mut Browser::new(&a), &link, wrong), 401);
    // the fourth try this minute, on the other replica, is refused before the code is checked
    assert_eq!(verify(&mut Browser::new(&b), &link, &code), 429);
}

#[test]
fn a_guest_redirected_to_the_other_replica_right_after_verifying_gets_in() {
    let d = tempfile::tempdir().unwrap();
    let redis = RedisServer::start(d.path(), false);
    let a = replica(&redis, None, "");
    let b = replica(&redis, Some(&a), "");
    for i in 0..20 {
        let (_, link, code) = share(&a, &format!("hop{i}@lab.example"));
        let mut browser = Browser::new(&a);
        assert_eq!(verify(&mut browser, &link, &code), 303);
        // no wait: B may not have applied the activation yet
        let r = b.send(
            "GET",
            "/cases/43/versions/1",
            browser.cookie.as_deref(),
            &[],
        );
        assert_eq!(r.status, 200, "hop {i}: {}", r.body);
    }
}
