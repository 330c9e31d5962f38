//! Several servers counting into one database (`--server`): two servers'
//! logs are two streams, so their lines add up, while a download (client,
//! file, day) stays one whichever servers it came from; per-server figures
//! say what each sent.

use crate::{cmd, line, Site};
use serde_json::{json, Value};
use std::path::Path;

/// Server A's log: client .1 starts a.iso; client .3 fetches b.iso.
pub fn log_a() -> String {
    [
        line("192.0.2.1", 20, 0, "/a.iso", 206, 600),
        line("192.0.2.3", 20, 30, "/b.iso", 200, 50),
    ]
    .concat()
}

/// Server B's log: client .1 resumes a.iso there; client .2 downloads it;
/// and a line byte-identical to one of A's (same second, same everything):
/// still B's own request.
pub fn log_b() -> String {
    [
        line("192.0.2.1", 20, 60, "/a.iso", 206, 400),
        line("192.0.2.2", 20, 90, "/a.iso", 200, 1000),
        line("192.0.2.1", 20, 0, "/a.iso", 206, 600),
    ]
    .concat()
}

pub fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

pub fn by_server(site: &Site) -> Value {
    let out = cmd()
        .args(["report", "--json", "--by", "server", "--db"])
        .arg(&site.db)
        .output()
        .unwrap();
    crate::assert_succeeded(&out);
    serde_json::from_slice(&out.stdout).unwrap()
}

pub fn expected_files() -> Value {
    json!({
        "/a.iso": {"2026-11": {"downloads": 2, "requests": 4, "bytes": 2600}},
        "/b.iso": {"2026-11": {"downloads": 1, "requests": 1, "bytes": 50}},
    })
}

pub fn expected_servers() -> Value {
    json!({
        "mirror-a": {"2026-11": {"downloads": 2, "requests": 2, "bytes": 650}},
        "mirror-b": {"2026-11": {"downloads": 2, "requests": 3, "bytes": 2000}},
    })
}

#[test]
fn two_servers_logs_add_up_and_a_download_resumed_elsewhere_counts_once() {
    let site = Site::new();
    let a = write(site.dir.path(), "a.log", &log_a());
    let b = write(site.dir.path(), "b.log", &log_b());
    for _ in 0..2 {
        // The second round re-imports both: nothing changes.
        assert_eq!(site.import_with(&[&a], &["--server", "mirror-a"]).0, 0);
        assert_eq!(site.import_with(&[&b], &["--server", "mirror-b"]).0, 0);
        assert_eq!(site.report(), expected_files());
        assert_eq!(by_server(&site), expected_servers());
    }
}

#[test]
fn the_servers_figures_do_not_depend_on_order_or_on_pipe_versus_import() {
    let site = Site::new();
    // B live through the pipe first, then A imported with its lines reversed.
    let (code, err) = site.pipe_all(log_b().as_bytes(), &["--server", "mirror-b"]);
    assert_eq!(code, 0, "{err}");
    let reversed: String = log_a().lines().rev().map(|l| format!("{l}\n")).collect();
    let a = write(site.dir.path(), "a.log", &reversed);
    assert_eq!(site.import_with(&[&a], &["--server", "mirror-a"]).0, 0);
    // B's rotated log imported after its pipe counted it: nothing new.
    let b = write(site.dir.path(), "b.log", &log_b());
    assert_eq!(site.import_with(&[&b], &["--server", "mirror-b"]).0, 0);
    assert_eq!(site.report(), expected_files());
    assert_eq!(by_server(&site), expected_servers());
}

#[test]
fn a_bad_server_name_is_refused_clearly() {
    let site = Site::new();
    let a = write(site.dir.path(), "a.log", &log_a());
    let (code, err) = site.import_with(&[&a], &["--server", "mirror a"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(r#"--server "mirror a": give 1 to 64 letters, digits, '.', '-' or '_'"#),
        "{err}"
    );
}
