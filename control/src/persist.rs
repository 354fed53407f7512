//! The last-good policy on disk, written so that a crash at any instant leaves either the old or
//! the new document, never a torn one: temp file in the same directory, fsync, rename over the
//! target, fsync the directory (so the rename itself survives power loss).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Failure to persist or read back a document.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    /// The target has no parent directory (a bare root path).
    #[error("{0}: not a file path inside a directory")]
    NoParent(PathBuf),
    /// An I/O step failed; `step` says which.
    #[error("{path}: {step}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// create dir / write temp / fsync / rename / fsync dir / read.
        step: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

fn io_err<'a>(path: &'a Path, step: &'static str) -> impl FnOnce(io::Error) -> PersistError + 'a {
    move |source| PersistError::Io {
        path: path.to_owned(),
        step,
        source,
    }
}

/// Replace `path` with `bytes` atomically and durably (creates the directory if missing).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), PersistError> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .ok_or_else(|| PersistError::NoParent(path.to_owned()))?;
    fs::create_dir_all(dir).map_err(io_err(dir, "create dir"))?;
    let file_name = path
        .file_name()
        .ok_or_else(|| PersistError::NoParent(path.to_owned()))?;
    let mut tmp_name = file_name.to_owned();
    tmp_name.push(format!(".tmp.{}", std::process::id()));
    let tmp = dir.join(tmp_name);

    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(io_err(&tmp, "create temp"))?;
        f.write_all(bytes).map_err(io_err(&tmp, "write temp"))?;
        f.sync_all().map_err(io_err(&tmp, "fsync temp"))?;
        drop(f);
        fs::rename(&tmp, path).map_err(io_err(path, "rename"))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(dir, "fsync dir"))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// The bytes at `path`, or `None` if there is no such file.
pub fn read_if_exists(path: &Path) -> Result<Option<Vec<u8>>, PersistError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(path, "read")(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/last-good.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(read_if_exists(&path).unwrap().as_deref(), Some(&b"two"[..]));
        let names: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("last-good.json")]);
    }

    #[test]
    fn missing_file_is_none() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_if_exists(&dir.path().join("nope")).unwrap().is_none());
    }

    #[test]
    fn unwritable_target_names_the_step() {
        let dir = tempfile::tempdir().unwrap();
        // A directory where the file should go: rename over it fails.
        let path = dir.path().join("taken");
        fs::create_dir(&path).unwrap();
        fs::write(path.join("x"), b"x").unwrap();
        let err = write_atomic(&path, b"data").unwrap_err().to_string();
        assert!(err.contains("rename"), "{err}");
    }
}
