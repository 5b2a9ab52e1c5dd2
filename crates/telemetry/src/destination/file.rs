//! The `file` destination: one OTLP/JSON export per line, appended.
//!
//! The offline default and a debugging aid: `tail -f` shows every trace, and each line
//! decodes on its own with any OTLP/JSON reader.

use std::path::{Path, PathBuf};

use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

use super::{EncodedBatch, Encoding, ExportError, Sink};
use crate::error::TelemetryError;

pub struct FileSink {
    path: PathBuf,
    /// `None` after a write error, so the next try reopens (the file may have been rotated).
    file: Mutex<Option<tokio::fs::File>>,
}

impl FileSink {
    /// Opens at start-up so a path that cannot work fails the configuration, not the traffic.
    pub fn open(path: &Path) -> Result<Self, TelemetryError> {
        let file = open_append(path).map_err(|source| TelemetryError::Io {
            path: path.to_owned(),
            source,
        })?;
        Ok(Self {
            path: path.to_owned(),
            file: Mutex::new(Some(tokio::fs::File::from_std(file))),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Also how the connection test checks a path, so it judges it exactly as start-up does.
pub(crate) fn open_append(path: &Path) -> std::io::Result<std::fs::File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

impl Sink for FileSink {
    fn encoding(&self) -> Encoding {
        Encoding::Json
    }

    async fn export(&self, batch: &EncodedBatch) -> Result<(), ExportError> {
        let mut slot = self.file.lock().await;
        let file = match slot.as_mut() {
            Some(f) => f,
            None => {
                let path = self.path.clone();
                let reopened = tokio::task::spawn_blocking(move || open_append(&path))
                    .await
                    .map_err(|e| ExportError::retryable(format!("reopening: {e}")))?
                    .map_err(|e| ExportError::retryable(format!("{}: {e}", self.path.display())))?;
                slot.insert(tokio::fs::File::from_std(reopened))
            }
        };
        let mut line = Vec::with_capacity(batch.body.len() + 1);
        line.extend_from_slice(&batch.body);
        line.push(b'\n');
        let written = async {
            file.write_all(&line).await?;
            // tokio's File completes writes in the background; flush makes the line visible.
            file.flush().await
        }
        .await;
        if let Err(e) = written {
            *slot = None;
            return Err(ExportError::retryable(format!(
                "{}: {e}",
                self.path.display()
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn appends_lines_and_creates_directories() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/traces.jsonl");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "{\"old\":1}\n").unwrap();
        let sink = FileSink::open(&path).unwrap();
        for body in ["{\"n\":1}", "{\"n\":2}"] {
            let batch = EncodedBatch {
                body: body.as_bytes().to_vec(),
                spans: 1,
            };
            sink.export(&batch).await.unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text, "{\"old\":1}\n{\"n\":1}\n{\"n\":2}\n",
            "append, never truncate"
        );

        let fresh = dir.path().join("new/dir/t.jsonl");
        FileSink::open(&fresh).unwrap();
        assert!(fresh.exists());
    }

    #[test]
    fn an_impossible_path_fails_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, "").unwrap();
        let err = FileSink::open(&blocker.join("under-a-file.jsonl"))
            .err()
            .unwrap();
        assert!(err.to_string().contains("under-a-file"));
    }
}
