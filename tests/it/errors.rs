//! What a user sees when the command line or the environment is wrong: one
//! line naming the problem, a non-zero exit — and in pipe mode, Apache's
//! pipe is still drained so the site never hangs on a misconfigured logger.

use super::Site;
use std::io::Write;
use std::process::Stdio;

fn run(args: &[&str], stdin: &[u8]) -> (i32, String) {
    let mut child = super::cmd()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A write error would mean the process stopped reading: the test checks for it.
    let wrote = child.stdin.take().unwrap().write_all(stdin).is_ok();
    let out = child.wait_with_output().unwrap();
    assert!(wrote, "stdin was not drained");
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn unknown_option_is_one_clear_error_and_the_lines_are_kept() {
    // Stdin is a pipe here, as under Apache: one line, and the pipe drained into the spool.
    let site = Site::new();
    let db = site.db.to_str().unwrap();
    let big = vec![b'x'; 1 << 20];
    let (code, err) = run(&["--db", db, "--no-such-option"], &big);
    assert_eq!(code, 2);
    let spool = site.dir.path().join("spool");
    let files = std::fs::read_dir(&spool).unwrap().count();
    assert_eq!(files, 1);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(
            "dlcount: error: unexpected argument '--no-such-option' found; not counting \
             until the configuration is fixed (`dlcount-pipe check` names every problem): lines \
             are kept in "
        ) && err.contains(&format!("(at most 1024 MiB in {})", spool.display())),
        "{err}"
    );
}

#[test]
fn unknown_format_directive_is_named_and_the_pipe_is_drained() {
    let site = Site::new();
    let big = vec![b'x'; 1 << 20];
    let (code, err) = run(
        &[
            "--db",
            site.db.to_str().unwrap(),
            "--format",
            "%h %t \"%r\" %>s %Z",
        ],
        &big,
    );
    assert_eq!(code, 2);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("unknown format directive %Z"), "{err}");
}

#[test]
fn with_nowhere_to_spool_the_pipe_is_still_drained_and_says_so() {
    let lines = super::line("192.0.2.1", 10, 1, "/a.iso", 200, 5).repeat(1000);
    let (code, err) = run(
        &["--db", "/nonexistent/dir/x.sqlite", "--format", "%Z"],
        lines.as_bytes(),
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("cannot spool to /nonexistent/dir/spool")
            && err.contains("lines are read and discarded")
            && err.contains("input closed: 0 line(s) spooled, 1000 discarded"),
        "{err}"
    );
}

#[test]
fn unusable_database_path_is_named() {
    let site = Site::new();
    let (code, err) = run(&["--db", "/nonexistent/dir/x.sqlite"], b"");
    assert_eq!(code, 2);
    assert!(
        err.contains("/nonexistent/dir") && err.contains("does not exist"),
        "{err}"
    );
    let dir = site.dir.path().to_str().unwrap();
    let (code, err) = run(&["--db", dir], b"");
    assert_eq!(code, 2);
    assert!(err.contains("is a directory"), "{err}");
    let (code, err) = run(&["report", "--db", &format!("{dir}/none.sqlite")], b"");
    assert_eq!(code, 2);
    assert!(err.contains("no database at"), "{err}");
}

/// The subcommands and long options `--help` lists, as whole words (a plain
/// `contains("import")` would be satisfied by `import-json`).
fn help_words(help: &str) -> (Vec<String>, Vec<String>) {
    let mut commands = Vec::new();
    let mut options = Vec::new();
    let mut in_commands = false;
    for line in help.lines() {
        if !line.starts_with(' ') {
            in_commands = line.starts_with("Commands:");
            continue;
        }
        let first = line.split_whitespace().next().unwrap_or_default();
        if in_commands && line.starts_with("  ") && !line.starts_with("   ") {
            commands.push(first.to_string());
        }
        for word in line.split([' ', ',', '[', ']']) {
            if let Some(rest) = word.strip_prefix("--") {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                    .collect();
                options.push(format!("--{name}"));
            }
        }
    }
    (commands, options)
}

#[test]
fn help_documents_every_option() {
    let out = super::cmd().arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    let (commands, options) = help_words(&help);
    for opt in [
        "--db",
        "--root",
        "--format",
        "--ext",
        "--user",
        "--config",
        "--retention-days",
        "--refresh",
        "--max-pending",
    ] {
        assert!(options.iter().any(|o| o == opt), "--help lacks {opt}");
    }
    for cmd in [
        "import",
        "import-json",
        "report",
        "render",
        "templates",
        "check",
    ] {
        assert!(
            commands.iter().any(|c| c == cmd),
            "--help lacks {cmd}: {commands:?}"
        );
    }
}

#[test]
fn help_words_are_whole_words() {
    let (commands, options) = help_words(
        "Commands:\n  import-json  Migrate\n               import continued\nOptions:\n      --db-path <P>  x\n",
    );
    assert_eq!(commands, ["import-json"]);
    assert_eq!(options, ["--db-path"]);
}

#[test]
fn an_option_out_of_range_is_one_line_naming_its_bounds_and_check_refuses_it() {
    let site = Site::new();
    let db = site.db.to_str().unwrap();
    let (code, err) = run(&["--db", db, "--retention-days", "4294967295"], b"");
    assert_eq!(code, 2);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(
            "dlcount: error: --retention-days 4294967295 is out of range: give 2 to 3650 days \
             (lines arrive up to a day late); not counting"
        ),
        "{err}"
    );
    let root = site.root.to_str().unwrap();
    for (args, message) in [
        (
            ["--retention-days", "4294967295"],
            "--retention-days 4294967295 is out of range: give 2 to 3650 days (lines arrive up to a day late)",
        ),
        (
            ["--max-pending", "5"],
            "--max-pending 5 is out of range: give 1000 to 2000000 lines",
        ),
        (
            ["--refresh", "2000"],
            "--refresh 120000 s is out of range: give 0 (off) or 1s to 24h",
        ),
        (
            ["--settle", "25h"],
            "--settle 90000 s is out of range: give 0 to 24h",
        ),
    ] {
        let out = super::cmd()
            .args(["check", "--db", db, "--root", root])
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            format!("dlcount: check: {message}\n")
        );
    }
    let help = super::cmd().arg("--help").output().unwrap();
    let help = String::from_utf8(help.stdout).unwrap().replace('\n', " ");
    let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
    for bounds in ["2 to 3650", "1000 to 2000000", "1s to 24h", "at most 24h"] {
        assert!(help.contains(bounds), "--help lacks {bounds}: {help}");
    }
}

#[test]
fn report_ignores_settings_it_does_not_use_and_errors_have_one_prefix() {
    let site = Site::new();
    let (code, err) = site.pipe_all(
        super::line("192.0.2.1", 10, 1, "/a.iso", 200, 5).as_bytes(),
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let cfg = site.dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "db = \"{}\"\nformat = \"%h %Q\"\nsettle = \"1x\"\n",
            site.db.display()
        ),
    )
    .unwrap();
    let report = super::cmd()
        .args(["report", "--json", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    super::assert_succeeded(&report);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&report.stdout).unwrap(),
        serde_json::json!({"/a.iso": {"2026-11": 1}})
    );
    // The commands that do use them name the problem, under the one prefix.
    let import = super::cmd()
        .args(["import", "--config"])
        .arg(&cfg)
        .arg("-")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&import.stderr),
        "dlcount: error: log format \"%h %Q\": unknown format directive %Q\n"
    );
    let render = super::cmd()
        .args(["render", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&render.stderr),
        "dlcount: error: config file: settle \"1x\": give seconds, or a number with s, m or h (30s, 2m, 1h)\n"
    );
}

#[test]
fn settle_takes_the_duration_syntax_of_refresh_and_public_counts_can_be_turned_off() {
    let site = Site::new();
    let cfg = site.dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "db = \"{}\"\nroot = \"{}\"\nsettle = \"1m\"\nrefresh = \"2m\"\npublic_counts = true\n",
            site.db.display(),
            site.root.display()
        ),
    )
    .unwrap();
    let out = super::cmd()
        .args(["check", "--no-public-counts", "--settle", "30s", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    super::assert_succeeded(&out);
    let out = super::cmd()
        .args(["render", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    super::assert_succeeded(&out);
}

/// `$DLCOUNT_CONFIG` naming a file that is not there is an error, not a
/// silent fall-back to no configuration (a typo there would go unnoticed).
#[test]
fn a_missing_dlcount_config_file_is_named() {
    let site = Site::new();
    let out = super::cmd()
        .args(["report", "--db"])
        .arg(&site.db)
        .env("DLCOUNT_CONFIG", "/nonexistent/dlcount.toml")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "dlcount: error: cannot read config file /nonexistent/dlcount.toml: No such file or directory (os error 2)\n"
    );
}
