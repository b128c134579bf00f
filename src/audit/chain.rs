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
    key: [u8; 32],
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
        Self { key, id }
    }

    /// The hash of one line.
    pub fn link(&self, prev: &str, event: &[u8]) -> String {
        let mut m = hmac(&self.key);
        m.update(prev.as_bytes());
        m.update(b"\n");
        m.update(event);
        hex::encode(m.finalize().into_bytes())
    }
}

/// Appends the chained form of one event line (`{...}`) to `out`; returns its hash.
pub fn chain_line(key: &AuditKey, event: &[u8], prev: &str, out: &mut Vec<u8>) -> String {
    let hash = key.link(prev, event);
    out.extend_from_slice(&event[..event.len().saturating_sub(1)]);
    out.extend_from_slice(format!(",\"prev\":\"{prev}\",\"hash\":\"{hash}\"}}\n").as_bytes());
    hash
}

/// Splits a chained line into (event JSON, prev, hash), if it has the chain suffix.
pub fn unchain(line: &str) -> Option<(String, &str, &str)> {
    if line.len() < SUFFIX_LEN + 2 || !line.ends_with("\"}") {
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
}

/// Reads the tail of an audit file's chain.
pub fn tail(text: &str, keys: &[AuditKey]) -> Tail {
    let lines = text.lines().filter(|l| !l.is_empty()).count();
    let last = text.lines().rev().find(|l| !l.is_empty()).and_then(unchain);
    match last {
        Some((event, prev, hash)) => Tail {
            lines,
            head: hash.to_string(),
            key_id: keys
                .iter()
                .find(|k| k.link(prev, event.as_bytes()) == hash)
                .map(|k| k.id.clone()),
        },
        None => Tail {
            lines,
            head: GENESIS.to_string(),
            key_id: None,
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
}

/// Verifies audit files read in order (oldest first) under the given keys, and the
/// checkpoints of the last file. Every problem is reported, not only the first.
pub fn verify(files: &[(String, String)], keys: &[AuditKey], checkpoints: &[Checkpoint]) -> Report {
    let mut entries: Vec<Entry<'_>> = Vec::new();
    for (f, (_, text)) in files.iter().enumerate() {
        for (i, line) in text.lines().enumerate() {
            let parsed = unchain(line)
                .filter(|(event, _, _)| serde_json::from_str::<serde_json::Value>(event).is_ok());
            let valid = parsed.as_ref().is_some_and(|(event, prev, hash)| {
                keys.iter().any(|k| k.link(prev, event.as_bytes()) == *hash)
            });
            entries.push(Entry {
                file: f,
                line: i + 1,
                parsed,
                valid,
            });
        }
    }
    let mut report = Report {
        lines: entries.len(),
        findings: Vec::new(),
    };
    // Where each hash first stands in the files.
    let mut position: HashMap<&str, usize> = HashMap::new();
    for (i, e) in entries.iter().enumerate() {
        if let Some((_, _, h)) = &e.parsed {
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
    for (i, e) in entries.iter().enumerate() {
        let Some((_, prev, hash)) = &e.parsed else {
            found(e, "malformed", "not a chained audit line".into());
            continue;
        };
        let first_of_file = e.line == 1;
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
        let links = Some(*prev) == expected || (first_of_file && *prev == GENESIS);
        if !links {
            match position.get(prev) {
                Some(&j) if j != i => {
                    found(e, "reordered", format!("it follows {} in the chain", at(j)))
                }
                _ if *prev == GENESIS => found(
                    e,
                    "dropped",
                    "a chain restarts here: what it continued was removed".into(),
                ),
                _ => found(e, "dropped", "the line(s) it follows are missing".into()),
            }
        }
        expected = Some(hash);
    }
    if let (Some((name, text)), false) = (files.last(), checkpoints.is_empty()) {
        let hashes: Vec<Option<&str>> = text
            .lines()
            .map(|l| unchain(l).map(|(_, _, h)| h))
            .collect();
        for c in checkpoints {
            let problem = match hashes.get(c.lines.wrapping_sub(1)) {
                _ if c.lines == 0 => None,
                None => Some(format!(
                    "the checkpoint saw {} lines; the file has {}: its tail was cut",
                    c.lines,
                    hashes.len()
                )),
                Some(h) if !h.is_some_and(|h| h.starts_with(c.head.as_str())) => Some(format!(
                    "line {} is not the line the checkpoint saw: the tail was cut and rewritten",
                    c.lines
                )),
                Some(_) => None,
            };
            if let Some(detail) = problem {
                report.findings.push(Finding {
                    file: name.clone(),
                    line: c.lines.min(hashes.len() + 1),
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
        chain_line(
            &new,
            br#"{"kind":"audit","event":"start"}"#,
            &prev,
            &mut out,
        );
        let second = String::from_utf8(out).unwrap();
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
        assert_eq!(r.findings[0].kind, "reordered");
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
