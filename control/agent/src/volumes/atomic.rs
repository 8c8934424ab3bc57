//! Writes a volume's files so that a reader never sees half a set, as the
//! kubelet's atomic writer does.
//!
//! The files of one version live in a directory of their own
//! (`..2026_12_08_03_04_05.123456789`); `..data` is a symlink to the current
//! one, and each top-level entry the volume shows is a symlink through it
//! (`ca.crt -> ..data/ca.crt`). An update writes the new version beside the
//! old one, then swaps `..data` with one rename, which is atomic: a reader
//! that resolves a path sees the old set or the new one, never a mix.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Component, Path, PathBuf};

/// The link to the current version.
const DATA: &str = "..data";
/// The link being prepared, renamed over `..data`.
const DATA_TMP: &str = "..data_tmp";

/// One file of a volume: its content and permission bits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumeFile {
    pub content: Vec<u8>,
    pub mode: u32,
}

/// A volume's files by relative path (`ca.crt`, `dir/key`).
pub type VolumeFiles = BTreeMap<String, VolumeFile>;

/// Checks a relative path as the API server does for `items[].path`: not
/// absolute, no `..` element, not empty, and not starting with `..` (the
/// writer's own names).
pub fn check_path(path: &str) -> Result<(), String> {
    let p = Path::new(path);
    if path.is_empty() || p.is_absolute() {
        return Err(format!("path {path:?} must be relative and non-empty"));
    }
    if p.components().any(|c| !matches!(c, Component::Normal(_))) || path.starts_with("..") {
        return Err(format!("path {path:?} must not contain '..' or start with '..'"));
    }
    Ok(())
}

/// Writes `files` into `dir` as its current version. Returns whether
/// anything changed (an unchanged set writes nothing).
pub fn write(dir: &Path, files: &VolumeFiles) -> io::Result<bool> {
    for path in files.keys() {
        check_path(path).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    }
    fs::create_dir_all(dir)?;
    let current = fs::read_link(dir.join(DATA)).ok();
    if let Some(current) = &current {
        if same_files(&dir.join(current), files)? {
            return Ok(false);
        }
    }
    // The new version, complete, beside the old one.
    let version = version_name();
    let version_dir = dir.join(&version);
    fs::create_dir(&version_dir)?;
    for (path, file) in files {
        let target = version_dir.join(path);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(&target, &file.content)?;
        fs::set_permissions(&target, fs::Permissions::from_mode(file.mode))?;
    }
    // Top-level links for the new set, before the swap: they resolve
    // through `..data`, so they show the old set until it.
    let tops: BTreeSet<String> = files.keys().map(|p| top_level(p)).collect();
    for top in &tops {
        let link = dir.join(top);
        if fs::symlink_metadata(&link).is_err() {
            symlink(Path::new(DATA).join(top), &link)?;
        }
    }
    // The swap.
    let tmp = dir.join(DATA_TMP);
    let _ = fs::remove_file(&tmp);
    symlink(&version, &tmp)?;
    fs::rename(&tmp, dir.join(DATA))?;
    // What the old set had and the new one does not, and the old version.
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("..") {
            if name != DATA && name != version {
                remove(&entry.path())?;
            }
        } else if !tops.contains(&name) && entry.file_type()?.is_symlink() {
            fs::remove_file(entry.path())?;
        }
    }
    Ok(true)
}

fn top_level(path: &str) -> String {
    path.split('/').next().unwrap_or(path).to_string()
}

/// Whether the version in `version_dir` holds exactly `files`.
fn same_files(version_dir: &Path, files: &VolumeFiles) -> io::Result<bool> {
    let mut on_disk = Vec::new();
    list(version_dir, PathBuf::new(), &mut on_disk)?;
    if on_disk.len() != files.len() {
        return Ok(false);
    }
    for rel in on_disk {
        let Some(want) = files.get(&rel.to_string_lossy().into_owned()) else { return Ok(false) };
        let path = version_dir.join(&rel);
        if fs::read(&path)? != want.content || fs::metadata(&path)?.permissions().mode() & 0o7777 != want.mode {
            return Ok(false);
        }
    }
    Ok(true)
}

fn list(dir: &Path, rel: PathBuf, out: &mut Vec<PathBuf>) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let rel = rel.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            list(&entry.path(), rel, out)?;
        } else {
            out.push(rel);
        }
    }
    Ok(())
}

fn remove(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path)?.is_dir() {
        true => fs::remove_dir_all(path),
        false => fs::remove_file(path),
    }
}

/// `..YYYY_MM_DD_HH_MM_SS.NANOS`, unique per write.
fn version_name() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    format!("..{}.{:09}", now.as_secs(), now.subsec_nanos())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(entries: &[(&str, &str, u32)]) -> VolumeFiles {
        entries
            .iter()
            .map(|(p, c, m)| (p.to_string(), VolumeFile { content: c.as_bytes().to_vec(), mode: *m }))
            .collect()
    }

    fn read(dir: &Path, path: &str) -> String {
        fs::read_to_string(dir.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn files_are_shown_through_the_data_link_and_replaced_as_a_set() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().join("vol");
        assert!(write(&dir, &files(&[("ca.crt", "one", 0o644), ("conf/app.yaml", "a: 1", 0o600)])).expect("write"));
        assert_eq!(read(&dir, "ca.crt"), "one");
        assert_eq!(read(&dir, "conf/app.yaml"), "a: 1");
        assert!(fs::symlink_metadata(dir.join("ca.crt")).expect("link").file_type().is_symlink());
        assert_eq!(fs::metadata(dir.join("conf/app.yaml")).expect("file").permissions().mode() & 0o777, 0o600);
        let first = fs::read_link(dir.join(DATA)).expect("..data");

        // The same set again changes nothing.
        assert!(!write(&dir, &files(&[("ca.crt", "one", 0o644), ("conf/app.yaml", "a: 1", 0o600)])).expect("write"));
        assert_eq!(fs::read_link(dir.join(DATA)).expect("..data"), first);

        // A new set: new content, a file gone, a file added; one version left.
        assert!(write(&dir, &files(&[("ca.crt", "two", 0o644), ("token", "t", 0o600)])).expect("write"));
        assert_eq!(read(&dir, "ca.crt"), "two");
        assert_eq!(read(&dir, "token"), "t");
        assert!(fs::symlink_metadata(dir.join("conf")).is_err(), "the removed entry's link is gone");
        let versions: Vec<_> = fs::read_dir(&dir)
            .expect("dir")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("..") && n != DATA)
            .collect();
        assert_eq!(versions.len(), 1, "{versions:?}");
    }

    #[test]
    fn paths_that_leave_the_volume_are_refused() {
        for bad in ["", "/etc/passwd", "../x", "a/../../x", "..data", "..hidden"] {
            assert!(check_path(bad).is_err(), "{bad:?}");
        }
        assert!(check_path("a/b.txt").is_ok());
        let tmp = tempfile::tempdir().expect("temp dir");
        assert!(write(tmp.path(), &files(&[("../escape", "x", 0o644)])).is_err());
    }
}
