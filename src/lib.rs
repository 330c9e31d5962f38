//! dlcount: counts deduplicated ISO downloads from Apache access lines into
//! SQLite and renders the public listing and private statistics pages.
//!
//! One counting pipeline, two sources (Apache's pipe, imported files):
//! lines → [`logformat`] parse → [`classify`] → tally → [`store`].

pub mod classify;
pub mod render;
