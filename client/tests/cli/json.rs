//! A minimal JSON reader, enough to check the CLI's output independently of the code
//! that wrote it: objects (keys with escapes) and non-negative integers, the only values
//! the stats output has.

#[derive(Debug)]
pub enum Json {
    Num(u64),
    Obj(Vec<(String, Json)>),
}

impl Json {
    /// The number at `path` through nested objects.
    pub fn at(&self, path: &[&str]) -> Option<u64> {
        match (self, path.split_first()) {
            (Json::Num(n), None) => Some(*n),
            (Json::Obj(members), Some((first, rest))) => members
                .iter()
                .find(|(k, _)| k == first)
                .and_then(|(_, v)| v.at(rest)),
            _ => None,
        }
    }
}

pub fn parse(text: &str) -> Result<Json, String> {
    let mut p = Parser {
        s: text.as_bytes(),
        pos: 0,
    };
    let v = p.value()?;
    if p.pos != p.s.len() {
        return Err(format!("trailing bytes at {}", p.pos));
    }
    Ok(v)
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn expect(&mut self, b: u8) -> Result<(), String> {
        if self.peek() == Some(b) {
            self.pos += 1;
            Ok(())
        } else {
            Err(format!("expected {:?} at {}", b as char, self.pos))
        }
    }

    fn value(&mut self) -> Result<Json, String> {
        match self.peek() {
            Some(b'{') => self.object(),
            Some(b'0'..=b'9') => {
                let start = self.pos;
                while matches!(self.peek(), Some(b'0'..=b'9')) {
                    self.pos += 1;
                }
                let digits =
                    std::str::from_utf8(&self.s[start..self.pos]).map_err(|e| e.to_string())?;
                digits.parse().map(Json::Num).map_err(|e| e.to_string())
            }
            other => Err(format!("unexpected {other:?} at {}", self.pos)),
        }
    }

    fn object(&mut self) -> Result<Json, String> {
        self.expect(b'{')?;
        let mut members = Vec::new();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Json::Obj(members));
        }
        loop {
            let k = self.string()?;
            self.expect(b':')?;
            let v = self.value()?;
            if members.iter().any(|(m, _)| *m == k) {
                return Err(format!("duplicate key {k:?}"));
            }
            members.push((k, v));
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Json::Obj(members));
                }
                other => return Err(format!("unexpected {other:?} at {}", self.pos)),
            }
        }
    }

    fn string(&mut self) -> Result<String, String> {
        self.expect(b'"')?;
        let mut out = Vec::new();
        loop {
            let b = self.peek().ok_or("unterminated string")?;
            self.pos += 1;
            match b {
                b'"' => return String::from_utf8(out).map_err(|e| e.to_string()),
                b'\\' => {
                    let e = self.peek().ok_or("unterminated escape")?;
                    self.pos += 1;
                    match e {
                        b'"' | b'\\' | b'/' => out.push(e),
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'u' => {
                            let hex = self.s.get(self.pos..self.pos + 4).ok_or("short \\u")?;
                            let hex = std::str::from_utf8(hex).map_err(|e| e.to_string())?;
                            let c = u32::from_str_radix(hex, 16).map_err(|e| e.to_string())?;
                            let c = char::from_u32(c).ok_or("surrogate \\u")?;
                            out.extend_from_slice(c.to_string().as_bytes());
                            self.pos += 4;
                        }
                        _ => return Err(format!("bad escape at {}", self.pos)),
                    }
                }
                0..=0x1f => return Err(format!("raw control byte at {}", self.pos)),
                _ => out.push(b),
            }
        }
    }
}
