//! dlcount library crate.
