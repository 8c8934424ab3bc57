//! A fake host for tests: `/proc`, `/sys` and `/etc` files under a temporary directory.

use std::path::Path;

use super::host::HostPaths;

pub struct Fixture {
    dir: tempfile::TempDir,
    pub paths: HostPaths,
}

impl Fixture {
    /// A 4-CPU host with 16 GiB (8 GiB available), no huge pages, pid_max 4194304, threads-max 126000
    /// and 812 tasks.
    pub fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("temporary directory");
        let paths = HostPaths::under(dir.path());
        let f = Fixture { dir, paths };
        f.write("sys/devices/system/cpu/online", "0-3\n");
        f.meminfo(16 << 30, 8 << 30, None);
        f.write("proc/sys/kernel/pid_max", "4194304\n");
        f.write("proc/sys/kernel/threads-max", "126000\n");
        f.write("proc/loadavg", "0.10 0.20 0.30 2/812 4242\n");
        f
    }

    /// The fixture's root, also a path on a real filesystem for `statvfs`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, relative: &str, contents: &str) {
        let path = self.dir.path().join(relative);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("create fixture directory");
        std::fs::write(&path, contents).expect("write fixture file");
    }

    pub fn remove(&self, relative: &str) {
        std::fs::remove_file(self.dir.path().join(relative)).expect("remove fixture file");
    }

    /// `/proc/meminfo` with the given totals and, optionally, `(HugePages_Total, Hugepagesize)`.
    pub fn meminfo(&self, total: u64, available: u64, hugepages: Option<(u64, u64)>) {
        let mut text = format!(
            "MemTotal:       {} kB\nMemFree:        {} kB\nMemAvailable:   {} kB\nBuffers:          1024 kB\n",
            total / 1024,
            available / 2048,
            available / 1024
        );
        if let Some((pages, size)) = hugepages {
            text.push_str(&format!(
                "HugePages_Total:   {pages}\nHugePages_Free:    {pages}\nHugePages_Rsvd:        0\n\
                 Hugepagesize:    {} kB\n",
                size / 1024
            ));
        }
        self.write("proc/meminfo", &text);
    }

    /// `/sys/kernel/mm/hugepages/hugepages-<size_kb>kB/nr_hugepages`.
    pub fn sysfs_hugepages(&self, size_kb: u64, pages: u64) {
        self.write(&format!("sys/kernel/mm/hugepages/hugepages-{size_kb}kB/nr_hugepages"), &format!("{pages}\n"));
    }
}
