//! A profile's upstream headers (`set_headers`), rendered once per share and rule
//! instead of on every request. Their values depend only on the share (id, case,
//! version, profile), the guest's email and the rule: the same for every request a
//! guest makes under one share, so each allowed request reuses them.
//!
//! Each compiled profile holds its own cache, so a policy reload starts empty and never
//! serves values rendered from an older template. An entry is found by share id and
//! rule, and used only if the email, case and version it was rendered with are the
//! request's, byte for byte; otherwise it is rendered again.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use http::{HeaderName, HeaderValue};

use super::compile::{Bindings, Template, Var};

/// Rendered headers, shared by every request that uses them.
pub type RenderedHeaders = Arc<[(HeaderName, HeaderValue)]>;

/// Most shares one profile remembers headers for; when full, an arbitrary share's make
/// room. About 0.45 KiB a share with the shipped four identity headers (measured).
pub const RENDERED_MAX_ENTRIES: usize = 10_000;

/// What one render depended on besides the profile and rule, checked on every use: the
/// email, case and version in one allocation (`case_at`, `version_at` mark where each
/// starts), as small as the cache can keep them.
struct Entry {
    bound: Box<str>,
    case_at: usize,
    version_at: usize,
    headers: RenderedHeaders,
}

impl Entry {
    fn new(key: &RenderFor<'_>, headers: RenderedHeaders) -> Self {
        let bound = [key.email, key.case, key.version].concat();
        Self {
            case_at: key.email.len(),
            version_at: key.email.len() + key.case.len(),
            bound: bound.into(),
            headers,
        }
    }

    /// Whether this rendering was for exactly these values.
    fn fits(&self, key: &RenderFor<'_>) -> bool {
        self.bound.get(..self.case_at) == Some(key.email)
            && self.bound.get(self.case_at..self.version_at) == Some(key.case)
            && self.bound.get(self.version_at..) == Some(key.version)
    }
}

/// The values one rendering is for.
pub struct RenderFor<'a> {
    /// The share id: with the rule, what finds the entry.
    pub share: &'a str,
    /// The rule's index in the profile.
    pub rule: usize,
    /// The guest's email, the share's case and version: what an entry must match.
    pub email: &'a str,
    /// The share's case.
    pub case: &'a str,
    /// The share's version.
    pub version: &'a str,
}

/// Renderings for one share: by rule index (a guest uses few rules).
type ShareEntries = Vec<(usize, Entry)>;

/// One profile's rendered headers, by share id. Read-locked on every allowed request
/// (threads do not wait on each other), write-locked only to add a rendering.
pub struct RenderCache {
    cap: usize,
    /// foldhash, as the share index: ids guestgate made.
    map: RwLock<HashMap<Box<str>, ShareEntries, foldhash::fast::RandomState>>,
}

impl std::fmt::Debug for RenderCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Entries hold guest emails: never printed.
        f.debug_struct("RenderCache")
            .field("cap", &self.cap)
            .finish()
    }
}

/// Whether a rendering found by share id and rule, and checked against the email, case
/// and version, is right for this placeholder's value. No wildcard: a new placeholder
/// must be placed here before a template naming it can be cached.
fn keyed(var: &Var) -> bool {
    match var {
        // checked on every use
        Var::GuestEmail | Var::Case | Var::Version => true,
        // the key: share id, then rule index; one cache per profile
        Var::ShareId | Var::Rule | Var::Profile => true,
        // differs from request to request
        Var::Capture(_) => false,
    }
}

impl RenderCache {
    /// The cache for a profile's `templates`: [`RENDERED_MAX_ENTRIES`] shares, or none
    /// (rendered every time) when a template names a value the key does not hold.
    pub fn for_templates(templates: &[(HeaderName, Template)]) -> Self {
        let cacheable = templates.iter().all(|(_, t)| t.vars().all(keyed));
        Self::with_capacity(if cacheable { RENDERED_MAX_ENTRIES } else { 0 })
    }

    /// A cache of at most `cap` entries (0: render every time).
    pub fn with_capacity(cap: usize) -> Self {
        Self {
            cap,
            map: RwLock::new(HashMap::default()),
        }
    }

    /// The headers `templates` render to with `bindings`, which must be the bindings of
    /// `key`; `None` when a rendered value is not a valid header value.
    pub fn headers(
        &self,
        templates: &[(HeaderName, Template)],
        key: &RenderFor<'_>,
        bindings: &dyn Bindings,
    ) -> Option<RenderedHeaders> {
        if let Ok(map) = self.map.read() {
            let found = map
                .get(key.share)
                .and_then(|rules| rules.iter().find(|(r, _)| *r == key.rule))
                .map(|(_, e)| e);
            if let Some(e) = found.filter(|e| e.fits(key)) {
                return Some(Arc::clone(&e.headers));
            }
        }
        let headers = render(templates, bindings)?;
        if self.cap == 0 {
            return Some(headers);
        }
        if let Ok(mut map) = self.map.write() {
            if map.len() >= self.cap && !map.contains_key(key.share) {
                if let Some(old) = map.keys().next().cloned() {
                    map.remove(&old);
                }
            }
            // Room for one rule: most guests of a share use one or two.
            let rules = map
                .entry(key.share.into())
                .or_insert_with(|| Vec::with_capacity(1));
            rules.retain(|(r, _)| *r != key.rule);
            rules.push((key.rule, Entry::new(key, Arc::clone(&headers))));
        }
        Some(headers)
    }

    /// Shares held.
    pub fn len(&self) -> usize {
        self.map.read().map(|m| m.len()).unwrap_or(0)
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Every template rendered, each value checked as a header value. The values share one
/// buffer (each header's value a slice of it): one allocation however many headers.
pub fn render(
    templates: &[(HeaderName, Template)],
    bindings: &dyn Bindings,
) -> Option<RenderedHeaders> {
    let mut text = String::new();
    let mut ends = Vec::with_capacity(templates.len());
    for (_, template) in templates {
        text.push_str(&template.render(bindings));
        ends.push(text.len());
    }
    let all = bytes::Bytes::copy_from_slice(text.as_bytes());
    let mut out = Vec::with_capacity(templates.len());
    let mut start = 0;
    for ((name, _), end) in templates.iter().zip(ends) {
        let value = HeaderValue::from_maybe_shared(all.slice(start..end)).ok()?;
        out.push((name.clone(), value));
        start = end;
    }
    Some(out.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::compile::identity_var;

    struct B<'a>(&'a str, &'a str, &'a str, &'a str, &'a str);

    impl Bindings for B<'_> {
        fn value(&self, var: &Var) -> &str {
            match var {
                Var::GuestEmail => self.0,
                Var::ShareId => self.1,
                Var::Case => self.2,
                Var::Version => self.3,
                Var::Rule => self.4,
                _ => "",
            }
        }
    }

    fn templates() -> Vec<(HeaderName, Template)> {
        [
            ("x-guest-email", "{guest.email}"),
            ("x-guest-scope", "{share.id}:{case}/{version}"),
            ("x-guest-rule", "{rule}"),
        ]
        .into_iter()
        .map(|(n, t)| {
            (
                HeaderName::from_static(n),
                Template::parse(t, identity_var).unwrap(),
            )
        })
        .collect()
    }

    fn values(h: &RenderedHeaders) -> Vec<String> {
        h.iter()
            .map(|(_, v)| v.to_str().unwrap().to_string())
            .collect()
    }

    fn render_for<'a>(b: &B<'a>, rule: usize) -> RenderFor<'a> {
        RenderFor {
            share: b.1,
            rule,
            email: b.0,
            case: b.2,
            version: b.3,
        }
    }

    #[test]
    fn a_share_and_rule_render_once_and_never_for_other_bindings() {
        let t = templates();
        let cache = RenderCache::for_templates(&t);
        let a = B("a@x.test", "sh-1", "42", "3", "doc");
        let first = cache.headers(&t, &render_for(&a, 0), &a).unwrap();
        assert_eq!(values(&first), ["a@x.test", "sh-1:42/3", "doc"]);
        let again = cache.headers(&t, &render_for(&a, 0), &a).unwrap();
        assert!(Arc::ptr_eq(&first, &again), "rendered again");
        // Same share id, another rule: its own rendering.
        let list = B("a@x.test", "sh-1", "42", "3", "list");
        let other_rule = cache.headers(&t, &render_for(&list, 1), &list).unwrap();
        assert_eq!(values(&other_rule), ["a@x.test", "sh-1:42/3", "list"]);
        // Same share id and rule but other bound values (never from a genuine share,
        // whose id names one email and scope): rendered for them, not served stale.
        for b in [
            B("b@x.test", "sh-1", "42", "3", "doc"),
            B("a@x.test", "sh-1", "43", "3", "doc"),
            B("a@x.test", "sh-1", "42", "4", "doc"),
            // the same bytes end to end, split elsewhere
            B("a@x.test4", "sh-1", "2", "3", "doc"),
            B("a@x.test", "sh-1", "4", "23", "doc"),
        ] {
            let h = cache.headers(&t, &render_for(&b, 0), &b).unwrap();
            assert_eq!(values(&h)[..2], [b.0, &format!("sh-1:{}/{}", b.2, b.3)]);
        }
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn a_value_that_is_no_header_value_is_refused_and_the_cache_stays_bounded() {
        let (t, cache) = (templates(), RenderCache::with_capacity(2));
        let bad = B("a@x.test\r\nX-Evil: 1", "sh-1", "42", "3", "doc");
        assert!(cache.headers(&t, &render_for(&bad, 0), &bad).is_none());
        assert!(cache.is_empty());
        for id in ["sh-1", "sh-2", "sh-3", "sh-4"] {
            let b = B("a@x.test", id, "42", "3", "doc");
            assert!(cache.headers(&t, &render_for(&b, 0), &b).is_some());
        }
        assert_eq!(cache.len(), 2);
        // A template naming a path capture is rendered every time.
        let captured: Vec<(HeaderName, Template)> = vec![(
            HeaderName::from_static("x-doc"),
            Template::parse("{doc}", |n| (n == "doc").then(|| Var::Capture(n.into()))).unwrap(),
        )];
        let off = RenderCache::for_templates(&captured);
        let b = B("a@x.test", "sh-1", "42", "3", "doc");
        let one = off.headers(&captured, &render_for(&b, 0), &b).unwrap();
        let two = off.headers(&captured, &render_for(&b, 0), &b).unwrap();
        assert!(!Arc::ptr_eq(&one, &two));
        assert!(off.is_empty());
    }
}
