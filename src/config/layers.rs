//! Layering: the defaults, then the `--config` file, then the flags and
//! `GROUPCACHED_*` environment (clap gives a flag precedence over its variable), each
//! layer an [`Args`] applied over the one below, then validation.
//!
//! Each layer is applied on its own, so an error names the setting as that layer
//! spells it (`hot_ttl` in the file, `--hot-ttl` for a flag or its variable), and a
//! layer that gives a member source replaces the one below rather than conflicting
//! with it.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

#[cfg(feature = "cli")]
use clap::Parser;

use super::settings::{Args, GroupSettings};
use super::{Config, GroupConfig, DEFAULT_GROUP};
use crate::error::ConfigError;
use crate::membership::PeerSource;
use crate::peer::auth::ClusterSecret;

/// Which layer a value came from, so an error can name the setting as the operator
/// wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layer {
    /// The `--config` file: settings are its keys (`hot_ttl`).
    File,
    /// Flags and their `GROUPCACHED_*` variables: settings are flags (`--hot-ttl`).
    Flags,
}

impl Layer {
    /// The setting whose file key is `key`, as this layer spells it.
    pub(crate) fn name(self, key: &str) -> String {
        match self {
            Layer::File => key.to_string(),
            Layer::Flags => format!("--{}", key.replace('_', "-")),
        }
    }
}

/// Why the `--config` file could not be loaded.
#[derive(Debug)]
pub(crate) enum FileError {
    /// The file could not be read.
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The file is not TOML, or has a key or value the configuration does not take.
    Invalid {
        /// The file.
        path: PathBuf,
        /// The line of the error (1-based) and its text, when the parser knows it.
        line: Option<(usize, String)>,
        /// What is wrong.
        message: String,
    },
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileError::Unreadable { path, source } => {
                write!(f, "cannot read {}: {source}", path.display())
            }
            FileError::Invalid {
                path,
                line: Some((n, text)),
                message,
            } => write!(f, "{} line {n} (`{text}`): {message}", path.display()),
            FileError::Invalid {
                path,
                line: None,
                message,
            } => write!(f, "{}: {message}", path.display()),
        }
    }
}

impl std::error::Error for FileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FileError::Unreadable { source, .. } => Some(source),
            FileError::Invalid { .. } => None,
        }
    }
}

/// Reads the `--config` file as a layer.
pub(crate) fn read_file(path: &Path) -> Result<Args, FileError> {
    let text = std::fs::read_to_string(path).map_err(|source| FileError::Unreadable {
        path: path.to_path_buf(),
        source,
    })?;
    read_file_text(path, &text)
}

/// Reads the text of the file at `path` as a layer.
pub(crate) fn read_file_text(path: &Path, text: &str) -> Result<Args, FileError> {
    toml::from_str::<Args>(text).map_err(|e| {
        let line = e.span().map(|span| {
            let start = span.start.min(text.len());
            let n = text[..start].matches('\n').count() + 1;
            (n, text.lines().nth(n - 1).unwrap_or("").trim().to_string())
        });
        FileError::Invalid {
            path: path.to_path_buf(),
            line,
            message: e.message().to_string(),
        }
    })
}

impl Config {
    /// Builds the configuration from command-line arguments (the first is the program
    /// name), the environment and the file they name. `--help`/`--version` and usage
    /// errors come back as clap errors for the caller to print. (Feature `cli`.)
    #[cfg(feature = "cli")]
    pub fn from_args<I, T>(args: I) -> Result<Result<Config, ConfigError>, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let args = Args::try_parse_from(args)?;
        Ok(Config::from_parsed(&args))
    }

    /// Applies parsed flags (and the file they name) over the defaults, then validates.
    pub fn from_parsed(args: &Args) -> Result<Config, ConfigError> {
        let file = match &args.config {
            Some(path) => read_file(path).map_err(|e| ConfigError::new("--config", e))?,
            None => Args::default(),
        };
        let mut cfg = Config::new();
        cfg.apply_layer(&file, Layer::File)?;
        cfg.apply_file_groups(&file.group)?;
        cfg.apply_layer(args, Layer::Flags)?;
        if file.max_item_size.is_none() && args.max_item_size.is_none() {
            // The default follows a smaller --max-frame instead of contradicting it.
            cfg.max_item_size = cfg.max_item_size.min(cfg.max_frame.saturating_sub(64));
        }
        cfg.apply_quick_group(&args.quick_group, !file.group.is_empty())?;
        cfg.apply_secret(args, &file)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Applies one layer's server-wide settings.
    fn apply_layer(&mut self, layer: &Args, which: Layer) -> Result<(), ConfigError> {
        layer.apply_scalars(self, which)?;
        self.apply_members(layer, which)
    }

    /// Applies one layer's member source: at most one of `peers`, `peers_file` and
    /// `peers_dns`, replacing whatever a lower layer gave.
    fn apply_members(&mut self, layer: &Args, which: Layer) -> Result<(), ConfigError> {
        let given = [
            layer.peers.is_some(),
            layer.peers_file.is_some(),
            layer.peers_dns.is_some(),
        ];
        if given.iter().filter(|g| **g).count() > 1 {
            return Err(ConfigError::new(
                which.name("peers"),
                "give only one of peers, peers-file and peers-dns",
            ));
        }
        if let Some(list) = &layer.peers {
            let members: Vec<String> = list
                .iter()
                .map(|m| m.trim().to_string())
                .filter(|m| !m.is_empty())
                .collect();
            for m in &members {
                super::check_member(m).map_err(|e| ConfigError::new(which.name("peers"), e))?;
            }
            self.peers = PeerSource::Static(members);
        }
        if let Some(path) = &layer.peers_file {
            self.peers = PeerSource::File(path.clone());
        }
        if let Some(dns) = &layer.peers_dns {
            let (host, port) = dns
                .rsplit_once(':')
                .and_then(|(h, p)| Some((h.to_string(), p.parse::<u16>().ok()?)))
                .filter(|(h, _)| !h.is_empty())
                .ok_or_else(|| {
                    ConfigError::new(which.name("peers_dns"), format!("`{dns}` is not NAME:PORT"))
                })?;
            self.peers = PeerSource::Dns { host, port };
        }
        Ok(())
    }

    /// The file's `[[group]]` tables, when it has any, replace the default group.
    fn apply_file_groups(&mut self, groups: &[GroupSettings]) -> Result<(), ConfigError> {
        if groups.is_empty() {
            return Ok(());
        }
        self.groups.clear();
        for g in groups {
            let name = g.name.clone().unwrap_or_default();
            let mut gc = GroupConfig::new(&name);
            let setting = |field: &str| format!("group `{name}` {field}");
            g.apply(&mut gc, setting)?;
            self.groups.push(gc);
        }
        Ok(())
    }

    /// The quick-start flags adjust the group `--group` names (default `default`):
    /// the file's group of that name, a new one, or (with no file groups) the single
    /// default group, renamed.
    fn apply_quick_group(
        &mut self,
        flags: &GroupSettings,
        file_has_groups: bool,
    ) -> Result<(), ConfigError> {
        if *flags == GroupSettings::default() {
            return Ok(()); // No quick-start flag given.
        }
        let name = flags
            .name
            .clone()
            .unwrap_or_else(|| DEFAULT_GROUP.to_string());
        let idx = match self.groups.iter().position(|g| g.name == name) {
            Some(i) => i,
            None if !file_has_groups && self.groups.len() == 1 => {
                // Renaming the quick-start group rather than adding a second one.
                self.groups[0].name = name;
                0
            }
            None => {
                self.groups.push(GroupConfig::new(name));
                self.groups.len() - 1
            }
        };
        flags.apply(&mut self.groups[idx], |key| Layer::Flags.name(key))
    }

    /// The cluster secret: the flag's file over the file's. It is read now, so a
    /// missing or empty one stops the start with an error naming the setting; an
    /// empty path (e.g. `GROUPCACHED_CLUSTER_SECRET_FILE=""`) means none.
    fn apply_secret(&mut self, flags: &Args, file: &Args) -> Result<(), ConfigError> {
        let given = match (&flags.cluster_secret_file, &file.cluster_secret_file) {
            (Some(p), _) => Some((Layer::Flags, p)),
            (None, Some(p)) => Some((Layer::File, p)),
            (None, None) => None,
        };
        if let Some((layer, path)) = given {
            if !path.as_os_str().is_empty() {
                let secret = ClusterSecret::from_file(path)
                    .map_err(|e| ConfigError::new(layer.name("cluster_secret_file"), e))?;
                self.cluster_secret = Some(secret);
            }
        }
        Ok(())
    }
}
