//! nginx `log_format` strings, tokenised into the same fields as Apache's
//! `LogFormat`, so one walker parses both (see the parent module).
//!
//! Invariant: a variable maps to the field whose meaning it has in nginx's
//! own source, not to the one with the nearest name — `$bytes_sent` is
//! Apache's `%O` (headers included), `$body_bytes_sent` its `%B`, `$uri` is
//! already decoded and normalised like `%U` while `$request_uri` is the raw
//! target as sent, and `[$time_local]` is `%t` written when the request
//! *ended*. Unknown variables are free text: located, never interpreted.
//!
//! nginx writes a variable's value escaped per the format's `escape=`
//! parameter: `default` writes `"`, `\` and bytes outside printable ASCII as
//! `\xHH`, `json` as JSON string escapes (`\"`, `\\`, `\n`, `\u00XX`), `none`
//! not at all. An empty value is written `-`.

use super::{Field, FormatError, Token};

/// The `escape=` parameter of a `log_format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    Default,
    Json,
    None,
}

/// nginx's predefined `combined` format (`ngx_http_log_module.c`).
pub const COMBINED: &str = "$remote_addr - $remote_user [$time_local] \"$request\" $status $body_bytes_sent \"$http_referer\" \"$http_user_agent\"";

/// The `log_format dlcount` we recommend (`scripts/nginx/dlcount.conf`):
/// `combined` with `$bytes_sent` (headers included, as Debian's Apache
/// `%O`), then `$msec $request_time` so the day is the one the request
/// started on (as Apache's `%t`), then `$request_completion` and
/// `$sent_http_content_range` (quoted: either may be empty) for the
/// completed-download facts.
pub const DLCOUNT: &str = "$remote_addr - $remote_user [$time_local] \"$request\" $status $bytes_sent \"$http_referer\" \"$http_user_agent\" $msec $request_time \"$request_completion\" \"$sent_http_content_range\"";

/// Whether `spec` is an nginx `log_format` rather than an Apache `LogFormat`:
/// it names a variable (`$name` or `${name}`) and has no `%` directive.
pub fn looks_like(spec: &str) -> bool {
    let spec = strip_escape(spec).1;
    let b = spec.as_bytes();
    let has_variable = b
        .windows(2)
        .any(|w| w[0] == b'$' && (w[1] == b'{' || w[1] == b'_' || w[1].is_ascii_alphabetic()));
    has_variable && !b.contains(&b'%')
}

/// Splits a leading `escape=…` parameter (as written in nginx's
/// `log_format NAME escape=json '…'`) from the format itself.
fn strip_escape(spec: &str) -> (Option<&str>, &str) {
    let trimmed = spec.trim_start();
    match trimmed.strip_prefix("escape=") {
        Some(rest) => {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            (Some(&rest[..end]), rest[end..].trim_start())
        }
        None => (None, spec),
    }
}

/// Tokenises an nginx format: literal text and variables.
pub(super) fn tokenize(spec: &str) -> Result<(Vec<Token>, Escape), FormatError> {
    let err = |msg: String| FormatError(format!("nginx log_format {spec:?}: {msg}"));
    let (escape, fmt) = strip_escape(spec);
    let escape = match escape {
        None | Some("default") => Escape::Default,
        Some("json") => Escape::Json,
        Some("none") => Escape::None,
        Some(other) => {
            return Err(err(format!(
                "escape={other} is not one of nginx's: default, json, none"
            )))
        }
    };
    let b = fmt.as_bytes();
    let mut tokens: Vec<Token> = Vec::new();
    let mut lit: Vec<u8> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'$' {
            lit.push(b[i]);
            i += 1;
            continue;
        }
        let (name, next) = if b.get(i + 1) == Some(&b'{') {
            let close = fmt[i..]
                .find('}')
                .ok_or_else(|| err("unterminated ${…}".into()))?;
            (&fmt[i + 2..i + close], i + close + 1)
        } else {
            let len = b[i + 1..]
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
                .count();
            (&fmt[i + 1..i + 1 + len], i + 1 + len)
        };
        if name.is_empty() {
            // nginx itself refuses a lone `$`; keep it literal rather than guess.
            return Err(err(format!("a `$` without a variable name at byte {i}")));
        }
        i = next;
        let field = field_of(name);
        // `[$time_local]` is Apache's `%t` exactly: take the brackets along.
        if field == Field::TimeLocal && lit.last() == Some(&b'[') && b.get(i) == Some(&b']') {
            lit.pop();
            i += 1;
            push_literal(&mut tokens, &mut lit);
            tokens.push(Token::Field {
                field: Field::Time,
                quoted: false,
            });
            continue;
        }
        push_literal(&mut tokens, &mut lit);
        tokens.push(Token::Field {
            field,
            quoted: false,
        });
    }
    push_literal(&mut tokens, &mut lit);
    Ok((tokens, escape))
}

fn push_literal(tokens: &mut Vec<Token>, lit: &mut Vec<u8>) {
    if !lit.is_empty() {
        tokens.push(Token::Literal(std::mem::take(lit)));
    }
}

/// The field an nginx variable fills (facts from nginx's http variables).
fn field_of(name: &str) -> Field {
    match name {
        "remote_addr" => Field::RemoteAddr,
        "time_local" => Field::TimeLocal,
        "time_iso8601" => Field::TimeIso,
        "msec" => Field::Msec,
        "request_time" => Field::RequestTime,
        "request" => Field::RequestLine,
        "request_method" => Field::Method,
        "request_uri" => Field::RequestUri,
        "uri" | "document_uri" => Field::UrlPath,
        "args" | "query_string" | "is_args" => Field::Query,
        "status" => Field::FinalStatus,
        "bytes_sent" => Field::BytesSent,
        "body_bytes_sent" => Field::Bytes,
        "http_referer" => Field::Referer,
        "http_user_agent" => Field::UserAgent,
        "sent_http_content_range" => Field::ContentRange,
        // Free text: may hold spaces (`$remote_user`, `$http_x_forwarded_for`,
        // `$request_completion`, anything else).
        other => Field::FreeText(format!("${other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_nginx_formats_only() {
        assert!(looks_like(COMBINED));
        assert!(looks_like(
            "escape=json ${remote_addr} [$time_local] \"$request\" $status"
        ));
        assert!(!looks_like("combined"));
        assert!(!looks_like("%h %l %u %t \"%r\" %>s %O"));
        assert!(!looks_like("%h $1 %t"));
        assert!(!looks_like("cost in $ only"));
    }

    #[test]
    fn escape_parameter_and_bracketed_time() {
        let (tokens, escape) =
            tokenize("escape=json $remote_addr [$time_local] ${status}x").unwrap();
        assert_eq!(escape, Escape::Json);
        let fields: Vec<&Field> = tokens
            .iter()
            .filter_map(|t| match t {
                Token::Field { field, .. } => Some(field),
                Token::Literal(_) => None,
            })
            .collect();
        assert_eq!(
            fields,
            [&Field::RemoteAddr, &Field::Time, &Field::FinalStatus]
        );
        assert!(matches!(&tokens[1], Token::Literal(l) if l == b" "));
        assert!(matches!(tokens.last(), Some(Token::Literal(l)) if l == b"x"));
        assert!(tokenize("escape=yaml $remote_addr")
            .unwrap_err()
            .to_string()
            .contains("escape=yaml"));
        assert!(tokenize("$remote_addr ${status").is_err());
    }

    #[test]
    fn the_shipped_log_format_dlcount_is_the_nickname() {
        let conf = include_str!("../../scripts/nginx/dlcount.conf");
        let line = conf
            .lines()
            .find(|l| l.starts_with("log_format dlcount "))
            .expect("a log_format dlcount line");
        let quoted = line
            .strip_prefix("log_format dlcount '")
            .and_then(|l| l.strip_suffix("';"))
            .expect("one single-quoted string");
        assert_eq!(quoted, DLCOUNT);
        let (tokens, escape) = tokenize(DLCOUNT).unwrap();
        assert_eq!(escape, Escape::Default);
        assert!(tokens.iter().any(|t| matches!(
            t,
            Token::Field {
                field: Field::Msec,
                ..
            }
        )));
    }
}
