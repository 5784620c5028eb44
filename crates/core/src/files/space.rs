//! Disk space on the file system of the blobs (and, by default, of the SQLite database):
//! writes are refused with `InsufficientStorage` (507) before the disk is completely full,
//! and a delete works even when it is.
//!
//! `delete-reserve` (default 4 MiB) is kept back in two halves. Writes are refused while less
//! than half of it is free, checked before each write begins (one `statvfs`). The other half
//! is a ballast file, `DATA/blobs/reserve`: when something filled the disk anyway (a stream
//! already under way, another program), a delete that fails for lack of space removes the
//! ballast and runs again, so SQLite has room for its log; the ballast comes back once there
//! is room for it again (`restore`, from the server's background jobs, every second).

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Mutex;

use crate::error::{Error, Result};

/// The space kept back on one directory's file system.
pub struct Space {
    dir: PathBuf,
    ballast: PathBuf,
    reserve: u64,
    /// Serialises the ballast's removal and return.
    turn: Mutex<()>,
}

impl Space {
    /// Keep `reserve` bytes back on the file system of `dir` (0: nothing kept back).
    pub fn new(dir: PathBuf, reserve: u64) -> Space {
        let space = Space {
            ballast: dir.join("reserve"),
            dir,
            reserve,
            turn: Mutex::new(()),
        };
        space.restore();
        space
    }

    /// Free bytes for an unprivileged writer; `None` when the file system cannot tell.
    pub fn free(&self) -> Option<u64> {
        let stat = rustix::fs::statvfs(&self.dir).ok()?;
        Some(stat.f_bavail.saturating_mul(stat.f_frsize))
    }

    /// `InsufficientStorage` when a write should not start: less than half the reserve free.
    pub fn check(&self) -> Result<()> {
        if self.reserve == 0 {
            return Ok(());
        }
        match self.free() {
            Some(free) if free < self.reserve / 2 => Err(Error::InsufficientStorage(
                "the disk is full; delete files to make room".into(),
            )),
            _ => Ok(()),
        }
    }

    /// Remove the ballast, for a delete that found the disk full; returns whether there was
    /// one to remove (a retry is worth it).
    pub fn release(&self) -> bool {
        let _turn = self.turn.lock().unwrap_or_else(|e| e.into_inner());
        match std::fs::remove_file(&self.ballast) {
            Ok(()) => {
                tracing::warn!("the disk is full: the space kept back for deletes is in use");
                true
            }
            Err(_) => false,
        }
    }

    /// Put the ballast back if it is missing and there is room for it and the write margin.
    pub fn restore(&self) {
        let size = self.reserve / 2;
        if size == 0 || self.ballast.exists() {
            return;
        }
        let _turn = self.turn.lock().unwrap_or_else(|e| e.into_inner());
        let room = self.reserve.saturating_mul(2);
        if self.free().is_none_or(|free| free < room) {
            return;
        }
        // Written, not sparse: the blocks must really be taken to be given back.
        let written = (|| -> std::io::Result<()> {
            let partial = self.dir.join("reserve.tmp");
            let mut file = std::fs::File::create(&partial)?;
            let zeros = vec![0u8; 64 << 10];
            let mut left = size;
            while left > 0 {
                let n = left.min(zeros.len() as u64) as usize;
                file.write_all(&zeros[..n])?;
                left -= n as u64;
            }
            file.sync_all()?;
            std::fs::rename(&partial, &self.ballast)
        })();
        if let Err(error) = written {
            let _ = std::fs::remove_file(self.dir.join("reserve.tmp"));
            tracing::debug!(%error, "the space kept back for deletes could not be set aside yet");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reserve_larger_than_the_disk_refuses_writes_and_keeps_no_ballast() {
        let dir = tempfile::tempdir().unwrap();
        let space = Space::new(dir.path().to_path_buf(), u64::MAX / 4);
        assert!(matches!(space.check(), Err(Error::InsufficientStorage(_))));
        assert!(!dir.path().join("reserve").exists());
        assert!(!space.release());
    }

    #[test]
    fn the_ballast_is_set_aside_given_back_and_restored() {
        let dir = tempfile::tempdir().unwrap();
        let space = Space::new(dir.path().to_path_buf(), 64 << 10);
        assert!(space.check().is_ok());
        let ballast = dir.path().join("reserve");
        assert_eq!(std::fs::metadata(&ballast).unwrap().len(), 32 << 10);
        assert!(space.release());
        assert!(!ballast.exists());
        space.restore();
        assert!(ballast.exists());
        let none = Space::new(dir.path().join("none"), 0);
        assert!(none.check().is_ok());
    }
}
