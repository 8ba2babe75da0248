//! Reading feature files: Parquet decoded straight into the Arrow batches the engine takes.
//!
//! Columns with few distinct strings are decoded as dictionaries, so that the engine resolves
//! each distinct string once per batch instead of once per row. Decoding runs one batch ahead
//! on its own thread, so that it overlaps the engine's counting.

use std::fs::File;
use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use arrow_array::RecordBatch;
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::arrow_reader::{
    ArrowReaderOptions, ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder,
};
use parquet::arrow::ProjectionMask;
use parquet::file::metadata::ParquetMetaData;

/// A file that could not be opened or decoded. Messages come from the file's structure (paths,
/// offsets, codecs), never from its values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadError(pub String);

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ReadError {}

fn err(e: impl std::fmt::Display) -> ReadError {
    ReadError(e.to_string())
}

/// Batches decoded ahead: enough to keep the engine busy, few enough to keep memory flat.
const AHEAD: usize = 2;

/// `t` with its strings (or a list's strings) as dictionaries; None when it has none to change.
fn as_dictionary(t: &DataType) -> Option<DataType> {
    match t {
        DataType::Utf8 => Some(DataType::Dictionary(
            Box::new(DataType::Int32),
            Box::new(DataType::Utf8),
        )),
        DataType::List(f) => as_dictionary(f.data_type())
            .map(|inner| DataType::List(Arc::new(Field::new(f.name(), inner, f.is_nullable())))),
        _ => None,
    }
}

/// A feature file's metadata, read once: its rows, row groups and Arrow schema.
pub struct FeatureFile {
    file: File,
    metadata: Arc<ParquetMetaData>,
    schema: SchemaRef,
}

impl FeatureFile {
    pub fn open(path: &Path) -> Result<FeatureFile, ReadError> {
        let file = File::open(path).map_err(err)?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(file.try_clone().map_err(err)?)
            .map_err(err)?;
        Ok(FeatureFile {
            metadata: builder.metadata().clone(),
            schema: builder.schema().clone(),
            file,
        })
    }

    pub fn num_rows(&self) -> u64 {
        self.metadata.file_metadata().num_rows().max(0) as u64
    }

    /// Rows in each row group.
    pub fn row_groups(&self) -> Vec<u64> {
        self.metadata
            .row_groups()
            .iter()
            .map(|g| g.num_rows().max(0) as u64)
            .collect()
    }

    /// The file's columns among `columns` (in the file's order), as they will be decoded: the
    /// string columns named in `dictionary`, and their lists, as dictionaries.
    pub fn schema(&self, columns: &[String], dictionary: &[String]) -> SchemaRef {
        let fields: Vec<Field> = self
            .schema
            .fields()
            .iter()
            .filter(|f| columns.contains(f.name()))
            .map(|f| {
                let t = dictionary
                    .contains(f.name())
                    .then(|| as_dictionary(f.data_type()))
                    .flatten();
                match t {
                    Some(t) => f.as_ref().clone().with_data_type(t),
                    None => f.as_ref().clone(),
                }
            })
            .collect();
        Arc::new(Schema::new(fields))
    }

    /// Starts decoding `columns` (those the file has) of the given row groups (all if None), in
    /// batches of `batch_size` rows, on a thread of its own.
    pub fn batches(
        self,
        columns: &[String],
        dictionary: &[String],
        batch_size: usize,
        row_groups: Option<Vec<usize>>,
    ) -> Result<Batches, ReadError> {
        let n_groups = self.metadata.num_row_groups();
        if let Some(g) = row_groups
            .as_ref()
            .and_then(|g| g.iter().find(|&&g| g >= n_groups))
        {
            return Err(ReadError(format!(
                "row group {g} out of range (the file has {n_groups})"
            )));
        }
        let sizes = self.row_groups();
        // The hint keeps every field of the file (the reader matches it field by field); only
        // the projection below decides what is decoded.
        let all: Vec<String> = self
            .schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let hint = self.schema(&all, dictionary);
        let schema = self.schema(columns, dictionary);
        let options = ArrowReaderOptions::new().with_schema(hint);
        let builder = ParquetRecordBatchReaderBuilder::try_new_with_options(self.file, options)
            .map_err(err)?;
        let roots: Vec<usize> = builder
            .schema()
            .fields()
            .iter()
            .enumerate()
            .filter(|(_, f)| columns.contains(f.name()))
            .map(|(i, _)| i)
            .collect();
        let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
        let mut builder = builder
            .with_projection(mask)
            .with_batch_size(batch_size.max(1));
        let expected = match &row_groups {
            Some(groups) => groups.iter().map(|&g| sizes[g]).sum(),
            None => sizes.iter().sum(),
        };
        if let Some(groups) = row_groups {
            builder = builder.with_row_groups(groups);
        }
        let reader = builder.build().map_err(err)?;
        Ok(Batches {
            pending: Some(Mutex::new(reader)),
            rx: None,
            thread: None,
            schema,
            expected,
            seen: 0,
            finished: false,
        })
    }
}

/// Decoded batches, in file order. Decoding starts at the first `next` (a reader opened only
/// for its schema decodes nothing). After an error it ends. A decoder that stops early (a
/// panic on a malformed file) or yields fewer rows than the footer promises is an error, never
/// a silent end: every row is read or reported.
// The reader and the receiver are behind locks only so that the handle can be shared (a
// Python object must be); one consumer takes them.
pub struct Batches {
    pending: Option<Mutex<ParquetRecordBatchReader>>,
    rx: Option<Mutex<Receiver<Result<RecordBatch, ReadError>>>>,
    thread: Option<JoinHandle<()>>,
    schema: SchemaRef,
    expected: u64,
    seen: u64,
    finished: bool,
}

impl Batches {
    /// The schema of every batch (also when there is none).
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Rows these batches hold, by the file's footer.
    pub fn num_rows(&self) -> u64 {
        self.expected
    }

    fn start(&mut self, reader: ParquetRecordBatchReader) -> Result<(), ReadError> {
        let (tx, rx) = sync_channel(AHEAD);
        let thread = std::thread::Builder::new()
            .name("valuescope-read".into())
            .spawn(move || {
                for batch in reader {
                    // a send fails once the consumer has gone: stop decoding
                    if tx.send(batch.map_err(err)).is_err() {
                        return;
                    }
                }
            })
            .map_err(err)?;
        self.rx = Some(Mutex::new(rx));
        self.thread = Some(thread);
        Ok(())
    }
}

impl Iterator for Batches {
    type Item = Result<RecordBatch, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.finished {
            return None;
        }
        if let Some(reader) = self.pending.take() {
            let reader = reader.into_inner().unwrap_or_else(|p| p.into_inner());
            if let Err(e) = self.start(reader) {
                self.finished = true;
                return Some(Err(e));
            }
        }
        let rx = self
            .rx
            .as_mut()?
            .get_mut()
            .unwrap_or_else(|p| p.into_inner());
        match rx.recv() {
            Ok(Ok(batch)) => {
                self.seen += batch.num_rows() as u64;
                Some(Ok(batch))
            }
            Ok(Err(e)) => {
                self.finished = true;
                Some(Err(e))
            }
            // the decoder has gone: at the end of the data, or after a panic
            Err(_) => {
                self.finished = true;
                let panicked = self.thread.take().is_some_and(|t| t.join().is_err());
                if panicked {
                    Some(Err(ReadError(
                        "the Parquet decoder failed on this file".into(),
                    )))
                } else if self.seen != self.expected {
                    Some(Err(ReadError(format!(
                        "decoded {} rows where the footer promises {}",
                        self.seen, self.expected
                    ))))
                } else {
                    None
                }
            }
        }
    }
}

impl Drop for Batches {
    fn drop(&mut self) {
        drop(self.rx.take()); // the decoder stops at its next send
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::builder::{ListBuilder, StringBuilder};
    use arrow_array::{Array, ArrayRef, Int64Array, StringArray};
    use parquet::arrow::ArrowWriter;
    use parquet::file::properties::WriterProperties;

    fn write(path: &Path, rows: usize, group: usize) {
        let ids: ArrayRef = Arc::new(StringArray::from_iter_values(
            (0..rows).map(|i| format!("c{i}")),
        ));
        let n: ArrayRef = Arc::new(Int64Array::from_iter_values(0..rows as i64));
        let mut values = ListBuilder::new(StringBuilder::new());
        for i in 0..rows {
            values.values().append_value(format!("v{}", i % 3));
            values.append(i % 5 != 0);
        }
        let values: ArrayRef = Arc::new(values.finish());
        let batch =
            RecordBatch::try_from_iter([("conversation_id", ids), ("n", n), ("ai_values", values)])
                .unwrap();
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(group))
            .build();
        let mut w =
            ArrowWriter::try_new(File::create(path).unwrap(), batch.schema(), Some(props)).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
    }

    /// A directory of its own per test, removed when the test ends.
    struct Scratch(std::path::PathBuf);

    impl Scratch {
        fn new(name: &str) -> Scratch {
            let dir = std::env::temp_dir().join(format!("vs-read-{name}-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            Scratch(dir)
        }

        /// A feature-like file of `rows` rows in row groups of `group`.
        fn file(&self, rows: usize, group: usize) -> std::path::PathBuf {
            let path = self.0.join("f.parquet");
            write(&path, rows, group);
            path
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn reads_the_wanted_columns_with_lists_as_dictionaries() {
        let dir = Scratch::new("cols");
        let f = FeatureFile::open(&dir.file(1000, 300)).unwrap();
        assert_eq!(f.num_rows(), 1000);
        assert_eq!(f.row_groups(), vec![300, 300, 300, 100]);
        let cols = names(&["ai_values", "conversation_id", "absent"]);
        let dict = names(&["ai_values"]);
        let batches: Vec<RecordBatch> = f
            .batches(&cols, &dict, 128, Some(vec![1, 3]))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        assert_eq!(rows, 400);
        let schema = batches[0].schema();
        let got: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(got, ["conversation_id", "ai_values"]);
        assert!(matches!(
            schema.field(1).data_type(),
            DataType::List(f) if matches!(f.data_type(), DataType::Dictionary(..))
        ));
        let first = batches[0].column(0).as_any().downcast_ref::<StringArray>();
        assert_eq!(first.unwrap().value(0), "c300");
    }

    #[test]
    fn fewer_rows_than_the_footer_promises_is_an_error() {
        let dir = Scratch::new("short");
        let mut batches = FeatureFile::open(&dir.file(50, 20))
            .unwrap()
            .batches(&names(&["n"]), &[], 16, None)
            .unwrap();
        batches.expected += 1; // as if the decoder had stopped one row short
        let items: Vec<_> = batches.collect();
        let rows: usize = items.iter().flatten().map(RecordBatch::num_rows).sum();
        assert_eq!(rows, 50);
        let last = items.last().unwrap().as_ref().unwrap_err();
        assert_eq!(last.0, "decoded 50 rows where the footer promises 51");
    }

    #[test]
    fn a_bad_file_or_row_group_is_an_error() {
        let dir = Scratch::new("bad");
        let text = dir.0.join("t.parquet");
        std::fs::write(&text, "not parquet").unwrap();
        assert!(FeatureFile::open(&text).is_err());
        let f = FeatureFile::open(&dir.file(10, 10)).unwrap();
        assert!(f.batches(&names(&["n"]), &[], 4, Some(vec![1])).is_err());
    }
}
