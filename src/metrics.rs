//! Prometheus metrics, served on the admin listener's `/metrics`. Every label comes from
//! a fixed set (decision, reason, event, profile and rule names from the policy files,
//! store operation): never an email, a token, a path or a case id, so the number of
//! series does not grow with guests or traffic.

use std::sync::LazyLock;

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// All of guestgate's metrics, in their own registry.
pub struct Metrics {
    registry: Registry,
    /// Requests by decision and reason.
    pub requests: IntCounterVec,
    /// Allowed guest requests by profile and rule.
    pub allowed_by_rule: IntCounterVec,
    /// Time from the request's arrival to the decision.
    pub decision_seconds: Histogram,
    /// Time from the decision to forward a request to the app's response header.
    pub upstream_seconds: Histogram,
    /// Challenge events (`code_sent`, `verified`, `failed`, `locked`, `resend_refused`, ...).
    pub challenge: IntCounterVec,
    /// Invitations by email outcome.
    pub invitations: IntCounterVec,
    /// Shares revoked.
    pub revocations: IntCounter,
    /// Shares known to this instance, by status.
    pub shares: IntGaugeVec,
    /// Store failures by operation.
    pub store_errors: IntCounterVec,
    /// Delay between a change in Redis and this replica applying it.
    pub propagation_seconds: Histogram,
    /// Milliseconds since the last proof of contact with the shared store.
    pub staleness_ms: IntGauge,
    /// Policy reloads by result.
    pub policy_reloads: IntCounterVec,
    /// Audit lines dropped because the writer was too far behind.
    pub audit_dropped: IntCounter,
    /// HTML responses to guests by what happened to the banner (`inserted`, `no_body`,
    /// `encoding_unsupported`, `decode_failed`).
    pub banner: IntCounterVec,
    /// Scope assertions signed.
    pub assertions: IntCounter,
    /// Audit: lines in the file at the last checkpoint.
    pub audit_lines: IntGauge,
    /// Audit: the first 48 bits of the head hash at the last checkpoint.
    pub audit_head: IntGauge,
    /// Audit: when the last checkpoint was taken (unix seconds).
    pub audit_checkpoint_time: IntGauge,
}

fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).unwrap_or_else(|e| panic!("metric {name}: {e}"));
    r.register(Box::new(g.clone()))
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    g
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    r.register(Box::new(c.clone()))
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    c
}

fn histogram(r: &Registry, name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    r.register(Box::new(h.clone()))
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    h
}

// Registration happens once, at start, with constant names: a failure here is a
// programming error caught by every test run, never a request-path panic.
static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let r = Registry::new();
    let requests = counter_vec(
        &r,
        "guestgate_requests_total",
        "Requests by decision and reason",
        &["decision", "reason"],
    );
    let allowed_by_rule = counter_vec(
        &r,
        "guestgate_allowed_requests_total",
        "Allowed guest requests by profile and rule",
        &["profile", "rule"],
    );
    let decision_seconds = histogram(
        &r,
        "guestgate_decision_duration_seconds",
        "Time to decide a request",
        vec![
            0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.001, 0.01,
        ],
    );
    let upstream_seconds = histogram(
        &r,
        "guestgate_upstream_duration_seconds",
        "Time from the decision to forward a request to the app's response header (taking a connection, and any retry, included)",
        prometheus::DEFAULT_BUCKETS.to_vec(),
    );
    let challenge = counter_vec(
        &r,
        "guestgate_challenge_events_total",
        "Code challenge events",
        &["event"],
    );
    let invitations = counter_vec(
        &r,
        "guestgate_invitations_total",
        "Invitation emails by outcome",
        &["outcome"],
    );
    let revocations = IntCounter::new("guestgate_revocations_total", "Shares revoked")
        .unwrap_or_else(|e| panic!("{e}"));
    r.register(Box::new(revocations.clone()))
        .unwrap_or_else(|e| panic!("{e}"));
    let shares = IntGaugeVec::new(
        Opts::new(
            "guestgate_shares",
            "Shares known to this instance, by status",
        ),
        &["status"],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    r.register(Box::new(shares.clone()))
        .unwrap_or_else(|e| panic!("{e}"));
    let store_errors = counter_vec(
        &r,
        "guestgate_store_errors_total",
        "Share store failures by operation",
        &["operation"],
    );
    let propagation_seconds = histogram(
        &r,
        "guestgate_revocation_propagation_seconds",
        "Delay between a share change in Redis and this replica applying it",
        vec![
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
        ],
    );
    let staleness_ms = IntGauge::new(
        "guestgate_share_state_staleness_milliseconds",
        "Milliseconds since the last contact with the shared store (0 for the embedded store)",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    r.register(Box::new(staleness_ms.clone()))
        .unwrap_or_else(|e| panic!("{e}"));
    let policy_reloads = counter_vec(
        &r,
        "guestgate_policy_reloads_total",
        "Policy reloads by result",
        &["result"],
    );
    let audit_dropped = IntCounter::new(
        "guestgate_audit_dropped_total",
        "Audit lines dropped because the writer was behind",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    r.register(Box::new(audit_dropped.clone()))
        .unwrap_or_else(|e| panic!("{e}"));
    let banner = counter_vec(
        &r,
        "guestgate_banner_total",
        "HTML responses to guests by what happened to the banner",
        &["outcome"],
    );
    let assertions = IntCounter::new(
        "guestgate_assertions_total",
        "Scope assertions signed for the app",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    r.register(Box::new(assertions.clone()))
        .unwrap_or_else(|e| panic!("{e}"));
    let audit_lines = gauge(
        &r,
        "guestgate_audit_checkpoint_lines",
        "Lines in the audit file at the last checkpoint",
    );
    let audit_head = gauge(
        &r,
        "guestgate_audit_checkpoint_head",
        "First 48 bits of the audit chain's head hash at the last checkpoint",
    );
    let audit_checkpoint_time = gauge(
        &r,
        "guestgate_audit_checkpoint_timestamp_seconds",
        "When the last audit checkpoint was taken",
    );
    Metrics {
        registry: r,
        audit_lines,
        audit_head,
        audit_checkpoint_time,
        banner,
        assertions,
        requests,
        allowed_by_rule,
        decision_seconds,
        upstream_seconds,
        challenge,
        invitations,
        revocations,
        shares,
        store_errors,
        propagation_seconds,
        staleness_ms,
        policy_reloads,
        audit_dropped,
    }
});

/// The metrics.
pub fn get() -> &'static Metrics {
    &METRICS
}

impl Metrics {
    /// Text exposition of every series.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_conventions_and_render() {
        let m = get();
        m.requests.with_label_values(&["allow", "rule"]).inc();
        let text = String::from_utf8(m.render()).unwrap();
        assert!(text.contains("guestgate_requests_total{decision=\"allow\",reason=\"rule\"}"));
        for line in text.lines().filter(|l| l.starts_with("# TYPE")) {
            let parts: Vec<&str> = line.split(' ').collect();
            let (name, kind) = (parts[2], parts[3]);
            match kind {
                "counter" => assert!(name.ends_with("_total"), "{name}"),
                "histogram" => assert!(name.ends_with("_seconds"), "{name}"),
                _ => {}
            }
        }
    }
}
