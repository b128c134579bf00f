//! The OpenAPI document and the code agree: every documented operation is a route the
//! API serves (called for real), and every route is documented.

mod common;

use std::collections::BTreeSet;

use common::{Instance, Opts, ADMIN_KEY};
use guestgate::admin::api::ROUTES;

fn documented() -> BTreeSet<(String, String)> {
    let text = std::fs::read_to_string(common::repo().join("docs/openapi.json")).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).expect("openapi.json is JSON");
    assert_eq!(
        doc["openapi"].as_str().map(|v| v.starts_with("3.")),
        Some(true)
    );
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_some() {
                out.insert((method.to_ascii_uppercase(), path.clone()));
            }
        }
    }
    out
}

#[test]
fn every_route_is_documented_and_every_documented_route_exists() {
    let code: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(documented(), code);

    // and the router really serves each one (a 404 with `no such admin route` would mean a stale table)
    let g = Instance::start(Opts::default());
    for (method, path) in ROUTES {
        let concrete = path
            .replace("{id}", "sh-42")
            .replace("{email}", "expert%40clinic.example");
        let body = (*method == "POST" && concrete.ends_with("/shares"))
            .then(|| serde_json::json!({"email": "doc@lab.example", "case": "1", "version": "1"}));
        let (status, reply) = g.api(ADMIN_KEY, method, &concrete, body.as_ref());
        assert!(
            reply["error"] != "not_found" || reply["reason"] != "no such admin route",
            "{method} {concrete} is not routed: {status} {reply}"
        );
        assert!(status < 500, "{method} {concrete}: {status} {reply}");
    }
    let (status, reply) = g.api(ADMIN_KEY, "PATCH", "/admin/v1/shares/sh-42", None);
    assert_eq!(
        (status, reply["reason"].as_str()),
        (404, Some("no such admin route"))
    );
}

#[test]
fn the_probe_verb_reports_readiness() {
    let g = Instance::start(Opts::default());
    let probe = |url: String| {
        std::process::Command::new(env!("CARGO_BIN_EXE_guestgate"))
            .args(["probe", &url])
            .status()
            .unwrap()
            .code()
    };
    assert_eq!(probe(format!("http://{}/readyz", g.admin)), Some(0));
    assert_eq!(probe(format!("http://{}/nope", g.admin)), Some(1));
    assert_eq!(probe("http://127.0.0.1:1/readyz".into()), Some(1));
}
