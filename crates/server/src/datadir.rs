//! The data directory holds the SQLite database (with the token signing secret), the blobs and
//! the admin key file, so only the user the server runs as may read it: the directory is 0700
//! and what the server writes in it 0600. An install made before this was so is tightened at
//! start (with one log line), and a directory any user may write to is refused.

use std::path::Path;

/// Why the data directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    /// Any local user could replace the database or plant files.
    #[error(
        "the data directory {0} is writable by every user, so any of them could replace the \
         database; make it private with `chmod 700 {0}` (or choose another --data-dir)"
    )]
    WorldWritable(String),
    /// File system trouble.
    #[error("cannot prepare the data directory {path}: {source}")]
    Io {
        /// The directory.
        path: String,
        /// What failed.
        source: std::io::Error,
    },
}

/// Creates the data directory (0700) or checks an existing one; loosely permitted installs are
/// tightened. Returns what was tightened, for the one log line.
pub fn prepare(dir: &Path) -> Result<Option<String>, DataDirError> {
    let io = |source| DataDirError::Io {
        path: dir.display().to_string(),
        source,
    };
    if !dir.exists() {
        create_private_dir(dir).map_err(io)?;
        return Ok(None);
    }
    tighten(dir).map_err(io)?.map_or(Ok(None), |t| match t {
        Tightened::WorldWritable => Err(DataDirError::WorldWritable(dir.display().to_string())),
        Tightened::Changed { was, count } => Ok(Some(format!(
            "the data directory {} was readable by other users (mode {was:o}); made it and {count} \
             file(s) in it private to this user",
            dir.display()
        ))),
    })
}

/// Creates a directory (and missing parents) that only its owner can enter.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
}

/// Opens a new file for writing that only its owner can read.
pub fn private_file_options() -> std::fs::OpenOptions {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o
}

/// Makes the SQLite database and its companion files (write-ahead log, shared memory) private.
/// A database that does not exist yet is created empty and private, so SQLite, which gives
/// the companions the database file's mode, makes them private too.
pub fn private_sqlite_files(db: &Path) -> std::io::Result<()> {
    if !db.exists() {
        if let Some(parent) = db.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        private_file_options().truncate(false).open(db)?;
    }
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        restrict(Path::new(&name), 0o600)?;
    }
    Ok(())
}

enum Tightened {
    WorldWritable,
    Changed { was: u32, count: usize },
}

#[cfg(unix)]
fn tighten(dir: &Path) -> std::io::Result<Option<Tightened>> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir)?.permissions().mode() & 0o7777;
    if mode & 0o002 != 0 {
        return Ok(Some(Tightened::WorldWritable));
    }
    if mode & 0o077 == 0 {
        // Already private: nobody else could reach the files inside to read them.
        return Ok(None);
    }
    restrict(dir, 0o700)?;
    let mut count = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                count += usize::from(restrict(&entry.path(), 0o700)?);
                pending.push(entry.path());
            } else if kind.is_file() {
                count += usize::from(restrict(&entry.path(), 0o600)?);
            }
        }
    }
    Ok(Some(Tightened::Changed { was: mode, count }))
}

#[cfg(not(unix))]
fn tighten(_dir: &Path) -> std::io::Result<Option<Tightened>> {
    Ok(None)
}

/// Takes group and other permissions away (a file that is not there is fine); whether it
/// changed anything.
#[cfg(unix)]
fn restrict(path: &Path, mode: u32) -> std::io::Result<bool> {
    use std::os::unix::fs::PermissionsExt;
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    let current = meta.permissions().mode() & 0o7777;
    if meta.file_type().is_symlink() || current & 0o077 == 0 {
        return Ok(false);
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(current & mode))?;
    Ok(true)
}

#[cfg(not(unix))]
fn restrict(_path: &Path, _mode: u32) -> std::io::Result<bool> {
    Ok(false)
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    fn chmod(p: &Path, m: u32) {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    }

    #[test]
    fn a_new_directory_is_private() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        assert_eq!(prepare(&dir).unwrap(), None);
        assert_eq!(mode(&dir), 0o700);
    }

    #[test]
    fn an_old_install_is_tightened_once() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        std::fs::create_dir_all(dir.join("blobs/sha256/ab")).unwrap();
        std::fs::write(dir.join("wanllmdb.db"), b"x").unwrap();
        std::fs::write(dir.join("blobs/sha256/ab/cd"), b"y").unwrap();
        chmod(&dir, 0o755);
        chmod(&dir.join("wanllmdb.db"), 0o644);
        chmod(&dir.join("blobs/sha256/ab/cd"), 0o644);
        chmod(&dir.join("blobs"), 0o755);
        let said = prepare(&dir).unwrap().expect("a log line");
        assert!(said.contains("mode 755"), "{said}");
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("wanllmdb.db")), 0o600);
        assert_eq!(mode(&dir.join("blobs")), 0o700);
        assert_eq!(mode(&dir.join("blobs/sha256/ab/cd")), 0o600);
        assert_eq!(prepare(&dir).unwrap(), None);
    }

    #[test]
    fn a_world_writable_directory_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        std::fs::create_dir(&dir).unwrap();
        chmod(&dir, 0o777);
        let err = prepare(&dir).unwrap_err().to_string();
        assert!(err.contains("writable by every user"), "{err}");
        assert!(err.contains("chmod 700"), "{err}");
        assert_eq!(mode(&dir), 0o777, "refused, not changed");
    }

    #[test]
    fn sqlite_files_are_private_from_the_start() {
        let tmp = tempfile::tempdir().unwrap();
        let db = tmp.path().join("t.db");
        private_sqlite_files(&db).unwrap();
        assert_eq!(mode(&db), 0o600);
        std::fs::write(tmp.path().join("t.db-wal"), b"").unwrap();
        chmod(&tmp.path().join("t.db-wal"), 0o644);
        private_sqlite_files(&db).unwrap();
        assert_eq!(mode(&tmp.path().join("t.db-wal")), 0o600);
    }
}
