//! What commands print on stdout: aligned text tables for people, one JSON
//! document (or one per line, for record streams) for scripts.

use std::io::Write;

use super::errors::CliError;

/// A table with a header row, its columns padded to their widest cell.
pub struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&'static str]) -> Table {
        Table {
            headers: headers.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; it must have one cell per header.
    pub fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.headers.len(), "one cell per column");
        self.rows.push(cells);
    }

    /// The table as text: columns two spaces apart, no trailing spaces, a newline
    /// after every line.
    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let header: Vec<String> = self.headers.iter().map(|h| h.to_string()).collect();
        for row in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::new();
            for (i, (cell, width)) in row.iter().zip(&widths).enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                line.push_str(cell);
                let pad = width - cell.chars().count();
                line.extend(std::iter::repeat_n(' ', pad));
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }

    pub fn print(&self) -> Result<(), CliError> {
        print_text(&self.render())
    }
}

/// Prints `text` as it is.
pub fn print_text(text: &str) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// Prints `value` as one line of JSON.
pub fn print_json(value: &serde_json::Value) -> Result<(), CliError> {
    print_text(&format!("{value}\n"))
}

/// A list of numbers as `1,2,3`.
pub fn join<T: ToString>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// `value` or "-" when there is none, as Kafka's tools print missing values.
pub fn or_dash<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_string(), |v| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_on_the_widest_cell_without_trailing_spaces() {
        let mut table = Table::new(&["TOPIC", "PARTITION", "LAG"]);
        table.row(vec!["orders".into(), "0".into(), "12".into()]);
        table.row(vec!["a".into(), "10".into(), "-".into()]);
        assert_eq!(
            table.render(),
            "TOPIC   PARTITION  LAG\n\
             orders  0          12\n\
             a       10         -\n"
        );
    }

    #[test]
    fn an_empty_table_is_its_header() {
        assert_eq!(Table::new(&["NAME", "X"]).render(), "NAME  X\n");
    }

    #[test]
    fn lists_and_missing_values() {
        assert_eq!(join(&[1, 2, 3]), "1,2,3");
        assert_eq!(join::<i32>(&[]), "");
        assert_eq!(or_dash(Some(5)), "5");
        assert_eq!(or_dash::<i64>(None), "-");
    }
}
