//! Writing a file atomically: a reader sees the old file or the new one, never a partial
//! write. Every file the project writes (decompositions, checkpoints, JSON results, figures,
//! weights, arrays) goes through [`write_atomic`]. Also the FNV-1a hash ([`fnv1a`]) that
//! ties a decomposition's JSON to its tensor file and a checkpoint to its data.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::IoError;

/// Replaces the file at `path` with `bytes`, so that a reader sees the old file or the new one
/// and never a partial write; an error names the file ([`write_atomic_io`] does the work).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), IoError> {
    write_atomic_io(path, bytes).map_err(|source| IoError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// Replaces the file at `path` with `bytes`.
///
/// The bytes go to a new temporary file in the same directory (same file system, so the rename
/// is atomic), which is flushed to disk (`fsync`) and then renamed over `path`. On any error the
/// temporary file is removed and `path` is left as it was.
fn write_atomic_io(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let temp = temp_path(path)?;
    // `create_new`: never truncate a file that is not ours, and so never remove one below.
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temp)?;
    if let Err(e) = fill_and_rename(file, bytes, &temp, path) {
        // Best effort: the rename may have failed after the file was complete, or not.
        let _ = fs::remove_file(&temp);
        return Err(e);
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

/// FNV-1a, 64 bits, over a stream of words: `fnv1a(words)` folds each `u64` in as one unit.
/// (For file contents and data fingerprints: a check against mix-ups, not a cryptographic
/// hash.)
pub fn fnv1a(words: impl IntoIterator<Item = u64>) -> u64 {
    words.into_iter().fold(0xcbf2_9ce4_8422_2325, |h, x| {
        (h ^ x).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_of_bytes_is_the_published_value() {
        // FNV-1a 64 of "a" and of "foobar" (the reference test vectors).
        assert_eq!(fnv1a(b"a".iter().map(|&b| b as u64)), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(
            fnv1a(b"foobar".iter().map(|&b| b as u64)),
            0x8594_4171_f739_67e8
        );
    }

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temporary() {
        let dir = std::env::temp_dir().join(format!("l3d-atomic-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("out.json");
        write_atomic_io(&path, b"old").unwrap();
        write_atomic_io(&path, b"new").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        // A missing directory: an error, and nothing written anywhere.
        let missing = dir.join("no-such-dir").join("x.json");
        assert!(write_atomic_io(&missing, b"x").is_err());
        assert!(write_atomic_io(Path::new("/"), b"x").is_err());
        let names: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("out.json")]);
        fs::remove_dir_all(&dir).unwrap();
    }
}
