//! `dlcount-pipe migrate`: moves the counts of one database into another,
//! SQLite or PostgreSQL in either direction, through `store::migrate`'s
//! policy. Owns the command's checks and its summary; the target is
//! rewritten in one transaction, so a failure leaves it as it was.

use crate::config::DbTarget;
use crate::store::migrate::{plan, Options};
use crate::store::{month_of, Store};
use anyhow::{bail, Result};

/// Runs the command; returns the exit code.
pub fn run(source: &DbTarget, target: &DbTarget, add_open_days: bool) -> Result<i32> {
    if source == target {
        bail!("--to {} is the database moved from", target.display());
    }
    if let DbTarget::Sqlite(path) = target {
        crate::config::check_db_path(path)?;
    }
    let dump = Store::open_read(source)?.export()?;
    let mut to = Store::open(target)?;
    let mut outcome = None;
    to.transform(&mut |current| {
        let (after, out) = plan(&dump, &current, Options { add_open_days });
        outcome = Some(out);
        Ok(after)
    })?;
    let out = outcome.expect("transform ran the plan");
    let days = |v: &[i32]| match (v.first(), v.last()) {
        (Some(&a), Some(&b)) if a == b => format!("{} day ({})", 1, day_text(a)),
        (Some(&a), Some(&b)) => format!("{} days ({} to {})", v.len(), day_text(a), day_text(b)),
        _ => "no day".to_string(),
    };
    let (from, into) = (source.display(), target.display());
    if out.copied_whole {
        println!(
            "migrate: {into} had counted nothing: it is now a copy of {from} ({}, {} legacy months, \
             the secret and the open days' keys), so counting goes on exactly",
            days(&out.days_merged),
            dump.legacy.len()
        );
    } else if !out.foreign {
        println!(
            "migrate: {from} and {into} share one secret: {} merged (each figure the larger of the two)",
            days(&out.days_merged)
        );
    } else {
        println!(
            "migrate: {from} has another secret than {into} (they counted apart): their clients cannot be \
             matched, so {} of figures added to {into}'s",
            days(&out.days_added)
        );
    }
    if !out.days_already_added.is_empty() {
        println!(
            "migrate: {} added by an earlier migrate, left as they are",
            days(&out.days_already_added)
        );
    }
    if !out.diverged_days.is_empty() {
        eprintln!(
            "dlcount: migrate: {} counted by both databases apart (different day keys) not moved: \
             import those days' logs into {into} to count them exactly",
            days(&out.diverged_days)
        );
    }
    if !out.open_days_left.is_empty() {
        eprintln!(
            "dlcount: migrate: {} still open in {from} not moved: their downloads can be matched with {into}'s \
             only through their logs: `dlcount-pipe import --db {into} --server NAME LOGS…` (or give \
             --add-open-days if the logs are gone)",
            days(&out.open_days_left)
        );
    }
    Ok(0)
}

fn day_text(day: i32) -> String {
    chrono::NaiveDate::from_num_days_from_ce_opt(day)
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| month_of(day))
}
