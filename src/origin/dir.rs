//! `dir:PATH`: files under a directory, the key being a relative path.

use std::ffi::OsStr;
use std::io::{ErrorKind, Read};
use std::os::unix::ffi::OsStrExt;
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
        let file = match std::fs::File::open(&canon) {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(OriginError::Failed(format!("{}: {e}", canon.display()))),
        };
        let meta = file
            .metadata()
            .map_err(|e| OriginError::Failed(format!("{}: {e}", canon.display())))?;
        if !meta.is_file() {
            return Ok(None);
        }
        if meta.len() > ctx.max_size as u64 {
            return Err(OriginError::TooLarge {
                size: meta.len(),
                max: ctx.max_size,
            });
        }
        let mut value = Vec::with_capacity(meta.len() as usize);
        file.take(ctx.max_size as u64 + 1)
            .read_to_end(&mut value)
            .map_err(|e| OriginError::Failed(format!("{}: {e}", canon.display())))?;
        Ok(Some(Loaded::new(value)))
    }
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
}
