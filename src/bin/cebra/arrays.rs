//! Arrays from disk: `.npy`, `.npz` (`file.npz:name`, or its only array) and `.safetensors`
//! (`file.safetensors:tensor`, or its only tensor / `data`), read with ndarray-npy and safetensors;
//! float arrays stay float, integer arrays integer (float labels are continuous, integer discrete).
use super::CliResult;
use ndarray::{ArrayD, IxDyn};
use ndarray_npy::{ReadNpyError, ReadNpyExt, ReadNpzError, ReadableElement};
use std::io::Cursor;
use std::path::{Path, PathBuf};
use tch::Kind;

/// The values of an array file, float or integer.
pub enum Values {
    Float(ArrayD<f64>),
    Int(ArrayD<i64>),
}

/// An array read from `source` (the argument as given, for messages).
pub struct Loaded {
    pub values: Values,
    pub source: String,
}

impl Loaded {
    pub fn shape(&self) -> &[usize] {
        match &self.values {
            Values::Float(a) => a.shape(),
            Values::Int(a) => a.shape(),
        }
    }

    pub fn is_float(&self) -> bool {
        matches!(self.values, Values::Float(_))
    }

    /// Every value as f64 (integers converted), row-major.
    pub fn to_f64(&self) -> Vec<f64> {
        match &self.values {
            Values::Float(a) => a.iter().copied().collect(),
            Values::Int(a) => a.iter().map(|&v| v as f64).collect(),
        }
    }

    /// `(rows, columns)` of a 1-D (one column) or 2-D array.
    pub fn rows_cols(&self, what: &str) -> CliResult<(usize, usize)> {
        match *self.shape() {
            [rows] => Ok((rows, 1)),
            [rows, cols] => Ok((rows, cols)),
            ref other => Err(format!("{what} '{}' must be 1-D or 2-D, got shape {other:?}", self.source)),
        }
    }

    /// A `(time, neurons)` recording as f32, row-major; must be 2-D, non-empty and finite.
    pub fn recording(&self, what: &str) -> CliResult<(Vec<f32>, usize, usize)> {
        let (t, n) = match *self.shape() {
            [t, n] => (t, n),
            ref other => {
                return Err(format!("{what} '{}' must be a 2-D (time, neurons) array, got shape {other:?}", self.source));
            }
        };
        if t == 0 || n == 0 {
            return Err(format!("{what} '{}' is empty (shape [{t}, {n}])", self.source));
        }
        let values: Vec<f32> = self.to_f64().into_iter().map(|v| v as f32).collect();
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(format!(
                "{what} '{}' must be finite; value at ({}, {}) is {}",
                self.source,
                i / n,
                i % n,
                values[i]
            ));
        }
        Ok((values, t, n))
    }

    /// `(rows, dims)` float values (integers converted), finite.
    pub fn continuous(&self, what: &str) -> CliResult<(Vec<f32>, usize, usize)> {
        let (rows, dims) = self.rows_cols(what)?;
        let values: Vec<f32> = self.to_f64().into_iter().map(|v| v as f32).collect();
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(format!("{what} '{}' must be finite; row {} has {}", self.source, i / dims.max(1), values[i]));
        }
        Ok((values, rows, dims))
    }

    /// One class per row: a 1-D (or one-column) integer array.
    pub fn discrete(&self, what: &str) -> CliResult<Vec<i64>> {
        let (_, cols) = self.rows_cols(what)?;
        if cols != 1 {
            return Err(format!("{what} '{}' must have one class per time step (1-D), got shape {:?}", self.source, self.shape()));
        }
        match &self.values {
            Values::Int(a) => Ok(a.iter().copied().collect()),
            Values::Float(_) => Err(format!(
                "{what} '{}' holds floats: discrete labels must be an integer array (float labels are continuous)",
                self.source
            )),
        }
    }
}

/// Splits `file:name` when `file` exists and the whole argument does not.
fn split_spec(spec: &str) -> (PathBuf, Option<String>) {
    if !Path::new(spec).exists()
        && let Some((file, name)) = spec.rsplit_once(':')
        && Path::new(file).exists()
    {
        return (PathBuf::from(file), Some(name.to_string()));
    }
    (PathBuf::from(spec), None)
}

fn is_ext(path: &Path, ext: &str) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| e.eq_ignore_ascii_case(ext))
}

/// Reads `spec` (see the module documentation).
pub fn read(spec: &str) -> CliResult<Loaded> {
    let (path, name) = split_spec(spec);
    if !path.exists() {
        return Err(format!("'{spec}': no such file"));
    }
    let values = if is_ext(&path, "npy") {
        if let Some(name) = &name {
            return Err(format!("'{spec}': a .npy file holds one array; ':{name}' names arrays of .npz or .safetensors files"));
        }
        let bytes = std::fs::read(&path).map_err(|e| format!("cannot read '{}': {e}", path.display()))?;
        npy_values(&NpyBytes(bytes)).map_err(|e| format!("'{spec}': {e}"))?
    } else if is_ext(&path, "npz") {
        read_npz(&path, name.as_deref()).map_err(|e| format!("'{spec}': {e}"))?
    } else if is_ext(&path, "safetensors") {
        read_safetensors(&path, name.as_deref()).map_err(|e| format!("'{spec}': {e}"))?
    } else {
        return Err(format!("'{spec}': unknown file type (use .npy, .npz or .safetensors)"));
    };
    Ok(Loaded { values, source: spec.to_string() })
}

/// Where `.npy` data comes from: a `.npy` file's bytes or a member of a `.npz` archive.
trait NpySource {
    /// The array if its element type is `T`, `None` if it is another type.
    fn read<T: ReadableElement>(&self) -> Result<Option<ArrayD<T>>, String>;
}

fn wrong_type_is_none<T>(result: Result<ArrayD<T>, ReadNpyError>) -> Result<Option<ArrayD<T>>, String> {
    match result {
        Ok(a) => Ok(Some(a)),
        Err(ReadNpyError::WrongDescriptor(_)) => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

struct NpyBytes(Vec<u8>);

impl NpySource for NpyBytes {
    fn read<T: ReadableElement>(&self) -> Result<Option<ArrayD<T>>, String> {
        wrong_type_is_none(ArrayD::<T>::read_npy(Cursor::new(&self.0[..])))
    }
}

struct NpzMember {
    bytes: Vec<u8>,
    name: String,
}

impl NpySource for NpzMember {
    fn read<T: ReadableElement>(&self) -> Result<Option<ArrayD<T>>, String> {
        let mut npz = ndarray_npy::NpzReader::new(Cursor::new(&self.bytes[..])).map_err(|e| e.to_string())?;
        match npz.by_name::<ndarray::OwnedRepr<T>, IxDyn>(&self.name) {
            Ok(a) => Ok(Some(a)),
            Err(ReadNpzError::Npy(e)) => wrong_type_is_none(Err(e)),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// Tries the element types numpy writes for numbers, float first; a wrong type is found from the
/// header, before any data is read.
fn npy_values(source: &impl NpySource) -> Result<Values, String> {
    macro_rules! try_types {
        ($variant:ident, $target:ty: $($t:ty),*) => {
            $(if let Some(a) = source.read::<$t>()? {
                return Ok(Values::$variant(a.mapv(|v| v as $target)));
            })*
        };
    }
    try_types!(Float, f64: f32, f64);
    try_types!(Int, i64: i64, i32, i16, i8, u8, u16, u32);
    if let Some(a) = source.read::<u64>()? {
        let v: Result<Vec<i64>, _> = a.iter().map(|&x| i64::try_from(x)).collect();
        let v = v.map_err(|_| "uint64 values beyond the int64 range".to_string())?;
        return Ok(Values::Int(ArrayD::from_shape_vec(IxDyn(a.shape()), v).map_err(|e| e.to_string())?));
    }
    if let Some(a) = source.read::<bool>()? {
        return Ok(Values::Int(a.mapv(i64::from)));
    }
    Err("unsupported element type (need a float, integer or bool array)".into())
}

fn read_npz(path: &Path, name: Option<&str>) -> Result<Values, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    let mut npz = ndarray_npy::NpzReader::new(Cursor::new(&bytes[..])).map_err(|e| format!("not a valid .npz file: {e}"))?;
    let names = npz.names().map_err(|e| e.to_string())?;
    let chosen = match name {
        Some(n) => names
            .iter()
            .find(|k| *k == n)
            .ok_or_else(|| format!("no array '{n}' (it has: {})", names.join(", ")))?
            .clone(),
        None if names.len() == 1 => names[0].clone(),
        None => return Err(format!("holds {} arrays ({}): name one as FILE.npz:NAME", names.len(), names.join(", "))),
    };
    npy_values(&NpzMember { bytes, name: chosen })
}

fn read_safetensors(path: &Path, name: Option<&str>) -> Result<Values, String> {
    let file = cebra::weights::read_file(path).map_err(|e| e.to_string())?;
    let names: Vec<&str> = file.tensors.iter().map(|(k, _)| k.as_str()).collect();
    let found = match name {
        Some(n) => file.tensors.iter().find(|(k, _)| k == n),
        None if file.tensors.len() == 1 => file.tensors.first(),
        None => file.tensors.iter().find(|(k, _)| k == "data"),
    };
    let (_, t) = found.ok_or_else(|| match name {
        Some(n) => format!("no tensor '{n}' (it has: {})", names.join(", ")),
        None => format!("holds {} tensors ({}) and none is 'data': name one as FILE.safetensors:NAME", names.len(), names.join(", ")),
    })?;
    let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
    let flat = t.contiguous().view([-1]);
    if t.is_floating_point() {
        let v = Vec::<f64>::try_from(flat.to_kind(Kind::Double)).map_err(|e| e.to_string())?;
        Ok(Values::Float(ArrayD::from_shape_vec(IxDyn(&shape), v).map_err(|e| e.to_string())?))
    } else {
        let v = Vec::<i64>::try_from(flat.to_kind(Kind::Int64)).map_err(|e| e.to_string())?;
        Ok(Values::Int(ArrayD::from_shape_vec(IxDyn(&shape), v).map_err(|e| e.to_string())?))
    }
}

/// Writes a `(rows, cols)` f32 array as `.npy`.
pub fn write_f32(path: &Path, values: Vec<f32>, rows: usize, cols: usize) -> CliResult {
    let array = ndarray::Array2::from_shape_vec((rows, cols), values).map_err(|e| e.to_string())?;
    ndarray_npy::write_npy(path, &array).map_err(|e| format!("cannot write '{}': {e}", path.display()))
}

/// Writes a 1-D i64 array as `.npy`.
pub fn write_i64(path: &Path, values: Vec<i64>) -> CliResult {
    let array = ndarray::Array1::from_vec(values);
    ndarray_npy::write_npy(path, &array).map_err(|e| format!("cannot write '{}': {e}", path.display()))
}
