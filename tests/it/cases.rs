//! Data-driven cases, one test each: `tests/cases/NAME.log` through the pipe,
//! through import, twice through import, and import after the pipe must each
//! give exactly `tests/cases/NAME.expected.json` (`report --json --detail`).
//!
//! Lines starting with `#` are comments of the case and are stripped. A case
//! may carry its own options in `tests/cases/NAME.toml` (`args = [...]`, given
//! to the pipe and to `import` alike, e.g. its own `--format`), so one case
//! failing never hides another and each can set up what it needs.
//! `every_case_file_has_its_test` keeps the list below complete.

use super::Site;
use bstr::ByteSlice;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases")
}

/// The case's log without its comment lines.
fn case_input(log: &Path) -> Vec<u8> {
    let text = std::fs::read(log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
    text.lines_with_terminator()
        .filter(|l| !l.starts_with(b"#"))
        .flatten()
        .copied()
        .collect()
}

/// The case's own options (`NAME.toml`), none when it has no such file.
fn case_args(name: &str) -> Vec<String> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct CaseOptions {
        args: Vec<String>,
    }
    let path = cases_dir().join(format!("{name}.toml"));
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            toml::from_str::<CaseOptions>(&text)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
                .args
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("{}: {e}", path.display()),
    }
}

fn run_case(name: &str) {
    let dir = cases_dir();
    let input = case_input(&dir.join(format!("{name}.log")));
    let expected_path = dir.join(format!("{name}.expected.json"));
    let expected: Value = serde_json::from_slice(
        &std::fs::read(&expected_path)
            .unwrap_or_else(|e| panic!("{}: {e}", expected_path.display())),
    )
    .unwrap();
    let args = case_args(name);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    // Through the pipe…
    let site = Site::new();
    let (code, err) = site.pipe_all(&input, &args);
    assert_eq!(code, 0, "{name}: {err}");
    assert_eq!(site.report(), expected, "case {name} through the pipe");
    // …and through import after the pipe (nothing twice)…
    let file = site.dir.path().join("in.log");
    std::fs::write(&file, &input).unwrap();
    let (code, err) = site.import_with(&[&file], &args);
    assert_eq!(code, 0, "{name}: {err}");
    assert_eq!(
        site.report(),
        expected,
        "case {name}: import after pipe double counted"
    );
    // …and through import alone, twice (idempotent).
    let fresh = Site::new();
    for round in 1..=2 {
        let (code, err) = fresh.import_with(&[&file], &args);
        assert_eq!(code, 0, "{name}, import {round}: {err}");
        assert_eq!(
            fresh.report(),
            expected,
            "case {name} through import {round}"
        );
    }
}

/// One `#[test]` per case file; the test's name is the file's, `-` as `_`.
macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                run_case(&stringify!($name).replace('_', "-"));
            }
        )*
        const CASES: &[&str] = &[$(stringify!($name)),*];
    };
}

cases! {
    absurd_bytes,
    common_format,
    counting_rules,
    nginx_combined,
    nginx_escape_none,
    nginx_json_escape,
    nginx_json_real,
    nginx_real_lines,
    nginx_start_day,
    request_line_words,
    resumed_download,
    segmented_identical,
}

#[test]
fn every_case_file_has_its_test() {
    let mut on_disk: Vec<String> = std::fs::read_dir(cases_dir())
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().into_string().ok())
        .filter_map(|n| n.strip_suffix(".log").map(|n| n.replace('-', "_")))
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = CASES.iter().map(|c| c.to_string()).collect();
    listed.sort();
    assert_eq!(
        on_disk, listed,
        "tests/cases/*.log and the cases! list differ"
    );
}
