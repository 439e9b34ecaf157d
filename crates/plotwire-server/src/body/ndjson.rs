//! `application/x-ndjson` bodies: one JSON object per line, one row each, every row with
//! the first row's keys (in any order). Blank lines are skipped.

use super::columns::{Budget, Data, Table};
use super::json::Lexer;
use super::BodyError;

/// Decodes an NDJSON body into columns named by the first row's keys.
pub(super) fn decode(body: &[u8], budget: &mut Budget) -> Result<Table, BodyError> {
    let mut table = Table::default();
    // For each column, the last row (1-based) that set it.
    let mut seen: Vec<usize> = Vec::new();
    let mut rows = 0usize;
    for (i, line) in body.split(|&c| c == b'\n').enumerate() {
        let mut lx = Lexer::new(line);
        lx.ws();
        if lx.at_end() {
            continue;
        }
        rows += 1;
        budget.rows(rows)?;
        row(&mut lx, &mut table, &mut seen, rows, budget).map_err(|e| at_line(i + 1, e))?;
    }
    Ok(table)
}

/// Reads one row, the `row`-th (1-based).
fn row(
    lx: &mut Lexer<'_>,
    table: &mut Table,
    seen: &mut Vec<usize>,
    row: usize,
    budget: &mut Budget,
) -> Result<(), BodyError> {
    lx.eat(b'{')?;
    let mut set = 0usize;
    if !lx.empty(b'}') {
        loop {
            let name = lx.key_borrowed()?;
            // Rows usually repeat the first row's key order: try that column first.
            let in_order = table.cols.get(set).is_some_and(|(n, _)| *n == *name);
            let at = match in_order.then_some(set).or_else(|| table.position(&name)) {
                Some(at) => at,
                None if row == 1 => {
                    seen.push(0);
                    table.add(
                        name.clone().into_owned(),
                        Data::Unknown { nulls: 0 },
                        budget,
                    )?
                }
                None => return Err(lx.error(format!("key {name:?} is not in the first row"))),
            };
            match seen.get_mut(at) {
                Some(s) if *s != row => *s = row,
                _ => return Err(lx.error(format!("key {name:?} appears twice"))),
            }
            set += 1;
            if let Some((_, data)) = table.cols.get_mut(at) {
                lx.item(&name, data, budget)?;
            }
            if !lx.comma_or(b'}')? {
                break;
            }
        }
    }
    lx.ws();
    if !lx.at_end() {
        return Err(lx.error("trailing characters after the object"));
    }
    if set != table.cols.len() {
        let missing = table
            .cols
            .iter()
            .zip(seen.iter())
            .find(|(_, s)| **s != row)
            .map(|((n, _), _)| n.as_str())
            .unwrap_or_default();
        return Err(lx.error(format!("key {missing:?} of the first row is missing")));
    }
    Ok(())
}

/// Puts the line number into a line's error.
fn at_line(line: usize, e: BodyError) -> BodyError {
    match e {
        BodyError::Json { offset, problem } => BodyError::Ndjson {
            line,
            problem: format!("at byte {offset}: {problem}"),
        },
        BodyError::BadUtf8 { offset } => BodyError::Ndjson {
            line,
            problem: format!("invalid UTF-8 at byte {offset}"),
        },
        BodyError::BadColumn { column, problem } => BodyError::BadColumn {
            column,
            problem: format!("line {line}: {problem}"),
        },
        other => other,
    }
}
