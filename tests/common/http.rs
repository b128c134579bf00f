//! Raw HTTP/1.1 for tests: requests built byte by byte, responses parsed, and a client
//! that keeps guestgate's cookie like a browser would (for flows curl-like tests drive).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use super::Instance;

/// Builds a request; a body-bearing method gets `Content-Length: 0` unless `extra` sets framing.
pub fn request(method: &str, target: &str, cookie: Option<&str>, extra: &[&str]) -> String {
    let mut r = format!("{method} {target} HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n");
    if let Some(c) = cookie {
        r.push_str(&format!("Cookie: {c}\r\n"));
    }
    for h in extra {
        r.push_str(h);
        r.push_str("\r\n");
    }
    let framed = extra.iter().any(|h| {
        let l = h.to_ascii_lowercase();
        l.starts_with("content-length") || l.starts_with("transfer-encoding")
    });
    if !framed && matches!(method, "POST" | "PUT" | "PATCH" | "DELETE") {
        r.push_str("Content-Length: 0\r\n");
    }
    r.push_str("\r\n");
    r
}

/// A response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// The body's bytes (dechunked), for binary and compressed bodies.
    pub bytes: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Where a guestgate form sent the browser back to its code page, the message it
    /// carries (`e=wrong&left=4`, `n=sent`, ...); `None` for any other answer.
    pub fn sent_back(&self) -> Option<String> {
        if self.status != 303 {
            return None;
        }
        let location = self.header("location")?;
        location
            .contains("/_guestgate/s/")
            .then(|| location.split_once('?').map_or("", |(_, q)| q).to_string())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// Writes raw bytes on a fresh connection and returns all the server sent back until it
/// closed the connection. The bytes should end with a `Connection: close` request (a
/// half-close would make pingora abort a request whose body it is still forwarding).
pub fn exchange(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let _ = s.write_all(bytes);
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    buf
}

/// One request on a fresh connection; reads to EOF (requests say `Connection: close`).
pub fn http(addr: SocketAddr, request: &str) -> std::io::Result<Resp> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(request.as_bytes())?;
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    parse_response(&buf).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("bad response: {:?}", String::from_utf8_lossy(&buf)),
        )
    })
}

fn parse_response(buf: &[u8]) -> Option<Resp> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut r = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(n) = r.parse(buf).ok()? else {
        return None;
    };
    let headers: Vec<(String, String)> = r
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_string(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    let status = r.code?;
    let rest = &buf[n..];
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_vec()
    };
    Some(Resp {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        bytes: body,
    })
}

fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(i) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(std::str::from_utf8(&rest[..i]).unwrap_or("0").trim(), 16)
            .unwrap_or(0);
        if size == 0 || rest.len() < i + 2 + size {
            break;
        }
        out.extend_from_slice(&rest[i + 2..i + 2 + size]);
        rest = &rest[(i + 4 + size).min(rest.len())..];
    }
    out
}

/// A browser: keeps guestgate's cookie between requests.
pub struct Browser<'a> {
    pub gate: &'a Instance,
    /// guestgate's session cookie (`name=value`), when the browser holds one.
    pub cookie: Option<String>,
    /// Every other cookie set on it (guestgate's form cookie), `name=value`.
    pub jar: Vec<String>,
    /// Header lines added to every request (a load balancer's `X-Forwarded-For`).
    pub extra: Vec<String>,
}

impl<'a> Browser<'a> {
    pub fn new(gate: &'a Instance) -> Self {
        Browser {
            gate,
            cookie: None,
            jar: Vec::new(),
            extra: Vec::new(),
        }
    }

    fn absorb(&mut self, r: &Resp) {
        for (_, c) in r
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        {
            let pair = c.split(';').next().unwrap_or("").trim().to_string();
            let name = pair.split('=').next().unwrap_or("").to_string();
            let cleared = pair.ends_with('=') || c.contains("Max-Age=0");
            if name.ends_with("guestgate_session") {
                self.cookie = (!cleared).then_some(pair);
            } else {
                self.jar.retain(|p| !p.starts_with(&format!("{name}=")));
                if !cleared {
                    self.jar.push(pair);
                }
            }
        }
    }

    /// The `Cookie` header value: the session cookie and the jar.
    fn cookies(&self) -> Option<String> {
        let all: Vec<&str> = self
            .cookie
            .iter()
            .map(String::as_str)
            .chain(self.jar.iter().map(String::as_str))
            .collect();
        (!all.is_empty()).then(|| all.join("; "))
    }

    pub fn get(&mut self, path: &str) -> Resp {
        let cookies = self.cookies();
        let r = self
            .gate
            .send("GET", path, cookies.as_deref(), &["Accept: text/html"]);
        self.absorb(&r);
        r
    }

    /// A form POST from guestgate's own page (same Origin).
    pub fn post_form(&mut self, path: &str, form: &str) -> Resp {
        let origin = format!("Origin: http://{}", self.gate.addr);
        let len = format!("Content-Length: {}", form.len());
        let mut extra = vec![
            origin.as_str(),
            "Content-Type: application/x-www-form-urlencoded",
            &len,
            "Accept: text/html",
        ];
        extra.extend(self.extra.iter().map(String::as_str));
        let cookies = self.cookies();
        let mut req = request("POST", path, cookies.as_deref(), &extra);
        req.push_str(form);
        let r = self.gate.raw(&req);
        self.absorb(&r);
        r
    }
}

/// The path part of a link.
pub fn path_of(link: &str) -> String {
    let after = link.find("://").map_or(0, |i| i + 3);
    link[after..]
        .find('/')
        .map_or("/".into(), |i| link[after + i..].to_string())
}
