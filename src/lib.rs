//! dlcount: counts deduplicated ISO downloads from Apache access lines into
//! SQLite and renders the public listing and private statistics pages.
//!
//! One counting pipeline, two sources:
//!
//! ```text
//!  stdin (pipe) ─┐                                   ┌─> store (SQLite, the authority on "seen before")
//!  files (import)┴─> tally: logformat → classify ─> ─┤
//!                                                    └─> pages (render trigger) ─> render (templates)
//! ```
//!
//! [`app`] is the entry point; [`pipe`] and [`import`] are the two sources
//! ([`spool`] keeps the pipe's lines while the configuration is unusable and
//! feeds them to the same path later; [`queue`] keeps its counted lines,
//! hashed, while the database cannot take them); [`check`] validates a configuration;
//! [`generate`] writes the man pages and completions for the package.
//!
//! The facts of each download (`store::facts`) come from [`agent`]
//! (User-Agent classes), [`geo`] (country, network) and [`referer`]
//! (referring host), taken in `tally`. A tested building block not yet
//! wired into counting: [`coverage`] (byte ranges, completion).

pub mod agent;
pub mod app;
pub mod check;
pub mod classify;
pub mod cli;
pub mod config;
pub mod coverage;
pub mod daemon;
pub mod dirfd;
pub mod follow;
pub mod generate;
pub mod geo;
pub mod import;
pub mod keys;
pub mod logformat;
pub mod migrate;
pub mod pages;
pub mod pipe;
pub mod privs;
pub mod queue;
pub mod referer;
pub mod render;
pub mod report;
pub mod source;
pub mod spool;
pub mod store;
pub mod syslog;
pub mod tally;
