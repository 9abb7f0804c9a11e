//! Safetensors files: named tensors read into `Tensor<f32>` or `Tensor<f64>`, and written
//! atomically.
//!
//! Layout: an 8-byte little-endian length `n`, a JSON header of `n` bytes mapping each tensor
//! name to `{"dtype", "shape", "data_offsets": [start, end]}` (plus an optional
//! `"__metadata__"` map of strings), then the data section, where each tensor's row-major,
//! little-endian bytes sit at `[start, end)`. Offsets are contiguous from 0 and end exactly at
//! the end of the file.
//!
//! Reading checks the header here first, so that every problem names the file and the tensor,
//! and then lets the `safetensors` crate parse it as a second opinion. The check comes first
//! because the crate adds the claimed data size to the header size unchecked, which overflows
//! (a panic in debug builds) on a header claiming `usize::MAX` bytes.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use safetensors::tensor::{Metadata, TensorInfo};
use safetensors::SafeTensors;
use serde_json::{json, Value};
use tensor::{Float, Tensor};

use super::atomic::write_atomic;
use super::element::{checked_numel, Encoding, StoredFloat, SAFETENSORS_DTYPES};
use super::fs::read_bytes;
use super::IoError;

/// The name the header reserves for its string metadata.
const METADATA_KEY: &str = "__metadata__";

/// The content of a safetensors file.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorFile<T: Float> {
    /// The tensors, by name.
    pub tensors: BTreeMap<String, Tensor<T>>,
    /// The header's `__metadata__` strings (empty if it has none).
    pub metadata: BTreeMap<String, String>,
}

/// Every tensor of the safetensors file at `path`, converted to `T` (F16 and BF16 widen
/// exactly, F64 into `f32` rounds); other dtypes are an error naming the tensor.
pub fn read_safetensors<T: Float>(path: &Path) -> Result<TensorFile<T>, IoError> {
    safetensors_from_bytes(path, &read_bytes(path)?)
}

/// [`read_safetensors`] on the bytes of a file; `path` only names it in errors.
pub fn safetensors_from_bytes<T: Float>(
    path: &Path,
    bytes: &[u8],
) -> Result<TensorFile<T>, IoError> {
    let file = Parsed::parse(path, bytes)?;
    let mut tensors = BTreeMap::new();
    for name in file.names() {
        let tensor = file.tensor(&name)?;
        tensors.insert(name, tensor);
    }
    Ok(TensorFile {
        tensors,
        metadata: file.metadata(),
    })
}

/// Writes `tensors` (name, value) and the string `metadata` as a safetensors file, atomically
/// (see [`write_atomic`]). The bytes are those of [`safetensors_to_bytes`].
pub fn write_safetensors<'a, T: StoredFloat>(
    path: &Path,
    tensors: impl IntoIterator<Item = (&'a str, &'a Tensor<T>)>,
    metadata: &BTreeMap<String, String>,
) -> Result<(), IoError> {
    write_atomic(path, &safetensors_to_bytes(path, tensors, metadata)?)
}

/// The bytes of a safetensors file holding `tensors` (name, value) and the string `metadata`;
/// `path` only names the file in errors. The bytes depend only on the arguments: tensors are
/// laid out in name order and the header's keys are sorted.
pub fn safetensors_to_bytes<'a, T: StoredFloat>(
    path: &Path,
    tensors: impl IntoIterator<Item = (&'a str, &'a Tensor<T>)>,
    metadata: &BTreeMap<String, String>,
) -> Result<Vec<u8>, IoError> {
    let mut sorted = BTreeMap::new();
    for (name, tensor) in tensors {
        let unwritable = |msg: &str| IoError::Unwritable {
            path: path.to_path_buf(),
            tensor: name.to_string(),
            msg: msg.to_string(),
        };
        if name == METADATA_KEY {
            return Err(unwritable("the name is reserved for the header's metadata"));
        }
        if sorted.insert(name, tensor).is_some() {
            return Err(unwritable("the name is given twice"));
        }
    }
    Ok(encode(&sorted, metadata))
}

/// The bytes of a safetensors file holding `tensors` in name order.
fn encode<T: StoredFloat>(
    tensors: &BTreeMap<&str, &Tensor<T>>,
    metadata: &BTreeMap<String, String>,
) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    if !metadata.is_empty() {
        header.insert(METADATA_KEY.to_string(), json!(metadata));
    }
    let mut data = Vec::new();
    for (name, tensor) in tensors {
        let start = data.len();
        T::extend_le(tensor.data(), &mut data);
        let entry = json!({
            "dtype": T::SAFETENSORS_DTYPE,
            "shape": tensor.shape(),
            "data_offsets": [start, data.len()],
        });
        header.insert(name.to_string(), entry);
    }
    let mut header = Value::Object(header).to_string().into_bytes();
    // Pad with spaces so the data section starts 8-byte aligned, as the reference writer does.
    header.resize(header.len().next_multiple_of(8), b' ');
    let mut bytes = Vec::with_capacity(8 + header.len() + data.len());
    bytes.extend((header.len() as u64).to_le_bytes());
    bytes.extend(header);
    bytes.extend(data);
    bytes
}

/// A checked safetensors file whose tensors are still bytes.
pub(crate) struct Parsed<'a> {
    path: &'a Path,
    header: Metadata,
    data: &'a [u8],
}

impl<'a> Parsed<'a> {
    /// Checks the bytes of a file (see the module docs) and parses its header.
    pub(crate) fn parse(path: &'a Path, bytes: &'a [u8]) -> Result<Self, IoError> {
        check_layout(path, bytes)?;
        let (n, header) =
            SafeTensors::read_metadata(bytes).map_err(|source| IoError::Safetensors {
                path: path.to_path_buf(),
                source,
            })?;
        // The crate checked that `8 + n` is within the buffer.
        let data = &bytes[8 + n..];
        Ok(Self { path, header, data })
    }

    /// The tensor names, sorted.
    pub(crate) fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.header.tensors().into_keys().collect();
        names.sort();
        names
    }

    pub(crate) fn info(&self, name: &str) -> Option<&TensorInfo> {
        self.header.info(name)
    }

    /// The header's `__metadata__` strings.
    pub(crate) fn metadata(&self) -> BTreeMap<String, String> {
        let metadata = self.header.metadata().iter().flatten();
        metadata.map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// The tensor `name` converted to `T`.
    pub(crate) fn tensor<T: Float>(&self, name: &str) -> Result<Tensor<T>, IoError> {
        let bad = |msg: String| bad_entry(self.path, name, msg);
        let info = self
            .info(name)
            .ok_or_else(|| bad("not in the file".to_string()))?;
        let encoding = Encoding::of_dtype(info.dtype).ok_or_else(|| IoError::Dtype {
            path: self.path.to_path_buf(),
            tensor: name.to_string(),
            found: format!("{:?}", info.dtype),
            expected: SAFETENSORS_DTYPES,
        })?;
        let (start, end) = info.data_offsets;
        let bytes = self
            .data
            .get(start..end)
            .ok_or_else(|| bad(format!("data_offsets [{start}, {end}] are out of range")))?;
        if checked_numel(&info.shape).and_then(|n| n.checked_mul(encoding.size()))
            != Some(bytes.len())
        {
            return Err(bad(format!(
                "shape {:?} does not fit its {} bytes",
                info.shape,
                bytes.len()
            )));
        }
        Tensor::try_from_vec(&info.shape, encoding.decode(bytes)).map_err(|e| bad(e.to_string()))
    }
}

/// Checks what the header claims against the real bytes: the length prefix, the header's
/// UTF-8 and JSON, each entry's dtype, shape and size, contiguous offsets, and a data section
/// ending exactly where the last tensor ends.
fn check_layout(path: &Path, bytes: &[u8]) -> Result<(), IoError> {
    let (header, data_len) = split_header(path, bytes)?;
    let mut entries = header_entries(path, header)?;
    for (name, info) in &entries {
        check_entry_size(path, name, info)?;
    }
    entries.sort_by_key(|entry| entry.1.data_offsets);
    check_offsets(path, &entries, data_len)
}

/// The header text and the length of the data section after it.
fn split_header<'b>(path: &Path, bytes: &'b [u8]) -> Result<(&'b str, usize), IoError> {
    let found = bytes.len() as u64;
    let Some(prefix) = bytes.first_chunk::<8>() else {
        return Err(IoError::Truncated {
            path: path.to_path_buf(),
            what: "the header length prefix".to_string(),
            needed: 8,
            found,
        });
    };
    let claimed = u64::from_le_bytes(*prefix);
    let available = found - 8;
    if claimed > available {
        return Err(IoError::Truncated {
            path: path.to_path_buf(),
            what: format!("a header of {claimed} bytes (as its length prefix claims)"),
            needed: claimed.saturating_add(8),
            found,
        });
    }
    // `claimed <= available`, so it fits in `usize` and in the buffer.
    let header = &bytes[8..8 + claimed as usize];
    let text = std::str::from_utf8(header).map_err(|e| {
        let offset = 8 + e.valid_up_to();
        malformed(path, &format!("the header is not UTF-8 (byte {offset})"))
    })?;
    Ok((text, (available - claimed) as usize))
}

/// The header's tensor entries, each parsed as the crate parses it.
fn header_entries(path: &Path, header: &str) -> Result<Vec<(String, TensorInfo)>, IoError> {
    let map: serde_json::Map<String, Value> = serde_json::from_str(header)
        .map_err(|e| malformed(path, &format!("the header is not a JSON object: {e}")))?;
    let mut entries = Vec::with_capacity(map.len());
    for (name, value) in map {
        if name == METADATA_KEY {
            serde_json::from_value::<Option<HashMap<String, String>>>(value).map_err(|e| {
                malformed(
                    path,
                    &format!("{METADATA_KEY} must map strings to strings: {e}"),
                )
            })?;
            continue;
        }
        match serde_json::from_value::<TensorInfo>(value) {
            Ok(info) => entries.push((name, info)),
            Err(e) => return Err(bad_entry(path, &name, format!("invalid header entry: {e}"))),
        }
    }
    Ok(entries)
}

/// The entry's offsets span exactly `numel(shape) * dtype size` bytes.
fn check_entry_size(path: &Path, name: &str, info: &TensorInfo) -> Result<(), IoError> {
    let (start, end) = info.data_offsets;
    let bad = |msg: String| Err(bad_entry(path, name, msg));
    if end < start {
        return bad(format!(
            "data_offsets [{start}, {end}] end before they start"
        ));
    }
    let Some(needed) = checked_numel(&info.shape).and_then(|n| n.checked_mul(info.dtype.size()))
    else {
        return bad(format!("shape {:?} has too many elements", info.shape));
    };
    if end - start != needed {
        return bad(format!(
            "data_offsets [{start}, {end}] hold {} bytes, but shape {:?} of {:?} needs {needed}",
            end - start,
            info.shape,
            info.dtype
        ));
    }
    Ok(())
}

/// Entries sorted by offsets tile `[0, data_len)` exactly: no gap, no overlap, no excess.
fn check_offsets(
    path: &Path,
    entries: &[(String, TensorInfo)],
    data_len: usize,
) -> Result<(), IoError> {
    let mut end = 0;
    let mut previous: Option<&str> = None;
    for (name, info) in entries {
        let (s, e) = info.data_offsets;
        let bad = |msg: String| Err(bad_entry(path, name, msg));
        if s < end {
            let other = previous.unwrap_or_default();
            return bad(format!(
                "data_offsets [{s}, {e}] overlap the data of tensor '{other}', which ends at {end}"
            ));
        }
        if s > end {
            return bad(format!(
                "data_offsets [{s}, {e}] leave bytes [{end}, {s}) unused; offsets must be contiguous from 0"
            ));
        }
        if e > data_len {
            return bad(format!(
                "data_offsets [{s}, {e}] run past the end of the data section, which has \
                 {data_len} bytes (the file is truncated, or the offsets are wrong)"
            ));
        }
        end = e;
        previous = Some(name);
    }
    if end != data_len {
        let extra = data_len - end;
        return Err(malformed(
            path,
            &format!("{extra} bytes follow the last tensor's data"),
        ));
    }
    Ok(())
}

fn malformed(path: &Path, msg: &str) -> IoError {
    IoError::Malformed {
        path: path.to_path_buf(),
        msg: msg.to_string(),
    }
}

fn bad_entry(path: &Path, tensor: &str, msg: String) -> IoError {
    IoError::BadEntry {
        path: path.to_path_buf(),
        tensor: tensor.to_string(),
        msg,
    }
}
