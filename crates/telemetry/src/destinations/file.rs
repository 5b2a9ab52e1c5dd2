//! The `file` destination: one OTLP/JSON export per line, appended.
//!
//! The offline default and a debugging aid: `tail -f` shows every trace, and each line
//! decodes on its own with any OTLP/JSON reader.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::fields::{self, FieldError, FieldSpec, Flag, Secret};
use super::{
    BuildContext, BuildError, Built, ConnectionProbe, DestinationKind, DestinationType,
    EncodedBatch, Encoding, ExportError, Sink, Transport, TypeInfo,
};
use crate::error::TelemetryError;

/// The `file` type's own fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// The JSON-lines file to append to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
}

impl FileConfig {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: Some(path.into()),
        }
    }
}

pub static INFO: TypeInfo = TypeInfo {
    name: "file",
    fields: &[FieldSpec {
        name: "path",
        help: "the JSON-lines file.",
        secret: Secret::No,
        needs_retest: true,
        flag: Flag::Value("path"),
    }],
    parse,
};

fn parse(rest: Map<String, Value>) -> Result<DestinationKind, FieldError> {
    fields::parse::<FileConfig>(rest).map(DestinationKind::File)
}

impl From<FileConfig> for DestinationKind {
    fn from(c: FileConfig) -> Self {
        DestinationKind::File(c)
    }
}

impl DestinationType for FileConfig {
    fn info(&self) -> &'static TypeInfo {
        &INFO
    }

    fn to_flat(&self) -> Result<Map<String, Value>, serde_json::Error> {
        fields::to_flat(self)
    }

    fn validate(&self) -> Result<(), FieldError> {
        match &self.path {
            Some(p) if !p.as_os_str().is_empty() => Ok(()),
            _ => Err(FieldError::new("path", "required for a file destination")),
        }
    }

    fn local_file(&self) -> Option<(&'static str, &Path)> {
        Some(("path", self.path.as_deref().unwrap_or(Path::new(""))))
    }

    fn relative_to(&self, base: &Path) -> Option<DestinationKind> {
        let path = self.path.as_ref()?;
        Some(DestinationKind::File(Self::new(base.join(path))))
    }

    /// Opening the file is the whole check: it is judged exactly as start-up judges it,
    /// and the connection test writes nothing.
    fn build(&self, _: &BuildContext<'_>) -> Result<Built, BuildError> {
        self.validate().map_err(BuildError::Field)?;
        let path = self.path.as_deref().unwrap_or(Path::new(""));
        let sink = FileSink::open(path).map_err(|e| match e {
            TelemetryError::Io { path, source } => BuildError::Io { path, source },
            other => BuildError::Field(FieldError::new("path", other.to_string())),
        })?;
        Ok(Built {
            sink: Transport::File(sink),
            probe: ConnectionProbe::Opened {
                message: format!("{} can be appended to", path.display()),
            },
        })
    }

    fn secrets(&self) -> Vec<String> {
        Vec::new()
    }
}

pub struct FileSink {
    path: PathBuf,
    /// `None` after a write error, so the next try reopens (the file may have been rotated).
    /// Locked only on the blocking pool, one export at a time, so lines never interleave.
    file: Arc<Mutex<Option<std::fs::File>>>,
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
            file: Arc::new(Mutex::new(Some(file))),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn open_append(path: &Path) -> std::io::Result<std::fs::File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

/// Whether the open file is still the one at `path`. Log rotation renames or deletes the file
/// and writes to the old one raise no error, so without this check the traces would go on
/// into the rotated file, or into a deleted one, for good.
#[cfg(unix)]
fn still_at(file: &std::fs::File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(open), Ok(named)) => open.dev() == named.dev() && open.ino() == named.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn still_at(_file: &std::fs::File, path: &Path) -> bool {
    path.exists()
}

/// Appends `body` and a newline to the file at `path`: reopened first if the last write
/// failed or the file was moved or deleted since (one `stat` per batch). `paced` is the
/// hand-off's writer, which offers the core between slices of a large line.
fn append_line(
    slot: &Mutex<Option<std::fs::File>>,
    path: &Path,
    body: &[u8],
    paced: &crate::deliver::background::Paced,
) -> std::io::Result<()> {
    // A panic elsewhere cannot leave the `Option` half-changed; the lock is still usable.
    let mut slot = slot.lock().unwrap_or_else(PoisonError::into_inner);
    if slot.as_ref().is_some_and(|f| !still_at(f, path)) {
        *slot = None;
    }
    let file = match slot.as_mut() {
        Some(f) => f,
        None => slot.insert(open_append(path)?),
    };
    let written = paced
        .write_all(file, body)
        .and_then(|()| file.write_all(b"\n"));
    if written.is_err() {
        *slot = None;
    }
    written
}

impl Sink for FileSink {
    fn encoding(&self) -> Encoding {
        Encoding::Json
    }

    async fn export(&self, batch: &EncodedBatch) -> Result<(), ExportError> {
        let slot = self.file.clone();
        let path = self.path.clone();
        let body = batch.body.clone();
        crate::deliver::background::blocking_io(move |paced| {
            append_line(&slot, &path, &body, paced)
        })
        .await
        .map_err(std::io::Error::other)
        .and_then(|written| written)
        .map_err(|e| ExportError::retryable(format!("{}: {e}", self.path.display())))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const WRITE_SLICE: usize = crate::deliver::background::Paced::WRITE_SLICE;

    #[tokio::test]
    async fn appends_lines_and_creates_directories() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/traces.jsonl");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "{\"old\":1}\n").unwrap();
        let sink = FileSink::open(&path).unwrap();
        for body in ["{\"n\":1}", "{\"n\":2}"] {
            let batch = EncodedBatch {
                body: body.as_bytes().to_vec().into(),
                spans: 1,
                wire: None,
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

    #[tokio::test]
    async fn a_line_longer_than_a_write_slice_lands_whole_and_a_lost_file_is_reopened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        let sink = FileSink::open(&path).unwrap();
        // Not a multiple of the slice, so the last piece is a short one.
        let body: Vec<u8> = (0..WRITE_SLICE * 3 + 17)
            .map(|i| b'a' + (i % 26) as u8)
            .collect();
        let batch = EncodedBatch {
            body: body.clone().into(),
            spans: 1,
            wire: None,
        };
        sink.export(&batch).await.unwrap();
        let mut want = body.clone();
        want.push(b'\n');
        assert_eq!(std::fs::read(&path).unwrap(), want);

        // A failed write drops the handle; the next export opens the path again.
        *sink.file.lock().unwrap() = None;
        std::fs::remove_file(&path).unwrap();
        sink.export(&batch).await.unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), want);
    }

    fn line(text: &str) -> EncodedBatch {
        EncodedBatch {
            body: text.as_bytes().to_vec().into(),
            spans: 1,
            wire: None,
        }
    }

    #[tokio::test]
    async fn a_rotated_or_deleted_file_is_reopened_at_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        let rotated = dir.path().join("t.jsonl.1");
        let sink = FileSink::open(&path).unwrap();
        sink.export(&line("{\"n\":1}")).await.unwrap();

        // logrotate without copytruncate: the file is renamed, and the next batch starts a
        // new one at the configured path.
        std::fs::rename(&path, &rotated).unwrap();
        sink.export(&line("{\"n\":2}")).await.unwrap();
        assert_eq!(std::fs::read_to_string(&rotated).unwrap(), "{\"n\":1}\n");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"n\":2}\n");

        // Deleted outright: recreated.
        std::fs::remove_file(&path).unwrap();
        sink.export(&line("{\"n\":3}")).await.unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"n\":3}\n");

        // Untouched: the same handle keeps appending.
        sink.export(&line("{\"n\":4}")).await.unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"n\":3}\n{\"n\":4}\n"
        );
        assert_eq!(std::fs::read_to_string(&rotated).unwrap(), "{\"n\":1}\n");
    }

    #[test]
    fn is_registered_with_its_fields() {
        crate::destinations::assert_registered(FileConfig::new("p").into());
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
