//! Reading whole files safely.

use std::fs::{self, File};
use std::io::Read;
use std::path::Path;

use super::IoError;

/// The whole content of the regular file at `path`.
///
/// Anything else (a directory, a FIFO, a device such as `/dev/zero`) is refused before it is
/// opened, since opening or reading it could block forever or never end. At most the length the
/// file had when it was checked is read, so a file growing meanwhile cannot make this loop.
pub fn read_bytes(path: &Path) -> Result<Vec<u8>, IoError> {
    let read_error = |source| IoError::Read {
        path: path.to_path_buf(),
        source,
    };
    let meta = fs::metadata(path).map_err(read_error)?;
    if !meta.is_file() {
        return Err(IoError::NotAFile {
            path: path.to_path_buf(),
        });
    }
    let file = File::open(path).map_err(read_error)?;
    let mut bytes = Vec::new();
    file.take(meta.len())
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    Ok(bytes)
}

/// The file at `path` as UTF-8 text.
pub(crate) fn read_text(path: &Path) -> Result<String, IoError> {
    String::from_utf8(read_bytes(path)?).map_err(|e| IoError::Malformed {
        path: path.to_path_buf(),
        msg: format!(
            "not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        ),
    })
}
