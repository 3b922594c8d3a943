//! The file `collection export --output` writes, and the rules that keep it from writing
//! anything it was not asked to:
//!
//! - the target is checked before the export starts: an existing path is refused unless
//!   `--force`, and even then only a regular file is replaced (never a symlink, device, fifo,
//!   socket or directory, which a rename would silently turn into a regular file); the directory
//!   must exist and take a file (the temporary one is created in it at once);
//! - the export goes to a temporary file beside the target, synced, then renamed over it: the
//!   file appears whole or not at all, and a replaced file keeps its permissions (a new file is
//!   its owner's only, 0600, as exports hold business data);
//! - a path that appeared, or stopped being a regular file, while the export ran is not
//!   replaced.
//!
//! Errors name the path: a bad target is a usage error (exit 2), a failure while writing a
//! runtime one (exit 1).

use std::fs::{File, Permissions};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use super::CliError;

/// The prepared target of an export.
pub struct OutputFile {
    path: PathBuf,
    temp: tempfile::NamedTempFile,
    /// A regular file was there when the export started (and `--force` allowed replacing it).
    replaces: bool,
}

impl OutputFile {
    /// Checks `path` and creates the temporary file beside it; nothing is written to `path`.
    pub fn prepare(path: &Path, force: bool) -> Result<Self, CliError> {
        let shown = path.display();
        let existing = match std::fs::symlink_metadata(path) {
            Ok(meta) => Some(meta),
            Err(error) if error.kind() == ErrorKind::NotFound => None,
            Err(error) => return Err(usage(format!("cannot use --output {shown}: {error}"))),
        };
        let permissions = match existing {
            Some(_) if !force => {
                return Err(usage(format!(
                    "--output {shown} already exists; add --force to replace it"
                )))
            }
            Some(meta) if !meta.file_type().is_file() => {
                return Err(usage(format!(
                    "--output {shown} is {}; only a regular file is replaced, even with --force",
                    kind(&meta.file_type())
                )))
            }
            Some(meta) => Some(meta.permissions()),
            None => None,
        };
        let dir = path
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if !std::fs::metadata(dir).is_ok_and(|meta| meta.is_dir()) {
            return Err(usage(format!(
                "--output {shown}: the directory {} does not exist",
                dir.display()
            )));
        }
        let temp = tempfile::Builder::new()
            .prefix(".amc-export-")
            .suffix(".tmp")
            .tempfile_in(dir)
            .map_err(|error| usage(format!("cannot write --output {shown}: {error}")))?;
        if let Some(permissions) = permissions.clone() {
            set_permissions(temp.as_file(), permissions, path)?;
        }
        Ok(Self {
            path: path.to_path_buf(),
            temp,
            replaces: permissions.is_some(),
        })
    }

    /// A handle writing the temporary file.
    pub fn writer(&self) -> Result<File, CliError> {
        self.temp
            .reopen()
            .map_err(|error| self.failure("open", error))
    }

    /// Names the target in a failure of the export that writes it.
    pub fn name_in(&self, error: CliError) -> CliError {
        match error {
            CliError::Runtime(error) => CliError::Runtime(error.context(format!(
                "export to --output {} failed (nothing written there)",
                self.path.display()
            ))),
            usage => usage,
        }
    }

    /// Makes the written export the target's content, whole: synced, then renamed into place.
    pub fn commit(self) -> Result<(), CliError> {
        self.temp
            .as_file()
            .sync_all()
            .map_err(|error| self.failure("sync", error))?;
        let shown = self.path.display().to_string();
        if !self.replaces {
            return match self.temp.persist_noclobber(&self.path) {
                Ok(_) => Ok(()),
                Err(error) if error.error.kind() == ErrorKind::AlreadyExists => Err(usage(
                    format!("--output {shown} appeared while exporting; it was left as it is"),
                )),
                Err(error) => Err(failure(&shown, "rename into place", error.error)),
            };
        }
        let still_regular =
            std::fs::symlink_metadata(&self.path).is_ok_and(|meta| meta.file_type().is_file());
        if !still_regular {
            return Err(usage(format!(
                "--output {shown} stopped being a regular file while exporting; it was left as it is"
            )));
        }
        self.temp
            .persist(&self.path)
            .map(drop)
            .map_err(|error| failure(&shown, "rename into place", error.error))
    }

    fn failure(&self, step: &str, error: std::io::Error) -> CliError {
        failure(&self.path.display().to_string(), step, error)
    }
}

fn set_permissions(file: &File, permissions: Permissions, path: &Path) -> Result<(), CliError> {
    file.set_permissions(permissions)
        .map_err(|error| failure(&path.display().to_string(), "copy the permissions", error))
}

fn usage(message: String) -> CliError {
    CliError::Usage(message)
}

fn failure(path: &str, step: &str, error: std::io::Error) -> CliError {
    CliError::Runtime(anyhow::anyhow!(
        "export to --output {path} failed ({step}): {error}"
    ))
}

/// What a non-regular file is, for the refusal.
fn kind(file_type: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if file_type.is_symlink() {
        "a symbolic link"
    } else if file_type.is_dir() {
        "a directory"
    } else if file_type.is_block_device() || file_type.is_char_device() {
        "a device"
    } else if file_type.is_fifo() {
        "a fifo"
    } else if file_type.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}
