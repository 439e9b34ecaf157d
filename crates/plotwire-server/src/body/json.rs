//! `application/json` bodies, `{"x": [1, 2.5, null], "label": ["a", "b", "c"]}`, and the
//! scanner that NDJSON shares.
//!
//! The scanner reads straight into typed column buffers: no JSON tree is built, and
//! nothing recurses (a nested list or object inside a column is refused).

use std::borrow::Cow;

use super::columns::{Budget, Data, Table};
use super::BodyError;

/// A position in a JSON text, read forwards.
pub(super) struct Lexer<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Lexer<'a> {
    pub(super) fn new(b: &'a [u8]) -> Lexer<'a> {
        Lexer { b, pos: 0 }
    }

    pub(super) fn error(&self, problem: impl Into<String>) -> BodyError {
        BodyError::Json {
            offset: self.pos,
            problem: problem.into(),
        }
    }

    /// Skips JSON whitespace.
    pub(super) fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.pos) {
            self.pos += 1;
        }
    }

    pub(super) fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    pub(super) fn at_end(&self) -> bool {
        self.pos >= self.b.len()
    }

    /// Consumes `c`, after whitespace.
    pub(super) fn eat(&mut self, c: u8) -> Result<(), BodyError> {
        self.ws();
        if self.peek() != Some(c) {
            return Err(self.error(format!("expected '{}'", char::from(c))));
        }
        self.pos += 1;
        Ok(())
    }

    /// Consumes `,` (true) or `close` (false), after whitespace.
    pub(super) fn comma_or(&mut self, close: u8) -> Result<bool, BodyError> {
        self.ws();
        match self.peek() {
            Some(b',') => {
                self.pos += 1;
                Ok(true)
            }
            Some(c) if c == close => {
                self.pos += 1;
                Ok(false)
            }
            _ => Err(self.error(format!("expected ',' or '{}'", char::from(close)))),
        }
    }

    /// Consumes `close` if it comes next (an empty list or object).
    pub(super) fn empty(&mut self, close: u8) -> bool {
        self.ws();
        if self.peek() == Some(close) {
            self.pos += 1;
            return true;
        }
        false
    }

    /// Reads an object key and its colon.
    pub(super) fn key(&mut self) -> Result<String, BodyError> {
        self.key_borrowed().map(Cow::into_owned)
    }

    /// Reads an object key and its colon, borrowed from the text unless it has escapes
    /// (NDJSON reads the same keys on every line).
    pub(super) fn key_borrowed(&mut self) -> Result<Cow<'a, str>, BodyError> {
        self.ws();
        let k = self.string()?;
        self.eat(b':')?;
        Ok(k)
    }

    /// Reads a string, starting at its opening quote.
    fn string(&mut self) -> Result<Cow<'a, str>, BodyError> {
        if self.peek() != Some(b'"') {
            return Err(self.error("expected a string"));
        }
        let start = self.pos + 1;
        let mut i = start;
        let mut escaped = false;
        loop {
            match self.b.get(i) {
                None => {
                    self.pos = i;
                    return Err(self.error("unterminated string"));
                }
                Some(b'"') => break,
                Some(b'\\') => {
                    escaped = true;
                    i += 2;
                }
                Some(c) if *c < 0x20 => {
                    self.pos = i;
                    return Err(self.error("control character in a string"));
                }
                Some(_) => i += 1,
            }
        }
        let b: &'a [u8] = self.b;
        let raw = b.get(start..i).unwrap_or_default();
        let text = std::str::from_utf8(raw).map_err(|e| BodyError::BadUtf8 {
            offset: start + e.valid_up_to(),
        })?;
        let s = if escaped {
            let quoted = b.get(start - 1..=i).unwrap_or_default();
            Cow::Owned(
                serde_json::from_slice::<String>(quoted).map_err(|e| self.error(e.to_string()))?,
            )
        } else {
            Cow::Borrowed(text)
        };
        self.pos = i + 1;
        Ok(s)
    }

    /// Consumes the literal `word`.
    fn literal(&mut self, word: &[u8]) -> Result<(), BodyError> {
        if self.b.get(self.pos..self.pos + word.len()) != Some(word) {
            return Err(self.error("invalid literal"));
        }
        self.pos += word.len();
        Ok(())
    }

    /// Skips the digits at the position; false when there are none.
    fn digits(&mut self) -> bool {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.b.get(self.pos) {
            self.pos += 1;
        }
        self.pos > start
    }

    /// Reads a number into `data`: an integer (no fraction or exponent) or a float.
    fn number(&mut self, data: &mut Data) -> Result<Result<(), String>, BodyError> {
        let start = self.pos;
        let neg = self.peek() == Some(b'-');
        if neg {
            self.pos += 1;
        }
        let int_start = self.pos;
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.error("expected a digit")),
        }
        let int_end = self.pos;
        let mut float = false;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if !self.digits() {
                return Err(self.error("expected a digit after '.'"));
            }
            float = true;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if !self.digits() {
                return Err(self.error("expected a digit in the exponent"));
            }
            float = true;
        }
        if float {
            // The text was checked against JSON's number grammar above.
            let text = self.b.get(start..self.pos).unwrap_or_default();
            let x = fast_float2::parse::<f64, _>(text).map_err(|_| self.error("invalid number"))?;
            return Ok(data.push_float(x));
        }
        // Accumulated negatively, so that i64::MIN fits.
        let mut acc: i64 = 0;
        for d in self.b.get(int_start..int_end).unwrap_or_default() {
            acc = acc
                .checked_mul(10)
                .and_then(|a| a.checked_sub(i64::from(d - b'0')))
                .ok_or_else(|| self.error("integer outside the 64-bit range"))?;
        }
        let x = if neg {
            acc
        } else {
            acc.checked_neg()
                .ok_or_else(|| self.error("integer outside the 64-bit range"))?
        };
        Ok(data.push_int(x))
    }

    /// Reads one scalar item of column `name` into `data`.
    pub(super) fn item(
        &mut self,
        name: &str,
        data: &mut Data,
        budget: &mut Budget,
    ) -> Result<(), BodyError> {
        self.ws();
        let pushed = match self.peek() {
            Some(b'-' | b'0'..=b'9') => self.number(data)?,
            Some(b'"') => {
                let s = self.string()?;
                budget.strings(s.len())?;
                data.push_str(s.into_owned())
            }
            Some(b'n') => {
                self.literal(b"null")?;
                data.push_null()
            }
            Some(b't') => {
                self.literal(b"true")?;
                data.push_bool(true)
            }
            Some(b'f') => {
                self.literal(b"false")?;
                data.push_bool(false)
            }
            Some(b'[' | b'{') => {
                Err("nested lists and objects are not allowed: columns are flat".into())
            }
            _ => return Err(self.error("expected a value")),
        };
        pushed.map_err(|p| BodyError::bad_column(name, p))?;
        budget.rows(data.len())
    }
}

/// Decodes an `application/json` body: one object of column name to flat list.
pub(super) fn decode(body: &[u8], budget: &mut Budget) -> Result<Table, BodyError> {
    let mut lx = Lexer::new(body);
    let mut table = Table::default();
    lx.eat(b'{')?;
    if !lx.empty(b'}') {
        loop {
            let name = lx.key()?;
            if table.position(&name).is_some() {
                return Err(BodyError::DuplicateColumn { column: name });
            }
            budget.columns(table.cols.len() + 1)?;
            let mut data = Data::Unknown { nulls: 0 };
            lx.eat(b'[')
                .map_err(|_| BodyError::bad_column(&name, "expected a list of values"))?;
            if !lx.empty(b']') {
                loop {
                    lx.item(&name, &mut data, budget)?;
                    if !lx.comma_or(b']')? {
                        break;
                    }
                }
            }
            table.add(name, data, budget)?;
            if !lx.comma_or(b'}')? {
                break;
            }
        }
    }
    lx.ws();
    if !lx.at_end() {
        return Err(lx.error("trailing characters after the object"));
    }
    Ok(table)
}
