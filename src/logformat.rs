//! Apache `LogFormat` strings (and nginx `log_format` strings, tokenised by
//! [`nginx`] into the same fields) compiled once into a byte-level line parser.
//!
//! A format (a nickname such as `combined`, or any `LogFormat` string) becomes
//! a list of literal and field tokens. Parsing a line walks that list over the
//! raw bytes with `memchr`, never building a `String`, and stops as soon as
//! every field the counter needs has been read. Invariant: parsing never
//! panics and never allocates; any line that does not fit the format is a
//! [`Reject`] — data to count, not an error.

use memchr::memmem;

mod nginx;
pub use nginx::Escape;

/// The three nicknames Apache ships, as Debian defines them; nginx's
/// predefined `combined`; the `log_format dlcount` we recommend for nginx.
pub const NICKNAMES: &[(&str, &str)] = &[
    ("common", "%h %l %u %t \"%r\" %>s %O"),
    (
        "combined",
        "%h %l %u %t \"%r\" %>s %O \"%{Referer}i\" \"%{User-Agent}i\"",
    ),
    (
        "vhost_combined",
        "%v:%p %h %l %u %t \"%r\" %>s %O \"%{Referer}i\" \"%{User-Agent}i\"",
    ),
    ("nginx_combined", nginx::COMBINED),
    ("nginx_dlcount", nginx::DLCOUNT),
];

/// A format directive the parser understands. Fields we do not need are
/// still located (so later fields can be found) but not interpreted.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Field {
    RemoteHost,  // %h
    RemoteAddr,  // %a
    PeerAddr,    // %{c}a
    Time,        // %t
    RequestLine, // %r
    Method,      // %m
    UrlPath,     // %U
    Query,       // %q
    FinalStatus, // %>s
    FirstStatus, // %s, %<s
    /// nginx `$time_local` without brackets: `22/Nov/2026:02:35:41 +0100`, 26 bytes.
    TimeLocal,
    /// nginx `$time_iso8601`: `2026-11-22T02:35:41+01:00`, 25 bytes.
    TimeIso,
    /// nginx `$msec`: the request's end, seconds since the epoch with milliseconds.
    Msec,
    /// nginx `$request_time`: seconds (with milliseconds) the request took.
    RequestTime,
    /// nginx `$request_uri`: the target as the client sent it (percent-encoded, query included).
    RequestUri,
    BytesSent, // %O
    BytesClf,  // %b
    Bytes,     // %B
    Referer,   // %{Referer}i
    UserAgent, // %{User-Agent}i
    /// Any other known directive: located, never read.
    Opaque(String),
    /// `%{…}i`, `%{…}o`, `%u` and friends: free text that may contain spaces.
    FreeText(String),
}

#[derive(Debug, Clone)]
enum Token {
    Literal(Vec<u8>),
    Field { field: Field, quoted: bool },
}

/// Error compiling a format string (user input, so the message names the problem).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FormatError(pub String);

/// The largest byte count one line may log: 16 TiB, the largest file ext4
/// can hold (and far beyond any ISO image). A larger figure is forged or
/// corrupt; accepting it would let one line overflow the sums kept per file
/// and day (and SQLite's integers), so it is rejected with its reason.
pub const MAX_LINE_BYTES: u64 = 1 << 44;

/// Why a line could not be parsed. Each reason is counted separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reject {
    Empty,
    /// Text between fields did not match the format (field index in the format).
    Layout,
    UnterminatedQuote,
    BadTime,
    BadStatus,
    BadBytes,
    /// A byte count no real file can reach (over [`MAX_LINE_BYTES`]).
    AbsurdBytes,
    TooLong,
    /// A datagram without nginx's syslog header (`listen`).
    NotSyslog,
}

impl Reject {
    pub fn describe(self) -> &'static str {
        match self {
            Reject::Empty => "empty line",
            Reject::Layout => "line does not match the log format",
            Reject::UnterminatedQuote => "unterminated quoted field",
            Reject::BadTime => "unreadable %t timestamp",
            Reject::BadStatus => "unreadable status",
            Reject::BadBytes => "unreadable byte count",
            Reject::AbsurdBytes => "byte count beyond any real file (over 16 TiB)",
            Reject::TooLong => "line longer than the line limit",
            Reject::NotSyslog => "datagram without nginx's syslog header",
        }
    }
}

/// Where the request target comes from, which decides how to normalise it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetForm {
    /// From `%r`: as the client sent it (percent-encoded), log-escaped.
    RequestLine,
    /// From `%U`: Apache already decoded it; only log escapes remain.
    UrlPath,
}

/// Optional fields that take part in a counted line's identity (see
/// `keys`), as bits: a format (or a line) has some of them.
pub mod identity {
    /// The whole `%r` as logged: query string and protocol included.
    pub const REQUEST_LINE: u8 = 1;
    /// `%{Referer}i`.
    pub const REFERER: u8 = 2;
    /// `%{User-Agent}i`.
    pub const USER_AGENT: u8 = 4;
    pub const ALL: u8 = REQUEST_LINE | REFERER | USER_AGENT;
    /// The server whose log the line is from (`--server`): every source has
    /// one, so it is never missing; days counted before it existed lack the
    /// bit and keep hashing without it.
    pub const SERVER: u8 = 8;

    /// The directives behind `bits`, for messages: `%r, %{Referer}i`.
    pub fn describe(bits: u8) -> String {
        let names = [
            (REQUEST_LINE, "%r"),
            (REFERER, "%{Referer}i"),
            (USER_AGENT, "%{User-Agent}i"),
        ];
        let v: Vec<&str> = names
            .iter()
            .filter(|(b, _)| bits & b != 0)
            .map(|(_, n)| *n)
            .collect();
        if v.is_empty() {
            "none".to_string()
        } else {
            v.join(", ")
        }
    }
}

/// The fields of one parsed line the counter needs. Slices borrow the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    pub client: &'a [u8],
    /// `%t` without brackets: `22/Nov/2026:02:35:41 +0100`.
    pub time: &'a [u8],
    /// Calendar day written in `%t`, as days since 0001-01-01 (proleptic Gregorian, day 1).
    pub day: i32,
    pub method: &'a [u8],
    pub target: &'a [u8],
    pub target_form: TargetForm,
    /// Final status; 0 when the format logged `-`.
    pub status: u16,
    /// Bytes sent (`%O`, else `%b`/`%B`); 0 for `-` or when the format has none.
    pub bytes: u64,
    /// `%r` exactly as logged (empty when the format has `%m`/`%U` instead).
    pub request_line: &'a [u8],
    pub referer: &'a [u8],
    pub user_agent: &'a [u8],
    /// Which [`identity`] fields this line has: the format's, less any the
    /// line ends before (a `common` line read with `combined`).
    pub identity: u8,
    /// nginx `$msec` (the request's end) in milliseconds since the epoch.
    end_ms: Option<i64>,
    /// nginx `$request_time` in milliseconds.
    took_ms: Option<i64>,
    /// UTC offset written in the line's time (`+0100`, `+01:00`), in seconds.
    offset_secs: Option<i32>,
    /// (token, byte) where [`LogFormat::parse_identity`] goes on.
    resume: (usize, usize),
}

/// A compiled log format.
#[derive(Debug, Clone)]
pub struct LogFormat {
    source: String,
    tokens: Vec<Token>,
    /// Index of the last token we must read; parsing stops after it.
    last_needed: usize,
    /// Index of the last token counting cannot do without: a line may end
    /// after it (the identity fields behind it are then absent).
    last_essential: usize,
    /// Which [`identity`] fields the format has.
    identity: u8,
    client: Field,
    status: Field,
    bytes: Option<Field>,
    from_request_line: bool,
    /// Where the target comes from when there is no `%r`: `%U`/`$uri`, or `$request_uri`.
    target_field: Field,
    target_form: TargetForm,
    /// nginx: the format has `$msec` and `$request_time`, so the day is the
    /// one the request started on (as Apache's `%t`), not the one it ended.
    day_from_start: bool,
    /// nginx: neither `$time_local` nor `$time_iso8601`; `$msec` alone gives the day.
    day_from_msec: bool,
    /// How values are escaped (Apache's and nginx's default escaping agree).
    escape: Escape,
    /// Prebuilt substring searchers for multi-byte literals, by token index.
    finders: Vec<Option<memmem::Finder<'static>>>,
    /// For a field followed by a literal and `%t`: a searcher for that literal plus `[`.
    before_time: Vec<Option<memmem::Finder<'static>>>,
}

/// Cache of the last `dd/Mon/yyyy` seen: log lines arrive day after day.
#[derive(Debug, Default, Clone)]
pub struct DayCache {
    key: [u8; 11],
    day: i32,
}

impl LogFormat {
    /// Compiles a nickname (`common`, `combined`, `vhost_combined`) or a `LogFormat` string.
    pub fn compile(spec: &str) -> Result<LogFormat, FormatError> {
        let source = NICKNAMES
            .iter()
            .find(|(n, _)| *n == spec)
            .map(|(_, f)| f.to_string())
            .unwrap_or_else(|| spec.to_string());
        let (mut raw, escape) = if nginx::looks_like(&source) {
            nginx::tokenize(&source)?
        } else {
            (tokenize(&source)?, Escape::Default)
        };
        // `%U%q` (nginx: `$uri$is_args$args`) is the usual way to log path
        // and query: one target, the query is dropped by normalisation anyway.
        raw.dedup_by(|b, a| {
            matches!(
                (&*a, &*b),
                (
                    Token::Field {
                        field: Field::UrlPath | Field::RequestUri,
                        ..
                    },
                    Token::Field {
                        field: Field::Query,
                        ..
                    }
                )
            )
        });
        let mut tokens: Vec<Token> = Vec::with_capacity(raw.len());
        for (i, t) in raw.iter().enumerate() {
            match t {
                Token::Literal(_) => tokens.push(t.clone()),
                Token::Field { field, .. } => {
                    let before = i.checked_sub(1).and_then(|j| match &raw[j] {
                        Token::Literal(l) => l.last().copied(),
                        _ => None,
                    });
                    let after = match raw.get(i + 1) {
                        Some(Token::Literal(l)) => l.first().copied(),
                        _ => None,
                    };
                    let quoted = before == Some(b'"') && after == Some(b'"');
                    if i > 0 && matches!(raw[i - 1], Token::Field { .. }) {
                        return Err(FormatError(format!(
                            "log format {source:?}: two directives with nothing between them cannot be told apart"
                        )));
                    }
                    tokens.push(Token::Field {
                        field: field.clone(),
                        quoted,
                    });
                }
            }
        }
        let has = |f: &Field| {
            tokens
                .iter()
                .any(|t| matches!(t, Token::Field { field, .. } if field == f))
        };
        let client = [Field::RemoteAddr, Field::PeerAddr, Field::RemoteHost]
            .into_iter()
            .find(|f| has(f))
            .ok_or_else(|| {
                FormatError(format!(
                    "log format {source:?} has no client address (%a or %h)"
                ))
            })?;
        let has_clock = has(&Field::Time) || has(&Field::TimeLocal) || has(&Field::TimeIso);
        if !has_clock && !has(&Field::Msec) {
            return Err(FormatError(format!(
                "log format {source:?} has no %t (nginx: $time_local, $time_iso8601 or $msec): \
                 the day of a request cannot be told"
            )));
        }
        let day_from_start = has(&Field::Msec) && has(&Field::RequestTime);
        let day_from_msec = !has_clock;
        let from_request_line = has(&Field::RequestLine);
        let target_field = if has(&Field::UrlPath) {
            Field::UrlPath
        } else {
            Field::RequestUri
        };
        let has_path = from_request_line || (has(&Field::Method) && has(&target_field));
        if !has_path {
            return Err(FormatError(format!(
                "log format {source:?} needs %r, or %m and %U (nginx: $request, or \
                 $request_method and $uri or $request_uri), to know the requested file"
            )));
        }
        let target_form = if from_request_line || target_field == Field::RequestUri {
            TargetForm::RequestLine
        } else {
            TargetForm::UrlPath
        };
        let status = [Field::FinalStatus, Field::FirstStatus]
            .into_iter()
            .find(|f| has(f))
            .ok_or_else(|| FormatError(format!("log format {source:?} has no status (%>s)")))?;
        let bytes = [Field::BytesSent, Field::BytesClf, Field::Bytes]
            .into_iter()
            .find(|f| has(f));
        let essential = |f: &Field| {
            *f == client
                || matches!(
                    f,
                    Field::Time | Field::TimeLocal | Field::TimeIso | Field::Msec
                )
                || (day_from_start && *f == Field::RequestTime)
                || *f == status
                || Some(f) == bytes.as_ref()
                || (from_request_line && *f == Field::RequestLine)
                || (!from_request_line && (*f == Field::Method || *f == target_field))
        };
        let needed = |f: &Field| essential(f) || matches!(f, Field::Referer | Field::UserAgent);
        let last_position = |pred: &dyn Fn(&Field) -> bool| {
            tokens
                .iter()
                .rposition(|t| matches!(t, Token::Field { field, .. } if pred(field)))
                .unwrap_or(0)
        };
        let last_needed = last_position(&needed);
        let last_essential = last_position(&essential);
        let mut identity = 0;
        for (f, bit) in [
            (Field::RequestLine, identity::REQUEST_LINE),
            (Field::Referer, identity::REFERER),
            (Field::UserAgent, identity::USER_AGENT),
        ] {
            if has(&f) {
                identity |= bit;
            }
        }
        let finders = tokens
            .iter()
            .map(|t| match t {
                Token::Literal(l) if l.len() > 1 => Some(memmem::Finder::new(l).into_owned()),
                _ => None,
            })
            .collect();
        let before_time = (0..tokens.len())
            .map(|i| match (tokens.get(i + 1), tokens.get(i + 2)) {
                (
                    Some(Token::Literal(l)),
                    Some(Token::Field {
                        field: Field::Time, ..
                    }),
                ) => {
                    let mut pat = l.clone();
                    pat.push(b'[');
                    Some(memmem::Finder::new(&pat).into_owned())
                }
                _ => None,
            })
            .collect();
        Ok(LogFormat {
            before_time,
            finders,
            source,
            tokens,
            last_needed,
            last_essential,
            identity,
            client,
            status,
            bytes,
            from_request_line,
            target_field,
            target_form,
            day_from_start,
            day_from_msec,
            escape,
        })
    }

    /// The `LogFormat` string this was compiled from (nicknames expanded).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// How the format escapes values, which decides how a target is
    /// un-escaped ([`crate::classify::normalize_target`]).
    pub fn escape(&self) -> Escape {
        self.escape
    }

    /// Which [`identity`] fields the format logs.
    pub fn identity(&self) -> u8 {
        self.identity
    }

    /// Parses one line (without its newline).
    pub fn parse<'a>(&self, line: &'a [u8], days: &mut DayCache) -> Result<Record<'a>, Reject> {
        let line = trim_line_end(line);
        if line.is_empty() {
            return Err(Reject::Empty);
        }
        let mut rec = Record {
            client: b"",
            time: b"",
            day: 0,
            method: b"",
            target: b"",
            target_form: self.target_form,
            status: 0,
            bytes: 0,
            request_line: b"",
            referer: b"",
            user_agent: b"",
            identity: self.identity,
            end_ms: None,
            took_ms: None,
            offset_secs: None,
            resume: (0, 0),
        };
        rec.resume = self.walk(line, &mut rec, days, (0, 0), self.last_essential)?;
        if self.day_from_start || self.day_from_msec {
            self.day_from_clock(&mut rec)?;
        }
        Ok(rec)
    }

    /// nginx: the day from `$msec` (less `$request_time`: the day the request
    /// started, as Apache's `%t` tells it), in the line's own UTC offset, or
    /// in this machine's local time when the format writes no offset.
    fn day_from_clock(&self, rec: &mut Record<'_>) -> Result<(), Reject> {
        let end = rec.end_ms.ok_or(Reject::BadTime)?;
        let start_ms = if self.day_from_start {
            end.checked_sub(rec.took_ms.ok_or(Reject::BadTime)?)
                .ok_or(Reject::BadTime)?
        } else {
            end
        };
        let secs = start_ms.div_euclid(1000);
        let offset = match rec.offset_secs {
            Some(o) => i64::from(o),
            None => {
                use chrono::TimeZone;
                let utc = chrono::DateTime::from_timestamp(secs, 0).ok_or(Reject::BadTime)?;
                let local = chrono::Local.from_utc_datetime(&utc.naive_utc());
                i64::from(chrono::Offset::fix(local.offset()).local_minus_utc())
            }
        };
        let local_days = (secs + offset).div_euclid(86_400);
        rec.day = i32::try_from(local_days + UNIX_EPOCH_DAY)
            .ok()
            .filter(|d| *d > 0)
            .ok_or(Reject::BadTime)?;
        Ok(())
    }

    /// Reads the identity fields behind the fields counting needs (Referer,
    /// User-Agent): only a counted line needs them, so [`LogFormat::parse`]
    /// leaves them for this. A tail that does not fit the format leaves
    /// them absent — the line still counts, as it did before they were read.
    pub fn parse_identity<'a>(&self, line: &'a [u8], rec: &mut Record<'a>) {
        if rec.resume.0 > self.last_needed {
            return;
        }
        let line = trim_line_end(line);
        // No `%t` lies behind the essential fields: the cache is never asked.
        let mut no_days = DayCache::default();
        if self
            .walk(line, rec, &mut no_days, rec.resume, self.last_needed)
            .is_err()
        {
            let absent = self.trailing_identity(rec.resume.0);
            rec.identity &= !absent;
            if absent & identity::REFERER != 0 {
                rec.referer = b"";
            }
            if absent & identity::USER_AGENT != 0 {
                rec.user_agent = b"";
            }
        }
    }

    /// Identity bits of the fields from token `from` on.
    fn trailing_identity(&self, from: usize) -> u8 {
        self.tokens[from..]
            .iter()
            .map(|t| match t {
                Token::Field {
                    field: Field::Referer,
                    ..
                } => identity::REFERER,
                Token::Field {
                    field: Field::UserAgent,
                    ..
                } => identity::USER_AGENT,
                _ => 0,
            })
            .fold(0, |a, b| a | b)
    }

    /// Reads tokens from `(token, pos)` up to token `until` into `rec`;
    /// returns where it stopped.
    fn walk<'a>(
        &self,
        line: &'a [u8],
        rec: &mut Record<'a>,
        days: &mut DayCache,
        (from, mut pos): (usize, usize),
        until: usize,
    ) -> Result<(usize, usize), Reject> {
        for (i, tok) in self.tokens.iter().enumerate().skip(from) {
            if i > until {
                return Ok((i, pos));
            }
            if pos == line.len() && i > self.last_essential {
                // The line stops before its identity fields (a `common` line
                // read with `combined`): they are absent, not empty.
                rec.identity &= !self.trailing_identity(i);
                return Ok((self.tokens.len(), pos));
            }
            match tok {
                Token::Literal(lit) => {
                    if !line[pos..].starts_with(lit) {
                        return Err(Reject::Layout);
                    }
                    pos += lit.len();
                }
                Token::Field { field, quoted } => {
                    let end = self.field_end(line, pos, i, field, *quoted)?;
                    let value = &line[pos..end];
                    pos = end;
                    self.store_field(field, value, rec, days)?;
                }
            }
        }
        Ok((self.tokens.len(), pos))
    }

    /// Finds where the field starting at `pos` (token `i`) ends.
    fn field_end(
        &self,
        line: &[u8],
        pos: usize,
        i: usize,
        field: &Field,
        quoted: bool,
    ) -> Result<usize, Reject> {
        if *field == Field::Time {
            // `[dd/Mon/yyyy:HH:MM:SS +zzzz]` holds a space: find its bracket instead.
            if line.get(pos) != Some(&b'[') {
                return Err(Reject::BadTime);
            }
            return memchr::memchr(b']', &line[pos..])
                .map(|j| pos + j + 1)
                .ok_or(Reject::BadTime);
        }
        // nginx's times are fixed-width (and `$time_local` holds a space).
        let fixed = match field {
            Field::TimeLocal => Some(26),
            Field::TimeIso => Some(25),
            _ => None,
        };
        if let Some(n) = fixed {
            return if line.len() >= pos + n {
                Ok(pos + n)
            } else {
                Err(Reject::BadTime)
            };
        }
        if quoted && self.escape == Escape::None {
            // nginx's `escape=none` writes quotes inside values as they are:
            // the next quote is the best guess, and a backslash is no escape.
            return memchr::memchr(b'"', &line[pos..])
                .map(|j| pos + j)
                .ok_or(Reject::UnterminatedQuote);
        }
        if quoted {
            // Apache escapes `"` and `\` inside quoted fields, so the first
            // unescaped quote ends the field.
            let mut j = pos;
            loop {
                match memchr::memchr2(b'"', b'\\', &line[j..]) {
                    Some(k) if line[j + k] == b'\\' => j += k + 2,
                    Some(k) => return Ok(j + k),
                    None => return Err(Reject::UnterminatedQuote),
                }
                if j >= line.len() {
                    return Err(Reject::UnterminatedQuote);
                }
            }
        }
        let Some(Token::Literal(next)) = self.tokens.get(i + 1) else {
            return Ok(line.len());
        };
        let rest = &line[pos..];
        // `%u ` followed by `%t`: search for " [" so a user name with a space still parses.
        if let Some(before_time) = &self.before_time[i] {
            return before_time
                .find(rest)
                .map(|j| pos + j)
                .ok_or(Reject::Layout);
        }
        let free_text = matches!(
            field,
            Field::FreeText(_) | Field::RequestLine | Field::Referer | Field::UserAgent
        );
        if free_text {
            // Unquoted text may hold the separator itself: anchor from the right,
            // skipping as many separators as the rest of the format needs.
            let needed = self.separators_after(i + 1, next);
            let mut end = rest.len();
            for _ in 0..needed {
                end = memmem::rfind(&rest[..end], next).ok_or(Reject::Layout)?;
            }
            return Ok(pos + end);
        }
        let found = if next.len() == 1 {
            memchr::memchr(next[0], rest)
        } else {
            self.finders[i + 1].as_ref().and_then(|f| f.find(rest))
        };
        match found {
            Some(j) => Ok(pos + j),
            // The last field we need may end the line: a `common` line read
            // with `combined` (logs from before a LogFormat change) still counts.
            None if i >= self.last_essential => Ok(line.len()),
            None => Err(Reject::Layout),
        }
    }

    /// How many times `sep` occurs in the format from token `from` on (a `%t`
    /// holds one space), so an unquoted free-text field can be cut from the right.
    fn separators_after(&self, from: usize, sep: &[u8]) -> usize {
        self.tokens[from..]
            .iter()
            .map(|t| match t {
                Token::Literal(l) => memmem::find_iter(l, sep).count(),
                Token::Field {
                    field: Field::Time, ..
                } => memmem::find_iter(b"[01/Jan/2000:00:00:00 +0000]", sep).count(),
                Token::Field {
                    field: Field::TimeLocal,
                    ..
                } => memmem::find_iter(b"01/Jan/2000:00:00:00 +0000", sep).count(),
                _ => 0,
            })
            .sum()
    }

    fn store_field<'a>(
        &self,
        field: &Field,
        value: &'a [u8],
        rec: &mut Record<'a>,
        days: &mut DayCache,
    ) -> Result<(), Reject> {
        match field {
            f if *f == self.client => rec.client = value,
            Field::Time | Field::TimeLocal => {
                let inner = if *field == Field::Time {
                    &value[1..value.len() - 1]
                } else {
                    value
                };
                rec.day = parse_day(inner, days)?;
                if self.day_from_start {
                    let zone = inner.get(21..26).and_then(parse_offset);
                    rec.offset_secs = Some(zone.ok_or(Reject::BadTime)?);
                }
                rec.time = inner;
            }
            Field::TimeIso => {
                let (day, offset) = parse_iso_time(value).ok_or(Reject::BadTime)?;
                if rec.time.is_empty() {
                    rec.day = day;
                    rec.time = value;
                }
                rec.offset_secs.get_or_insert(offset);
            }
            Field::Msec => {
                rec.end_ms = Some(parse_millis(value).ok_or(Reject::BadTime)?);
                if rec.time.is_empty() {
                    rec.time = value;
                }
            }
            Field::RequestTime => {
                rec.took_ms = Some(parse_millis(value).ok_or(Reject::BadTime)?);
            }
            Field::RequestLine => {
                let (m, t) = split_request_line(value);
                rec.method = m;
                rec.target = t;
                rec.request_line = value;
            }
            Field::Referer => rec.referer = value,
            Field::UserAgent => rec.user_agent = value,
            Field::Method if !self.from_request_line => rec.method = value,
            f if !self.from_request_line && *f == self.target_field => rec.target = value,
            f if *f == self.status => {
                rec.status = if value == b"-" {
                    0
                } else {
                    parse_u64(value)
                        .filter(|&s| s < 1000)
                        .ok_or(Reject::BadStatus)? as u16
                }
            }
            f if Some(f) == self.bytes.as_ref() => {
                rec.bytes = if value == b"-" {
                    0
                } else {
                    let n = parse_u64(value).ok_or(Reject::BadBytes)?;
                    if n > MAX_LINE_BYTES {
                        return Err(Reject::AbsurdBytes);
                    }
                    n
                }
            }
            _ => {}
        }
        Ok(())
    }
}

fn trim_line_end(mut line: &[u8]) -> &[u8] {
    while let [rest @ .., b'\r' | b'\n'] = line {
        line = rest;
    }
    line
}

fn parse_u64(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 {
        return None;
    }
    let mut n: u64 = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u64::from(b - b'0');
    }
    Some(n)
}

/// Day number of 1970-01-01 on the scale of [`Record::day`].
const UNIX_EPOCH_DAY: i64 = 719_163;

/// `+0100` / `-0530` (or `+01:00`) → seconds east of UTC.
fn parse_offset(z: &[u8]) -> Option<i32> {
    let (sign, rest) = match z.split_first()? {
        (b'+', r) => (1, r),
        (b'-', r) => (-1, r),
        _ => return None,
    };
    let (hh, mm) = match rest {
        [h1, h2, b':', m1, m2] | [h1, h2, m1, m2] => ([*h1, *h2], [*m1, *m2]),
        _ => return None,
    };
    let h = parse_u64(&hh)? as i32;
    let m = parse_u64(&mm)? as i32;
    (h < 24 && m < 60).then_some(sign * (h * 3600 + m * 60))
}

/// `2026-11-22T02:35:41+01:00` → (day of the date as written, offset).
fn parse_iso_time(t: &[u8]) -> Option<(i32, i32)> {
    if t.len() != 25 || t[4] != b'-' || t[7] != b'-' || t[10] != b'T' || t[13] != b':' {
        return None;
    }
    let date = chrono::NaiveDate::from_ymd_opt(
        parse_u64(&t[0..4])? as i32,
        parse_u64(&t[5..7])? as u32,
        parse_u64(&t[8..10])? as u32,
    )?;
    let hms_ok = [11, 12, 14, 15, 17, 18]
        .iter()
        .all(|&i| t[i].is_ascii_digit());
    if !hms_ok || t[16] != b':' {
        return None;
    }
    Some((
        chrono::Datelike::num_days_from_ce(&date),
        parse_offset(&t[19..])?,
    ))
}

/// nginx's `1764752400.123` or `0.123` (seconds, milliseconds after the dot) → milliseconds.
fn parse_millis(v: &[u8]) -> Option<i64> {
    let (secs, frac) = match memchr::memchr(b'.', v) {
        Some(dot) => (&v[..dot], &v[dot + 1..]),
        None => (v, &b""[..]),
    };
    if frac.len() > 3 || secs.len() > 15 {
        return None;
    }
    let mut ms = i64::try_from(parse_u64(secs)?).ok()? * 1000;
    let mut scale = 100;
    for &c in frac {
        if !c.is_ascii_digit() {
            return None;
        }
        ms += i64::from(c - b'0') * scale;
        scale /= 10;
    }
    Some(ms)
}

/// Splits `%r` into method and target the way Apache's request-line parser
/// reads it: the method runs to the first whitespace, the target is the next
/// word after any further whitespace, and whatever follows (the protocol, or
/// junk some clients send) is not part of the target. So `GET  /h.iso HTTP/1.1`
/// asks for `/h.iso`, and `GET /a.iso  Result: x; HTTP/1.0` for `/a.iso`.
///
/// The line is still log-escaped: a tab the client sent is written `\t` (or
/// `\xhh`), and counts as whitespace just as Apache's `apr_isspace` saw it.
fn split_request_line(r: &[u8]) -> (&[u8], &[u8]) {
    let method_end = word_end(r, 0);
    let method = &r[..method_end];
    let start = skip_space(r, method_end);
    let end = word_end(r, start);
    (method, &r[start..end])
}

/// Length of the log-escaped whitespace at `i` (0 if none): a space, or one of
/// the escapes Apache writes for `\t \n \v \r \f`.
fn space_at(r: &[u8], i: usize) -> usize {
    match r.get(i..) {
        Some([b' ', ..]) => 1,
        Some([b'\\', b't' | b'n' | b'v' | b'r' | b'f', ..]) => 2,
        Some(
            [b'\\', b'x', b'0', b'9' | b'a' | b'b' | b'c' | b'd' | b'A' | b'B' | b'C' | b'D', ..],
        ) => 4,
        _ => 0,
    }
}

fn skip_space(r: &[u8], mut i: usize) -> usize {
    loop {
        match space_at(r, i) {
            0 => return i,
            n => i += n,
        }
    }
}

/// End of the word starting at `i`: the next log-escaped whitespace, or the end.
fn word_end(r: &[u8], mut i: usize) -> usize {
    // Jump between spaces and escapes; everything else is part of the word.
    while let Some(k) = memchr::memchr2(b' ', b'\\', &r[i.min(r.len())..]) {
        let at = i + k;
        if space_at(r, at) > 0 {
            return at;
        }
        // An escape (`\"`, `\\`, `\xhh`) is part of the word whatever it hides.
        i = at + 2;
    }
    r.len()
}

/// Parses the calendar date of `dd/Mon/yyyy:HH:MM:SS +zzzz` (the date as
/// written, i.e. server local time; the offset is not applied).
fn parse_day(t: &[u8], cache: &mut DayCache) -> Result<i32, Reject> {
    // dd/Mon/yyyy:HH:MM:SS +zzzz  = 26 bytes
    if t.len() < 26
        || t[2] != b'/'
        || t[6] != b'/'
        || t[11] != b':'
        || t[14] != b':'
        || t[17] != b':'
        || t[20] != b' '
    {
        return Err(Reject::BadTime);
    }
    let hms_ok = [12, 13, 15, 16, 18, 19]
        .iter()
        .all(|&i| t[i].is_ascii_digit());
    if !hms_ok {
        return Err(Reject::BadTime);
    }
    if t[..11] == cache.key && cache.day != 0 {
        return Ok(cache.day);
    }
    let dd = parse_u64(&t[0..2]).ok_or(Reject::BadTime)? as u32;
    let yyyy = parse_u64(&t[7..11]).ok_or(Reject::BadTime)? as i32;
    let month = match &t[3..6] {
        b"Jan" => 1,
        b"Feb" => 2,
        b"Mar" => 3,
        b"Apr" => 4,
        b"May" => 5,
        b"Jun" => 6,
        b"Jul" => 7,
        b"Aug" => 8,
        b"Sep" => 9,
        b"Oct" => 10,
        b"Nov" => 11,
        b"Dec" => 12,
        _ => return Err(Reject::BadTime),
    };
    let date = chrono::NaiveDate::from_ymd_opt(yyyy, month, dd).ok_or(Reject::BadTime)?;
    let day = chrono::Datelike::num_days_from_ce(&date);
    cache.key.copy_from_slice(&t[..11]);
    cache.day = day;
    Ok(day)
}

/// Splits a format string into literal and directive tokens.
fn tokenize(fmt: &str) -> Result<Vec<Token>, FormatError> {
    let b = fmt.as_bytes();
    let mut tokens: Vec<Token> = Vec::new();
    let mut lit: Vec<u8> = Vec::new();
    let mut i = 0;
    let err = |msg: String| FormatError(format!("log format {fmt:?}: {msg}"));
    while i < b.len() {
        let c = b[i];
        if c == b'\\' && i + 1 < b.len() {
            // Apache's config parser turns these C escapes into the real bytes.
            lit.push(match b[i + 1] {
                b'n' => b'\n',
                b't' => b'\t',
                b'"' => b'"',
                b'\\' => b'\\',
                other => other,
            });
            i += 2;
            continue;
        }
        if c != b'%' {
            lit.push(c);
            i += 1;
            continue;
        }
        i += 1;
        if b.get(i) == Some(&b'%') {
            lit.push(b'%');
            i += 1;
            continue;
        }
        // Modifiers: status conditions (`!200,304`) and `<`/`>` (original/final).
        // `<` (the original request's status) is Apache's default for `%s`.
        let mut final_status = false;
        while let Some(&m) = b.get(i) {
            match m {
                b'!' | b',' | b'0'..=b'9' | b'<' => {}
                b'>' => final_status = true,
                _ => break,
            }
            i += 1;
        }
        let mut arg: Option<String> = None;
        if b.get(i) == Some(&b'{') {
            let close = b[i..]
                .iter()
                .position(|&x| x == b'}')
                .ok_or_else(|| err("unterminated %{…}".into()))?;
            arg = Some(fmt[i + 1..i + close].to_string());
            i += close + 1;
        }
        let Some(&d) = b.get(i) else {
            return Err(err("format ends in the middle of a directive".into()));
        };
        i += 1;
        // `%^ti` / `%^to`: trailer fields (two more letters).
        let name = if d == b'^' {
            let two = fmt
                .get(i..i + 2)
                .ok_or_else(|| err("incomplete %^ directive".into()))?;
            i += 2;
            format!("^{two}")
        } else {
            (d as char).to_string()
        };
        let field = match (name.as_str(), arg.as_deref()) {
            ("h", _) => Field::RemoteHost,
            ("a", Some("c")) => Field::PeerAddr,
            ("a", _) => Field::RemoteAddr,
            ("t", None) => Field::Time,
            ("t", Some(_)) => {
                return Err(err(
                    "%{…}t custom time formats are not supported; use plain %t".into(),
                ))
            }
            ("r", _) => Field::RequestLine,
            ("m", _) => Field::Method,
            ("U", _) => Field::UrlPath,
            ("q", _) => Field::Query,
            ("s", _) if final_status => Field::FinalStatus,
            ("s", _) => Field::FirstStatus,
            ("O", _) => Field::BytesSent,
            ("b", _) => Field::BytesClf,
            ("B", _) => Field::Bytes,
            ("i", Some(h)) if h.eq_ignore_ascii_case("Referer") => Field::Referer,
            ("i", Some(h)) if h.eq_ignore_ascii_case("User-Agent") => Field::UserAgent,
            ("u" | "i" | "o" | "e" | "n" | "C" | "^ti" | "^to", _) => Field::FreeText(format!(
                "%{}{name}",
                arg.map(|a| format!("{{{a}}}")).unwrap_or_default()
            )),
            (
                "A" | "D" | "f" | "H" | "I" | "k" | "l" | "L" | "p" | "P" | "R" | "S" | "T" | "v"
                | "V" | "X" | "M",
                _,
            ) => Field::Opaque(format!("%{name}")),
            _ => return Err(err(format!("unknown format directive %{name}"))),
        };
        if !lit.is_empty() {
            tokens.push(Token::Literal(std::mem::take(&mut lit)));
        }
        tokens.push(Token::Field {
            field,
            quoted: false,
        });
    }
    if !lit.is_empty() {
        tokens.push(Token::Literal(lit));
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse<'a>(fmt: &LogFormat, line: &'a [u8]) -> Result<Record<'a>, Reject> {
        fmt.parse(line, &mut DayCache::default())
    }

    fn day(y: i32, m: u32, d: u32) -> i32 {
        chrono::Datelike::num_days_from_ce(&chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap())
    }

    const COMBINED_LINE: &[u8] = br#"203.0.113.7 - - [22/Nov/2026:02:35:41 +0100] "GET /isos/a.iso HTTP/1.1" 206 1048576 "https://example.org/" "Wget/1.21.3""#;

    #[test]
    fn nginx_combined_nickname_reads_like_apache_combined() {
        let f = LogFormat::compile("nginx_combined").unwrap();
        let line = br#"203.0.113.7 - - [22/Nov/2026:02:35:41 +0100] "GET /isos/a.iso HTTP/1.1" 206 1048576 "https://example.org/" "Wget/1.21.3""#;
        let mut r = parse(&f, line).unwrap();
        f.parse_identity(line, &mut r);
        assert_eq!(r.client, b"203.0.113.7");
        assert_eq!(r.time, b"22/Nov/2026:02:35:41 +0100");
        assert_eq!(r.day, day(2026, 11, 22));
        assert_eq!((r.method, r.target), (&b"GET"[..], &b"/isos/a.iso"[..]));
        assert_eq!((r.status, r.bytes), (206, 1048576));
        assert_eq!(r.referer, b"https://example.org/");
        assert_eq!(r.user_agent, b"Wget/1.21.3");
        assert_eq!(f.identity(), identity::ALL);
    }

    /// `$time_local` is the request's end; with `$msec` and `$request_time`
    /// the day is the one it started on, in the line's own offset.
    #[test]
    fn nginx_day_is_the_start_day_with_msec_and_request_time() {
        let f = LogFormat::compile(
            "$remote_addr [$time_local] \"$request\" $status $bytes_sent $msec $request_time",
        )
        .unwrap();
        // Ended 00:10:00 on 1 Dec (+0100) after 20 minutes: started 23:50 on 30 Nov.
        let long = b"198.51.100.4 [01/Dec/2026:00:10:00 +0100] \"GET /isos/a.iso HTTP/1.1\" 200 5000 1796080200.000 1200.000";
        assert_eq!(parse(&f, long).unwrap().day, day(2026, 11, 30));
        // Ended 00:00:30 after 30.001 s: started 23:59:59.999 — still 30 Nov.
        let edge = b"198.51.100.4 [01/Dec/2026:00:00:30 +0100] \"GET /isos/a.iso HTTP/1.1\" 200 5000 1796079630.000 30.001";
        assert_eq!(parse(&f, edge).unwrap().day, day(2026, 11, 30));
        // After exactly 30 s it started at midnight: 1 Dec.
        let midnight = b"198.51.100.4 [01/Dec/2026:00:00:30 +0100] \"GET /isos/a.iso HTTP/1.1\" 200 5000 1796079630.000 30.000";
        assert_eq!(parse(&f, midnight).unwrap().day, day(2026, 12, 1));
        // Without $msec/$request_time the day is the one written: the end.
        let plain = LogFormat::compile("$remote_addr [$time_local] \"$request\" $status").unwrap();
        assert_eq!(
            parse(
                &plain,
                b"198.51.100.4 [01/Dec/2026:00:10:00 +0100] \"GET /a.iso HTTP/1.1\" 200"
            )
            .unwrap()
            .day,
            day(2026, 12, 1)
        );
        let bad = b"198.51.100.4 [01/Dec/2026:00:10:00 +0100] \"GET /isos/a.iso HTTP/1.1\" 200 5000 17960x0200.000 1.0";
        assert_eq!(parse(&f, bad), Err(Reject::BadTime));
    }

    #[test]
    fn nginx_iso_time_method_uri_args_and_json_escapes() {
        let f = LogFormat::compile(
            "escape=json $remote_addr $time_iso8601 $request_method $uri$is_args$args $status $body_bytes_sent \"$http_user_agent\" $request_time",
        )
        .unwrap();
        let line = br#"2001:db8::9 2026-11-22T23:59:58-05:00 GET /isos/a\u0009b.iso?x=1 200 77 "Mozilla/5.0 \"quoted\"" 0.004"#;
        let mut r = parse(&f, line).unwrap();
        f.parse_identity(line, &mut r);
        assert_eq!(r.client, b"2001:db8::9");
        assert_eq!(r.day, day(2026, 11, 22));
        assert_eq!(r.time, b"2026-11-22T23:59:58-05:00");
        assert_eq!(r.target_form, TargetForm::UrlPath);
        assert_eq!(r.target, br"/isos/a\u0009b.iso?x=1");
        assert_eq!((r.status, r.bytes), (200, 77));
        assert_eq!(r.user_agent, br#"Mozilla/5.0 \"quoted\""#);
        // $request_uri is the raw target: percent-decoded like %r's.
        let f =
            LogFormat::compile("$remote_addr [$time_local] $request_method $request_uri $status")
                .unwrap();
        let r = parse(
            &f,
            b"192.0.2.1 [22/Nov/2026:10:00:00 +0000] GET /isos/%61.iso?x 200",
        )
        .unwrap();
        assert_eq!(
            (r.target, r.target_form),
            (&b"/isos/%61.iso?x"[..], TargetForm::RequestLine)
        );
        assert!(LogFormat::compile("$remote_addr $status")
            .unwrap_err()
            .to_string()
            .contains("$time_local"));
    }

    #[test]
    fn combined_nickname() {
        let f = LogFormat::compile("combined").unwrap();
        let r = parse(&f, COMBINED_LINE).unwrap();
        assert_eq!(r.client, b"203.0.113.7");
        assert_eq!(r.time, b"22/Nov/2026:02:35:41 +0100");
        assert_eq!(r.day, day(2026, 11, 22));
        assert_eq!(r.method, b"GET");
        assert_eq!(r.target, b"/isos/a.iso");
        assert_eq!(r.status, 206);
        assert_eq!(r.bytes, 1048576);
    }

    #[test]
    fn common_line_read_as_combined() {
        let f = LogFormat::compile("combined").unwrap();
        let r = parse(
            &f,
            br#"1.2.3.4 - - [22/Nov/2026:02:35:41 +0100] "GET /a.iso HTTP/1.1" 200 12"#,
        )
        .unwrap();
        assert_eq!((r.status, r.bytes), (200, 12));
    }

    #[test]
    fn common_nickname_with_dash_bytes_and_crlf() {
        let f = LogFormat::compile("common").unwrap();
        let r = parse(
            &f,
            b"::1 - - [01/Jan/2026:00:00:00 -0500] \"HEAD /x.iso HTTP/1.0\" 200 -\r\n",
        )
        .unwrap();
        assert_eq!(r.client, b"::1");
        assert_eq!(r.method, b"HEAD");
        assert_eq!(r.bytes, 0);
        assert_eq!(r.day, day(2026, 1, 1));
    }

    #[test]
    fn vhost_combined_nickname_and_ipv6() {
        let f = LogFormat::compile("vhost_combined").unwrap();
        let line = br#"downloads.example.org:443 2001:db8::1 - - [31/Oct/2026:23:59:59 +0100] "GET /b.iso HTTP/2.0" 200 3000000000 "-" "curl/8.5.0""#;
        let r = parse(&f, line).unwrap();
        assert_eq!(r.client, b"2001:db8::1");
        assert_eq!(r.day, day(2026, 10, 31));
        assert_eq!(r.bytes, 3_000_000_000);
    }

    #[test]
    fn urlpath_followed_by_query_is_one_target() {
        let f = LogFormat::compile(r#"%a %t "%m %U%q %H" %>s %O"#).unwrap();
        let line = br#"192.0.2.9 [05/Mar/2025:10:00:00 +0000] "GET /a.iso?x=1 HTTP/1.1" 200 512"#;
        let r = parse(&f, line).unwrap();
        assert_eq!(r.target, b"/a.iso?x=1");
        assert_eq!(r.target_form, TargetForm::UrlPath);
    }

    #[test]
    fn adjacent_directives_are_refused() {
        let e = LogFormat::compile("%h %t %m%U %>s").unwrap_err();
        assert!(e.0.contains("nothing between them"), "{e}");
    }

    #[test]
    fn custom_format_free_text_and_urlpath() {
        let f = LogFormat::compile(r#"%a %{X-Forwarded-For}i %t %m %U %H %>s %B "%{User-Agent}i""#)
            .unwrap();
        let line = br#"192.0.2.9 10.0.0.1, 10.0.0.2 [05/Mar/2025:10:00:00 +0000] GET /a\x20b.iso HTTP/1.1 200 512 "UA \"q\"""#;
        let r = parse(&f, line).unwrap();
        assert_eq!(r.client, b"192.0.2.9");
        assert_eq!(r.method, b"GET");
        assert_eq!(r.target, br"/a\x20b.iso");
        assert_eq!(r.target_form, TargetForm::UrlPath);
        assert_eq!(r.status, 200);
        assert_eq!(r.bytes, 512);
    }

    #[test]
    fn unknown_directive_is_named() {
        let e = LogFormat::compile("%h %t \"%r\" %>s %Z").unwrap_err();
        assert!(e.0.contains("unknown format directive %Z"), "{e}");
        let e = LogFormat::compile("%h \"%r\" %>s").unwrap_err();
        assert!(e.0.contains("no %t"), "{e}");
    }

    #[test]
    fn escapes_inside_quoted_fields() {
        let f = LogFormat::compile("combined").unwrap();
        let line = br#"198.51.100.1 - - [22/Nov/2026:02:35:41 +0100] "GET /we\"ird\\name.iso HTTP/1.1" 200 10 "-" "x\"y""#;
        let r = parse(&f, line).unwrap();
        assert_eq!(r.target, br#"/we\"ird\\name.iso"#);
    }

    #[test]
    fn odd_request_lines() {
        let f = LogFormat::compile("combined").unwrap();
        let mk = |r: &str| {
            format!(r#"198.51.100.1 - - [22/Nov/2026:02:35:41 +0100] "{r}" 400 0 "-" "-""#)
        };
        let l = mk("-");
        let r = parse(&f, l.as_bytes()).unwrap();
        assert_eq!((r.method, r.target), (&b"-"[..], &b""[..]));
        let l = mk("GET /x.iso");
        let r = parse(&f, l.as_bytes()).unwrap();
        assert_eq!((r.method, r.target), (&b"GET"[..], &b"/x.iso"[..]));
        // Apache's parser: the target is the first word after the method.
        let l = mk("GET /a b c.iso HTTP/1.1");
        let r = parse(&f, l.as_bytes()).unwrap();
        assert_eq!(r.target, b"/a");
        let l = mk("GET  /h.iso HTTP/1.1");
        let r = parse(&f, l.as_bytes()).unwrap();
        assert_eq!((r.method, r.target), (&b"GET"[..], &b"/h.iso"[..]));
        let l = mk("GET /a.iso  Result: x; HTTP/1.0");
        let r = parse(&f, l.as_bytes()).unwrap();
        assert_eq!(r.target, b"/a.iso");
        // Escaped whitespace separates words too; escaped quotes do not.
        let l = mk(r"GET\t/t.iso\x0bHTTP/1.1");
        let r = parse(&f, l.as_bytes()).unwrap();
        assert_eq!((r.method, r.target), (&b"GET"[..], &b"/t.iso"[..]));
        let l = mk(r#"GET /q\"x\\t.iso HTTP/1.1"#);
        let r = parse(&f, l.as_bytes()).unwrap();
        assert_eq!(r.target, br#"/q\"x\\t.iso"#);
        let l = mk("GET ");
        let r = parse(&f, l.as_bytes()).unwrap();
        assert_eq!((r.method, r.target), (&b"GET"[..], &b""[..]));
        let l = mk(r"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03");
        let r = parse(&f, l.as_bytes()).unwrap();
        assert_eq!(r.method, br"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03");
        assert_eq!(r.status, 400);
    }

    #[test]
    fn long_lines_and_invalid_utf8() {
        let f = LogFormat::compile("combined").unwrap();
        let ua = "A".repeat(100 * 1024);
        let line = format!(
            r#"198.51.100.1 - - [22/Nov/2026:02:35:41 +0100] "GET /x.iso HTTP/1.1" 200 5 "-" "{ua}""#
        );
        let r = parse(&f, line.as_bytes()).unwrap();
        assert_eq!(r.bytes, 5);
        let mut bad = b"198.51.100.1 - - [22/Nov/2026:02:35:41 +0100] \"GET /\xff\xfe.iso HTTP/1.1\" 200 5 \"-\" \"\xc3\x28\"".to_vec();
        let r = parse(&f, &bad).unwrap();
        assert_eq!(r.target, b"/\xff\xfe.iso");
        bad.truncate(30);
        assert_eq!(parse(&f, &bad), Err(Reject::BadTime));
    }

    #[test]
    fn rejects_are_reasons_not_panics() {
        let f = LogFormat::compile("combined").unwrap();
        assert_eq!(parse(&f, b""), Err(Reject::Empty));
        assert_eq!(parse(&f, b"garbage"), Err(Reject::Layout));
        assert_eq!(
            parse(
                &f,
                b"1.2.3.4 - - [99/Nov/2026:02:35:41 +0100] \"GET / HTTP/1.1\" 200 1"
            ),
            Err(Reject::BadTime)
        );
        assert_eq!(
            parse(
                &f,
                b"1.2.3.4 - - [22/Nov/2026:02:35:41 +0100] \"GET / HTTP/1.1\" 2x0 1 \"-\" \"-\""
            ),
            Err(Reject::BadStatus)
        );
        assert_eq!(
            parse(
                &f,
                b"1.2.3.4 - - [22/Nov/2026:02:35:41 +0100] \"GET / HTTP/1.1\" 200 1x \"-\" \"-\""
            ),
            Err(Reject::BadBytes)
        );
        // 16 TiB is the most a line may log; one byte more (or 2^63, which
        // would turn negative in SQLite) is rejected with its own reason.
        let with_bytes = |n: &str| {
            format!("1.2.3.4 - - [22/Nov/2026:02:35:41 +0100] \"GET /a.iso HTTP/1.1\" 200 {n} \"-\" \"-\"")
        };
        assert_eq!(
            parse(&f, with_bytes("17592186044416").as_bytes()).map(|r| r.bytes),
            Ok(MAX_LINE_BYTES)
        );
        for absurd in [
            "17592186044417",
            "9223372036854775808",
            "9999999999999999999",
        ] {
            assert_eq!(
                parse(&f, with_bytes(absurd).as_bytes()).map(|r| r.bytes),
                Err(Reject::AbsurdBytes),
                "{absurd}"
            );
        }
        assert_eq!(
            parse(
                &f,
                b"1.2.3.4 - - [22/Nov/2026:02:35:41 +0100] \"GET / HTTP/1.1"
            ),
            Err(Reject::UnterminatedQuote)
        );
        // Every prefix of a valid line is handled without panicking.
        for n in 0..COMBINED_LINE.len() {
            let _ = parse(&f, &COMBINED_LINE[..n]);
        }
    }

    #[test]
    fn user_name_with_space_still_parses() {
        let f = LogFormat::compile("combined").unwrap();
        let line = br#"203.0.113.7 - John Smith [22/Nov/2026:02:35:41 +0100] "GET /a.iso HTTP/1.1" 200 7 "-" "-""#;
        assert_eq!(parse(&f, line).unwrap().bytes, 7);
    }

    #[test]
    fn unquoted_request_line_is_cut_from_the_right() {
        let f = LogFormat::compile("%h %l %u %t %r %>s %b").unwrap();
        let line = b"203.0.113.7 - - [22/Nov/2026:02:35:41 +0100] GET /a.iso x HTTP/1.1 200 7";
        let r = parse(&f, line).unwrap();
        assert_eq!(r.target, b"/a.iso");
        assert_eq!((r.status, r.bytes), (200, 7));
    }

    #[test]
    fn identity_fields_are_read_after_the_essential_ones_and_absent_when_missing() {
        let f = LogFormat::compile("combined").unwrap();
        assert_eq!(f.identity(), identity::ALL);
        let mut r = parse(&f, COMBINED_LINE).unwrap();
        assert_eq!((r.referer, r.user_agent), (&b""[..], &b""[..]));
        f.parse_identity(COMBINED_LINE, &mut r);
        assert_eq!(r.request_line, b"GET /isos/a.iso HTTP/1.1");
        assert_eq!(r.referer, b"https://example.org/");
        assert_eq!(r.user_agent, b"Wget/1.21.3");
        assert_eq!(r.identity, identity::ALL);
        // A `common` line read as `combined`: Referer and User-Agent absent.
        let common = br#"1.2.3.4 - - [22/Nov/2026:02:35:41 +0100] "GET /a.iso HTTP/1.1" 200 12"#;
        let mut r = parse(&f, common).unwrap();
        f.parse_identity(common, &mut r);
        assert_eq!(r.identity, identity::REQUEST_LINE);
        // A damaged tail still counts; its fields are absent, not half-read.
        let damaged =
            br#"1.2.3.4 - - [22/Nov/2026:02:35:41 +0100] "GET /a.iso HTTP/1.1" 200 12 "http://x"#;
        let mut r = parse(&f, damaged).unwrap();
        f.parse_identity(damaged, &mut r);
        assert_eq!((r.identity, r.referer), (identity::REQUEST_LINE, &b""[..]));
        // Formats say which identity fields they log.
        let upstream_common = LogFormat::compile("%h %l %u %t \"%r\" %>s %b").unwrap();
        assert_eq!(upstream_common.identity(), identity::REQUEST_LINE);
        let mu = LogFormat::compile("%h %t %m %U %>s \"%{user-agent}i\"").unwrap();
        assert_eq!(mu.identity(), identity::USER_AGENT);
        assert_eq!(
            identity::describe(identity::ALL),
            "%r, %{Referer}i, %{User-Agent}i"
        );
    }
}
