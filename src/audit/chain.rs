//! The keyed hash chain of the audit stream, and its verification. Each line is the
//! event's JSON with `"prev"` (the previous line's hash) and `"hash"` =
//! HMAC-SHA256(audit key, prev ‖ `\n` ‖ event) appended. Someone who can edit the file
//! but not read the key cannot write a line that verifies, so an edited, inserted,
//! dropped or reordered line shows, with its position; a cut tail shows against a
//! checkpoint (line count and head hash) that was also written where the file's writer
//! cannot rewrite it (the process log, a metric).

use std::collections::HashMap;

use hmac::Mac;
use sha2::{Digest, Sha256};

use crate::otp::hmac;

/// `prev` of the first line of a chain.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// `,"prev":"` + 64 hex + `","hash":"` + 64 hex + `"}`.
const SUFFIX_LEN: usize = 9 + 64 + 10 + 64 + 2;

/// An audit key and its id (a digest prefix: names the key, reveals nothing of it).
#[derive(Clone)]
pub struct AuditKey {
    /// HMAC state with the key already absorbed: every line clones it instead of
    /// hashing the key's two pad blocks again.
    keyed: hmac::Hmac<Sha256>,
    /// Short id written into the chain's start records.
    pub id: String,
}

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AuditKey({})", self.id)
    }
}

impl AuditKey {
    /// A key from the bytes of its file (at least 32; hashed to 32).
    pub fn new(bytes: &[u8]) -> Self {
        let key: [u8; 32] = Sha256::digest(bytes).into();
        let id = hex::encode(&Sha256::digest(key)[..8]);
        Self {
            keyed: hmac(&key),
            id,
        }
    }

    /// The hash of one line, as 64 lower-case hex digits.
    fn link_hex(&self, prev: &[u8], event: &[u8]) -> [u8; 64] {
        let mut m = self.keyed.clone();
        m.update(prev);
        m.update(b"\n");
        m.update(event);
        let mut out = [0u8; 64];
        // 32 bytes always fit 64 hex digits; on the impossible error the zeros would
        // simply not verify.
        let _ = hex::encode_to_slice(m.finalize().into_bytes(), &mut out);
        out
    }

    /// The hash of one line.
    pub fn link(&self, prev: &str, event: &[u8]) -> String {
        self.link_hex(prev.as_bytes(), event)
            .iter()
            .map(|&b| char::from(b))
            .collect()
    }
}

/// Appends the chained form of one event line (`{...}`) to `out` and makes `head` (the
/// previous line's hash) this line's hash, in place: the writer chains every line of a
/// batch without allocating.
pub fn advance(key: &AuditKey, event: &[u8], head: &mut String, out: &mut Vec<u8>) {
    let hash = key.link_hex(head.as_bytes(), event);
    out.extend_from_slice(&event[..event.len().saturating_sub(1)]);
    out.extend_from_slice(b",\"prev\":\"");
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(b"\",\"hash\":\"");
    out.extend_from_slice(&hash);
    out.extend_from_slice(b"\"}\n");
    head.clear();
    head.extend(hash.iter().map(|&b| char::from(b)));
}

/// Splits a chained line into (event JSON, prev, hash), if it has the chain suffix.
pub fn unchain(line: &str) -> Option<(String, &str, &str)> {
    if line.len() < SUFFIX_LEN + 2
        || !line.ends_with("\"}")
        || !line.is_char_boundary(line.len() - SUFFIX_LEN)
    {
        return None;
    }
    let (body, suffix) = line.split_at(line.len() - SUFFIX_LEN);
    let prev = suffix.strip_prefix(",\"prev\":\"")?.get(..64)?;
    let hash = suffix
        .get(9 + 64..)?
        .strip_prefix("\",\"hash\":\"")?
        .get(..64)?;
    Some((format!("{body}}}"), prev, hash))
}

/// Where an existing file's chain stands: its line count, last hash, and which of the
/// given keys wrote its last line (`None`: none of them).
pub struct Tail {
    /// Lines in the file.
    pub lines: usize,
    /// The last line's hash (`GENESIS` for an empty file).
    pub head: String,
    /// Id of the key that verifies the last line.
    pub key_id: Option<String>,
    /// Whether the last line is a stop record (the last run shut down cleanly).
    pub after_stop: bool,
}

/// Reads the tail of an audit file's chain: `lines` lines, the last one `last`. Read by
/// streaming, so a large file costs no memory at start.
pub fn tail(lines: usize, last: Option<&str>, keys: &[AuditKey]) -> Tail {
    match last.and_then(unchain) {
        Some((event, prev, hash)) => Tail {
            lines,
            head: hash.to_string(),
            key_id: keys
                .iter()
                .find(|k| k.link(prev, event.as_bytes()) == hash)
                .map(|k| k.id.clone()),
            after_stop: serde_json::from_str::<serde_json::Value>(&event)
                .is_ok_and(|v| record(&v).0 == Record::Stop),
        },
        None => Tail {
            lines,
            head: GENESIS.to_string(),
            key_id: None,
            after_stop: false,
        },
    }
}

/// A checkpoint: the file had `lines` lines, the last one hashing to `head`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Line count.
    pub lines: usize,
    /// Hash of that line, or its first 12 or more hex digits (the metric's 48 bits).
    pub head: String,
}

impl std::str::FromStr for Checkpoint {
    type Err = String;

    /// `LINES:HEAD`, as the process log prints it.
    fn from_str(s: &str) -> Result<Self, String> {
        let (lines, head) = s
            .split_once(':')
            .ok_or_else(|| format!("`{s}`: a checkpoint is LINES:HEAD"))?;
        let lines = lines
            .parse()
            .map_err(|_| format!("`{lines}` is not a line count"))?;
        // A prefix is accepted down to 48 bits, what the checkpoint metric carries: a
        // forger would have to hit it with a line they cannot key anyway.
        if !(12..=64).contains(&head.len()) || !head.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "`{head}` is not a hash: 12 to 64 hex digits (the log prints 64)"
            ));
        }
        Ok(Self {
            lines,
            head: head.to_ascii_lowercase(),
        })
    }
}

/// One problem verify found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// File.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// `edited`, `inserted`, `dropped`, `reordered`, `truncated`, `malformed`.
    pub kind: &'static str,
    /// In words.
    pub detail: String,
}

/// What verify found.
#[derive(Debug, Default)]
pub struct Report {
    /// Lines read.
    pub lines: usize,
    /// Every problem, in file order.
    pub findings: Vec<Finding>,
}

struct Entry<'a> {
    file: usize,
    line: usize,
    parsed: Option<(String, &'a str, &'a str)>,
    valid: bool,
    record: Record,
}

/// Which of the chain's own records a line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Record {
    Start,
    Stop,
    Event,
}

/// The kind of line, and for a start record the key it names.
fn record(event: &serde_json::Value) -> (Record, Option<&str>) {
    if event["kind"] != "audit" {
        return (Record::Event, None);
    }
    match event["event"].as_str() {
        Some("start") => (Record::Start, event["key_id"].as_str()),
        Some("stop") => (Record::Stop, None),
        _ => (Record::Event, None),
    }
}

/// Verifies audit files read in order (oldest first) under the given keys, and the
/// checkpoints of the last file. Every problem is reported, not only the first.
pub fn verify(files: &[(String, String)], keys: &[AuditKey], checkpoints: &[Checkpoint]) -> Report {
    let mut entries: Vec<Entry<'_>> = Vec::new();
    // After a start record only the key it names may write: a key rotated out cannot
    // append lines after the rotation. Before any start record (older files), any key.
    let mut writing: Option<&AuditKey> = None;
    // Keys a later start record replaced: a start record naming one again is the old
    // key vouching for itself, not a rotation.
    let mut retired: Vec<&str> = Vec::new();
    // The key of the last line that verified.
    let mut last: Option<&AuditKey> = None;
    for (f, (_, text)) in files.iter().enumerate() {
        for (i, line) in text.lines().enumerate() {
            let parsed = unchain(line).and_then(|(event, prev, hash)| {
                let value = serde_json::from_str::<serde_json::Value>(&event).ok()?;
                Some(((event, prev, hash), value))
            });
            let (mut valid, mut kind) = (false, Record::Event);
            if let Some(((event, prev, hash), value)) = &parsed {
                let (k, named) = record(value);
                kind = k;
                let verifies = |key: &AuditKey| key.link(prev, event.as_bytes()) == *hash;
                valid = match (kind, named) {
                    (Record::Start, Some(id)) if !retired.contains(&id) => {
                        match keys.iter().find(|key| key.id == id && verifies(key)) {
                            Some(key) => {
                                if let Some(old) = last.filter(|old| old.id != key.id) {
                                    retired.push(&old.id);
                                }
                                writing = Some(key);
                                last = Some(key);
                                true
                            }
                            None => false,
                        }
                    }
                    (Record::Start, Some(_)) => false,
                    _ => {
                        let key = match writing {
                            Some(key) => Some(key).filter(|k| verifies(k)),
                            None => keys.iter().find(|k| verifies(k)),
                        };
                        last = key.or(last);
                        key.is_some()
                    }
                };
            }
            entries.push(Entry {
                file: f,
                line: i + 1,
                parsed: parsed.map(|(p, _)| p),
                valid,
                record: kind,
            });
        }
    }
    let mut report = Report {
        lines: entries.len(),
        findings: Vec::new(),
    };
    // Where each hash first stands in the files, among lines that verify: a forged line
    // carrying a genuine line's hashes must not make the genuine line look moved.
    let mut position: HashMap<&str, usize> = HashMap::new();
    for (i, e) in entries.iter().enumerate() {
        if let (Some((_, _, h)), true) = (&e.parsed, e.valid) {
            position.entry(h).or_insert(i);
        }
    }
    let mut found = |e: &Entry<'_>, kind, detail: String| {
        report.findings.push(Finding {
            file: files[e.file].0.clone(),
            line: e.line,
            kind,
            detail,
        });
    };
    let at = |i: usize| {
        let e = &entries[i];
        format!("{}:{}", files[e.file].0, e.line)
    };
    let mut expected: Option<&str> = None;
    let mut after_stop = false;
    for (i, e) in entries.iter().enumerate() {
        let Some((_, prev, hash)) = &e.parsed else {
            found(e, "malformed", "not a chained audit line".into());
            continue;
        };
        if let Some(&j) = position.get(hash).filter(|&&j| j < i) {
            found(
                e,
                "inserted",
                format!("a copy of {}'s place in the chain", at(j)),
            );
            continue;
        }
        if !e.valid {
            let pointed_at = entries
                .get(i + 1)
                .and_then(|n| n.parsed.as_ref())
                .is_some_and(|(_, next_prev, _)| next_prev == hash);
            if pointed_at {
                found(
                    e,
                    "edited",
                    "changed after it was written: its hash does not verify under the audit key"
                        .into(),
                );
                expected = Some(hash);
            } else {
                found(e, "inserted", "not written by guestgate: its hash does not verify under the audit key, and no line follows from it".into());
            }
            continue;
        }
        if after_stop && e.record != Record::Start {
            found(
                e,
                "inserted",
                "it follows a stop record: after a stop, only a start record may come".into(),
            );
        }
        after_stop = e.record == Record::Stop;
        // Only the very first line may begin a chain: a file that starts one of its own
        // further on (another process's `{pid}` file, a file rotated while stopped) hides
        // whatever came before it, and is verified on its own.
        let links = Some(*prev) == expected || (i == 0 && *prev == GENESIS);
        if !links {
            match position.get(prev) {
                Some(&j) if j != i => {
                    found(e, "reordered", format!("it follows {} in the chain", at(j)))
                }
                _ if *prev == GENESIS => found(
                    e,
                    "dropped",
                    "a new chain starts here: what came before it is not in the files given (verify a file that starts its own chain, such as another process's, on its own)".into(),
                ),
                _ => found(e, "dropped", "the line(s) it follows are missing".into()),
            }
        }
        expected = Some(hash);
    }
    // A checkpoint counts the lines the process wrote to its file, rotated parts
    // included (copy-and-truncate): it indexes the files given, in order, as one.
    if !checkpoints.is_empty() {
        for c in checkpoints {
            let problem = match entries.get(c.lines.wrapping_sub(1)) {
                _ if c.lines == 0 => None,
                None => Some(format!(
                    "the checkpoint saw {} lines; the files have {}: the tail was cut",
                    c.lines,
                    entries.len()
                )),
                Some(e)
                    if !e
                        .parsed
                        .as_ref()
                        .is_some_and(|(_, _, h)| h.starts_with(c.head.as_str())) =>
                {
                    Some(format!(
                        "line {} is not the line the checkpoint saw: the tail was cut and rewritten",
                        c.lines
                    ))
                }
                Some(_) => None,
            };
            if let Some(detail) = problem {
                let (file, line) = match entries.get(c.lines.wrapping_sub(1)) {
                    Some(e) => (e.file, e.line),
                    None => entries
                        .last()
                        .map_or((files.len().saturating_sub(1), 1), |e| (e.file, e.line + 1)),
                };
                report.findings.push(Finding {
                    file: files.get(file).map_or_else(String::new, |f| f.0.clone()),
                    line,
                    kind: "truncated",
                    detail,
                });
            }
        }
    }
    report
}

/// The event of every chained line whose fields match all given filters.
pub fn search(
    text: &str,
    deny_id: Option<&str>,
    share: Option<&str>,
    email: Option<&str>,
) -> Vec<String> {
    text.lines()
        .filter_map(unchain)
        .filter_map(|(event, _, _)| {
            let v: serde_json::Value = serde_json::from_str(&event).ok()?;
            let is =
                |field: &str, want: Option<&str>| want.is_none_or(|w| v[field].as_str() == Some(w));
            (is("deny_id", deny_id) && is("share", share) && is("guest", email)).then_some(event)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Appends the chained form of one event line to `out`; returns its hash.
    fn chain_line(key: &AuditKey, event: &[u8], prev: &str, out: &mut Vec<u8>) -> String {
        let mut head = prev.to_owned();
        advance(key, event, &mut head, out);
        head
    }

    fn key() -> AuditKey {
        AuditKey::new(&[7u8; 32])
    }

    fn chain_with(k: &AuditKey, events: &[&str]) -> String {
        let mut out = Vec::new();
        let mut prev = GENESIS.to_string();
        for e in events {
            prev = chain_line(k, e.as_bytes(), &prev, &mut out);
        }
        String::from_utf8(out).unwrap()
    }

    fn chain(events: &[&str]) -> String {
        chain_with(&key(), events)
    }

    fn kinds(text: &str, checkpoints: &[Checkpoint]) -> Vec<(usize, &'static str)> {
        verify(&[("a.log".into(), text.into())], &[key()], checkpoints)
            .findings
            .iter()
            .map(|f| (f.line, f.kind))
            .collect()
    }

    const EVENTS: &[&str] = &[
        r#"{"n":1,"guest":"a@x"}"#,
        r#"{"n":2}"#,
        r#"{"n":3,"deny_id":"d1"}"#,
        r#"{"n":4}"#,
        r#"{"n":5}"#,
    ];

    #[test]
    fn every_kind_of_tampering_is_found_where_it_is() {
        let text = chain(EVENTS);
        let head = |n: usize| Checkpoint {
            lines: n,
            head: unchain(text.lines().nth(n - 1).unwrap())
                .unwrap()
                .2
                .to_string(),
        };
        assert_eq!(kinds(&text, &[head(5)]), []);
        let lines: Vec<&str> = text.lines().collect();
        let join = |v: Vec<&str>| v.join("\n") + "\n";

        assert_eq!(
            kinds(&text.replace(r#""n":2"#, r#""n":7"#), &[]),
            [(2, "edited")]
        );
        assert_eq!(
            kinds(&join(vec![lines[0], lines[2], lines[3], lines[4]]), &[]),
            [(2, "dropped")]
        );
        assert_eq!(
            kinds(
                &join(vec![lines[0], lines[2], lines[1], lines[3], lines[4]]),
                &[]
            ),
            [(2, "reordered"), (3, "reordered"), (4, "reordered")]
        );
        // A line forged without the key, linked to its neighbour.
        let mut forged = Vec::new();
        chain_line(
            &AuditKey::new(b"not the key, but as long as one"),
            br#"{"n":99}"#,
            unchain(lines[0]).unwrap().2,
            &mut forged,
        );
        let forged = String::from_utf8(forged).unwrap();
        assert_eq!(
            kinds(
                &join(vec![
                    lines[0],
                    forged.trim_end(),
                    lines[1],
                    lines[2],
                    lines[3],
                    lines[4]
                ]),
                &[]
            ),
            [(2, "inserted")]
        );
        // A cut tail: invisible without a checkpoint, found with one.
        let cut = join(lines[..3].to_vec());
        assert_eq!(kinds(&cut, &[]), []);
        assert_eq!(kinds(&cut, &[head(5)]), [(4, "truncated")]);
        // Cut and regrown with forged lines: the checkpointed line is not the same.
        let regrown = join(vec![
            lines[0],
            lines[1],
            lines[2],
            forged.trim_end(),
            forged.trim_end(),
        ]);
        assert!(kinds(&regrown, &[head(5)]).contains(&(5, "truncated")));
        // The metric's 48-bit prefix serves as well as the whole hash.
        let short = |n: usize| Checkpoint {
            lines: n,
            head: head(n).head[..12].to_string(),
        };
        assert_eq!(kinds(&text, &[short(5)]), []);
        assert!(kinds(&regrown, &[short(5)]).contains(&(5, "truncated")));
        // The head cut off: the first line does not start a chain.
        assert_eq!(kinds(&join(lines[2..].to_vec()), &[]), [(1, "dropped")]);
        assert_eq!(kinds("{\"n\":1}\n", &[]), [(1, "malformed")]);
        // A line replayed, or an edited copy of one: inserted, not edited.
        assert_eq!(
            kinds(
                &join(vec![
                    lines[0], lines[1], lines[1], lines[2], lines[3], lines[4]
                ]),
                &[]
            ),
            [(3, "inserted")]
        );
        let copy = lines[1].replace("\"n\":2", "\"n\":8");
        assert_eq!(
            kinds(
                &join(vec![
                    lines[0], lines[1], &copy, lines[2], lines[3], lines[4]
                ]),
                &[]
            ),
            [(3, "inserted")]
        );
    }

    /// Whoever edits the file without the key can recompute a chain, keyed or not: every
    /// line then fails to verify.
    #[test]
    fn a_recomputed_chain_does_not_verify() {
        let other = chain_with(
            &AuditKey::new(b"an attacker's own key, 32 bytes.."),
            &EVENTS[..3],
        );
        let found = kinds(&other, &[]);
        assert_eq!(found.len(), 3);
        assert!(
            found
                .iter()
                .all(|(_, k)| *k == "edited" || *k == "inserted"),
            "{found:?}"
        );
        // An unkeyed SHA-256 chain, as guestgate wrote before the key.
        let mut unkeyed = String::new();
        let mut prev = GENESIS.to_string();
        for e in &EVENTS[..2] {
            let hash = hex::encode(Sha256::digest(format!("{prev}\n{e}").as_bytes()));
            unkeyed.push_str(&format!(
                "{},\"prev\":\"{prev}\",\"hash\":\"{hash}\"}}\n",
                &e[..e.len() - 1]
            ));
            prev = hash;
        }
        assert_eq!(kinds(&unkeyed, &[]).len(), 2);
    }

    #[test]
    fn chains_continue_across_files_and_keys_rotate() {
        let old = key();
        let new = AuditKey::new(&[9u8; 32]);
        let mut out = Vec::new();
        let mut prev = GENESIS.to_string();
        prev = chain_line(&old, br#"{"n":1}"#, &prev, &mut out);
        prev = chain_line(&old, br#"{"n":2}"#, &prev, &mut out);
        let first = String::from_utf8(std::mem::take(&mut out)).unwrap();
        let start = format!(
            r#"{{"kind":"audit","event":"start","key_id":"{}"}}"#,
            new.id
        );
        let after_rotation = chain_line(&new, start.as_bytes(), &prev, &mut out);
        let second = String::from_utf8(out.clone()).unwrap();
        // The rotated-out key cannot write after the start record that retired it, not
        // even a start record of its own naming itself.
        let mut revived = out.clone();
        let old_start = format!(
            r#"{{"kind":"audit","event":"start","key_id":"{}"}}"#,
            old.id
        );
        chain_line(&old, old_start.as_bytes(), &after_rotation, &mut revived);
        let r = verify(
            &[
                ("1".to_string(), first.clone()),
                ("2".to_string(), String::from_utf8(revived).unwrap()),
            ],
            &[new.clone(), old.clone()],
            &[],
        );
        assert_eq!(
            r.findings
                .iter()
                .map(|f| (f.line, f.kind))
                .collect::<Vec<_>>(),
            [(2, "inserted")]
        );
        chain_line(&old, br#"{"forged":1}"#, &after_rotation, &mut out);
        let forged = String::from_utf8(out).unwrap();
        let r = verify(
            &[("1".to_string(), first.clone()), ("2".to_string(), forged)],
            &[new.clone(), old.clone()],
            &[],
        );
        assert_eq!(
            r.findings
                .iter()
                .map(|f| (f.line, f.kind))
                .collect::<Vec<_>>(),
            [(2, "inserted")]
        );
        let files = [
            ("1".to_string(), first.clone()),
            ("2".to_string(), second.clone()),
        ];
        let r = verify(&files, &[new.clone(), old.clone()], &[]);
        assert_eq!((r.lines, r.findings.len()), (3, 0));
        // without the old key, its lines do not verify
        assert_eq!(verify(&files, &[new], &[]).findings.len(), 2);
        // out of order: the second file's first line follows a line it cannot see
        let swapped = [("2".to_string(), second), ("1".to_string(), first)];
        let r = verify(&swapped, &[key(), AuditKey::new(&[9u8; 32])], &[]);
        assert_eq!((r.findings[0].file.as_str(), r.findings[0].line), ("2", 1));
    }

    #[test]
    fn hostile_lines_are_findings_not_failures() {
        // Multi-byte characters where the chain suffix would start: no panic, malformed.
        let text = format!("{{\"a\":\"{}\"}}\n", "é".repeat(100));
        assert_eq!(kinds(&text, &[]), [(1, "malformed")]);
        // A forged decoy carrying a genuine line's hashes, placed before it: only the
        // decoy is reported, the genuine lines stay in place.
        let text = chain(EVENTS);
        let lines: Vec<&str> = text.lines().collect();
        let (_, prev, hash) = unchain(lines[2]).unwrap();
        let decoy = format!(r#"{{"decoy":1,"prev":"{prev}","hash":"{hash}"}}"#);
        let with_decoy = [lines[0], lines[1], &decoy, lines[2], lines[3], lines[4]].join("\n");
        assert_eq!(kinds(&with_decoy, &[]), [(3, "inserted")]);
    }

    #[test]
    fn stops_starts_and_new_chains_are_enforced() {
        let k = key();
        let start = format!(r#"{{"kind":"audit","event":"start","key_id":"{}"}}"#, k.id);
        let stop = r#"{"kind":"audit","event":"stop"}"#;
        let run = chain(&[&start, r#"{"n":1}"#, stop, &start, r#"{"n":2}"#, stop]);
        assert_eq!(kinds(&run, &[]), []);
        // a line appended after a stop, without a start: a writer that was not guestgate
        let after = chain(&[&start, r#"{"n":1}"#, stop, r#"{"n":2}"#]);
        assert_eq!(kinds(&after, &[]), [(4, "inserted")]);
        // a second file that starts its own chain hides what came before it
        let one = chain(&[&start, r#"{"n":1}"#]);
        let other = start.replace("start\"", "start\",\"pid\":2");
        let two = chain(&[&other, r#"{"n":2}"#]);
        let r = verify(
            &[("1".into(), one.clone()), ("2".into(), two.clone())],
            &[k],
            &[],
        );
        assert_eq!(
            (r.findings[0].file.as_str(), r.findings[0].kind),
            ("2", "dropped")
        );
        // a checkpoint counts across the files given (copy-and-truncate rotation)
        let mut out = Vec::new();
        let mut prev = GENESIS.to_string();
        for e in [start.as_str(), r#"{"n":1}"#, r#"{"n":2}"#] {
            prev = chain_line(&key(), e.as_bytes(), &prev, &mut out);
        }
        let whole = String::from_utf8(out).unwrap();
        let (a, b) = whole.split_at(whole.find("{\"n\":2").unwrap());
        let cp = Checkpoint {
            lines: 3,
            head: prev,
        };
        let files = [("1".into(), a.to_string()), ("2".into(), b.to_string())];
        assert!(verify(&files, &[key()], std::slice::from_ref(&cp))
            .findings
            .is_empty());
        let cut = [("1".into(), a.to_string()), ("2".into(), String::new())];
        assert_eq!(verify(&cut, &[key()], &[cp]).findings[0].kind, "truncated");
    }

    #[test]
    fn checkpoints_parse_as_the_log_prints_them() {
        let c: Checkpoint = format!("12:{}", "a".repeat(64)).parse().unwrap();
        assert_eq!(c.lines, 12);
        assert!("12".parse::<Checkpoint>().is_err());
        assert!("x:abc".parse::<Checkpoint>().is_err());
        assert!(
            "12:abcdef".parse::<Checkpoint>().is_err(),
            "too short to mean anything"
        );
        assert_eq!(
            "3:ABCDEF012345".parse::<Checkpoint>().unwrap().head,
            "abcdef012345"
        );
    }

    #[test]
    fn search_finds_by_deny_id_share_and_email() {
        let text = chain(&[
            r#"{"guest":"a@x","share":"s1"}"#,
            r#"{"deny_id":"d1","guest":"b@x","share":"s2"}"#,
        ]);
        assert_eq!(search(&text, Some("d1"), None, None).len(), 1);
        assert_eq!(search(&text, None, Some("s1"), None).len(), 1);
        assert_eq!(
            search(&text, None, None, Some("b@x")),
            vec![r#"{"deny_id":"d1","guest":"b@x","share":"s2"}"#.to_string()]
        );
        assert!(search(&text, Some("d2"), None, None).is_empty());
    }
}
