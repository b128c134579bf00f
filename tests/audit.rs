//! The audit stream as evidence, through the real binary: a keyed chain with a start
//! record per process, checkpoints in the process log and the metrics (periodic and at
//! shutdown), and `guestgate audit verify` finding every kind of tampering with its
//! position: an edited, dropped, inserted or reordered line, a cut tail (against a
//! checkpoint), a chain recomputed without the key. Also: search by deny id, and a key
//! rotation recorded in the chain.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{wait_for, Instance, Opts};

const EMAIL: &str = "expert@clinic.example";

fn cli(args: &[&str]) -> (Option<i32>, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_guestgate"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// The checkpoints guestgate logged (`LINES:HEAD`), oldest first.
fn checkpoints(g: &Instance) -> Vec<String> {
    g.stderr_text()
        .lines()
        .filter(|l| l.contains("audit checkpoint"))
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["checkpoint"].as_str().map(String::from))
        .collect()
}

fn verify(file: &Path, keys: &[&Path], checkpoint: Option<&str>) -> (Option<i32>, String) {
    let mut args = vec!["audit".to_string(), "verify".to_string()];
    for k in keys {
        args.push("--key".into());
        args.push(k.display().to_string());
    }
    if let Some(c) = checkpoint {
        args.push("--checkpoint".into());
        args.push(c.to_string());
    }
    args.push(file.display().to_string());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    cli(&args)
}

#[test]
fn verify_finds_every_tampering_where_it_is_against_the_key_and_the_checkpoint() {
    let mut g = Instance::start(Opts {
        audit_config: "checkpoint_interval = \"1s\"".into(),
        ..Opts::default()
    });
    let c = g.cookie(EMAIL, &[("sh-42", "42", "3", "view-only")]);
    assert_eq!(
        g.send("GET", "/cases/42/versions/3", Some(&c), &[]).status,
        200
    );
    let denied = g.send(
        "DELETE",
        "/api/cases/42/versions/3/documents/1",
        Some(&c),
        &[],
    );
    let deny_id = denied.json()["deny_id"].as_str().unwrap().to_string();
    assert_eq!(
        g.send("GET", "/cases/42/versions/3/summary", Some(&c), &[])
            .status,
        200
    );
    g.audit_until("the summary", |e| {
        e["path"] == "/cases/42/versions/3/summary"
    });
    // A periodic checkpoint reaches the log and the metrics while it runs.
    wait_for("a periodic checkpoint", Duration::from_secs(10), || {
        (!checkpoints(&g).is_empty()).then_some(())
    });
    let m = g.metrics();
    assert!(m.contains("guestgate_audit_checkpoint_lines 4"), "{m}");
    assert!(m.contains("guestgate_audit_checkpoint_head "), "{m}");

    // A clean stop writes a stop record and a last checkpoint.
    assert!(g.terminate().success());
    let last = checkpoints(&g).pop().unwrap();
    assert!(
        last.starts_with("5:"),
        "start, allow, deny, allow, stop: {last}"
    );
    let file = g.dir.path().join("audit.log");
    let key = g.dir.path().join("audit.key");
    let text = std::fs::read_to_string(&file).unwrap();
    let events: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        (events[0]["kind"].as_str(), events[0]["event"].as_str()),
        (Some("audit"), Some("start"))
    );
    assert_eq!(events[0]["continues"], "none");
    assert_eq!(events[4]["event"], "stop");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);

    let (code, out) = verify(&file, &[&key], Some(&last));
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("ok: 5 lines, chain intact; every checkpoint matches"),
        "{out}"
    );
    let (code, out) = cli(&[
        "audit",
        "search",
        &file.display().to_string(),
        "--deny-id",
        &deny_id,
    ]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains("\"method\":\"DELETE\"") && out.lines().count() == 1,
        "{out}"
    );

    let lines: Vec<&str> = text.lines().collect();
    let write = |ls: Vec<&str>| std::fs::write(&file, ls.join("\n") + "\n").unwrap();
    let findings = |checkpoint: Option<&str>| {
        let (code, out) = verify(&file, &[&key], checkpoint);
        assert_eq!(code, Some(1), "{out}");
        out
    };
    // edited: the DELETE became a GET
    std::fs::write(&file, text.replacen("\"DELETE\"", "\"GET\"", 1)).unwrap();
    let out = findings(Some(&last));
    assert!(out.contains("audit.log:3: edited:"), "{out}");
    // dropped: the deny line is gone
    write(vec![lines[0], lines[1], lines[3], lines[4]]);
    assert!(findings(None).contains("audit.log:3: dropped:"));
    // reordered
    write(vec![lines[0], lines[2], lines[1], lines[3], lines[4]]);
    assert!(findings(None).contains("audit.log:2: reordered:"));
    // inserted: a plausible line, chained without the key
    let forged = lines[1].replace("/cases/42/versions/3", "/cases/42/versions/3/documents/9");
    write(vec![
        lines[0], lines[1], &forged, lines[2], lines[3], lines[4],
    ]);
    assert!(findings(None).contains("audit.log:3: inserted:"));
    // truncated: the last two lines cut; only the checkpoint can tell
    write(lines[..3].to_vec());
    let (code, out) = verify(&file, &[&key], None);
    assert_eq!(
        code,
        Some(0),
        "without a checkpoint a cut tail looks whole: {out}"
    );
    assert!(
        out.contains("the tail is proven only against a checkpoint"),
        "{out}"
    );
    assert!(
        findings(Some(&last)).contains("truncated: the checkpoint saw 5 lines; the files have 3")
    );
    // recomputed: every hash redone as an unkeyed SHA-256 chain verifies under no key
    let mut prev = "0".repeat(64);
    let mut redone = String::new();
    for l in &lines {
        let body = &l[..l.find(",\"prev\":").unwrap()];
        let event = format!("{body}}}");
        use sha2::Digest;
        let hash = hex::encode(sha2::Sha256::digest(format!("{prev}\n{event}").as_bytes()));
        redone.push_str(&format!(
            "{body},\"prev\":\"{prev}\",\"hash\":\"{hash}\"}}\n"
        ));
        prev = hash;
    }
    std::fs::write(&file, &redone).unwrap();
    let out = findings(None);
    assert_eq!(
        out.matches(": edited:").count() + out.matches(": inserted:").count(),
        5,
        "{out}"
    );

    // Without the key, nothing is claimed.
    std::fs::write(&file, &text).unwrap();
    let (code, out) = cli(&["audit", "verify", &file.display().to_string()]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("--key"), "{out}");
}

#[test]
fn a_key_rotation_is_recorded_in_the_chain() {
    let mut g = Instance::start(Opts::default());
    let c = g.cookie(EMAIL, &[("sh-42", "42", "3", "view-only")]);
    assert_eq!(
        g.send("GET", "/cases/42/versions/3", Some(&c), &[]).status,
        200
    );
    g.audit_until("the page", |e| e["decision"] == "allow");
    assert!(g.terminate().success());
    let dir = g.dir.path().to_path_buf();
    std::fs::rename(dir.join("audit.key"), dir.join("audit-old.key")).unwrap();
    let cfg = dir.join("guestgate.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        text.replace(
            "[audit]\n",
            "[audit]\nprevious_key_files = [\"audit-old.key\"]\n",
        ),
    )
    .unwrap();
    g.start_again();
    assert_eq!(
        g.send("GET", "/cases/42/versions/3/summary", Some(&c), &[])
            .status,
        200
    );
    g.audit_until("the summary", |e| {
        e["path"] == "/cases/42/versions/3/summary"
    });
    assert!(g.terminate().success());

    let file = dir.join("audit.log");
    let audit: Vec<serde_json::Value> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let starts: Vec<&serde_json::Value> = audit.iter().filter(|e| e["event"] == "start").collect();
    assert_eq!(starts.len(), 2);
    assert_ne!(starts[0]["key_id"], starts[1]["key_id"]);
    assert_eq!(
        starts[1]["continues"], starts[0]["key_id"],
        "the rotation, in the chain"
    );
    let (new, old) = (dir.join("audit.key"), dir.join("audit-old.key"));
    let (code, out) = verify(
        &file,
        &[&new, &old],
        checkpoints(&g).last().map(String::as_str),
    );
    assert_eq!(code, Some(0), "{out}");
    // Without the old key its lines are not proven.
    let (code, out) = verify(&file, &[&new], None);
    assert_eq!(code, Some(1), "{out}");
}

/// Under load the writer does not wait for its interval: once a batch reaches
/// `audit::WAKE_AT` bytes, the request that filled it wakes the writer, so batches stay
/// small enough for the CPU's cache. Below that, lines wait for the interval (one write
/// per interval, not per line), and a stop writes them all.
#[test]
fn a_full_batch_is_written_before_its_interval_and_a_small_one_waits() {
    let mut g = Instance::start(Opts {
        audit_config: "flush_interval = \"1h\"".into(),
        ..Opts::default()
    });
    let path = format!("/api/cases/42/{}", "x".repeat(2000));
    for _ in 0..5 {
        g.send("GET", &path, None, &[]);
    }
    std::thread::sleep(Duration::from_secs(1));
    let file = g.dir.path().join("audit.log");
    let on_disk = || std::fs::metadata(&file).map_or(0, |m| m.len() as usize);
    assert_eq!(on_disk(), 0, "a small batch waits for the interval");

    // Each line carries the 2 KB path: past WAKE_AT well before the last request.
    let sent = 2 * guestgate::audit::WAKE_AT / path.len();
    for _ in 5..sent {
        g.send("GET", &path, None, &[]);
    }
    let lines = wait_for("a full batch on disk", Duration::from_secs(10), || {
        (on_disk() >= guestgate::audit::WAKE_AT).then(|| g.audit().len())
    });
    assert!(
        lines < sent,
        "only full batches are written early: {lines} of {sent}"
    );

    assert!(g.terminate().success());
    assert_eq!(g.audit().len(), sent, "the stop writes what was pending");
}

/// What of a file is in the page cache, read with the `cachestat` system call (Linux
/// 6.5), which reads no page of it: (bytes cached, bytes dirty or being written back).
fn page_cache(file: &Path) -> (u64, u64) {
    const CACHESTAT: &str = r#"
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
class Range(ctypes.Structure): _fields_ = [("off", ctypes.c_uint64), ("len", ctypes.c_uint64)]
class Stat(ctypes.Structure): _fields_ = [(n, ctypes.c_uint64) for n in ("cache", "dirty", "writeback", "evicted", "recently_evicted")]
fd, st = os.open(sys.argv[1], os.O_RDONLY), Stat()
if libc.syscall(451, fd, ctypes.byref(Range(0, 0)), ctypes.byref(st), 0) != 0:
    sys.exit("cachestat: " + os.strerror(ctypes.get_errno()))
page = os.sysconf("SC_PAGESIZE")
print(st.cache * page, (st.dirty + st.writeback) * page)
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", CACHESTAT])
        .arg(file)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let n: Vec<u64> = text
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect();
    (n[0], n[1])
}

/// Written lines are synced to disk within a flush interval and then dropped from the
/// page cache, all but the file's last `CACHED_TAIL` bytes. Without the sync the kernel
/// would keep the tail dirty for its writeback delay (30 s by default); without the drop
/// the whole file would stay cached.
#[test]
fn written_batches_are_synced_and_leave_the_page_cache() {
    let g = Instance::start(Opts::default());
    let tail = guestgate::audit::CACHED_TAIL;
    // each line carries the 2 KB path: the file grows past four tails
    let path = format!("/api/cases/42/{}", "x".repeat(2000));
    let sent = 4 * tail / path.len() as u64 + 10;
    for _ in 0..sent {
        g.send("GET", &path, None, &[]);
    }
    let file = g.dir.path().join("audit.log");
    let on_disk = || std::fs::metadata(&file).map_or(0, |m| m.len());
    let (cached, dirty) = wait_for(
        "the written audit on disk and out of the page cache",
        Duration::from_secs(10),
        || {
            let (cached, dirty) = page_cache(&file);
            (on_disk() >= sent * 2000 && cached <= tail && dirty == 0).then_some((cached, dirty))
        },
    );
    assert!(cached <= tail && dirty == 0 && on_disk() > 4 * tail);
    assert_eq!(g.audit_at_least(sent as usize).len() as u64, sent);
}
