//! Tables for people (aligned text) and for machines (CSV, JSON).

use std::io::Write;

use anyhow::Result;
use clap::ValueEnum;

/// Output format chosen with `--format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Default)]
pub enum Format {
    /// Aligned columns for people.
    #[default]
    Table,
    /// An array of objects, one per row.
    Json,
    /// RFC 4180 CSV with a header row.
    Csv,
    /// Markdown (`report`, `agenda`; tables elsewhere).
    Md,
    /// Self-contained HTML (`report`, `agenda`; tables elsewhere).
    Html,
    /// One JSON object per line (`export`; tables elsewhere).
    Jsonl,
    /// Apache Parquet files (`export` only).
    Parquet,
}

/// A titled table of strings; numbers are formatted by the caller.
#[derive(Debug, Clone, Default)]
pub struct Table {
    pub title: Option<String>,
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
    /// Columns right-aligned in table output (numbers).
    pub numeric: Vec<bool>,
}

impl Table {
    /// A table with these column names; columns whose name starts with `#`
    /// or that hold numbers are right-aligned automatically.
    pub fn new(headers: &[&str]) -> Table {
        Table {
            title: None,
            headers: headers.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
            numeric: vec![false; headers.len()],
        }
    }

    /// Sets a title printed above the table (table format only).
    pub fn titled(mut self, title: impl Into<String>) -> Table {
        self.title = Some(title.into());
        self
    }

    /// Appends a row.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Appends a row whose missing trailing cells are `-` (no value).
    pub fn row_padded(&mut self, mut cells: Vec<String>) {
        cells.resize(self.headers.len().max(cells.len()), "-".into());
        self.rows.push(cells);
    }

    fn detect_numeric(&mut self) {
        for (i, n) in self.numeric.iter_mut().enumerate() {
            let mut any = false;
            *n = self.rows.iter().all(|r| {
                let c = r.get(i).map(String::as_str).unwrap_or("");
                if c.is_empty() || c == "-" {
                    return true;
                }
                any = true;
                c.trim_end_matches('%')
                    .replace(',', "")
                    .parse::<f64>()
                    .is_ok()
            }) && any;
        }
    }

    /// Writes the table in `format`.
    pub fn write(&mut self, format: Format, out: &mut dyn Write) -> Result<()> {
        match format {
            Format::Table | Format::Md | Format::Html => {
                self.detect_numeric();
                if let Some(t) = &self.title {
                    writeln!(out, "{t}")?;
                }
                let mut widths: Vec<usize> =
                    self.headers.iter().map(|h| h.chars().count()).collect();
                for r in &self.rows {
                    for (i, c) in r.iter().enumerate() {
                        if let Some(w) = widths.get_mut(i) {
                            *w = (*w).max(c.chars().count());
                        }
                    }
                }
                let line = |cells: &[String], out: &mut dyn Write| -> Result<()> {
                    let mut s = String::new();
                    for (i, c) in cells.iter().enumerate() {
                        let w = widths.get(i).copied().unwrap_or(0);
                        let pad = w.saturating_sub(c.chars().count());
                        if i > 0 {
                            s.push_str("  ");
                        }
                        if self.numeric.get(i).copied().unwrap_or(false) {
                            s.push_str(&" ".repeat(pad));
                            s.push_str(c);
                        } else {
                            s.push_str(c);
                            s.push_str(&" ".repeat(pad));
                        }
                    }
                    writeln!(out, "{}", s.trim_end())?;
                    Ok(())
                };
                line(&self.headers, out)?;
                let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
                writeln!(out, "{}", rule.join("  "))?;
                for r in &self.rows {
                    line(r, out)?;
                }
            }
            Format::Csv => {
                let mut w = csv::Writer::from_writer(out);
                w.write_record(&self.headers)?;
                for r in &self.rows {
                    w.write_record(r)?;
                }
                w.flush()?;
            }
            Format::Json => {
                let rows: Vec<serde_json::Value> = self
                    .rows
                    .iter()
                    .map(|r| {
                        let obj: serde_json::Map<String, serde_json::Value> = self
                            .headers
                            .iter()
                            .zip(r)
                            .map(|(h, c)| (h.clone(), json_cell(c)))
                            .collect();
                        serde_json::Value::Object(obj)
                    })
                    .collect();
                serde_json::to_writer_pretty(&mut *out, &rows)?;
                writeln!(out)?;
            }
            Format::Jsonl => {
                for r in &self.rows {
                    let obj: serde_json::Map<String, serde_json::Value> = self
                        .headers
                        .iter()
                        .zip(r)
                        .map(|(h, c)| (h.clone(), json_cell(c)))
                        .collect();
                    serde_json::to_writer(&mut *out, &obj)?;
                    writeln!(out)?;
                }
            }
            Format::Parquet => {
                anyhow::bail!("--format parquet applies to `tandem export` only")
            }
        }
        Ok(())
    }
}

/// Numbers and `true`/`false` stay numbers and booleans in JSON; empty cells are null.
fn json_cell(c: &str) -> serde_json::Value {
    if c.is_empty() || c == "-" {
        return serde_json::Value::Null;
    }
    if c == "true" || c == "false" {
        return (c == "true").into();
    }
    if let Ok(i) = c.parse::<i64>() {
        return i.into();
    }
    if let Ok(f) = c.parse::<f64>() {
        if f.is_finite() {
            return f.into();
        }
    }
    c.into()
}

/// A percentage with `digits` decimals, e.g. `10.53%`; `-` for no value.
pub fn pct(x: Option<f64>, digits: usize) -> String {
    match x {
        Some(v) if v.is_finite() => format!("{:.*}%", digits, v * 100.0),
        _ => "-".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Table {
        let mut t = Table::new(&["stage", "count", "rate"]);
        t.row(vec!["mql".into(), "8000".into(), "-".into()]);
        t.row(vec!["customer, won".into(), "842".into(), "10.53%".into()]);
        t
    }

    #[test]
    fn table_aligns_numbers_right() {
        let mut out = Vec::new();
        sample().write(Format::Table, &mut out).unwrap();
        let s = String::from_utf8(out).unwrap();
        assert_eq!(
            s,
            "stage          count    rate\n-------------  -----  ------\nmql             8000       -\ncustomer, won    842  10.53%\n"
        );
    }

    #[test]
    fn csv_quotes_and_json_types() {
        let mut out = Vec::new();
        sample().write(Format::Csv, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "stage,count,rate\nmql,8000,-\n\"customer, won\",842,10.53%\n"
        );
        let mut out = Vec::new();
        sample().write(Format::Json, &mut out).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v[0]["count"], 8000);
        assert_eq!(v[0]["rate"], serde_json::Value::Null);
        assert_eq!(v[1]["stage"], "customer, won");
    }
}
