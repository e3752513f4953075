//! `dir:PATH`: files under a directory, the key being a relative path.

use std::ffi::OsStr;
use std::io::{ErrorKind, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

use super::{LoadContext, Loaded, Origin, OriginError};

/// Serves files under a root directory. Keys that could name anything outside the
/// root (absolute paths, `..`, NUL bytes, symlinks leading out) are refused.
#[derive(Debug)]
pub struct DirOrigin {
    root: PathBuf,
}

impl DirOrigin {
    /// An origin serving files under `root`.
    pub fn new(root: PathBuf) -> Self {
        DirOrigin { root }
    }

    /// The path a key names, if it is a safe relative path.
    fn resolve(&self, key: &[u8]) -> Result<PathBuf, OriginError> {
        if key.contains(&0) {
            return Err(OriginError::InvalidKey("key contains a NUL byte".into()));
        }
        let rel = Path::new(OsStr::from_bytes(key));
        let mut clean = PathBuf::new();
        for c in rel.components() {
            match c {
                Component::Normal(part) => clean.push(part),
                Component::CurDir => {}
                Component::ParentDir => {
                    return Err(OriginError::InvalidKey("key contains `..`".into()))
                }
                Component::RootDir | Component::Prefix(_) => {
                    return Err(OriginError::InvalidKey("key is an absolute path".into()))
                }
            }
        }
        if clean.as_os_str().is_empty() {
            return Err(OriginError::InvalidKey("key names no file".into()));
        }
        Ok(self.root.join(clean))
    }
}

impl Origin for DirOrigin {
    fn load(&self, key: &[u8], ctx: &LoadContext) -> Result<Option<Loaded>, OriginError> {
        let path = self.resolve(key)?;
        let canon = match path.canonicalize() {
            Ok(p) => p,
            Err(e) if e.kind() == ErrorKind::NotFound || e.kind() == ErrorKind::NotADirectory => {
                return Ok(None)
            }
            Err(e) => return Err(OriginError::Failed(format!("{}: {e}", path.display()))),
        };
        let root = self.root.canonicalize().map_err(|e| {
            OriginError::Failed(format!("origin directory {}: {e}", self.root.display()))
        })?;
        if !canon.starts_with(&root) {
            return Err(OriginError::InvalidKey(
                "key leads outside the origin directory".into(),
            ));
        }
        // Look before opening: a FIFO, device or socket is refused without an open(),
        // which could block (a FIFO without a writer) or have side effects (a device).
        let kind = match std::fs::symlink_metadata(&canon) {
            Ok(m) => m.file_type(),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(OriginError::Failed(format!("{}: {e}", canon.display()))),
        };
        if kind.is_dir() {
            return Ok(None);
        }
        if !kind.is_file() {
            return Err(not_regular(&kind));
        }
        // The file can be replaced between that look and the open, so the open itself
        // must not block or follow a link either: O_NONBLOCK makes opening a FIFO
        // return at once, O_NOFOLLOW refuses a symlink swapped in, O_NOCTTY keeps a
        // terminal from becoming ours; fstat below then decides on what was opened.
        let file = match std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_NOCTTY)
            .open(&canon)
        {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(OriginError::Failed(format!("{}: {e}", canon.display()))),
        };
        let meta = file
            .metadata()
            .map_err(|e| OriginError::Failed(format!("{}: {e}", canon.display())))?;
        if meta.is_dir() {
            return Ok(None);
        }
        if !meta.is_file() {
            return Err(not_regular(&meta.file_type()));
        }
        if meta.len() > ctx.max_size as u64 {
            return Err(OriginError::TooLarge {
                size: meta.len(),
                max: ctx.max_size,
            });
        }
        // O_NONBLOCK has no effect on reads of a regular file.
        let mut value = Vec::with_capacity(meta.len() as usize);
        file.take(ctx.max_size as u64 + 1)
            .read_to_end(&mut value)
            .map_err(|e| OriginError::Failed(format!("{}: {e}", canon.display())))?;
        if value.len() > ctx.max_size {
            // The file grew while it was read.
            return Err(OriginError::TooLarge {
                size: value.len() as u64,
                max: ctx.max_size,
            });
        }
        Ok(Some(Loaded::new(value)))
    }
}

/// The error for a key that names something other than a regular file or directory:
/// BAD_REQUEST (logged like every origin error), never an open() that could block.
fn not_regular(kind: &std::fs::FileType) -> OriginError {
    let what = if kind.is_fifo() {
        "a FIFO (named pipe)"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_symlink() {
        "a symbolic link"
    } else {
        "not a regular file"
    };
    OriginError::InvalidKey(format!(
        "key names {what} in the origin directory; only regular files are served"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ctx() -> LoadContext {
        LoadContext {
            max_size: 1 << 20,
            timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn serves_files_and_refuses_escapes() {
        let base = std::env::temp_dir().join(format!("gc-dir-origin-{}", std::process::id()));
        let root = base.join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/a.txt"), b"hello").unwrap();
        std::fs::write(base.join("secret"), b"no").unwrap();
        std::os::unix::fs::symlink(base.join("secret"), root.join("link")).unwrap();
        let o = DirOrigin::new(root.clone());

        assert_eq!(
            o.load(b"sub/a.txt", &ctx()).unwrap().unwrap().value,
            b"hello"
        );
        assert_eq!(
            o.load(b"./sub/a.txt", &ctx()).unwrap().unwrap().value,
            b"hello"
        );
        assert_eq!(o.load(b"missing", &ctx()), Ok(None));
        assert_eq!(o.load(b"sub", &ctx()), Ok(None));
        for bad in [
            &b"../secret"[..],
            b"sub/../../secret",
            b"/etc/passwd",
            b"a\0b",
            b"link",
            b".",
        ] {
            assert!(
                matches!(o.load(bad, &ctx()), Err(OriginError::InvalidKey(_))),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let small = LoadContext {
            max_size: 3,
            ..ctx()
        };
        assert!(matches!(
            o.load(b"sub/a.txt", &small),
            Err(OriginError::TooLarge { size: 5, max: 3 })
        ));
        let _ = std::fs::remove_dir_all(base);
    }

    #[test]
    fn fifos_are_refused_without_blocking() {
        let root = std::env::temp_dir().join(format!("gc-dir-fifo-{}", std::process::id()));
        std::fs::create_dir_all(&root).unwrap();
        let fifo = root.join("pipe");
        let c = std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path; mkfifo does not keep the pointer.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let o = DirOrigin::new(root.clone());
        // Without a writer, a blocking open() of the FIFO would never return.
        match o.load(b"pipe", &ctx()) {
            Err(OriginError::InvalidKey(m)) => assert!(m.contains("FIFO"), "{m}"),
            other => panic!("{other:?}"),
        }
        let _ = std::fs::remove_dir_all(root);
    }
}
