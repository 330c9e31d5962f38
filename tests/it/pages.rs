//! Pages in pipe mode: rendered at start, when a line of a new day arrives,
//! when the ISO tree changes with no log line at all, within the refresh
//! interval when counts change, and listing an upload only once it settled;
//! never written through a symlinked `.stats`; a path too long to watch
//! leaves the rest watched and the error log short.

use super::{line, wait_until, Site};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

/// An image whose upload finished two minutes ago (as `rsync -a` or `cp -p`
/// leave it: the source's mtime), so it is listed at once.
fn uploaded_earlier(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(SystemTime::now() - Duration::from_secs(120))
        .unwrap();
}

/// The inode of a page: each render replaces the file by a rename.
fn inode(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.ino()).unwrap_or(0)
}

#[test]
fn a_new_iso_appears_on_the_public_page_without_a_log_line() {
    let site = Site::new();
    std::fs::create_dir(site.root.join("isos")).unwrap();
    uploaded_earlier(&site.root.join("isos/first-1.0.iso"), b"x");
    let p = site.spawn_pipe(&[]);
    let index = site.root.join("index.html");
    wait_until("pages rendered at start", || {
        read(&index).contains("first-1.0.iso")
    });
    assert!(site.root.join(".stats/index.html").exists());
    // Copy a new ISO in (temp name, then rename, as an admin's rsync does).
    uploaded_earlier(&site.root.join("isos/.second-2.0.iso.tmp"), b"yy");
    std::fs::rename(
        site.root.join("isos/.second-2.0.iso.tmp"),
        site.root.join("isos/second-2.0.iso"),
    )
    .unwrap();
    wait_until("the new ISO is listed", || {
        read(&index).contains("second-2.0.iso")
    });
    std::fs::remove_file(site.root.join("isos/first-1.0.iso")).unwrap();
    wait_until("the removed ISO is gone", || {
        !read(&index).contains("first-1.0.iso")
    });
    let (code, err) = p.finish();
    assert_eq!(code, 0, "{err}");
}

#[test]
fn a_line_of_a_new_day_renders_the_statistics() {
    let site = Site::new();
    let mut p = site.spawn_pipe(&[]);
    let counts = site.root.join(".stats/counts.json");
    wait_until("pages rendered at start", || read(&counts) == "{}\n");
    // A day after today's: the first line of a new day.
    let tomorrow = chrono::Local::now().date_naive() + chrono::Days::new(1);
    let line = format!(
        "192.0.2.5 - - [{}] \"GET /isos/new.iso HTTP/1.1\" 200 10 \"-\" \"curl/8\"\n",
        tomorrow.format("%d/%b/%Y:00:00:01 +0000")
    );
    p.write(line.as_bytes());
    let month = tomorrow.format("%Y-%m").to_string();
    wait_until("the statistics include the new day", || {
        read(&counts) == format!("{{\n  \"/isos/new.iso\": {{\n    \"{month}\": 1\n  }}\n}}\n")
    });
    let (code, _) = p.finish();
    assert_eq!(code, 0);
}

#[test]
fn a_counted_line_reaches_the_statistics_within_the_refresh_interval() {
    let site = Site::new();
    let mut p = site.spawn_pipe(&["--refresh", "1s"]);
    let counts = site.root.join(".stats/counts.json");
    wait_until("pages rendered at start", || read(&counts) == "{}\n");
    // A day already seen (November 2026, before today): no new-day render,
    // only the refresh can bring it to the page.
    p.write(line("192.0.2.7", 5, 1, "/isos/a.iso", 200, 100).as_bytes());
    wait_until("counts.json shows the download, stdin still open", || {
        read(&counts) == "{\n  \"/isos/a.iso\": {\n    \"2026-11\": 1\n  }\n}\n"
    });
    assert!(p.is_running(), "the logger must still be reading");
    p.write(line("192.0.2.8", 5, 2, "/isos/a.iso", 200, 100).as_bytes());
    wait_until("a second download a refresh later", || {
        read(&counts) == "{\n  \"/isos/a.iso\": {\n    \"2026-11\": 2\n  }\n}\n"
    });
    let (code, err) = p.finish();
    assert_eq!(code, 0, "{err}");
}

#[test]
fn an_iso_is_listed_only_once_its_upload_has_settled() {
    const SETTLE: Duration = Duration::from_secs(2);
    // File-system timestamps are a tick coarser than the clocks we compare them to.
    const TICK: Duration = Duration::from_millis(100);
    let site = Site::new();
    std::fs::create_dir(site.root.join("isos")).unwrap();
    uploaded_earlier(&site.root.join("isos/old-1.0.iso"), b"x");
    let p = site.spawn_pipe(&["--settle", "2"]);
    let index = site.root.join("index.html");
    wait_until("pages rendered at start", || {
        read(&index).contains("old-1.0.iso")
    });
    // An upload in progress: written in chunks, still open.
    let first_page = inode(&index);
    let path = site.root.join("isos/new-2.0.iso");
    let mut upload = std::fs::File::create(&path).unwrap();
    let chunk = vec![7u8; 64 * 1024];
    let mut written: u64 = 0;
    let mut last_write = Instant::now();
    let mut renders_seen = 0;
    let mut page = first_page;
    let started = Instant::now();
    // Until the page was re-rendered twice while the upload ran (its creation,
    // then the settle re-check), and for at least two settle times.
    while renders_seen < 2 || started.elapsed() < 2 * SETTLE {
        last_write = Instant::now();
        upload.write_all(&chunk).unwrap();
        written += chunk.len() as u64;
        std::thread::sleep(Duration::from_millis(100));
        let listed = read(&index).contains("new-2.0.iso");
        // Listed only if nothing was written for a whole settle time, which a
        // stalled test machine could cause; a working rule never lists it sooner.
        assert!(
            !listed || last_write.elapsed() + TICK >= SETTLE,
            "listed {:?} after the last write",
            last_write.elapsed()
        );
        if inode(&index) != page {
            page = inode(&index);
            renders_seen += 1;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "no re-render");
    }
    drop(upload);
    let finished = last_write;
    wait_until("the finished ISO is listed", || {
        read(&index).contains("new-2.0.iso")
    });
    assert!(finished.elapsed() + TICK >= SETTLE);
    // Listed with its final size, e.g. `title="4,194,304 bytes"`.
    let digits = written.to_string();
    let mut exact = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            exact.push(',');
        }
        exact.push(c);
    }
    let exact = format!("title=\"{exact} bytes\"");
    assert!(read(&index).contains(&exact), "{exact}");
    let (code, err) = p.finish();
    assert_eq!(code, 0, "{err}");
}

#[test]
fn render_never_writes_the_statistics_through_a_symlinked_stats_folder() {
    let site = Site::new();
    uploaded_earlier(&site.root.join("first-1.0.iso"), b"x");
    let outside = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), site.root.join(".stats")).unwrap();
    let out = super::cmd()
        .args(["render", "--db"])
        .arg(&site.db)
        .arg("--root")
        .arg(&site.root)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!(
        err.lines().next(),
        Some(
            format!(
                "dlcount: {}/.stats is a symbolic link; not writing the statistics through it",
                site.root.display()
            )
            .as_str()
        ),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
    assert!(read(&site.root.join("index.html")).contains("first-1.0.iso"));
    // `check` names it before the logger meets it.
    let out = super::cmd()
        .args(["check", "--db"])
        .arg(&site.db)
        .arg("--root")
        .arg(&site.root)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "{}/.stats is a symbolic link: the statistics are never written through it",
            site.root.display()
        )),
        "{err}"
    );
}

/// Folders `d…d` (200 bytes each) nested below `dir` until the deepest one's
/// path is longer than PATH_MAX (4096), made through directory descriptors as
/// no call taking a path reaches that deep.
fn deep_tree(dir: &Path) {
    use nix::fcntl::{open, openat, OFlag};
    use nix::sys::stat::{mkdirat, Mode};
    let name = "d".repeat(200);
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY;
    let mut fd = open(dir, flags, Mode::empty()).unwrap();
    let mut len = dir.as_os_str().len();
    while len <= 4096 {
        mkdirat(&fd, name.as_str(), Mode::from_bits_truncate(0o755)).unwrap();
        fd = openat(&fd, name.as_str(), flags, Mode::empty()).unwrap();
        len += 1 + name.len();
    }
}

#[test]
fn a_path_longer_than_path_max_leaves_the_rest_watched_and_the_log_short() {
    let site = Site::new();
    std::fs::create_dir(site.root.join("isos")).unwrap();
    uploaded_earlier(&site.root.join("isos/first-1.0.iso"), b"x");
    deep_tree(&site.root.join("isos"));
    let p = site.spawn_pipe(&[]);
    let index = site.root.join("index.html");
    wait_until("the watcher skipped the deep folder", || {
        p.stderr().contains("dlcount: not watching ")
    });
    wait_until("pages rendered at start", || {
        read(&index).contains("first-1.0.iso")
    });
    uploaded_earlier(&site.root.join("isos/second-2.0.iso"), b"yy");
    wait_until("the new ISO is listed", || {
        read(&index).contains("second-2.0.iso")
    });
    let (code, err) = p.finish();
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("polling"), "{err}");
    for line in err.lines() {
        assert!(
            line.chars().count() <= 200,
            "{} chars: {line}",
            line.chars().count()
        );
    }
    let skipped: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("dlcount: not watching "))
        .collect();
    assert_eq!(skipped.len(), 1, "{err}");
    assert!(
        skipped[0].contains("dddd…dddd")
            && skipped[0].contains("(File name too long (os error 36))"),
        "{err}"
    );
}

#[test]
fn help_documents_refresh_and_settle() {
    let out = super::cmd().arg("--help").output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for opt in ["--refresh <MINUTES>", "--settle <SECONDS>"] {
        assert!(help.contains(opt), "--help lacks {opt}:\n{help}");
    }
    let squashed = help.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        squashed.contains("0 turns it off [default: 1]"),
        "{squashed}"
    );
    assert!(
        squashed.contains("0 lists at once [default: 60]"),
        "{squashed}"
    );
}

/// The text of the element with `id="{id}"` on a page.
fn by_id(page: &str, id: &str) -> String {
    let at = page
        .find(&format!(" id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in {page}"));
    let start = at + page[at..].find('>').unwrap() + 1;
    let end = start + page[start..].find('<').unwrap();
    page[start..end].to_string()
}

fn render(site: &super::Site) {
    let out = super::cmd()
        .args(["render", "--db"])
        .arg(&site.db)
        .arg("--root")
        .arg(&site.root)
        .output()
        .unwrap();
    super::assert_succeeded(&out);
}

/// A line of `path` on 2026-`month`-`day` from `ip` with `ua`.
fn ua_line(ip: &str, month: &str, day: u32, path: &str, bytes: u64, ua: &str) -> String {
    format!(
        "{ip} - - [{day:02}/{month}/2026:12:00:00 +0000] \"GET {path} HTTP/1.1\" 200 {bytes} \"-\" \"{ua}\"\n"
    )
}

#[test]
fn the_overview_and_a_month_page_show_the_databases_exact_figures_and_a_month_is_rewritten_only_when_it_changes(
) {
    let site = Site::new();
    const FF: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0";
    const BOT: &str = "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)";
    // October: 3 downloads of a.iso (one by a bot), one of b.iso;
    // November: 2 of a.iso.
    let lines = [
        ua_line("192.0.2.1", "Oct", 10, "/isos/a.iso", 1000, FF),
        ua_line("192.0.2.2", "Oct", 10, "/isos/a.iso", 1000, "Wget/1.21"),
        ua_line("192.0.2.3", "Oct", 11, "/isos/a.iso", 500, BOT),
        ua_line("192.0.2.1", "Oct", 12, "/isos/b.iso", 2000, FF),
        ua_line("192.0.2.1", "Nov", 2, "/isos/a.iso", 1000, FF),
        ua_line("192.0.2.4", "Nov", 3, "/isos/a.iso", 1000, "curl/8.5.0"),
    ];
    let (code, err) = site.pipe_all(lines.concat().as_bytes(), &[]);
    assert_eq!(code, 0, "{err}");
    render(&site);
    let index = read(&site.root.join(".stats/index.html"));
    assert_eq!(by_id(&index, "grand-total"), "6");
    assert_eq!(by_id(&index, "bot-share"), "16.7 %");
    assert_eq!(by_id(&index, "requests"), "6");
    assert_eq!(by_id(&index, "data-sent"), "6.3 KiB");
    assert_eq!(by_id(&index, "files"), "2");
    assert_eq!(by_id(&index, "began"), "2026-10-10");
    // Completed downloads are not known to this store: "—", never 0.
    assert_eq!(by_id(&index, "completed"), "—");
    assert!(index.contains(r#"<li><a href="2026-11.html">2026-11</a> <span class="muted">2</span></li><li><a href="2026-10.html">2026-10</a> <span class="muted">4</span></li>"#));

    let oct_path = site.root.join(".stats/2026-10.html");
    let nov_path = site.root.join(".stats/2026-11.html");
    let oct = read(&oct_path);
    assert_eq!(by_id(&oct, "month-total"), "4");
    assert_eq!(by_id(&oct, "month-bots"), "25.0 %");
    assert_eq!(by_id(&oct, "month-requests"), "4");
    assert_eq!(by_id(&oct, "month-data"), "4.4 KiB");
    assert_eq!(by_id(&oct, "month-files"), "2");
    // 4 downloads over 2026-10-10 to -31: counting began on the 10th.
    assert_eq!(by_id(&oct, "month-per-day"), "0.2");
    assert!(oct.contains(r#"<a rel="next" href="2026-11.html">2026-11 →</a>"#));
    assert!(oct.contains(r#"<th scope="row" class="name">browser</th><td class="num downloads" data-label="Downloads">2</td>"#));
    assert!(oct.contains(r#"<th scope="row" class="name">downloader</th><td class="num downloads" data-label="Downloads">1</td>"#));
    assert!(oct.contains(r#"<tr class="bot-row"><th scope="row" class="name">bot</th><td class="num downloads" data-label="Downloads">1</td>"#));
    assert!(oct.contains(r#"<tr><th scope="row" class="day">2026-10-11</th><td class="num downloads" data-label="Downloads">1</td><td class="num" data-label="Bots">1</td>"#));
    let nov = read(&nov_path);
    assert_eq!(by_id(&nov, "month-total"), "2");
    assert_eq!(by_id(&nov, "month-bots"), "0.0 %");
    assert!(nov.contains(r#"<a rel="prev" href="2026-10.html">← 2026-10</a>"#));

    // Rendered again with nothing new: neither month page is replaced.
    let (oct_inode, nov_inode) = (inode(&oct_path), inode(&nov_path));
    render(&site);
    assert_eq!((inode(&oct_path), inode(&nov_path)), (oct_inode, nov_inode));
    // A late line of October changes October only.
    let late = ua_line("192.0.2.9", "Oct", 20, "/isos/b.iso", 2000, FF);
    let (code, err) = site.pipe_all(late.as_bytes(), &[]);
    assert_eq!(code, 0, "{err}");
    render(&site);
    assert_ne!(inode(&oct_path), oct_inode, "October's figures changed");
    assert_eq!(by_id(&read(&oct_path), "month-total"), "5");
    // November's page links October with its downloads, so it changes too.
    assert_ne!(inode(&nov_path), nov_inode);
    let nov_inode = inode(&nov_path);
    render(&site);
    assert_eq!(inode(&nov_path), nov_inode);
}
