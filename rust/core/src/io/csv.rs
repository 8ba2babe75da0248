//! Record batches as CSV text, the way valuescope's output files are written.
//!
//! Python's `csv` module spent a fifth of `analyze`'s time formatting cells one object at a
//! time; this writes the same bytes from the Arrow buffers. Conventions: null (and NaN) is an
//! empty field, booleans are `true`/`false`, floats are written as Python's `repr` writes them
//! (the shortest text that reads back as the same double), and a field holding a comma, a
//! quote, a carriage return or a line feed is quoted, with quotes doubled. Lines end in `\n`.

use std::io::Write;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, UInt16Type, UInt32Type,
    UInt64Type, UInt8Type,
};
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;

use crate::error::{EngineError, Result};

/// Appends the header and the rows of `batch` (only `columns`, in that order, if given).
pub fn write_csv(
    batch: &RecordBatch,
    columns: Option<&[String]>,
    header: bool,
    out: &mut Vec<u8>,
) -> Result<()> {
    let schema = batch.schema();
    let picked: Vec<usize> = match columns {
        None => (0..schema.fields().len()).collect(),
        Some(names) => names
            .iter()
            .map(|n| {
                schema
                    .index_of(n)
                    .map_err(|_| EngineError::MissingColumn(n.clone()))
            })
            .collect::<Result<_>>()?,
    };
    let cols: Vec<&dyn Array> = picked.iter().map(|&i| batch.column(i).as_ref()).collect();
    for (&i, col) in picked.iter().zip(&cols) {
        if !supported(col.data_type()) {
            return Err(EngineError::WrongType {
                column: schema.field(i).name().clone(),
                expected: "strings, numbers or booleans",
                found: col.data_type().to_string(),
            });
        }
    }
    let single = cols.len() == 1;
    if header {
        for (j, &i) in picked.iter().enumerate() {
            if j > 0 {
                out.push(b',');
            }
            text(schema.field(i).name(), single, out);
        }
        out.push(b'\n');
    }
    for r in 0..batch.num_rows() {
        for (j, col) in cols.iter().enumerate() {
            if j > 0 {
                out.push(b',');
            }
            cell(*col, r, single, out);
        }
        out.push(b'\n');
    }
    Ok(())
}

fn supported(t: &DataType) -> bool {
    use DataType::*;
    matches!(
        t,
        Null | Boolean
            | Int8
            | Int16
            | Int32
            | Int64
            | UInt8
            | UInt16
            | UInt32
            | UInt64
            | Float32
            | Float64
            | Utf8
            | LargeUtf8
            | Utf8View
    )
}

fn cell(col: &dyn Array, r: usize, single: bool, out: &mut Vec<u8>) {
    if col.is_null(r) {
        empty(single, out);
        return;
    }
    macro_rules! int {
        ($t:ty) => {
            write!(out, "{}", col.as_primitive::<$t>().value(r)).expect("writing to memory")
        };
    }
    match col.data_type() {
        DataType::Boolean => {
            let v = col.as_boolean().value(r);
            out.extend_from_slice(if v { b"true" } else { b"false" });
        }
        DataType::Int8 => int!(Int8Type),
        DataType::Int16 => int!(Int16Type),
        DataType::Int32 => int!(Int32Type),
        DataType::Int64 => int!(Int64Type),
        DataType::UInt8 => int!(UInt8Type),
        DataType::UInt16 => int!(UInt16Type),
        DataType::UInt32 => int!(UInt32Type),
        DataType::UInt64 => int!(UInt64Type),
        DataType::Float32 => float(
            col.as_primitive::<Float32Type>().value(r) as f64,
            single,
            out,
        ),
        DataType::Float64 => float(col.as_primitive::<Float64Type>().value(r), single, out),
        DataType::Utf8 => text(col.as_string::<i32>().value(r), single, out),
        DataType::LargeUtf8 => text(col.as_string::<i64>().value(r), single, out),
        DataType::Utf8View => text(col.as_string_view().value(r), single, out),
        _ => empty(single, out), // Null; other types are refused before the first row
    }
}

/// An empty field; alone on its line it is written `""`, or the line would read as no field.
fn empty(single: bool, out: &mut Vec<u8>) {
    if single {
        out.extend_from_slice(b"\"\"");
    }
}

fn text(s: &str, single: bool, out: &mut Vec<u8>) {
    if s.is_empty() {
        return empty(single, out);
    }
    if !s.bytes().any(|b| matches!(b, b',' | b'"' | b'\r' | b'\n')) {
        out.extend_from_slice(s.as_bytes());
        return;
    }
    out.push(b'"');
    for b in s.bytes() {
        if b == b'"' {
            out.push(b'"');
        }
        out.push(b);
    }
    out.push(b'"');
}

fn float(x: f64, single: bool, out: &mut Vec<u8>) {
    if x.is_nan() {
        return empty(single, out);
    }
    py_repr(x, out);
}

/// `repr(x)` as Python writes it: the shortest digits that round-trip, in fixed notation when
/// the decimal exponent is from -4 to 15 (with ".0" on whole numbers), else as `d.ddde+XX`.
pub fn py_repr(x: f64, out: &mut Vec<u8>) {
    if x.is_infinite() {
        out.extend_from_slice(if x > 0.0 { b"inf" } else { b"-inf" });
        return;
    }
    // Rust's `{:e}` gives the same shortest round-trip digits, laid out as d.ddde<exp>; written
    // to the stack (at most 17 digits, a point, 'e' and a 4-character exponent)
    let mut buf = [0u8; 32];
    let mut cur = std::io::Cursor::new(&mut buf[..]);
    write!(cur, "{:e}", x.abs()).expect("fits in 32 bytes");
    let len = cur.position() as usize;
    let sci = &buf[..len];
    let e = sci
        .iter()
        .position(|&b| b == b'e')
        .expect("{:e} has an exponent");
    let exp: i32 = std::str::from_utf8(&sci[e + 1..])
        .ok()
        .and_then(|t| t.parse().ok())
        .expect("{:e} exponent is an integer");
    let mut digits = [0u8; 24];
    let mut n = 0;
    for &b in &sci[..e] {
        if b != b'.' {
            digits[n] = b;
            n += 1;
        }
    }
    let digits = &digits[..n];
    if x.is_sign_negative() {
        out.push(b'-');
    }
    // the decimal point sits after `point` digits
    let point = exp + 1;
    if !(-3..=16).contains(&point) {
        out.push(digits[0]);
        if digits.len() > 1 {
            out.push(b'.');
            out.extend_from_slice(&digits[1..]);
        }
        write!(out, "e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs())
            .expect("writing to memory");
    } else if point <= 0 {
        out.extend_from_slice(b"0.");
        out.extend(std::iter::repeat_n(b'0', (-point) as usize));
        out.extend_from_slice(digits);
    } else if point as usize >= digits.len() {
        out.extend_from_slice(digits);
        out.extend(std::iter::repeat_n(b'0', point as usize - digits.len()));
        out.extend_from_slice(b".0");
    } else {
        let (int, frac) = digits.split_at(point as usize);
        out.extend_from_slice(int);
        out.push(b'.');
        out.extend_from_slice(frac);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repr(x: f64) -> String {
        let mut v = Vec::new();
        py_repr(x, &mut v);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn floats_read_as_python_writes_them() {
        // what CPython's repr() gives for each
        for (x, want) in [
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.0, "1.0"),
            (0.1, "0.1"),
            (-2.5, "-2.5"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (1e15, "1000000000000000.0"),
            (123456789.125, "123456789.125"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.2345e-7, "1.2345e-07"),
            (5e-324, "5e-324"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (0.30000000000000004, "0.30000000000000004"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
        ] {
            assert_eq!(repr(x), want, "{x:e}");
        }
    }
}
