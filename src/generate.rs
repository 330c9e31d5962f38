//! `dlcount-pipe generate`: the man pages and shell completions, made from
//! the command-line definition itself (hidden from `--help`; the Debian
//! package build calls it, see scripts/build-deb.sh).
//!
//! Invariant: nothing here is written by hand, so the man pages and the
//! completions can never disagree with the options the binary accepts. We
//! use `clap_mangen` (roff from the `clap::Command`) and `clap_complete`
//! (completion scripts from the same) because they are clap's own
//! generators: they read the very definition `cli.rs` parses with, hidden
//! subcommands stay hidden, and there is no second source to keep in step.

use crate::cli::Cli;
use anyhow::{Context, Result};
use clap::{Args, CommandFactory, Subcommand};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, Args)]
pub struct GenerateArgs {
    #[command(subcommand)]
    pub what: What,
}

#[derive(Debug, Subcommand)]
pub enum What {
    /// Man pages: dlcount-pipe(1) on stdout, or with DIR that page and one per subcommand (dlcount-pipe-import.1, ...) written into DIR
    Man {
        #[arg(value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// A completion script for SHELL on stdout
    Completions {
        #[arg(value_name = "SHELL")]
        shell: clap_complete::Shell,
    },
}

/// The command as installed: named `dlcount-pipe` whatever the binary's
/// file name, so completions register for the installed command.
fn command() -> clap::Command {
    Cli::command().name("dlcount-pipe").bin_name("dlcount-pipe")
}

/// The command for completion scripts: `clap_complete` completes hidden
/// subcommands too (it filters hidden values, not subcommands), so this is
/// the same command rebuilt with its visible subcommands only.
fn completion_command() -> clap::Command {
    let full = command();
    let cmd = clap::Command::new("dlcount-pipe")
        .bin_name("dlcount-pipe")
        .args_conflicts_with_subcommands(true)
        .args(full.get_arguments().cloned())
        .subcommands(full.get_subcommands().filter(|s| !s.is_hide_set()).cloned());
    let cmd = match full.get_about() {
        Some(about) => cmd.about(about.clone()),
        None => cmd,
    };
    // `#[command(version)]` in cli.rs is the crate's version.
    cmd.version(env!("CARGO_PKG_VERSION"))
}

/// Writes the completion script for `shell`.
pub fn completions(shell: clap_complete::Shell, out: &mut dyn Write) {
    clap_complete::generate(shell, &mut completion_command(), "dlcount-pipe", out);
}

/// Runs `generate`; returns the exit code.
pub fn run(args: &GenerateArgs) -> Result<i32> {
    let stdout = std::io::stdout();
    match &args.what {
        What::Man { dir: None } => {
            let mut out = stdout.lock();
            man_page(&mut out)?;
            out.flush()?;
        }
        What::Man { dir: Some(dir) } => {
            for page in man_pages(dir)? {
                println!("{}", page.display());
            }
        }
        What::Completions { shell } => {
            let mut out = stdout.lock();
            completions(*shell, &mut out);
            out.flush()?;
        }
    }
    Ok(0)
}

/// dlcount-pipe(1) alone.
pub fn man_page(out: &mut dyn Write) -> Result<()> {
    clap_mangen::Man::new(command())
        .render(out)
        .context("cannot write the man page")
}

/// Writes dlcount-pipe.1 and one page per visible subcommand into `dir`;
/// returns their paths, sorted.
pub fn man_pages(dir: &Path) -> Result<Vec<PathBuf>> {
    clap_mangen::generate_to(command(), dir)
        .with_context(|| format!("cannot write man pages into {}", dir.display()))?;
    let mut pages = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "1") {
            pages.push(path);
        }
    }
    pages.sort();
    Ok(pages)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_man_page_documents_the_subcommands_and_options_but_not_itself() {
        let mut out = Vec::new();
        man_page(&mut out).unwrap();
        let page = String::from_utf8(out).unwrap();
        assert!(
            page.starts_with(".ie \\n(.g .ds Aq \\(aq"),
            "{}",
            &page[..80]
        );
        assert!(page.contains(".TH dlcount-pipe 1"), "title line");
        for word in ["import\\-json", "report", "render", "check", "\\-\\-config"] {
            assert!(page.contains(word), "{word} missing");
        }
        assert!(!page.contains("generate"), "the hidden subcommand leaked");
    }

    #[test]
    fn man_pages_one_per_visible_subcommand() {
        let dir = tempfile::tempdir().unwrap();
        let names: Vec<String> = man_pages(dir.path())
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "dlcount-pipe-check.1",
                "dlcount-pipe-follow.1",
                "dlcount-pipe-import-json.1",
                "dlcount-pipe-import.1",
                "dlcount-pipe-listen.1",
                "dlcount-pipe-migrate.1",
                "dlcount-pipe-render.1",
                "dlcount-pipe-report.1",
                "dlcount-pipe-templates.1",
                "dlcount-pipe.1",
            ]
        );
    }

    #[test]
    fn completions_complete_the_subcommands_and_their_options_but_not_generate() {
        for shell in [
            clap_complete::Shell::Bash,
            clap_complete::Shell::Zsh,
            clap_complete::Shell::Fish,
        ] {
            let mut out = Vec::new();
            completions(shell, &mut out);
            let script = String::from_utf8(out).unwrap();
            // (fish spells options `-l NAME`)
            for word in ["import-json", "retention-days", "detach", "max-pending"] {
                assert!(script.contains(word), "{shell}: {word} missing");
            }
            assert!(
                !script.contains("generate"),
                "{shell}: the hidden subcommand leaked"
            );
        }
    }
}
