//! `dlcount-pipe report`: the counts as a readable table, JSON or CSV.
//!
//! Invariant: `--json` is exactly the old cron script's `counts.json`
//! structure, `{"<path>": {"YYYY-MM": downloads}}`, keys sorted (paths
//! bytewise, months ascending), so existing consumers keep working; the
//! statistics page writes these very bytes as `.stats/counts.json`.
//!
//! Completed downloads (`--completed`, `--daily`; see `coverage`) are
//! unknown for days counted before dlcount kept them and for files whose
//! size it does not know: `--completed --json` leaves such months out like
//! months of none, `--daily --json` writes `null`, CSV an empty field and
//! the tables `?` — never 0.
//!
//! The downloads broken down by a fact (`--by class`, `--by country`, see
//! `store::facts`) always add up to the month's downloads of `report
//! --json`: the downloads whose fact is not known (counted before dlcount
//! kept facts, or without a country code) are `unknown`, never left out.
//!
//! `--summary` gives the statistics overview's headline figures (and each
//! month page's) from the same reads the pages make (`monthly` and
//! `Backend::page_facts`), so the two never disagree: downloads, completed
//! where known (`null` where not, never 0), bots, requests, bytes, files,
//! the first day counted per day, and each month's mean per day.

use crate::render::human_size;
use crate::store::{
    date_of, month_of, FactDayRow, FileDayRow, MonthRow, NetworkDayRow, ServerMonthRow,
};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// `report --json` (`detail = false`) or `report --json --detail`.
pub fn to_json(rows: &[MonthRow], detail: bool) -> String {
    let mut files: BTreeMap<&str, BTreeMap<&str, &MonthRow>> = BTreeMap::new();
    for r in rows {
        files.entry(&r.path).or_default().insert(&r.month, r);
    }
    let mut top = Map::new();
    for (path, months) in files {
        let mut m = Map::new();
        for (month, r) in months {
            let v = if detail {
                json!({"downloads": r.downloads, "requests": r.requests, "bytes": r.bytes})
            } else {
                json!(r.downloads)
            };
            m.insert(month.to_string(), v);
        }
        top.insert(path.to_string(), Value::Object(m));
    }
    let mut s = serde_json::to_string_pretty(&Value::Object(top)).expect("JSON of plain maps");
    s.push('\n');
    s
}

/// One line of `report --summary`: the whole period or one month.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SummaryLine {
    pub downloads: u64,
    /// Completed downloads where known; `None`: known for none of them.
    pub completed: Option<u64>,
    /// The downloads `completed` is counted over (those whose completion is known).
    pub completed_of: u64,
    pub bots: u64,
    pub requests: u64,
    pub bytes: u64,
    pub files: usize,
    /// Mean downloads per counted day (months only; see [`summary`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_day: Option<f64>,
}

/// The headline figures: the whole period, then each month.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Summary {
    /// The first day counted per day (`YYYY-MM-DD`), if any.
    pub first_day: Option<String>,
    pub period: SummaryLine,
    pub months: BTreeMap<String, SummaryLine>,
}

/// `report --summary`: sums of `monthly`'s rows and `page_facts`' bots;
/// a month's mean per day is its downloads counted per day over its days
/// from the first counted day (or the 1st) to `today` (or its last day),
/// as the month pages show it, to one decimal.
pub fn summary(rows: &[MonthRow], facts: &crate::store::PageFacts, today: i32) -> Summary {
    fn line() -> SummaryLine {
        SummaryLine {
            downloads: 0,
            completed: None,
            completed_of: 0,
            bots: 0,
            requests: 0,
            bytes: 0,
            files: 0,
            per_day: None,
        }
    }
    fn add(l: &mut SummaryLine, r: &MonthRow) {
        l.downloads = l.downloads.saturating_add(r.downloads);
        l.requests = l.requests.saturating_add(r.requests);
        l.bytes = l.bytes.saturating_add(r.bytes);
        if let Some(c) = r.completed {
            l.completed = Some(l.completed.unwrap_or(0).saturating_add(c));
            l.completed_of = l.completed_of.saturating_add(r.downloads);
        }
        l.files += 1;
    }
    let mut period = line();
    let mut months: BTreeMap<String, SummaryLine> = BTreeMap::new();
    let mut files = std::collections::BTreeSet::new();
    for r in rows {
        add(&mut period, r);
        add(months.entry(r.month.clone()).or_insert_with(line), r);
        files.insert(r.path.as_str());
    }
    period.files = files.len();
    for f in facts
        .months
        .iter()
        .filter(|f| f.kind == "class" && f.value == "bot")
    {
        period.bots = period.bots.saturating_add(f.n);
        let m = months.entry(f.month.clone()).or_insert_with(line);
        m.bots = m.bots.saturating_add(f.n);
    }
    let began = facts.days.first().map(|d| d.day);
    let mut counted: BTreeMap<String, u64> = BTreeMap::new();
    for d in &facts.days {
        let e = counted.entry(month_of(d.day)).or_default();
        *e = e.saturating_add(d.downloads);
    }
    for (month, n) in counted {
        let Some((from, to)) = crate::render::detail::month_days(&month) else {
            continue;
        };
        let start = began.map_or(from, |b| b.max(from));
        let end = to.min(today.max(start));
        let days = (end - start + 1).max(1);
        if let Some(m) = months.get_mut(&month) {
            m.per_day = Some((n as f64 * 10.0 / days as f64).round() / 10.0);
        }
    }
    Summary {
        first_day: began.map(crate::store::date_of),
        period,
        months,
    }
}

fn opt(v: Option<u64>) -> String {
    v.map_or("-".to_string(), |v| v.to_string())
}

/// `report --summary --json`.
pub fn summary_to_json(s: &Summary) -> String {
    let mut out = serde_json::to_string_pretty(s).expect("JSON of plain values");
    out.push('\n');
    out
}

/// `report --summary --csv`: one row per month, then `total`; completed
/// empty where not known.
pub fn summary_to_csv(s: &Summary) -> String {
    let mut out =
        String::from("month,downloads,completed,completed_of,bots,requests,bytes,files,per_day\n");
    let row = |out: &mut String, name: &str, l: &SummaryLine| {
        let _ = writeln!(
            out,
            "{name},{},{},{},{},{},{},{},{}",
            l.downloads,
            l.completed.map_or(String::new(), |c| c.to_string()),
            l.completed_of,
            l.bots,
            l.requests,
            l.bytes,
            l.files,
            l.per_day.map_or(String::new(), |p| format!("{p:.1}"))
        );
    };
    for (m, l) in &s.months {
        row(&mut out, m, l);
    }
    row(&mut out, "total", &s.period);
    out
}

/// `report --summary`: a table, newest month first, the period last.
pub fn summary_to_table(s: &Summary) -> String {
    if s.months.is_empty() {
        return "No downloads counted yet.\n".to_string();
    }
    let mut out = format!(
        "{:<8} {:>12} {:>12} {:>10} {:>12} {:>10} {:>6} {:>8}\n",
        "Month", "Downloads", "Completed", "Bots", "Requests", "Data", "Files", "Per day"
    );
    let row = |out: &mut String, name: &str, l: &SummaryLine| {
        let _ = writeln!(
            out,
            "{name:<8} {:>12} {:>12} {:>10} {:>12} {:>10} {:>6} {:>8}",
            l.downloads,
            opt(l.completed),
            l.bots,
            l.requests,
            human_size(l.bytes),
            l.files,
            l.per_day.map_or("-".to_string(), |p| format!("{p:.1}"))
        );
    };
    for (m, l) in s.months.iter().rev() {
        row(&mut out, m, l);
    }
    row(&mut out, "Total", &s.period);
    if let Some(d) = &s.first_day {
        let _ = writeln!(out, "Counting per day since {d}.");
    }
    let _ = writeln!(
        out,
        "Completed: \"-\" where not known (counted before dlcount kept it, or a file not under ROOT)."
    );
    out
}

/// `report --json --by server`: `{"<server>": {"YYYY-MM": {"downloads",
/// "requests", "bytes"}}}`, keys sorted.
pub fn servers_to_json(rows: &[ServerMonthRow]) -> String {
    let mut servers: BTreeMap<&str, Map<String, Value>> = BTreeMap::new();
    for r in rows {
        servers.entry(&r.server).or_default().insert(
            r.month.clone(),
            json!({"downloads": r.downloads, "requests": r.requests, "bytes": r.bytes}),
        );
    }
    let top: Map<String, Value> = servers
        .into_iter()
        .map(|(s, m)| (s.to_string(), Value::Object(m)))
        .collect();
    let mut s = serde_json::to_string_pretty(&Value::Object(top)).expect("JSON of plain maps");
    s.push('\n');
    s
}

/// The readable server table: each server's months, newest first, then its total.
pub fn servers_to_table(rows: &[ServerMonthRow]) -> String {
    if rows.is_empty() {
        return "No downloads counted per server yet.\n".to_string();
    }
    let width = rows
        .iter()
        .map(|r| r.server.chars().count())
        .max()
        .unwrap_or(6)
        .clamp(6, 64);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<width$}  {:<8}  {:>10}  {:>10}  {:>11}",
        "Server", "Month", "Downloads", "Requests", "Bytes"
    );
    let mut servers: BTreeMap<&str, Vec<&ServerMonthRow>> = BTreeMap::new();
    for r in rows {
        servers.entry(&r.server).or_default().push(r);
    }
    for (server, mut months) in servers {
        months.sort_by(|a, b| b.month.cmp(&a.month));
        let (mut dl, mut rq, mut by) = (0u64, 0u64, 0u64);
        for r in &months {
            let _ = writeln!(
                out,
                "{server:<width$}  {:<8}  {:>10}  {:>10}  {:>11}",
                r.month,
                r.downloads,
                r.requests,
                human_size(r.bytes)
            );
            dl = dl.saturating_add(r.downloads);
            rq = rq.saturating_add(r.requests);
            by = by.saturating_add(r.bytes);
        }
        let _ = writeln!(
            out,
            "{server:<width$}  {:<8}  {dl:>10}  {rq:>10}  {:>11}",
            "total",
            human_size(by)
        );
    }
    out.push_str("A download resumed on another server counts for each server it came from.\n");
    out
}

/// File → month → value → downloads, from the month rows and one kind of
/// fact rows: `fixed` values are always present (the four classes), the
/// others as counted, and `unknown` holds the rest of the month's
/// downloads when there is a rest. Months without downloads are left out.
pub type FactMonths = BTreeMap<String, BTreeMap<String, Vec<(String, u64)>>>;

/// See [`FactMonths`]. Referring hosts count requests, not downloads:
/// with `requests` the month's requests are what the values add up to.
pub fn fact_months(
    months: &[MonthRow],
    facts: &[FactDayRow],
    fixed: &[&str],
    requests: bool,
) -> FactMonths {
    let mut counted: BTreeMap<(&str, String), BTreeMap<&str, u64>> = BTreeMap::new();
    for f in facts {
        let e = counted
            .entry((&f.path, month_of(f.day)))
            .or_default()
            .entry(&f.value)
            .or_default();
        *e = e.saturating_add(f.n);
    }
    let mut out = FactMonths::new();
    for m in months.iter().filter(|m| m.downloads > 0) {
        let got = counted.remove(&(m.path.as_str(), m.month.clone()));
        let got = got.unwrap_or_default();
        let mut values: Vec<(String, u64)> = fixed
            .iter()
            .map(|v| (v.to_string(), got.get(v).copied().unwrap_or(0)))
            .collect();
        for (v, n) in &got {
            if !fixed.contains(v) && *v != "unknown" {
                values.push((v.to_string(), *n));
            }
        }
        let known = values.iter().fold(0u64, |a, (_, n)| a.saturating_add(*n));
        let total = if requests { m.requests } else { m.downloads };
        let rest = total.saturating_sub(known);
        if rest > 0 {
            values.push(("unknown".to_string(), rest));
        }
        out.entry(m.path.clone())
            .or_default()
            .insert(m.month.clone(), values);
    }
    out
}

/// Names the requests referred by one of the site's own hosts (`--site-host`,
/// any case, a trailing dot ignored) "this site", as `referer::RefererHost`.
pub fn label_own_hosts(facts: &mut [FactDayRow], own: &[String]) {
    let own: Vec<String> = own
        .iter()
        .map(|h| crate::referer::host_label(h.as_bytes()))
        .collect();
    for f in facts.iter_mut() {
        if own.contains(&f.value) {
            f.value = crate::referer::RefererHost::ThisSite.label().to_string();
        }
    }
}

/// `report --json --by class|country`:
/// `{"<path>": {"YYYY-MM": {"<value>": downloads}}}`.
pub fn facts_to_json(f: &FactMonths) -> String {
    let top: Map<String, Value> = f
        .iter()
        .map(|(path, months)| {
            let m: Map<String, Value> = months
                .iter()
                .map(|(month, values)| {
                    let v: Map<String, Value> =
                        values.iter().map(|(k, n)| (k.clone(), json!(n))).collect();
                    (month.clone(), Value::Object(v))
                })
                .collect();
            (path.clone(), Value::Object(m))
        })
        .collect();
    let mut s = serde_json::to_string_pretty(&Value::Object(top)).expect("JSON of plain maps");
    s.push('\n');
    s
}

/// `report --csv --by class|country|referer`: one row per file, month and value.
pub fn facts_to_csv(f: &FactMonths, what: &str) -> String {
    let unit = if what == "referer" {
        "requests"
    } else {
        "downloads"
    };
    let mut out = format!("path,month,{what},{unit}\n");
    for (path, months) in f {
        for (month, values) in months {
            for (v, n) in values {
                let _ = writeln!(out, "{},{month},{},{n}", csv_field(path), csv_field(v));
            }
        }
    }
    out
}

/// The readable table of [`FactMonths`]: newest month first.
pub fn facts_to_table(f: &FactMonths, what: &str) -> String {
    if f.is_empty() {
        return "No downloads counted yet.\n".to_string();
    }
    let width = f
        .keys()
        .map(|p| p.chars().count())
        .max()
        .unwrap_or(4)
        .clamp(4, 70);
    type Values = Vec<(String, u64)>;
    let mut by_month: BTreeMap<&str, Vec<(&str, &Values)>> = BTreeMap::new();
    for (path, months) in f {
        for (month, values) in months {
            by_month.entry(month).or_default().push((path, values));
        }
    }
    let title = format!("{}{}", what[..1].to_ascii_uppercase(), &what[1..]);
    let unit = if what == "referer" {
        "Requests"
    } else {
        "Downloads"
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<8}  {:<width$}  {title:<10}  {unit:>10}",
        "Month", "File"
    );
    for (month, files) in by_month.into_iter().rev() {
        for (path, values) in files {
            for (i, (v, n)) in values.iter().enumerate() {
                let (m, p) = if i == 0 { (month, path) } else { ("", "") };
                let _ = writeln!(out, "{m:<8}  {p:<width$}  {v:<10}  {n:>10}");
            }
        }
    }
    if what == "class" || what == "country" {
        out.push_str(
            "unknown: counted before dlcount kept this fact, or not known for the client.\n",
        );
    }
    out
}

/// Per month: (IPv4 /10 networks that downloaded, of 1,024; downloads over IPv6).
pub type NetworkMonths = BTreeMap<String, (u32, u64)>;

/// See [`NetworkMonths`]: a month's networks are the union of its days'.
pub fn network_months(days: &[NetworkDayRow], v6: &[FactDayRow]) -> NetworkMonths {
    let mut bits: BTreeMap<String, [u64; crate::store::facts::NETWORK_WORDS]> = BTreeMap::new();
    for d in days {
        let m = bits.entry(month_of(d.day)).or_default();
        for (a, b) in m.iter_mut().zip(d.bits) {
            *a |= b;
        }
    }
    let mut out: NetworkMonths = bits
        .into_iter()
        .map(|(m, b)| (m, (b.iter().map(|w| w.count_ones()).sum(), 0)))
        .collect();
    for f in v6.iter().filter(|f| f.value == "v6") {
        let e = out.entry(month_of(f.day)).or_default();
        e.1 = e.1.saturating_add(f.n);
    }
    out
}

/// `report --json --by network`: `{"YYYY-MM": {"ipv4_networks": n, "ipv6_downloads": n}}`.
pub fn networks_to_json(m: &NetworkMonths) -> String {
    let top: Map<String, Value> = m
        .iter()
        .map(|(month, (v4, v6))| {
            (
                month.clone(),
                json!({"ipv4_networks": v4, "ipv6_downloads": v6}),
            )
        })
        .collect();
    let mut s = serde_json::to_string_pretty(&Value::Object(top)).expect("JSON of plain maps");
    s.push('\n');
    s
}

/// `report --csv --by network`.
pub fn networks_to_csv(m: &NetworkMonths) -> String {
    let mut out = String::from("month,ipv4_networks,ipv6_downloads\n");
    for (month, (v4, v6)) in m {
        let _ = writeln!(out, "{month},{v4},{v6}");
    }
    out
}

/// The readable network table, newest month first.
pub fn networks_to_table(m: &NetworkMonths) -> String {
    if m.is_empty() {
        return "No network coverage counted yet.\n".to_string();
    }
    let mut out = format!(
        "{:<8}  {:>22}  {:>14}\n",
        "Month", "IPv4 /10 networks", "IPv6 downloads"
    );
    for (month, (v4, v6)) in m.iter().rev() {
        let _ = writeln!(out, "{month:<8}  {:>22}  {v6:>14}", format!("{v4} of 1024"));
    }
    out
}

/// `report --json --completed`: `{"<path>": {"YYYY-MM": completed}}`,
/// keys sorted as `report --json`; months with none (or unknown) and files
/// left without a month are left out.
pub fn completed_to_json(rows: &[MonthRow]) -> String {
    let mut files: BTreeMap<&str, Map<String, Value>> = BTreeMap::new();
    for r in rows {
        if let Some(n) = r.completed.filter(|&n| n > 0) {
            files
                .entry(&r.path)
                .or_default()
                .insert(r.month.clone(), json!(n));
        }
    }
    let top: Map<String, Value> = files
        .into_iter()
        .map(|(p, m)| (p.to_string(), Value::Object(m)))
        .collect();
    let mut s = serde_json::to_string_pretty(&Value::Object(top)).expect("JSON of plain maps");
    s.push('\n');
    s
}

/// `report --csv --completed`: one row per file and month; `completed`
/// empty when unknown.
pub fn completed_to_csv(rows: &[MonthRow]) -> String {
    let mut out = String::from("path,month,downloads,completed\n");
    for r in rows {
        let _ = writeln!(
            out,
            "{},{},{},{}",
            csv_field(&r.path),
            r.month,
            r.downloads,
            r.completed.map(|n| n.to_string()).unwrap_or_default()
        );
    }
    out
}

/// A completed figure for the tables: `?` when unknown.
fn shown(n: Option<u64>) -> String {
    n.map_or_else(|| "?".to_string(), |n| n.to_string())
}

/// The share of downloads completed, for the tables.
fn rate(completed: Option<u64>, downloads: u64) -> String {
    match completed {
        Some(c) if downloads > 0 => format!("{:.0} %", c as f64 * 100.0 / downloads as f64),
        _ => "?".to_string(),
    }
}

/// `report --completed`: per month (newest first) each file's downloads,
/// completed downloads and their share; `?` where completion is unknown.
pub fn completed_to_table(rows: &[MonthRow]) -> String {
    if rows.is_empty() {
        return "No downloads counted yet.\n".to_string();
    }
    let width = rows
        .iter()
        .map(|r| r.path.chars().count())
        .max()
        .unwrap_or(4)
        .clamp(4, 70);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<8}  {:<width$}  {:>10}  {:>10}  {:>6}",
        "Month", "File", "Downloads", "Completed", "Rate"
    );
    let mut months: BTreeMap<&str, Vec<&MonthRow>> = BTreeMap::new();
    for r in rows {
        months.entry(&r.month).or_default().push(r);
    }
    for (month, list) in months.into_iter().rev() {
        for (i, r) in list.iter().enumerate() {
            let m = if i == 0 { month } else { "" };
            let _ = writeln!(
                out,
                "{m:<8}  {:<width$}  {:>10}  {:>10}  {:>6}",
                r.path,
                r.downloads,
                shown(r.completed),
                rate(r.completed, r.downloads)
            );
        }
    }
    out.push_str(
        "Completed: the bytes a download got that day covered the whole file; ? = unknown \
         (counted before dlcount kept it, or the file is not under the root).\n",
    );
    out
}

/// `report --json --daily`: `{"<path>": {"YYYY-MM-DD": {"downloads",
/// "requests", "bytes", "completed"}}}`, `completed` `null` when unknown.
pub fn daily_to_json(rows: &[FileDayRow]) -> String {
    let mut files: BTreeMap<&str, Map<String, Value>> = BTreeMap::new();
    for r in rows {
        files.entry(&r.path).or_default().insert(
            date_of(r.day),
            json!({
                "downloads": r.downloads,
                "requests": r.requests,
                "bytes": r.bytes,
                "completed": r.completed,
            }),
        );
    }
    let top: Map<String, Value> = files
        .into_iter()
        .map(|(p, m)| (p.to_string(), Value::Object(m)))
        .collect();
    let mut s = serde_json::to_string_pretty(&Value::Object(top)).expect("JSON of plain maps");
    s.push('\n');
    s
}

/// `report --csv --daily`: one row per file and day; `completed` empty when unknown.
pub fn daily_to_csv(rows: &[FileDayRow]) -> String {
    let mut out = String::from("path,day,downloads,requests,bytes,completed\n");
    for r in rows {
        let _ = writeln!(
            out,
            "{},{},{},{},{},{}",
            csv_field(&r.path),
            date_of(r.day),
            r.downloads,
            r.requests,
            r.bytes,
            r.completed.map(|n| n.to_string()).unwrap_or_default()
        );
    }
    out
}

/// `report --daily`: per day (newest first) each file's figures.
pub fn daily_to_table(rows: &[FileDayRow]) -> String {
    if rows.is_empty() {
        return "No downloads counted per day yet.\n".to_string();
    }
    let width = rows
        .iter()
        .map(|r| r.path.chars().count())
        .max()
        .unwrap_or(4)
        .clamp(4, 70);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<10}  {:<width$}  {:>10}  {:>10}  {:>11}  {:>10}",
        "Day", "File", "Downloads", "Requests", "Bytes", "Completed"
    );
    let mut days: BTreeMap<i32, Vec<&FileDayRow>> = BTreeMap::new();
    for r in rows {
        days.entry(r.day).or_default().push(r);
    }
    for (day, list) in days.into_iter().rev() {
        let date = date_of(day);
        for (i, r) in list.iter().enumerate() {
            let d = if i == 0 { date.as_str() } else { "" };
            let _ = writeln!(
                out,
                "{d:<10}  {:<width$}  {:>10}  {:>10}  {:>11}  {:>10}",
                r.path,
                r.downloads,
                r.requests,
                human_size(r.bytes),
                shown(r.completed)
            );
        }
    }
    out
}

/// `report --csv`: one row per file and month.
pub fn to_csv(rows: &[MonthRow]) -> String {
    let mut out = String::from("path,month,downloads,requests,bytes\n");
    for r in rows {
        let _ = writeln!(
            out,
            "{},{},{},{},{}",
            csv_field(&r.path),
            r.month,
            r.downloads,
            r.requests,
            r.bytes
        );
    }
    out
}

/// A CSV field (RFC 4180): quoted when it holds a comma, quote or line break.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The readable month × file table: newest month first, a total per month,
/// then per-file totals and the grand total.
pub fn to_table(rows: &[MonthRow]) -> String {
    if rows.is_empty() {
        return "No downloads counted yet.\n".to_string();
    }
    let width = rows
        .iter()
        .map(|r| r.path.chars().count())
        .max()
        .unwrap_or(4)
        .clamp(13, 70);
    let mut out = String::new();
    let header = |out: &mut String, first: &str| {
        let _ = writeln!(
            out,
            "{first:<8}  {:<width$}  {:>10}  {:>10}  {:>11}",
            "File", "Downloads", "Requests", "Bytes"
        );
    };
    let mut months: BTreeMap<&str, Vec<&MonthRow>> = BTreeMap::new();
    for r in rows {
        months.entry(&r.month).or_default().push(r);
    }
    header(&mut out, "Month");
    for (month, mut list) in months.into_iter().rev() {
        list.sort_by(|a, b| {
            b.downloads
                .cmp(&a.downloads)
                .then_with(|| a.path.cmp(&b.path))
        });
        let (mut d, mut q, mut b) = (0u64, 0u64, 0u64);
        for (i, r) in list.iter().enumerate() {
            let m = if i == 0 { month } else { "" };
            let _ = writeln!(
                out,
                "{m:<8}  {:<width$}  {:>10}  {:>10}  {:>11}",
                r.path,
                r.downloads,
                r.requests,
                human_size(r.bytes)
            );
            d = d.saturating_add(r.downloads);
            q = q.saturating_add(r.requests);
            b = b.saturating_add(r.bytes);
        }
        let _ = writeln!(
            out,
            "{:<8}  {:<width$}  {d:>10}  {q:>10}  {:>11}",
            "",
            "(month total)",
            human_size(b)
        );
    }
    let mut files: BTreeMap<&str, (u64, u64, u64)> = BTreeMap::new();
    for r in rows {
        let e = files.entry(&r.path).or_default();
        e.0 = e.0.saturating_add(r.downloads);
        e.1 = e.1.saturating_add(r.requests);
        e.2 = e.2.saturating_add(r.bytes);
    }
    out.push('\n');
    header(&mut out, "All time");
    let mut list: Vec<_> = files.into_iter().collect();
    list.sort_by(|a, b| b.1 .0.cmp(&a.1 .0).then_with(|| a.0.cmp(b.0)));
    let (mut d, mut q, mut b) = (0u64, 0u64, 0u64);
    for (path, (dl, rq, by)) in list {
        let _ = writeln!(
            out,
            "{:<8}  {path:<width$}  {dl:>10}  {rq:>10}  {:>11}",
            "",
            human_size(by)
        );
        d = d.saturating_add(dl);
        q = q.saturating_add(rq);
        b = b.saturating_add(by);
    }
    let _ = writeln!(
        out,
        "{:<8}  {:<width$}  {d:>10}  {q:>10}  {:>11}",
        "",
        "(grand total)",
        human_size(b)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(path: &str, month: &str, d: u64, q: u64, b: u64) -> MonthRow {
        MonthRow {
            path: path.into(),
            month: month.into(),
            downloads: d,
            requests: q,
            bytes: b,
            completed: None,
        }
    }

    #[test]
    fn json_is_sorted_and_matches_the_old_structure() {
        let rows = vec![
            row("/b.iso", "2026-11", 2, 3, 10),
            row("/a \"q\".iso", "2026-11", 1, 1, 5),
            row("/b.iso", "2026-10", 4, 4, 40),
        ];
        assert_eq!(
            to_json(&rows, false),
            "{\n  \"/a \\\"q\\\".iso\": {\n    \"2026-11\": 1\n  },\n  \"/b.iso\": {\n    \"2026-10\": 4,\n    \"2026-11\": 2\n  }\n}\n"
        );
        let v: Value = serde_json::from_str(&to_json(&rows, true)).unwrap();
        assert_eq!(
            v["/b.iso"]["2026-10"],
            json!({"downloads": 4, "requests": 4, "bytes": 40})
        );
    }

    fn fact(path: &str, day: i32, value: &str, n: u64) -> FactDayRow {
        FactDayRow {
            path: path.into(),
            day,
            kind: "class".into(),
            value: value.into(),
            n,
        }
    }

    /// The four classes are always there and, with `unknown` for the
    /// downloads counted before facts were kept, add up to the month.
    #[test]
    fn classes_add_up_to_the_month_with_unknown_for_the_rest() {
        // Day 739_556 is 2025-11-01; 739_587 is 2025-12-02.
        let months = vec![
            row("/a,b.iso", "2025-11", 5, 9, 10),
            row("/b.iso", "2025-12", 2, 2, 10),
        ];
        assert_eq!(month_of(739_556), "2025-11");
        assert_eq!(month_of(739_587), "2025-12");
        let facts = vec![
            fact("/a,b.iso", 739_556, "browser", 1),
            fact("/a,b.iso", 739_556, "bot", 2),
            fact("/a,b.iso", 739_557, "bot", 1),
            fact("/b.iso", 739_587, "downloader", 2),
        ];
        let f = fact_months(
            &months,
            &facts,
            &["browser", "downloader", "bot", "other"],
            false,
        );
        let v: Value = serde_json::from_str(&facts_to_json(&f)).unwrap();
        assert_eq!(
            v,
            json!({
                "/a,b.iso": {"2025-11": {"browser": 1, "downloader": 0, "bot": 3, "other": 0, "unknown": 1}},
                "/b.iso": {"2025-12": {"browser": 0, "downloader": 2, "bot": 0, "other": 0}}
            })
        );
        let csv = facts_to_csv(&f, "class");
        assert!(csv.starts_with("path,month,class,downloads\n\"/a,b.iso\",2025-11,browser,1\n"));
        assert!(csv.ends_with("/b.iso,2025-12,other,0\n"), "{csv}");
        let t = facts_to_table(&f, "class");
        assert!(
            t.lines().nth(1).unwrap().starts_with("2025-12   /b.iso"),
            "{t}"
        );
    }

    #[test]
    fn completed_and_daily_exports_show_unknown_as_such() {
        let mut a = row("/a.iso", "2026-11", 5, 9, 100);
        a.completed = Some(3);
        let mut b = row("/a.iso", "2026-12", 2, 2, 10);
        b.completed = Some(0);
        let c = row("/b.iso", "2026-11", 4, 4, 10);
        let rows = [a, b, c];
        assert_eq!(
            completed_to_json(&rows),
            "{\n  \"/a.iso\": {\n    \"2026-11\": 3\n  }\n}\n"
        );
        assert_eq!(
            completed_to_csv(&rows),
            "path,month,downloads,completed\n/a.iso,2026-11,5,3\n/a.iso,2026-12,2,0\n/b.iso,2026-11,4,\n"
        );
        let t = completed_to_table(&rows);
        assert!(t.contains("/a.iso           5           3    60 %"), "{t}");
        assert!(t.contains("/b.iso           4           ?       ?"), "{t}");
        let day = crate::store::day_of(chrono::NaiveDate::from_ymd_opt(2026, 11, 5).unwrap());
        let days = [
            FileDayRow {
                path: "/a.iso".into(),
                day,
                downloads: 2,
                requests: 3,
                bytes: 40,
                completed: Some(1),
            },
            FileDayRow {
                path: "/b.iso".into(),
                day,
                downloads: 1,
                requests: 1,
                bytes: 4,
                completed: None,
            },
        ];
        let v: Value = serde_json::from_str(&daily_to_json(&days)).unwrap();
        assert_eq!(
            v,
            json!({
                "/a.iso": {"2026-11-05": {"downloads": 2, "requests": 3, "bytes": 40, "completed": 1}},
                "/b.iso": {"2026-11-05": {"downloads": 1, "requests": 1, "bytes": 4, "completed": null}},
            })
        );
        assert_eq!(
            daily_to_csv(&days),
            "path,day,downloads,requests,bytes,completed\n/a.iso,2026-11-05,2,3,40,1\n/b.iso,2026-11-05,1,1,4,\n"
        );
        let t = daily_to_table(&days);
        assert!(t.starts_with("Day         File     Downloads"), "{t}");
        assert!(
            t.contains("2026-11-05  /a.iso           2           3"),
            "{t}"
        );
    }

    #[test]
    fn table_has_month_and_grand_totals() {
        let rows = vec![
            row("/b.iso", "2026-11", 2, 3, 2048),
            row("/a.iso", "2026-10", 1, 1, 5),
        ];
        let t = to_table(&rows);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[1].starts_with("2026-11   /b.iso"), "{t}");
        assert!(lines.last().unwrap().contains("(grand total)"), "{t}");
        assert!(
            lines.last().unwrap().contains("         3           4"),
            "{t}"
        );
        assert_eq!(to_table(&[]), "No downloads counted yet.\n");
    }

    #[test]
    fn sizes_are_rounded_as_on_the_pages() {
        // 1,048,575 B is 1023.999 KiB: one decimal makes it 1.0 MiB, as the pages show it.
        let t = to_table(&[row("/a.iso", "2026-11", 1, 1, 1_048_575)]);
        let month_row = t.lines().nth(1).unwrap();
        assert!(month_row.ends_with("    1.0 MiB"), "{t}");
        assert!(!t.contains("KiB"), "{t}");
    }

    /// A damaged database's figures read as i64::MAX (see `store`): totals
    /// of several saturate instead of wrapping into a small number.
    #[test]
    fn totals_of_saturated_figures_do_not_wrap() {
        let max = i64::MAX as u64;
        let rows = vec![
            row("/a.iso", "2026-10", 1, 1, max),
            row("/a.iso", "2026-11", 1, 1, max),
            row("/b.iso", "2026-11", 1, 1, max),
        ];
        let t = to_table(&rows);
        let grand = t.lines().last().unwrap();
        assert!(grand.ends_with("   16.0 EiB"), "{t}");
        assert!(t.contains("(month total)"), "{t}");
    }
}
