//! The config file as camwall owns it at run time: the JSON document with its key order, the
//! bytes last read or written, atomic writes with a `.bak` copy (through a symlink, to its
//! target), detection of hand edits, and removal of temporary files a crash left behind.
//!
//! Reading happens once per load (startup or SIGHUP); the store is handed what was read, so
//! there is never a second read that could disagree with the validated config.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::config::LoadedConfig;

/// Why the store would not write.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file on disk is no longer what camwall last read or wrote: writing would lose an
    /// edit made by hand.
    #[error(
        "{} was changed on disk since camwall last read or wrote it; reload it first with \
         SIGHUP (`kill -HUP <pid>`), then retry",
        path.display()
    )]
    ChangedOnDisk { path: PathBuf },
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The config file and what camwall knows is in it. No `Debug`: the content holds camera
/// passwords.
pub struct ConfigStore {
    path: PathBuf,
    /// The document as last read or written: edits touch only the camera they change, so
    /// everything else (order, fields left at defaults, `server`) stays as is.
    doc: Value,
    /// The exact bytes last read or written: anything else on disk is someone else's edit.
    on_disk: Vec<u8>,
}

impl ConfigStore {
    /// A store for `path`, whose content was just read and validated as `loaded`.
    pub fn new(path: PathBuf, loaded: &LoadedConfig) -> Self {
        Self {
            path,
            doc: loaded.doc.clone(),
            on_disk: loaded.text.clone().into_bytes(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes `.NAME.tmp-PID` and `.NAME.bak.tmp-PID` files beside the config file (its
    /// target, when it is a symlink) whose process no longer runs: what a crash in the middle
    /// of a write leaves. Returns how many were removed; failures are logged, never fatal.
    pub fn remove_stale_temp_files(&self) -> usize {
        let target = std::fs::canonicalize(&self.path).unwrap_or_else(|_| self.path.clone());
        let (dir, name) = dir_and_name(&target);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return 0;
        };
        let prefixes = [format!(".{name}.tmp-"), format!(".{name}.bak.tmp-")];
        let mut removed = 0;
        for entry in entries.flatten() {
            let file = entry.file_name();
            let file = file.to_string_lossy();
            let Some(pid) = prefixes
                .iter()
                .find_map(|p| file.strip_prefix(p.as_str()))
                .and_then(|pid| pid.parse::<u32>().ok())
            else {
                continue;
            };
            if pid == std::process::id() || process_runs(pid) {
                continue;
            }
            match std::fs::remove_file(entry.path()) {
                Ok(()) => {
                    removed += 1;
                    tracing::info!(file = %entry.path().display(), "removed a temporary file left by a crash");
                }
                Err(e) => {
                    tracing::warn!(file = %entry.path().display(), error = %e, "cannot remove a stale temporary file")
                }
            }
        }
        removed
    }

    /// The document as last read or written.
    pub fn doc(&self) -> &Value {
        &self.doc
    }

    /// Adopts a fresh read of the file (after a reload was applied).
    pub fn reloaded(&mut self, loaded: &LoadedConfig) {
        self.doc = loaded.doc.clone();
        self.on_disk = loaded.text.clone().into_bytes();
    }

    /// Fails with [`StoreError::ChangedOnDisk`] unless the file still holds exactly what
    /// camwall last read or wrote.
    pub fn check_unchanged(&self) -> Result<(), StoreError> {
        unchanged(&self.path, &self.on_disk)
    }

    /// Writes `doc` (already validated) unless the file was edited by hand, and remembers it.
    pub async fn write(&mut self, doc: Value) -> Result<(), StoreError> {
        let text = serde_json::to_string_pretty(&doc).map_err(|e| StoreError::Io {
            action: "serialize",
            path: self.path.clone(),
            source: e.into(),
        })?;
        let bytes = format!("{text}\n").into_bytes();
        let (path, expected, new) = (self.path.clone(), self.on_disk.clone(), bytes.clone());
        // Reads, fsyncs and renames block: off the async workers.
        tokio::task::spawn_blocking(move || {
            unchanged(&path, &expected)?;
            write_config(&path, &new)
        })
        .await
        .map_err(|e| StoreError::Io {
            action: "write",
            path: self.path.clone(),
            source: std::io::Error::other(e),
        })??;
        self.doc = doc;
        self.on_disk = bytes;
        Ok(())
    }
}

/// A deleted file counts as changed: writing would undo the deletion. The window between this
/// read and the rename is a few milliseconds; an edit saved exactly then is not seen.
fn unchanged(path: &Path, expected: &[u8]) -> Result<(), StoreError> {
    let changed = || StoreError::ChangedOnDisk {
        path: path.to_path_buf(),
    };
    match std::fs::read(path) {
        Ok(bytes) if bytes == expected => Ok(()),
        Ok(_) => Err(changed()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(changed()),
        Err(source) => Err(StoreError::Io {
            action: "read",
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn write_config(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    write_atomic(path, bytes).map_err(|source| StoreError::Io {
        action: "write",
        path: path.to_path_buf(),
        source,
    })
}

/// Whether a process with this id exists (Linux: `/proc/PID`).
fn process_runs(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

/// The directory (`.` for a bare name) and the file name of `path`.
fn dir_and_name(path: &Path) -> (PathBuf, String) {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "cameras.json".into());
    (dir, name)
}

/// Writes `bytes` to `path` so that a crash at any moment leaves the old or the new file:
/// temporary file in the same directory, fsync, copy the old file to `<name>.bak`, rename,
/// fsync the directory. A symlink is written through: the rename replaces its target (the
/// `.bak` goes beside the target), and the link stays a link.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let target = match std::fs::canonicalize(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => path.to_path_buf(),
        Err(e) => return Err(e),
    };
    let path = target.as_path();
    let (dir, name) = dir_and_name(path);
    let dir = dir.as_path();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    {
        let mut f = std::fs::File::create(&tmp)?;
        // The file may hold camera passwords: keep the permissions the owner gave it (a
        // fresh file would get the umask's, often world-readable).
        if let Ok(meta) = std::fs::metadata(path) {
            f.set_permissions(meta.permissions())?;
        }
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    if path.exists() {
        let bak_tmp = dir.join(format!(".{name}.bak.tmp-{}", std::process::id()));
        std::fs::copy(path, &bak_tmp)?;
        std::fs::File::open(&bak_tmp)?.sync_all()?;
        std::fs::rename(&bak_tmp, dir.join(format!("{name}.bak")))?;
    }
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ONE: &str = r#"{"server": {"listen": "127.0.0.1:9"}, "cameras": [{"id": "a", "url": "lavfi:testsrc2"}]}"#;

    fn store_in(dir: &Path) -> ConfigStore {
        let path = dir.join("cameras.json");
        std::fs::write(&path, ONE).unwrap();
        let loaded = crate::config::load(&path).unwrap();
        ConfigStore::new(path, &loaded)
    }

    fn with_camera(doc: &Value, id: &str) -> Value {
        let mut doc = doc.clone();
        doc["cameras"]
            .as_array_mut()
            .unwrap()
            .push(json!({"id": id, "url": "lavfi:testsrc2"}));
        doc
    }

    #[test]
    fn atomic_write_keeps_a_backup() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("cameras.json");
        write_atomic(&p, b"one").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"one");
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(
            std::fs::read(dir.path().join("cameras.json.bak")).unwrap(),
            b"one"
        );
        // No temporary files left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[tokio::test]
    async fn its_own_writes_are_not_mistaken_for_hand_edits() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = store_in(dir.path());
        store.check_unchanged().unwrap();
        let doc = with_camera(store.doc(), "b");
        store.write(doc.clone()).await.unwrap();
        store.check_unchanged().unwrap();
        let doc = with_camera(&doc, "c");
        store.write(doc).await.unwrap();
        let on_disk: Value =
            serde_json::from_str(&std::fs::read_to_string(store.path()).unwrap()).unwrap();
        assert_eq!(on_disk["cameras"].as_array().unwrap().len(), 3);
        // Key order and untouched sections survive.
        assert_eq!(on_disk["server"]["listen"], "127.0.0.1:9");
        let keys: Vec<_> = on_disk.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["server", "cameras"]);
    }

    #[tokio::test]
    async fn a_hand_edit_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = store_in(dir.path());
        // Same length, same mtime granularity: only the content tells.
        let edited = ONE.replace("testsrc2", "testsrc3");
        std::fs::write(store.path(), &edited).unwrap();
        assert!(matches!(
            store.check_unchanged(),
            Err(StoreError::ChangedOnDisk { .. })
        ));
        let doc = with_camera(store.doc(), "b");
        let e = store.write(doc.clone()).await.unwrap_err();
        assert!(matches!(e, StoreError::ChangedOnDisk { .. }), "{e:?}");
        assert!(e.to_string().contains("kill -HUP"), "{e}");
        assert_eq!(std::fs::read_to_string(store.path()).unwrap(), edited);
        assert!(!dir.path().join("cameras.json.bak").exists());
        // Still refused on a second try; accepted once the edit was read back in.
        assert!(store.write(doc.clone()).await.is_err());
        let loaded = crate::config::load(store.path()).unwrap();
        store.reloaded(&loaded);
        store.write(with_camera(store.doc(), "b")).await.unwrap();
        let text = std::fs::read_to_string(store.path()).unwrap();
        assert!(
            text.contains("testsrc3") && text.contains("\"b\""),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_deleted_file_counts_as_changed() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = store_in(dir.path());
        std::fs::remove_file(store.path()).unwrap();
        let e = store.write(store.doc().clone()).await.unwrap_err();
        assert!(matches!(e, StoreError::ChangedOnDisk { .. }), "{e:?}");
        assert!(!store.path().exists(), "the deletion was undone");
    }

    #[test]
    fn a_symlinked_config_is_written_through_to_its_target() {
        let dir = tempfile::tempdir().unwrap();
        let real_dir = dir.path().join("real");
        std::fs::create_dir(&real_dir).unwrap();
        let target = real_dir.join("cameras.json");
        std::fs::write(&target, "one").unwrap();
        let link = dir.path().join("cameras.json");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        write_atomic(&link, b"two").unwrap();
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink(),
            "the link was replaced by a file"
        );
        assert_eq!(std::fs::read(&target).unwrap(), b"two");
        assert_eq!(
            std::fs::read(real_dir.join("cameras.json.bak")).unwrap(),
            b"one"
        );
        assert!(!dir.path().join("cameras.json.bak").exists());
    }

    #[test]
    fn temporary_files_of_dead_processes_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_in(dir.path());
        // No process can have this id (Linux caps ids at 2^22).
        let dead = 99_999_999u32;
        let me = std::process::id();
        for f in [
            format!(".cameras.json.tmp-{dead}"),
            format!(".cameras.json.bak.tmp-{dead}"),
            format!(".cameras.json.tmp-{me}"),
            format!(".other.json.tmp-{dead}"),
            "notes.txt".to_string(),
        ] {
            std::fs::write(dir.path().join(f), "x").unwrap();
        }
        assert_eq!(store.remove_stale_temp_files(), 2);
        let mut left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                format!(".cameras.json.tmp-{me}"),
                format!(".other.json.tmp-{dead}"),
                "cameras.json".to_string(),
                "notes.txt".to_string()
            ]
        );
    }

    #[tokio::test]
    async fn a_file_with_a_byte_order_mark_is_not_taken_for_a_hand_edit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cameras.json");
        std::fs::write(&path, format!("\u{feff}{ONE}")).unwrap();
        let loaded = crate::config::load(&path).unwrap();
        let mut store = ConfigStore::new(path, &loaded);
        store.check_unchanged().unwrap();
        store.write(with_camera(store.doc(), "b")).await.unwrap();
    }
}
