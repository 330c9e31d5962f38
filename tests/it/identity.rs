//! Line identity on real-log shapes: which fields make two lines the same
//! request, across rotation boundaries and across log formats that differ
//! between the pipe and the file log (`%O` vs `%b`, `combined` vs `common`).

use super::Site;
use serde_json::{json, Value};
use std::path::PathBuf;

const UPSTREAM_COMBINED: &str = "%h %l %u %t \"%r\" %>s %b \"%{Referer}i\" \"%{User-Agent}i\"";

fn write(site: &Site, name: &str, text: &str) -> PathBuf {
    let p = site.dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn month(downloads: u64, requests: u64, bytes: u64) -> Value {
    json!({"downloads": downloads, "requests": requests, "bytes": bytes})
}

/// One client, one second, one file, same status and bytes; only the
/// Referer differs (a browser's download then a download manager's retry).
const FROM_PAGE: &str = "203.0.113.5 - - [20/Nov/2026:10:00:00 +0100] \"GET /isos/a.iso HTTP/1.1\" 200 1000 \"https://example.org/downloads/\" \"Mozilla/5.0\"\n";
const NO_REFERER: &str = "203.0.113.5 - - [20/Nov/2026:10:00:00 +0100] \"GET /isos/a.iso HTTP/1.1\" 200 1000 \"-\" \"Mozilla/5.0\"\n";

#[test]
fn lines_differing_only_in_referer_split_by_rotation_are_two_requests() {
    let expected = json!({"/isos/a.iso": {"2026-11": month(1, 2, 2000)}});
    let site = Site::new();
    let older = write(&site, "access.log.1", FROM_PAGE);
    let newer = write(&site, "access.log", NO_REFERER);
    assert_eq!(site.import(&[&older, &newer]).0, 0);
    assert_eq!(site.report(), expected);
    // Again, in the other order, and a renamed copy of a rotated file.
    let renamed = write(&site, "access.log.2", FROM_PAGE);
    assert_eq!(site.import(&[&newer, &older, &renamed]).0, 0);
    assert_eq!(site.report(), expected);

    // Pipe first, then the rotated files; and the files first, then the pipe.
    let both = format!("{FROM_PAGE}{NO_REFERER}");
    let live_first = Site::new();
    assert_eq!(live_first.pipe_all(both.as_bytes(), &[]).0, 0);
    assert_eq!(live_first.report(), expected);
    let (o, n) = (
        write(&live_first, "access.log.1", FROM_PAGE),
        write(&live_first, "access.log", NO_REFERER),
    );
    assert_eq!(live_first.import(&[&o, &n]).0, 0);
    assert_eq!(live_first.report(), expected);
    let files_first = Site::new();
    let (o, n) = (
        write(&files_first, "access.log.1", FROM_PAGE),
        write(&files_first, "access.log", NO_REFERER),
    );
    assert_eq!(files_first.import(&[&o, &n]).0, 0);
    assert_eq!(files_first.pipe_all(both.as_bytes(), &[]).0, 0);
    assert_eq!(files_first.report(), expected);

    // User-Agent and the raw request line (query, protocol) tell requests apart too.
    let site = Site::new();
    let ua = write(
        &site,
        "a.log",
        &FROM_PAGE.replace("Mozilla/5.0", "Wget/1.21.3"),
    );
    let query = write(
        &site,
        "b.log",
        &FROM_PAGE.replace("a.iso HTTP", "a.iso?mirror=2 HTTP"),
    );
    let first = write(&site, "c.log", FROM_PAGE);
    assert_eq!(site.import(&[&first, &ua, &query]).0, 0);
    assert_eq!(
        site.report(),
        json!({"/isos/a.iso": {"2026-11": month(1, 3, 3000)}})
    );
}

/// The same four requests as the pipe's `%O` format and as upstream Apache's
/// `combined` (`%b`: body bytes only, `-` for none) writes them.
fn traffic(bytes_field: &dyn Fn(u64) -> String) -> String {
    let mut s = String::new();
    for (ip, sec, method, status, body) in [
        ("198.51.100.1", 1, "GET", 200, 3_000_000_000u64),
        ("198.51.100.2", 2, "GET", 206, 1_048_576),
        ("198.51.100.2", 9, "GET", 206, 1_048_576),
        ("198.51.100.3", 4, "HEAD", 200, 0),
    ] {
        s.push_str(&format!(
            "{ip} - - [21/Nov/2026:11:00:{sec:02} +0100] \"{method} /isos/b.iso HTTP/1.1\" {status} {} \"-\" \"aria2/1.37.0\"\n",
            bytes_field(body)
        ));
    }
    s
}

#[test]
fn a_percent_b_access_log_matches_what_the_percent_o_pipe_counted() {
    let sent = |body: u64| (body + 300).to_string(); // %O: headers too
    let clf = |body: u64| {
        if body == 0 {
            "-".to_string()
        } else {
            body.to_string()
        }
    };
    let pipe_bytes = 3_000_000_300 + 2 * 1_048_876 + 300;
    let expected = json!({"/isos/b.iso": {"2026-11": month(3, 4, pipe_bytes)}});

    let site = Site::new();
    assert_eq!(site.pipe_all(traffic(&sent).as_bytes(), &[]).0, 0);
    assert_eq!(site.report(), expected);
    let access_log = write(&site, "access.log", &traffic(&clf));
    // With the format it was written in, and with the pipe's own (the numbers differ only).
    let (code, err) = site.import_with(&[&access_log], &["--format", UPSTREAM_COMBINED]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("counted lines: 0 new, 4 already counted before"),
        "{err}"
    );
    assert_eq!(site.report(), expected);
    assert_eq!(site.import(&[&access_log]).0, 0);
    assert_eq!(site.report(), expected);

    // Recovery: the file first (the pipe was down), then the pipe's own lines
    // arrive after all: still four requests, and the pipe's bytes win.
    let site = Site::new();
    let access_log = write(&site, "access.log", &traffic(&clf));
    assert_eq!(
        site.import_with(&[&access_log], &["--format", UPSTREAM_COMBINED])
            .0,
        0
    );
    assert_eq!(
        site.report(),
        json!({"/isos/b.iso": {"2026-11": month(3, 4, 3_000_000_000 + 2 * 1_048_576)}})
    );
    assert_eq!(site.pipe_all(traffic(&sent).as_bytes(), &[]).0, 0);
    assert_eq!(site.report(), expected);
}

#[test]
fn a_log_without_the_fields_that_identify_the_days_lines_is_refused_by_name() {
    let site = Site::new();
    let combined = traffic(&|b| (b + 300).to_string());
    assert_eq!(site.pipe_all(combined.as_bytes(), &[]).0, 0);
    let counted = site.report();
    // The same requests as a `common` log (no Referer, no User-Agent), plus
    // one on a day nothing has counted yet.
    let mut common: String = combined
        .lines()
        .map(|l| format!("{}\n", l.split(" \"-\" ").next().unwrap()))
        .collect();
    common.push_str(
        "198.51.100.9 - - [25/Nov/2026:08:00:00 +0100] \"GET /isos/b.iso HTTP/1.1\" 200 700\n",
    );
    let file = write(&site, "old-common.log", &common);
    for extra in [&["--format", "common"][..], &[][..]] {
        let (code, err) = site.import_with(&[&file], extra);
        assert_eq!(code, 1, "{extra:?}: {err}");
        assert!(
            err.contains("4 counted line(s) left out")
                && err.contains("%{Referer}i, %{User-Agent}i")
                && err.contains("old-common.log"),
            "{extra:?}: {err}"
        );
        let mut expected = counted.clone();
        expected["/isos/b.iso"]["2026-11"] = month(4, 5, 3_000_000_300 + 2 * 1_048_876 + 300 + 700);
        assert_eq!(site.report(), expected, "{extra:?}");
    }
}

#[test]
fn one_short_line_in_the_pipe_does_not_weaken_the_days_identity() {
    // The day's first live line ends after the byte count (a `common`-shaped
    // line in a `combined` log): the day is still identified with Referer and
    // User-Agent, so the rotation-split pair below stays two requests.
    let short =
        "192.0.2.9 - - [20/Nov/2026:09:00:00 +0100] \"GET /isos/a.iso HTTP/1.1\" 200 1000\n";
    let site = Site::new();
    assert_eq!(
        site.pipe_all(format!("{short}{FROM_PAGE}").as_bytes(), &[])
            .0,
        0
    );
    let (o, n) = (
        write(&site, "access.log.1", FROM_PAGE),
        write(&site, "access.log", NO_REFERER),
    );
    assert_eq!(site.import(&[&o, &n]).0, 0);
    assert_eq!(
        site.report(),
        json!({"/isos/a.iso": {"2026-11": month(2, 3, 3000)}})
    );
}
