//! Reading whole files safely and writing them atomically.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

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

/// Replaces the file at `path` with `bytes`, so that a reader sees the old file or the new one
/// and never a partial write.
///
/// The bytes go to a new temporary file in the same directory (same file system, so the rename
/// is atomic), which is flushed to disk (`fsync`) and then renamed over `path`. On any error the
/// temporary file is removed and `path` is left as it was. JSON results, SVG figures, weights
/// and arrays are all written through this.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), IoError> {
    let write_error = |source| IoError::Write {
        path: path.to_path_buf(),
        source,
    };
    let temp = temp_path(path).map_err(write_error)?;
    // `create_new`: never truncate a file that is not ours, and so never remove one below.
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temp)
        .map_err(write_error)?;
    if let Err(source) = fill_and_rename(file, bytes, &temp, path) {
        // Best effort: the rename may have failed after the file was complete, or not.
        let _ = fs::remove_file(&temp);
        return Err(write_error(source));
    }
    sync_parent(path);
    Ok(())
}

/// `.{name}.{pid}.{counter}.tmp` beside `path`: unique across processes and threads.
fn temp_path(path: &Path) -> std::io::Result<PathBuf> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path.file_name().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the path has no file name",
        )
    })?;
    let mut temp = OsString::from(".");
    temp.push(name);
    temp.push(format!(
        ".{}.{}.tmp",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    Ok(path.with_file_name(temp))
}

fn fill_and_rename(mut file: File, bytes: &[u8], temp: &Path, path: &Path) -> std::io::Result<()> {
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    fs::rename(temp, path)
}

/// Flushes the directory entry of the rename to disk. Best effort: some file systems refuse to
/// `fsync` a directory, and the new content is complete and in place either way.
fn sync_parent(path: &Path) {
    let parent = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    if let Ok(dir) = File::open(parent) {
        let _ = dir.sync_all();
    }
}
