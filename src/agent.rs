//! Client classes from User-Agent strings: browser, downloader, bot, other.
//!
//! The patterns are data (`src/agent/patterns.txt`, embedded), decided in
//! the order the file states: downloaders first, because every well-known
//! robot list marks wget, curl or aria2 as robots and on a download server
//! they are people; then bots, then browsers; anything else is `other`.
//!
//! Invariants: one User-Agent always gets the same class (the patterns are
//! fixed for the process), and a distinct User-Agent string is classified
//! once — a real log has a few thousand distinct strings among millions of
//! lines, so [`AgentClassifier::class`] answers from a cache and the regular
//! expressions run only for strings it has not seen.
//!
//! A download's class (see [`ClientClass::strongest`]) is the first of
//! browser, downloader, other, bot that any of its lines has: a human signal
//! wins, and the answer does not depend on the order of the lines.

use regex::bytes::RegexSet;
use rustc_hash::FxHashMap as HashMap;

/// Who fetched a file, as far as its User-Agent tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ClientClass {
    Browser,
    Downloader,
    Other,
    Bot,
}

impl ClientClass {
    /// Every class, in the order a download takes the first one present.
    pub const ALL: [ClientClass; 4] = [
        ClientClass::Browser,
        ClientClass::Downloader,
        ClientClass::Other,
        ClientClass::Bot,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ClientClass::Browser => "browser",
            ClientClass::Downloader => "downloader",
            ClientClass::Other => "other",
            ClientClass::Bot => "bot",
        }
    }

    pub fn from_name(name: &str) -> Option<ClientClass> {
        ClientClass::ALL.into_iter().find(|c| c.name() == name)
    }

    /// The class of a download whose lines have classes `self` and `other`:
    /// the earlier in [`ClientClass::ALL`]. Commutative and associative, so
    /// any order of lines gives the same answer.
    pub fn strongest(self, other: ClientClass) -> ClientClass {
        self.min(other)
    }
}

/// The embedded pattern file.
const PATTERNS: &str = include_str!("agent/patterns.txt");

/// Distinct User-Agents remembered before the cache starts over (a flood of
/// random strings must not grow memory without bound).
const CACHE_LIMIT: usize = 20_000;

/// Classifies User-Agent strings (see the module header).
#[derive(Debug, Clone)]
pub struct AgentClassifier {
    /// One set per decided class, in the order they are tried.
    sets: Vec<(ClientClass, RegexSet)>,
    cache: HashMap<Box<[u8]>, ClientClass>,
}

/// A line of the pattern file that is not `class regex`.
#[derive(Debug, thiserror::Error)]
#[error("User-Agent patterns, line {line}: {problem}")]
pub struct PatternError {
    pub line: usize,
    pub problem: String,
}

impl AgentClassifier {
    /// The classifier of the embedded patterns.
    pub fn new() -> AgentClassifier {
        // The embedded file is tested (`embedded_patterns_compile`).
        AgentClassifier::from_patterns(PATTERNS).expect("the embedded User-Agent patterns")
    }

    /// A classifier from pattern text in the embedded file's syntax.
    pub fn from_patterns(text: &str) -> Result<AgentClassifier, PatternError> {
        let order = [
            ClientClass::Downloader,
            ClientClass::Bot,
            ClientClass::Browser,
        ];
        let mut by_class: Vec<Vec<String>> = vec![Vec::new(); order.len()];
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let err = |problem: String| PatternError {
                line: i + 1,
                problem,
            };
            let (class, pattern) = line
                .split_once(char::is_whitespace)
                .ok_or_else(|| err("expected `class pattern`".into()))?;
            let slot = order
                .iter()
                .position(|c| c.name() == class)
                .ok_or_else(|| {
                    err(format!(
                        "unknown class {class:?} (downloader, bot, browser)"
                    ))
                })?;
            by_class[slot].push(format!("(?i-u:{})", pattern.trim()));
        }
        let mut sets = Vec::with_capacity(order.len());
        for (class, patterns) in order.into_iter().zip(by_class) {
            let set = RegexSet::new(&patterns).map_err(|e| PatternError {
                line: 0,
                problem: format!("{} patterns: {e}", class.name()),
            })?;
            sets.push((class, set));
        }
        Ok(AgentClassifier {
            sets,
            cache: HashMap::default(),
        })
    }

    /// The class of one User-Agent as logged (`-` and empty are `other`).
    pub fn class(&mut self, user_agent: &[u8]) -> ClientClass {
        if let Some(&c) = self.cache.get(user_agent) {
            return c;
        }
        let c = self.decide(user_agent);
        if self.cache.len() >= CACHE_LIMIT {
            self.cache.clear();
        }
        self.cache.insert(user_agent.into(), c);
        c
    }

    fn decide(&self, user_agent: &[u8]) -> ClientClass {
        if user_agent.is_empty() || user_agent == b"-" {
            return ClientClass::Other;
        }
        self.sets
            .iter()
            .find(|(_, set)| set.is_match(user_agent))
            .map_or(ClientClass::Other, |(class, _)| *class)
    }

    /// How many distinct User-Agents are cached (for tests).
    pub fn cached(&self) -> usize {
        self.cache.len()
    }
}

impl Default for AgentClassifier {
    fn default() -> Self {
        AgentClassifier::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_patterns_compile() {
        AgentClassifier::from_patterns(PATTERNS).unwrap();
    }

    /// `tests/cases/user-agents.txt`: real User-Agent strings, each with its
    /// class. Every mismatch is listed, so one does not hide the others.
    #[test]
    fn every_user_agent_case_gets_its_class() {
        let cases = include_str!("../tests/cases/user-agents.txt");
        let mut c = AgentClassifier::new();
        let mut wrong = Vec::new();
        let mut seen = 0;
        for line in cases.lines() {
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let (class, ua) = line.split_once('\t').expect("class<TAB>User-Agent");
            let want = ClientClass::from_name(class).expect("a class name");
            let ua = if ua == "<empty>" { "" } else { ua };
            let got = c.class(ua.as_bytes());
            if got != want {
                wrong.push(format!("{ua:?}: {} instead of {}", got.name(), want.name()));
            }
            seen += 1;
        }
        assert!(
            wrong.is_empty(),
            "{} of {seen} wrong:\n{}",
            wrong.len(),
            wrong.join("\n")
        );
        assert!(seen >= 40, "only {seen} cases");
    }

    #[test]
    fn a_distinct_user_agent_is_classified_once() {
        let mut c = AgentClassifier::new();
        for _ in 0..3 {
            assert_eq!(c.class(b"Wget/1.21.4"), ClientClass::Downloader);
            assert_eq!(c.class(b"curl/8.5.0"), ClientClass::Downloader);
        }
        assert_eq!(c.cached(), 2);
    }

    #[test]
    fn a_download_takes_the_strongest_class_in_any_order() {
        use ClientClass::*;
        let lines = [Bot, Other, Downloader, Bot, Browser];
        let forward = lines.iter().copied().reduce(ClientClass::strongest);
        let backward = lines.iter().rev().copied().reduce(ClientClass::strongest);
        assert_eq!((forward, backward), (Some(Browser), Some(Browser)));
        assert_eq!(Bot.strongest(Other), Other);
        assert_eq!(Other.strongest(Downloader), Downloader);
    }

    #[test]
    fn a_bad_pattern_file_names_its_line() {
        let e = AgentClassifier::from_patterns("# x\nrobot foo\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.to_string().contains("unknown class \"robot\""), "{e}");
        let e = AgentClassifier::from_patterns("bot (unclosed\n").unwrap_err();
        assert!(e.to_string().contains("bot patterns"), "{e}");
    }
}
