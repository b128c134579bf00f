//! A rule's `path` template (`/api/cases/{case}/documents/{doc}`), matched segment by
//! segment. Every allowed guest request is matched against its profile's rules; a
//! template needs no regex engine for that, only a walk over the path's segments. The
//! template still compiles to its regex (what `policy explain` shows, what profiles with
//! `regex` rules match with), and a property test holds the walk to that regex.

/// One piece of a template. Literal text runs are merged, slashes included, so
/// `/api/cases/{case}/documents` is `"/api/cases/"`, `case`, `"/documents"`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    /// Text the path must have here exactly (case-sensitive, as the regex is).
    Literal(String),
    /// `{name}`: one non-empty segment.
    One(String),
    /// `{name*}` (last only): one or more non-empty segments, with the `/` between them.
    Rest(String),
}

/// A parsed path template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTemplate {
    pieces: Vec<Piece>,
}

impl PathTemplate {
    /// Parses a template; the error says what is wrong with it, in words.
    /// A placeholder is a whole segment; `{name*}` (last segment only) spans one or more.
    pub fn parse(template: &str) -> Result<Self, String> {
        let Some(body) = template.strip_prefix('/') else {
            return Err("a path template must start with `/`".into());
        };
        let parts: Vec<&str> = body.split('/').collect();
        let mut pieces: Vec<Piece> = Vec::with_capacity(parts.len());
        let mut names: Vec<&str> = Vec::new();
        let mut literal = String::new();
        for (i, seg) in parts.iter().enumerate() {
            let last = i + 1 == parts.len();
            literal.push('/');
            if let Some(inner) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                let (name, rest) = match inner.strip_suffix('*') {
                    Some(n) if last => (n, true),
                    Some(_) => return Err(format!("`{seg}` may only be the last segment")),
                    None => (inner, false),
                };
                if name.is_empty()
                    || !name
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                    || name.as_bytes()[0].is_ascii_digit()
                {
                    return Err(format!(
                        "placeholder `{seg}`: names are lower-case letters, digits and `_`"
                    ));
                }
                if names.contains(&name) {
                    return Err(format!("placeholder `{{{name}}}` appears twice"));
                }
                names.push(name);
                pieces.push(Piece::Literal(std::mem::take(&mut literal)));
                pieces.push(if rest {
                    Piece::Rest(name.to_string())
                } else {
                    Piece::One(name.to_string())
                });
            } else if seg.contains(['{', '}']) {
                return Err(format!(
                    "segment `{seg}`: a placeholder must be a whole segment, like `{{doc}}`"
                ));
            } else if *seg == "." || *seg == ".." || seg.contains(['?', '#', ';', '%', '\\']) {
                return Err(format!("segment `{seg}` can never match a canonical path"));
            } else if seg.is_empty() && !last {
                return Err("empty segment (`//`) can never match a canonical path".into());
            } else {
                literal.push_str(seg);
            }
        }
        pieces.push(Piece::Literal(literal));
        pieces.retain(|p| !matches!(p, Piece::Literal(l) if l.is_empty()));
        Ok(Self { pieces })
    }

    /// The anchored regex this template means:
    /// `/api/cases/{case}` → `^/api/cases/(?P<case>[^/]+)$`.
    pub fn to_regex(&self) -> String {
        let mut out = String::from("^");
        for piece in &self.pieces {
            match piece {
                Piece::Literal(s) => out.push_str(&regex::escape(s)),
                Piece::One(n) => out.push_str(&format!("(?P<{n}>[^/]+)")),
                Piece::Rest(n) => out.push_str(&format!("(?P<{n}>[^/]+(?:/[^/]+)*)")),
            }
        }
        out.push('$');
        out
    }

    /// Whether `path` matches the template.
    pub fn is_match(&self, path: &str) -> bool {
        self.walk(path, |_, _| {})
    }

    /// What placeholder `name` stands for in `path`, if the path matches and the
    /// template has that placeholder.
    pub fn capture<'h>(&self, path: &'h str, name: &str) -> Option<&'h str> {
        let mut found = None;
        let matched = self.walk(path, |n, v| {
            if n == name {
                found = Some(v);
            }
        });
        found.filter(|_| matched)
    }

    /// Walks `path` against the pieces, reporting each placeholder's text; true when the
    /// whole path matched. A placeholder is followed by the end or by a literal that
    /// starts with `/`, and cannot hold a `/`: it ends at the next `/`, so the walk never
    /// backtracks. Byte loops rather than `str` searches: values are a few bytes long,
    /// shorter than a searcher takes to set up.
    fn walk<'h>(&self, path: &'h str, mut bind: impl FnMut(&str, &'h str)) -> bool {
        let bytes = path.as_bytes();
        let mut at = 0;
        for piece in &self.pieces {
            let rest = bytes.get(at..).unwrap_or_default();
            let (name, len) = match piece {
                Piece::Literal(s) => {
                    if !rest.starts_with(s.as_bytes()) {
                        return false;
                    }
                    at += s.len();
                    continue;
                }
                Piece::One(name) => (
                    name,
                    rest.iter().position(|&b| b == b'/').unwrap_or(rest.len()),
                ),
                // `[^/]+(?:/[^/]+)*` to the end: non-empty segments, none empty between.
                Piece::Rest(name) => {
                    if rest.first() == Some(&b'/')
                        || rest.last() == Some(&b'/')
                        || rest.windows(2).any(|w| w == b"//")
                    {
                        return false;
                    }
                    (name, rest.len())
                }
            };
            // Next to a `/` or at an end: a char boundary, always.
            match path.get(at..at + len) {
                Some(text) if !text.is_empty() => bind(name, text),
                _ => return false,
            }
            at += len;
        }
        at == bytes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use regex::Regex;

    #[test]
    fn segments_match_and_capture() {
        let t = PathTemplate::parse("/api/cases/{case}/documents/{doc}").unwrap();
        assert!(t.is_match("/api/cases/42/documents/7"));
        assert_eq!(t.capture("/api/cases/42/documents/7", "case"), Some("42"));
        assert_eq!(t.capture("/api/cases/42/documents/7", "doc"), Some("7"));
        assert_eq!(t.capture("/api/cases/42/documents/7", "nope"), None);
        for miss in [
            "/api/cases/42/documents/7/",
            "/api/cases/42/documents",
            "/api/cases//documents/7",
            "/api/Cases/42/documents/7",
            "api/cases/42/documents/7",
            "/api/cases/42/documents/7/x",
        ] {
            assert!(!t.is_match(miss), "{miss}");
            assert_eq!(t.capture(miss, "case"), None, "{miss}");
        }
        let r = PathTemplate::parse("/static/{file*}").unwrap();
        assert_eq!(r.capture("/static/a/b.css", "file"), Some("a/b.css"));
        for miss in ["/static/", "/static", "/static/a//b", "/static/a/"] {
            assert!(!r.is_match(miss), "{miss}");
        }
        let root = PathTemplate::parse("/").unwrap();
        assert!(root.is_match("/") && !root.is_match("/a") && !root.is_match(""));
        let slash = PathTemplate::parse("/a/").unwrap();
        assert!(slash.is_match("/a/") && !slash.is_match("/a") && !slash.is_match("/a/b"));
    }

    /// Templates over a small alphabet, so that paths often nearly match.
    fn template() -> impl Strategy<Value = String> {
        let seg = prop_oneof![
            Just("a".to_string()),
            Just("b".to_string()),
            Just("ab".to_string()),
            Just(String::new()),
            Just("{x}".to_string()),
            Just("{y}".to_string()),
        ];
        (
            prop::collection::vec(seg, 1..5),
            prop_oneof![Just(""), Just("/{r*}")],
        )
            .prop_map(|(segs, tail)| format!("/{}{tail}", segs.join("/")))
    }

    fn path() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop_oneof![
                Just('a'),
                Just('b'),
                Just('/'),
                Just('\n'),
                Just('é'),
                Just('.')
            ],
            0..12,
        )
        .prop_map(|cs| cs.into_iter().collect())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]
        #[test]
        fn the_walk_is_the_regex(t in template(), tail in path()) {
            let Ok(tpl) = PathTemplate::parse(&t) else { return Ok(()) };
            let re = Regex::new(&tpl.to_regex()).unwrap();
            // Paths built from the template itself match often; the tail makes near-misses.
            let filled = t.replace("{x}", "a").replace("{y}", "é").replace("{r*}", "b/a");
            for p in [tail.clone(), format!("/{tail}"), filled.clone(), format!("{filled}{tail}")] {
                prop_assert_eq!(tpl.is_match(&p), re.is_match(&p), "{} on {:?}", t, p);
                let caps = re.captures(&p);
                for name in ["x", "y", "r"] {
                    let want = caps.as_ref().and_then(|c| c.name(name)).map(|m| m.as_str());
                    prop_assert_eq!(tpl.capture(&p, name), want, "{} {} on {:?}", t, name, p);
                }
            }
        }
    }
}
