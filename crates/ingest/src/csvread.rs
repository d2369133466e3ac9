//! Streaming CSV reading that copes with what CRM exports really look like:
//! `,` or `;` delimiters, a UTF-8 byte-order mark, CRLF or LF, quoted fields
//! with embedded newlines, a missing final newline, and the odd row that is
//! not UTF-8 or has the wrong number of fields (reported, not fatal).

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};

/// Counts the bytes it passes on and remembers where the newlines are, so a
/// record's byte offset (which the csv crate reports exactly) can be turned
/// into the physical line it starts on, whatever the line endings, quoted
/// newlines or blank lines.
struct LineCounter<R> {
    inner: R,
    offset: u64,
    /// Offsets of newlines not yet passed by the record being read.
    pending: VecDeque<u64>,
    /// Newlines before the last record start asked for.
    passed: u64,
}

impl<R: Read> Read for LineCounter<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        for (i, b) in buf[..n].iter().enumerate() {
            if *b == b'\n' {
                self.pending.push_back(self.offset + i as u64);
            }
        }
        self.offset += n as u64;
        Ok(n)
    }
}

impl<R> LineCounter<R> {
    /// 1-based line of a record the csv crate says starts at `offset`. It
    /// reports the offset of the terminator it skipped before the record (the
    /// `\n` of a CRLF, or of a blank line), so a newline at `offset` counts.
    /// Offsets must not go backwards.
    fn line_at(&mut self, offset: u64) -> u64 {
        while self.pending.front().is_some_and(|nl| *nl <= offset) {
            self.pending.pop_front();
            self.passed += 1;
        }
        self.passed + 1
    }
}

/// One data row: its 1-based line in the file and its fields, or why it is
/// unreadable (the raw fields, lossily decoded, are kept for the reject file).
#[derive(Debug, Clone, PartialEq)]
pub struct RawRow {
    pub line: u64,
    pub fields: Cells,
    pub problem: Option<String>,
}

/// A row's fields as one string and where each ends: a row is read,
/// converted and often kept until its batch is stored (for the reject
/// file), and a string per field was nine allocations a row of a CRM
/// export where this is two.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cells {
    text: String,
    ends: Vec<usize>,
}

impl Cells {
    /// The number of fields.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether the row has no field.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Field `i`, if the row has it.
    pub fn get(&self, i: usize) -> Option<&str> {
        let end = *self.ends.get(i)?;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        self.text.get(start..end)
    }

    /// The fields in order.
    pub fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        (0..self.len()).filter_map(|i| self.get(i))
    }

    /// Adds a field at the end.
    pub fn push(&mut self, field: &str) {
        self.text.push_str(field);
        self.ends.push(self.text.len());
    }
}

impl<S: AsRef<str>> FromIterator<S> for Cells {
    fn from_iter<I: IntoIterator<Item = S>>(fields: I) -> Cells {
        let mut cells = Cells::default();
        for f in fields {
            cells.push(f.as_ref());
        }
        cells
    }
}

/// A CSV file opened for streaming.
pub struct CsvSource<R: Read> {
    reader: csv::Reader<LineCounter<BufReader<R>>>,
    headers: Vec<String>,
    delimiter: u8,
    record: csv::ByteRecord,
}

/// Why a file cannot be read at all.
#[derive(Debug, thiserror::Error)]
pub enum CsvError {
    #[error("cannot read the file: {0}")]
    Io(#[from] std::io::Error),
    #[error("the file is empty: a header row is needed")]
    Empty,
    #[error("line 1: the header row is not valid UTF-8")]
    HeaderNotUtf8,
    #[error("line {line}: {message}")]
    Parse { line: u64, message: String },
}

/// Picks `;`, `\t` or `,` by counting unquoted occurrences in the header line.
fn sniff_delimiter(head: &[u8]) -> u8 {
    let mut counts = [0usize; 3];
    let mut quoted = false;
    for &b in head {
        match b {
            b'"' => quoted = !quoted,
            b'\n' | b'\r' if !quoted => break,
            b',' if !quoted => counts[0] += 1,
            b';' if !quoted => counts[1] += 1,
            b'\t' if !quoted => counts[2] += 1,
            _ => {}
        }
    }
    if counts[1] > counts[0] && counts[1] >= counts[2] {
        b';'
    } else if counts[2] > counts[0] {
        b'\t'
    } else {
        b','
    }
}

impl<R: Read> CsvSource<R> {
    /// Opens a CSV stream and reads its header row.
    pub fn new(inner: R) -> Result<Self, CsvError> {
        let mut buf = BufReader::with_capacity(1 << 16, inner);
        let head = buf.fill_buf()?;
        if head.is_empty() {
            return Err(CsvError::Empty);
        }
        let bom = head.starts_with(&[0xEF, 0xBB, 0xBF]);
        if bom {
            buf.consume(3);
        }
        let delimiter = sniff_delimiter(buf.fill_buf()?);
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .flexible(true)
            .has_headers(false)
            .from_reader(LineCounter {
                inner: buf,
                offset: 0,
                pending: VecDeque::new(),
                passed: 0,
            });
        let mut record = csv::ByteRecord::new();
        let got = reader
            .read_byte_record(&mut record)
            .map_err(|e| CsvError::Parse {
                line: 1,
                message: e.to_string(),
            })?;
        if !got {
            return Err(CsvError::Empty);
        }
        let headers = record
            .iter()
            .map(|f| std::str::from_utf8(f).map(|s| s.trim().to_string()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| CsvError::HeaderNotUtf8)?;
        if headers.iter().all(String::is_empty) {
            return Err(CsvError::Empty);
        }
        Ok(CsvSource {
            reader,
            headers,
            delimiter,
            record,
        })
    }

    /// The header names, trimmed.
    pub fn headers(&self) -> &[String] {
        &self.headers
    }

    /// The delimiter detected.
    pub fn delimiter(&self) -> u8 {
        self.delimiter
    }

    /// Bytes consumed so far (for progress).
    pub fn position(&self) -> u64 {
        self.reader.position().byte()
    }

    /// The next data row, `None` at the end. Blank lines are skipped.
    pub fn next_row(&mut self) -> Result<Option<RawRow>, CsvError> {
        loop {
            let got = match self.reader.read_byte_record(&mut self.record) {
                Ok(g) => g,
                Err(e) => {
                    let line = e.position().map(|p| p.line()).unwrap_or(0);
                    return Err(CsvError::Parse {
                        line,
                        message: e.to_string(),
                    });
                }
            };
            if !got {
                return Ok(None);
            }
            let start = self.record.position().map(|p| p.byte()).unwrap_or(0);
            let line = self.reader.get_mut().line_at(start);
            if self.record.len() == 1 && self.record.get(0).is_some_and(|f| f.is_empty()) {
                continue;
            }
            let mut fields = Cells {
                text: String::with_capacity(self.record.as_slice().len()),
                ends: Vec::with_capacity(self.record.len()),
            };
            let mut problem = None;
            for (i, f) in self.record.iter().enumerate() {
                match std::str::from_utf8(f) {
                    Ok(s) => fields.push(s),
                    Err(_) => {
                        if problem.is_none() {
                            let col = self
                                .headers
                                .get(i)
                                .cloned()
                                .unwrap_or_else(|| format!("#{}", i + 1));
                            problem = Some(format!("column `{col}` is not valid UTF-8"));
                        }
                        fields.push(&String::from_utf8_lossy(f));
                    }
                }
            }
            if problem.is_none() && fields.len() != self.headers.len() {
                problem = Some(format!(
                    "expected {} fields, found {}",
                    self.headers.len(),
                    fields.len()
                ));
            }
            return Ok(Some(RawRow {
                line,
                fields,
                problem,
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn rows(data: &[u8]) -> (Vec<String>, Vec<RawRow>) {
        let mut src = CsvSource::new(data).unwrap();
        let mut out = Vec::new();
        while let Some(r) = src.next_row().unwrap() {
            out.push(r);
        }
        (src.headers().to_vec(), out)
    }

    #[test]
    fn reads_semicolons_bom_crlf_quotes_and_no_final_newline() {
        let data = b"\xEF\xBB\xBFid;name;note\r\n1;\"Smith; Ana\";\"two\r\nlines\"\r\n2;Bob;x";
        let (h, r) = rows(data);
        assert_eq!(h, ["id", "name", "note"]);
        assert_eq!(r.len(), 2);
        assert_eq!(
            r[0].fields.iter().collect::<Vec<_>>(),
            ["1", "Smith; Ana", "two\r\nlines"]
        );
        assert_eq!(r[0].line, 2);
        assert_eq!(r[1].fields.iter().collect::<Vec<_>>(), ["2", "Bob", "x"]);
        assert_eq!(
            r[1].line, 4,
            "the quoted newline moves the next row to line 4"
        );
        assert!(r.iter().all(|x| x.problem.is_none()));
    }

    #[test]
    fn flags_bad_rows_without_stopping() {
        let data = b"a,b\n1,2\n3\n\xff\xfe,4\n\n5,6,7\n8,9\n";
        let (_, r) = rows(data);
        let summary: Vec<(u64, Option<&str>)> =
            r.iter().map(|x| (x.line, x.problem.as_deref())).collect();
        assert_eq!(
            summary,
            [
                (2, None),
                (3, Some("expected 2 fields, found 1")),
                (4, Some("column `a` is not valid UTF-8")),
                (6, Some("expected 2 fields, found 3")),
                (7, None),
            ]
        );
    }

    #[test]
    fn cells_keep_empty_fields_and_their_order() {
        let cells: Cells = ["", "a", "", "bc"].into_iter().collect();
        assert_eq!(cells.len(), 4);
        assert_eq!(cells.get(0), Some(""));
        assert_eq!(cells.get(1), Some("a"));
        assert_eq!(cells.get(3), Some("bc"));
        assert_eq!(cells.get(4), None);
        assert_eq!(cells.iter().collect::<Vec<_>>(), ["", "a", "", "bc"]);
        assert!(Cells::default().is_empty());
    }

    #[test]
    fn empty_files_are_errors() {
        assert!(matches!(CsvSource::new(&b""[..]), Err(CsvError::Empty)));
        assert!(matches!(
            CsvSource::new(&b"\xEF\xBB\xBF"[..]),
            Err(CsvError::Empty)
        ));
    }

    #[test]
    fn sniffs_the_delimiter_from_the_header() {
        assert_eq!(sniff_delimiter(b"a,b;c,d\n"), b',');
        assert_eq!(sniff_delimiter(b"a;b;c\n1,5;2;3"), b';');
        assert_eq!(sniff_delimiter(b"\"a;b\",c\n"), b',');
        assert_eq!(sniff_delimiter(b"a\tb\tc\n"), b'\t');
    }
}
