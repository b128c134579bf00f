//! Deliberately lax upstreams: HTTP/1.1 servers that read framing more loosely than
//! pingora does, the way many real apps do, and record every request they parse. A body
//! they misread becomes the next request on the connection; the smuggling suite asserts
//! that nothing of the kind ever reaches them through guestgate.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use super::{Proc, Seen};

/// How an upstream misreads framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lax {
    /// Reads a body only on POST, PUT and PATCH (by Content-Length or chunked); a body on
    /// GET, HEAD, DELETE, OPTIONS or TRACE stays on the connection as the next request.
    NoBodyOnBodiless,
    /// Reads Content-Length like C's `atoi` on the last field line (`97, 97` is 97, `+5`
    /// is 5, `5 5` is 5, `0x10` is 0) and knows nothing of Transfer-Encoding.
    LenientLength,
    /// Honours Transfer-Encoding only when its first coding is `chunked` in any case
    /// (`chunked, identity` is chunked, `gzip, chunked` is not), else falls back to the
    /// first Content-Length; joins folded header lines.
    PartialTransferEncoding,
    /// Frames strictly, but answers only the first request on a connection: it reads and
    /// records the second, then closes without a word, as an app whose keep-alive timeout
    /// races the proxy's reuse of the connection does. pingora sends that request again
    /// on a new connection.
    ClosesReusedConnections,
}

/// A lax upstream on a free port, recording what it parsed.
pub struct LaxUpstream {
    pub addr: SocketAddr,
    pub kind: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    record: Option<std::path::PathBuf>,
    _proc: Option<Proc>,
}

impl LaxUpstream {
    /// A Rust upstream with the given laxness.
    pub fn start(lax: Lax) -> LaxUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind lax upstream");
        let addr = listener.local_addr().expect("addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let store = Arc::clone(&seen);
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let store = Arc::clone(&store);
                std::thread::spawn(move || serve(conn, lax, &store));
            }
        });
        LaxUpstream {
            addr,
            kind: format!("{lax:?}"),
            seen,
            record: None,
            _proc: None,
        }
    }

    /// Python's own `http.server` (a real third-party server): no body on GET, HEAD,
    /// DELETE, OPTIONS or TRACE, Content-Length read with `int()`, no chunked bodies.
    pub fn python(dir: &Path) -> LaxUpstream {
        let record = dir.join("python-upstream.jsonl");
        let script = super::repo().join("tests/upstreams/lax_http_server.py");
        let mut child = Command::new("python3")
            .arg(&script)
            .arg(&record)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 must be installed (scripts/setup.sh installs it)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("python upstream banner");
        let port: u16 = line
            .trim()
            .rsplit(' ')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("python upstream banner: {line:?}"));
        LaxUpstream {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            kind: "python http.server".into(),
            seen: Arc::new(Mutex::new(Vec::new())),
            record: Some(record),
            _proc: Some(Proc(child)),
        }
    }

    /// The sample app of a test instance, read through its record file.
    pub fn recorded(kind: &str, app: &super::App) -> LaxUpstream {
        LaxUpstream {
            addr: app.addr,
            kind: kind.into(),
            seen: Arc::new(Mutex::new(Vec::new())),
            record: Some(app.record_path().to_path_buf()),
            _proc: None,
        }
    }

    /// Every request parsed so far.
    pub fn seen(&self) -> Vec<Seen> {
        match &self.record {
            Some(path) => std::fs::read_to_string(path)
                .unwrap_or_default()
                .lines()
                .map(|l| serde_json::from_str(l).expect("record line"))
                .collect(),
            None => self.seen.lock().map(|v| v.clone()).unwrap_or_default(),
        }
    }
}

fn serve(conn: TcpStream, lax: Lax, store: &Mutex<Vec<Seen>>) {
    let mut out = match conn.try_clone() {
        Ok(c) => c,
        Err(_) => return,
    };
    let mut r = BufReader::new(conn);
    let mut answered = 0;
    loop {
        let Some((method, target, headers)) = read_head(&mut r, lax) else {
            return;
        };
        let body = match read_body(&mut r, lax, &method, &headers) {
            Some(b) => b,
            None => return,
        };
        if let Ok(mut s) = store.lock() {
            s.push(Seen {
                method: method.clone(),
                target,
                headers,
                body: String::from_utf8_lossy(&body).into_owned(),
            });
        }
        if lax == Lax::ClosesReusedConnections && answered == 1 {
            return;
        }
        answered += 1;
        let reply: &[u8] = if method == "HEAD" {
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"
        } else {
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
        };
        if out.write_all(reply).is_err() {
            return;
        }
    }
}

/// Reads a request line and header lines, leniently: LF or CRLF, leading blank lines
/// skipped, whitespace around names and values trimmed.
/// Method, target and header lines of one request.
type Head = (String, String, Vec<(String, String)>);

fn read_head(r: &mut BufReader<TcpStream>, lax: Lax) -> Option<Head> {
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if !line.trim().is_empty() {
            break;
        }
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next().unwrap_or("").to_string();
    let mut headers: Vec<(String, String)> = Vec::new();
    loop {
        line.clear();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let l = line.trim_end_matches(['\r', '\n']);
        if l.is_empty() {
            break;
        }
        if (l.starts_with(' ') || l.starts_with('\t')) && lax == Lax::PartialTransferEncoding {
            if let Some(last) = headers.last_mut() {
                last.1.push(' ');
                last.1.push_str(l.trim());
            }
            continue;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    Some((method, target, headers))
}

fn header<'a>(headers: &'a [(String, String)], name: &str, last: bool) -> Option<&'a str> {
    let mut it = headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str());
    if last {
        it.next_back()
    } else {
        it.next()
    }
}

/// `atoi`: optional sign, then leading digits; anything else ends the number.
fn atoi(v: &str) -> usize {
    let v = v.trim_start();
    let v = v.strip_prefix('+').unwrap_or(v);
    let digits: String = v.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().unwrap_or(0)
}

fn read_body(
    r: &mut BufReader<TcpStream>,
    lax: Lax,
    method: &str,
    headers: &[(String, String)],
) -> Option<Vec<u8>> {
    let chunked = match lax {
        Lax::NoBodyOnBodiless => {
            if !matches!(method, "POST" | "PUT" | "PATCH") {
                return Some(Vec::new());
            }
            header(headers, "transfer-encoding", true)
                .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
        }
        Lax::LenientLength => false,
        Lax::ClosesReusedConnections => header(headers, "transfer-encoding", true)
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked")),
        Lax::PartialTransferEncoding => header(headers, "transfer-encoding", false)
            .and_then(|v| v.split(',').next())
            .is_some_and(|c| c.trim().eq_ignore_ascii_case("chunked")),
    };
    if chunked {
        return read_chunked(r);
    }
    let len = match lax {
        Lax::LenientLength => header(headers, "content-length", true).map_or(0, atoi),
        _ => header(headers, "content-length", false)
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0),
    };
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).ok()?;
    Some(body)
}

fn read_chunked(r: &mut BufReader<TcpStream>) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        r.read_line(&mut line).ok()?;
        let size = usize::from_str_radix(line.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            // trailers up to the blank line
            loop {
                line.clear();
                r.read_line(&mut line).ok()?;
                if line.trim().is_empty() {
                    return Some(body);
                }
            }
        }
        let mut chunk = vec![0u8; size + 2];
        r.read_exact(&mut chunk).ok()?;
        body.extend_from_slice(&chunk[..size]);
    }
}
