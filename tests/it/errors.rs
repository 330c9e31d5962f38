//! What a user sees when the command line or the environment is wrong: one
//! line naming the problem, a non-zero exit — and in pipe mode, Apache's
//! pipe is still drained so the site never hangs on a misconfigured logger.

use super::{bin, Site};
use std::io::Write;
use std::process::{Command, Stdio};

fn run(args: &[&str], stdin: &[u8]) -> (i32, String) {
    let mut child = Command::new(bin())
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
            "dlcount-pipe: error: unexpected argument '--no-such-option' found; not counting \
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
    let out = Command::new(bin()).arg("--help").output().unwrap();
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
