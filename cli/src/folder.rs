//! A run's output folder, owned by one run at a time and always holding one run's results,
//! whole.
//!
//! - The lock: `<out>/.l3d.lock`, locked with `flock` (`File::try_lock`) for as long as the run
//!   lives and holding its pid and start time. A second run into the folder finds it locked
//!   and is refused with the holder's pid and start time. The kernel releases the lock when
//!   its process dies, however it dies, so a lock left by a killed run (its file still names
//!   the dead pid) is taken over with a note.
//! - The staging folder: `<out>/.staging/`. A run writes everything there (its config, its
//!   checkpoints, its results, and so the temporary files of atomic writes) and
//!   [`OutputFolder::commit`] moves the results into `<out>` at the end, after the old ones
//!   (when the run may replace them) are removed. A killed run leaves its debris in the
//!   staging folder only, which the next fresh run clears.
//! - Results: the names in [`RESULTS`]. A folder holding any of them belongs to an earlier
//!   run; a new run into it is refused unless it replaces them (`--overwrite`).

use crate::error::{Result, RunError};
use crate::ui::Ui;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// The lock file's name inside the output folder.
pub const LOCK: &str = ".l3d.lock";
/// The staging folder's name inside the output folder.
pub const STAGING: &str = ".staging";
/// Everything a run or a report writes into its folder.
pub const RESULTS: &[&str] = &[
    "config.json",
    "decomposition.json",
    "decomposition.safetensors",
    "subnetworks.safetensors",
    "subnetworks.json",
    "report.json",
    "analysis.json",
    "report.html",
    "figures",
    "model",
    "intervention.json",
];

/// An output folder held by this process: locked, with a staging folder inside.
///
/// Invariants: while it exists, this process holds the `flock` of `<dir>/.l3d.lock`, whose
/// file names this process; on drop the lock file is removed, and so is the folder when this
/// run created it and leaves nothing in it.
pub struct OutputFolder {
    dir: PathBuf,
    lock: Option<File>,
    /// The folder did not exist before this run.
    created: bool,
}

impl OutputFolder {
    /// Takes the folder `dir` (creating it if needed) for this process, or says who holds it.
    pub fn acquire(dir: &Path, ui: &Ui) -> Result<Self> {
        let created = !dir.exists();
        crate::files::create_dir(dir)?;
        let path = dir.join(LOCK);
        let io = |source| RunError::Folder {
            path: path.clone(),
            source,
        };
        // A lock file is removed by its holder when it is done (then unlocked): a lock won on
        // a file already removed is no lock, so it is tried again on the file now there.
        let mut file = loop {
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(io)?;
            match file.try_lock() {
                Ok(()) if is_the_file_at(&file, &path) => break file,
                Ok(()) => continue,
                Err(fs::TryLockError::WouldBlock) => {
                    let mut text = String::new();
                    file.read_to_string(&mut text).map_err(io)?;
                    return Err(RunError::FolderInUse {
                        dir: dir.to_path_buf(),
                        holder: holder_of(&text),
                    });
                }
                Err(fs::TryLockError::Error(e)) => return Err(io(e)),
            }
        };
        let mut previous = String::new();
        file.read_to_string(&mut previous).map_err(io)?;
        if !previous.trim().is_empty() {
            ui.warn(&format!(
                "{}: taking over from a run that did not finish ({}; no longer running)",
                dir.display(),
                holder_of(&previous)
            ));
        }
        let me = format!("pid {}\nstarted {}\n", std::process::id(), utc_now_text());
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        file.write_all(me.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
        remove_stray_temporaries(dir);
        Ok(Self {
            dir: dir.to_path_buf(),
            lock: Some(file),
            created,
        })
    }

    /// The output folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The staging folder, created if needed.
    pub fn staging(&self) -> Result<PathBuf> {
        let staging = self.dir.join(STAGING);
        crate::files::create_dir(&staging)?;
        Ok(staging)
    }

    /// Empties the staging folder (what a killed run left there) for a fresh run.
    pub fn clear_staging(&self) -> Result<()> {
        let staging = self.dir.join(STAGING);
        remove_entry(&staging)
    }

    /// The first of [`RESULTS`] that the folder holds, if any.
    pub fn results_present(dir: &Path) -> Option<&'static str> {
        RESULTS.iter().copied().find(|name| dir.join(name).exists())
    }

    /// Moves everything in the staging folder into the output folder. With `replace`, every
    /// earlier result is removed first, so the folder then holds this run's results alone;
    /// without it, only the results being written are replaced (a report rewriting its
    /// figures). The staging folder is removed at the end.
    pub fn commit(&self, replace: bool) -> Result<()> {
        let staging = self.dir.join(STAGING);
        if replace {
            for name in RESULTS {
                remove_entry(&self.dir.join(name))?;
            }
        }
        let entries = fs::read_dir(&staging).map_err(|source| RunError::Folder {
            path: staging.clone(),
            source,
        })?;
        let mut names: Vec<_> = entries
            .filter_map(|e| e.ok().map(|e| e.file_name()))
            .collect();
        // config.json last: a folder with a config.json has all of its run's results.
        names.sort_by_key(|n| n == "config.json");
        for name in names {
            let to = self.dir.join(&name);
            remove_entry(&to)?;
            fs::rename(staging.join(&name), &to)
                .map_err(|source| RunError::Folder { path: to, source })?;
        }
        remove_entry(&staging)
    }
}

impl Drop for OutputFolder {
    /// Gives the folder back: the lock file goes (the lock with it), and so does a folder this
    /// run created and left empty (a run that failed before writing anything).
    fn drop(&mut self) {
        let staging = self.dir.join(STAGING);
        if fs::read_dir(&staging).is_ok_and(|mut d| d.next().is_none()) {
            let _ = fs::remove_dir(&staging);
        }
        let _ = fs::remove_file(self.dir.join(LOCK));
        drop(self.lock.take());
        if self.created {
            let _ = fs::remove_dir(&self.dir);
        }
    }
}

/// Whether the open `file` is still the file at `path` (not one removed since it was opened).
fn is_the_file_at(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), fs::metadata(path)) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => false,
    }
}

/// "pid 1234, started 2026-12-02 16:40:01 UTC" from a lock file's text.
fn holder_of(text: &str) -> String {
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .map(str::trim)
            .unwrap_or("unknown")
            .to_string()
    };
    format!("pid {}, started {}", field("pid "), field("started "))
}

/// Removes a file or a folder with everything in it; nothing if it does not exist.
fn remove_entry(path: &Path) -> Result<()> {
    let result = match fs::symlink_metadata(path) {
        Err(_) => return Ok(()),
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
    };
    result.map_err(|source| RunError::Folder {
        path: path.to_path_buf(),
        source,
    })
}

/// Removes the temporary files of atomic writes (`.{name}.{pid}.{n}.tmp`) that killed runs of
/// earlier versions left among the results (now they can only be left in the staging
/// folder, which is cleared as a whole).
fn remove_stray_temporaries(dir: &Path) {
    for folder in [dir.to_path_buf(), dir.join("figures"), dir.join("model")] {
        let Ok(entries) = fs::read_dir(&folder) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') && name.ends_with(".tmp") {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
}

/// The current time as `2026-12-02 16:40:01 UTC`.
fn utc_now_text() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`: eras of 400 years, years starting in March so leap days come last).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_from_day_counts() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_424), (2025, 12, 2));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }

    #[test]
    fn holder_named_from_the_lock_text() {
        let text = "pid 42\nstarted 2026-12-02 16:40:01 UTC\n";
        assert_eq!(holder_of(text), "pid 42, started 2026-12-02 16:40:01 UTC");
        assert_eq!(holder_of(""), "pid unknown, started unknown");
    }
}
