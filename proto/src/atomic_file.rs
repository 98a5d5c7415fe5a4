//! The one way Orrery replaces a file on disk: write a temporary file beside it, fsync, rename
//! over the old one, fsync the directory. A crash at any point leaves either the old file or
//! the new one, whole, never a mix.
//!
//! [`AtomicFile`] streams (the state file is written chunk by chunk, never held whole);
//! [`write_atomic`] is the one-shot form for small files (settings, the batch log's tail).

use std::fs::{self, File};
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// A file being written in place of `path`; nothing changes at `path` until
/// [`AtomicFile::commit`]. Dropped uncommitted, the temporary file is removed.
#[derive(Debug)]
pub struct AtomicFile {
    path: PathBuf,
    tmp: PathBuf,
    /// `None` once committed.
    file: Option<BufWriter<File>>,
}

impl AtomicFile {
    /// Creates a temporary file beside `path`, named for this process and this writer
    /// (`PATH.tmp.PID.N`): two writers of one path at once (a snapshot arriving while a
    /// compaction runs) each write their own file, and the last rename wins whole.
    pub fn create(path: &Path) -> io::Result<Self> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
        tmp_name.push(format!(
            ".tmp.{}.{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let tmp = path.with_file_name(tmp_name);
        let file = File::create(&tmp)?;
        Ok(Self {
            path: path.to_owned(),
            tmp,
            // Chunks are written whole; a large buffer saves system calls on small ones.
            file: Some(BufWriter::with_capacity(1 << 20, file)),
        })
    }

    /// The path it will replace.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn file(&mut self) -> &mut BufWriter<File> {
        self.file.as_mut().expect("not committed yet")
    }

    /// Overwrites `bytes` at `offset` (a header patched once the end is known); the next
    /// write goes on at the end.
    pub fn write_at(&mut self, offset: u64, bytes: &[u8]) -> io::Result<()> {
        let f = self.file();
        f.flush()?;
        let file = f.get_mut();
        let end = file.stream_position()?;
        file.seek(SeekFrom::Start(offset))?;
        file.write_all(bytes)?;
        file.seek(SeekFrom::Start(end))?;
        Ok(())
    }

    /// Syncs the temporary file, renames it over `path` and syncs the directory.
    pub fn commit(mut self) -> io::Result<()> {
        let file = self.file.take().expect("committed once");
        let file = file.into_inner().map_err(io::IntoInnerError::into_error)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&self.tmp, &self.path)?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file().write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file().flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// Replaces `path` with `bytes` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = AtomicFile::create(path)?;
    file.write_all(bytes)?;
    file.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        write_atomic(&path, b"old").unwrap();
        let mut f = AtomicFile::create(&path).unwrap();
        f.write_all(b"new bytes").unwrap();
        f.write_at(0, b"NEW").unwrap();
        f.write_all(b"!").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"old");
        f.commit().unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"NEW bytes!");
        // Two writers at once do not mix: the last to commit wins, whole.
        let (mut a, mut b) = (
            AtomicFile::create(&path).unwrap(),
            AtomicFile::create(&path).unwrap(),
        );
        a.write_all(b"first").unwrap();
        b.write_all(b"second").unwrap();
        a.commit().unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"first");
        b.commit().unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"second");
        write_atomic(&path, b"NEW bytes!").unwrap();
        // Abandoned: the old file stays and the temporary one goes.
        let mut f = AtomicFile::create(&path).unwrap();
        f.write_all(b"half").unwrap();
        drop(f);
        assert_eq!(fs::read(&path).unwrap(), b"NEW bytes!");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
