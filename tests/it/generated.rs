//! Acceptance on generated logs: the generator (tests/support/genlog.rs)
//! computes its answer from the events it chose, never by parsing, so these
//! tests compare dlcount with an independent truth.

use super::Site;
use crate::support::genlog::{generate, GenConfig, Mode};
use std::io::Write;

fn as_bytes(lines: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for l in lines {
        out.extend_from_slice(l);
        out.push(b'\n');
    }
    out
}

fn plain_report(site: &Site) -> serde_json::Value {
    let out = super::cmd()
        .args(["report", "--json", "--db"])
        .arg(&site.db)
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn generated_log_through_the_pipe_gives_the_known_answer() {
    let g = generate(&GenConfig {
        lines: 30_000,
        seed: 11,
        ..Default::default()
    });
    let site = Site::new();
    let (code, err) = site.pipe_all(&as_bytes(&g.lines), &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(site.report(), g.answer_detail);
    assert_eq!(plain_report(&site), g.answer_plain);
}

#[test]
fn import_plain_then_gz_then_plain_again_gives_the_known_answer() {
    let g = generate(&GenConfig {
        lines: 30_000,
        seed: 12,
        ..Default::default()
    });
    let site = Site::new();
    let plain = site.dir.path().join("access.log");
    std::fs::write(&plain, as_bytes(&g.lines)).unwrap();
    let gz = site.dir.path().join("access.log.2.gz");
    let mut e = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).unwrap(),
        flate2::Compression::default(),
    );
    e.write_all(&as_bytes(&g.lines)).unwrap();
    e.finish().unwrap();
    for f in [&plain, &gz, &plain] {
        let (code, err) = site.import(&[f]);
        assert_eq!(code, 0, "{err}");
        assert_eq!(
            site.report(),
            g.answer_detail,
            "after importing {}",
            f.display()
        );
    }
}

#[test]
fn half_the_generated_lines_live_then_the_whole_file_imported() {
    let g = generate(&GenConfig {
        lines: 30_000,
        seed: 13,
        ..Default::default()
    });
    let site = Site::new();
    let half = g.lines.len() / 2;
    let (code, err) = site.pipe_all(&as_bytes(&g.lines[..half]), &[]);
    assert_eq!(code, 0, "{err}");
    let file = site.dir.path().join("access.log");
    std::fs::write(&file, as_bytes(&g.lines)).unwrap();
    let (code, err) = site.import(&[&file]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(site.report(), g.answer_detail);
}

#[test]
fn every_line_a_new_download() {
    let g = generate(&GenConfig {
        lines: 20_000,
        seed: 14,
        mode: Mode::AllNew,
        ..Default::default()
    });
    let site = Site::new();
    let (code, err) = site.pipe_all(&as_bytes(&g.lines), &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(site.report(), g.answer_detail);
    assert_eq!(super::total(&site.report(), "downloads"), 20_000);
}

/// Every ISO of the generated site under `site.root`, at its size (sparse).
fn put_isos(site: &Site) {
    for f in crate::support::genlog::iso_files() {
        let p = site.root.join(f.path.trim_start_matches('/'));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::File::create(&p).unwrap().set_len(f.size).unwrap();
    }
}

fn report_of(site: &Site, args: &[&str]) -> serde_json::Value {
    let out = super::cmd()
        .arg("report")
        .args(args)
        .arg("--db")
        .arg(&site.db)
        .output()
        .unwrap();
    super::assert_succeeded(&out);
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The generator's truth of completed downloads (from its own records:
/// full, resumed and segmented downloads whose 206 ranges tile the file,
/// aborted ones, HEAD probes, resumes after midnight), through the pipe,
/// an import with the root, and the reversed log.
#[test]
fn completed_downloads_of_a_generated_log_are_the_known_answer() {
    let g = generate(&GenConfig {
        lines: 30_000,
        seed: 15,
        ..Default::default()
    });
    let want = &g.answer_completed;
    let months: u64 = want
        .as_object()
        .unwrap()
        .values()
        .flat_map(|m| m.as_object().unwrap().values())
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert!(months > 100, "{months} completed downloads only");
    let fmt = ["--format", "dlcount"];
    let site = Site::new();
    put_isos(&site);
    let (code, err) = site.pipe_all(&as_bytes(&g.lines), &fmt);
    assert_eq!(code, 0, "{err}");
    assert_eq!(&report_of(&site, &["--json", "--completed"]), want);
    assert_eq!(site.report(), g.answer_detail);
    // Imported with the root into a fresh database, then the reversed log.
    let other = Site::new();
    put_isos(&other);
    let root = other.root.to_str().unwrap().to_string();
    let file = other.dir.path().join("access.log");
    std::fs::write(&file, as_bytes(&g.lines)).unwrap();
    let with_root = ["--format", "dlcount", "--root", root.as_str()];
    let (code, err) = other.import_with(&[&file], &with_root);
    assert_eq!(code, 0, "{err}");
    assert_eq!(&report_of(&other, &["--json", "--completed"]), want);
    let third = Site::new();
    put_isos(&third);
    let reversed: Vec<Vec<u8>> = g.lines.iter().rev().cloned().collect();
    let (code, err) = third.pipe_all(&as_bytes(&reversed), &fmt);
    assert_eq!(code, 0, "{err}");
    assert_eq!(&report_of(&third, &["--json", "--completed"]), want);
    assert_eq!(third.report(), g.answer_detail);
}
