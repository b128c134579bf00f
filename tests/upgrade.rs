//! pingora's zero-downtime upgrade, with the Redis store: a new guestgate takes the
//! listening sockets over from a running one (`serve --upgrade`, then SIGQUIT to the
//! old), and guest requests keep succeeding throughout.

mod common;

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
            let mut statuses = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let r = common::http(
                    addr,
                    &common::request("GET", "/cases/42/versions/3", Some(&cookie), &[]),
                );
                statuses.push(r.map_or(0, |r| r.status));
            }
            statuses
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
    let statuses = load.join().unwrap();
    let refused = statuses.iter().filter(|&&s| s != 200).count();
    println!(
        "{} requests during the upgrade, {refused} not answered 200",
        statuses.len()
    );
    assert!(statuses.len() > 50, "the load loop barely ran");
    assert_eq!(refused, 0, "{statuses:?}");
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
