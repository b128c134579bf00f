//! The sample case-management app: stands in for "the existing app" behind guestgate
//! in the demo, the docs and the tests. It serves HTML pages and a JSON API for a few
//! cases, accepts writes, shows which guest headers it received, and with `--record
//! FILE` appends every request it receives (method, target, headers, body) as one JSON
//! line before answering, so tests can assert exactly what reached the app.
//!
//! Like many real apps it can also send a strict Content-Security-Policy (`--csp`),
//! compress what it sends (`--compress gzip|deflate|br` when the request accepts it,
//! `--force-compress` regardless), and stream a page of any size
//! (`/cases/{c}/versions/{v}/big?mb=N`).
//!
//! It is deliberately naive: it trusts every header and does no access control, like
//! the app guestgate protects.

use std::io::Write as _;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const CASES: &[(&str, &str, &[&str])] = &[
    ("42", "Okafor v. Northwind Insurance", &["1", "2", "3"]),
    ("43", "Estate of Lindqvist", &["1"]),
    ("7", "Harbour Freight claim", &["1", "2"]),
];
const DOCS: &[(&str, &str)] = &[
    ("1", "Claim form"),
    ("2", "Medical report"),
    ("3", "Correspondence"),
];

struct Request {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

type Recorder = Option<Arc<Mutex<std::fs::File>>>;

/// How the app shapes its responses.
#[derive(Debug, Clone, Default)]
struct Style {
    csp: Option<String>,
    compress: Option<String>,
    force: bool,
}

impl Style {
    /// The coding for a response to `req`, if any.
    fn coding(&self, req: &Request) -> Option<&str> {
        let c = self.compress.as_deref()?;
        let accepted = req.header("accept-encoding").is_some_and(|ae| {
            ae.split(',')
                .any(|t| t.split(';').next().unwrap_or("").trim() == c)
        });
        (self.force || accepted).then_some(c)
    }
}

fn compress(coding: &str, data: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let level = flate2::Compression::fast();
    match coding {
        "gzip" => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), level);
            let _ = e.write_all(data);
            e.finish().unwrap_or_default()
        }
        "deflate" => {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), level);
            let _ = e.write_all(data);
            e.finish().unwrap_or_default()
        }
        _ => {
            let mut out = Vec::new();
            {
                let mut e = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
                let _ = e.write_all(data);
            }
            out
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> std::io::Result<()> {
    let mut listen = "127.0.0.1:3000".to_string();
    let mut record = None;
    let mut style = Style::default();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--listen" => listen = args.next().unwrap_or(listen),
            "--record" => record = args.next(),
            "--csp" => style.csp = args.next(),
            "--compress" => style.compress = args.next(),
            "--force-compress" => {
                style.compress = args.next();
                style.force = true;
            }
            _ => {
                eprintln!("usage: guestgate-sample-app [--listen ADDR] [--record FILE] [--csp POLICY] [--compress|--force-compress gzip|deflate|br]");
                std::process::exit(2);
            }
        }
    }
    let style = Arc::new(style);
    let recorder: Recorder = match record {
        Some(p) => Some(Arc::new(Mutex::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)?,
        ))),
        None => None,
    };
    let listener = TcpListener::bind(&listen).await?;
    println!("sample app listening on {}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let recorder = recorder.clone();
        let style = Arc::clone(&style);
        tokio::spawn(async move {
            let _ = serve(stream, recorder, &style).await;
        });
    }
}

async fn serve(mut stream: TcpStream, recorder: Recorder, style: &Style) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(8192);
    loop {
        let Some(req) = read_request(&mut stream, &mut buf).await? else {
            return Ok(());
        };
        if let Some(r) = &recorder {
            let line = serde_json::json!({
                "method": req.method,
                "target": req.target,
                "headers": req.headers,
                "body": String::from_utf8_lossy(&req.body),
            });
            if let Ok(mut f) = r.lock() {
                let _ = writeln!(f, "{line}");
                let _ = f.flush();
            }
        }
        if req.target == "/slow" {
            // A long request, to show that in-flight requests survive a proxy shutdown.
            tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        }
        if let Some(mb) = big_page(&req) {
            stream_big_page(&mut stream, mb, style).await?;
            continue;
        }
        let (status, ctype, body) = route(&req);
        let mut head = format!(
            "HTTP/1.1 {status} {}\r\ncontent-type: {ctype}\r\n",
            reason(status)
        );
        let html = ctype.starts_with("text/html");
        if html {
            // Like many apps: cacheable pages and a cookie of its own.
            head.push_str(
                "cache-control: private, max-age=600\r\nset-cookie: app_pref=compact; Path=/\r\n",
            );
            if let Some(csp) = &style.csp {
                head.push_str(&format!("content-security-policy: {csp}\r\n"));
            }
        }
        let body = match style
            .coding(&req)
            .filter(|_| html || ctype == "application/json")
        {
            Some(c) => {
                head.push_str(&format!(
                    "content-encoding: {c}\r\nvary: accept-encoding\r\n"
                ));
                compress(c, body.as_bytes())
            }
            None => body.into_bytes(),
        };
        head.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
        // One write per response: a separate body write would meet Nagle + delayed ACK.
        let mut out = head.into_bytes();
        if req.method != "HEAD" {
            out.extend_from_slice(&body);
        }
        stream.write_all(&out).await?;
        if req
            .header("connection")
            .is_some_and(|c| c.to_ascii_lowercase().contains("close"))
        {
            return Ok(());
        }
    }
}

/// `GET /cases/{c}/versions/{v}/big?mb=N`: how many megabytes of page to stream.
fn big_page(req: &Request) -> Option<usize> {
    let (path, query) = req.target.split_once('?').unwrap_or((&req.target, ""));
    let segs: Vec<&str> = path.split('/').collect();
    if req.method != "GET" || !matches!(segs.as_slice(), ["", "cases", _, "versions", _, "big"]) {
        return None;
    }
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix("mb="))
        .and_then(|n| n.parse().ok())
        .map(|n: usize| n.min(1024))
}

/// Streams a long HTML page in chunks, never holding more than one.
async fn stream_big_page(stream: &mut TcpStream, mb: usize, style: &Style) -> std::io::Result<()> {
    let mut head = "HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\ntransfer-encoding: chunked\r\n".to_string();
    if let Some(csp) = &style.csp {
        head.push_str(&format!("content-security-policy: {csp}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    let chunk = |data: &[u8]| {
        let mut c = format!("{:x}\r\n", data.len()).into_bytes();
        c.extend_from_slice(data);
        c.extend_from_slice(b"\r\n");
        c
    };
    stream
        .write_all(&chunk(
            b"<!doctype html><html><head><title>Big</title></head><body><main>",
        ))
        .await?;
    let line = b"<p>Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod.</p>\n";
    let block: Vec<u8> = line.iter().copied().cycle().take(64 * 1024).collect();
    for _ in 0..mb * 16 {
        stream.write_all(&chunk(&block)).await?;
    }
    stream.write_all(&chunk(b"</main></body></html>\n")).await?;
    stream.write_all(b"0\r\n\r\n").await
}

/// Reads one request; `None` on a clean close.
async fn read_request(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<Request>> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut parsed = httparse::Request::new(&mut headers);
        if let httparse::Status::Complete(head_len) =
            parsed.parse(buf).map_err(|e| bad(&e.to_string()))?
        {
            let mut req = Request {
                method: parsed.method.unwrap_or("").to_string(),
                target: parsed.path.unwrap_or("").to_string(),
                headers: parsed
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_string(),
                            String::from_utf8_lossy(h.value).into_owned(),
                        )
                    })
                    .collect(),
                body: Vec::new(),
            };
            buf.drain(..head_len);
            let chunked = req
                .header("transfer-encoding")
                .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
            if chunked {
                req.body = read_chunked(stream, buf).await?;
            } else {
                let len: usize = req
                    .header("content-length")
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                while buf.len() < len {
                    if read_more(stream, buf).await? == 0 {
                        return Err(bad("eof in body"));
                    }
                }
                req.body = buf.drain(..len).collect();
            }
            return Ok(Some(req));
        }
        if read_more(stream, buf).await? == 0 {
            return Ok(None);
        }
    }
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    let mut chunk = [0u8; 8192];
    let n = stream.read(&mut chunk).await?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n)
}

async fn read_chunked(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<Vec<u8>> {
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "bad chunk");
    let mut body = Vec::new();
    loop {
        let line_end = loop {
            if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
                break i;
            }
            if read_more(stream, buf).await? == 0 {
                return Err(bad());
            }
        };
        let size_text = String::from_utf8_lossy(&buf[..line_end]).to_string();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| bad())?;
        buf.drain(..line_end + 2);
        while buf.len() < size + 2 {
            if read_more(stream, buf).await? == 0 {
                return Err(bad());
            }
        }
        body.extend_from_slice(&buf[..size]);
        buf.drain(..size + 2);
        if size == 0 {
            return Ok(body);
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Status",
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn page(req: &Request, title: &str, body: &str) -> (u16, &'static str, String) {
    let who = match req.header("x-guest-email") {
        Some(g) => format!(
            "Guest access: {} (share {})",
            esc(g),
            esc(req.header("x-guest-share").unwrap_or("?"))
        ),
        None => "Signed in as staff".to_string(),
    };
    (
        200,
        "text/html; charset=utf-8",
        format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title>\
             <link rel=\"stylesheet\" href=\"/static/app.css\"></head><body><header>CaseDesk · {who}</header>\
             <main><h1>{t}</h1>{body}</main></body></html>\n",
            t = esc(title)
        ),
    )
}

fn json(status: u16, v: serde_json::Value) -> (u16, &'static str, String) {
    (status, "application/json", v.to_string())
}

fn route(req: &Request) -> (u16, &'static str, String) {
    let path = req.target.split('?').next().unwrap_or("");
    let segs: Vec<&str> = path.split('/').skip(1).collect();
    let case = |id: &str| CASES.iter().find(|(c, _, _)| *c == id);
    let m = req.method.as_str();
    let read = m == "GET" || m == "HEAD";
    match segs.as_slice() {
        ["static", "app.css"] => (
            200,
            "text/css",
            "body{font-family:system-ui;margin:2rem}header{color:#555}".into(),
        ),
        ["slow"] => (200, "text/plain", "slow answer\n".into()),
        ["settings"] => page(
            req,
            "Organisation settings",
            "<p>Users, guests, billing.</p>",
        ),
        ["cases", c, "versions", v, rest @ ..] if read => {
            let Some((_, name, _)) = case(c) else {
                return json(404, serde_json::json!({"error": "no such case"}));
            };
            let base = format!("/cases/{c}/versions/{v}");
            match rest {
                [] => {
                    let items: String = DOCS
                        .iter()
                        .map(|(d, t)| format!("<li><a href=\"{base}/documents/{d}\">{t}</a></li>"))
                        .collect();
                    page(
                        req,
                        &format!("{name} — version {v}"),
                        &format!(
                            "<ul>{items}</ul><p><a href=\"{base}/summary\">AI summary</a></p>"
                        ),
                    )
                }
                ["documents", d] => page(
                    req,
                    &format!("Document {d}"),
                    &format!("<p>Viewer for document {} of case {}.</p>", esc(d), esc(c)),
                ),
                ["summary"] => page(
                    req,
                    "AI summary",
                    "<p>The claimant reports a back injury; the insurer disputes the date.</p>",
                ),
                _ => json(404, serde_json::json!({"error": "not found"})),
            }
        }
        ["api", "cases"] if read => json(
            200,
            serde_json::json!(CASES
                .iter()
                .map(|(c, n, _)| serde_json::json!({"id": c, "name": n}))
                .collect::<Vec<_>>()),
        ),
        ["api", "cases", c, "versions", v, rest @ ..] => {
            if case(c).is_none() {
                return json(404, serde_json::json!({"error": "no such case"}));
            }
            match (m, rest) {
                ("GET" | "HEAD", ["documents"]) => json(200, serde_json::json!(DOCS.iter().map(|(d, t)| serde_json::json!({"id": d, "title": t, "case": c, "version": v})).collect::<Vec<_>>())),
                ("GET" | "HEAD", ["documents", d]) => json(200, serde_json::json!({"id": d, "case": c, "version": v})),
                ("GET" | "HEAD", ["documents", d, "content"]) => (200, "text/plain", format!("Content of document {d} of case {c} version {v}.\n")),
                ("GET" | "HEAD", ["reports"]) => json(200, serde_json::json!([{"id": "r1", "title": "Liability assessment"}])),
                ("POST", ["documents"]) => json(201, serde_json::json!({"created": true})),
                ("PUT" | "PATCH" | "DELETE", ["documents", _]) => json(200, serde_json::json!({"changed": true})),
                ("PATCH", ["metadata"] | ["categories"]) => json(200, serde_json::json!({"changed": true})),
                _ => json(405, serde_json::json!({"error": "not allowed"})),
            }
        }
        _ => json(404, serde_json::json!({"error": "not found"})),
    }
}
