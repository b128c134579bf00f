//! The differential smuggling suite. The real guestgate binary stands in front of
//! deliberately lax upstreams (one never reads bodies on bodiless methods, one reads
//! Content-Length like `atoi`, one honours only part of Transfer-Encoding, Python's own
//! `http.server`, and the sample app) and receives a generated matrix of framing
//! variants, each carrying a second request with forged identity headers in its body.
//!
//! The assertion is the invariant itself: every upstream parsed exactly the requests
//! guestgate's audit says it forwarded (method and target, as a multiset), each with a
//! whole body or none, and never a forged identity header.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::lax::{Lax, LaxUpstream};
use common::{exchange, Instance, Opts, Seen};

const EMAIL: &str = "expert@clinic.example";
const FORGED: &str = "ceo@corp.example";
const METHODS: &[&str] = &[
    "GET", "HEAD", "DELETE", "OPTIONS", "TRACE", "POST", "PUT", "PATCH",
];

/// A profile that allows every method on one document path, so each variant's request
/// carries its own marker and body-bearing guest requests are allowed too.
const PROFILE: &str = r#"
name = "smuggle"
[[rule]]
name = "any-method"
methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
path = "/api/cases/{case}/versions/{version}/documents/{doc}"
[upstream]
set_headers = { "X-Guest-Email" = "{guest.email}", "X-Guest-Share" = "{share.id}", "X-Guest-Scope" = "{case}/{version}" }
"#;

/// How the payload is laid out after the head.
#[derive(Clone, Copy)]
enum Enc {
    /// As is.
    Raw,
    /// As one chunk, then the last chunk.
    Chunked,
    /// An empty chunked body, then the payload.
    Terminated,
}

/// Every framing variant: (label, header lines, payload layout). `{n}` is the payload
/// length in decimal, `{x}` in hex.
fn framings() -> Vec<(String, Vec<String>, Enc)> {
    let mut v: Vec<(String, Vec<String>, Enc)> = vec![("none".into(), vec![], Enc::Raw)];
    for cl in [
        "{n}",
        "{n}, {n}",
        "{n},{n}",
        "0, {n}",
        "{n}, 0",
        "00{n}",
        "+{n}",
        "-{n}",
        "0 {n}",
        "{n} 0",
        "0x{x}",
        "{n}e0",
        "99999999999999999999",
        "",
        " {n} ",
        "\t{n}",
        "0",
    ] {
        v.push((
            format!("CL {cl:?}"),
            vec![format!("Content-Length: {cl}")],
            Enc::Raw,
        ));
    }
    for (a, b) in [("{n}", "{n}"), ("0", "{n}"), ("{n}", "0")] {
        v.push((
            format!("CL twice {a}/{b}"),
            vec![
                format!("Content-Length: {a}"),
                format!("Content-Length: {b}"),
            ],
            Enc::Raw,
        ));
    }
    for te in [
        "chunked",
        "Chunked",
        "CHUNKED",
        " chunked",
        "chunked ",
        "chunked, chunked",
        "gzip, chunked",
        "chunked, identity",
        "identity",
        "xchunked",
        "chunked;x=1",
        "\tchunked",
        "",
    ] {
        v.push((
            format!("TE {te:?}"),
            vec![format!("Transfer-Encoding: {te}")],
            Enc::Chunked,
        ));
    }
    for te in ["chunked", "Chunked", "chunked, identity"] {
        v.push((
            format!("TE {te:?}, payload after the last chunk"),
            vec![format!("Transfer-Encoding: {te}")],
            Enc::Terminated,
        ));
    }
    let lines = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    v.extend([
        (
            "TE twice".into(),
            lines(&["Transfer-Encoding: chunked", "Transfer-Encoding: chunked"]),
            Enc::Chunked,
        ),
        (
            "TE chunked then identity".into(),
            lines(&["Transfer-Encoding: chunked", "Transfer-Encoding: identity"]),
            Enc::Chunked,
        ),
        (
            "TE obs-fold".into(),
            lines(&["Transfer-Encoding: chunked", " identity"]),
            Enc::Chunked,
        ),
        (
            "CL obs-fold".into(),
            lines(&["Content-Length: 0", " {n}"]),
            Enc::Raw,
        ),
        (
            "TE then CL".into(),
            lines(&["Transfer-Encoding: chunked", "Content-Length: 4"]),
            Enc::Chunked,
        ),
        (
            "CL then TE".into(),
            lines(&["Content-Length: 4", "Transfer-Encoding: chunked"]),
            Enc::Chunked,
        ),
        (
            "CL and TE, payload after".into(),
            lines(&["Content-Length: {n}", "Transfer-Encoding: chunked"]),
            Enc::Terminated,
        ),
        (
            "TE identity and CL".into(),
            lines(&["Transfer-Encoding: identity", "Content-Length: {n}"]),
            Enc::Raw,
        ),
        (
            "Content_Length".into(),
            lines(&["Content_Length: {n}"]),
            Enc::Raw,
        ),
        (
            "Transfer_Encoding".into(),
            lines(&["Transfer_Encoding: chunked"]),
            Enc::Chunked,
        ),
        (
            "CL space before colon".into(),
            lines(&["Content-Length : {n}"]),
            Enc::Raw,
        ),
        (
            "CL without space".into(),
            lines(&["Content-Length:{n}"]),
            Enc::Raw,
        ),
    ]);
    v
}

/// The second request hidden in a body: another case, forged identity headers.
fn smuggled(target: &str) -> Vec<u8> {
    format!(
        "DELETE {target} HTTP/1.1\r\nHost: app.test\r\nX-Guest-Email: {FORGED}\r\nX-Guest-Share: sh-42\r\nX-Guest-Scope: 7/2\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

fn marker_target(guest: bool, id: usize, part: char) -> String {
    if guest {
        format!("/api/cases/42/versions/3/documents/v{id}{part}")
    } else {
        format!("/p/v{id}{part}")
    }
}

fn inner_target(guest: bool, id: usize) -> String {
    if guest {
        format!("/api/cases/7/versions/2/documents/v{id}z")
    } else {
        format!("/p/v{id}z")
    }
}

/// One request head (without the blank line) and the bytes that follow it.
fn request(
    method: &str,
    target: &str,
    version: &str,
    cookie: Option<&str>,
    lines: &[String],
) -> String {
    let mut r = format!("{method} {target} {version}\r\nHost: app.test\r\n");
    if let Some(c) = cookie {
        r.push_str(&format!("Cookie: {c}\r\n"));
    }
    for l in lines {
        r.push_str(l);
        r.push_str("\r\n");
    }
    r.push_str("\r\n");
    r
}

fn encode(payload: &[u8], enc: Enc) -> Vec<u8> {
    match enc {
        Enc::Raw => payload.to_vec(),
        Enc::Chunked => {
            let mut b = format!("{:x}\r\n", payload.len()).into_bytes();
            b.extend_from_slice(payload);
            b.extend_from_slice(b"\r\n0\r\n\r\n");
            b
        }
        Enc::Terminated => {
            let mut b = b"0\r\n\r\n".to_vec();
            b.extend_from_slice(payload);
            b
        }
    }
}

/// The last request on every connection: the server closes after answering it, so the
/// client knows everything before it was answered (or refused).
fn closing(id: usize) -> String {
    format!("GET /p/v{id}s HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n")
}

/// The generated matrix for one upstream: every method × framing × session × version,
/// then pipelined pairs. Returns the byte strings to send.
fn matrix(cookie: &str) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut id = 0;
    for guest in [true, false] {
        let cookie = guest.then_some(cookie);
        for version in ["HTTP/1.1", "HTTP/1.0"] {
            for method in METHODS {
                for (label, lines, enc) in framings() {
                    id += 1;
                    let payload = smuggled(&inner_target(guest, id));
                    let n = payload.len();
                    let lines: Vec<String> = lines
                        .iter()
                        .map(|l| {
                            l.replace("{n}", &n.to_string())
                                .replace("{x}", &format!("{n:x}"))
                        })
                        .collect();
                    let mut bytes = request(
                        method,
                        &marker_target(guest, id, 'a'),
                        version,
                        cookie,
                        &lines,
                    )
                    .into_bytes();
                    bytes.extend_from_slice(&encode(&payload, enc));
                    bytes.extend_from_slice(closing(id).as_bytes());
                    let who = if guest { "guest" } else { "anonymous" };
                    out.push((format!("#{id} {who} {version} {method} {label}"), bytes));
                }
            }
        }
        // Pipelined: a request with a body (framed properly, or not at all), then another.
        for method in METHODS {
            for (label, lines, enc) in [
                ("CL", vec!["Content-Length: {n}".to_string()], Enc::Raw),
                (
                    "chunked",
                    vec!["Transfer-Encoding: chunked".to_string()],
                    Enc::Chunked,
                ),
                ("unframed", vec![], Enc::Raw),
            ] {
                id += 1;
                let payload = smuggled(&inner_target(guest, id));
                let n = payload.len().to_string();
                let lines: Vec<String> = lines.iter().map(|l| l.replace("{n}", &n)).collect();
                let mut bytes = request(
                    method,
                    &marker_target(guest, id, 'a'),
                    "HTTP/1.1",
                    cookie,
                    &lines,
                )
                .into_bytes();
                bytes.extend_from_slice(&encode(&payload, enc));
                bytes.extend_from_slice(
                    request(
                        "GET",
                        &marker_target(guest, id, 'b'),
                        "HTTP/1.1",
                        cookie,
                        &[],
                    )
                    .as_bytes(),
                );
                bytes.extend_from_slice(closing(id).as_bytes());
                out.push((format!("#{id} pipelined {method} {label}"), bytes));
            }
        }
    }
    out
}

/// Polls `f` until it returns the same count three times in a row.
fn settled<T>(mut f: impl FnMut() -> Vec<T>) -> Vec<T> {
    let mut last = usize::MAX;
    let mut same = 0;
    loop {
        let v = f();
        if v.len() == last {
            same += 1;
            if same == 3 {
                return v;
            }
        } else {
            same = 0;
            last = v.len();
        }
        std::thread::sleep(Duration::from_millis(60));
    }
}

/// Runs the matrix through one guestgate in front of `upstream`; returns the number of
/// variants sent, after asserting the invariant.
fn differential(upstream: &LaxUpstream, g: &Instance) -> usize {
    let cookie = g.cookie(EMAIL, &[("sh-42", "42", "3", "smuggle")]);
    let variants = matrix(&cookie);
    let mut answered = 0;
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    for (_, bytes) in &variants {
        let reply = exchange(g.addr, bytes);
        if !reply.is_empty() {
            answered += 1;
        }
        *outcomes.entry(first_answer(&reply)).or_default() += 1;
    }
    assert!(
        answered > variants.len() / 2,
        "{}: most variants get an answer",
        upstream.kind
    );
    eprintln!("{}: first answers: {outcomes:?}", upstream.kind);
    g.send("GET", "/p/sentinel", None, &[]);
    let (forwarded, audited) = assert_invariant(upstream, g);
    eprintln!(
        "{}: {} variants; {forwarded} requests forwarded and parsed identically; {} refused or answered by guestgate",
        upstream.kind,
        variants.len(),
        audited - forwarded
    );
    variants.len()
}

/// The invariant: the upstream parsed exactly the requests guestgate's audit says it
/// forwarded (a multiset of method and target), each with its whole body or none, and no
/// identity header guestgate did not write. Returns (forwarded, audited).
fn assert_invariant(upstream: &LaxUpstream, g: &Instance) -> (usize, usize) {
    // The caller's last request was GET /p/sentinel: once it is audited, so is all before.
    g.audit_until("sentinel audited", |e| {
        e["path"] == "/p/sentinel" && e["decision"] == "pass"
    });
    let audit = settled(|| g.audit());
    let seen: Vec<Seen> = settled(|| upstream.seen());

    let mut decided: BTreeMap<(String, String), usize> = BTreeMap::new();
    for e in audit.iter().filter(|e| e["kind"] == "request") {
        if e["decision"] == "allow" || e["decision"] == "pass" {
            let key = (
                e["method"].as_str().unwrap_or("").to_string(),
                e["path"].as_str().unwrap_or("").to_string(),
            );
            *decided.entry(key).or_default() += 1;
        }
    }
    let mut received: BTreeMap<(String, String), usize> = BTreeMap::new();
    for s in &seen {
        *received
            .entry((s.method.clone(), s.target.clone()))
            .or_default() += 1;
    }
    let extra: Vec<_> = received
        .iter()
        .filter(|(k, n)| decided.get(k) != Some(n))
        .collect();
    let missing: Vec<_> = decided
        .iter()
        .filter(|(k, n)| received.get(k) != Some(n))
        .collect();
    assert!(
        extra.is_empty() && missing.is_empty(),
        "{}: the upstream parsed requests guestgate did not decide on: {extra:?}\nand guestgate forwarded requests the upstream never parsed: {missing:?}",
        upstream.kind
    );
    for s in &seen {
        for (k, v) in &s.headers {
            let folded = k.to_ascii_lowercase().replace('_', "-");
            if folded.starts_with("x-guest-") {
                assert!(
                    folded == "x-guest-email" && v == EMAIL
                        || folded == "x-guest-share" && v == "sh-42"
                        || folded == "x-guest-scope" && v == "42/3",
                    "{}: forged identity header {k}: {v} reached the app in {s:?}",
                    upstream.kind
                );
            }
        }
        // A body is whole or absent: never a prefix, never a request's worth of extra bytes.
        let whole = String::from_utf8_lossy(&smuggled(&inner_target(
            s.target.starts_with("/api"),
            variant_id(&s.target),
        )))
        .into_owned();
        assert!(
            s.body.is_empty() || s.body == whole,
            "{}: a partial or foreign body reached the app: {s:?}",
            upstream.kind
        );
        if guestgate::framing::is_bodiless(&s.method) {
            assert!(s.body.is_empty(), "{}: a body on {s:?}", upstream.kind);
        }
    }
    (seen.len(), audit.len())
}

/// Who answered the first request of a connection: the app (`forwarded <status>`),
/// guestgate (`guestgate <status>`, it names a deny id), or pingora's own parser.
fn first_answer(reply: &[u8]) -> String {
    let text = String::from_utf8_lossy(reply);
    let Some(status) = text.get(9..12) else {
        return "no answer".into();
    };
    let head = text
        .split("\r\n\r\n")
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    if head.contains("x-guestgate-deny-id") {
        format!("guestgate {status}")
    } else if head.contains("date:") && status == "400" && !head.contains("content-type") {
        format!("pingora parser {status}")
    } else {
        format!("forwarded {status}")
    }
}

fn variant_id(target: &str) -> usize {
    target
        .rsplit('/')
        .next()
        .and_then(|m| m.strip_prefix('v'))
        .map(|m| m.trim_end_matches(char::is_alphabetic))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn policies() -> tempfile::TempDir {
    let d = tempfile::tempdir().expect("tempdir");
    for f in ["view-only.toml", "collaborator.toml"] {
        std::fs::copy(common::repo().join("policies").join(f), d.path().join(f)).expect("copy");
    }
    std::fs::write(d.path().join("smuggle.toml"), PROFILE).expect("write profile");
    d
}

fn gate_for(upstream: &LaxUpstream, policies: &tempfile::TempDir, chunked: bool) -> Instance {
    Instance::start(Opts {
        upstream: Some(upstream.addr),
        policies: Some(policies.path().to_path_buf()),
        upstream_config: format!("chunked_request_bodies = {chunked}"),
        ..Opts::default()
    })
}

#[test]
fn lax_upstreams_parse_exactly_what_guestgate_decided() {
    let p = policies();
    let dir = tempfile::tempdir().expect("tempdir");
    // Apps that cannot read chunked bodies run with chunked_request_bodies = false.
    let upstreams = [
        (LaxUpstream::start(Lax::NoBodyOnBodiless), true),
        (LaxUpstream::start(Lax::PartialTransferEncoding), true),
        (LaxUpstream::start(Lax::LenientLength), false),
        (LaxUpstream::python(dir.path()), false),
    ];
    let total: usize = std::thread::scope(|s| {
        let runs: Vec<_> = upstreams
            .iter()
            .map(|(u, chunked)| {
                let p = &p;
                s.spawn(move || differential(u, &gate_for(u, p, *chunked)))
            })
            .collect();
        runs.into_iter()
            .map(|r| r.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .sum()
    });
    eprintln!("{total} variants in all");
}

/// An app that drops a reused connection after reading a request makes pingora send the
/// request again on a new connection, through the filters again: the retry must carry
/// exactly what was decided, the same target and the same identity headers.
#[test]
fn a_retried_request_reaches_the_app_as_decided() {
    let p = policies();
    let upstream = LaxUpstream::start(Lax::ClosesReusedConnections);
    let g = gate_for(&upstream, &p, true);
    let cookie = g.cookie(EMAIL, &[("sh-42", "42", "3", "smuggle")]);
    let target = "/api/cases/42/versions/3/documents/1";
    for i in 0..4 {
        let r = g.send("GET", target, Some(&cookie), &[]);
        assert_eq!(r.status, 200, "request {i}: {}", r.body);
    }
    let seen = settled(|| upstream.seen());
    // Four answered, and every second request on a connection dropped and sent again.
    assert!(
        seen.len() > 4,
        "the upstream dropped no reused connection, so nothing was retried: {seen:?}"
    );
    for s in &seen {
        assert_eq!(s.target, target, "{s:?}");
        assert_eq!(s.header_all("x-guest-email"), [EMAIL], "{s:?}");
        assert_eq!(s.header_all("x-guest-scope"), ["42/3"], "{s:?}");
        assert_eq!(s.header_all("x-guest-share"), ["sh-42"], "{s:?}");
    }
}

/// The bundled sample app reads `Content-Length: 97, 97` as 0: the shape that was
/// reported. Through guestgate it parses only what guestgate forwarded.
#[test]
fn the_sample_app_parses_exactly_what_guestgate_decided() {
    let p = policies();
    let g = Instance::start(Opts {
        policies: Some(p.path().to_path_buf()),
        ..Opts::default()
    });
    let app = LaxUpstream::recorded("sample app", &g.app);
    differential(&app, &g);
}

/// HTTP/2 carries a body in DATA frames whatever the headers say: a GET whose HEADERS
/// frame does not end the stream must not become an HTTP/1.1 GET with a body upstream.
#[test]
fn http2_data_frames_on_bodiless_methods_never_reach_the_app() {
    let certs = tempfile::tempdir().expect("tempdir");
    let (ca, cert, key) = common::private_ca(certs.path());
    let upstream = LaxUpstream::start(Lax::NoBodyOnBodiless);
    let p = policies();
    let g = Instance::start(Opts {
        tls: Some((cert, key)),
        upstream: Some(upstream.addr),
        policies: Some(p.path().to_path_buf()),
        ..Opts::default()
    });
    let cookie = format!(
        "__Host-{}",
        g.cookie(EMAIL, &[("sh-42", "42", "3", "smuggle")])
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let outcomes = rt.block_on(h2_matrix(&ca, g.addr.port(), &cookie));
    let mut variants = 0;
    for (label, method, data, status) in &outcomes {
        variants += 1;
        if guestgate::framing::is_bodiless(method) && *data {
            assert_eq!(*status, Some(400), "{label}");
        } else if *method == "TRACE" && label.contains("guest") {
            // no rule allows TRACE
            assert_eq!(*status, Some(403), "{label}");
        } else {
            assert_eq!(*status, Some(200), "{label}");
        }
    }
    let (forwarded, audited) = assert_invariant(&upstream, &g);
    eprintln!(
        "HTTP/2: {variants} variants; {forwarded} forwarded and parsed identically; {} refused",
        audited - forwarded
    );
}

/// A request is judged when guestgate decides, not when its head arrived: an HTTP/2
/// client that holds a GET's stream open (HEADERS without END_STREAM) until its session
/// has expired is refused, as a new request would be, though the token was verified and
/// cached by an earlier request.
#[test]
fn a_request_held_open_past_its_sessions_expiry_is_judged_when_decided() {
    let certs = tempfile::tempdir().expect("tempdir");
    let (ca, cert, key) = common::private_ca(certs.path());
    let g = Instance::start(Opts {
        tls: Some((cert, key)),
        ..Opts::default()
    });
    // Expires in a second; the verifier's leeway for clock skew is five more.
    let token = g
        .keys
        .mint(
            EMAIL,
            common::grants(&[("sh-42", "42", "3", "view-only")]),
            1,
        )
        .expect("mint");
    let cookie = format!("__Host-guestgate_session={token}");
    let port = g.addr.port();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (fresh, held) = rt.block_on(async {
        let connector = h2_connector(&ca);
        let mut client = h2_connect(&connector, port).await;
        let get = || {
            http::Request::get(format!(
                "https://127.0.0.1:{port}/api/cases/42/versions/3/documents/1"
            ))
            .header("cookie", &cookie)
            .body(())
            .expect("request")
        };
        let (resp, _) = client.send_request(get(), true).expect("send");
        let fresh = resp.await.expect("answer").status().as_u16();
        let (resp, mut send) = client.send_request(get(), false).expect("send");
        tokio::time::sleep(Duration::from_secs(8)).await;
        send.send_data(bytes::Bytes::new(), true)
            .expect("end the stream");
        (fresh, resp.await.expect("answer").status().as_u16())
    });
    assert_eq!(
        fresh, 200,
        "the session is valid when the first request comes"
    );
    assert_ne!(
        held, 200,
        "the held request was forwarded on an expired session"
    );
    let lines = g.audit_at_least(2);
    assert_eq!(lines[1]["reason"], "session_expired", "{}", lines[1]);
}

/// (label, method, whether DATA with bytes followed, status or None for a reset stream)
type H2Outcome = (String, &'static str, bool, Option<u16>);

/// A TLS connector trusting `ca` that offers HTTP/2 only.
fn h2_connector(ca: &std::path::Path) -> tokio_rustls::TlsConnector {
    use std::sync::Arc;
    use tokio_rustls::rustls;
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(ca).expect("ca");
    for c in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(c.expect("pem")).expect("root");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// A new HTTP/2 connection to guestgate, ready for requests.
async fn h2_connect(
    connector: &tokio_rustls::TlsConnector,
    port: u16,
) -> h2::client::SendRequest<bytes::Bytes> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let name = tokio_rustls::rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let tls = connector.connect(name, tcp).await.expect("tls");
    let (client, conn) = h2::client::handshake(tls).await.expect("h2 handshake");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client.ready().await.expect("ready")
}

async fn h2_matrix(ca: &std::path::Path, port: u16, cookie: &str) -> Vec<H2Outcome> {
    let connector = h2_connector(ca);
    let mut out = Vec::new();
    let mut id = 5000;
    for guest in [true, false] {
        for method in METHODS {
            for mode in [
                "no DATA",
                "DATA with content-length",
                "DATA without content-length",
                "empty DATA",
            ] {
                id += 1;
                let mut client = h2_connect(&connector, port).await;
                let payload = smuggled(&inner_target(guest, id));
                let mut req = http::Request::builder().method(*method).uri(format!(
                    "https://127.0.0.1:{port}{}",
                    marker_target(guest, id, 'a')
                ));
                if guest {
                    req = req.header("cookie", cookie);
                }
                if mode == "DATA with content-length" {
                    req = req.header("content-length", payload.len());
                }
                let req = req.body(()).expect("request");
                let (resp, mut send) = client.send_request(req, mode == "no DATA").expect("send");
                match mode {
                    "no DATA" => {}
                    "empty DATA" => {
                        let _ = send.send_data(bytes::Bytes::new(), true);
                    }
                    _ => {
                        let _ = send.send_data(bytes::Bytes::from(payload), true);
                    }
                }
                let status = resp.await.ok().map(|r| r.status().as_u16());
                let who = if guest { "guest" } else { "anonymous" };
                out.push((
                    format!("#{id} HTTP/2 {who} {method} {mode}"),
                    *method,
                    mode.starts_with("DATA"),
                    status,
                ));
            }
        }
    }
    // The sentinel assert_invariant waits for.
    let mut client = h2_connect(&connector, port).await;
    let req = http::Request::get(format!("https://127.0.0.1:{port}/p/sentinel"))
        .body(())
        .expect("request");
    let (resp, _) = client.send_request(req, true).expect("send");
    let _ = resp.await;
    out
}

/// A chunked body split across TCP writes at every place in its framing (inside a size
/// line, between a size line and its data, between data and its CRLF) reaches the app
/// whole: an empty chunk read in the middle of a body is not its end.
#[test]
fn chunked_bodies_split_across_writes_arrive_whole() {
    use std::io::{Read, Write};
    let upstream = LaxUpstream::start(Lax::NoBodyOnBodiless);
    let p = policies();
    let g = gate_for(&upstream, &p, true);
    let chunks = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    let splits: Vec<usize> = (1..chunks.len()).collect();
    for (i, at) in splits.iter().enumerate() {
        let mut s = std::net::TcpStream::connect(g.addr).expect("connect");
        s.set_nodelay(true).expect("nodelay");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let head = format!(
            "POST /p/split{i} HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        );
        s.write_all(head.as_bytes()).expect("head");
        s.write_all(&chunks[..*at]).expect("first part");
        std::thread::sleep(Duration::from_millis(20));
        s.write_all(&chunks[*at..]).expect("rest");
        let mut reply = Vec::new();
        let _ = s.read_to_end(&mut reply);
        assert!(
            reply.starts_with(b"HTTP/1.1 200"),
            "split at {at}: {}",
            String::from_utf8_lossy(&reply)
        );
    }
    let seen = upstream.seen();
    assert_eq!(seen.len(), splits.len());
    for r in &seen {
        assert_eq!(r.body, "hello world", "{}: the body was cut", r.target);
    }
}
