//! The one audit event and the metrics of a request, written from the `logging` phase:
//! a `challenge` event for guestgate's own pages, a `request` event for everything else.

use pingora::proxy::Session;

use super::RequestCtx;
use crate::audit::{AuditSink, ChallengeEvent, DecisionEvent};
use crate::decision::Verdict;
use crate::metrics;
use crate::stamp::timestamp;

/// Counts the request and writes its audit event.
pub fn record(audit: &AuditSink, audit_pass_through: bool, session: &Session, ctx: &RequestCtx) {
    let status = session.response_written().map_or(0, |r| r.status.as_u16());
    let client_ip = ctx.client_text;
    if let Some(page) = &ctx.page {
        metrics::get()
            .challenge
            .with_label_values(&[page.event])
            .inc();
        let share = page.share.as_ref();
        audit.emit(&ChallengeEvent {
            ts: timestamp(ctx.arrived),
            kind: "challenge",
            request_id: &ctx.request_id,
            event: page.event,
            status,
            share: share.map(|s| s.id.as_str()),
            guest: share.map(|s| s.email.as_str()),
            case: share.map(|s| s.case.as_str()),
            version: share.map(|s| s.version.as_str()),
            client_ip,
        });
        return;
    }
    let Some(verdict) = &ctx.verdict else {
        return;
    };
    let m = metrics::get();
    let reason = verdict.reason().label();
    m.requests
        .with_label_values(&[verdict.decision(), reason])
        .inc();
    if let Verdict::Allow(a) = verdict {
        if let (Some(share), Some(rule)) = (&a.guest.share, &a.guest.rule) {
            m.allowed_by_rule
                .with_label_values(&[share.profile.as_str(), rule.as_str()])
                .inc();
        }
    }
    if matches!(verdict, Verdict::Pass { .. }) && !audit_pass_through {
        return;
    }
    let path = match verdict {
        Verdict::Allow(a) => Some(a.path.as_str()),
        Verdict::Refuse { path, .. } => path.as_deref(),
        Verdict::Pass { .. } => Some(session.req_header().uri.path()),
    };
    let guest = verdict.guest();
    let share = guest.and_then(|g| g.share.as_ref());
    let refused = matches!(verdict, Verdict::Refuse { .. });
    audit.emit_decision(&DecisionEvent {
        ts: timestamp(ctx.arrived),
        kind: "request",
        request_id: &ctx.request_id,
        decision: verdict.decision(),
        reason,
        status,
        method: session.req_header().method.as_str(),
        path,
        guest: guest.map(|g| g.email.as_str()),
        share: share.map(|s| s.id.as_str()),
        case: share.map(|s| s.case.as_str()),
        version: share.map(|s| s.version.as_str()),
        profile: share.map(|s| s.profile.as_str()),
        rule: guest.and_then(|g| g.rule.as_deref()),
        detail: match verdict {
            Verdict::Refuse { detail, .. } => detail.as_deref(),
            _ => None,
        },
        session: guest.map(|g| g.jti.as_str()),
        deny_id: refused.then_some(ctx.request_id.as_str()),
        client_ip,
        latency_ms: ctx.started.elapsed().as_secs_f64() * 1000.0,
    });
}
