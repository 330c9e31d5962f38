//! Tests of the page rendering against a fixture tree with known sizes, dates,
//! sidecars, hostile names and symlinks, plus the ignored helpers: the render
//! benchmark and the fixture writer used by `tests/browser/screenshot.sh`.

use super::write::TEMP_PREFIX;
use super::*;
use chrono::TimeZone;
use std::fs::File;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Local noon of a date, so the expected `YYYY-MM-DD` holds in any time zone.
fn local_noon(y: i32, m: u32, d: u32) -> std::time::SystemTime {
    Local
        .with_ymd_and_hms(y, m, d, 12, 0, 0)
        .single()
        .expect("valid local time")
        .into()
}

/// A sparse file of `size` bytes with the given mtime.
fn file(path: &Path, size: u64, mtime: std::time::SystemTime) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    let f = File::create(path).unwrap();
    f.set_len(size).unwrap();
    f.set_modified(mtime).unwrap();
}

/// A file with the given text and mtime.
fn text_file(path: &Path, text: &str, mtime: std::time::SystemTime) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
    File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
}

/// A SHA-256 digest's worth of hex digits, different for each `n`.
fn hex64(n: u32) -> String {
    format!("{n:064x}")
}

/// `isos/SHA256SUMS` of the fixture: two forms of line, a `./` name, a
/// file of another folder and a name that differs only in case.
fn isos_sha256sums() -> String {
    format!(
        "# Linux Village release checksums\n\
         {} *linuxvillage-9-amd64.iso\n\
         {}  linuxvillage-24.04-amd64.iso\n\
         {}  ./my file café.iso\n\
         {}  other/linuxvillage-24.10-amd64.iso\n\
         {}  LINUXVILLAGE-10-AMD64.ISO\n",
        hex64(1),
        hex64(2),
        hex64(3),
        hex64(4),
        hex64(5)
    )
}

/// `odd/CHECKSUM` of the fixture: clear-signed, BSD lines, as Fedora's.
fn odd_checksum() -> String {
    format!(
        "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n\
         # a#b?c%d.iso: 2048 bytes\n\
         SHA256 (a#b?c%d.iso) = {}\n\
         -----BEGIN PGP SIGNATURE-----\n\niQIzBAEBCAAdFiEE\n-----END PGP SIGNATURE-----\n",
        hex64(6)
    )
}

fn settings(root: &Path) -> PageSettings {
    PageSettings {
        site_title: "Linux Village".into(),
        home_url: Some("https://linuxvillage.example/".into()),
        ..PageSettings::new(root.to_path_buf())
    }
}

fn row(path: &str, month: &str, downloads: u64, requests: u64, bytes: u64) -> FileMonth {
    FileMonth {
        path: path.into(),
        month: month.into(),
        downloads,
        requests,
        bytes,
        completed: None,
    }
}

const COUNTS_JSON: &str = "{\"/isos/linuxvillage-24.04-amd64.iso\": {\"2026-10\": 5}}\n";

/// The fixture tree: a release folder with sidecars and checksum lists,
/// hostile and non-ASCII names, hidden and outside-ROOT files, a symlink loop.
fn fixture() -> (tempfile::TempDir, tempfile::TempDir) {
    let root = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let r = root.path();
    let day = local_noon(2026, 4, 25);
    file(&r.join("isos/linuxvillage-24.04-amd64.iso"), 1536, day);
    file(&r.join("isos/linuxvillage-24.04-amd64.iso.sha256"), 90, day);
    file(&r.join("isos/linuxvillage-24.04-amd64.iso.md5"), 50, day);
    file(
        &r.join("isos/linuxvillage-24.10-amd64.iso"),
        3 * 1024 * 1024 + 1,
        local_noon(2026, 10, 9),
    );
    file(
        &r.join("isos/linuxvillage-24.10-amd64.iso.sha512"),
        150,
        day,
    );
    file(&r.join("isos/linuxvillage-24.10-amd64.iso.asc"), 800, day);
    file(
        &r.join("isos/linuxvillage-9-amd64.iso"),
        700 * 1024 * 1024,
        local_noon(2019, 1, 2),
    );
    file(
        &r.join("isos/linuxvillage-10-amd64.ISO"),
        4_700_000_000,
        local_noon(2021, 6, 30),
    );
    text_file(&r.join("isos/SHA256SUMS"), &isos_sha256sums(), day);
    file(&r.join("isos/SHA256SUMS.gpg"), 300, day);
    file(&r.join("isos/README.txt"), 10, day);
    file(&r.join("isos/my file café.iso"), 1000, day);
    file(&r.join("odd/a#b?c%d.iso"), 2048, day);
    text_file(&r.join("odd/CHECKSUM"), &odd_checksum(), day);
    // '/' cannot be in a file name: the hostile name is a folder plus a file.
    file(&r.join("<script>alert(1)</script>.iso"), 5, day);
    file(&r.join(".hidden/secret.iso"), 5, day);
    file(&r.join("isos/.linuxvillage-25.04-amd64.iso.Xa1b2c"), 5, day);
    file(&outside.path().join("elsewhere.iso"), 5, day);
    symlink(outside.path().join("elsewhere.iso"), r.join("escape.iso")).unwrap();
    symlink(outside.path(), r.join("escape-dir")).unwrap();
    symlink("..", r.join("isos/loop")).unwrap();
    symlink("isos/linuxvillage-24.10-amd64.iso", r.join("latest.iso")).unwrap();
    (root, outside)
}

fn stats() -> StatsSnapshot {
    StatsSnapshot {
        rows: vec![
            row("/isos/linuxvillage-24.04-amd64.iso", "2026-10", 5, 7, 1000),
            row("/isos/linuxvillage-24.04-amd64.iso", "2026-11", 3, 3, 500),
            row(
                "/isos/linuxvillage-24.10-amd64.iso",
                "2026-11",
                10,
                12,
                2048,
            ),
            row("/isos/my file café.iso", "2026-08", 1, 1, 10),
            row("/<script>alert(1)</script>.iso", "2026-11", 2, 2, 0),
        ],
        counts_json: COUNTS_JSON.into(),
        servers: vec![],
        facts: Default::default(),
    }
}

fn now() -> DateTime<Local> {
    Local
        .with_ymd_and_hms(2026, 11, 22, 3, 15, 0)
        .single()
        .unwrap()
}

/// Whitespace runs collapsed to one space, so assertions can quote whole rows.
fn squash(html: &str) -> String {
    html.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap()
}

fn pos(hay: &str, needle: &str) -> usize {
    hay.find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not found"))
}

#[test]
fn public_page_lists_images_with_sizes_dates_and_existing_sidecars() {
    let (root, _outside) = fixture();
    let summary = render_all(&settings(root.path()), &stats(), now()).unwrap();
    assert_eq!(summary.isos, 8);
    assert_eq!(summary.files, 4);
    let html = squash(&read(&root.path().join("index.html")));

    // Each image's row, exactly: its own sidecars first, then the folder's
    // lists that name it (by any line form; case and folder must match).
    let size_date = |exact: &str, human: &str, date: &str| {
        format!(
            r#"<td class="num" data-label="Size"><span title="{exact} bytes">{human}</span></td> <td data-label="Uploaded"><time datetime="{date}">{date}</time></td>"#
        )
    };
    let chip = |href: &str, title: &str, label: &str| {
        format!(r#"<a class="chip" href="{href}" title="{title}">{label}</a>"#)
    };
    let verify = |chips: &[String]| {
        if chips.is_empty() {
            r#"<td class="links" data-label="Verify"><span class="muted">—</span></td>"#.to_owned()
        } else {
            format!(
                r#"<td class="links" data-label="Verify"><div class="chips">{}</div></td>"#,
                chips.concat()
            )
        }
    };
    let row = |href: &str, name: &str, cells: String, chips: &[String]| {
        format!(
            r#"<tr> <th scope="row" class="name"><a href="{href}">{name}</a></th> {cells} {} </tr>"#,
            verify(chips)
        )
    };
    let sums = chip("isos/SHA256SUMS", "SHA256SUMS", "SHA256SUMS");
    let expected = [
        row(
            "isos/linuxvillage-24.04-amd64.iso",
            "linuxvillage-24.04-amd64.iso",
            size_date("1,536", "1.5 KiB", "2026-04-25"),
            &[
                chip(
                    "isos/linuxvillage-24.04-amd64.iso.md5",
                    "linuxvillage-24.04-amd64.iso.md5",
                    "md5",
                ),
                chip(
                    "isos/linuxvillage-24.04-amd64.iso.sha256",
                    "linuxvillage-24.04-amd64.iso.sha256",
                    "sha256",
                ),
                sums.clone(),
            ],
        ),
        // Listed only as other/…: a file of another folder, not this one.
        row(
            "isos/linuxvillage-24.10-amd64.iso",
            "linuxvillage-24.10-amd64.iso",
            size_date("3,145,729", "3.0 MiB", "2026-10-09"),
            &[
                chip(
                    "isos/linuxvillage-24.10-amd64.iso.sha512",
                    "linuxvillage-24.10-amd64.iso.sha512",
                    "sha512",
                ),
                chip(
                    "isos/linuxvillage-24.10-amd64.iso.asc",
                    "linuxvillage-24.10-amd64.iso.asc",
                    "asc",
                ),
            ],
        ),
        // No sidecar, but a `HASH *NAME` line in SHA256SUMS.
        row(
            "isos/linuxvillage-9-amd64.iso",
            "linuxvillage-9-amd64.iso",
            size_date("734,003,200", "700.0 MiB", "2019-01-02"),
            std::slice::from_ref(&sums),
        ),
        // Listed as ./my file café.iso.
        row(
            "isos/my%20file%20caf%C3%A9.iso",
            "my file café.iso",
            size_date("1,000", "1000 B", "2026-04-25"),
            std::slice::from_ref(&sums),
        ),
        // Listed only as LINUXVILLAGE-10-AMD64.ISO: another name, a dash.
        row(
            "isos/linuxvillage-10-amd64.ISO",
            "linuxvillage-10-amd64.ISO",
            size_date("4,700,000,000", "4.4 GiB", "2021-06-30"),
            &[],
        ),
        // A BSD line in a clear-signed CHECKSUM.
        row(
            "odd/a%23b%3Fc%25d.iso",
            "a#b?c%d.iso",
            size_date("2,048", "2.0 KiB", "2026-04-25"),
            &[chip("odd/CHECKSUM", "CHECKSUM", "CHECKSUM")],
        ),
        row(
            "latest.iso",
            "latest.iso",
            size_date("3,145,729", "3.0 MiB", "2026-10-09"),
            &[],
        ),
    ];
    for r in &expected {
        assert!(html.contains(r.as_str()), "{r}\nnot in\n{html}");
    }
    assert!(!html.contains("linuxvillage-9-amd64.iso.sha256"));
    // Folder-level checksum lists, natural order.
    assert!(html.contains(
        r#"<a class="chip" href="isos/SHA256SUMS">SHA256SUMS</a><a class="chip" href="isos/SHA256SUMS.gpg">SHA256SUMS.gpg</a>"#
    ));
    assert!(html.contains(
        r#"<p class="folder-sums"><span class="muted">Checksums:</span> <a class="chip" href="odd/CHECKSUM">CHECKSUM</a></p>"#
    ));

    // ROOT first, sibling folders in release order like the images inside a
    // folder: newest release first, names without one A to Z (`<` sorts
    // before `i`), a release before an unversioned name.
    let order = [
        r#"<h2 id="group-1" class="folder">/</h2>"#,
        r#"href="latest.iso""#,
        r#"<h2 id="group-2" class="folder">/&lt;script&gt;alert(1)&lt;</h2>"#,
        r#"<h2 id="group-3" class="folder">/isos</h2>"#,
        r#">linuxvillage-24.10-amd64.iso<"#,
        r#">linuxvillage-24.04-amd64.iso<"#,
        r#">linuxvillage-10-amd64.ISO<"#,
        r#">linuxvillage-9-amd64.iso<"#,
        r#">my file café.iso<"#,
        r#"<h2 id="group-4" class="folder">/odd</h2>"#,
    ];
    let positions: Vec<usize> = order.iter().map(|n| pos(&html, n)).collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "order: {positions:?}"
    );

    // Links percent-encode each segment and keep '/'.
    assert!(html.contains(r#"href="isos/my%20file%20caf%C3%A9.iso""#));
    assert!(html.contains(r#"<a href="odd/a%23b%3Fc%25d.iso">a#b?c%d.iso</a>"#));
    // The hostile name is text, never markup.
    assert!(
        html.contains(r#"<a href="%3Cscript%3Ealert%281%29%3C/script%3E.iso">script&gt;.iso</a>"#)
    );
    assert!(!html.contains("<script"));
    // Hidden, outside-ROOT, looped and non-image files are not listed.
    for absent in [
        "secret.iso",
        "elsewhere",
        "escape",
        "loop",
        "README",
        ".stats",
        "Xa1b2c",
        "Downloads</th>",
    ] {
        assert!(
            !html.contains(absent),
            "{absent} should not be on the public page"
        );
    }
    assert!(html.contains(r#"<a class="brand" href="https://linuxvillage.example/">"#));
    assert!(html.contains(r#"Generated by dlcount at <time datetime="2026-11-22T03:15:00"#));
}

#[test]
fn folders_are_listed_newest_release_first_on_both_pages() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    let day = local_noon(2026, 4, 25);
    let folders = [
        "isos/24.04",
        "isos/archive",
        "isos/9",
        "isos/22.04",
        "isos/24.10",
        "isos",
        "isos/10",
        "isos/Daily",
        "isos/24.04.1",
        "isos/22.04.5",
        "",
    ];
    let mut rows = Vec::new();
    for (i, f) in folders.iter().enumerate() {
        let rel = if f.is_empty() {
            "top.iso".to_owned()
        } else {
            format!("{f}/lv-{}.iso", f.replace('/', "-"))
        };
        file(&r.join(&rel), 10, day);
        rows.push(row(&format!("/{rel}"), "2026-11", i as u64 + 1, 1, 1));
    }
    let snapshot = StatsSnapshot {
        rows,
        counts_json: "{}\n".into(),
        servers: vec![],
        facts: Default::default(),
    };
    render_all(&settings(r), &snapshot, now()).unwrap();
    let html = squash(&read(&r.join("index.html")));
    // Newest release first, then the folders named without a version, A to Z.
    let expected = [
        "/",
        "/isos",
        "/isos/24.10",
        "/isos/24.04.1",
        "/isos/24.04",
        "/isos/22.04.5",
        "/isos/22.04",
        "/isos/10",
        "/isos/9",
        "/isos/archive",
        "/isos/Daily",
    ];
    let headings: Vec<String> = html
        .match_indices(r#"class="folder">"#)
        .map(|(i, m)| {
            let rest = &html[i + m.len()..];
            rest[..pos(rest, "</h2>")].to_owned()
        })
        .collect();
    assert_eq!(headings, expected);
    for (i, f) in expected.iter().enumerate() {
        assert!(html.contains(&format!(
            r#"<h2 id="group-{}" class="folder">{f}</h2>"#,
            i + 1
        )));
    }
    // The statistics list the files in the same order.
    let stats = squash(&read(&r.join(".stats/index.html")));
    let names: Vec<String> = stats
        .match_indices(r#"<th scope="row" class="name" title=""#)
        .map(|(i, m)| {
            let rest = &stats[i + m.len()..];
            rest[..pos(rest, "\"")].to_owned()
        })
        .collect();
    assert_eq!(
        names,
        [
            "/top.iso",
            "/isos/lv-isos.iso",
            "/isos/24.10/lv-isos-24.10.iso",
            "/isos/24.04.1/lv-isos-24.04.1.iso",
            "/isos/24.04/lv-isos-24.04.iso",
            "/isos/22.04.5/lv-isos-22.04.5.iso",
            "/isos/22.04/lv-isos-22.04.iso",
            "/isos/10/lv-isos-10.iso",
            "/isos/9/lv-isos-9.iso",
            "/isos/archive/lv-isos-archive.iso",
            "/isos/Daily/lv-isos-Daily.iso",
        ]
    );
}

#[test]
fn public_counts_show_downloads_summed_over_months() {
    let (root, _outside) = fixture();
    let mut s = settings(root.path());
    s.public_counts = true;
    render_all(&s, &stats(), now()).unwrap();
    let html = squash(&read(&root.path().join("index.html")));
    assert!(html.contains(r#"<th scope="col" class="num col-count">Downloads</th>"#));
    let row_of = |name: &str| {
        let start = pos(&html, &format!(">{name}</a></th>"));
        html[start..start + pos(&html[start..], "</tr>")].to_owned()
    };
    assert!(row_of("linuxvillage-24.04-amd64.iso")
        .ends_with(r#"<td class="num downloads" data-label="Downloads">8</td> "#));
    assert!(row_of("linuxvillage-24.10-amd64.iso")
        .ends_with(r#"<td class="num downloads" data-label="Downloads">10</td> "#));
    assert!(row_of("my file café.iso")
        .ends_with(r#"<td class="num downloads" data-label="Downloads">1</td> "#));
    assert!(row_of("linuxvillage-9-amd64.iso")
        .ends_with(r#"<td class="num downloads" data-label="Downloads">0</td> "#));

    // A name that is not UTF-8: shown lossily, linked and keyed byte-exactly.
    use std::ffi::OsStr;
    file(
        &root
            .path()
            .join("isos")
            .join(OsStr::from_bytes(b"caf\xe9.iso")),
        3,
        local_noon(2026, 4, 25),
    );
    let mut st = stats();
    st.rows.push(row("/isos/caf%E9.iso", "2026-11", 4, 4, 12));
    render_all(&s, &st, now()).unwrap();
    let html = squash(&read(&root.path().join("index.html")));
    let start = pos(
        &html,
        "<a href=\"isos/caf%E9.iso\">caf\u{fffd}.iso</a></th>",
    );
    let rest = &html[start..];
    assert!(rest[..pos(rest, "</tr>")]
        .ends_with(r#"<td class="num downloads" data-label="Downloads">4</td> "#));
}

#[test]
fn stats_page_has_by_file_and_file_month_tables_totals_chart_and_period() {
    let (root, _outside) = fixture();
    render_all(&settings(root.path()), &stats(), now()).unwrap();
    let html = squash(&read(&root.path().join(".stats/index.html")));
    assert!(html
        .contains(r#"Data from <strong>2026-08</strong> to <strong>2026-11</strong> (4 months)."#));
    assert!(html.contains(r#"<span class="stat-value" id="grand-total">21</span>"#));
    assert!(html.contains(r#"<span class="stat-value" id="requests">25</span>"#));
    assert!(html
        .contains(r#"<span class="stat-value" id="data-sent" title="3,558 bytes">3.5 KiB</span>"#));
    // No completed download is known: "—", never 0.
    assert!(html.contains(r#"<span class="stat-value" id="completed">—</span><span class="stat-note">not known yet</span>"#));

    // By file, whole: most downloaded first (ties by path); completed not
    // known; bots apart; each file's last 12 months as a small trend; on
    // phones each figure shows its data-label.
    let fig = |label: &str, v: &str| format!(r#"<td class="num" data-label="{label}">{v}</td>"#);
    let unknown = r#"<td class="num unknown" data-label="Completed" title="not known">—</td>"#;
    let trend = |counts: &str, bars: &[(u32, &str, &str)]| {
        let label = format!("Downloads from 2025-12 to 2026-11: {counts}");
        format!(
            r#"<td class="trend" data-label="Last 12 months"><svg class="trend-svg" viewBox="0 0 60 16" width="60" height="16" role="img" aria-label="{label}"><title>{label}</title>{}</svg></td>"#,
            bars.iter()
                .map(|(x, y, h)| format!(r#"<rect x="{x}" y="{y}" width="4" height="{h}"/>"#))
                .collect::<String>()
        )
    };
    let by_file_row = |folder: &str,
                       name: &str,
                       d: &str,
                       bar: &str,
                       share: &str,
                       t: String,
                       r: &str,
                       b: &str,
                       bt: &str| {
        format!(
            concat!(
                r#"<tr><th scope="row" class="name"><span class="folder-prefix">{}</span>{}</th>"#,
                r#"<td class="num downloads" data-label="Downloads">{}</td>{}{}"#,
                r#"<td class="share" data-label="Share"><span class="share-bar" aria-hidden="true"><span style="width: {}%"></span></span>{} %</td>"#,
                r#"{}{}<td class="num" data-label="Data sent" title="{} bytes">{}</td></tr> "#
            ),
            folder,
            name,
            d,
            unknown,
            fig("Bots", "0"),
            bar,
            share,
            t,
            fig("Requests", r),
            bt,
            b
        )
    };
    let by_file = format!(
        concat!(
            r#"<thead> <tr><th scope="col">File</th><th scope="col" class="num">Downloads</th><th scope="col" class="num">Completed</th>"#,
            r#"<th scope="col" class="num">Bots</th><th scope="col" class="share">Share</th><th scope="col" class="trend">Last 12 months</th><th scope="col" class="num">Requests</th>"#,
            r#"<th scope="col" class="num">Data sent</th></tr> </thead> <tbody> {}{}{}{}</tbody> <tfoot> <tr><th scope="row">Total</th>"#,
            r#"<td class="num downloads" data-label="Downloads">21</td>{}<td class="num" data-label="Bots">0</td><td class="share" data-label="Share">100 %</td><td class="trend"></td>"#,
            r#"<td class="num" data-label="Requests">25</td><td class="num" data-label="Data sent" title="3,558 bytes">3.5 KiB</td></tr> </tfoot> </table>"#
        ),
        by_file_row(
            "/isos/",
            "linuxvillage-24.10-amd64.iso",
            "10",
            "100.0",
            "47.6",
            trend(
                "0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 10",
                &[(55, "0.0", "16.0")]
            ),
            "12",
            "2.0 KiB",
            "2,048"
        ),
        by_file_row(
            "/isos/",
            "linuxvillage-24.04-amd64.iso",
            "8",
            "80.0",
            "38.1",
            trend(
                "0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 3",
                &[(50, "0.0", "16.0"), (55, "6.4", "9.6")]
            ),
            "10",
            "1.5 KiB",
            "1,500"
        ),
        by_file_row(
            "/&lt;script&gt;alert(1)&lt;/",
            "script&gt;.iso",
            "2",
            "20.0",
            "9.5",
            trend("0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2", &[(55, "0.0", "16.0")]),
            "2",
            "0 B",
            "0"
        ),
        by_file_row(
            "/isos/",
            "my file café.iso",
            "1",
            "10.0",
            "4.8",
            trend("0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0", &[(40, "0.0", "16.0")]),
            "1",
            "10 B",
            "10"
        ),
        unknown,
    );
    assert!(html.contains(&by_file), "{by_file}\nnot in\n{html}");

    // By file and month, whole: a row per file in the same order, its whole
    // path read across, its total, then the months newest first (the gap
    // month included, empty cells for none); the months' totals at the foot.
    let num = |v: &str| format!(r#"<td class="num">{v}</td>"#);
    let pivot_row = |key: &str, folder: &str, name: &str, total: &str, cells: [&str; 4]| {
        format!(
            r#"<tr><th scope="row" class="name" title="{key}"><span class="folder-prefix">{folder}</span>{name}</th><td class="num total-col">{total}</td>{}</tr> "#,
            cells.iter().map(|c| num(c)).collect::<String>()
        )
    };
    let month_col = |m: &str| format!(r#"<th scope="col" class="num month-col">{m}</th>"#);
    let pivot = format!(
        concat!(
            r#"<table class="data pivot" aria-describedby="pivot-note"> <thead> <tr> <th scope="col" class="corner">File</th> "#,
            r#"<th scope="col" class="num total-col">Total</th> {}{}{}{} </tr> </thead> <tbody> {}{}{}{}</tbody> <tfoot> "#,
            r#"<tr><th scope="row">Downloads</th><td class="num total-col">21</td>{}{}{}{}</tr> "#,
            r#"<tr><th scope="row">Requests</th><td class="num total-col">25</td>{}{}{}{}</tr> "#,
            r#"<tr><th scope="row">Data sent</th><td class="num total-col" title="3,558 bytes">3.5 KiB</td>"#,
            r#"<td class="num" title="2,548 bytes">2.5 KiB</td><td class="num" title="1,000 bytes">1000 B</td>"#,
            r#"<td class="num" title="0 bytes">0 B</td><td class="num" title="10 bytes">10 B</td></tr> </tfoot> </table>"#
        ),
        month_col("2026-11"),
        month_col("2026-10"),
        month_col("2026-09"),
        month_col("2026-08"),
        pivot_row(
            "/&lt;script&gt;alert(1)&lt;/script&gt;.iso",
            "/&lt;script&gt;alert(1)&lt;/",
            "script&gt;.iso",
            "2",
            ["2", "", "", ""]
        ),
        pivot_row(
            "/isos/linuxvillage-24.10-amd64.iso",
            "/isos/",
            "linuxvillage-24.10-amd64.iso",
            "10",
            ["10", "", "", ""]
        ),
        pivot_row(
            "/isos/linuxvillage-24.04-amd64.iso",
            "/isos/",
            "linuxvillage-24.04-amd64.iso",
            "8",
            ["3", "5", "", ""]
        ),
        pivot_row(
            "/isos/my file café.iso",
            "/isos/",
            "my file café.iso",
            "1",
            ["", "", "", "1"]
        ),
        num("15"),
        num("5"),
        num("0"),
        num("1"),
        num("17"),
        num("7"),
        num("0"),
        num("1"),
    );
    assert!(html.contains(&pivot), "{pivot}\nnot in\n{html}");
    assert!(html.contains(r#"<h2 id="months-heading">By file and month</h2>"#));
    // No name is turned on its side any more.
    assert!(!html.contains("file-col"));
    // The chart: accessible inline SVG, one bar per month, oldest first.
    assert!(html.contains(r#"<svg class="chart-wide" viewBox="0 0 960 280" role="img" aria-labelledby="chart-title-wide chart-desc-wide">"#));
    assert!(html.contains(r#"<svg class="chart-narrow" viewBox="0 0 360 240" role="img" aria-labelledby="chart-title-narrow chart-desc-narrow">"#));
    assert!(html.contains(r#"<desc id="chart-desc-wide">Downloads per month from 2026-08 to 2026-11; highest: 15 downloads in 2026-11.</desc>"#));
    assert_eq!(html.matches(r#"<rect class="bar""#).count(), 8);
    // Max 15 gives y steps of 5 up to 20; 4 slots of 221 units, bars 72 % wide.
    assert!(html.contains(r#"<rect class="bar" x="94.9" y="236.4" width="159.1" height="11.6"><title>2026-08: 1 download</title></rect>"#));
    assert!(html.contains(r#"text-anchor="end" dominant-baseline="middle">20</text>"#));
    assert!(
        pos(&html, "<title>2026-08: 1 download</title>")
            < pos(&html, "<title>2026-11: 15 downloads</title>")
    );
    assert!(!html.contains("<script"));

    assert_eq!(read(&root.path().join(".stats/counts.json")), COUNTS_JSON);
}

#[test]
fn empty_statistics_render_without_chart_or_tables() {
    let root = tempfile::tempdir().unwrap();
    let summary = render_all(
        &settings(root.path()),
        &StatsSnapshot {
            rows: vec![],
            counts_json: "{}\n".into(),
            servers: vec![],
            facts: Default::default(),
        },
        now(),
    )
    .unwrap();
    assert_eq!((summary.isos, summary.files), (0, 0));
    let html = squash(&read(&root.path().join(".stats/index.html")));
    assert!(html.contains("No downloads have been counted yet."));
    assert!(html.contains(r#"id="grand-total">0</span>"#));
    assert!(!html.contains("<svg"));
    assert!(squash(&read(&root.path().join("index.html"))).contains("No images are available yet."));
}

#[test]
fn files_are_world_readable_and_no_temp_files_remain() {
    let (root, _outside) = fixture();
    render_all(&settings(root.path()), &stats(), now()).unwrap();
    render_all(&settings(root.path()), &stats(), now()).unwrap();
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&root.path().join(".stats")), 0o755);
    for p in ["index.html", ".stats/index.html", ".stats/counts.json"] {
        assert_eq!(mode(&root.path().join(p)), 0o644, "{p}");
    }
    let leftovers: Vec<_> = [root.path().to_path_buf(), root.path().join(".stats")]
        .iter()
        .flat_map(|d| fs::read_dir(d).unwrap().flatten())
        .filter(|e| e.file_name().to_string_lossy().starts_with(TEMP_PREFIX))
        .collect();
    assert!(leftovers.is_empty());
}

/// Every entry below `dir` with its bytes (a link: its target), to show a
/// render left a folder outside ROOT exactly as it was.
fn tree_bytes(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap().flatten() {
        let ft = e.file_type().unwrap();
        if ft.is_dir() {
            out.push((e.path(), Vec::new()));
            out.extend(tree_bytes(&e.path()));
        } else if ft.is_symlink() {
            let target = fs::read_link(e.path()).unwrap();
            out.push((e.path(), target.as_os_str().as_bytes().to_vec()));
        } else {
            out.push((e.path(), fs::read(e.path()).unwrap()));
        }
    }
    out.sort();
    out
}

fn is_symlink(p: &Path) -> bool {
    fs::symlink_metadata(p).unwrap().file_type().is_symlink()
}

#[test]
fn a_symlinked_stats_folder_is_never_written_through() {
    let (root, outside) = fixture();
    let target = outside.path().join("stats-target");
    fs::create_dir(&target).unwrap();
    let stats_link = root.path().join(".stats");
    symlink(&target, &stats_link).unwrap();
    let before = tree_bytes(outside.path());
    let summary = render_all(&settings(root.path()), &stats(), now()).unwrap();
    assert_eq!(tree_bytes(outside.path()), before);
    assert_eq!(fs::read_dir(&target).unwrap().count(), 0);
    assert_eq!(
        summary.stats_refused.as_deref(),
        Some(
            format!(
                "{}/.stats is a symbolic link; not writing the statistics through it",
                root.path().display()
            )
            .as_str()
        )
    );
    assert!(is_symlink(&stats_link));
    // The public page is rendered all the same.
    assert_eq!(summary.isos, 8);
    assert!(read(&root.path().join("index.html")).contains("linuxvillage-24.04-amd64.iso"));

    // A link to nowhere is not followed into creating its target either.
    fs::remove_file(&stats_link).unwrap();
    symlink(outside.path().join("made-by-render"), &stats_link).unwrap();
    let summary = render_all(&settings(root.path()), &stats(), now()).unwrap();
    assert!(summary.stats_refused.is_some());
    assert_eq!(tree_bytes(outside.path()), before);
}

#[test]
fn a_stats_entry_that_is_not_a_folder_is_left_alone() {
    let (root, _outside) = fixture();
    fs::write(root.path().join(".stats"), "the admin's file").unwrap();
    let summary = render_all(&settings(root.path()), &stats(), now()).unwrap();
    assert_eq!(
        summary.stats_refused,
        Some(format!(
            "{}/.stats is not a directory; not writing the statistics there",
            root.path().display()
        ))
    );
    assert_eq!(read(&root.path().join(".stats")), "the admin's file");
    assert!(read(&root.path().join("index.html")).contains("linuxvillage-24.04-amd64.iso"));
}

/// A page name that is a link is replaced as a link by the rename: the page
/// is written, the link's target outside ROOT is never opened.
#[test]
fn symlinked_pages_are_replaced_never_written_through() {
    let (root, outside) = fixture();
    let (r, o) = (root.path(), outside.path());
    fs::create_dir(r.join(".stats")).unwrap();
    let pages = ["index.html", ".stats/index.html", ".stats/counts.json"];
    for (i, page) in pages.iter().enumerate() {
        let victim = o.join(format!("victim-{i}"));
        fs::write(&victim, format!("untouched {i}")).unwrap();
        symlink(&victim, r.join(page)).unwrap();
    }
    let before = tree_bytes(o);
    let summary = render_all(&settings(r), &stats(), now()).unwrap();
    assert_eq!(summary.stats_refused, None);
    assert_eq!(tree_bytes(o), before);
    for page in pages {
        assert!(!is_symlink(&r.join(page)), "{page}");
    }
    assert_eq!(read(&r.join(".stats/counts.json")), COUNTS_JSON);
    assert!(read(&r.join("index.html")).contains("linuxvillage-24.04-amd64.iso"));
    assert!(read(&r.join(".stats/index.html")).contains("linuxvillage-24.10-amd64.iso"));
}

/// Folders `d…d` (200 bytes each) nested below `dir` until the deepest one's
/// path is longer than PATH_MAX (4096), made through directory descriptors as
/// no call taking a path reaches that deep; `deep.iso` at the bottom. Returns
/// the deepest folder.
fn deep_tree(dir: &Path) -> PathBuf {
    use nix::fcntl::{open, openat, OFlag};
    use nix::sys::stat::{mkdirat, Mode};
    let name = "d".repeat(200);
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY;
    let mut fd = open(dir, flags, Mode::empty()).unwrap();
    let mut path = dir.to_path_buf();
    while path.as_os_str().len() <= 4096 {
        mkdirat(&fd, name.as_str(), Mode::from_bits_truncate(0o755)).unwrap();
        fd = openat(&fd, name.as_str(), flags, Mode::empty()).unwrap();
        path.push(&name);
    }
    let iso = openat(
        &fd,
        "deep.iso",
        OFlag::O_WRONLY | OFlag::O_CREAT,
        Mode::from_bits_truncate(0o644),
    )
    .unwrap();
    File::from(iso).write_all(b"x").unwrap();
    path
}

#[test]
fn a_path_longer_than_path_max_is_skipped_by_the_scan() {
    let (root, _outside) = fixture();
    let deepest = deep_tree(&root.path().join("isos"));
    assert!(deepest.as_os_str().len() > 4096);
    // One level down is still a folder Apache can serve from.
    let shallow = root.path().join("isos").join("d".repeat(200));
    file(&shallow.join("shallow-1.0.iso"), 5, local_noon(2026, 4, 25));
    let summary = render_all(&settings(root.path()), &stats(), now()).unwrap();
    assert_eq!(summary.isos, 9);
    let html = read(&root.path().join("index.html"));
    assert!(html.contains("shallow-1.0.iso"));
    assert!(html.contains("linuxvillage-24.04-amd64.iso"));
    assert!(!html.contains("deep.iso"));
}

#[test]
fn override_dir_replaces_only_the_templates_it_holds() {
    let (root, _outside) = fixture();
    let tpl = tempfile::tempdir().unwrap();
    fs::write(
        tpl.path().join("public.html"),
        "{% extends \"base.html\" %}{% block content %}<p>Custom listing of {{ iso_count }} images</p>{% endblock %}",
    )
    .unwrap();
    let mut s = settings(root.path());
    s.templates_dir = Some(tpl.path().to_path_buf());
    render_all(&s, &stats(), now()).unwrap();
    let public = read(&root.path().join("index.html"));
    assert!(public.contains("<p>Custom listing of 8 images</p>"));
    assert!(
        public.contains("Generated by dlcount at"),
        "base.html still the default"
    );
    assert!(read(&root.path().join(".stats/index.html")).contains(r#"id="grand-total">21</span>"#));
}

#[test]
fn broken_override_names_template_and_line_and_keeps_old_pages() {
    let (root, _outside) = fixture();
    render_all(&settings(root.path()), &stats(), now()).unwrap();
    let before: Vec<String> = ["index.html", ".stats/index.html", ".stats/counts.json"]
        .iter()
        .map(|p| read(&root.path().join(p)))
        .collect();

    let tpl = tempfile::tempdir().unwrap();
    fs::write(tpl.path().join("stats.html"), "{% extends \"base.html\" %}\n{% block content %}\n{% for x in files %}\n{{ x.name }\n{% endfor %}{% endblock %}\n").unwrap();
    let mut s = settings(root.path());
    s.templates_dir = Some(tpl.path().to_path_buf());
    let other = StatsSnapshot {
        rows: vec![],
        counts_json: "{}".into(),
        servers: vec![],
        facts: Default::default(),
    };
    let err = format!("{:#}", render_all(&s, &other, now()).unwrap_err());
    assert!(
        err.starts_with("template stats.html line 4: syntax error"),
        "{err}"
    );

    // A runtime error in an included template names that template.
    fs::remove_file(tpl.path().join("stats.html")).unwrap();
    fs::write(
        tpl.path().join("style.css"),
        "body { }\n{{ no_such_variable }}\n",
    )
    .unwrap();
    let err = format!("{:#}", render_all(&s, &other, now()).unwrap_err());
    assert!(
        err.starts_with("template style.css line 2: undefined value"),
        "{err}"
    );
    assert!(err.ends_with(", from template base.html line 18"), "{err}");

    let after: Vec<String> = ["index.html", ".stats/index.html", ".stats/counts.json"]
        .iter()
        .map(|p| read(&root.path().join(p)))
        .collect();
    assert_eq!(before, after);
}

#[test]
fn loader_never_reads_outside_the_override_dir() {
    assert!(is_plain_relative("public.html"));
    assert!(is_plain_relative("partials/row.html"));
    assert!(!is_plain_relative("../secret"));
    assert!(!is_plain_relative("/etc/passwd"));
    assert!(!is_plain_relative(""));
}

#[test]
fn dump_templates_writes_defaults_and_refuses_to_overwrite_changes() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tpl");
    let written = dump_templates(&out).unwrap();
    let names: Vec<_> = written
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "base.html",
            "month.html",
            "sections.html",
            "public.html",
            "stats.html",
            "style.css"
        ]
    );
    assert_eq!(read(&out.join("style.css")), DEFAULT_TEMPLATES[5].1);
    // Identical files are fine and left alone.
    assert!(dump_templates(&out).unwrap().is_empty());
    fs::write(out.join("public.html"), "changed").unwrap();
    fs::remove_file(out.join("base.html")).unwrap();
    let err = dump_templates(&out).unwrap_err().to_string();
    assert!(
        err.contains("public.html") && !err.contains("style.css"),
        "{err}"
    );
    assert_eq!(read(&out.join("public.html")), "changed");
    assert!(
        !out.join("base.html").exists(),
        "nothing written when refusing"
    );
}

fn counter() -> (Arc<AtomicUsize>, Box<dyn Fn() + Send>) {
    let n = Arc::new(AtomicUsize::new(0));
    let m = n.clone();
    (
        n,
        Box::new(move || {
            m.fetch_add(1, Ordering::SeqCst);
        }),
    )
}

fn settle(d: u64) {
    std::thread::sleep(Duration::from_millis(d));
}

#[test]
fn watcher_coalesces_bursts_and_ignores_our_own_writes() {
    let (root, _outside) = fixture();
    let (calls, cb) = counter();
    let w = TreeWatcher::spawn(root.path(), vec![".iso".into()], cb).unwrap();
    assert!(!w.is_polling());
    // Our own render, reads of images and unrelated files: no call.
    render_all(&settings(root.path()), &stats(), now()).unwrap();
    drop(File::open(root.path().join("isos/linuxvillage-9-amd64.iso")).unwrap());
    fs::write(root.path().join("isos/notes.txt"), "x").unwrap();
    fs::write(root.path().join(".hidden/another.iso"), "x").unwrap();
    settle(1800);
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    // A burst of additions, a checksum and a rename: one call.
    for i in 0..5 {
        fs::write(root.path().join(format!("isos/new-{i}.iso")), "x").unwrap();
    }
    fs::write(root.path().join("isos/new-0.iso.sha256"), "x").unwrap();
    fs::rename(
        root.path().join("isos/new-1.iso"),
        root.path().join("isos/renamed.iso"),
    )
    .unwrap();
    settle(2200);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // Removing a folder with images in it: another call.
    fs::remove_dir_all(root.path().join("odd")).unwrap();
    settle(2200);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    drop(w);
    fs::write(root.path().join("isos/after-drop.iso"), "x").unwrap();
    settle(1500);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[test]
fn a_path_longer_than_path_max_leaves_the_rest_watched_by_inotify() {
    let (root, _outside) = fixture();
    let deepest = deep_tree(&root.path().join("isos"));
    assert!(deepest.as_os_str().len() > 4096);
    let (calls, cb) = counter();
    let w = TreeWatcher::spawn(root.path(), vec![".iso".into()], cb).unwrap();
    assert!(!w.is_polling());
    fs::write(root.path().join("odd/new.iso"), "x").unwrap();
    settle(2200);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // Inside the deep chain, where the path is still short enough: watched too.
    fs::write(
        root.path().join("isos").join("d".repeat(200)).join("a.iso"),
        "x",
    )
    .unwrap();
    settle(2200);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[test]
fn polling_fallback_sees_adds_and_in_place_rewrites_but_not_our_writes() {
    let (root, _outside) = fixture();
    let (calls, cb) = counter();
    let w = TreeWatcher::spawn_with(
        root.path(),
        vec![".iso".into()],
        cb,
        watch::Backend::Poll(Duration::from_millis(300)),
    )
    .unwrap();
    assert!(w.is_polling());
    render_all(&settings(root.path()), &stats(), now()).unwrap();
    settle(900);
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    fs::write(root.path().join("isos/new.iso"), "x").unwrap();
    settle(900);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // Same names, new size: only a re-stat can see it.
    File::options()
        .append(true)
        .open(root.path().join("isos/linuxvillage-24.04-amd64.iso"))
        .unwrap()
        .write_all(b"more")
        .unwrap();
    settle(900);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

fn day(y: i32, m: u32, d: u32) -> i32 {
    crate::store::day_of(chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap())
}

/// One file × day of a fixture, as the store keeps it in `daily`.
struct Day {
    path: String,
    day: i32,
    downloads: u64,
    requests: u64,
    bytes: u64,
    completed: Option<u64>,
}

fn day_row(path: &str, day: i32, downloads: u64, requests: u64, bytes: u64) -> Day {
    Day {
        path: path.into(),
        day,
        downloads,
        requests,
        bytes,
        completed: None,
    }
}

fn fact(path: &str, day: i32, kind: &str, value: &str, n: u64) -> crate::store::FactDayRow {
    crate::store::FactDayRow {
        path: path.into(),
        day,
        kind: kind.into(),
        value: value.into(),
        n,
    }
}

fn networks(day: i32, nets: &[usize]) -> crate::store::NetworkDayRow {
    let mut bits = [0u64; crate::store::facts::NETWORK_WORDS];
    for n in nets {
        bits[n / 64] |= 1 << (n % 64);
    }
    crate::store::NetworkDayRow { day, bits }
}

/// What the store's `monthly` and `page_facts` give for per day rows: the
/// sums the tests' expected figures are worked out from.
fn summed(
    days: &[Day],
    facts: &[crate::store::FactDayRow],
    nets: &[crate::store::NetworkDayRow],
) -> (Vec<FileMonth>, PageFacts) {
    use crate::store::{month_of, DayTotalRow, FileMonthCount, MonthFactRow, MonthNetworkRow};
    use std::collections::BTreeMap;
    let mut rows: BTreeMap<(String, String), FileMonth> = BTreeMap::new();
    let mut totals: BTreeMap<i32, DayTotalRow> = BTreeMap::new();
    for d in days {
        let r = rows
            .entry((d.path.clone(), month_of(d.day)))
            .or_insert_with(|| row(&d.path, &month_of(d.day), 0, 0, 0));
        r.downloads += d.downloads;
        r.requests += d.requests;
        r.bytes += d.bytes;
        r.completed = match (r.completed, d.completed) {
            (None, c) => c,
            (Some(a), Some(c)) => Some(a + c),
            (a, None) => a,
        };
        let t = totals.entry(d.day).or_insert(DayTotalRow {
            day: d.day,
            downloads: 0,
            requests: 0,
            bytes: 0,
            bots: 0,
        });
        t.downloads += d.downloads;
        t.requests += d.requests;
        t.bytes += d.bytes;
    }
    let mut months: BTreeMap<(String, String, String), u64> = BTreeMap::new();
    let mut bots: BTreeMap<(String, String), u64> = BTreeMap::new();
    for f in facts {
        *months
            .entry((month_of(f.day), f.kind.clone(), f.value.clone()))
            .or_default() += f.n;
        if f.kind == "class" && f.value == "bot" {
            *bots.entry((f.path.clone(), month_of(f.day))).or_default() += f.n;
            totals.get_mut(&f.day).unwrap().bots += f.n;
        }
    }
    let mut bits: BTreeMap<String, [u64; crate::store::facts::NETWORK_WORDS]> = BTreeMap::new();
    for n in nets {
        let b = bits.entry(month_of(n.day)).or_default();
        for (a, x) in b.iter_mut().zip(n.bits) {
            *a |= x;
        }
    }
    (
        rows.into_values().collect(),
        PageFacts {
            months: months
                .into_iter()
                .map(|((month, kind, value), n)| MonthFactRow {
                    month,
                    kind,
                    value,
                    n,
                })
                .collect(),
            bots: bots
                .into_iter()
                .map(|((path, month), n)| FileMonthCount { path, month, n })
                .collect(),
            days: totals.into_values().collect(),
            networks: bits
                .into_iter()
                .map(|(month, bits)| MonthNetworkRow { month, bits })
                .collect(),
        },
    )
}

/// Two files: `b.iso` counted on 2026-10-15 before dlcount kept facts (all
/// of its facts unknown), `a.iso` on 2026-11-01 and -02 with classes,
/// countries, referring hosts and networks, and completed downloads known
/// on the 2nd only.
fn detail_snapshot() -> StatsSnapshot {
    let (a, b) = ("/isos/a.iso", "/isos/b.iso");
    let (n1, n2) = (day(2026, 11, 1), day(2026, 11, 2));
    let days = [
        day_row(a, n1, 5, 7, 100),
        Day {
            completed: Some(2),
            ..day_row(a, n2, 3, 3, 50)
        },
        day_row(b, day(2026, 10, 15), 4, 4, 40),
    ];
    let facts = [
        fact(a, n1, "class", "browser", 2),
        fact(a, n1, "class", "downloader", 1),
        fact(a, n1, "class", "bot", 2),
        fact(a, n2, "class", "bot", 1),
        fact(a, n2, "class", "other", 2),
        fact(a, n1, "country", "DE", 3),
        fact(a, n1, "country", "FR", 1),
        fact(a, n2, "country", "DE", 1),
        fact(a, n1, "referer", "direct", 5),
        fact(a, n1, "referer", "example.org", 2),
        fact(a, n2, "referer", "this site", 3),
        fact(a, n1, "network", "v6", 1),
    ];
    let nets = [networks(n1, &[0, 64, 1023]), networks(n2, &[0, 5])];
    let (rows, facts) = summed(&days, &facts, &nets);
    StatsSnapshot {
        rows,
        counts_json: "{}\n".into(),
        servers: vec![],
        facts,
    }
}

#[test]
fn per_month_figures_are_exact_with_unknown_for_days_before_facts() {
    let snap = detail_snapshot();
    let months = detail::by_month(&snap.rows, &snap.facts);
    let r = detail::range(months.values());
    assert_eq!((r.downloads, r.requests, r.bytes), (12, 14, 190));
    let vals = |v: &[detail::ValueView]| {
        v.iter()
            .map(|v| (v.value.clone(), v.n, v.share))
            .collect::<Vec<_>>()
    };
    let own = |v: &[(&str, u64, f64)]| {
        v.iter()
            .map(|(a, n, s)| (a.to_string(), *n, *s))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        vals(&r.classes),
        own(&[
            ("browser", 2, 16.7),
            ("downloader", 1, 8.3),
            ("other", 2, 16.7),
            ("bot", 3, 25.0),
            ("unknown", 4, 33.3)
        ])
    );
    assert_eq!((r.bots, r.bot_share, r.unknown_class), (3, 25.0, 4));
    assert_eq!(
        vals(&r.countries),
        own(&[("DE", 4, 33.3), ("FR", 1, 8.3), ("unknown", 7, 58.3)])
    );
    assert_eq!(
        vals(&r.referers),
        own(&[
            ("direct", 5, 35.7),
            ("this site", 3, 21.4),
            ("example.org", 2, 14.3),
            ("unknown", 4, 28.6)
        ])
    );
    assert_eq!(r.coverage.networks, 4);
    assert_eq!(r.coverage.ipv6_downloads, 1);
    assert_eq!(r.coverage.cells, vec![(0, 0), (5, 0), (0, 2), (31, 31)]);
    let files: Vec<_> = r
        .files
        .iter()
        .map(|f| {
            (
                f.key.as_str(),
                f.downloads,
                f.bots,
                f.completed,
                f.completed_of,
            )
        })
        .collect();
    // a.iso's November is known (the store's month says 2 of its 8);
    // b.iso's October is not known at all: None, never 0.
    assert_eq!(
        files,
        [
            ("/isos/a.iso", 8, 3, Some(2), 8),
            ("/isos/b.iso", 4, 0, None, 0)
        ]
    );
    assert_eq!(
        (r.completed, r.completed_of, r.completion),
        (Some(2), 8, Some(25.0))
    );

    // November alone: every download's class is known.
    assert_eq!(
        months.keys().copied().collect::<Vec<_>>(),
        ["2026-10", "2026-11"]
    );
    let nov = detail::range([&months["2026-11"]]);
    assert_eq!(
        (nov.downloads, nov.bots, nov.bot_share, nov.unknown_class),
        (8, 3, 37.5, 0)
    );
    assert_eq!(nov.classes.len(), 4);
    // Without any country known, no country table at all.
    let oct = detail::range([&months["2026-10"]]);
    assert!(oct.countries.is_empty());
    assert_eq!(oct.completion, None);
    assert_eq!(
        vals(&oct.classes).last().unwrap(),
        &("unknown".to_string(), 4, 100.0)
    );

    let days: Vec<_> = snap.facts.days.iter().collect();
    let chart = detail::daily_chart(&days, day(2026, 10, 15), day(2026, 11, 22)).unwrap();
    assert_eq!(chart.bars.len(), 39);
    assert_eq!((chart.max, chart.max_label.as_str()), (5, "5"));
    let first_nov = &chart.bars[17];
    assert_eq!(
        (
            first_nov.date.as_str(),
            first_nov.downloads,
            first_nov.bots,
            first_nov.h,
            first_nov.bot_h
        ),
        ("2026-11-01", 5, 2, 160.0, 64.0)
    );

    // The trend: a.iso's 12 months to 2026-11, only the last one with downloads.
    let mut files = r.files.clone();
    detail::add_trends(&mut files, &snap.rows, "2026-11");
    let t = files[0].trend.as_ref().unwrap();
    assert_eq!(
        t.label,
        "Downloads from 2025-12 to 2026-11: 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8"
    );
    assert_eq!(
        (t.bars[11].x, t.bars[11].y, t.bars[11].h, t.bars[10].h),
        (55, 0.0, 16.0, 0.0)
    );
}

#[test]
fn overview_and_month_pages_show_the_per_month_figures() {
    let (root, _outside) = fixture();
    render_all(&settings(root.path()), &detail_snapshot(), now()).unwrap();
    let page = squash(&read(&root.path().join(".stats/index.html")));
    for want in [
        // Completed: known for November's 8 downloads only (October: not known).
        r#"<span class="stat-label">Completed</span><span class="stat-value" id="completed">2</span><span class="stat-note">25.0 % of 8 (where known)</span>"#,
        r#"<span class="stat-label">By bots</span><span class="stat-value" id="bot-share" title="3 of 12 downloads">25.0 %</span><span class="stat-note">3 downloads</span>"#,
        // 8 downloads over 2026-11-01 to -22: counting began before the month.
        r#"<span class="stat-label">Per day in 2026-11</span><span class="stat-value" id="per-day" title="mean over 22 days">0.4</span>"#,
        r#"<span class="stat-label">Counting per day since</span><span class="stat-value stat-date" id="began">2026-10-15</span>"#,
        "4 downloads were counted before dlcount kept each client's class",
        r#"<li><a href="2026-11.html">2026-11</a> <span class="muted">8</span></li><li><a href="2026-10.html">2026-10</a> <span class="muted">4</span></li>"#,
        r#"<tr class="bot-row"><th scope="row" class="name">bot</th><td class="num downloads" data-label="Downloads">3</td><td class="num" data-label="Share">25.0 %</td></tr>"#,
        r#"<th scope="row" class="name">unknown</th><td class="num downloads" data-label="Downloads">4</td><td class="num" data-label="Share">33.3 %</td>"#,
        r#"<th scope="row" class="name">DE</th><td class="num downloads" data-label="Downloads">4</td>"#,
        r#"<th scope="row" class="name">this site</th><td class="num downloads" data-label="Requests">3</td><td class="num" data-label="Share">21.4 %</td>"#,
        "4 of the 1,024 IPv4 /10 networks downloaded (0.4 %); 1 download over IPv6",
        "Downloads per day from 2026-10-15 to 2026-11-22; highest: 5 on 2026-11-01",
        r#"<title>2026-11-01: 5 downloads, 2 by bots</title>"#,
        // By file, most downloaded first: completed known (a.iso), not
        // known (—, b.iso), and known in part for the total (*).
        concat!(
            r#"<tr><th scope="row" class="name"><span class="folder-prefix">/isos/</span>a.iso</th><td class="num downloads" data-label="Downloads">8</td>"#,
            r#"<td class="num" data-label="Completed">2</td><td class="num" data-label="Bots">3</td>"#,
        ),
        concat!(
            r#"<tr><th scope="row">Total</th><td class="num downloads" data-label="Downloads">12</td>"#,
            r#"<td class="num" data-label="Completed" title="2 of the 8 downloads whose completion is known">2*</td><td class="num" data-label="Bots">3</td>"#,
        ),
        concat!(
            r#"<tr><th scope="row" class="name"><span class="folder-prefix">/isos/</span>b.iso</th><td class="num downloads" data-label="Downloads">4</td>"#,
            r#"<td class="num unknown" data-label="Completed" title="not known">—</td><td class="num" data-label="Bots">0</td>"#,
        ),
        r#"aria-label="Downloads from 2025-12 to 2026-11: 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8""#,
    ] {
        assert!(page.contains(want), "missing {want:?} in {page}");
    }
    assert!(pos(&page, "</span>a.iso</th>") < pos(&page, "</span>b.iso</th>"));
    assert!(!page.contains("<script"));
    // The month pages, linked to each other.
    let oct = squash(&read(&root.path().join(".stats/2026-10.html")));
    let nov = squash(&read(&root.path().join(".stats/2026-11.html")));
    assert!(oct.contains(r#"<a href="index.html">All months</a> · <a rel="next" href="2026-11.html">2026-11 →</a></nav>"#));
    assert!(nov.contains(r#"<a href="index.html">All months</a> · <a rel="prev" href="2026-10.html">← 2026-10</a></nav>"#));
    // October: counting began on the 15th, so 4 downloads over 17 days.
    assert!(oct.contains(
        r#"<span class="stat-value" id="month-per-day" title="over 17 days">0.2</span>"#
    ));
    assert!(oct.contains(r#"<span class="stat-value" id="month-completed">—</span><span class="stat-note">not known yet</span>"#));
    assert!(!oct.contains("Countries"), "no country known in October");
    assert!(nov.contains(r#"<span class="stat-value" id="month-total">8</span>"#));
    assert!(nov.contains(r#"<span class="stat-value" id="month-bots">37.5 %</span><span class="stat-note">3 downloads</span>"#));
    assert!(nov.contains(r#"<span class="folder-prefix">/isos/</span>a.iso</th><td class="num downloads" data-label="Downloads">8</td><td class="num" data-label="Completed">2</td><td class="num" data-label="Bots">3</td><td class="num" data-label="Requests">10</td>"#));
    assert!(nov.contains("4 of the 1,024 IPv4 /10 networks downloaded (0.4 %)"));
    assert!(nov.contains(r#"<tr><th scope="row" class="day">2026-11-02</th><td class="num downloads" data-label="Downloads">3</td><td class="num" data-label="Bots">1</td><td class="num" data-label="Requests">3</td>"#));
    assert!(
        oct.contains("0 of the 1,024 IPv4 /10 networks downloaded (0.0 %); 0 downloads over IPv6")
    );
}

#[test]
fn a_month_page_is_written_again_only_when_its_figures_change() {
    let (root, _outside) = fixture();
    let mut snapshot = detail_snapshot();
    let s = settings(root.path());
    render_all(&s, &snapshot, now()).unwrap();
    let oct = root.path().join(".stats/2026-10.html");
    // Marked, so a rewrite would show: the content stamp stays at the end.
    let marked = format!("<!-- kept -->{}", read(&oct));
    fs::write(&oct, &marked).unwrap();
    let later = now() + chrono::Duration::hours(5);
    render_all(&s, &snapshot, later).unwrap();
    assert_eq!(read(&oct), marked, "same figures: not written again");
    let r = snapshot
        .rows
        .iter_mut()
        .find(|r| r.month == "2026-10")
        .unwrap();
    r.downloads = 6;
    render_all(&s, &snapshot, later).unwrap();
    let again = read(&oct);
    assert!(
        !again.starts_with("<!-- kept -->"),
        "changed figures: written"
    );
    assert!(squash(&again).contains(r#"id="month-total">6</span>"#));
}

/// A generated fixture: 200 sparse images in 10 folders, 120 months × 200 files of rows.
fn big_fixture(root: &Path) -> StatsSnapshot {
    for i in 0..200u64 {
        let rel = format!(
            "releases/{}/distro-{}.{}-amd64.iso",
            i % 10,
            10 + i / 10,
            i % 10
        );
        file(
            &root.join(&rel),
            1_000_000_000 + i * 7_777_777,
            local_noon(
                2020 + (i % 6) as i32,
                1 + (i % 12) as u32,
                1 + (i % 28) as u32,
            ),
        );
        if i % 2 == 0 {
            file(
                &root.join(format!("{rel}.sha256")),
                100,
                local_noon(2024, 1, 1),
            );
        }
    }
    // Ten years of days, as the store sums them for the pages.
    let (rows, facts) = fixture_days(200, day(2016, 1, 1), 3653, |i| {
        format!(
            "/releases/{}/distro-{}.{}-amd64.iso",
            i % 10,
            10 + i / 10,
            i % 10
        )
    });
    StatsSnapshot {
        rows,
        counts_json: "{}\n".into(),
        servers: vec![],
        facts,
    }
}

/// Per day rows of `files` files over `days` days from `start`: every file
/// downloaded every day, with classes (bots among them), countries for
/// most, referring hosts, IPv6 and a few networks a day.
fn fixture_days(
    files: u64,
    start: i32,
    days: i32,
    path: impl Fn(u64) -> String,
) -> (Vec<FileMonth>, PageFacts) {
    let mut rows = (Vec::new(), Vec::new(), Vec::new());
    let countries = ["DE", "FR", "US", "BR", "JP", "IN", "NL", "SE"];
    let hosts = ["direct", "this site", "forum.example", "news.example.org"];
    for i in 0..files {
        let p = path(i);
        for d in 0..days {
            let n = (i * 13 + d as u64 * 7) % 23 + 1;
            let dayn = start + d;
            rows.0.push(Day {
                completed: (d >= days / 2).then_some(n / 2),
                ..day_row(&p, dayn, n, n + n / 2, n * 900_000_000)
            });
            let bots = n / 5;
            rows.1
                .push(fact(&p, dayn, "class", "browser", n - bots - n / 3));
            rows.1.push(fact(&p, dayn, "class", "downloader", n / 3));
            rows.1.push(fact(&p, dayn, "class", "bot", bots));
            rows.1.push(fact(
                &p,
                dayn,
                "country",
                countries[(i as usize + d as usize) % 8],
                n - 1,
            ));
            rows.1.push(fact(
                &p,
                dayn,
                "referer",
                hosts[(i as usize + d as usize) % 4],
                n,
            ));
        }
    }
    for d in 0..days {
        let nets: Vec<usize> = (0..12).map(|k| (d as usize * 37 + k * 89) % 1024).collect();
        rows.2.push(networks(start + d, &nets));
        rows.1.push(fact(&path(0), start + d, "network", "v6", 1));
    }
    rows.1.retain(|f| f.n > 0);
    summed(&rows.0, &rows.1, &rows.2)
}

/// A release tree of 50 images for the browser test's file × month table:
/// ten release folders of five images with long names, each folder with its
/// `SHA256SUMS`, and 24 months of counts.
fn fifty_fixture(root: &Path) -> StatsSnapshot {
    let versions = [
        "21.04", "21.10", "22.04", "22.10", "23.04", "23.10", "24.04", "24.10", "25.04", "25.10",
    ];
    let flavours = [
        "desktop-amd64",
        "server-amd64",
        "server-arm64",
        "netinst-amd64",
        "live-i386",
    ];
    let mut rows = Vec::new();
    for (v, version) in versions.iter().enumerate() {
        let mut sums = String::new();
        for (f, flavour) in flavours.iter().enumerate() {
            let i = (v * flavours.len() + f) as u64;
            let name = format!("linuxvillage-{version}-{flavour}.iso");
            let rel = format!("releases/{version}/{name}");
            file(
                &root.join(&rel),
                800_000_000 + i * 91_234_567,
                local_noon(2021 + v as i32 / 2, 4 + 6 * (v as u32 % 2), 20 + f as u32),
            );
            sums.push_str(&format!("{}  {name}\n", hex64(i as u32)));
            for m in 0..24u64 {
                let ym = 2024 * 12 + 11 + m;
                let (y, mo) = (ym / 12, ym % 12 + 1);
                let d = (i * 37 + m * 13) % 211 + i * 40 + m * 3;
                rows.push(row(
                    &format!("/{rel}"),
                    &format!("{y}-{mo:02}"),
                    d,
                    d + d / 4,
                    d * 1_200_000_000,
                ));
            }
        }
        text_file(
            &root.join(format!("releases/{version}/SHA256SUMS")),
            &sums,
            local_noon(2025, 11, 1),
        );
    }
    let fifty_paths: Vec<String> = {
        let mut p: Vec<String> = rows.iter().map(|r| r.path.clone()).collect();
        p.dedup();
        p
    };
    // The last 120 days of its 24 months (2026-07-04 to 2026-10-31) counted
    // per day: those months' figures are the days' sums.
    let (counted, facts) = fixture_days(50, day(2026, 7, 4), 120, |i| {
        fifty_paths[i as usize].clone()
    });
    rows.retain(|r| !counted.iter().any(|c| c.month == r.month));
    rows.extend(counted);
    StatsSnapshot {
        rows,
        counts_json: "{}\n".into(),
        servers: vec![],
        facts,
    }
}

/// `cargo test --release --lib render::tests::bench_render -- --ignored --nocapture`
#[test]
#[ignore = "benchmark: run explicitly in release mode"]
fn bench_render() {
    let root = tempfile::tempdir().unwrap();
    let stats = big_fixture(root.path());
    let mut s = settings(root.path());
    s.public_counts = true;
    let runs: usize = std::env::var("DLCOUNT_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(21);
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| render_all(&s, &stats, now()).unwrap().elapsed)
        .collect();
    times.sort();
    let html = fs::metadata(root.path().join(".stats/index.html"))
        .unwrap()
        .len();
    println!(
        "render_all, 200 images + 120 months x 200 files ({} rows; {} days, {} month fact rows, {} month pages; stats page {} KiB): median {:.1} ms, min {:.1} ms, max {:.1} ms over {runs} runs",
        stats.rows.len(),
        stats.facts.days.len(),
        stats.facts.months.len(),
        fs::read_dir(root.path().join(".stats")).unwrap().count() - 2,
        html / 1024,
        times[runs / 2].as_secs_f64() * 1e3,
        times[0].as_secs_f64() * 1e3,
        times[runs - 1].as_secs_f64() * 1e3,
    );
}

/// Renders the fixtures into `$DLCOUNT_RENDER_DIR/{small,fifty,big}` for the
/// browser test, with each one's grand total in `NAME.total`:
/// `DLCOUNT_RENDER_DIR=/tmp/x cargo test --release --lib render::tests::write_fixture_pages -- --ignored`.
#[test]
#[ignore = "helper for tests/browser/screenshot.sh"]
fn write_fixture_pages() {
    let Some(dir) = std::env::var_os("DLCOUNT_RENDER_DIR") else {
        panic!("set DLCOUNT_RENDER_DIR");
    };
    let dir = PathBuf::from(dir);
    let (small, _outside) = fixture();
    let mut s = settings(small.path());
    s.public_counts = true;
    let mut st = stats();
    // A longer history so the chart has something to show.
    for m in 1..=12 {
        st.rows.push(row(
            "/isos/linuxvillage-24.04-amd64.iso",
            &format!("2025-{m:02}"),
            40 + m * 13 % 29,
            50 + m,
            3_000_000_000 * m,
        ));
    }
    render_all(&s, &st, now()).unwrap();
    let out = dir.join("small");
    let _ = fs::remove_dir_all(&out);
    copy_tree(small.path(), &out);
    let out = dir.join("big");
    let _ = fs::remove_dir_all(&out);
    fs::create_dir_all(&out).unwrap();
    let stats = big_fixture(&out);
    long_named_list(&out);
    render_all(&settings(&out), &stats, now()).unwrap();
    let total: u64 = stats.rows.iter().map(|r| r.downloads).sum();
    fs::write(dir.join("big.total"), format::grouped(total)).unwrap();
    let out = dir.join("fifty");
    let _ = fs::remove_dir_all(&out);
    fs::create_dir_all(&out).unwrap();
    let stats = fifty_fixture(&out);
    let mut s = settings(&out);
    s.public_counts = true;
    render_all(&s, &stats, now()).unwrap();
    let total: u64 = stats.rows.iter().map(|r| r.downloads).sum();
    fs::write(dir.join("fifty.total"), format::grouped(total)).unwrap();
    let total: u64 = st.rows.iter().map(|r| r.downloads).sum();
    fs::write(dir.join("small.total"), format::grouped(total)).unwrap();
}

/// A digest list of the big fixture's `releases/9` named after no image, with
/// a name longer than a phone's line and than the desktop's Verify column,
/// and no place to break it (`_`, not `-`): its 20 images (which have no
/// sidecar of their own) link to it.
fn long_named_list(root: &Path) {
    let text: String = (0..20)
        .map(|k| format!("{}  distro-{}.9-amd64.iso\n", "5".repeat(128), 10 + k))
        .collect();
    text_file(
        &root.join("releases/9/distro_release_9_every_image_amd64_checksums.sha512"),
        &text,
        local_noon(2024, 1, 1),
    );
}

/// Copies the rendered pages and the listed files' names (empty files; sizes
/// only matter on the rendered page) so the temp dir can go away.
fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap().flatten() {
        let ft = e.file_type().unwrap();
        let dest = to.join(e.file_name());
        if ft.is_dir() {
            copy_tree(&e.path(), &dest);
        } else if ft.is_file() {
            let name = e.file_name();
            if name == "index.html" || name == "counts.json" {
                fs::copy(e.path(), &dest).unwrap();
            } else {
                File::create(&dest).unwrap();
            }
        }
    }
}

#[test]
fn the_statistics_show_servers_only_when_several_counted() {
    let (root, _outside) = fixture();
    let server = |name: &str, downloads, requests, bytes| ServerTotal {
        server: name.into(),
        downloads,
        requests,
        bytes,
    };
    let mut one = stats();
    one.servers = vec![server("mirror-a", 9, 11, 2048)];
    render_all(&settings(root.path()), &one, now()).unwrap();
    let html = squash(&read(&root.path().join(".stats/index.html")));
    assert!(!html.contains("By server"));

    let mut two = stats();
    two.servers = vec![
        server("mirror-a", 9, 11, 2048),
        server("mirror-b", 2, 3, 1024),
    ];
    render_all(&settings(root.path()), &two, now()).unwrap();
    let html = squash(&read(&root.path().join(".stats/index.html")));
    assert!(html.contains(concat!(
        r#"<tr><th scope="row" class="name">mirror-a</th><td class="num downloads" data-label="Downloads">9</td><td class="num" data-label="Requests">11</td>"#,
        r#"<td class="num" data-label="Data sent" title="2,048 bytes">2.0 KiB</td></tr> "#,
        r#"<tr><th scope="row" class="name">mirror-b</th><td class="num downloads" data-label="Downloads">2</td><td class="num" data-label="Requests">3</td>"#,
        r#"<td class="num" data-label="Data sent" title="1,024 bytes">1.0 KiB</td></tr>"#,
    )), "{html}");
}
