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
    if !x.is_finite() {
        out.extend_from_slice(match x {
            x if x.is_nan() => b"nan",
            x if x > 0.0 => b"inf",
            _ => b"-inf",
        });
        return;
    }
    // ryu finds the same shortest round-trip digits as Python, and already lays them out as
    // Python does wherever it chooses fixed notation, except from 1e-5 to 1e-4 (which Python
    // writes with an exponent); its exponents lack Python's sign and two-digit padding.
    let mut buf = ryu::Buffer::new();
    let s = buf.format_finite(x).as_bytes();
    let Some(e) = s.iter().position(|&b| b == b'e') else {
        // fixed: below 1e-4 only when it begins "0.0000" (ryu: 1e-5 <= |x| < 1e-4)
        let body = s.strip_prefix(b"-").unwrap_or(s);
        if body.starts_with(b"0.0000") && x != 0.0 {
            if x < 0.0 {
                out.push(b'-');
            }
            let digits = &body[6..];
            out.push(digits[0]);
            if digits.len() > 1 {
                out.push(b'.');
                out.extend_from_slice(&digits[1..]);
            }
            out.extend_from_slice(b"e-05");
        } else {
            out.extend_from_slice(s);
        }
        return;
    };
    out.extend_from_slice(&s[..=e]);
    let exp = &s[e + 1..];
    let (sign, mag) = match exp.strip_prefix(b"-") {
        Some(m) => (b'-', m),
        None => (b'+', exp),
    };
    out.push(sign);
    if mag.len() < 2 {
        out.push(b'0');
    }
    out.extend_from_slice(mag);
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

    /// The formatter `py_repr` replaced (std's shortest digits through `{:e}`, laid out by
    /// hand): an independent oracle for the layout.
    fn repr_by_std(x: f64) -> String {
        if x.is_infinite() {
            return if x > 0.0 { "inf" } else { "-inf" }.into();
        }
        let sci = format!("{:e}", x.abs());
        let (mant, exp) = sci.split_once('e').unwrap();
        let exp: i32 = exp.parse().unwrap();
        let digits: String = mant.chars().filter(|&c| c != '.').collect();
        let mut out = String::new();
        if x.is_sign_negative() {
            out.push('-');
        }
        let point = exp + 1;
        if !(-3..=16).contains(&point) {
            out.push_str(&digits[..1]);
            if digits.len() > 1 {
                out.push('.');
                out.push_str(&digits[1..]);
            }
            out.push_str(&format!(
                "e{}{:02}",
                if exp < 0 { '-' } else { '+' },
                exp.abs()
            ));
        } else if point <= 0 {
            out.push_str("0.");
            out.push_str(&"0".repeat((-point) as usize));
            out.push_str(&digits);
        } else if point as usize >= digits.len() {
            out.push_str(&digits);
            out.push_str(&"0".repeat(point as usize - digits.len()));
            out.push_str(".0");
        } else {
            out.push_str(&digits[..point as usize]);
            out.push('.');
            out.push_str(&digits[point as usize..]);
        }
        out
    }

    #[test]
    fn agrees_with_std_shortest_digits_everywhere() {
        let mut xs: Vec<f64> = vec![
            0.0,
            -0.0,
            f64::MIN_POSITIVE,
            f64::MAX,
            f64::MIN,
            f64::EPSILON,
            5e-324,
            -5e-324,
            1e-5,
            9.999999999999999e-5,
            1e-4,
            0.00001234,
            1e16,
            9999999999999998.0,
            1e15,
            1e-300,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ];
        // every power of ten and its neighbours, each sign
        for p in -324..=308 {
            let x: f64 = format!("1e{p}").parse().unwrap();
            for y in [
                x,
                f64::from_bits(x.to_bits() + 1),
                f64::from_bits(x.to_bits().saturating_sub(1)),
            ] {
                xs.extend([y, -y, y * 1.5, y * 0.123_456_789]);
            }
        }
        // arbitrary bit patterns (xorshift), subnormals, and small ratios as tables hold them
        let mut s: u64 = 0x9E37_79B9_7F4A_7C15;
        for i in 0..300_000u64 {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            xs.push(f64::from_bits(s));
            xs.push(f64::from_bits(s >> 12)); // subnormal
            xs.push((s % 1_000_003) as f64 / ((i % 997) + 1) as f64);
            xs.push((s >> 11) as f64 * 2f64.powi(-53) * 10f64.powi((i % 40) as i32 - 20));
        }
        for x in xs.into_iter().filter(|x| !x.is_nan()) {
            let (new, old) = (repr(x), repr_by_std(x));
            if new == old {
                continue;
            }
            // Only where the exact value lies halfway between two shortest candidates may they
            // differ: Python (and ryu) round that half to even, std rounds it up.
            let (a, b) = (new.as_bytes(), old.as_bytes());
            let last = a.len() - 1;
            assert_eq!(a.len(), b.len(), "{new} vs {old}");
            assert_eq!(a[..last], b[..last], "{new} vs {old}");
            assert_eq!((a[last] - b'0') % 2, 0, "{new} vs {old}");
            assert_eq!(a[last] + 1, b[last], "{new} vs {old}");
            assert_eq!(new.parse::<f64>().unwrap(), x, "{new}");
        }
    }
}
