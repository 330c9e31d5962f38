//! The referring site of a request: the host part of its Referer.
//!
//! Invariant: only the host is kept (lower case, without user info or port)
//! — never the path or query, which can carry search terms or tokens — and
//! every Referer maps to exactly one of: direct (`-`, empty, or not a URL),
//! this site (one of the site's own host names), or another host.

// bstr: a logged Referer is bytes, not UTF-8; its byteset search and lossy
// conversion say what the hand-written loops did.
use bstr::ByteSlice;

/// Where a request came from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RefererHost {
    /// No Referer (`-`, empty), or one that is not an absolute http(s) URL.
    Direct,
    /// A page of the download site itself.
    ThisSite,
    Host(String),
}

impl RefererHost {
    /// How the pages and reports name it.
    pub fn label(&self) -> &str {
        match self {
            RefererHost::Direct => "direct",
            RefererHost::ThisSite => "this site",
            RefererHost::Host(h) => h,
        }
    }
}

/// The referring host of a Referer as logged; `own_hosts` are the site's own
/// names, lower case (`downloads.example.org`).
pub fn referer_host(referer: &[u8], own_hosts: &[String]) -> RefererHost {
    let Some(host) = host_part(referer) else {
        return RefererHost::Direct;
    };
    let host = host_label(host);
    if own_hosts.contains(&host) {
        RefererHost::ThisSite
    } else {
        RefererHost::Host(host)
    }
}

/// How a host part is named: lower case, without a trailing dot.
pub fn host_label(host: &[u8]) -> String {
    host.to_str_lossy()
        .trim_end_matches('.')
        .to_ascii_lowercase()
}

/// The host part of a Referer as logged, borrowed (no allocation: the line
/// processor keeps it for every counted line); `None`: direct.
pub fn host_part(referer: &[u8]) -> Option<&[u8]> {
    let rest = strip_scheme(referer)?;
    let authority_end = rest.find_byteset(b"/?#\\").unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    // user:password@host — the user info is never kept.
    let host_port = match memchr::memrchr(b'@', authority) {
        Some(at) => &authority[at + 1..],
        None => authority,
    };
    let host = if host_port.first() == Some(&b'[') {
        // [IPv6]:port
        match memchr::memchr(b']', host_port) {
            Some(close) => &host_port[..=close],
            None => return None,
        }
    } else {
        match memchr::memchr(b':', host_port) {
            Some(colon) => &host_port[..colon],
            None => host_port,
        }
    };
    let valid = !host.is_empty()
        && host.iter().all(|&b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'[' | b']' | b':')
        });
    if !valid || host.iter().all(|&b| b == b'.') {
        return None;
    }
    Some(host)
}

fn strip_scheme(r: &[u8]) -> Option<&[u8]> {
    for scheme in [&b"https://"[..], b"http://"] {
        if r.len() > scheme.len() && r[..scheme.len()].eq_ignore_ascii_case(scheme) {
            return Some(&r[scheme.len()..]);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_of_real_referers() {
        let own = vec!["downloads.example.org".to_string()];
        let host = |r: &str| referer_host(r.as_bytes(), &own).label().to_string();
        assert_eq!(host("-"), "direct");
        assert_eq!(host(""), "direct");
        assert_eq!(host("android-app://com.google.android.gm/"), "direct");
        assert_eq!(host("https://downloads.example.org/isos/"), "this site");
        assert_eq!(host("https://Downloads.Example.ORG:443/"), "this site");
        assert_eq!(host("https://www.google.com/"), "www.google.com");
        assert_eq!(
            host("https://duckduckgo.com/?q=linuxvillage+iso&t=h_"),
            "duckduckgo.com"
        );
        assert_eq!(
            host("http://user:secret@forum.example.net:8080/t/123"),
            "forum.example.net"
        );
        assert_eq!(host("https://[2001:db8::1]:8443/x"), "[2001:db8::1]");
        assert_eq!(host("https://example.com."), "example.com");
        assert_eq!(host("https://exa mple.com/"), "direct");
        assert_eq!(host("https://"), "direct");
    }
}
