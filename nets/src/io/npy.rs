//! NumPy `.npy` files (format versions 1, 2 and 3), read and written by hand.
//!
//! Layout: the magic `\x93NUMPY`, a major and a minor version byte, the header length (`u16`
//! little-endian in version 1, `u32` in versions 2 and 3), then the header: a Python dict
//! literal such as `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }` padded with
//! spaces and ended by a newline, then the row-major data.
//!
//! Read: `'<f4'`, `'<f8'`, `'<f2'`, and the integers `'<i4'` and `'<i8'` (token ids, as
//! `np.int32` and `np.int64` save them; see [`Encoding::decode`] for exactness), in C order,
//! of any rank. Written: `'<f4'` or `'<f8'`, and `'<i8'` (class labels, as `np.int64`).

use std::path::Path;

use tensor::{Float, Tensor};

use super::atomic::write_atomic;
use super::element::{checked_numel, Encoding, StoredFloat};
use super::fs::read_bytes;
use super::IoError;

const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// The array in the `.npy` file at `path`, converted to `T`.
pub fn read_npy<T: Float>(path: &Path) -> Result<Tensor<T>, IoError> {
    npy_from_bytes(path, &read_bytes(path)?)
}

/// [`read_npy`] on the bytes of a file; `path` only names it in errors.
pub fn npy_from_bytes<T: Float>(path: &Path, bytes: &[u8]) -> Result<Tensor<T>, IoError> {
    let (header_text, data_start) = split(path, bytes)?;
    let header =
        Header::parse(header_text).map_err(|msg| malformed(path, format!("header: {msg}")))?;
    let unsupported = |what: String| IoError::Unsupported {
        path: path.to_path_buf(),
        what,
    };
    if header.fortran_order {
        return Err(unsupported(
            "the array is in Fortran order; save a C-ordered array (np.ascontiguousarray)".into(),
        ));
    }
    let encoding = match header.descr.as_str() {
        "<f4" => Encoding::F32,
        "<f8" => Encoding::F64,
        "<f2" => Encoding::F16,
        "<i4" => Encoding::I32,
        "<i8" => Encoding::I64,
        other => {
            return Err(unsupported(format!(
                "dtype '{other}', expected one of '<f4', '<f8', '<f2', '<i4', '<i8'"
            )))
        }
    };
    let shape = header.shape;
    let needed = checked_numel(&shape)
        .and_then(|n| n.checked_mul(encoding.size()))
        .ok_or_else(|| malformed(path, format!("shape {shape:?} has too many elements")))?;
    let data = &bytes[data_start..];
    if data.len() < needed {
        return Err(IoError::Truncated {
            path: path.to_path_buf(),
            what: format!("the data of shape {shape:?} and dtype '{}'", header.descr),
            needed: (data_start as u64).saturating_add(needed as u64),
            found: bytes.len() as u64,
        });
    }
    if data.len() > needed {
        let extra = data.len() - needed;
        return Err(malformed(
            path,
            format!("{extra} bytes follow the data of shape {shape:?}"),
        ));
    }
    Tensor::try_from_vec(&shape, encoding.decode(data)).map_err(|e| malformed(path, e.to_string()))
}

/// Writes `tensor` as a version 1 `.npy` file (version 2 if the header needs more than 64 KiB),
/// atomically (see [`write_atomic`]).
pub fn write_npy<T: StoredFloat>(path: &Path, tensor: &Tensor<T>) -> Result<(), IoError> {
    let mut data = Vec::with_capacity(tensor.numel() * size_of::<T>());
    T::extend_le(tensor.data(), &mut data);
    write_atomic(path, &encode(T::NPY_DESCR, tensor.shape(), &data))
}

/// Writes the integers `values` of the array of shape `shape` as a `'<i8'` `.npy` file (the
/// form `np.save` gives an `np.int64` array, such as class labels or token ids), atomically.
///
/// Panics if `values` does not hold `shape`'s number of elements (a bug of the caller).
pub fn write_npy_i64(path: &Path, shape: &[usize], values: &[i64]) -> Result<(), IoError> {
    assert_eq!(
        values.len(),
        shape.iter().product::<usize>(),
        "write_npy_i64: {} values for shape {shape:?}",
        values.len()
    );
    let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    write_atomic(path, &encode("<i8", shape, &data))
}

/// The bytes of a `.npy` file of dtype `descr` and `shape` whose data are `data`.
fn encode(descr: &str, shape: &[usize], data: &[u8]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|n| n.to_string()).collect();
    let shape = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    // Version 1 stores the header length in a u16. Magic, version, length, header and its
    // newline are padded with spaces to a multiple of 64 bytes, as NumPy does.
    let padded_len = |prefix: usize| (prefix + header.len() + 1).next_multiple_of(64) - prefix;
    let (version, prefix) = match padded_len(10) <= usize::from(u16::MAX) {
        true => (1u8, 10),
        false => (2u8, 12),
    };
    let padded = padded_len(prefix);
    header.push_str(&" ".repeat(padded - header.len() - 1));
    header.push('\n');
    let mut bytes = Vec::with_capacity(padded + prefix + data.len());
    bytes.extend(MAGIC);
    bytes.extend([version, 0]);
    match version {
        1 => bytes.extend((header.len() as u16).to_le_bytes()),
        _ => bytes.extend((header.len() as u32).to_le_bytes()),
    }
    bytes.extend(header.as_bytes());
    bytes.extend(data);
    bytes
}

/// The header text and the offset of the data.
fn split<'b>(path: &Path, bytes: &'b [u8]) -> Result<(&'b str, usize), IoError> {
    let truncated = |what: &str, needed: usize| IoError::Truncated {
        path: path.to_path_buf(),
        what: what.to_string(),
        needed: needed as u64,
        found: bytes.len() as u64,
    };
    let prefix = bytes
        .get(..8)
        .ok_or_else(|| truncated("the magic and version", 8))?;
    if &prefix[..6] != MAGIC {
        return Err(malformed(path, "no NPY magic; not a .npy file".to_string()));
    }
    // The header length is a u16 in version 1 and a u32 after, both little-endian.
    let start = match prefix[6] {
        1 => 10,
        2 | 3 => 12,
        major => {
            let msg = format!("format version {major}.{}, expected 1, 2 or 3", prefix[7]);
            return Err(malformed(path, msg));
        }
    };
    let len_field = bytes
        .get(8..start)
        .ok_or_else(|| truncated("the header length", start))?;
    let header_len = len_field
        .iter()
        .rev()
        .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
    let header = bytes
        .get(start..start + header_len)
        .ok_or_else(|| truncated("the header", start + header_len))?;
    let text = std::str::from_utf8(header)
        .map_err(|e| malformed(path, format!("the header is not text: {e}")))?;
    Ok((text, start + header_len))
}

/// The three keys of an NPY header.
#[derive(Debug, PartialEq)]
struct Header {
    descr: String,
    fortran_order: bool,
    shape: Vec<usize>,
}

impl Header {
    /// Parses the Python dict literal of a header; every key must appear exactly once.
    fn parse(text: &str) -> Result<Self, String> {
        let mut c = Cursor::new(text);
        let (mut descr, mut fortran_order, mut shape) = (None, None, None);
        c.expect(b'{')?;
        loop {
            if c.eat(b'}') {
                break;
            }
            let key = c.string()?;
            c.expect(b':')?;
            let duplicate = match key {
                "descr" => descr.replace(c.string()?.to_string()).is_some(),
                "fortran_order" => fortran_order.replace(c.boolean()?).is_some(),
                "shape" => shape.replace(c.tuple()?).is_some(),
                other => return Err(format!("unknown key '{other}'")),
            };
            if duplicate {
                return Err(format!("key '{key}' appears twice"));
            }
            if !c.eat(b',') {
                c.expect(b'}')?;
                break;
            }
        }
        c.expect_end()?;
        Ok(Self {
            descr: descr.ok_or("no 'descr' key")?,
            fortran_order: fortran_order.ok_or("no 'fortran_order' key")?,
            shape: shape.ok_or("no 'shape' key")?,
        })
    }
}

/// A position in a header; every method skips the whitespace before its token.
struct Cursor<'t> {
    text: &'t str,
    pos: usize,
}

impl<'t> Cursor<'t> {
    fn new(text: &'t str) -> Self {
        Self { text, pos: 0 }
    }

    fn rest(&self) -> &'t str {
        &self.text[self.pos..]
    }

    fn skip_space(&mut self) {
        let rest = self.rest();
        self.pos += rest.len() - rest.trim_start().len();
    }

    /// Consumes `byte` if it comes next.
    fn eat(&mut self, byte: u8) -> bool {
        self.skip_space();
        let found = self.rest().as_bytes().first() == Some(&byte);
        if found {
            self.pos += 1;
        }
        found
    }

    fn expect(&mut self, byte: u8) -> Result<(), String> {
        if self.eat(byte) {
            Ok(())
        } else {
            Err(format!("expected '{}' at byte {}", byte as char, self.pos))
        }
    }

    fn expect_end(&mut self) -> Result<(), String> {
        self.skip_space();
        match self.rest().is_empty() {
            true => Ok(()),
            false => Err(format!(
                "unexpected text after the dict at byte {}",
                self.pos
            )),
        }
    }

    /// A quoted string without escapes: `'...'` or `"..."`.
    fn string(&mut self) -> Result<&'t str, String> {
        self.skip_space();
        let rest = self.rest();
        let quote = match rest.chars().next() {
            Some(q @ ('\'' | '"')) => q,
            _ => return Err(format!("expected a string at byte {}", self.pos)),
        };
        let body = &rest[1..];
        let end = body
            .find(quote)
            .ok_or_else(|| format!("unterminated string at byte {}", self.pos))?;
        if body[..end].contains('\\') {
            return Err(format!("escapes are not supported, at byte {}", self.pos));
        }
        self.pos += end + 2;
        Ok(&body[..end])
    }

    fn boolean(&mut self) -> Result<bool, String> {
        self.skip_space();
        for (word, value) in [("True", true), ("False", false)] {
            if self.rest().starts_with(word) {
                self.pos += word.len();
                return Ok(value);
            }
        }
        Err(format!("expected True or False at byte {}", self.pos))
    }

    /// A tuple of non-negative integers: `()`, `(3,)`, `(3, 4)`.
    fn tuple(&mut self) -> Result<Vec<usize>, String> {
        self.expect(b'(')?;
        let mut items = Vec::new();
        loop {
            if self.eat(b')') {
                return Ok(items);
            }
            items.push(self.integer()?);
            if !self.eat(b',') {
                self.expect(b')')?;
                return Ok(items);
            }
        }
    }

    fn integer(&mut self) -> Result<usize, String> {
        self.skip_space();
        let rest = self.rest();
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let value = rest[..digits]
            .parse()
            .map_err(|e| format!("expected a size at byte {}: {e}", self.pos))?;
        self.pos += digits;
        Ok(value)
    }
}

fn malformed(path: &Path, msg: String) -> IoError {
    IoError::Malformed {
        path: path.to_path_buf(),
        msg,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_headers_as_numpy_writes_them() {
        let h = Header::parse("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }   \n");
        let expected = Header {
            descr: "<f4".into(),
            fortran_order: false,
            shape: vec![3, 4],
        };
        assert_eq!(h, Ok(expected));
        let h = Header::parse("{\"shape\": (5,), \"fortran_order\": True, \"descr\": \"<f8\"}");
        assert_eq!(h.map(|h| (h.shape, h.fortran_order)), Ok((vec![5], true)));
        let h = Header::parse("{'descr': '<f4', 'fortran_order': False, 'shape': ()}");
        assert_eq!(h.map(|h| h.shape), Ok(vec![]));
    }

    #[test]
    fn int64_files_read_back_exactly() {
        // Token ids up to 2^53 are exact in f64; 63 and a large id cover both ends of use.
        let dir = std::env::temp_dir().join(format!("npy-i64-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ids.npy");
        let values = [0i64, 5, 63, 1 << 40, 7, 1];
        write_npy_i64(&path, &[2, 3], &values).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert!(String::from_utf8_lossy(&bytes[..80]).contains("'descr': '<i8'"));
        assert_eq!(
            bytes.len() % 64,
            48,
            "a header padded to 64 bytes, then 6 x 8 bytes"
        );
        let back: Tensor<f64> = read_npy(&path).unwrap();
        assert_eq!(back.shape(), &[2, 3]);
        let expected: Vec<f64> = values.iter().map(|&v| v as f64).collect();
        assert_eq!(back.data(), &expected[..]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn rejects_bad_headers_with_a_reason() {
        let cases = [
            ("", "expected '{'"),
            ("{'descr': '<f4', 'fortran_order': False}", "no 'shape'"),
            ("{'descr': '<f4', 'descr': '<f4'", "appears twice"),
            ("{'descr': '<f4', 'extra': 1}", "unknown key 'extra'"),
            ("{'descr': '<f4', 'fortran_order': Maybe}", "True or False"),
            ("{'shape': (3, -4)}", "expected a size"),
            ("{'shape': (99999999999999999999999,)}", "expected a size"),
            ("{'descr': '<f4", "unterminated"),
            ("{'descr': '<f4'} x", "after the dict"),
        ];
        for (text, reason) in cases {
            let err = Header::parse(text).unwrap_err();
            assert!(err.contains(reason), "{text:?}: {err}");
        }
    }

    #[test]
    fn encoded_headers_are_aligned_to_64_bytes() {
        for shape in [vec![], vec![7], vec![2, 3], vec![1, 2, 3, 4]] {
            let data = vec![0u8; 4 * shape.iter().product::<usize>()];
            let bytes = encode("<f4", &shape, &data);
            let data_start = bytes.len() - 4 * shape.iter().product::<usize>();
            assert_eq!(data_start % 64, 0, "shape {shape:?}");
            assert_eq!(bytes[data_start - 1], b'\n');
        }
    }
}
