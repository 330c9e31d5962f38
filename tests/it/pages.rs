//! Pages in pipe mode: rendered at start, when a line of a new day arrives,
//! and when the ISO tree changes with no log line at all.

use super::{wait_until, Site};

fn read(p: &std::path::Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

#[test]
fn a_new_iso_appears_on_the_public_page_without_a_log_line() {
    let site = Site::new();
    std::fs::create_dir(site.root.join("isos")).unwrap();
    std::fs::write(site.root.join("isos/first-1.0.iso"), b"x").unwrap();
    let p = site.spawn_pipe(&[]);
    let index = site.root.join("index.html");
    wait_until("pages rendered at start", || {
        read(&index).contains("first-1.0.iso")
    });
    assert!(site.root.join(".stats/index.html").exists());
    // Copy a new ISO in (temp name, then rename, as an admin's rsync does).
    std::fs::write(site.root.join("isos/.second-2.0.iso.tmp"), b"yy").unwrap();
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
