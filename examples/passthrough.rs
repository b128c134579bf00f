//! A bare pingora pass-through proxy: the baseline guestgate's load figures are
//! measured against (same pingora version, same upstream, same run). No filters.
//!
//! cargo run --release --example passthrough -- --listen 127.0.0.1:8081 --upstream 127.0.0.1:3000
//! curl -s http://127.0.0.1:8081/api/cases

use std::net::SocketAddr;

use async_trait::async_trait;
use pingora::prelude::HttpPeer;
use pingora::proxy::{ProxyHttp, Session};
use pingora::server::configuration::ServerConf;
use pingora::server::Server;

struct PassThrough(SocketAddr);

#[async_trait]
impl ProxyHttp for PassThrough {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _s: &mut Session, _c: &mut ()) -> pingora::Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.0, false, String::new())))
    }
}

fn main() {
    let mut listen = "127.0.0.1:8081".to_string();
    let mut upstream = "127.0.0.1:3000".to_string();
    let mut threads = 2;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match (a.as_str(), args.next()) {
            ("--listen", Some(v)) => listen = v,
            ("--upstream", Some(v)) => upstream = v,
            ("--threads", Some(v)) => threads = v.parse().unwrap_or(threads),
            _ => {
                eprintln!("usage: passthrough [--listen ADDR] [--upstream ADDR] [--threads N]");
                std::process::exit(2);
            }
        }
    }
    let Ok(upstream) = upstream.parse() else {
        eprintln!("--upstream must be ip:port");
        std::process::exit(2);
    };
    let conf = ServerConf {
        threads,
        grace_period_seconds: Some(1),
        graceful_shutdown_timeout_seconds: Some(1),
        pid_file: std::env::temp_dir()
            .join("guestgate-passthrough.pid")
            .display()
            .to_string(),
        upgrade_sock: std::env::temp_dir()
            .join("guestgate-passthrough.sock")
            .display()
            .to_string(),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    let mut svc = pingora::proxy::http_proxy_service(&server.configuration, PassThrough(upstream));
    svc.add_tcp(&listen);
    server.add_service(svc);
    server.bootstrap();
    println!("passthrough listening on {listen} -> {upstream}");
    server.run_forever();
}
