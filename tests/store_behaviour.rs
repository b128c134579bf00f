//! One behaviour suite, run against both store backends (embedded file, real Redis), so
//! they cannot drift: code single use, attempts, expiry, resend limits, failure budget,
//! revocation, guest accounts, last use, and survival of a reopen. The Redis backend runs it over every way in:
//! one server, one server over TLS with a private CA, a Cluster, and Sentinels.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{free_port, private_ca, RedisCluster, RedisSentinel, RedisServer};
use guestgate::store::{
    CodeCheck, CodeLimits, EmbeddedStore, GuestAccount, GuestStatus, IssueOutcome, PendingCode,
    RedisConfig, RedisEndpoint, RedisStore, Share, ShareStatus, Store,
};

const LIMITS: CodeLimits = CodeLimits {
    max_attempts: 5,
    failure_budget: 7,
    resend_interval: 60,
    sends_per_hour: 3,
};

// Times are unix seconds near now: Redis expires code keys by its own clock.
fn now() -> u64 {
    guestgate::stamp::unix_now()
}

fn share(id: &str, t: u64) -> Share {
    Share {
        created_by: "t".into(),
        ..Share::pending(id, "g@x.test", ["42", "3", "view-only"], t, t + 10_000)
    }
}

fn code(mac: &str, t: u64) -> PendingCode {
    PendingCode {
        mac: mac.into(),
        expires_at: t + 600,
        attempts: 0,
    }
}

async fn codes_are_single_use_and_die_after_five_wrong_tries(s: &dyn Store) {
    let t = now();
    s.create_share(&share("a", t), "tok-a").await.unwrap();
    assert!(matches!(
        s.issue_code("a", code("m1", t), t, LIMITS).await.unwrap(),
        IssueOutcome::Issued(_)
    ));
    for left in (1..5).rev() {
        assert_eq!(
            s.check_code("a", "bad", t + 1, LIMITS).await.unwrap(),
            CodeCheck::Wrong { left }
        );
    }
    assert_eq!(
        s.check_code("a", "bad", t + 1, LIMITS).await.unwrap(),
        CodeCheck::Wrong { left: 0 }
    );
    assert_eq!(
        s.check_code("a", "m1", t + 2, LIMITS).await.unwrap(),
        CodeCheck::NoCode
    );
    assert!(matches!(
        s.issue_code("a", code("m2", t + 100), t + 100, LIMITS)
            .await
            .unwrap(),
        IssueOutcome::Issued(_)
    ));
    let CodeCheck::Verified(sh) = s.check_code("a", "m2", t + 101, LIMITS).await.unwrap() else {
        panic!("not verified")
    };
    assert_eq!(
        (sh.status, sh.accepted_at, sh.failures),
        (ShareStatus::Active, Some(t + 101), 0)
    );
    assert_eq!(
        s.check_code("a", "m2", t + 102, LIMITS).await.unwrap(),
        CodeCheck::NoCode
    );
}

async fn expired_codes_fail_and_resends_are_limited(s: &dyn Store) {
    let t = now();
    s.create_share(&share("b", t), "tok-b").await.unwrap();
    s.issue_code("b", code("m", t), t, LIMITS).await.unwrap();
    assert_eq!(
        s.check_code("b", "m", t + 600, LIMITS).await.unwrap(),
        CodeCheck::NoCode
    );
    assert_eq!(
        s.issue_code("b", code("m", t + 30), t + 30, LIMITS)
            .await
            .unwrap(),
        IssueOutcome::RateLimited { retry_after: 30 }
    );
    s.issue_code("b", code("m", t + 60), t + 60, LIMITS)
        .await
        .unwrap();
    s.issue_code("b", code("m", t + 120), t + 120, LIMITS)
        .await
        .unwrap();
    assert!(matches!(
        s.issue_code("b", code("m", t + 200), t + 200, LIMITS)
            .await
            .unwrap(),
        IssueOutcome::RateLimited { .. }
    ));
    assert!(matches!(
        s.issue_code("b", code("m", t + 3700), t + 3700, LIMITS)
            .await
            .unwrap(),
        IssueOutcome::Issued(_)
    ));
}

async fn the_failure_budget_locks_the_share_across_codes(s: &dyn Store) {
    let t = now();
    s.create_share(&share("c", t), "tok-c").await.unwrap();
    s.issue_code("c", code("m1", t), t, LIMITS).await.unwrap();
    for _ in 0..5 {
        s.check_code("c", "bad", t + 1, LIMITS).await.unwrap();
    }
    s.issue_code("c", code("m2", t + 100), t + 100, LIMITS)
        .await
        .unwrap();
    s.check_code("c", "bad", t + 101, LIMITS).await.unwrap();
    assert_eq!(
        s.check_code("c", "bad", t + 102, LIMITS).await.unwrap(),
        CodeCheck::Locked
    );
    assert_eq!(
        s.check_code("c", "m2", t + 103, LIMITS).await.unwrap(),
        CodeCheck::Locked
    );
    assert_eq!(
        s.issue_code("c", code("m3", t + 200), t + 200, LIMITS)
            .await
            .unwrap(),
        IssueOutcome::Unusable
    );
}

async fn revocation_is_idempotent_and_kills_pending_codes(s: &dyn Store) {
    let t = now();
    s.create_share(&share("d", t), "tok-d").await.unwrap();
    s.issue_code("d", code("md", t), t, LIMITS).await.unwrap();
    let r = s.revoke("d", "staff@x", t + 5).await.unwrap().unwrap();
    assert_eq!(
        (r.status, r.revoked_at, r.revoked_by.as_deref()),
        (ShareStatus::Revoked, Some(t + 5), Some("staff@x"))
    );
    let r2 = s.revoke("d", "other", t + 6).await.unwrap().unwrap();
    assert_eq!(
        (r2.revoked_at, r2.revoked_by.as_deref()),
        (Some(t + 5), Some("staff@x"))
    );
    assert_eq!(
        s.check_code("d", "md", t + 7, LIMITS).await.unwrap(),
        CodeCheck::Unusable
    );
    assert!(s.revoke("nope", "x", t).await.unwrap().is_none());
}

async fn lookups(s: &dyn Store) {
    let t = now();
    s.create_share(&share("e", t), "tok-e").await.unwrap();
    assert_eq!(s.share_by_token("tok-e").await.unwrap().unwrap().id, "e");
    assert!(s.share_by_token("tok-x").await.unwrap().is_none());
    assert_eq!(s.share("e").await.unwrap().unwrap(), share("e", t));
    assert!(s.all_shares().await.unwrap().iter().any(|x| x.id == "e"));
}

async fn verify_counts_are_per_client_and_minute(s: &dyn Store) {
    let t = now() / 60 * 60;
    assert_eq!(s.count_verify("10.0.0.1", t).await.unwrap(), 1);
    assert_eq!(s.count_verify("10.0.0.1", t + 30).await.unwrap(), 2);
    assert_eq!(s.count_verify("10.0.0.2", t + 30).await.unwrap(), 1);
    assert_eq!(s.count_verify("10.0.0.1", t + 60).await.unwrap(), 1);
}

/// Guest accounts: created once, accepted once (names kept), or created accepted for a
/// share that predates them. Last use only moves forward. A share never sent a code
/// (an empty send list, which Redis' Lua re-encodes as `{}`) revokes and reads back.
async fn guest_accounts_last_use_and_unsent_shares(s: &dyn Store) {
    let t = now();
    let ann = GuestAccount::invited("ann@x.test", "Ann", "Lee", "admin", t);
    assert!(s.create_guest(&ann).await.unwrap());
    let other = GuestAccount::invited("ann@x.test", "Other", "Name", "admin", t);
    assert!(!s.create_guest(&other).await.unwrap(), "created once");
    let got = s.guest("ann@x.test").await.unwrap().unwrap();
    assert_eq!(
        (got.first_name.as_str(), got.status),
        ("Ann", GuestStatus::Invited)
    );
    s.accept_guest("ann@x.test", t + 1).await.unwrap();
    s.accept_guest("ann@x.test", t + 2).await.unwrap();
    let got = s.guest("ann@x.test").await.unwrap().unwrap();
    assert_eq!(
        (got.status, got.accepted_at, got.last_name.as_str()),
        (GuestStatus::Accepted, Some(t + 1), "Lee")
    );
    s.accept_guest("old@x.test", t + 3).await.unwrap();
    let old = s.guest("old@x.test").await.unwrap().unwrap();
    assert_eq!(
        (old.status, old.first_name.as_str()),
        (GuestStatus::Accepted, "")
    );
    assert_eq!(s.all_guests().await.unwrap().len(), 2);
    assert!(s.guest("nobody@x.test").await.unwrap().is_none());

    s.create_share(&share("u", t), "tok-u").await.unwrap();
    s.touch("u", t + 10).await.unwrap();
    s.touch("u", t + 5).await.unwrap();
    assert_eq!(
        s.share("u").await.unwrap().unwrap().last_used_at,
        Some(t + 10)
    );
    let r = s.revoke("u", "staff@x", t + 11).await.unwrap().unwrap();
    assert_eq!(r.status, ShareStatus::Revoked);
    assert!(r.sends.is_empty());
    assert_eq!(
        s.share("u").await.unwrap().unwrap().status,
        ShareStatus::Revoked
    );
}

async fn suite(s: &dyn Store) {
    verify_counts_are_per_client_and_minute(s).await;
    codes_are_single_use_and_die_after_five_wrong_tries(s).await;
    expired_codes_fail_and_resends_are_limited(s).await;
    the_failure_budget_locks_the_share_across_codes(s).await;
    revocation_is_idempotent_and_kills_pending_codes(s).await;
    lookups(s).await;
    guest_accounts_last_use_and_unsent_shares(s).await;
}

/// Data written before must be there after.
async fn survived(s: &dyn Store) {
    assert_eq!(s.all_shares().await.unwrap().len(), 6);
    assert_eq!(s.all_guests().await.unwrap().len(), 2);
    assert_eq!(
        s.share("d").await.unwrap().unwrap().status,
        ShareStatus::Revoked
    );
    assert!(s.share("c").await.unwrap().unwrap().locked);
    assert_eq!(s.share_by_token("tok-e").await.unwrap().unwrap().id, "e");
}

#[tokio::test]
async fn embedded_backend() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("db");
    suite(&EmbeddedStore::open(&path).unwrap()).await;
    survived(&EmbeddedStore::open(&path).unwrap()).await;
}

fn redis_config(endpoint: RedisEndpoint) -> RedisConfig {
    RedisConfig {
        endpoint,
        ca_file: None,
        prefix: "{gg-test}:".into(),
        timeout: Duration::from_secs(1),
        staleness_bound: Duration::from_secs(3),
    }
}

/// The suite through one connection, then the data through a second one (another replica).
async fn redis_suite(cfg: RedisConfig) {
    let rt = tokio::runtime::Handle::current();
    let store = Arc::new(RedisStore::connect(cfg.clone(), rt.clone()).await.unwrap());
    suite(store.as_ref()).await;
    survived(&RedisStore::connect(cfg, rt).await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_backend() {
    let d = tempfile::tempdir().unwrap();
    let redis = RedisServer::start(d.path(), false);
    redis_suite(redis_config(redis.endpoint())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_backend_over_tls_with_a_private_ca() {
    let d = tempfile::tempdir().unwrap();
    let (ca, cert, key) = private_ca(d.path());
    let port = free_port();
    let _redis = RedisServer::start_with(
        d.path(),
        false,
        free_port(),
        &[
            "--tls-port".into(),
            port.to_string(),
            "--tls-cert-file".into(),
            cert.display().to_string(),
            "--tls-key-file".into(),
            key.display().to_string(),
            "--tls-auth-clients".into(),
            "no".into(),
        ],
    );
    let url = format!("rediss://127.0.0.1:{port}/0");
    let mut cfg = redis_config(RedisEndpoint::Single { url });
    // Without the CA, the server's certificate is not trusted: no connection.
    let refused = RedisStore::connect(cfg.clone(), tokio::runtime::Handle::current()).await;
    let err = refused
        .err()
        .expect("an untrusted certificate must be refused");
    assert!(err.to_string().contains("certificate"), "{err}");
    cfg.ca_file = Some(ca);
    redis_suite(cfg).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_backend() {
    let d = tempfile::tempdir().unwrap();
    let cluster = RedisCluster::start(d.path(), 3, 0);
    // Seeded through a node that does not own the keys: the client must follow MOVED.
    let owner = cluster.owner("{gg-test}");
    let other = cluster.nodes.iter().find(|n| n.port != owner).unwrap().port;
    redis_suite(redis_config(cluster.endpoint(&[other]))).await;
    // Every key landed in the one slot of the hash tag, on its owner.
    let keys = common::redis_cli(owner, &["KEYS", "{gg-test}:*"]);
    assert!(keys.lines().count() >= 10, "{keys}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_sentinel_backend() {
    let d = tempfile::tempdir().unwrap();
    let s = RedisSentinel::start(d.path());
    redis_suite(redis_config(s.endpoint())).await;
    // Written to the primary the Sentinel names.
    let keys = s.data_cli(s.primary(), &["KEYS", "{gg-test}:*"]);
    assert!(keys.lines().count() >= 10, "{keys}");
}
