//! Small, pure formatting helpers shared by both pages: byte sizes, grouped
//! numbers, URL-path encoding and the HTML output formatter.
//!
//! Invariant: everything that reaches a page from a file name or a log goes
//! through [`html_formatter`] (which escapes it) and, inside `href`, through
//! [`href_for`] (which percent-encodes every byte outside the unreserved set),
//! so no name can break out of text, an attribute or a URL.

use minijinja::value::Value;
use minijinja::{AutoEscape, Error, Output, State};
use percent_encoding::{percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Bytes kept as they are inside one URL path segment: RFC 3986 "unreserved".
/// Everything else (space, `#`, `?`, `%`, `:`, non-ASCII …) is percent-encoded.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Relative URL of a path given as raw bytes relative to the page's folder:
/// each `/`-separated segment is encoded, the `/` are kept.
pub fn href_for(rel: &[u8]) -> String {
    let mut out = String::with_capacity(rel.len() + 8);
    for (i, seg) in rel.split(|&b| b == b'/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        out.extend(percent_encode(seg, SEGMENT));
    }
    out
}

/// Binary units with one decimal (`1.5 GiB`); plain bytes below 1 KiB. The
/// one size format of the pages and of `report`. Exact integer arithmetic,
/// rounded half up to one decimal, in the largest unit that keeps the value
/// below 1024.0 once rounded: 1,048,575 B is `1.0 MiB`, not `1024.0 KiB`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut tenths = 0;
    let mut unit = 0;
    for (i, _) in UNITS.iter().enumerate() {
        let divisor = 1u128 << (10 * (i + 1));
        tenths = (u128::from(bytes) * 10 + divisor / 2) / divisor;
        unit = i;
        if tenths < 10_240 {
            break;
        }
    }
    format!("{}.{} {}", tenths / 10, tenths % 10, UNITS[unit])
}

/// `1234567` → `1,234,567`.
pub fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Template filter `grouped`: integers get thousands separators; anything
/// else (none, undefined) renders as itself.
pub fn grouped_filter(v: Value) -> Value {
    match u64::try_from(v.clone()) {
        Ok(n) => Value::from(grouped(n)),
        Err(_) => v,
    }
}

/// Template filter `human_size`.
pub fn human_size_filter(v: u64) -> String {
    human_size(v)
}

/// Output formatter: HTML-escapes every value in `.html` templates like the
/// default one, but leaves `/` alone (escaping it is not needed in HTML and
/// would turn `href="isos/a.iso"` into `isos&#x2f;a.iso`). Values explicitly
/// marked safe are never produced from data by this crate.
pub fn html_formatter(out: &mut Output, state: &mut State, value: &Value) -> Result<(), Error> {
    if !matches!(state.auto_escape(), AutoEscape::Html) || value.is_safe() {
        return minijinja::escape_formatter(out, state, value);
    }
    if let Some(s) = value.as_str() {
        return write_html_escaped(out, s);
    }
    if value.is_undefined() || value.is_none() {
        return Ok(());
    }
    write_html_escaped(out, &value.to_string())
}

fn write_html_escaped(out: &mut Output, s: &str) -> Result<(), Error> {
    let mut last = 0;
    for (i, b) in s.bytes().enumerate() {
        let rep = match b {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' => "&quot;",
            b'\'' => "&#39;",
            _ => continue,
        };
        out.write_str(&s[last..i])?;
        out.write_str(rep)?;
        last = i + 1;
    }
    out.write_str(&s[last..])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hrefs_encode_segments_and_keep_slashes() {
        assert_eq!(
            href_for("isos/my file café.iso".as_bytes()),
            "isos/my%20file%20caf%C3%A9.iso"
        );
        assert_eq!(href_for(b"a#b?c%d.iso"), "a%23b%3Fc%25d.iso");
        assert_eq!(href_for(b"x:y/raw\xff.iso"), "x%3Ay/raw%FF.iso");
        assert_eq!(href_for(b"v1.2_x-y~z.iso"), "v1.2_x-y~z.iso");
    }

    #[test]
    fn sizes_use_binary_units_with_one_decimal() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1024), "1.0 KiB");
        assert_eq!(human_size(1536), "1.5 KiB");
        // 1.25 KiB exactly: half up.
        assert_eq!(human_size(1280), "1.3 KiB");
        // 1023.94 KiB stays in KiB; 1023.95 KiB would print as 1024.0 KiB.
        assert_eq!(human_size(1_048_514), "1023.9 KiB");
        assert_eq!(human_size(1_048_525), "1.0 MiB");
        assert_eq!(human_size(1_048_575), "1.0 MiB");
        assert_eq!(human_size(1_048_576), "1.0 MiB");
        assert_eq!(human_size(4_700_000_000), "4.4 GiB");
        assert_eq!(human_size(u64::MAX), "16.0 EiB");
    }

    #[test]
    fn numbers_are_grouped() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(grouped(1234567), "1,234,567");
    }
}
