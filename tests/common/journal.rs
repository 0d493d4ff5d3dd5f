//! The event journal a run writes with `--events` (README, "Event
//! journal"), read back: one JSON object per line, parsed by a small JSON
//! reader of its own.

use std::path::Path;

/// A JSON value. Numbers keep their text, so that 64-bit integers stay
/// exact.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Number(String),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

/// One line of the journal: an event and its fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub fields: Vec<(String, Json)>,
    /// The line as written, for messages.
    pub line: String,
}

impl Record {
    pub fn get(&self, key: &str) -> Option<&Json> {
        self.fields.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    fn field(&self, key: &str) -> &Json {
        self.get(key)
            .unwrap_or_else(|| panic!("no {key:?} in {}", self.line))
    }

    /// `event`: what happened.
    pub fn event(&self) -> &str {
        self.str("event")
    }

    /// A warning's `kind`; `None` for other events.
    pub fn warning(&self) -> Option<&str> {
        (self.event() == "warning").then(|| self.str("kind"))
    }

    pub fn str(&self, key: &str) -> &str {
        self.opt_str(key)
            .unwrap_or_else(|| panic!("{key:?} is not a string in {}", self.line))
    }

    /// A string, or `None` for `null`.
    pub fn opt_str(&self, key: &str) -> Option<&str> {
        match self.field(key) {
            Json::String(s) => Some(s),
            Json::Null => None,
            _ => panic!("{key:?} is not a string in {}", self.line),
        }
    }

    pub fn u64(&self, key: &str) -> u64 {
        self.number(key)
    }

    pub fn i64(&self, key: &str) -> i64 {
        self.number(key)
    }

    pub fn f64(&self, key: &str) -> f64 {
        self.number(key)
    }

    pub fn bool(&self, key: &str) -> bool {
        match self.field(key) {
            Json::Bool(b) => *b,
            _ => panic!("{key:?} is not true or false in {}", self.line),
        }
    }

    pub fn is_null(&self, key: &str) -> bool {
        matches!(self.field(key), Json::Null)
    }

    fn number<T: std::str::FromStr>(&self, key: &str) -> T {
        match self.field(key) {
            Json::Number(n) => n
                .parse()
                .unwrap_or_else(|_| panic!("{key:?} = {n} does not fit in {}", self.line)),
            _ => panic!("{key:?} is not a number in {}", self.line),
        }
    }
}

/// Every line of the journal at `path`. A last line without its newline
/// (a run killed while writing it) is left out; every other line must be
/// one JSON object with `t` and `event`.
pub fn read(path: &Path) -> Vec<Record> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("no event journal at {}: {e}", path.display()));
    let mut lines: Vec<&str> = text.split('\n').collect();
    lines.pop(); // empty after the last newline, or an unfinished line
    lines
        .into_iter()
        .map(|line| parse_line(line).unwrap_or_else(|e| panic!("{e} in journal line {line}")))
        .collect()
}

/// One journal line as a record.
pub fn parse_line(line: &str) -> Result<Record, String> {
    let mut p = Parser {
        s: line.as_bytes(),
        i: 0,
    };
    let value = p.value()?;
    p.ws();
    if p.i != p.s.len() {
        return Err(format!("text after the object at {}", p.i));
    }
    let Json::Object(fields) = value else {
        return Err("not an object".into());
    };
    let record = Record {
        fields,
        line: line.to_string(),
    };
    for key in ["t", "event"] {
        if !matches!(record.get(key), Some(Json::String(_))) {
            return Err(format!("no {key:?}"));
        }
    }
    Ok(record)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.s.get(self.i).is_some_and(|b| b" \t\r\n".contains(b)) {
            self.i += 1;
        }
    }

    fn next(&mut self) -> Result<u8, String> {
        let b = *self.s.get(self.i).ok_or("unexpected end")?;
        self.i += 1;
        Ok(b)
    }

    fn expect(&mut self, b: u8) -> Result<(), String> {
        self.ws();
        match self.next()? {
            got if got == b => Ok(()),
            got => Err(format!(
                "{:?} instead of {:?} at {}",
                got as char,
                b as char,
                self.i - 1
            )),
        }
    }

    fn value(&mut self) -> Result<Json, String> {
        self.ws();
        match *self.s.get(self.i).ok_or("unexpected end")? {
            b'{' => self.object(),
            b'[' => self.array(),
            b'"' => self.string().map(Json::String),
            b't' => self.literal("true", Json::Bool(true)),
            b'f' => self.literal("false", Json::Bool(false)),
            b'n' => self.literal("null", Json::Null),
            b'-' | b'0'..=b'9' => self.number(),
            b => Err(format!("unexpected {:?} at {}", b as char, self.i)),
        }
    }

    fn object(&mut self) -> Result<Json, String> {
        self.expect(b'{')?;
        let mut fields = Vec::new();
        self.ws();
        if self.s.get(self.i) == Some(&b'}') {
            self.i += 1;
            return Ok(Json::Object(fields));
        }
        loop {
            self.ws();
            let key = self.string()?;
            if fields.iter().any(|(k, _)| *k == key) {
                return Err(format!("{key:?} twice"));
            }
            self.expect(b':')?;
            fields.push((key, self.value()?));
            self.ws();
            match self.next()? {
                b',' => continue,
                b'}' => return Ok(Json::Object(fields)),
                b => return Err(format!("{:?} after a field at {}", b as char, self.i - 1)),
            }
        }
    }

    fn array(&mut self) -> Result<Json, String> {
        self.expect(b'[')?;
        let mut items = Vec::new();
        self.ws();
        if self.s.get(self.i) == Some(&b']') {
            self.i += 1;
            return Ok(Json::Array(items));
        }
        loop {
            items.push(self.value()?);
            self.ws();
            match self.next()? {
                b',' => continue,
                b']' => return Ok(Json::Array(items)),
                b => return Err(format!("{:?} after an item at {}", b as char, self.i - 1)),
            }
        }
    }

    fn literal(&mut self, word: &str, value: Json) -> Result<Json, String> {
        if self.s[self.i..].starts_with(word.as_bytes()) {
            self.i += word.len();
            Ok(value)
        } else {
            Err(format!("bad literal at {}", self.i))
        }
    }

    fn number(&mut self) -> Result<Json, String> {
        let start = self.i;
        while self
            .s
            .get(self.i)
            .is_some_and(|b| b"+-.eE".contains(b) || b.is_ascii_digit())
        {
            self.i += 1;
        }
        let text = std::str::from_utf8(&self.s[start..self.i]).unwrap();
        let digits = text.strip_prefix('-').unwrap_or(text);
        let well_formed = digits.starts_with(|c: char| c.is_ascii_digit())
            && !(digits.len() > 1
                && digits.starts_with('0')
                && digits.as_bytes()[1].is_ascii_digit())
            && text.parse::<f64>().is_ok();
        if !well_formed {
            return Err(format!("bad number {text:?}"));
        }
        Ok(Json::Number(text.to_string()))
    }

    fn string(&mut self) -> Result<String, String> {
        self.expect(b'"')?;
        let mut out: Vec<u8> = Vec::new();
        loop {
            match self.next()? {
                b'"' => break,
                b'\\' => {
                    let c = match self.next()? {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => self.unicode_escape()?,
                        b => return Err(format!("bad escape \\{}", b as char)),
                    };
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                b if b < 0x20 => return Err(format!("control character {b:#04x} in a string")),
                b => out.push(b),
            }
        }
        String::from_utf8(out).map_err(|e| e.to_string())
    }

    /// After `\u`: four hex digits, and a second escape for a surrogate pair.
    fn unicode_escape(&mut self) -> Result<char, String> {
        let first = self.hex4()?;
        let code = if (0xd800..0xdc00).contains(&first) {
            if self.next()? != b'\\' || self.next()? != b'u' {
                return Err("a lone surrogate".into());
            }
            let second = self.hex4()?;
            if !(0xdc00..0xe000).contains(&second) {
                return Err("a lone surrogate".into());
            }
            0x10000 + ((first - 0xd800) << 10) + (second - 0xdc00)
        } else {
            first
        };
        char::from_u32(code).ok_or_else(|| format!("bad \\u escape {code:#x}"))
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let digits = self
            .s
            .get(self.i..self.i + 4)
            .and_then(|d| std::str::from_utf8(d).ok())
            .filter(|d| d.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or("a short or bad \\u escape")?;
        let v = u32::from_str_radix(digits, 16).map_err(|_| format!("bad \\u{digits}"))?;
        self.i += 4;
        Ok(v)
    }
}
