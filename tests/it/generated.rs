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
