//! The D-Bus wire format, as much of it as talking to systemd needs: typed values, their
//! signatures, and the marshalling rules (little endian; every value aligned to its type's
//! boundary counted from the start of the message).
//!
//! Why not a D-Bus crate: `hako-runtime` must stay single-threaded until it clones the
//! container (fork-style `clone3`), starts in milliseconds and stays small; the maintained
//! Rust clients (zbus, dbus-rs) bring an executor thread or libdbus. systemd needs five
//! methods and one signal from us, which this file and `bus.rs` cover (youki made the same
//! choice for the same reasons).

/// One D-Bus value. Arrays carry their element signature so that empty arrays still know
/// their type.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Byte(u8),
    Bool(bool),
    I32(i32),
    U32(u32),
    I64(i64),
    U64(u64),
    Double(f64),
    Str(String),
    Path(String),
    Sig(String),
    Array(String, Vec<Value>),
    Struct(Vec<Value>),
    Variant(Box<Value>),
    DictEntry(Box<Value>, Box<Value>),
}

/// A malformed message or a value that does not match its signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed D-Bus data: {0}")]
pub(crate) struct WireError(pub(crate) String);

fn bad(what: impl Into<String>) -> WireError {
    WireError(what.into())
}

impl Value {
    pub(crate) fn signature(&self) -> String {
        match self {
            Value::Byte(_) => "y".into(),
            Value::Bool(_) => "b".into(),
            Value::I32(_) => "i".into(),
            Value::U32(_) => "u".into(),
            Value::I64(_) => "x".into(),
            Value::U64(_) => "t".into(),
            Value::Double(_) => "d".into(),
            Value::Str(_) => "s".into(),
            Value::Path(_) => "o".into(),
            Value::Sig(_) => "g".into(),
            Value::Array(elem, _) => format!("a{elem}"),
            Value::Struct(fields) => {
                let inner: String = fields.iter().map(Value::signature).collect();
                format!("({inner})")
            }
            Value::Variant(_) => "v".into(),
            Value::DictEntry(k, v) => format!("{{{}{}}}", k.signature(), v.signature()),
        }
    }

    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) | Value::Path(s) | Value::Sig(s) => Some(s),
            Value::Variant(v) => v.as_str(),
            _ => None,
        }
    }

    pub(crate) fn as_u64(&self) -> Option<u64> {
        match self {
            Value::U64(n) => Some(*n),
            Value::U32(n) => Some(u64::from(*n)),
            Value::Variant(v) => v.as_u64(),
            _ => None,
        }
    }
}

/// The alignment of the first character of a signature.
fn align_of(code: u8) -> usize {
    match code {
        b'n' | b'q' => 2,
        b'b' | b'i' | b'u' | b's' | b'o' | b'a' | b'h' => 4,
        b'x' | b't' | b'd' | b'(' | b'{' => 8,
        _ => 1,
    }
}

/// Splits the first complete type off a signature: `"a(sv)s"` -> `("a(sv)", "s")`.
pub(crate) fn split_type(sig: &str) -> Result<(&str, &str), WireError> {
    let b = sig.as_bytes();
    let mut i = 0;
    while i < b.len() && b[i] == b'a' {
        i += 1;
    }
    let Some(&c) = b.get(i) else {
        return Err(bad(format!("incomplete signature {sig:?}")));
    };
    let end = match c {
        b'(' | b'{' => {
            let close = if c == b'(' { b')' } else { b'}' };
            let mut depth = 0usize;
            let mut j = i;
            loop {
                match b.get(j) {
                    Some(&x) if x == c => depth += 1,
                    Some(&x) if x == close => {
                        depth -= 1;
                        if depth == 0 {
                            break j + 1;
                        }
                    }
                    Some(_) => {}
                    None => return Err(bad(format!("unbalanced signature {sig:?}"))),
                }
                j += 1;
            }
        }
        b'y' | b'b' | b'n' | b'q' | b'i' | b'u' | b'x' | b't' | b'd' | b's' | b'o' | b'g'
        | b'v' | b'h' => i + 1,
        other => {
            return Err(bad(format!(
                "unknown type code {:?} in {sig:?}",
                char::from(other)
            )));
        }
    };
    Ok(sig.split_at(end))
}

/// Appends values to a message buffer, keeping D-Bus alignment.
#[derive(Debug, Default)]
pub(crate) struct Encoder {
    pub(crate) buf: Vec<u8>,
}

impl Encoder {
    pub(crate) fn pad(&mut self, align: usize) {
        while !self.buf.len().is_multiple_of(align) {
            self.buf.push(0);
        }
    }

    fn u32(&mut self, n: u32) {
        self.pad(4);
        self.buf.extend_from_slice(&n.to_le_bytes());
    }

    fn string(&mut self, s: &str) {
        self.u32(u32::try_from(s.len()).unwrap_or(u32::MAX));
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
    }

    pub(crate) fn put(&mut self, v: &Value) {
        match v {
            Value::Byte(b) => self.buf.push(*b),
            Value::Bool(b) => self.u32(u32::from(*b)),
            Value::I32(n) => {
                self.pad(4);
                self.buf.extend_from_slice(&n.to_le_bytes());
            }
            Value::U32(n) => self.u32(*n),
            Value::I64(n) => {
                self.pad(8);
                self.buf.extend_from_slice(&n.to_le_bytes());
            }
            Value::U64(n) => {
                self.pad(8);
                self.buf.extend_from_slice(&n.to_le_bytes());
            }
            Value::Double(d) => {
                self.pad(8);
                self.buf.extend_from_slice(&d.to_le_bytes());
            }
            Value::Str(s) | Value::Path(s) => self.string(s),
            Value::Sig(s) => {
                self.buf.push(u8::try_from(s.len()).unwrap_or(u8::MAX));
                self.buf.extend_from_slice(s.as_bytes());
                self.buf.push(0);
            }
            Value::Array(elem, items) => {
                self.pad(4);
                let len_at = self.buf.len();
                self.buf.extend_from_slice(&[0; 4]);
                // The length counts from after the padding to the first element.
                self.pad(align_of(elem.as_bytes().first().copied().unwrap_or(b'y')));
                let start = self.buf.len();
                for item in items {
                    self.put(item);
                }
                let len = u32::try_from(self.buf.len() - start).unwrap_or(u32::MAX);
                self.buf[len_at..len_at + 4].copy_from_slice(&len.to_le_bytes());
            }
            Value::Struct(fields) => {
                self.pad(8);
                for f in fields {
                    self.put(f);
                }
            }
            Value::Variant(inner) => {
                self.put(&Value::Sig(inner.signature()));
                self.put(inner);
            }
            Value::DictEntry(k, val) => {
                self.pad(8);
                self.put(k);
                self.put(val);
            }
        }
    }
}

/// Reads values from a message buffer; positions count from the start of the message.
#[derive(Debug)]
pub(crate) struct Decoder<'a> {
    buf: &'a [u8],
    pub(crate) pos: usize,
}

impl<'a> Decoder<'a> {
    pub(crate) fn new(buf: &'a [u8], pos: usize) -> Decoder<'a> {
        Decoder { buf, pos }
    }

    pub(crate) fn align(&mut self, align: usize) -> Result<(), WireError> {
        let next = self.pos.next_multiple_of(align);
        if next > self.buf.len() {
            return Err(bad("truncated padding"));
        }
        self.pos = next;
        Ok(())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| bad("truncated value"))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn fixed<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        self.align(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn string(&mut self, len: usize) -> Result<String, WireError> {
        let bytes = self.take(len)?;
        if self.take(1)? != [0] {
            return Err(bad("string without its NUL"));
        }
        String::from_utf8(bytes.to_vec()).map_err(|_| bad("string is not UTF-8"))
    }

    /// Reads every value of `sig`, in order.
    pub(crate) fn values(&mut self, mut sig: &str) -> Result<Vec<Value>, WireError> {
        let mut out = Vec::new();
        while !sig.is_empty() {
            let (first, rest) = split_type(sig)?;
            out.push(self.value(first)?);
            sig = rest;
        }
        Ok(out)
    }

    /// Reads one value of the single complete type `sig`.
    pub(crate) fn value(&mut self, sig: &str) -> Result<Value, WireError> {
        let code = sig.as_bytes().first().copied().unwrap_or(0);
        Ok(match code {
            b'y' => Value::Byte(self.take(1)?[0]),
            b'b' => Value::Bool(u32::from_le_bytes(self.fixed()?) != 0),
            b'n' | b'q' => Value::U32(u32::from(u16::from_le_bytes(self.fixed()?))),
            b'i' => Value::I32(i32::from_le_bytes(self.fixed()?)),
            b'u' | b'h' => Value::U32(u32::from_le_bytes(self.fixed()?)),
            b'x' => Value::I64(i64::from_le_bytes(self.fixed()?)),
            b't' => Value::U64(u64::from_le_bytes(self.fixed()?)),
            b'd' => Value::Double(f64::from_le_bytes(self.fixed()?)),
            b's' | b'o' => {
                let len = u32::from_le_bytes(self.fixed()?) as usize;
                let s = self.string(len)?;
                if code == b's' {
                    Value::Str(s)
                } else {
                    Value::Path(s)
                }
            }
            b'g' => {
                let len = usize::from(self.take(1)?[0]);
                Value::Sig(self.string(len)?)
            }
            b'v' => {
                let len = usize::from(self.take(1)?[0]);
                let inner = self.string(len)?;
                let (one, rest) = split_type(&inner)?;
                if !rest.is_empty() {
                    return Err(bad(format!("variant holds more than one type: {inner:?}")));
                }
                Value::Variant(Box::new(self.value(one)?))
            }
            b'a' => {
                let elem = &sig[1..];
                let len = u32::from_le_bytes(self.fixed()?) as usize;
                self.align(align_of(elem.as_bytes().first().copied().unwrap_or(b'y')))?;
                let end = self
                    .pos
                    .checked_add(len)
                    .filter(|&e| e <= self.buf.len())
                    .ok_or_else(|| bad("array longer than the message"))?;
                let mut items = Vec::new();
                while self.pos < end {
                    items.push(self.value(elem)?);
                }
                if self.pos != end {
                    return Err(bad("array elements overrun its length"));
                }
                Value::Array(elem.to_owned(), items)
            }
            b'(' => {
                self.align(8)?;
                Value::Struct(self.values(&sig[1..sig.len() - 1])?)
            }
            b'{' => {
                self.align(8)?;
                let inner = &sig[1..sig.len() - 1];
                let (k, v) = split_type(inner)?;
                let key = self.value(k)?;
                let val = self.value(v)?;
                Value::DictEntry(Box::new(key), Box::new(val))
            }
            _ => return Err(bad(format!("cannot read type {sig:?}"))),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(v: Value) {
        let mut e = Encoder::default();
        e.put(&Value::Byte(7)); // start unaligned, as inside a real message
        e.put(&v);
        let mut d = Decoder::new(&e.buf, 1);
        assert_eq!(d.value(&v.signature()).unwrap(), v);
        assert_eq!(d.pos, e.buf.len());
    }

    #[test]
    fn values_survive_a_roundtrip() {
        roundtrip(Value::U64(u64::MAX));
        roundtrip(Value::Bool(true));
        roundtrip(Value::Str("hako-x.scope".into()));
        roundtrip(Value::Path("/org/freedesktop/systemd1/job/42".into()));
        roundtrip(Value::Array("u".into(), vec![Value::U32(1), Value::U32(2)]));
        roundtrip(Value::Array("(sv)".into(), Vec::new()));
        roundtrip(Value::Array(
            "(sv)".into(),
            vec![
                Value::Struct(vec![
                    Value::Str("MemoryMax".into()),
                    Value::Variant(Box::new(Value::U64(1 << 26))),
                ]),
                Value::Struct(vec![
                    Value::Str("AllowedCPUs".into()),
                    Value::Variant(Box::new(Value::Array("y".into(), vec![Value::Byte(3)]))),
                ]),
            ],
        ));
    }

    #[test]
    fn signature_splitting() {
        assert_eq!(split_type("a(sv)s").unwrap(), ("a(sv)", "s"));
        assert_eq!(split_type("a{sv}").unwrap(), ("a{sv}", ""));
        assert_eq!(
            split_type("ssa(sv)a(sa(sv))").unwrap(),
            ("s", "sa(sv)a(sa(sv))")
        );
        assert!(split_type("a").is_err());
        assert!(split_type("(su").is_err());
        assert!(split_type("z").is_err());
    }

    #[test]
    fn array_padding_is_not_counted() {
        // a(t) after one byte: length word at 4, padding to 8, one 8-byte element.
        let mut e = Encoder::default();
        e.put(&Value::Byte(0));
        e.put(&Value::Array(
            "(t)".into(),
            vec![Value::Struct(vec![Value::U64(5)])],
        ));
        assert_eq!(&e.buf[4..8], &8u32.to_le_bytes());
        assert_eq!(e.buf.len(), 16);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut d = Decoder::new(&[0xff, 0xff, 0xff, 0x7f, 1], 0);
        assert!(d.value("s").is_err());
        let mut d = Decoder::new(&[2, b'a', b'x', 0], 0);
        assert!(d.value("v").is_err());
        let mut d = Decoder::new(&[200, 0, 0, 0], 0);
        assert!(d.value("ay").is_err());
    }
}
