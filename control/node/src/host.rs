//! Reading the real host: CPUs, memory, huge pages, the node filesystem and PIDs.
//!
//! Each reading is a small function over [`HostPaths`], whose `/proc`, `/sys` and `/etc` roots tests
//! point at fixture directories. [`HostSample::read`] takes one of everything.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

/// Where the host's pseudo-filesystems are. [`Default`] is the real ones.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPaths {
    pub proc: PathBuf,
    pub sys: PathBuf,
    /// Only for the node's system info (`os-release`, `machine-id`).
    pub etc: PathBuf,
}

impl Default for HostPaths {
    fn default() -> Self {
        HostPaths { proc: "/proc".into(), sys: "/sys".into(), etc: "/etc".into() }
    }
}

impl HostPaths {
    /// `root/proc`, `root/sys` and `root/etc`: a fake host laid out under one directory.
    pub fn under(root: &Path) -> Self {
        HostPaths { proc: root.join("proc"), sys: root.join("sys"), etc: root.join("etc") }
    }
}

/// A failed reading, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("cannot read {}: {error}", path.display())]
    Read { path: PathBuf, error: io::Error },
    #[error("cannot parse {}: {reason}", path.display())]
    Parse { path: PathBuf, reason: String },
    #[error("cannot statvfs {}: {error}", path.display())]
    Statvfs { path: PathBuf, error: nix::errno::Errno },
}

/// From `/proc/meminfo`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemInfo {
    /// `MemTotal`: the node's memory capacity, as the kubelet reports it.
    pub total_bytes: u64,
    /// `MemAvailable`: memory the kernel can hand out without swapping.
    pub available_bytes: u64,
    /// `HugePages_Total`: pages of the default huge page size.
    pub hugepages_total: Option<u64>,
    /// `Hugepagesize`: the default huge page size.
    pub hugepage_size_bytes: Option<u64>,
}

/// From `statvfs(2)` of the node filesystem.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FsStats {
    pub total_bytes: u64,
    /// Available to unprivileged users (`f_bavail`), as the kubelet counts it.
    pub available_bytes: u64,
    pub total_inodes: u64,
    pub free_inodes: u64,
}

/// The system-wide task limit and how many tasks exist.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PidStats {
    /// `/proc/sys/kernel/pid_max`.
    pub pid_max: u64,
    /// `/proc/sys/kernel/threads-max`, when present.
    pub threads_max: Option<u64>,
    /// Tasks (threads) that exist now: the total in `/proc/loadavg`'s fourth field.
    pub running: u64,
}

impl PidStats {
    /// The task limit: the smaller of `pid_max` and `threads-max`, as the kubelet takes it.
    pub fn limit(&self) -> u64 {
        self.threads_max.map_or(self.pid_max, |t| t.min(self.pid_max))
    }

    /// The `pid.available` eviction signal: limit − running.
    pub fn available(&self) -> u64 {
        self.limit().saturating_sub(self.running)
    }
}

/// One reading of everything the node status needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostSample {
    /// Online CPUs (`/sys/devices/system/cpu/online`).
    pub cpus: u32,
    pub memory: MemInfo,
    /// Huge page size in bytes → pages configured (`nr_hugepages`), for every size the kernel offers.
    pub hugepages: BTreeMap<u64, u64>,
    /// The filesystem holding the node's state (the kubelet's `nodefs`).
    pub nodefs: FsStats,
    pub pids: PidStats,
}

/// 2 MiB, the usual huge page size.
pub const HUGEPAGE_2MI: u64 = 2 << 20;

impl HostSample {
    /// Reads everything once; `nodefs` is a path on the node filesystem (e.g. the state directory).
    pub fn read(paths: &HostPaths, nodefs: &Path) -> Result<HostSample, HostError> {
        let memory = read_meminfo(paths)?;
        Ok(HostSample {
            cpus: read_online_cpus(paths)?,
            hugepages: read_hugepages(paths, &memory)?,
            memory,
            nodefs: read_fs_stats(nodefs)?,
            pids: read_pids(paths)?,
        })
    }

    /// Bytes of memory set aside as huge pages, all sizes together.
    pub fn hugepages_bytes(&self) -> u64 {
        self.hugepages.iter().fold(0u64, |sum, (size, pages)| sum.saturating_add(size.saturating_mul(*pages)))
    }

    /// Bytes of memory set aside as 2 MiB huge pages.
    pub fn hugepages_2mi_bytes(&self) -> u64 {
        self.hugepages.get(&HUGEPAGE_2MI).map_or(0, |pages| pages.saturating_mul(HUGEPAGE_2MI))
    }
}

fn read_text(path: &Path) -> Result<String, HostError> {
    std::fs::read_to_string(path).map_err(|error| HostError::Read { path: path.to_path_buf(), error })
}

fn parse_error(path: &Path, reason: impl Into<String>) -> HostError {
    HostError::Parse { path: path.to_path_buf(), reason: reason.into() }
}

fn read_u64(path: &Path) -> Result<u64, HostError> {
    let text = read_text(path)?;
    text.trim().parse().map_err(|_| parse_error(path, format!("expected an unsigned integer, found {:?}", text.trim())))
}

/// The number of online CPUs: the machine's CPU capacity.
pub fn read_online_cpus(paths: &HostPaths) -> Result<u32, HostError> {
    let path = paths.sys.join("devices/system/cpu/online");
    let text = read_text(&path)?;
    parse_cpu_list(&text).map_err(|reason| parse_error(&path, reason))
}

/// Counts the CPUs in a kernel CPU list such as `0-3,8,10-11`.
pub fn parse_cpu_list(text: &str) -> Result<u32, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty CPU list".to_string());
    }
    let mut count: u32 = 0;
    for part in text.split(',') {
        let bad = || format!("bad CPU list entry {part:?} in {text:?}");
        let (first, last) = match part.split_once('-') {
            Some((a, b)) => (a.parse::<u32>().map_err(|_| bad())?, b.parse::<u32>().map_err(|_| bad())?),
            None => {
                let cpu = part.parse::<u32>().map_err(|_| bad())?;
                (cpu, cpu)
            }
        };
        if last < first {
            return Err(bad());
        }
        count = count.checked_add(last - first + 1).ok_or_else(bad)?;
    }
    Ok(count)
}

/// `/proc/meminfo`.
pub fn read_meminfo(paths: &HostPaths) -> Result<MemInfo, HostError> {
    let path = paths.proc.join("meminfo");
    let text = read_text(&path)?;
    parse_meminfo(&text).map_err(|reason| parse_error(&path, reason))
}

/// Parses `/proc/meminfo` text (`MemTotal:  16314012 kB` lines).
pub fn parse_meminfo(text: &str) -> Result<MemInfo, String> {
    let mut total = None;
    let mut available = None;
    let mut hugepages_total = None;
    let mut hugepage_size = None;
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else { continue };
        let slot = match key {
            "MemTotal" => &mut total,
            "MemAvailable" => &mut available,
            "HugePages_Total" => &mut hugepages_total,
            "Hugepagesize" => &mut hugepage_size,
            _ => continue,
        };
        let mut fields = rest.split_whitespace();
        let number: u64 = fields
            .next()
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| format!("bad {key} line {line:?}: expected a number"))?;
        let value = match fields.next() {
            None => number,
            Some("kB") => number.checked_mul(1024).ok_or_else(|| format!("{key} is too large"))?,
            Some(unit) => return Err(format!("bad {key} line {line:?}: unknown unit {unit:?}")),
        };
        *slot = Some(value);
    }
    Ok(MemInfo {
        total_bytes: total.ok_or("no MemTotal line")?,
        available_bytes: available.ok_or("no MemAvailable line (the kernel is older than 3.14?)")?,
        hugepages_total,
        hugepage_size_bytes: hugepage_size,
    })
}

/// Huge pages of every size, from `/sys/kernel/mm/hugepages/hugepages-<size>kB/nr_hugepages`; on a
/// kernel without that directory, the default size from `/proc/meminfo`.
pub fn read_hugepages(paths: &HostPaths, meminfo: &MemInfo) -> Result<BTreeMap<u64, u64>, HostError> {
    let dir = paths.sys.join("kernel/mm/hugepages");
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let mut pages = BTreeMap::new();
            if let (Some(size), Some(total)) = (meminfo.hugepage_size_bytes, meminfo.hugepages_total) {
                pages.insert(size, total);
            }
            return Ok(pages);
        }
        Err(error) => return Err(HostError::Read { path: dir, error }),
    };
    let mut pages = BTreeMap::new();
    for entry in entries {
        let entry = entry.map_err(|error| HostError::Read { path: dir.clone(), error })?;
        let name = entry.file_name();
        let Some(size_kb) = name.to_str().and_then(|n| n.strip_prefix("hugepages-")?.strip_suffix("kB")) else {
            continue;
        };
        let size_kb: u64 = size_kb.parse().map_err(|_| parse_error(&entry.path(), "bad huge page size in the name"))?;
        let count = read_u64(&entry.path().join("nr_hugepages"))?;
        pages.insert(size_kb.saturating_mul(1024), count);
    }
    Ok(pages)
}

/// Size and inodes of the filesystem holding `path`.
#[allow(clippy::useless_conversion)] // the field types differ by platform (u32 or u64); all widen to u64
pub fn read_fs_stats(path: &Path) -> Result<FsStats, HostError> {
    let st =
        nix::sys::statvfs::statvfs(path).map_err(|error| HostError::Statvfs { path: path.to_path_buf(), error })?;
    let fragment = u64::from(st.fragment_size());
    let (blocks, available, files, files_free) =
        (u64::from(st.blocks()), u64::from(st.blocks_available()), u64::from(st.files()), u64::from(st.files_free()));
    Ok(FsStats {
        total_bytes: blocks.saturating_mul(fragment),
        available_bytes: available.saturating_mul(fragment),
        total_inodes: files,
        free_inodes: files_free,
    })
}

/// `pid_max`, `threads-max` and the number of tasks.
pub fn read_pids(paths: &HostPaths) -> Result<PidStats, HostError> {
    let pid_max = read_u64(&paths.proc.join("sys/kernel/pid_max"))?;
    let threads_max = match read_u64(&paths.proc.join("sys/kernel/threads-max")) {
        Ok(n) => Some(n),
        Err(HostError::Read { error, .. }) if error.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    Ok(PidStats { pid_max, threads_max, running: read_running_tasks(paths)? })
}

/// Tasks in existence: the total after the slash in `/proc/loadavg` (`0.10 0.20 0.30 2/812 4242`), or,
/// without that file, the processes in `/proc`.
pub fn read_running_tasks(paths: &HostPaths) -> Result<u64, HostError> {
    let path = paths.proc.join("loadavg");
    match std::fs::read_to_string(&path) {
        Ok(text) => text
            .split_whitespace()
            .nth(3)
            .and_then(|field| field.split_once('/'))
            .and_then(|(_, total)| total.parse().ok())
            .ok_or_else(|| {
                parse_error(&path, format!("expected \"running/total\" as the 4th field in {:?}", text.trim()))
            }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => count_processes(paths),
        Err(error) => Err(HostError::Read { path, error }),
    }
}

/// Counts the numeric directories in `/proc`.
fn count_processes(paths: &HostPaths) -> Result<u64, HostError> {
    let entries =
        std::fs::read_dir(&paths.proc).map_err(|error| HostError::Read { path: paths.proc.clone(), error })?;
    let mut count = 0;
    for entry in entries.flatten() {
        if entry.file_name().to_str().is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())) {
            count += 1;
        }
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::Fixture;

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0-7\n"), Ok(8));
        assert_eq!(parse_cpu_list("0"), Ok(1));
        assert_eq!(parse_cpu_list("0-3,8,10-11"), Ok(7));
        assert!(parse_cpu_list("").is_err());
        assert!(parse_cpu_list("3-1").is_err());
        assert!(parse_cpu_list("0-x").unwrap_err().contains("0-x"));
        assert!(parse_cpu_list("0,,1").is_err());
    }

    #[test]
    fn meminfo_parsing() {
        let m = parse_meminfo(
            "MemTotal:       16314012 kB\nMemFree:  100 kB\nMemAvailable:    8000000 kB\nHugePages_Total:     512\n\
             HugePages_Free:      512\nHugepagesize:       2048 kB\n",
        )
        .unwrap();
        assert_eq!(m.total_bytes, 16_314_012 * 1024);
        assert_eq!(m.available_bytes, 8_000_000 * 1024);
        assert_eq!(m.hugepages_total, Some(512));
        assert_eq!(m.hugepage_size_bytes, Some(HUGEPAGE_2MI));

        assert!(parse_meminfo("MemAvailable: 1 kB\n").unwrap_err().contains("MemTotal"));
        assert!(parse_meminfo("MemTotal: 1 kB\n").unwrap_err().contains("MemAvailable"));
        assert!(parse_meminfo("MemTotal: x kB\nMemAvailable: 1 kB").unwrap_err().contains("MemTotal"));
        assert!(parse_meminfo("MemTotal: 1 MB\nMemAvailable: 1 kB").unwrap_err().contains("unknown unit"));
    }

    #[test]
    fn reads_a_fixture_host() {
        let f = Fixture::new();
        f.meminfo(16 << 30, 8 << 30, Some((512, HUGEPAGE_2MI)));
        let s = HostSample::read(&f.paths, f.dir()).unwrap();
        assert_eq!(s.cpus, 4);
        assert_eq!(s.memory.total_bytes, 16 << 30);
        assert_eq!(s.memory.available_bytes, 8 << 30);
        // No sysfs huge page directory: the default size from meminfo.
        assert_eq!(s.hugepages_2mi_bytes(), 1 << 30);
        assert_eq!(s.pids, PidStats { pid_max: 4_194_304, threads_max: Some(126_000), running: 812 });
        assert_eq!(s.pids.limit(), 126_000);
        assert_eq!(s.pids.available(), 126_000 - 812);
        assert!(s.nodefs.total_bytes > 0);
    }

    #[test]
    fn hugepages_from_sysfs_every_size() {
        let f = Fixture::new();
        f.meminfo(16 << 30, 8 << 30, Some((0, 1 << 30)));
        f.sysfs_hugepages(2048, 1024);
        f.sysfs_hugepages(1_048_576, 2);
        let s = HostSample::read(&f.paths, f.dir()).unwrap();
        assert_eq!(s.hugepages, BTreeMap::from([(HUGEPAGE_2MI, 1024), (1 << 30, 2)]));
        assert_eq!(s.hugepages_2mi_bytes(), 2 << 30);
        assert_eq!(s.hugepages_bytes(), 4 << 30);
    }

    #[test]
    fn pid_counts() {
        let f = Fixture::new();
        f.write("proc/loadavg", "0.52 0.58 0.59 3/1500 12345\n");
        f.remove("proc/sys/kernel/threads-max");
        let p = read_pids(&f.paths).unwrap();
        assert_eq!(p, PidStats { pid_max: 4_194_304, threads_max: None, running: 1500 });
        assert_eq!(p.limit(), 4_194_304);

        f.write("proc/loadavg", "0.52 0.58 0.59\n");
        let err = read_pids(&f.paths).unwrap_err().to_string();
        assert!(err.contains("loadavg") && err.contains("4th field"), "{err}");

        // Without loadavg: count the process directories.
        f.remove("proc/loadavg");
        for pid in ["1", "42", "4242"] {
            f.write(&format!("proc/{pid}/stat"), "");
        }
        f.write("proc/self_not_a_pid/stat", "");
        assert_eq!(read_pids(&f.paths).unwrap().running, 3);

        f.write("proc/sys/kernel/pid_max", "lots\n");
        let err = read_pids(&f.paths).unwrap_err().to_string();
        assert!(err.contains("pid_max") && err.contains("\"lots\""), "{err}");
    }

    #[test]
    fn errors_name_the_file() {
        let f = Fixture::new();
        f.remove("sys/devices/system/cpu/online");
        let err = HostSample::read(&f.paths, f.dir()).unwrap_err().to_string();
        assert!(err.contains("devices/system/cpu/online"), "{err}");

        let err = read_fs_stats(Path::new("/nonexistent/switchyard-test")).unwrap_err().to_string();
        assert!(err.contains("cannot statvfs /nonexistent/switchyard-test"), "{err}");
    }

    /// The machine these tests run on is Linux: read it for real.
    #[test]
    fn samples_the_real_host() {
        let s = HostSample::read(&HostPaths::default(), Path::new("/")).expect("reading this host");
        assert!(s.cpus > 0);
        assert!(s.memory.total_bytes > 0);
        assert!(s.memory.available_bytes > 0 && s.memory.available_bytes <= s.memory.total_bytes);
        assert!(s.nodefs.total_bytes > 0);
        assert!(s.pids.pid_max > 0 && s.pids.running > 0);
    }
}
