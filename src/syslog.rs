//! The syslog header nginx puts before each access line it sends to a
//! socket (`access_log syslog:server=…`), and nothing more.
//!
//! Facts from nginx's `ngx_syslog.c`: one datagram per line, no trailing
//! newline, header `<PRI>Mmm dd hh:mm:ss [HOST ]TAG: ` — the day
//! space-padded, local time, no year or zone; HOST is left out with
//! `nohostname`; TAG is 1 to 32 of `[A-Za-z0-9_]` (default `nginx`).
//!
//! Invariant: the header's time is never used — it has no year and is when
//! nginx sent the line; the day of a request comes from the log line itself,
//! as for every other source. A datagram whose header does not have this
//! shape is rejected whole (counted by the listener), never guessed at.

/// A datagram split into its tag and the log line it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Datagram<'a> {
    pub tag: &'a [u8],
    pub line: &'a [u8],
}

/// Why a datagram is not one of nginx's syslog lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SyslogError {
    #[error("no <PRI> at the start")]
    Priority,
    #[error("no `Mmm dd hh:mm:ss` timestamp after <PRI>")]
    Timestamp,
    #[error("no `TAG: ` (1 to 32 of A-Z a-z 0-9 _) after the timestamp")]
    Tag,
}

/// Splits one datagram (see the module header).
pub fn parse(d: &[u8]) -> Result<Datagram<'_>, SyslogError> {
    let rest = d.strip_prefix(b"<").ok_or(SyslogError::Priority)?;
    let close = rest
        .iter()
        .take(4)
        .position(|&b| b == b'>')
        .filter(|&n| n > 0 && rest[..n].iter().all(u8::is_ascii_digit))
        .ok_or(SyslogError::Priority)?;
    let rest = &rest[close + 1..];
    // "Nov  3 10:00:00 " or "Nov 13 10:00:00 ": 16 bytes.
    let ts = rest.get(..16).ok_or(SyslogError::Timestamp)?;
    let shape_ok = ts[..3].iter().all(u8::is_ascii_alphabetic)
        && ts[3] == b' '
        && (ts[4] == b' ' || ts[4].is_ascii_digit())
        && ts[5].is_ascii_digit()
        && ts[6] == b' '
        && ts[9] == b':'
        && ts[12] == b':'
        && ts[15] == b' '
        && [7, 8, 10, 11, 13, 14]
            .iter()
            .all(|&i| ts[i].is_ascii_digit());
    if !shape_ok {
        return Err(SyslogError::Timestamp);
    }
    let rest = &rest[16..];
    // `TAG: line`, or `HOST TAG: line`.
    let first_end = memchr::memchr(b' ', rest).ok_or(SyslogError::Tag)?;
    let (tag_word, line) = if rest[..first_end].ends_with(b":") {
        (&rest[..first_end], &rest[first_end + 1..])
    } else {
        let after_host = &rest[first_end + 1..];
        let end = memchr::memchr(b' ', after_host).ok_or(SyslogError::Tag)?;
        (&after_host[..end], &after_host[end + 1..])
    };
    let tag = tag_word.strip_suffix(b":").ok_or(SyslogError::Tag)?;
    let tag_ok = (1..=32).contains(&tag.len())
        && tag.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'_');
    if !tag_ok {
        return Err(SyslogError::Tag);
    }
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    Ok(Datagram { tag, line })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &[u8] = br#"192.0.2.1 - - [03/Nov/2026:10:00:00 +0100] "GET /isos/a.iso HTTP/1.1" 200 5 "-" "curl/8.5.0""#;

    fn with_header(header: &[u8]) -> Vec<u8> {
        [header, LINE].concat()
    }

    #[test]
    fn nginx_headers_with_and_without_host() {
        for header in [
            &b"<190>Nov  3 10:00:01 dlcount: "[..],
            b"<190>Nov 13 10:00:01 web1 dlcount: ",
            b"<7>Dec 31 23:59:59 dlcount: ",
        ] {
            let d = with_header(header);
            let got = parse(&d).unwrap();
            assert_eq!((got.tag, got.line), (&b"dlcount"[..], LINE), "{header:?}");
        }
        // A line that itself holds ": " is kept whole.
        let d = b"<190>Nov  3 10:00:01 nginx: a: b c";
        assert_eq!(parse(d).unwrap().line, b"a: b c");
    }

    #[test]
    fn anything_else_is_rejected_whole() {
        assert_eq!(parse(LINE), Err(SyslogError::Priority));
        assert_eq!(parse(b"<>Nov  3 10:00:01 t: x"), Err(SyslogError::Priority));
        assert_eq!(
            parse(b"<19x>Nov  3 10:00:01 t: x"),
            Err(SyslogError::Priority)
        );
        assert_eq!(
            parse(b"<190>2026-11-03T10:00:01 t: x"),
            Err(SyslogError::Timestamp)
        );
        assert_eq!(parse(b"<190>Nov  3 10:00"), Err(SyslogError::Timestamp));
        assert_eq!(
            parse(b"<190>Nov  3 10:00:01 notag x"),
            Err(SyslogError::Tag)
        );
        assert_eq!(
            parse(b"<190>Nov  3 10:00:01 bad-tag: x"),
            Err(SyslogError::Tag)
        );
        let long = [&b"<190>Nov  3 10:00:01 "[..], &[b'a'; 33], b": x"].concat();
        assert_eq!(parse(&long), Err(SyslogError::Tag));
    }
}
