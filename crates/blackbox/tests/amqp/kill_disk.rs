//! The kill test with the data folder on a small tmpfs (64 MiB), so that
//! crashes while the disk is full, and restarts on a full disk, are
//! covered: some cycles fill the disk under load (the store pauses on
//! ENOSPC and nacks persistent publishes) and are SIGKILLed while it is
//! full; some restarts happen before the space is given back. Mounting
//! needs root; elsewhere the test is skipped with a message saying so.
//! Cycles: KILL_TEST_TMPFS_CYCLES (16); seed: KILL_TEST_SEED.

use std::io::Write;
use std::path::PathBuf;

use crate::harness::{external_broker, uniq};
use crate::kill::{run_kill_test, seed_and_cycles};
use crate::node::Node;
use crate::overload::ConfigFile;

/// A tmpfs mounted for one test, and a filler file that takes all its
/// free space.
pub struct SmallDisk {
    /// The mount point.
    mnt: PathBuf,
    /// The filler file while the disk is full.
    filler: Option<PathBuf>,
    /// Times `fill` ran.
    pub fills: u32,
}

impl SmallDisk {
    /// Mounts a tmpfs of `size_bytes` in a fresh temp dir.
    pub fn mount(size_bytes: u64) -> Result<SmallDisk, String> {
        let mnt = std::env::temp_dir().join(uniq("warren-smallfs"));
        std::fs::create_dir_all(&mnt).map_err(|e| e.to_string())?;
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_bytes}"), "tmpfs"])
            .arg(&mnt)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            let _ = std::fs::remove_dir(&mnt);
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        Ok(SmallDisk {
            mnt,
            filler: None,
            fills: 0,
        })
    }

    /// The data folder (a subfolder, so the node can remove it).
    pub fn data_dir(&self) -> PathBuf {
        self.mnt.join("data")
    }

    pub fn is_full(&self) -> bool {
        self.filler.is_some()
    }

    /// Writes a filler file until the disk is full (ENOSPC).
    pub fn fill(&mut self) {
        let path = self.mnt.join(uniq("filler"));
        let mut f = std::fs::File::create(&path).expect("create filler");
        for chunk in [1 << 20, 4096] {
            let buf = vec![0u8; chunk];
            while f.write_all(&buf).is_ok() {}
        }
        self.filler = Some(path);
        self.fills += 1;
    }

    /// Removes the filler: the space comes back.
    pub fn free(&mut self) {
        if let Some(p) = self.filler.take() {
            std::fs::remove_file(p).expect("remove filler");
        }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.mnt)
            .output();
        let _ = std::fs::remove_dir_all(&self.mnt);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_test_on_a_64mib_tmpfs_that_fills_up() {
    if external_broker() {
        eprintln!("skipped: needs to kill and restart warren itself");
        return;
    }
    let mut disk = match SmallDisk::mount(64 << 20) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("SKIPPED kill_test_on_a_64mib_tmpfs_that_fills_up: cannot mount a tmpfs here (needs root): {e}");
            return;
        }
    };
    // No free-disk alarm (limit 0): the store meets ENOSPC itself. A small
    // reserve and fast retries, as in tests/python/test_disk_full.py.
    let conf = ConfigFile::new(
        "disk_free_limit_bytes = 0\nstore_reserve_bytes = 2097152\nstore_retry_interval_ms = 100\n",
    );
    let (seed, cycles) = seed_and_cycles("KILL_TEST_TMPFS_CYCLES", 16);
    let node = Node::start_in(disk.data_dir(), &["--config", conf.arg()]).await;
    run_kill_test(node, seed, cycles, Some(&mut disk)).await;
    assert!(
        disk.fills > 0,
        "seed {seed}: the disk never filled (raise the cycles)"
    );
}
