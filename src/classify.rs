//! Decides whether a parsed access-log record is a counted download request,
//! and turns its request target into the file's report key.
//!
//! Invariant: the path we count is what Apache's `%U` would log for the
//! request — query removed, the format's log escapes undone (Apache's and
//! nginx's default `\xhh`, nginx's `escape=json`, nothing under nginx's
//! `escape=none`, where a backslash is the client's), percent-decoded, `.`/`..`
//! segments resolved and repeated `/` collapsed — so `/isos//a.iso?x=1` and
//! `/isos/%61.iso` land on the same key as `/isos/a.iso`. Keys are injective
//! text: two different byte paths never share a key.

use crate::logformat::{Escape, TargetForm};

/// Why a well-formed line was not counted (counted per reason for the summary).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ignored {
    Method,
    Status,
    Extension,
}

/// HTTP method of a counted line; part of the line's identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    Get,
    Head,
}

/// The configured set of counted extensions (e.g. `.iso`), matched
/// ASCII-case-insensitively at the end of the normalised path.
#[derive(Debug, Clone)]
pub struct Classifier {
    exts: Vec<Vec<u8>>,
}

impl Classifier {
    /// `exts` are given with or without the leading dot; they are stored lower-case with it.
    pub fn new<S: AsRef<str>>(exts: &[S]) -> Classifier {
        let exts = exts
            .iter()
            .map(|e| {
                let e = e.as_ref().trim().to_ascii_lowercase();
                let e = if e.starts_with('.') {
                    e
                } else {
                    format!(".{e}")
                };
                e.into_bytes()
            })
            .collect();
        Classifier { exts }
    }

    /// Whether a normalised path (or file name) ends in a counted extension.
    pub fn has_counted_ext(&self, path: &[u8]) -> bool {
        self.exts.iter().any(|ext| {
            path.len() > ext.len() && path[path.len() - ext.len()..].eq_ignore_ascii_case(ext)
        })
    }

    /// Classifies a parsed request. `target` is the request target as logged,
    /// `form` says whether it came from `%r` or from `%U`, `escape` how the
    /// format escaped it. On success the
    /// normalised path is left in `path_out`, reused so the hot loop does not allocate.
    pub fn classify(
        &self,
        method: &[u8],
        status: u16,
        target: &[u8],
        form: TargetForm,
        escape: Escape,
        path_out: &mut Vec<u8>,
    ) -> Result<Method, Ignored> {
        let status_ok = matches!(status, 200 | 206);
        let method = match method {
            b"GET" => Method::Get,
            b"HEAD" => Method::Head,
            _ => return Err(Ignored::Method),
        };
        if !status_ok {
            return Err(Ignored::Status);
        }
        normalize_target(target, form, escape, path_out);
        if self.has_counted_ext(path_out) {
            Ok(method)
        } else {
            Err(Ignored::Extension)
        }
    }
}

/// Normalises a request target into a `%U`-style path in `out`.
///
/// Both forms still carry the format's log escaping (`escape`: see
/// [`unescape_log`]); a `%r` target is also percent-encoded, while `%U` was
/// already decoded by Apache.
pub fn normalize_target(target: &[u8], form: TargetForm, escape: Escape, out: &mut Vec<u8>) {
    out.clear();
    let mut raw: &[u8] = target;
    // Absolute-form targets (`GET http://host/path`) are served by path.
    if raw.len() > 8
        && (raw[..7].eq_ignore_ascii_case(b"http://") || raw[..8].eq_ignore_ascii_case(b"https://"))
    {
        let after = if raw[4] == b':' { 7 } else { 8 };
        raw = match memchr::memchr(b'/', &raw[after..]) {
            Some(i) => &raw[after + i..],
            None => b"/",
        };
    }
    // The query (and a fragment, which clients should not send) are not part of %U.
    if let Some(q) = memchr::memchr2(b'?', b'#', raw) {
        raw = &raw[..q];
    }
    // Fast path: nothing to undo or resolve (the overwhelmingly common case).
    // The escape mode is not looked at here: a backslash under `escape=none`
    // only takes the slow path, which keeps it, so the hot loop is unchanged.
    // One SIMD pass for `/` (a handful per path), each checked for `//` or
    // `/.`; a substring search per call would build its searcher every time.
    let simple = !raw.is_empty()
        && raw[0] == b'/'
        && memchr::memchr2(b'%', b'\\', raw).is_none()
        && !memchr::memchr_iter(b'/', raw).any(|i| matches!(raw.get(i + 1), Some(b'/' | b'.')));
    if simple {
        out.extend_from_slice(raw);
        return;
    }
    let mut decoded = Vec::with_capacity(raw.len());
    let unescaped: Vec<u8>;
    let src: &[u8] = if escape != Escape::None && raw.contains(&b'\\') {
        unescaped = unescape_log(raw, escape);
        &unescaped
    } else {
        raw
    };
    match form {
        TargetForm::RequestLine => {
            percent_decode_into(src, &mut decoded);
            resolve_segments(&decoded, out);
        }
        TargetForm::UrlPath => resolve_segments(src, out),
    }
}

/// Undoes a format's log escaping. [`Escape::Default`] (Apache's, and
/// nginx's default, which only ever writes `\xHH` and so agrees with it):
/// `\"`, `\\`, `\xhh` and the C-style `\b \n \t \v \f \r`.
/// [`Escape::Json`] (nginx's `escape=json`): JSON's `\" \\ \/ \b \f \n \r \t`
/// and `\u00XX` only — nginx writes a backslash as `\\` there, so a `\x41`
/// in such a line is not one of its escapes. [`Escape::None`]: nothing (the
/// bytes are the client's). Unknown escapes are kept verbatim.
pub fn unescape_log(s: &[u8], escape: Escape) -> Vec<u8> {
    if escape == Escape::None {
        return s.to_vec();
    }
    let json = escape == Escape::Json;
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let b = s[i];
        if b == b'\\' && i + 1 < s.len() {
            match s[i + 1] {
                b'"' => {
                    out.push(b'"');
                    i += 2;
                    continue;
                }
                b'\\' => {
                    out.push(b'\\');
                    i += 2;
                    continue;
                }
                b'x' if !json => {
                    if let (Some(h), Some(l)) = (hex(s.get(i + 2)), hex(s.get(i + 3))) {
                        out.push(h << 4 | l);
                        i += 4;
                        continue;
                    }
                }
                b'n' => {
                    out.push(b'\n');
                    i += 2;
                    continue;
                }
                b't' => {
                    out.push(b'\t');
                    i += 2;
                    continue;
                }
                b'r' => {
                    out.push(b'\r');
                    i += 2;
                    continue;
                }
                // Apache writes \b and \v too; nginx's escape=json writes \b,
                // \f and \u00XX for the other control bytes.
                b'b' => {
                    out.push(0x08);
                    i += 2;
                    continue;
                }
                b'v' if !json => {
                    out.push(0x0b);
                    i += 2;
                    continue;
                }
                b'f' => {
                    out.push(0x0c);
                    i += 2;
                    continue;
                }
                // JSON allows `\/` (nginx does not write it, a proxy might).
                b'/' if json => {
                    out.push(b'/');
                    i += 2;
                    continue;
                }
                b'u' if s.get(i + 2..i + 4) == Some(b"00") => {
                    if let (Some(h), Some(l)) = (hex(s.get(i + 4)), hex(s.get(i + 5))) {
                        out.push(h << 4 | l);
                        i += 6;
                        continue;
                    }
                }
                _ => {}
            }
        }
        out.push(b);
        i += 1;
    }
    out
}

fn hex(b: Option<&u8>) -> Option<u8> {
    match *b? {
        c @ b'0'..=b'9' => Some(c - b'0'),
        c @ b'a'..=b'f' => Some(c - b'a' + 10),
        c @ b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Percent-decodes once, like Apache does before mapping a URL to a file;
/// malformed escapes are kept as they are.
fn percent_decode_into(s: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' {
            if let (Some(h), Some(l)) = (hex(s.get(i + 1)), hex(s.get(i + 2))) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(s[i]);
        i += 1;
    }
}

/// Resolves `.` and `..` segments and collapses repeated slashes; the result
/// always starts with `/` and never climbs above the root.
fn resolve_segments(path: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let trailing_slash = path.ends_with(b"/");
    let mut stack: Vec<&[u8]> = Vec::new();
    for seg in path.split(|&b| b == b'/') {
        match seg {
            b"" | b"." => {}
            b".." => {
                stack.pop();
            }
            s => stack.push(s),
        }
    }
    for seg in &stack {
        out.push(b'/');
        out.extend_from_slice(seg);
    }
    if out.is_empty() || (trailing_slash && !stack.is_empty()) {
        out.push(b'/');
    }
}

/// The report key of a normalised path: the path as text, injective over bytes.
///
/// Valid UTF-8 is kept as it is (so keys read naturally, `/isos/café.iso`);
/// a literal `%` becomes `%25` and every byte of invalid UTF-8 becomes `%HH`,
/// so a key never collides with another path and is always valid JSON. A
/// NUL (a decoded `%00`) becomes `%00`: PostgreSQL's text cannot hold it,
/// and one such line must not make a whole batch unwritable.
pub fn path_key(path: &[u8]) -> String {
    if !path.contains(&b'%') && !path.contains(&0) {
        if let Ok(s) = std::str::from_utf8(path) {
            return s.to_owned();
        }
    }
    let mut out = String::with_capacity(path.len() + 8);
    for chunk in path.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '%' {
                out.push_str("%25");
            } else if c == '\0' {
                out.push_str("%00");
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        normalize_target(s, TargetForm::RequestLine, Escape::Default, &mut out);
        out
    }

    #[test]
    fn normalisation_matches_what_percent_u_logs() {
        assert_eq!(norm(b"/isos/a.iso"), b"/isos/a.iso");
        assert_eq!(norm(b"/isos//a.iso?mirror=1"), b"/isos/a.iso");
        assert_eq!(norm(b"/isos/./a.iso"), b"/isos/a.iso");
        assert_eq!(norm(b"/x/../isos/a.iso"), b"/isos/a.iso");
        assert_eq!(norm(b"/../../isos/a.iso"), b"/isos/a.iso");
        assert_eq!(
            norm(b"/isos/linuxvillage%2D24.04.iso"),
            b"/isos/linuxvillage-24.04.iso"
        );
        assert_eq!(norm(b"/isos/a%20b.iso"), b"/isos/a b.iso");
        assert_eq!(
            norm(b"/isos/caf\\xc3\\xa9.iso"),
            "/isos/café.iso".as_bytes()
        );
        assert_eq!(norm(b"http://example.org/isos/a.iso"), b"/isos/a.iso");
        assert_eq!(norm(b"HTTPS://example.org"), b"/");
        assert_eq!(norm(b"/isos/bad%zz.iso"), b"/isos/bad%zz.iso");
        assert_eq!(norm(b"/isos/"), b"/isos/");
        assert_eq!(norm(b""), b"/");
        assert_eq!(norm(b"*"), b"/*");
        // Percent-decoding happens once: %252e stays a literal "%2e" name.
        assert_eq!(norm(b"/isos/%252e.iso"), b"/isos/%2e.iso");
    }

    #[test]
    fn urlpath_targets_are_not_decoded_twice() {
        let mut out = Vec::new();
        normalize_target(
            b"/isos/100%25.iso",
            TargetForm::UrlPath,
            Escape::Default,
            &mut out,
        );
        assert_eq!(out, b"/isos/100%25.iso");
        normalize_target(
            b"/isos/a\\x20b.iso?q",
            TargetForm::UrlPath,
            Escape::Default,
            &mut out,
        );
        assert_eq!(out, b"/isos/a b.iso");
    }

    #[test]
    fn unescape_handles_apache_escapes() {
        let d = Escape::Default;
        assert_eq!(
            unescape_log(br#"a\"b\\c\x41\x4"#, d),
            b"a\"b\\cA\\x4".to_vec()
        );
        assert_eq!(unescape_log(b"\\", d), b"\\".to_vec());
        // Apache's \b \v, nginx json's \f and \u00XX; a \u that is not \u00XX stays.
        assert_eq!(
            unescape_log(br"\b\v\f\u0009\u00zz\u0100", d),
            b"\x08\x0b\x0c\t\\u00zz\\u0100".to_vec()
        );
    }

    #[test]
    fn unescape_follows_the_formats_escape_mode() {
        // escape=json: JSON's escapes; \x and \v are not among them.
        assert_eq!(
            unescape_log(br#"a\"b\\x41\u0041\/\x41\v"#, Escape::Json),
            br#"a"b\x41A/\x41\v"#.to_vec()
        );
        // escape=none: the bytes are the client's, backslashes included.
        assert_eq!(
            unescape_log(br#"a\"b\\c\x41"#, Escape::None),
            br#"a\"b\\c\x41"#.to_vec()
        );
    }

    #[test]
    fn normalisation_keeps_a_literal_backslash_under_escape_none() {
        let mut out = Vec::new();
        let none = Escape::None;
        normalize_target(b"/isos/a\\x41.iso", TargetForm::RequestLine, none, &mut out);
        assert_eq!(out, b"/isos/a\\x41.iso");
        normalize_target(br#"/isos/a"b.iso"#, TargetForm::RequestLine, none, &mut out);
        assert_eq!(out, br#"/isos/a"b.iso"#);
        // Percent-decoding still applies (nginx's $request is the raw target).
        normalize_target(
            b"/isos/a%5Cb%20c.iso",
            TargetForm::RequestLine,
            none,
            &mut out,
        );
        assert_eq!(out, b"/isos/a\\b c.iso");
        // The same bytes under the default escaping are an escape.
        normalize_target(
            b"/isos/a\\x41.iso",
            TargetForm::RequestLine,
            Escape::Default,
            &mut out,
        );
        assert_eq!(out, b"/isos/aA.iso");
        normalize_target(
            b"/isos/a\\x41.iso",
            TargetForm::RequestLine,
            Escape::Json,
            &mut out,
        );
        assert_eq!(out, b"/isos/a\\x41.iso");
        normalize_target(
            b"/isos/a\\\\b.iso",
            TargetForm::RequestLine,
            Escape::Json,
            &mut out,
        );
        assert_eq!(out, b"/isos/a\\b.iso");
    }

    #[test]
    fn extension_match_is_case_insensitive_and_needs_a_name() {
        let c = Classifier::new(&["iso", ".IMG"]);
        assert!(c.has_counted_ext(b"/a.iso"));
        assert!(c.has_counted_ext(b"/a.ISO"));
        assert!(c.has_counted_ext(b"/a.img"));
        assert!(!c.has_counted_ext(b".iso"));
        assert!(!c.has_counted_ext(b"/a.iso.md5"));
    }

    #[test]
    fn keys_are_injective_text() {
        assert_eq!(path_key(b"/isos/a.iso"), "/isos/a.iso");
        assert_eq!(path_key("/isos/café.iso".as_bytes()), "/isos/café.iso");
        assert_eq!(path_key(b"/isos/caf\xe9.iso"), "/isos/caf%E9.iso");
        assert_eq!(path_key(b"/isos/caf%E9.iso"), "/isos/caf%25E9.iso");
        assert_eq!(path_key(b"/isos/a\0b.iso"), "/isos/a%00b.iso");
        assert_eq!(path_key(b"/isos/a%00b.iso"), "/isos/a%2500b.iso");
    }
}
