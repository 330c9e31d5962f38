//! `migrate`: a database moved whole goes on counting exactly; moving
//! again, or back, changes nothing; two servers that counted apart merge
//! without a guess.

use crate::servers::{by_server, expected_files, expected_servers, log_a, log_b, write};
use crate::{cmd, Site};
use serde_json::json;
use std::path::Path;

fn migrate(from: &Path, to: &Path, extra: &[&str]) -> (String, String) {
    let out = cmd()
        .arg("migrate")
        .arg("--db")
        .arg(from)
        .arg("--to")
        .arg(to)
        .args(extra)
        .output()
        .unwrap();
    crate::assert_succeeded(&out);
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A second site whose database is `db` (for `report`, `import`).
fn site_at(db: &Path) -> Site {
    let mut s = Site::new();
    s.db = db.to_owned();
    s
}

#[test]
fn a_database_moved_whole_goes_on_counting_exactly_and_moving_again_or_back_changes_nothing() {
    let old = Site::new();
    let (code, err) = old.pipe_all(log_a().as_bytes(), &["--server", "mirror-a"]);
    assert_eq!(code, 0, "{err}");
    let before = old.report();
    let new = site_at(&old.dir.path().join("new.sqlite"));
    let (said, _) = migrate(&old.db, &new.db, &[]);
    assert!(said.starts_with("migrate: "), "{said}");
    assert!(
        said.contains("had counted nothing: it is now a copy of"),
        "{said}"
    );
    assert_eq!(new.report(), before);
    // The moved secret and day keys know every line counted before.
    let a = write(old.dir.path(), "a.log", &log_a());
    assert_eq!(new.import_with(&[&a], &["--server", "mirror-a"]).0, 0);
    assert_eq!(new.report(), before);
    // The new database counts server B; moving A again and moving back change nothing.
    let b = write(old.dir.path(), "b.log", &log_b());
    assert_eq!(new.import_with(&[&b], &["--server", "mirror-b"]).0, 0);
    assert_eq!(new.report(), expected_files());
    let (said, _) = migrate(&old.db, &new.db, &[]);
    assert!(
        said.contains("share one secret: 1 day (2026-11-20) merged"),
        "{said}"
    );
    assert_eq!(new.report(), expected_files());
    assert_eq!(by_server(&new), expected_servers());
    migrate(&new.db, &old.db, &[]);
    assert_eq!(old.report(), expected_files());
    assert_eq!(by_server(&old), expected_servers());
}

#[test]
fn two_servers_that_counted_apart_merge_exactly_through_the_logs_of_their_open_days() {
    let a_site = Site::new();
    let a = write(a_site.dir.path(), "a.log", &log_a());
    assert_eq!(a_site.import_with(&[&a], &["--server", "mirror-a"]).0, 0);
    let b_site = Site::new();
    let b = write(b_site.dir.path(), "b.log", &log_b());
    assert_eq!(b_site.import_with(&[&b], &["--server", "mirror-b"]).0, 0);

    let shared = site_at(&a_site.dir.path().join("shared.sqlite"));
    migrate(&a_site.db, &shared.db, &[]);
    let only_a = shared.report();
    for _ in 0..2 {
        let (said, err) = migrate(&b_site.db, &shared.db, &[]);
        assert!(said.contains("has another secret than"), "{said}");
        assert!(
            err.contains("1 day (2026-11-20) still open in")
                && err.contains("dlcount-pipe import --db"),
            "{err}"
        );
        assert_eq!(shared.report(), only_a);
    }
    // The exact way: B's log of its open day, imported as B's.
    assert_eq!(shared.import_with(&[&b], &["--server", "mirror-b"]).0, 0);
    assert_eq!(shared.report(), expected_files());
    assert_eq!(by_server(&shared), expected_servers());
}

#[test]
fn adding_open_days_of_another_secret_is_asked_for_and_done_once() {
    let a_site = Site::new();
    let a = write(a_site.dir.path(), "a.log", &log_a());
    assert_eq!(a_site.import_with(&[&a], &["--server", "mirror-a"]).0, 0);
    let b_site = Site::new();
    let b = write(b_site.dir.path(), "b.log", &log_b());
    assert_eq!(b_site.import_with(&[&b], &["--server", "mirror-b"]).0, 0);
    for _ in 0..2 {
        migrate(&b_site.db, &a_site.db, &["--add-open-days"]);
        // Client .1's download on both servers cannot be matched: 1 + 2.
        assert_eq!(
            a_site.report(),
            json!({
                "/a.iso": {"2026-11": {"downloads": 3, "requests": 4, "bytes": 2600}},
                "/b.iso": {"2026-11": {"downloads": 1, "requests": 1, "bytes": 50}},
            })
        );
    }
}

#[test]
fn migrating_a_database_onto_itself_is_refused() {
    let site = Site::new();
    site.pipe_all(log_a().as_bytes(), &["--server", "mirror-a"]);
    let out = cmd()
        .arg("migrate")
        .arg("--db")
        .arg(&site.db)
        .arg("--to")
        .arg(&site.db)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is the database moved from"), "{err}");
}

#[test]
fn a_logger_already_running_on_the_new_database_hashes_with_the_moved_secret() {
    let old = Site::new();
    let (code, err) = old.pipe_all(log_a().as_bytes(), &["--server", "mirror-a"]);
    assert_eq!(code, 0, "{err}");
    let before = old.report();
    let new = site_at(&old.dir.path().join("new.sqlite"));
    // The new server's logger starts first: it creates the database (and
    // its own secret) before the move.
    let mut pipe = new.spawn_pipe(&["--server", "mirror-a"]);
    crate::wait_until("the new database exists", || new.try_report().is_some());
    migrate(&old.db, &new.db, &[]);
    // The same clients fetch the same files again, live: live copies of a
    // line add up (requests 2), but the downloads are the ones counted
    // before the move — with a stale secret they would count twice.
    pipe.write(log_a().as_bytes());
    let (code, err) = pipe.finish();
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("hash secret of") && err.contains("was replaced (a migrate)"),
        "{err}"
    );
    assert_eq!(before["/a.iso"]["2026-11"]["downloads"], 1);
    assert_eq!(
        new.report(),
        json!({
            "/a.iso": {"2026-11": {"downloads": 1, "requests": 2, "bytes": 1200}},
            "/b.iso": {"2026-11": {"downloads": 1, "requests": 2, "bytes": 100}},
        })
    );
}
