//! Arrow and parquet plumbing: writing record batches to parquet bytes and
//! reading parquet files back, plus column accessors that accept what
//! LeRobot writes (fixed-size or variable lists, float32 or float64).

use std::path::Path;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Float64Type, Int64Type};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::{Error, Result};

/// Encodes batches (one schema) as a parquet file, snappy-compressed as
/// pyarrow writes by default.
pub fn to_parquet(schema: Arc<Schema>, batches: &[RecordBatch], path_for_errors: &Path) -> Result<Vec<u8>> {
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut bytes = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut bytes, schema, Some(props))
        .map_err(|e| Error::format(path_for_errors, format!("parquet writer: {e}")))?;
    for batch in batches {
        writer
            .write(batch)
            .map_err(|e| Error::format(path_for_errors, format!("parquet write: {e}")))?;
    }
    writer
        .close()
        .map_err(|e| Error::format(path_for_errors, format!("parquet footer: {e}")))?;
    Ok(bytes)
}

/// Reads a whole parquet file.
pub fn read_parquet(path: &Path) -> Result<(Arc<Schema>, Vec<RecordBatch>)> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| Error::format(path, format!("not a readable parquet file: {e}")))?;
    let schema = builder.schema().clone();
    let reader = builder
        .build()
        .map_err(|e| Error::format(path, format!("parquet reader: {e}")))?;
    let batches = reader
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::format(path, format!("corrupt parquet data: {e}")))?;
    Ok((schema, batches))
}

/// A column by name, or a clear error.
pub fn column<'a>(batch: &'a RecordBatch, name: &str, path: &Path) -> Result<&'a ArrayRef> {
    batch
        .column_by_name(name)
        .ok_or_else(|| Error::format(path, format!("column {name:?} is missing")))
}

/// An int64 column as values.
pub fn i64_values(batch: &RecordBatch, name: &str, path: &Path) -> Result<Vec<i64>> {
    let array = column(batch, name, path)?;
    let ints = array.as_primitive_opt::<Int64Type>().ok_or_else(|| {
        Error::format(
            path,
            format!("column {name:?} is {}, expected int64", array.data_type()),
        )
    })?;
    Ok(ints.values().to_vec())
}

/// A float column (float32 or float64) as f64 values.
pub fn f64_values(array: &ArrayRef, name: &str, path: &Path) -> Result<Vec<f64>> {
    if let Some(a) = array.as_primitive_opt::<Float32Type>() {
        return Ok(a.values().iter().map(|v| f64::from(*v)).collect());
    }
    if let Some(a) = array.as_primitive_opt::<Float64Type>() {
        return Ok(a.values().to_vec());
    }
    Err(Error::format(
        path,
        format!("column {name:?} is {}, expected floats", array.data_type()),
    ))
}

/// A column of float vectors (fixed-size or variable lists, nested lists
/// flattened) as one `Vec<f64>` per row.
pub fn vector_rows(array: &ArrayRef, name: &str, path: &Path) -> Result<Vec<Vec<f64>>> {
    let rows = array.len();
    let flatten = |values: &ArrayRef| -> Result<Vec<f64>> {
        match values.data_type() {
            DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(_, _) => {
                Ok(vector_rows(values, name, path)?.into_iter().flatten().collect())
            }
            _ => f64_values(values, name, path),
        }
    };
    let mut out = Vec::with_capacity(rows);
    match array.data_type() {
        DataType::FixedSizeList(_, _) => {
            let list = array.as_fixed_size_list();
            for i in 0..rows {
                out.push(flatten(&list.value(i))?);
            }
        }
        DataType::List(_) => {
            let list = array.as_list::<i32>();
            for i in 0..rows {
                out.push(flatten(&list.value(i))?);
            }
        }
        DataType::LargeList(_) => {
            let list = array.as_list::<i64>();
            for i in 0..rows {
                out.push(flatten(&list.value(i))?);
            }
        }
        other => {
            return Err(Error::format(
                path,
                format!("column {name:?} is {other}, expected a list of floats"),
            ));
        }
    }
    Ok(out)
}

/// A field of a fixed-size list of `len` float32 values, as HF datasets writes vectors.
pub fn f32_vector_field(name: &str, len: usize) -> Field {
    Field::new(
        name,
        DataType::FixedSizeList(Arc::new(Field::new("item", DataType::Float32, true)), len as i32),
        true,
    )
}

/// The struct field of a PNG camera column: `{bytes, path}`.
pub fn image_field(name: &str) -> Field {
    Field::new(
        name,
        DataType::Struct(
            vec![
                Field::new("bytes", DataType::Binary, true),
                Field::new("path", DataType::Utf8, true),
            ]
            .into(),
        ),
        true,
    )
}
