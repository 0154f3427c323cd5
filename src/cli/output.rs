//! What the commands print: lines written with `outln!` (a write error, such as a
//! reader that closed the pipe, is returned instead of panicking as `println!`
//! does), and tables whose columns are as wide as their widest cell.

use std::fmt;
use std::io::{self, Write};

/// `println!` that returns the write error: `outln!("{x}")?;`.
macro_rules! outln {
    () => {
        $crate::cli::output::line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::cli::output::line(format_args!($($arg)*))
    };
}
pub(crate) use outln;

/// Writes one line to standard output.
pub fn line(args: fmt::Arguments<'_>) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_fmt(args)?;
    out.write_all(b"\n")?;
    out.flush()
}

/// Whether an error comes from writing to a reader that went away
/// (`tessera token list --json | head`): the command then ends quietly.
pub fn is_closed_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// A table printed with its columns aligned. A cell may hold several lines (one IP
/// range each, say); the row is then as tall as its tallest cell, so a long list
/// makes a row taller, never the columns after it shift.
pub struct Table {
    header: Vec<String>,
    /// Whether the header line is printed (a log reads better without one).
    show_header: bool,
    rows: Vec<Vec<Vec<String>>>,
}

impl Table {
    pub fn new<const N: usize>(header: [&str; N]) -> Table {
        Table {
            header: header.iter().map(|h| (*h).to_owned()).collect(),
            show_header: true,
            rows: Vec::new(),
        }
    }

    /// A table of `columns` columns printed without a header line.
    pub fn headless(columns: usize) -> Table {
        Table {
            header: vec![String::new(); columns],
            show_header: false,
            rows: Vec::new(),
        }
    }

    /// Adds a row of single-line cells.
    pub fn row(&mut self, cells: impl IntoIterator<Item = String>) {
        self.rows
            .push(cells.into_iter().map(|c| split_lines(&c)).collect());
    }

    /// Adds a row whose cells may hold several lines each.
    pub fn row_lines(&mut self, cells: impl IntoIterator<Item = Vec<String>>) {
        self.rows.push(cells.into_iter().collect());
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table as text, one `\n`-terminated line per printed line.
    pub fn render(&self) -> String {
        let columns = self.header.len();
        let mut widths: Vec<usize> = self.header.iter().map(|h| width(h)).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = cell.iter().map(|l| width(l)).fold(*w, usize::max);
            }
        }
        let mut out = String::new();
        let mut push = |cells: &[&str]| {
            let mut text = String::new();
            for (i, cell) in cells.iter().enumerate().take(columns) {
                text.push_str(cell);
                if i + 1 < columns {
                    let pad = widths[i] - width(cell) + 2;
                    text.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push_str(text.trim_end());
            out.push('\n');
        };
        if self.show_header {
            push(&self.header.iter().map(String::as_str).collect::<Vec<_>>());
        }
        for row in &self.rows {
            let height = row.iter().map(Vec::len).max().unwrap_or(0).max(1);
            for i in 0..height {
                let cells: Vec<&str> = (0..columns)
                    .map(|c| {
                        row.get(c)
                            .and_then(|cell| cell.get(i))
                            .map_or("", String::as_str)
                    })
                    .collect();
                push(&cells);
            }
        }
        out
    }

    /// Prints the table to standard output.
    pub fn print(&self) -> io::Result<()> {
        let mut out = io::stdout().lock();
        out.write_all(self.render().as_bytes())?;
        out.flush()
    }
}

fn split_lines(text: &str) -> Vec<String> {
    text.lines().map(str::to_owned).collect()
}

/// Display width in characters (cells hold `clean`ed text).
fn width(text: &str) -> usize {
    text.chars().count()
}

/// A value from a server, made safe to print in a table: no control characters that
/// could move the cursor or forge lines.
pub fn clean(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_fit_their_widest_cell() {
        let mut t = Table::new(["ID", "CIDR", "CREATED"]);
        t.row(["a1".into(), "10.0.0.0/8".into(), "2026-01-01".into()]);
        t.row_lines([
            vec!["b2".into()],
            vec!["192.168.100.0/24".into(), "2001:db8:aaaa:bbbb::/64".into()],
            vec!["2026-01-02".into()],
        ]);
        let text = t.render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        let at = |l: &str| l.find("2026").or_else(|| l.find("CREATED"));
        assert_eq!(at(lines[0]), at(lines[1]), "{text}");
        assert_eq!(at(lines[1]), at(lines[2]), "{text}");
        assert_eq!(lines[3].trim(), "2001:db8:aaaa:bbbb::/64", "{text}");
    }

    #[test]
    fn control_characters_are_not_printed() {
        assert_eq!(clean("a\u{1b}[2Jb\nc"), "a?[2Jb?c");
    }
}
