//! Splitting bytes (or text) at one delimiter with `memchr`: the hot path's heads and cookie
//! values are long (a session cookie is hundreds of bytes), and a byte-at-a-time
//! `split` was a visible share of a guest request's cost.

/// The parts of `bytes` between each `delim`, exactly as `bytes.split(|&b| b == delim)`
/// yields them: the part after the last delimiter is included, even when empty.
pub fn split(bytes: &[u8], delim: u8) -> Split<'_> {
    Split {
        rest: Some(bytes),
        delim,
    }
}

/// Iterator returned by [`split`].
pub struct Split<'a> {
    rest: Option<&'a [u8]>,
    delim: u8,
}

impl<'a> Iterator for Split<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let rest = self.rest?;
        match memchr::memchr(self.delim, rest) {
            Some(i) => {
                self.rest = rest.get(i + 1..);
                rest.get(..i)
            }
            None => {
                self.rest = None;
                Some(rest)
            }
        }
    }
}

/// [`split`] over text: the same parts, as `str`s, as `text.split(delim as char)`
/// yields them. `delim` must be ASCII, so every cut is next to it and on a character
/// boundary (a non-ASCII `delim` ends the parts early instead of cutting a character).
pub fn split_str(text: &str, delim: u8) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let r = rest?;
        match memchr::memchr(delim, r.as_bytes()) {
            Some(i) => {
                rest = r.get(i + 1..);
                r.get(..i)
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// Cuts exactly where `slice::split` does, the last part included.
        #[test]
        fn matches_slice_split(
            raw in proptest::collection::vec(proptest::sample::select(b"ab;\n".to_vec()), 0..64)
        ) {
            for delim in [b';', b'\n'] {
                let ours: Vec<&[u8]> = split(&raw, delim).collect();
                let plain: Vec<&[u8]> = raw.split(|&b| b == delim).collect();
                proptest::prop_assert_eq!(ours, plain);
            }
        }

        /// Over text, cuts exactly where `str::split` does, around multi-byte characters too.
        #[test]
        fn text_matches_str_split(raw in "[a;,=é€ ]{0,40}") {
            for delim in [b';', b','] {
                let ours: Vec<&str> = split_str(&raw, delim).collect();
                let plain: Vec<&str> = raw.split(char::from(delim)).collect();
                proptest::prop_assert_eq!(ours, plain);
            }
        }
    }
}
