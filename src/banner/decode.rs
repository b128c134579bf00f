//! Content codings guestgate can undo, for HTML the app compressed even though guestgate
//! asked for `identity`: gzip, deflate (zlib-wrapped, or raw as some servers send it) and
//! brotli, decoded incrementally. The decoders write into a sink that refuses to grow
//! past a cap per chunk, so a compressed bomb (brotli reaches a million to one) costs a
//! bounded amount of memory before the response is abandoned.

use std::io::Write;

/// A coding of `Content-Encoding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    /// No coding.
    Identity,
    /// `gzip` / `x-gzip`.
    Gzip,
    /// `deflate`.
    Deflate,
    /// `br`.
    Brotli,
}

impl Coding {
    /// The coding a `Content-Encoding` value names; `None` for one guestgate cannot
    /// decode (`zstd`, or several codings stacked).
    pub fn from_header(value: Option<&[u8]>) -> Option<Coding> {
        let Some(v) = value else {
            return Some(Coding::Identity);
        };
        let v = std::str::from_utf8(v).ok()?.trim();
        Some(match v.to_ascii_lowercase().as_str() {
            "" | "identity" => Coding::Identity,
            "gzip" | "x-gzip" => Coding::Gzip,
            "deflate" => Coding::Deflate,
            "br" => Coding::Brotli,
            _ => return None,
        })
    }
}

/// Why decoding stopped.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The bytes are not what the header says.
    #[error("the response body is not valid {0:?}")]
    Corrupt(Coding),
    /// One chunk expanded past the cap.
    #[error("one chunk of the response expanded past {MAX_CHUNK_OUTPUT} bytes")]
    Expansion,
}

/// The brotli decoder's window onto its sink.
const BROTLI_BUFFER: usize = 4096;
/// Most output one input chunk may produce (32 MiB): far above real HTML's ratios.
pub const MAX_CHUNK_OUTPUT: usize = 32 << 20;

/// Where decoded bytes go: a buffer that refuses, rather than grows, past its cap.
struct Capped {
    buf: Vec<u8>,
    cap: usize,
    over: bool,
}

impl Capped {
    fn new(cap: usize) -> Self {
        Self {
            buf: Vec::new(),
            cap,
            over: false,
        }
    }
}

impl Write for Capped {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.buf.len() + data.len() > self.cap {
            self.over = true;
            return Err(std::io::Error::other("decoded chunk past the cap"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

enum Inner {
    Gzip(flate2::write::GzDecoder<Capped>),
    Zlib(flate2::write::ZlibDecoder<Capped>),
    RawDeflate(flate2::write::DeflateDecoder<Capped>),
    /// `deflate` before its first two bytes say whether it is zlib-wrapped.
    DeflateUnknown(Vec<u8>),
    Brotli(Box<brotli::DecompressorWriter<Capped>>),
}

/// An incremental decoder.
pub struct Decoder {
    inner: Inner,
    coding: Coding,
    cap: usize,
}

impl Decoder {
    /// A decoder for a coding other than identity.
    pub fn new(coding: Coding) -> Option<Decoder> {
        Self::with_cap(coding, MAX_CHUNK_OUTPUT)
    }

    /// A decoder whose chunks may expand to `cap` bytes at most.
    pub fn with_cap(coding: Coding, cap: usize) -> Option<Decoder> {
        let inner = match coding {
            Coding::Identity => return None,
            Coding::Gzip => Inner::Gzip(flate2::write::GzDecoder::new(Capped::new(cap))),
            Coding::Deflate => Inner::DeflateUnknown(Vec::new()),
            Coding::Brotli => Inner::Brotli(Box::new(brotli::DecompressorWriter::new(
                Capped::new(cap),
                BROTLI_BUFFER,
            ))),
        };
        Some(Decoder { inner, coding, cap })
    }

    fn sink(&mut self) -> Option<&mut Capped> {
        Some(match &mut self.inner {
            Inner::Gzip(d) => d.get_mut(),
            Inner::Zlib(d) => d.get_mut(),
            Inner::RawDeflate(d) => d.get_mut(),
            Inner::Brotli(d) => d.get_mut(),
            Inner::DeflateUnknown(_) => return None,
        })
    }

    /// Why a write failed: the sink refused (a bomb), or the bytes are not the coding.
    fn failed(&mut self) -> DecodeError {
        let coding = self.coding;
        if self.sink().is_some_and(|s| s.over) {
            DecodeError::Expansion
        } else {
            DecodeError::Corrupt(coding)
        }
    }

    /// Decodes the next chunk; at `end`, whatever the decoder still holds.
    pub fn push(&mut self, input: &[u8], end: bool) -> Result<Vec<u8>, DecodeError> {
        if let Inner::DeflateUnknown(head) = &mut self.inner {
            head.extend_from_slice(input);
            if head.len() < 2 && !end {
                return Ok(Vec::new());
            }
            let held = std::mem::take(head);
            // RFC 1950: CM = 8, and the header is a multiple of 31.
            let zlib = held.len() >= 2
                && held[0] & 0x0f == 8
                && (u16::from(held[0]) << 8 | u16::from(held[1])) % 31 == 0;
            let sink = Capped::new(self.cap);
            self.inner = if zlib {
                Inner::Zlib(flate2::write::ZlibDecoder::new(sink))
            } else {
                Inner::RawDeflate(flate2::write::DeflateDecoder::new(sink))
            };
            return self.push(&held, end);
        }
        let mut rest = input;
        while !rest.is_empty() {
            let written = match &mut self.inner {
                Inner::Gzip(d) => d.write(rest),
                Inner::Zlib(d) => d.write(rest),
                Inner::RawDeflate(d) => d.write(rest),
                Inner::Brotli(d) => d.write(rest),
                Inner::DeflateUnknown(_) => Ok(0),
            };
            match written {
                // The stream ended; what follows is trailing bytes, dropped.
                Ok(0) => break,
                Ok(n) => rest = &rest[n..],
                Err(_) => return Err(self.failed()),
            }
        }
        if end {
            let finished = match &mut self.inner {
                Inner::Gzip(d) => d.try_finish(),
                Inner::Zlib(d) => d.try_finish(),
                Inner::RawDeflate(d) => d.try_finish(),
                Inner::Brotli(d) => d.flush(),
                Inner::DeflateUnknown(_) => Ok(()),
            };
            if finished.is_err() {
                return Err(self.failed());
            }
        }
        Ok(self
            .sink()
            .map(|s| std::mem::take(&mut s.buf))
            .unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page() -> Vec<u8> {
        let mut p = b"<!doctype html><html><head><title>t</title></head><body>".to_vec();
        for i in 0..5000 {
            p.extend_from_slice(format!("<p>paragraph {i}</p>\n").as_bytes());
        }
        p
    }

    fn encode(coding: Coding, data: &[u8]) -> Vec<u8> {
        match coding {
            Coding::Gzip => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            Coding::Deflate => {
                let mut e =
                    flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            Coding::Brotli => {
                let mut out = Vec::new();
                {
                    let mut e = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
                    e.write_all(data).unwrap();
                }
                out
            }
            Coding::Identity => data.to_vec(),
        }
    }

    #[test]
    fn decodes_every_coding_in_any_chunking() {
        let page = page();
        let raw_deflate = {
            let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(&page).unwrap();
            e.finish().unwrap()
        };
        for (coding, encoded) in [
            (Coding::Gzip, encode(Coding::Gzip, &page)),
            (Coding::Deflate, encode(Coding::Deflate, &page)),
            (Coding::Deflate, raw_deflate),
            (Coding::Brotli, encode(Coding::Brotli, &page)),
        ] {
            for size in [1, 7, 1000, 1 << 20] {
                let mut d = Decoder::new(coding).unwrap();
                let mut out = Vec::new();
                let chunks: Vec<&[u8]> = encoded.chunks(size).collect();
                for (i, c) in chunks.iter().enumerate() {
                    out.extend(d.push(c, i + 1 == chunks.len()).unwrap());
                }
                assert_eq!(out, page, "{coding:?} in chunks of {size}");
            }
        }
    }

    #[test]
    fn a_bomb_is_abandoned_before_it_grows_past_the_cap_and_garbage_is_refused() {
        const CAP: usize = 1 << 20;
        let bytes = vec![b'A'; 8 << 20];
        for coding in [Coding::Gzip, Coding::Deflate, Coding::Brotli] {
            let bomb = encode(coding, &bytes);
            assert!(bomb.len() < 128 << 10, "{coding:?}: {}", bomb.len());
            let mut d = Decoder::with_cap(coding, CAP).unwrap();
            assert!(
                matches!(d.push(&bomb, true), Err(DecodeError::Expansion)),
                "{coding:?}"
            );
            let held = d.sink().map_or(0, |s| s.buf.len());
            assert!(held <= CAP, "{coding:?}: {held} bytes held");
            // exactly the cap still decodes
            let mut d = Decoder::with_cap(coding, CAP).unwrap();
            let out = d.push(&encode(coding, &bytes[..CAP]), true).unwrap();
            assert_eq!(out.len(), CAP, "{coding:?}");
        }
        let mut d = Decoder::new(Coding::Brotli).unwrap();
        assert!(d.push(b"this is not brotli at all", true).is_err());
        assert_eq!(Coding::from_header(Some(b"zstd")), None);
        assert_eq!(Coding::from_header(Some(b"gzip, br")), None);
        assert_eq!(Coding::from_header(Some(b" GZIP ")), Some(Coding::Gzip));
        assert_eq!(Coding::from_header(None), Some(Coding::Identity));
    }
}
