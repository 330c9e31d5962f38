//! Data-driven cases: `tests/cases/NAME.log` through the pipe must give
//! exactly `tests/cases/NAME.expected.json` (`report --json --detail`).
//! Lines starting with `#` are comments of the case and are stripped.

use super::Site;
use serde_json::Value;
use std::path::Path;

fn case_input(log: &Path) -> Vec<u8> {
    let text = std::fs::read(log).unwrap();
    text.split_inclusive(|&b| b == b'\n')
        .filter(|l| !l.starts_with(b"#"))
        .flatten()
        .copied()
        .collect()
}

#[test]
fn every_case_gives_its_expected_report_through_pipe_and_import() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().into_string().ok())
        .filter_map(|n| n.strip_suffix(".log").map(str::to_string))
        .collect();
    names.sort();
    assert!(names.len() >= 3, "cases missing in {}", dir.display());
    for name in names {
        let input = case_input(&dir.join(format!("{name}.log")));
        let expected: Value = serde_json::from_slice(
            &std::fs::read(dir.join(format!("{name}.expected.json"))).unwrap(),
        )
        .unwrap();
        // Through the pipe…
        let site = Site::new();
        let (code, err) = site.pipe_all(&input, &[]);
        assert_eq!(code, 0, "{name}: {err}");
        assert_eq!(site.report(), expected, "case {name} through the pipe");
        // …and through import, also twice (idempotent), also after the pipe.
        let file = site.dir.path().join("in.log");
        std::fs::write(&file, &input).unwrap();
        let (code, err) = site.import(&[&file]);
        assert_eq!(code, 0, "{name}: {err}");
        assert_eq!(
            site.report(),
            expected,
            "case {name}: import after pipe double counted"
        );
        let fresh = Site::new();
        fresh.import(&[&file]);
        fresh.import(&[&file]);
        assert_eq!(fresh.report(), expected, "case {name} through import twice");
    }
}
