//! HTML for people: escaping and the one page shell (title, layout, stylesheet) every page
//! guestgate shows is built in: the code challenge, the guest's shares, refusals and
//! errors. Emails use the same escaping. A leaf: it imports nothing from guestgate.

use std::fmt::Write as _;

/// Escapes text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    push_escaped(&mut out, s);
    out
}

/// Appends `s`, escaped, to `out`.
pub fn push_escaped(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

/// Appends `s` escaped and as pure ASCII: anything beyond ASCII as a numeric character
/// reference, so the text reads right in any ASCII-compatible charset a page declares
/// (the banner goes into the app's pages, whatever their charset).
pub fn push_escaped_ascii(out: &mut String, s: &str) {
    for c in s.chars() {
        if c.is_ascii() {
            push_escaped(out, c.encode_utf8(&mut [0; 4]));
        } else {
            let _ = write!(out, "&#x{:x};", u32::from(c));
        }
    }
}

/// The stylesheet of every page: small, readable, no script, works without JavaScript.
/// Inline, so guestgate's own pages need nothing but themselves (their CSP allows only it).
const STYLE: &str = "body{font:16px/1.5 system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem;color:#1a1a1a}\
h1{font-size:1.4rem}label{display:block;font-weight:600;margin:.5rem 0 .25rem}\
input{font-size:1.4rem;letter-spacing:.2em;padding:.4rem;width:9rem}\
button{font-size:1rem;padding:.5rem 1rem;margin-top:.75rem;cursor:pointer}\
.error{color:#a40000;font-weight:600}.notice{color:#1c5e20}.muted{color:#555}\
form+form{margin-top:1.5rem}table{border-collapse:collapse}td,th{padding:.3rem .8rem .3rem 0;text-align:left}\
code{background:#f2f2f2;padding:.1rem .3rem}";

/// A whole page: `title` is text (escaped here), `body` is HTML already built from
/// escaped parts.
pub fn page(title: &str, body: &str) -> String {
    let mut out = String::with_capacity(body.len() + 1024);
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body><main>{body}</main></body></html>\n",
        esc(title)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_pages_have_one_shell() {
        assert_eq!(
            esc("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        let p = page("A <b> title", "<p>body</p>");
        assert!(p.contains("<title>A &lt;b&gt; title</title>"));
        assert!(p.contains("<main><p>body</p></main>"));
        assert!(p.starts_with("<!doctype html>") && p.contains("lang=\"en\""));
    }
}
