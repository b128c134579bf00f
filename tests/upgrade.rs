//! pingora's zero-downtime upgrade, with the Redis store: a new guestgate takes the
//! listening sockets over from a running one (`serve --upgrade`, then SIGQUIT to the
//! old), and guest requests keep succeeding throughout; and a stopping process still
//! answers a connection it accepted before it stopped listening.

mod common;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{wait_for, Instance, Opts, Proc, RedisServer};

#[test]
fn a_new_process_takes_over_without_refusing_a_request() {
    let d = tempfile::tempdir().unwrap();
    let redis = RedisServer::start(d.path(), false);
    let mut old = Instance::start(Opts {
        redis: Some(redis.endpoint()),
        // one chain per process: the two overlap while the old one drains
        audit_path: "audit-{pid}.log",
        ..Opts::default()
    });
    let cookie = old.cookie(
        "expert@clinic.example",
        &[("sh-42", "42", "3", "view-only")],
    );
    let addr = old.addr;

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (stop, cookie) = (stop.clone(), cookie.clone());
        std::thread::spawn(move || {
            // Every answer, and for each one not a 200 when it was sent and what came
            // back, so a failure says which side of the hand-over refused and how.
            let (mut answered, mut refused) = (0usize, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let sent = Instant::now();
                let r = common::http(
                    addr,
                    &common::request("GET", "/cases/42/versions/3", Some(&cookie), &[]),
                );
                answered += 1;
                match r {
                    Ok(r) if r.status == 200 => {}
                    Ok(r) => refused.push((sent, format!("{} {:?}", r.status, r.body))),
                    Err(e) => refused.push((sent, format!("no answer: {e}"))),
                }
            }
            (answered, refused)
        })
    };

    let sock = std::env::temp_dir().join(format!("guestgate-{}-upgrade.sock", addr.port()));
    let _ = std::fs::remove_file(&sock);
    let new = Proc(
        Command::new(env!("CARGO_BIN_EXE_guestgate"))
            .args(["serve", "--upgrade", "--config"])
            .arg(old.dir.path().join("guestgate.toml"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(old.dir.path().join("new.stderr")).unwrap())
            .spawn()
            .unwrap(),
    );
    wait_for(
        "the new process to wait for the sockets",
        Duration::from_secs(20),
        || sock.exists().then_some(()),
    );
    let handover = Instant::now();
    assert!(Command::new("kill")
        .args(["-QUIT", &old.pid().to_string()])
        .status()
        .unwrap()
        .success());
    let status = wait_for(
        "the old process to drain and exit",
        Duration::from_secs(40),
        || old.try_exit(),
    );
    println!(
        "old process exited {:?} after the hand-over ({status})",
        handover.elapsed()
    );
    // a few more requests, now all on the new process
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (answered, refused) = load.join().unwrap();
    let refused: Vec<String> = refused
        .into_iter()
        .map(|(sent, what)| {
            let at = match sent.checked_duration_since(handover) {
                Some(d) => format!("{d:?} after"),
                None => format!("{:?} before", handover - sent),
            };
            format!("sent {at} the hand-over: {what}")
        })
        .collect();
    println!(
        "{answered} requests during the upgrade, {} not answered 200",
        refused.len()
    );
    assert!(answered > 50, "the load loop barely ran");
    assert!(refused.is_empty(), "{refused:#?}");
    let r = common::http(
        old.admin,
        "GET /readyz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert_eq!(
        r.status, 200,
        "the new process serves the admin listener too"
    );
    drop(new);
}

/// A client that connected just before the process stopped listening has not had time to
/// send its request: the stopping process answers it rather than closing on it. (During
/// an upgrade the old process stops listening while connections it accepted an instant
/// before are still on their way; pingora on its own drops them unanswered.)
#[test]
fn a_connection_accepted_before_the_stop_is_still_answered() {
    let mut g = Instance::start(Opts::default());
    let cookie = g.cookie(
        "expert@clinic.example",
        &[("sh-42", "42", "3", "view-only")],
    );
    let mut early = std::net::TcpStream::connect(g.addr).unwrap();
    // accepted, and parked waiting for its request
    std::thread::sleep(Duration::from_millis(200));
    assert!(Command::new("kill")
        .args(["-TERM", &g.pid().to_string()])
        .status()
        .unwrap()
        .success());
    // the listener is closed: nobody else can connect now
    wait_for(
        "the stopping process to close its listener",
        Duration::from_secs(10),
        || std::net::TcpStream::connect(g.addr).is_err().then_some(()),
    );
    early
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    early
        .write_all(common::request("GET", "/cases/42/versions/3", Some(&cookie), &[]).as_bytes())
        .unwrap();
    let mut answer = Vec::new();
    let _ = early.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "the early connection got {answer:?}"
    );
    let status = wait_for("guestgate to exit", Duration::from_secs(20), || {
        g.try_exit()
    });
    assert!(status.success(), "exit status {status}");
}

#[test]
fn upgrade_with_the_embedded_store_is_refused_with_a_reason() {
    let g = Instance::start(Opts::default());
    let out = Command::new(env!("CARGO_BIN_EXE_guestgate"))
        .args(["serve", "--upgrade", "--config"])
        .arg(g.dir.path().join("guestgate.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--upgrade needs store.backend = \"redis\"")
    );
}
