//! NIfTI-1 and NIfTI-2 (`.nii`, `.nii.gz`) reader and writer.
//!
//! - Headers of either version and either byte order are parsed; the affine
//!   is the one nibabel's `img.affine` returns: the sform if `sform_code != 0`,
//!   else the qform if `qform_code != 0`, else nibabel's fallback (zooms with a
//!   flipped x axis, origin at the centre of the volume).
//! - Data come back as `(C, I, J, K)` C-order arrays: the file stores `x`
//!   fastest (Fortran order), so decoding transposes, byte-swaps, widens
//!   `uint16 -> int32` and `uint32 -> int64` (TorchIO's conversions) and
//!   applies `scl_slope`/`scl_inter` in one blocked, parallel pass. Dimensions
//!   past the third (time, vector components) are flattened into channels.
//! - Scaled data become float32 (float64 if stored as float64), as SimpleITK
//!   and therefore TorchIO read them.
//! - `.nii.gz` is inflated in one call to libdeflate (falling back to a
//!   streaming decoder for multi-member or > 4 GiB streams); `.nii` is memory
//!   mapped, and a region read touches only the pages holding that region.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

use ndarray::{Array4, ArrayView4};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::stream::prefetch;
use crate::volume::Voxel;

const NIFTI1_HEADER_SIZE: usize = 348;
const NIFTI2_HEADER_SIZE: usize = 540;
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// K extent of the transposition tiles used when decoding.
const TILE_K: usize = 16;

/// A parsed NIfTI header (fields widened to the NIfTI-2 types).
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    /// 1 or 2.
    pub version: u8,
    /// Byte order of the file.
    pub big_endian: bool,
    /// `dim[0]` is the number of dimensions, `dim[1..=dim[0]]` the extents.
    pub dim: [i64; 8],
    /// NIfTI datatype code.
    pub datatype: i16,
    /// Bits per voxel.
    pub bitpix: i16,
    /// `pixdim[0]` is qfac; `pixdim[1..4]` the voxel sizes.
    pub pixdim: [f64; 8],
    /// Offset of the data in a single file (0 = right after the header).
    pub vox_offset: f64,
    /// Data scaling slope (0 or non-finite = no scaling).
    pub scl_slope: f64,
    /// Data scaling intercept.
    pub scl_inter: f64,
    /// Meaning of the qform (0 = none).
    pub qform_code: i32,
    /// Meaning of the sform (0 = none).
    pub sform_code: i32,
    /// Quaternion `b, c, d` of the qform.
    pub quatern: [f64; 3],
    /// Translation of the qform.
    pub qoffset: [f64; 3],
    /// Rows of the sform.
    pub srow: [[f64; 4]; 3],
    /// Intent code (1007 = vector).
    pub intent_code: i32,
    /// Units of pixdim.
    pub xyzt_units: i32,
    /// Description string.
    pub descrip: String,
    /// Bytes between the header and the data (extensions).
    pub extension_bytes: usize,
}

/// Voxel types a file can hold that this reader decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataType {
    /// datatype 2
    U8,
    /// datatype 256
    I8,
    /// datatype 4
    I16,
    /// datatype 512
    U16,
    /// datatype 8
    I32,
    /// datatype 768
    U32,
    /// datatype 1024
    I64,
    /// datatype 1280
    U64,
    /// datatype 16
    F32,
    /// datatype 64
    F64,
}

impl DataType {
    /// The type for a NIfTI datatype code.
    pub fn from_code(code: i16) -> Result<Self> {
        Ok(match code {
            2 => Self::U8,
            256 => Self::I8,
            4 => Self::I16,
            512 => Self::U16,
            8 => Self::I32,
            768 => Self::U32,
            1024 => Self::I64,
            1280 => Self::U64,
            16 => Self::F32,
            64 => Self::F64,
            other => {
                return Err(Error::InvalidArgument(format!(
                    "unsupported NIfTI datatype code {other} (complex, RGB, binary and \
                     float128 data are not decoded natively)"
                )))
            }
        })
    }

    /// Bytes per voxel.
    pub fn size(self) -> usize {
        match self {
            Self::U8 | Self::I8 => 1,
            Self::I16 | Self::U16 => 2,
            Self::I32 | Self::U32 | Self::F32 => 4,
            Self::I64 | Self::U64 | Self::F64 => 8,
        }
    }
}

/// A decoded volume `(C, I, J, K)`, in the dtype TorchIO would give it.
#[derive(Debug, Clone, PartialEq)]
pub enum VolumeData {
    /// uint8
    U8(Array4<u8>),
    /// int8
    I8(Array4<i8>),
    /// int16
    I16(Array4<i16>),
    /// int32 (also uint16 on disk)
    I32(Array4<i32>),
    /// int64 (also uint32 on disk)
    I64(Array4<i64>),
    /// uint64
    U64(Array4<u64>),
    /// float32 (also scaled integer data)
    F32(Array4<f32>),
    /// float64
    F64(Array4<f64>),
}

impl VolumeData {
    /// Shape `(C, I, J, K)`.
    pub fn shape(&self) -> &[usize] {
        match self {
            Self::U8(a) => a.shape(),
            Self::I8(a) => a.shape(),
            Self::I16(a) => a.shape(),
            Self::I32(a) => a.shape(),
            Self::I64(a) => a.shape(),
            Self::U64(a) => a.shape(),
            Self::F32(a) => a.shape(),
            Self::F64(a) => a.shape(),
        }
    }
}

/// A region `[start, end)` per spatial axis.
pub type Region = [(usize, usize); 3];

fn corrupt(message: impl std::fmt::Display) -> Error {
    Error::InvalidArgument(format!("corrupt or unsupported NIfTI file: {message}"))
}

/// Little helper reading fixed fields in the file's byte order.
struct Fields<'a> {
    bytes: &'a [u8],
    big_endian: bool,
}

impl Fields<'_> {
    fn take<const N: usize>(&self, offset: usize) -> [u8; N] {
        let mut raw = [0u8; N];
        raw.copy_from_slice(&self.bytes[offset..offset + N]);
        if self.big_endian {
            raw.reverse();
        }
        raw
    }
    fn i16(&self, offset: usize) -> i16 {
        i16::from_le_bytes(self.take(offset))
    }
    fn i32(&self, offset: usize) -> i32 {
        i32::from_le_bytes(self.take(offset))
    }
    fn i64(&self, offset: usize) -> i64 {
        i64::from_le_bytes(self.take(offset))
    }
    fn f32(&self, offset: usize) -> f64 {
        f64::from(f32::from_le_bytes(self.take(offset)))
    }
    fn f64(&self, offset: usize) -> f64 {
        f64::from_le_bytes(self.take(offset))
    }
    fn text(&self, offset: usize, len: usize) -> String {
        let raw = &self.bytes[offset..offset + len];
        let end = raw.iter().position(|&b| b == 0).unwrap_or(len);
        String::from_utf8_lossy(&raw[..end]).into_owned()
    }
}

fn header_size_field(bytes: &[u8], big_endian: bool) -> i32 {
    let mut raw = [0u8; 4];
    raw.copy_from_slice(&bytes[0..4]);
    if big_endian {
        i32::from_be_bytes(raw)
    } else {
        i32::from_le_bytes(raw)
    }
}

/// Parses a NIfTI-1 or NIfTI-2 single-file header from the start of `bytes`
/// (which must hold the header; extensions are walked if present).
pub fn parse_header(bytes: &[u8]) -> Result<Header> {
    if bytes.len() < 4 {
        return Err(corrupt(format!("file holds only {} bytes", bytes.len())));
    }
    let (version, big_endian) = match (
        header_size_field(bytes, false),
        header_size_field(bytes, true),
    ) {
        (348, _) => (1, false),
        (_, 348) => (1, true),
        (540, _) => (2, false),
        (_, 540) => (2, true),
        (le, _) => {
            return Err(corrupt(format!(
                "sizeof_hdr is {le}, expected 348 (NIfTI-1) or 540 (NIfTI-2)"
            )))
        }
    };
    let size = if version == 1 {
        NIFTI1_HEADER_SIZE
    } else {
        NIFTI2_HEADER_SIZE
    };
    if bytes.len() < size {
        return Err(corrupt(format!(
            "truncated header: {} bytes, expected {size}",
            bytes.len()
        )));
    }
    let f = Fields { bytes, big_endian };
    let mut header = if version == 1 {
        let magic = &bytes[344..348];
        if magic != b"n+1\0" {
            return Err(corrupt(format!(
                "magic {:?} is not \"n+1\" (separate .hdr/.img pairs are not read natively)",
                String::from_utf8_lossy(magic)
            )));
        }
        let mut dim = [0i64; 8];
        let mut pixdim = [0f64; 8];
        for n in 0..8 {
            dim[n] = i64::from(f.i16(40 + 2 * n));
            pixdim[n] = f.f32(76 + 4 * n);
        }
        let mut srow = [[0f64; 4]; 3];
        for (r, row) in srow.iter_mut().enumerate() {
            for (c, v) in row.iter_mut().enumerate() {
                *v = f.f32(280 + 16 * r + 4 * c);
            }
        }
        Header {
            version,
            big_endian,
            dim,
            datatype: f.i16(70),
            bitpix: f.i16(72),
            pixdim,
            vox_offset: f.f32(108),
            scl_slope: f.f32(112),
            scl_inter: f.f32(116),
            qform_code: i32::from(f.i16(252)),
            sform_code: i32::from(f.i16(254)),
            quatern: [f.f32(256), f.f32(260), f.f32(264)],
            qoffset: [f.f32(268), f.f32(272), f.f32(276)],
            srow,
            intent_code: i32::from(f.i16(68)),
            xyzt_units: i32::from(bytes[123]),
            descrip: f.text(148, 80),
            extension_bytes: 0,
        }
    } else {
        if &bytes[4..8] != b"n+2\0" {
            return Err(corrupt(format!(
                "magic {:?} is not \"n+2\" (separate .hdr/.img pairs are not read natively)",
                String::from_utf8_lossy(&bytes[4..8])
            )));
        }
        let mut dim = [0i64; 8];
        let mut pixdim = [0f64; 8];
        for n in 0..8 {
            dim[n] = f.i64(16 + 8 * n);
            pixdim[n] = f.f64(104 + 8 * n);
        }
        let mut srow = [[0f64; 4]; 3];
        for (r, row) in srow.iter_mut().enumerate() {
            for (c, v) in row.iter_mut().enumerate() {
                *v = f.f64(400 + 32 * r + 8 * c);
            }
        }
        Header {
            version,
            big_endian,
            dim,
            datatype: f.i16(12),
            bitpix: f.i16(14),
            pixdim,
            vox_offset: f.i64(168) as f64,
            scl_slope: f.f64(176),
            scl_inter: f.f64(184),
            qform_code: f.i32(344),
            sform_code: f.i32(348),
            quatern: [f.f64(352), f.f64(360), f.f64(368)],
            qoffset: [f.f64(376), f.f64(384), f.f64(392)],
            srow,
            intent_code: f.i32(504),
            xyzt_units: f.i32(500),
            descrip: f.text(240, 80),
            extension_bytes: 0,
        }
    };
    header.extension_bytes = extension_bytes(bytes, size, big_endian);
    header.validate()?;
    Ok(header)
}

/// Size of the extensions following a header of `size` bytes, walking the
/// `esize` chain as far as `bytes` goes (0 when the extension flag is unset).
fn extension_bytes(bytes: &[u8], size: usize, big_endian: bool) -> usize {
    if bytes.len() < size + 4 || bytes[size] == 0 {
        return 0;
    }
    let mut position = size + 4;
    while position + 8 <= bytes.len() {
        let mut raw = [0u8; 4];
        raw.copy_from_slice(&bytes[position..position + 4]);
        let esize = if big_endian {
            i32::from_be_bytes(raw)
        } else {
            i32::from_le_bytes(raw)
        };
        if esize < 8 || esize % 16 != 0 {
            break;
        }
        position += esize as usize;
    }
    position.min(bytes.len()) - size - 4
}

impl Header {
    fn validate(&self) -> Result<()> {
        let ndim = self.dim[0];
        if !(1..=7).contains(&ndim) {
            return Err(corrupt(format!("dim[0] is {ndim}, expected 1 to 7")));
        }
        for n in 1..=ndim as usize {
            if self.dim[n] < 1 {
                return Err(corrupt(format!(
                    "dim[{n}] is {}, expected a positive extent",
                    self.dim[n]
                )));
            }
        }
        let datatype = DataType::from_code(self.datatype)?;
        if self.vox_offset < 0.0 || !self.vox_offset.is_finite() {
            return Err(corrupt(format!("vox_offset is {}", self.vox_offset)));
        }
        self.data_len()?;
        let _ = datatype;
        Ok(())
    }

    /// The voxel type on disk.
    pub fn data_type(&self) -> Result<DataType> {
        DataType::from_code(self.datatype)
    }

    fn extent(&self, axis: usize) -> usize {
        if axis < self.dim[0] as usize {
            self.dim[axis + 1].max(1) as usize
        } else {
            1
        }
    }

    /// Spatial shape `(I, J, K)` (missing axes are 1).
    pub fn spatial_shape(&self) -> [usize; 3] {
        [self.extent(0), self.extent(1), self.extent(2)]
    }

    /// Number of channels: the product of the extents past the third.
    pub fn channels(&self) -> usize {
        (3..7).map(|axis| self.extent(axis)).product()
    }

    /// Number of voxels times bytes per voxel, checked for overflow.
    pub fn data_len(&self) -> Result<usize> {
        let size = DataType::from_code(self.datatype)?.size();
        let mut total = size;
        for axis in 0..7 {
            total = total
                .checked_mul(self.extent(axis))
                .ok_or_else(|| corrupt("data size overflows"))?;
        }
        Ok(total)
    }

    /// Byte offset of the data in the file (nibabel's rule: an unset offset
    /// means right after the header and its extensions).
    pub fn data_offset(&self) -> usize {
        let header = if self.version == 1 {
            NIFTI1_HEADER_SIZE
        } else {
            NIFTI2_HEADER_SIZE
        };
        if self.vox_offset == 0.0 {
            header + 4 + self.extension_bytes
        } else {
            self.vox_offset as usize
        }
    }

    /// `(slope, intercept)` if the data must be scaled (nibabel's rules: a zero
    /// or non-finite slope means no scaling; a non-finite intercept is 0).
    pub fn scaling(&self) -> Option<(f64, f64)> {
        let slope = self.scl_slope;
        if slope == 0.0 || !slope.is_finite() {
            return None;
        }
        let inter = if self.scl_inter.is_finite() {
            self.scl_inter
        } else {
            0.0
        };
        if slope == 1.0 && inter == 0.0 {
            None
        } else {
            Some((slope, inter))
        }
    }

    /// The voxel-to-world (RAS+) affine, exactly as nibabel's `img.affine`.
    pub fn affine(&self) -> Result<[[f64; 4]; 4]> {
        if self.sform_code != 0 {
            let s = self.srow;
            return Ok([s[0], s[1], s[2], [0.0, 0.0, 0.0, 1.0]]);
        }
        if self.qform_code != 0 {
            return self.qform_affine();
        }
        Ok(self.base_affine())
    }

    /// The affine of the quaternion fields (nibabel's `get_qform`).
    #[allow(clippy::needless_range_loop)]
    pub fn qform_affine(&self) -> Result<[[f64; 4]; 4]> {
        let [b, c, d] = self.quatern;
        let norm = b * b + c * c + d * d;
        let w2 = 1.0 - norm;
        // Stored in float32: nibabel treats |w^2| below 3 float32 epsilons as 0.
        let threshold = if self.version == 1 {
            3.0 * f64::from(f32::EPSILON)
        } else {
            3.0 * f64::EPSILON
        };
        let a = if w2.abs() < threshold {
            0.0
        } else if w2 < 0.0 {
            return Err(corrupt(format!("quaternion (b, c, d) has norm {norm} > 1")));
        } else {
            w2.sqrt()
        };
        let nq = a * a + norm;
        let rotation = if nq < f64::EPSILON {
            [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
        } else {
            let s = 2.0 / nq;
            let (x, y, z) = (b * s, c * s, d * s);
            let (wx, wy, wz) = (a * x, a * y, a * z);
            let (xx, xy, xz) = (b * x, b * y, b * z);
            let (yy, yz, zz) = (c * y, c * z, d * z);
            [
                [1.0 - (yy + zz), xy - wz, xz + wy],
                [xy + wz, 1.0 - (xx + zz), yz - wx],
                [xz - wy, yz + wx, 1.0 - (xx + yy)],
            ]
        };
        let mut zooms = [self.pixdim[1], self.pixdim[2], self.pixdim[3]];
        if zooms.iter().any(|&z| z < 0.0) {
            return Err(corrupt("pixdim[1:4] should be positive"));
        }
        // nibabel fixes a qfac other than -1 or 1 to 1 on load.
        let qfac = if self.pixdim[0] == -1.0 { -1.0 } else { 1.0 };
        zooms[2] *= qfac;
        let mut out = [[0.0; 4]; 4];
        for r in 0..3 {
            for c in 0..3 {
                out[r][c] = rotation[r][c] * zooms[c];
            }
            out[r][3] = self.qoffset[r];
        }
        out[3][3] = 1.0;
        Ok(out)
    }

    /// nibabel's fallback affine: `diag(-zx, zy, zz)` centred on the volume.
    #[allow(clippy::needless_range_loop)]
    pub fn base_affine(&self) -> [[f64; 4]; 4] {
        let ndim = self.dim[0].clamp(1, 7) as usize;
        let mut out = [[0.0; 4]; 4];
        for axis in 0..3 {
            let (n, zoom) = if axis < ndim {
                (self.dim[axis + 1] as f64, self.pixdim[axis + 1])
            } else {
                (1.0, 1.0)
            };
            let zoom = if axis == 0 { -zoom } else { zoom };
            out[axis][axis] = zoom;
            out[axis][3] = -(n - 1.0) / 2.0 * zoom;
        }
        out[3][3] = 1.0;
        out
    }
}

fn io_error(path: &Path, error: impl std::fmt::Display) -> Error {
    Error::InvalidArgument(format!("cannot read {}: {error}", path.display()))
}

fn with_path(path: &Path, error: Error) -> Error {
    match error {
        Error::InvalidArgument(m) => Error::InvalidArgument(format!("{}: {m}", path.display())),
        Error::Shape(m) => Error::Shape(format!("{}: {m}", path.display())),
        Error::Empty(m) => Error::Empty(format!("{}: {m}", path.display())),
        other => other,
    }
}

/// The file's bytes: inflated if gzip-compressed, memory-mapped otherwise.
enum Bytes {
    Owned(Vec<u8>),
    Mapped(memmap2::Mmap),
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Self::Owned(v) => v,
            Self::Mapped(m) => m,
        }
    }
}

/// Inflates a whole gzip stream: one libdeflate call when the trailer's size
/// is right (single member < 4 GiB), a streaming multi-member decoder otherwise.
pub fn inflate_gzip(compressed: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    inflate_gzip_into(compressed, &mut out)?;
    Ok(out)
}

/// [`inflate_gzip`] into `out`, whose memory is reused: only bytes beyond its
/// current length are zeroed before libdeflate overwrites them.
fn inflate_gzip_into(compressed: &[u8], out: &mut Vec<u8>) -> Result<()> {
    if compressed.len() >= 18 {
        let mut raw = [0u8; 4];
        raw.copy_from_slice(&compressed[compressed.len() - 4..]);
        let expected = u32::from_le_bytes(raw) as usize;
        out.resize(expected, 0);
        let mut decompressor = libdeflater::Decompressor::new();
        if let Ok(n) = decompressor.gzip_decompress(compressed, out) {
            if n == expected {
                return Ok(());
            }
        }
    }
    out.clear();
    flate2::read::MultiGzDecoder::new(compressed)
        .read_to_end(out)
        .map_err(|e| corrupt(format!("gzip stream: {e}")))?;
    Ok(())
}

thread_local! {
    /// Inflated bytes of the last compressed file read on this thread, kept
    /// for the next one: a fresh buffer of a volume's size is zeroed (or
    /// page-faulted in) on every read, which costs as much as a tenth of it.
    static INFLATE_BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Largest inflate buffer kept between reads (per thread).
const KEEP_INFLATE_BUFFER: usize = 256 << 20;

fn load_bytes(path: &Path) -> Result<Bytes> {
    let mut file = File::open(path).map_err(|e| io_error(path, e))?;
    let mut magic = [0u8; 2];
    let n = file.read(&mut magic).map_err(|e| io_error(path, e))?;
    if n == 2 && magic == GZIP_MAGIC {
        let compressed = std::fs::read(path).map_err(|e| io_error(path, e))?;
        let mut out = INFLATE_BUFFER.with(|cell| cell.take());
        inflate_gzip_into(&compressed, &mut out).map_err(|e| with_path(path, e))?;
        return Ok(Bytes::Owned(out));
    }
    // SAFETY: the map is read-only and private to this call; as with every
    // memory-mapped reader, a file truncated by another process while mapped
    // is undefined behaviour, which callers accept by reading files in place.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| io_error(path, e))?;
    Ok(Bytes::Mapped(map))
}

/// Hands an inflate buffer back for the next read on this thread (unless it
/// is too large to keep).
fn recycle(bytes: Bytes) {
    if let Bytes::Owned(buffer) = bytes {
        if buffer.capacity() <= KEEP_INFLATE_BUFFER {
            INFLATE_BUFFER.with(|cell| cell.replace(buffer));
        }
    }
}

/// Reads only the header of a NIfTI file (inflating just its start if gzipped).
pub fn read_header(path: &Path) -> Result<Header> {
    let mut file = File::open(path).map_err(|e| io_error(path, e))?;
    let mut start = Vec::with_capacity(4096);
    (&mut file)
        .take(2)
        .read_to_end(&mut start)
        .map_err(|e| io_error(path, e))?;
    let mut head = Vec::with_capacity(4096);
    if start == GZIP_MAGIC {
        let compressed = File::open(path).map_err(|e| io_error(path, e))?;
        // Enough for the header and typical extensions.
        flate2::read::MultiGzDecoder::new(compressed)
            .take(65536)
            .read_to_end(&mut head)
            .map_err(|e| with_path(path, corrupt(format!("gzip stream: {e}"))))?;
    } else {
        head.extend_from_slice(&start);
        (&mut file)
            .take(65534)
            .read_to_end(&mut head)
            .map_err(|e| io_error(path, e))?;
    }
    parse_header(&head).map_err(|e| with_path(path, e))
}

/// Reads a NIfTI file, or only `region` of it, as `(C, I, J, K)`.
///
/// For an uncompressed file only the bytes of the region are touched: a small
/// region is read with positioned reads of the slabs that hold it and decoded
/// on the calling thread; a large one is memory-mapped and decoded in parallel
/// on the process pool.
pub fn read(path: &Path, region: Option<Region>) -> Result<(Header, VolumeData)> {
    let file = File::open(path).map_err(|e| io_error(path, e))?;
    let mut head = vec![0u8; HEAD_BYTES];
    let n = read_up_to(&file, &mut head, 0).map_err(|e| io_error(path, e))?;
    head.truncate(n);
    if !head.starts_with(&GZIP_MAGIC) {
        let header = parse_header(&head).map_err(|e| with_path(path, e))?;
        // With extensions, the data offset may depend on bytes past `head`
        // (see `extension_bytes`): those rare files take the mapped path.
        if header.extension_bytes == 0 && head.get(header_size(&header)).is_none_or(|&b| b == 0) {
            let file_len = file.metadata().map_err(|e| io_error(path, e))?.len();
            let plan = Plan::new(&header, region, file_len).map_err(|e| with_path(path, e))?;
            if plan.direct() {
                let source = Source::File {
                    file: &file,
                    offset: header.data_offset() as u64,
                };
                let data =
                    decode_source(&header, &plan.layout, source).map_err(|e| with_path(path, e))?;
                return Ok((header, data));
            }
        }
    }
    drop(file);
    let bytes = load_bytes(path)?;
    let decoded = parse_header(&bytes).and_then(|header| {
        let data = crate::parallel::install(|| decode(&header, &bytes, region))?;
        Ok((header, data))
    });
    recycle(bytes);
    decoded.map_err(|e| with_path(path, e))
}

/// Bytes read first from an uncompressed file: the header and, usually, the
/// whole gap before the data.
const HEAD_BYTES: usize = 4096;

/// Output bytes up to which a region is read with positioned reads on the
/// calling thread when the pool has several threads: above it the parallel
/// decode of the mapped file wins. A 96^3 float32 patch (3.4 MiB) took 1.3 ms
/// direct against 1.1 ms mapped on two idle cores before the direct transpose
/// stopped thrashing L1 (see `transpose_tile_raw32`); after it, on two cores
/// shared with other work, 2.1 ms direct against 5-6 ms mapped, whose second
/// thread waits for a core.
const DIRECT_MAX_BYTES: usize = 4 << 20;

/// The same bound with a single-thread pool (as in `DataLoader` workers),
/// where the mapped decode has no parallelism to gain.
const DIRECT_MAX_BYTES_ONE_THREAD: usize = 16 << 20;

/// Bound on the slab buffer of a direct read, which also bounds the bytes
/// read per byte of output: a narrow region of wide slices is cheaper to map.
const DIRECT_MAX_BUFFER: usize = 4 << 20;

/// One positioned read (`pread`), which leaves the file's cursor alone.
#[cfg(unix)]
fn read_at(file: &File, buffer: &mut [u8], offset: u64) -> std::io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buffer, offset)
}

/// One read at `offset` (seek, then read) where `pread` is not available.
#[cfg(not(unix))]
fn read_at(mut file: &File, buffer: &mut [u8], offset: u64) -> std::io::Result<usize> {
    use std::io::Seek;
    file.seek(std::io::SeekFrom::Start(offset))?;
    file.read(buffer)
}

/// Fills `buffer` from `offset` on, or as much of it as the file holds;
/// returns the count.
fn read_up_to(file: &File, buffer: &mut [u8], offset: u64) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match read_at(file, &mut buffer[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

fn header_size(header: &Header) -> usize {
    if header.version == 1 {
        NIFTI1_HEADER_SIZE
    } else {
        NIFTI2_HEADER_SIZE
    }
}

/// A checked region of a file whose data fit in `file_len` bytes.
struct Plan {
    layout: Layout,
    voxel_size: usize,
}

impl Plan {
    fn new(header: &Header, region: Option<Region>, file_len: u64) -> Result<Self> {
        let layout = Layout {
            shape: header.spatial_shape(),
            channels: header.channels(),
            region: resolve_region(header, region)?,
        };
        let end = header
            .data_offset()
            .checked_add(header.data_len()?)
            .ok_or_else(|| corrupt("data size overflows"))?;
        if (file_len as usize) < end {
            return Err(corrupt(format!(
                "truncated data: the header needs {end} bytes, the file holds {file_len}"
            )));
        }
        Ok(Self {
            layout,
            voxel_size: header.data_type()?.size(),
        })
    }

    /// Whether positioned reads on this thread beat mapping and a parallel decode.
    fn direct(&self) -> bool {
        let [(i0, i1), (j0, j1), (k0, k1)] = self.layout.region;
        let n = self.voxel_size;
        let wanted = (i1 - i0) * (j1 - j0) * (k1 - k0) * n * self.layout.channels;
        let limit = if crate::parallel::num_threads() == 1 {
            DIRECT_MAX_BYTES_ONE_THREAD
        } else {
            DIRECT_MAX_BYTES
        };
        wanted <= limit && self.layout.slab_bytes(n) * TILE_K <= DIRECT_MAX_BUFFER
    }
}

/// The region asked for, or the whole volume, checked against its shape.
fn resolve_region(header: &Header, region: Option<Region>) -> Result<Region> {
    let shape = header.spatial_shape();
    match region {
        Some(r) => {
            for axis in 0..3 {
                let (a, b) = r[axis];
                if a >= b || b > shape[axis] {
                    return Err(Error::Shape(format!(
                        "region {r:?} is empty or outside the spatial shape {shape:?}"
                    )));
                }
            }
            Ok(r)
        }
        None => Ok([(0, shape[0]), (0, shape[1]), (0, shape[2])]),
    }
}

/// Decodes the data of `header` from the whole-file `bytes`, in parallel on
/// the current rayon pool (call it inside `parallel::install`).
pub fn decode(header: &Header, bytes: &[u8], region: Option<Region>) -> Result<VolumeData> {
    let region = resolve_region(header, region)?;
    let offset = header.data_offset();
    let len = header.data_len()?;
    let end = offset
        .checked_add(len)
        .ok_or_else(|| corrupt("data size overflows"))?;
    if bytes.len() < end {
        return Err(corrupt(format!(
            "truncated data: the header needs {end} bytes, the file holds {}",
            bytes.len()
        )));
    }
    let layout = Layout {
        shape: header.spatial_shape(),
        channels: header.channels(),
        region,
    };
    decode_source(header, &layout, Source::Memory(&bytes[offset..end]))
}

/// Where the data come from: the file's data bytes in memory, or the file.
#[derive(Clone, Copy)]
enum Source<'a> {
    /// Every data byte, from the first voxel on.
    Memory(&'a [u8]),
    /// An open file whose data start at `offset` (length already checked).
    File { file: &'a File, offset: u64 },
}

/// Decodes `layout`'s region from `source` into the dtype TorchIO gives it.
fn decode_source(header: &Header, layout: &Layout, source: Source<'_>) -> Result<VolumeData> {
    let swap = header.big_endian != cfg!(target_endian = "big");
    let scaling = header.scaling();
    let kind = header.data_type()?;
    // Memory sources are decoded on the pool (see `decode`), files on this thread.
    let parallel = matches!(source, Source::Memory(_));
    // Each conversion is compiled once per byte order (see `read_ne`).
    macro_rules! decode {
        ($t:ty, $raw:expr, |$v:ident| $convert:expr) => {
            if swap {
                layout.decode::<_, _, { std::mem::size_of::<$t>() }>(source, false, |b| {
                    let $v = <$t>::from_ne_bytes(read_ne::<_, true>(b));
                    $convert
                })?
            } else {
                layout.decode::<_, _, { std::mem::size_of::<$t>() }>(source, $raw, |b| {
                    let $v = <$t>::from_ne_bytes(read_ne::<_, false>(b));
                    $convert
                })?
            }
        };
    }
    macro_rules! raw {
        ($t:ty, $variant:ident) => {
            VolumeData::$variant(decode!($t, true, |v| v))
        };
    }
    macro_rules! widen {
        ($t:ty, $out:ty, $variant:ident) => {
            VolumeData::$variant(decode!($t, false, |v| <$out>::from(v)))
        };
    }
    macro_rules! scaled {
        ($t:ty, $out:ty, $variant:ident) => {{
            let (slope, inter) = scaling.unwrap_or((1.0, 0.0));
            VolumeData::$variant(decode!($t, false, |v| (v as f64 * slope + inter) as $out))
        }};
    }
    // niftilib (and so ITK, SimpleITK and TorchIO) reads stored non-finite
    // floats (NaN, +-Inf) as 0, before any scaling.
    macro_rules! finite_scaled {
        ($t:ty, $out:ty, $variant:ident) => {{
            let (slope, inter) = scaling.unwrap_or((1.0, 0.0));
            VolumeData::$variant(decode!($t, false, |v| {
                let v = if v.is_finite() { v } else { 0.0 };
                (v as f64 * slope + inter) as $out
            }))
        }};
    }
    Ok(match (kind, scaling.is_some()) {
        (DataType::U8, false) => raw!(u8, U8),
        (DataType::I8, false) => raw!(i8, I8),
        (DataType::I16, false) => raw!(i16, I16),
        (DataType::U16, false) => widen!(u16, i32, I32),
        (DataType::I32, false) => raw!(i32, I32),
        (DataType::U32, false) => widen!(u32, i64, I64),
        (DataType::I64, false) => raw!(i64, I64),
        (DataType::U64, false) => raw!(u64, U64),
        (DataType::F32, false) => {
            VolumeData::F32(zero_non_finite(decode!(f32, true, |v| v), parallel))
        }
        (DataType::F64, false) => {
            VolumeData::F64(zero_non_finite(decode!(f64, true, |v| v), parallel))
        }
        (DataType::U8, true) => scaled!(u8, f32, F32),
        (DataType::I8, true) => scaled!(i8, f32, F32),
        (DataType::I16, true) => scaled!(i16, f32, F32),
        (DataType::U16, true) => scaled!(u16, f32, F32),
        (DataType::I32, true) => scaled!(i32, f32, F32),
        (DataType::U32, true) => scaled!(u32, f32, F32),
        (DataType::I64, true) => scaled!(i64, f32, F32),
        (DataType::U64, true) => scaled!(u64, f32, F32),
        (DataType::F32, true) => finite_scaled!(f32, f32, F32),
        (DataType::F64, true) => finite_scaled!(f64, f64, F64),
    })
}

/// Float voxels of a decoded volume that are not finite.
trait NonFinite: Copy + Send + Sync {
    fn is_non_finite(self) -> bool;
}

impl NonFinite for f32 {
    #[inline(always)]
    fn is_non_finite(self) -> bool {
        !self.is_finite()
    }
}

impl NonFinite for f64 {
    #[inline(always)]
    fn is_non_finite(self) -> bool {
        !self.is_finite()
    }
}

/// Sets the non-finite voxels of `volume` to 0 (see `decode_source`), on the
/// current pool if `parallel`; a volume without any is only read.
fn zero_non_finite<T: NonFinite + Default>(mut volume: Array4<T>, parallel: bool) -> Array4<T> {
    const CHUNK: usize = 1 << 16;
    let fix = |chunk: &mut [T]| {
        // A test without an early exit vectorises; chunks are written only
        // where needed, and most files have no such voxel.
        if chunk.iter().fold(false, |any, v| any | v.is_non_finite()) {
            for v in chunk.iter_mut().filter(|v| v.is_non_finite()) {
                *v = T::default();
            }
        }
    };
    if let Some(values) = volume.as_slice_mut() {
        if parallel {
            values.par_chunks_mut(CHUNK).for_each(fix);
        } else {
            values.chunks_mut(CHUNK).for_each(fix);
        }
    }
    volume
}

/// The native-endian bytes of the value stored in `bytes` (`N` long): reversed
/// when the file's byte order is not the machine's.
///
/// `SWAP` is a constant so that each decode loop is specialised: without a
/// swap the conversion is a plain unaligned load the compiler can vectorise.
#[inline(always)]
fn read_ne<const N: usize, const SWAP: bool>(bytes: &[u8]) -> [u8; N] {
    let mut raw = [0u8; N];
    raw.copy_from_slice(&bytes[..N]);
    if SWAP {
        raw.reverse();
    }
    raw
}

thread_local! {
    /// Slab buffer of `Layout::decode_direct`, kept between calls.
    static SLAB_BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// I extent of the tiles `decode_direct` transposes.
const TILE_I: usize = 16;

/// Transposes a full `I x K` tile: `src` holds `K` slabs `slab` bytes apart,
/// each with `I` voxels along i; `dst` receives `I` runs of `K` voxels along
/// k, `stride` elements apart.
///
/// Every bound is a constant, so the copies compile to straight-line code
/// (variable-length runs became a `memmove` call each); `tile` is scratch
/// space that the caller reuses, so it is not zeroed for every tile.
#[inline(always)]
fn transpose_tile<O, F, const N: usize, const I: usize, const K: usize>(
    src: &[u8],
    slab: usize,
    dst: &mut [std::mem::MaybeUninit<O>],
    stride: usize,
    tile: &mut [[O; K]; I],
    convert: &F,
) where
    O: Copy,
    F: Fn(&[u8]) -> O,
{
    for kk in 0..K {
        let run = &src[kk * slab..kk * slab + I * N];
        for (row, raw) in tile.iter_mut().zip(run.chunks_exact(N)) {
            row[kk] = convert(raw);
        }
    }
    for (ii, values) in tile.iter().enumerate() {
        let at = ii * stride;
        for (slot, &value) in dst[at..at + K].iter_mut().zip(values) {
            slot.write(value);
        }
    }
}

/// Transposes a 4 x 4 matrix of 4-byte lanes held in four SSE2 rows: lane
/// `b` of row `a` in becomes lane `a` of row `b` out.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn transpose_4x4_epi32(rows: [std::arch::x86_64::__m128i; 4]) -> [std::arch::x86_64::__m128i; 4] {
    use std::arch::x86_64::{
        _mm_unpackhi_epi32, _mm_unpackhi_epi64, _mm_unpacklo_epi32, _mm_unpacklo_epi64,
    };
    let [r0, r1, r2, r3] = rows;
    // SAFETY: SSE2 is part of the x86_64 baseline, and the unpacks only move
    // lanes between registers (no memory is touched).
    unsafe {
        // Interleave the lanes of rows 0 and 1, and of rows 2 and 3 (lanes 0
        // and 1 of each, then lanes 2 and 3); pairing the 64-bit halves of
        // those interleavings gives the columns.
        let t0 = _mm_unpacklo_epi32(r0, r1);
        let t1 = _mm_unpacklo_epi32(r2, r3);
        let t2 = _mm_unpackhi_epi32(r0, r1);
        let t3 = _mm_unpackhi_epi32(r2, r3);
        [
            _mm_unpacklo_epi64(t0, t1),
            _mm_unpackhi_epi64(t0, t1),
            _mm_unpacklo_epi64(t2, t3),
            _mm_unpackhi_epi64(t2, t3),
        ]
    }
}

/// `transpose_tile` for voxels of 4 bytes copied as they are (`O` is 4 bytes
/// and the file's bytes are its native representation), with SSE2 4 x 4
/// transposes: a quarter of the loads and stores of the scalar tile.
#[inline(always)]
fn transpose_tile_raw32<O>(
    src: &[u8],
    slab: usize,
    dst: &mut [std::mem::MaybeUninit<O>],
    stride: usize,
) {
    let src = &src[..(TILE_K - 1) * slab + TILE_I * 4];
    let dst = &mut dst[..(TILE_I - 1) * stride + TILE_K];
    #[cfg(target_arch = "x86_64")]
    if std::mem::size_of::<O>() == 4 {
        use std::arch::x86_64::{__m128i, _mm_loadu_si128, _mm_storeu_si128};
        // i quads outside: the four output rows of a quad are finished before
        // the next four start. The rows are `stride` elements apart, often a
        // multiple of 4 KiB (a 96 x 96 plane of 4-byte voxels is 9 x 4 KiB), so
        // all TILE_I rows fall into one L1 set: with k quads outside, the 16
        // half-written lines evicted each other between their four stores.
        for iq in (0..TILE_I).step_by(4) {
            for kq in (0..TILE_K).step_by(4) {
                let at = kq * slab + iq * 4;
                // SAFETY: SSE2 is part of the x86_64 baseline. `src` was cut to hold
                // byte `(TILE_K - 1) * slab + TILE_I * 4 - 1`, and each load reads 16
                // bytes at `at + a * slab` with `kq + a < TILE_K` and `iq + 4 <=
                // TILE_I` (unaligned loads accept any address). `dst` was cut to hold
                // element `(TILE_I - 1) * stride + TILE_K - 1`; each store writes the
                // 16 bytes of elements `to..to + 4` with `iq + b < TILE_I` and `kq + 4
                // <= TILE_K`, and any bit pattern is a valid `O` (f32 or i32).
                unsafe {
                    // Rows a = k, lanes b = i in; rows b = i, lanes a = k out.
                    let rows = transpose_4x4_epi32(std::array::from_fn(|a| {
                        _mm_loadu_si128(src.as_ptr().add(at + a * slab).cast::<__m128i>())
                    }));
                    for (b, row) in rows.into_iter().enumerate() {
                        let to = (iq + b) * stride + kq;
                        _mm_storeu_si128(dst.as_mut_ptr().add(to).cast::<__m128i>(), row);
                    }
                }
            }
        }
        return;
    }
    for kk in 0..TILE_K {
        let run = &src[kk * slab..kk * slab + TILE_I * 4];
        for (ii, raw) in run.chunks_exact(4).enumerate() {
            let slot = &mut dst[ii * stride + kk];
            let bytes = [raw[0], raw[1], raw[2], raw[3]];
            // SAFETY: `O` is 4 bytes of plain data (f32 or i32: the only raw
            // 4-byte voxel types), for which every bit pattern is valid.
            unsafe { slot.as_mut_ptr().cast::<[u8; 4]>().write_unaligned(bytes) };
        }
    }
}

/// Voxels of 4 bytes in a 64-byte cache line: the width of the blocks of
/// such voxels that `decode_parallel` gathers, and of `gather_quad_raw32`.
const RAW32_BLOCK: usize = 16;

/// `decode_parallel` for voxels of `N` = 1 or 2 bytes copied as they are
/// (label maps, CT): the `16 / N` voxels along i that start each of `16 / N`
/// consecutive slabs in `src` (`slab` bytes apart) go to
/// `rows[ii][at..at + 16 / N]`.
///
/// On x86_64 the tile is transposed in SSE2 registers (16 x 16 bytes, or
/// 8 x 8 16-bit lanes): one 16-byte load and store per row where the scalar
/// path moves one voxel at a time to places a row apart (which made decoding
/// a 1 mm uint8 label map take longer than inflating it). Elsewhere `convert`
/// decodes the voxels one by one.
#[inline(always)]
fn gather_tile_narrow<O, F, const N: usize>(
    src: &[u8],
    slab: usize,
    rows: &mut [&mut [std::mem::MaybeUninit<O>]],
    at: usize,
    convert: &F,
) where
    F: Fn(&[u8]) -> O,
{
    let side = 16 / N;
    let src = &src[..(side - 1) * slab + 16];
    let rows = &mut rows[..side];
    #[cfg(target_arch = "x86_64")]
    if std::mem::size_of::<O>() == N && (N == 1 || N == 2) {
        use std::arch::x86_64::{__m128i, _mm_loadu_si128, _mm_storeu_si128};
        // SAFETY: SSE2 is part of the x86_64 baseline. `src` was cut to hold
        // byte `(side - 1) * slab + 15`, the last that the load of slab
        // `a < side` reads.
        let load =
            |a: usize| unsafe { _mm_loadu_si128(src.as_ptr().add(a * slab).cast::<__m128i>()) };
        let mut columns = [load(0); 16];
        if N == 1 {
            columns = transpose_16x16_epi8(std::array::from_fn(load));
        } else {
            columns[..8].copy_from_slice(&transpose_8x8_epi16(std::array::from_fn(load)));
        }
        for (row, column) in rows.iter_mut().zip(columns) {
            let dst = &mut row[at..at + side];
            // SAFETY: `dst` is `side` elements of `N` bytes, the 16 bytes the
            // unaligned store writes; any bit pattern is a valid `O` (the raw
            // 1- and 2-byte voxel types are integers).
            unsafe { _mm_storeu_si128(dst.as_mut_ptr().cast::<__m128i>(), column) };
        }
        return;
    }
    for a in 0..side {
        let run = &src[a * slab..a * slab + 16];
        for (row, raw) in rows.iter_mut().zip(run.chunks_exact(N)) {
            row[at + a].write(convert(raw));
        }
    }
}

/// One round of interleaving in a transpose of SSE2 rows: output unit
/// `g * $group + m` interleaves units `g * $group + m / 2` and
/// `g * $group + $group / 2 + m / 2` of `$units` (their low halves for even
/// `m`, their high halves for odd `m`), lane by lane with `$lo` / `$hi`.
#[cfg(target_arch = "x86_64")]
macro_rules! interleave_round {
    ($units:expr, $group:literal, $lo:ident, $hi:ident) => {
        std::array::from_fn(|n| {
            let (g, m) = (n / $group, n % $group);
            let first = g * $group + m / 2;
            let (a, b) = ($units[first], $units[first + $group / 2]);
            // SAFETY: SSE2 is part of the x86_64 baseline, and the unpacks
            // only move lanes between registers.
            unsafe {
                if m % 2 == 1 {
                    std::arch::x86_64::$hi(a, b)
                } else {
                    std::arch::x86_64::$lo(a, b)
                }
            }
        })
    };
}

/// Transposes an 8 x 8 matrix of 16-bit lanes held in eight SSE2 rows: lane
/// `c` of row `r` in becomes lane `r` of row `c` out (three rounds of
/// interleaving, as in [`transpose_16x16_epi8`]).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn transpose_8x8_epi16(rows: [std::arch::x86_64::__m128i; 8]) -> [std::arch::x86_64::__m128i; 8] {
    // Rows 2p, 2p + 1: columns 0-3 in unit 2p, 4-7 in unit 2p + 1.
    let pairs: [_; 8] = interleave_round!(rows, 2, _mm_unpacklo_epi16, _mm_unpackhi_epi16);
    // Rows 4q..4q + 4: columns 2m, 2m + 1 in unit 4q + m.
    let quads: [_; 8] = interleave_round!(pairs, 4, _mm_unpacklo_epi32, _mm_unpackhi_epi32);
    // All rows: column c in unit c.
    interleave_round!(quads, 8, _mm_unpacklo_epi64, _mm_unpackhi_epi64)
}

/// Transposes a 16 x 16 matrix of bytes held in sixteen SSE2 rows: byte `c`
/// of row `r` in becomes byte `r` of row `c` out.
///
/// Four rounds of interleaving, each doubling the width of the units that
/// hold one column: after bytes, a 16-bit unit holds a column of 2 rows;
/// after 16-bit units, 4 rows; after 32-bit units, 8; after 64-bit halves,
/// all 16, in column order.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn transpose_16x16_epi8(
    rows: [std::arch::x86_64::__m128i; 16],
) -> [std::arch::x86_64::__m128i; 16] {
    // Rows 2p, 2p + 1: columns 0-7 in unit 2p, 8-15 in unit 2p + 1.
    let pairs: [_; 16] = interleave_round!(rows, 2, _mm_unpacklo_epi8, _mm_unpackhi_epi8);
    // Rows 4q..4q + 4: columns 4m..4m + 4 in unit 4q + m.
    let quads: [_; 16] = interleave_round!(pairs, 4, _mm_unpacklo_epi16, _mm_unpackhi_epi16);
    // Rows 8o..8o + 8: columns 2p, 2p + 1 in unit 8o + p.
    let octets: [_; 16] = interleave_round!(quads, 8, _mm_unpacklo_epi32, _mm_unpackhi_epi32);
    // All rows: column c in unit c.
    interleave_round!(octets, 16, _mm_unpacklo_epi64, _mm_unpackhi_epi64)
}

/// Gathers four k slabs of one whole block of raw 4-byte voxels for
/// `decode_parallel`: the `RAW32_BLOCK` voxels along i that start each of the
/// 4 slabs in `src` (`slab` bytes apart) go to `rows[ii][at..at + 4]`, where
/// `rows` holds the block's output rows (voxel `ii` of the block belongs to
/// `rows[ii]`).
///
/// On x86_64 the voxels are copied as they are (`O` is 4 bytes and the file's
/// bytes are its native representation) with SSE2 4 x 4 transposes: a 16-byte
/// store of 4 voxels where the scalar gather stores 1, and the 4 slabs' cache
/// lines read whole at once. Elsewhere `convert` decodes them one by one.
#[inline(always)]
fn gather_quad_raw32<O, F>(
    src: &[u8],
    slab: usize,
    rows: &mut [&mut [std::mem::MaybeUninit<O>]],
    at: usize,
    convert: &F,
) where
    F: Fn(&[u8]) -> O,
{
    let src = &src[..3 * slab + RAW32_BLOCK * 4];
    let rows = &mut rows[..RAW32_BLOCK];
    #[cfg(target_arch = "x86_64")]
    if std::mem::size_of::<O>() == 4 {
        use std::arch::x86_64::{__m128i, _mm_loadu_si128, _mm_storeu_si128};
        for iq in (0..RAW32_BLOCK).step_by(4) {
            // Rows a = k, lanes b = i in; rows b = i, lanes a = k out.
            // SAFETY: SSE2 is part of the x86_64 baseline. `src` was cut to hold
            // byte `3 * slab + RAW32_BLOCK * 4 - 1`, and each load reads the 16
            // bytes at `a * slab + iq * 4` with `a < 4` and `iq + 4 <=
            // RAW32_BLOCK` (unaligned loads accept any address).
            let quad = unsafe {
                transpose_4x4_epi32(std::array::from_fn(|a| {
                    _mm_loadu_si128(src.as_ptr().add(a * slab + iq * 4).cast::<__m128i>())
                }))
            };
            for (row, lanes) in rows[iq..iq + 4].iter_mut().zip(quad) {
                let dst = &mut row[at..at + 4];
                // SAFETY: `dst` is 4 elements of 4 bytes, the 16 bytes the
                // unaligned store writes; any bit pattern is a valid `O` (f32
                // or i32, the raw 4-byte voxel types).
                unsafe { _mm_storeu_si128(dst.as_mut_ptr().cast::<__m128i>(), lanes) };
            }
        }
        return;
    }
    for a in 0..4 {
        let run = &src[a * slab..a * slab + RAW32_BLOCK * 4];
        for (row, raw) in rows.iter_mut().zip(run.chunks_exact(4)) {
            row[at + a].write(convert(raw));
        }
    }
}

/// `transpose_tile` for an edge tile of `planes x kn` voxels.
#[inline(never)]
fn transpose_partial<O, F, const N: usize>(
    src: &[u8],
    slab: usize,
    dst: &mut [std::mem::MaybeUninit<O>],
    stride: usize,
    planes: usize,
    kn: usize,
    convert: &F,
) where
    O: Copy,
    F: Fn(&[u8]) -> O,
{
    for kk in 0..kn {
        let run = &src[kk * slab..kk * slab + planes * N];
        for (ii, raw) in run.chunks_exact(N).enumerate() {
            dst[ii * stride + kk].write(convert(raw));
        }
    }
}

/// Where the voxels of a region sit in Fortran-ordered file data.
struct Layout {
    shape: [usize; 3],
    channels: usize,
    region: Region,
}

impl Layout {
    /// Bytes from the first to the last voxel of the region in one `k` slab:
    /// what a positioned read of that slab fetches.
    fn slab_bytes(&self, voxel_size: usize) -> usize {
        let [(i0, i1), (j0, j1), _] = self.region;
        ((j1 - j0 - 1) * self.shape[0] + (i1 - i0)) * voxel_size
    }

    /// Decodes the region from `source` into a C-order `(C, ri, rj, rk)` array.
    ///
    /// `raw` says that `convert` only reinterprets the bytes (no swap, no
    /// widening, no scaling), which lets 4-byte voxels take a SIMD transpose.
    fn decode<O, F, const N: usize>(
        &self,
        source: Source<'_>,
        raw: bool,
        convert: F,
    ) -> Result<Array4<O>>
    where
        O: Copy + Default + Send + Sync,
        F: Fn(&[u8]) -> O + Sync,
    {
        match source {
            Source::Memory(data) => self.decode_parallel::<O, F, N>(data, raw, convert),
            Source::File { file, offset } => {
                self.decode_direct::<O, F, N>(file, offset, raw, convert)
            }
        }
    }

    /// Decodes the region with positioned reads of `TILE_K` slabs at a time
    /// into one buffer, each transposed into the output before the next read.
    ///
    /// A slab read fetches the rows `j0..j1` whole (the bytes between the
    /// region's runs come along), which costs less than mapping the file:
    /// faulting the pages in and tearing the map down again took longer than
    /// copying them.
    fn decode_direct<O, F, const N: usize>(
        &self,
        file: &File,
        offset: u64,
        raw: bool,
        convert: F,
    ) -> Result<Array4<O>>
    where
        O: Copy + Default,
        F: Fn(&[u8]) -> O,
    {
        let [_, _, (k0, k1)] = self.region;
        let slab = self.slab_bytes(N);
        // The slab buffer is reused across calls on this thread: a fresh one
        // of up to DIRECT_MAX_BUFFER bytes was zeroed (and page-faulted in) on
        // every read. Every byte a transpose reads is first filled by a read.
        let mut buffer = SLAB_BUFFER.with(|cell| cell.take());
        buffer.resize(slab * TILE_K.min(k1 - k0), 0);
        let result = self.decode_direct_into::<O, F, N>(file, offset, raw, convert, &mut buffer);
        SLAB_BUFFER.with(|cell| cell.replace(buffer));
        result
    }

    /// [`Layout::decode_direct`] with the slab buffer given.
    fn decode_direct_into<O, F, const N: usize>(
        &self,
        file: &File,
        offset: u64,
        raw: bool,
        convert: F,
        buffer: &mut [u8],
    ) -> Result<Array4<O>>
    where
        O: Copy + Default,
        F: Fn(&[u8]) -> O,
    {
        let [(i0, i1), (j0, j1), (k0, k1)] = self.region;
        let (ri, rj, rk) = (i1 - i0, j1 - j0, k1 - k0);
        let [nx, ny, nz] = self.shape;
        let slab = self.slab_bytes(N);
        let row = nx * N;
        let mut output = Array4::<O>::uninit((self.channels, ri, rj, rk));
        let out = output
            .as_slice_mut()
            .ok_or_else(|| Error::InvalidArgument("output is not contiguous".into()))?;
        let plane = rj * rk;
        let raw32 = raw && N == 4 && std::mem::size_of::<O>() == 4;
        let mut tile = [[O::default(); TILE_K]; TILE_I];
        for c in 0..self.channels {
            let channel = &mut out[c * ri * plane..(c + 1) * ri * plane];
            for kb in (0..rk).step_by(TILE_K) {
                let kn = TILE_K.min(rk - kb);
                for (kk, slab_buffer) in buffer.chunks_exact_mut(slab).take(kn).enumerate() {
                    let voxel = i0 + nx * (j0 + ny * (k0 + kb + kk + nz * c));
                    let at = offset + (voxel * N) as u64;
                    let n = read_up_to(file, slab_buffer, at)
                        .map_err(|e| corrupt(format!("reading the data: {e}")))?;
                    if n < slab {
                        return Err(corrupt(format!(
                            "truncated data: {n} of {slab} bytes at offset {at}"
                        )));
                    }
                }
                for j in 0..rj {
                    for ib in (0..ri).step_by(TILE_I) {
                        let src = &buffer[j * row + ib * N..];
                        let dst = &mut channel[ib * plane + j * rk + kb..];
                        let planes = TILE_I.min(ri - ib);
                        if planes == TILE_I && kn == TILE_K && raw32 {
                            transpose_tile_raw32(src, slab, dst, plane);
                        } else if planes == TILE_I && kn == TILE_K {
                            transpose_tile::<O, F, N, TILE_I, TILE_K>(
                                src, slab, dst, plane, &mut tile, &convert,
                            );
                        } else {
                            transpose_partial::<O, F, N>(
                                src, slab, dst, plane, planes, kn, &convert,
                            );
                        }
                    }
                }
            }
        }
        // SAFETY: the loops above write every element: each channel, each k
        // block `kb..kb + kn` covering `0..rk`, each j in `0..rj`, and each i
        // block `ib..ib + planes` covering `0..ri`; an early return on a read
        // error drops the array without reading it.
        Ok(unsafe { output.assume_init() })
    }

    /// Decodes the region from the file's data bytes in memory, in parallel.
    ///
    /// The file holds i fastest, the output k fastest, so every voxel moves
    /// across both layouts' largest strides. Rows `j` are done one at a time,
    /// each whole: for a block of `B` output planes (`B` voxels fill a 64-byte
    /// cache line of a file row) the block's run is gathered from every k
    /// slab into a tile that stays in L1, then each plane's output row is
    /// written at once. Every file row is thus read once, front to back, and
    /// every output row written once; consecutive rows of a slab (and of a
    /// plane) are adjacent, so each thread's reads and writes advance through
    /// memory in order. Tasks own ranges of rows.
    ///
    /// `raw` is as for [`Layout::decode`]. Whole blocks of raw 4-byte voxels
    /// (unscaled float32 or int32 in the machine's byte order: most files) skip
    /// the tile: SSE2 transposes gather four k slabs at a time straight into
    /// the block's 16 output rows (see `gather_quad_raw32`), and the last
    /// `rk % 4` slabs go one voxel at a time. On the MNI152 T1 the scalar
    /// gather's one store per voxel, then the tile's copy, were most of the
    /// decode; storing each transposed quad straight into its output row beat
    /// transposing into the tile and copying that (medians on one thread:
    /// 10.5 ms against 11.7 ms, 13.6 ms for the scalar gather). The narrower
    /// last block and every other voxel type keep the tile and `convert`.
    fn decode_parallel<O, F, const N: usize>(
        &self,
        data: &[u8],
        raw: bool,
        convert: F,
    ) -> Result<Array4<O>>
    where
        O: Copy + Default + Send + Sync,
        F: Fn(&[u8]) -> O + Sync,
    {
        let [(i0, i1), (j0, j1), (k0, k1)] = self.region;
        let (ri, rj, rk) = (i1 - i0, j1 - j0, k1 - k0);
        let [nx, ny, nz] = self.shape;
        let mut output = Array4::<O>::uninit((self.channels, ri, rj, rk));
        let plane = rj * rk;
        let block = (64 / N.max(1)).max(1);
        // Bytes from a voxel of the file to the same voxel of the next k slab.
        let slab_stride = nx * ny * N;
        let raw32 = raw && N == 4 && std::mem::size_of::<O>() == 4;
        // 1- and 2-byte voxels copied as they are go through square tiles of
        // one 16-byte register per row (`gather_tile_narrow`).
        let narrow = raw && (N == 1 || N == 2) && std::mem::size_of::<O>() == N;
        let side = 16 / N;
        let Some(out) = output.as_slice_mut() else {
            return Err(Error::Shape(
                "freshly allocated output is not contiguous".into(),
            ));
        };
        if plane == 0 || ri == 0 {
            // SAFETY: the array has no elements.
            return Ok(unsafe { output.assume_init() });
        }
        let rows_per_task = rj.div_ceil(ROW_RANGES).max(1);
        let ranges = rj.div_ceil(rows_per_task);
        let mut tasks: Vec<RowTask<'_, O>> = Vec::new();
        for (c, channel) in out.chunks_mut(ri * plane).enumerate() {
            let first = tasks.len();
            for r in 0..ranges {
                tasks.push((c, r * rows_per_task, Vec::with_capacity(ri)));
            }
            for plane_rows in channel.chunks_mut(plane) {
                for (r, rows) in plane_rows.chunks_mut(rows_per_task * rk).enumerate() {
                    tasks[first + r].2.push(rows);
                }
            }
        }
        tasks
            .into_par_iter()
            .for_each_init(Vec::new, |tile: &mut Vec<O>, (c, jb, mut planes)| {
                tile.resize(block * rk, O::default());
                let rows = planes.first().map_or(0, |p| p.len() / rk);
                for j in 0..rows {
                    let row = i0 + nx * (j0 + jb + j + ny * (k0 + nz * c));
                    for ib in (0..ri).step_by(block) {
                        let width = block.min(ri - ib);
                        let block_planes = &mut planes[ib..ib + width];
                        if narrow && width % side == 0 {
                            let tiles_end = rk - rk % side;
                            for kt in (0..tiles_end).step_by(side) {
                                let start = (row + ib + nx * ny * kt) * N;
                                for a in 0..side {
                                    let ahead = start + a * slab_stride + ROWS_AHEAD * nx * N;
                                    prefetch(data.as_ptr().wrapping_add(ahead));
                                }
                                for sub in (0..width).step_by(side) {
                                    gather_tile_narrow::<O, F, N>(
                                        &data[start + sub * N..],
                                        slab_stride,
                                        &mut block_planes[sub..sub + side],
                                        j * rk + kt,
                                        &convert,
                                    );
                                }
                            }
                            for k in tiles_end..rk {
                                let voxel = row + ib + nx * ny * k;
                                let run = &data[voxel * N..(voxel + width) * N];
                                for (plane_rows, raw) in
                                    block_planes.iter_mut().zip(run.chunks_exact(N))
                                {
                                    plane_rows[j * rk + k].write(convert(raw));
                                }
                            }
                            continue;
                        }
                        if raw32 && width == RAW32_BLOCK {
                            let quads_end = rk - rk % 4;
                            for kq in (0..quads_end).step_by(4) {
                                let start = (row + ib + nx * ny * kq) * N;
                                for a in 0..4 {
                                    let ahead = start + a * slab_stride + ROWS_AHEAD * nx * N;
                                    prefetch(data.as_ptr().wrapping_add(ahead));
                                }
                                let src = &data[start..];
                                let at = j * rk + kq;
                                gather_quad_raw32(src, slab_stride, block_planes, at, &convert);
                            }
                            for k in quads_end..rk {
                                let voxel = row + ib + nx * ny * k;
                                prefetch(data.as_ptr().wrapping_add((voxel + ROWS_AHEAD * nx) * N));
                                let run = &data[voxel * N..(voxel + width) * N];
                                for (plane_rows, raw) in
                                    block_planes.iter_mut().zip(run.chunks_exact(N))
                                {
                                    plane_rows[j * rk + k].write(convert(raw));
                                }
                            }
                            continue;
                        }
                        for k in 0..rk {
                            let voxel = row + ib + nx * ny * k;
                            prefetch(data.as_ptr().wrapping_add((voxel + ROWS_AHEAD * nx) * N));
                            let run = &data[voxel * N..(voxel + width) * N];
                            for (ii, raw) in run.chunks_exact(N).enumerate() {
                                tile[ii * rk + k] = convert(raw);
                            }
                        }
                        for (plane_rows, values) in
                            block_planes.iter_mut().zip(tile.chunks_exact(rk))
                        {
                            let dst = &mut plane_rows[j * rk..(j + 1) * rk];
                            for (slot, &value) in dst.iter_mut().zip(values) {
                                slot.write(value);
                            }
                        }
                    }
                }
            });
        // SAFETY: the tasks cover every channel and every range of rows of
        // every plane, and each writes all `rk` voxels of its rows: for every
        // row j, each i block `ib..ib + width` (the blocks cover `0..ri`) is
        // written whole, either from the tile (`0..rk` of each plane) or, for
        // a whole block of raw 4-byte voxels, by the quads `0..rk - rk % 4`
        // (`gather_quad_raw32` writes 4 voxels of all `RAW32_BLOCK` planes)
        // and then one voxel at a time for `rk - rk % 4..rk`.
        Ok(unsafe { output.assume_init() })
    }
}

/// A task of `decode_parallel`: channel, first row, and the task's rows of
/// every output plane.
type RowTask<'a, O> = (usize, usize, Vec<&'a mut [std::mem::MaybeUninit<O>]>);

/// Row ranges (tasks) per channel in `decode_parallel`.
const ROW_RANGES: usize = 16;
/// Rows (along j) ahead of the current one whose file bytes `decode_parallel`
/// asks the cache for: a task reads from every k slab at once, far more
/// streams than the hardware prefetchers follow.
const ROWS_AHEAD: usize = 2;

/// Options for writing a NIfTI file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WriteOptions {
    /// gzip-compress the file (libdeflate level); `None` writes a plain `.nii`.
    pub compression: Option<i32>,
    /// Write a NIfTI-2 header instead of NIfTI-1.
    pub nifti2: bool,
}

/// NIfTI datatype code and bit count of a voxel type.
pub trait NiftiVoxel: Voxel {
    /// datatype code
    const CODE: i16;
    /// bytes per voxel
    const SIZE: usize;
    /// little-endian bytes of the value, written into `out`
    fn write_le(self, out: &mut [u8]);
}

macro_rules! impl_nifti_voxel {
    ($t:ty, $code:expr) => {
        impl NiftiVoxel for $t {
            const CODE: i16 = $code;
            const SIZE: usize = std::mem::size_of::<$t>();
            #[inline(always)]
            fn write_le(self, out: &mut [u8]) {
                out.copy_from_slice(&self.to_le_bytes());
            }
        }
    };
}

impl_nifti_voxel!(u8, 2);
impl_nifti_voxel!(i16, 4);
impl_nifti_voxel!(i32, 8);
impl_nifti_voxel!(f32, 16);
impl_nifti_voxel!(f64, 64);
impl_nifti_voxel!(i64, 1024);

/// Quaternion `(b, c, d)`, qfac and zooms of the rotation-zoom part of `affine`
/// (the nearest rotation, via polar decomposition by Newton iteration).
#[allow(clippy::needless_range_loop)]
fn affine_to_quaternion(affine: &[[f64; 4]; 4]) -> ([f64; 3], f64, [f64; 3]) {
    let mut m = [[0.0; 3]; 3];
    let mut zooms = [0.0; 3];
    for c in 0..3 {
        zooms[c] = (0..3)
            .map(|r| affine[r][c] * affine[r][c])
            .sum::<f64>()
            .sqrt();
        let z = if zooms[c] > 0.0 { zooms[c] } else { 1.0 };
        for r in 0..3 {
            m[r][c] = affine[r][c] / z;
        }
    }
    let det = |m: &[[f64; 3]; 3]| {
        m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
            - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
    };
    let mut qfac = 1.0;
    if det(&m) < 0.0 {
        qfac = -1.0;
        for row in m.iter_mut() {
            row[2] = -row[2];
        }
        zooms[2] = zooms[2].abs();
    }
    // Polar decomposition: R <- (R + R^-T) / 2 converges to the nearest rotation.
    for _ in 0..20 {
        let d = det(&m);
        if d.abs() < 1e-12 {
            m = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
            break;
        }
        // Inverse transpose = cofactor matrix / det.
        let mut cof = [[0.0; 3]; 3];
        for r in 0..3 {
            for c in 0..3 {
                let (r1, r2) = ((r + 1) % 3, (r + 2) % 3);
                let (c1, c2) = ((c + 1) % 3, (c + 2) % 3);
                cof[r][c] = (m[r1][c1] * m[r2][c2] - m[r1][c2] * m[r2][c1]) / d;
            }
        }
        let mut change = 0.0f64;
        for r in 0..3 {
            for c in 0..3 {
                let next = 0.5 * (m[r][c] + cof[r][c]);
                change = change.max((next - m[r][c]).abs());
                m[r][c] = next;
            }
        }
        if change < 1e-15 {
            break;
        }
    }
    let trace = m[0][0] + m[1][1] + m[2][2];
    let (a, b, c, d) = if trace > 0.0 {
        let s = 0.5 / (trace + 1.0).sqrt();
        (
            0.25 / s,
            (m[2][1] - m[1][2]) * s,
            (m[0][2] - m[2][0]) * s,
            (m[1][0] - m[0][1]) * s,
        )
    } else if m[0][0] > m[1][1] && m[0][0] > m[2][2] {
        let s = 2.0 * (1.0 + m[0][0] - m[1][1] - m[2][2]).sqrt();
        (
            (m[2][1] - m[1][2]) / s,
            0.25 * s,
            (m[0][1] + m[1][0]) / s,
            (m[0][2] + m[2][0]) / s,
        )
    } else if m[1][1] > m[2][2] {
        let s = 2.0 * (1.0 + m[1][1] - m[0][0] - m[2][2]).sqrt();
        (
            (m[0][2] - m[2][0]) / s,
            (m[0][1] + m[1][0]) / s,
            0.25 * s,
            (m[1][2] + m[2][1]) / s,
        )
    } else {
        let s = 2.0 * (1.0 + m[2][2] - m[0][0] - m[1][1]).sqrt();
        (
            (m[1][0] - m[0][1]) / s,
            (m[0][2] + m[2][0]) / s,
            (m[1][2] + m[2][1]) / s,
            0.25 * s,
        )
    };
    // NIfTI stores b, c, d with a >= 0.
    let sign = if a < 0.0 { -1.0 } else { 1.0 };
    ([b * sign, c * sign, d * sign], qfac, zooms)
}

/// Builds the header bytes for a `(C, I, J, K)` volume of voxel type `T`.
#[allow(clippy::needless_range_loop)]
fn header_bytes<T: NiftiVoxel>(
    shape: [usize; 4],
    affine: &[[f64; 4]; 4],
    nifti2: bool,
) -> Result<Vec<u8>> {
    let [channels, ni, nj, nk] = shape;
    // Multichannel volumes are 5D (X, Y, Z, 1, C) vectors, as TorchIO writes them.
    let dims: Vec<i64> = if channels > 1 {
        vec![5, ni as i64, nj as i64, nk as i64, 1, channels as i64, 1, 1]
    } else {
        vec![3, ni as i64, nj as i64, nk as i64, 1, 1, 1, 1]
    };
    if !nifti2 && dims.iter().any(|&d| d > i64::from(i16::MAX)) {
        return Err(Error::InvalidArgument(format!(
            "shape {shape:?} does not fit a NIfTI-1 header (extents <= 32767); write NIfTI-2"
        )));
    }
    if affine.iter().flatten().any(|v| !v.is_finite()) {
        return Err(Error::InvalidArgument(
            "affine holds non-finite values".into(),
        ));
    }
    let (quatern, qfac, zooms) = affine_to_quaternion(affine);
    let intent: i32 = if channels > 1 { 1007 } else { 0 };
    let mut pixdim = [qfac, zooms[0], zooms[1], zooms[2], 1.0, 1.0, 1.0, 1.0];
    if channels > 1 {
        pixdim[4] = 1.0;
    }
    let (size, offset) = if nifti2 {
        (NIFTI2_HEADER_SIZE, 544)
    } else {
        (NIFTI1_HEADER_SIZE, 352)
    };
    let mut h = vec![0u8; offset];
    let put =
        |h: &mut Vec<u8>, at: usize, bytes: &[u8]| h[at..at + bytes.len()].copy_from_slice(bytes);
    put(&mut h, 0, &(size as i32).to_le_bytes());
    let xyzt_units = 2i32 + 8; // mm and seconds
    if nifti2 {
        put(&mut h, 4, b"n+2\0\r\n\x1a\n");
        put(&mut h, 12, &T::CODE.to_le_bytes());
        put(&mut h, 14, &((T::SIZE * 8) as i16).to_le_bytes());
        for (n, d) in dims.iter().enumerate() {
            put(&mut h, 16 + 8 * n, &d.to_le_bytes());
        }
        for (n, p) in pixdim.iter().enumerate() {
            put(&mut h, 104 + 8 * n, &p.to_le_bytes());
        }
        put(&mut h, 168, &(offset as i64).to_le_bytes());
        put(&mut h, 176, &1.0f64.to_le_bytes());
        put(&mut h, 344, &1i32.to_le_bytes());
        put(&mut h, 348, &1i32.to_le_bytes());
        for (n, q) in quatern
            .iter()
            .chain(&[affine[0][3], affine[1][3], affine[2][3]])
            .enumerate()
        {
            put(&mut h, 352 + 8 * n, &q.to_le_bytes());
        }
        for r in 0..3 {
            for c in 0..4 {
                put(&mut h, 400 + 32 * r + 8 * c, &affine[r][c].to_le_bytes());
            }
        }
        put(&mut h, 500, &xyzt_units.to_le_bytes());
        put(&mut h, 504, &intent.to_le_bytes());
    } else {
        put(&mut h, 38, b"r");
        for (n, d) in dims.iter().enumerate() {
            put(&mut h, 40 + 2 * n, &(*d as i16).to_le_bytes());
        }
        put(&mut h, 68, &(intent as i16).to_le_bytes());
        put(&mut h, 70, &T::CODE.to_le_bytes());
        put(&mut h, 72, &((T::SIZE * 8) as i16).to_le_bytes());
        for (n, p) in pixdim.iter().enumerate() {
            put(&mut h, 76 + 4 * n, &(*p as f32).to_le_bytes());
        }
        put(&mut h, 108, &(offset as f32).to_le_bytes());
        put(&mut h, 112, &1.0f32.to_le_bytes());
        h[123] = xyzt_units as u8;
        put(&mut h, 252, &1i16.to_le_bytes());
        put(&mut h, 254, &1i16.to_le_bytes());
        for (n, q) in quatern
            .iter()
            .chain(&[affine[0][3], affine[1][3], affine[2][3]])
            .enumerate()
        {
            put(&mut h, 256 + 4 * n, &(*q as f32).to_le_bytes());
        }
        for r in 0..3 {
            for c in 0..4 {
                put(
                    &mut h,
                    280 + 16 * r + 4 * c,
                    &(affine[r][c] as f32).to_le_bytes(),
                );
            }
        }
        put(&mut h, 344, b"n+1\0");
    }
    Ok(h)
}

/// Writes a `(C, I, J, K)` volume with its affine as NIfTI (sform and qform
/// both set, code 1; 5D vector intent for several channels).
pub fn write<T: NiftiVoxel>(
    path: &Path,
    volume: ArrayView4<'_, T>,
    affine: &[[f64; 4]; 4],
    options: WriteOptions,
) -> Result<()> {
    let (channels, ni, nj, nk) = volume.dim();
    if volume.is_empty() {
        return Err(Error::Empty(format!(
            "cannot write an empty volume of shape {:?}",
            volume.shape()
        )));
    }
    let mut bytes = header_bytes::<T>([channels, ni, nj, nk], affine, options.nifti2)?;
    let offset = bytes.len();
    bytes.resize(offset + volume.len() * T::SIZE, 0);
    // Fortran order: x fastest. One task per (channel, z) slab of the file.
    let slab = ni * nj * T::SIZE;
    bytes[offset..]
        .par_chunks_mut(slab)
        .enumerate()
        .for_each(|(index, out)| {
            let (c, k) = (index / nk, index % nk);
            for j in 0..nj {
                for i in 0..ni {
                    let at = (i + ni * j) * T::SIZE;
                    volume[[c, i, j, k]].write_le(&mut out[at..at + T::SIZE]);
                }
            }
        });
    let write_error =
        |e: std::io::Error| Error::InvalidArgument(format!("cannot write {}: {e}", path.display()));
    let mut file = File::create(path).map_err(write_error)?;
    match options.compression {
        Some(level) => {
            let level = libdeflater::CompressionLvl::new(level.clamp(0, 12)).map_err(|_| {
                Error::InvalidArgument(format!("invalid compression level {level}"))
            })?;
            let mut compressor = libdeflater::Compressor::new(level);
            let mut out = vec![0u8; compressor.gzip_compress_bound(bytes.len())];
            let n = compressor.gzip_compress(&bytes, &mut out).map_err(|e| {
                Error::InvalidArgument(format!("cannot compress {}: {e:?}", path.display()))
            })?;
            file.write_all(&out[..n]).map_err(write_error)?;
        }
        None => file.write_all(&bytes).map_err(write_error)?,
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn temp_path(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("torchvox-nifti-{}-{name}", std::process::id()))
    }

    fn ramp() -> Array4<f32> {
        Array4::from_shape_fn((2, 5, 4, 3), |(c, i, j, k)| {
            (c * 1000 + i * 100 + j * 10 + k) as f32
        })
    }

    #[test]
    fn write_then_read_round_trips_every_version_and_compression() {
        let volume = ramp();
        let affine = [
            [0.0, -2.0, 0.0, 10.0],
            [1.5, 0.0, 0.0, -3.0],
            [0.0, 0.0, 3.0, 7.0],
            [0.0, 0.0, 0.0, 1.0],
        ];
        for (n, (compression, nifti2)) in [
            (None, false),
            (Some(6), false),
            (None, true),
            (Some(1), true),
        ]
        .into_iter()
        .enumerate()
        {
            let path = temp_path(&format!("rt{n}.nii"));
            write(
                &path,
                volume.view(),
                &affine,
                WriteOptions {
                    compression,
                    nifti2,
                },
            )
            .unwrap();
            let (header, data) = read(&path, None).unwrap();
            assert_eq!(header.version, if nifti2 { 2 } else { 1 });
            assert_eq!(data, VolumeData::F32(volume.clone()));
            assert_eq!(header.affine().unwrap(), affine);
            let q = header.qform_affine().unwrap();
            for r in 0..4 {
                for c in 0..4 {
                    assert!((q[r][c] - affine[r][c]).abs() < 1e-5, "{q:?}");
                }
            }
            let (_, part) = read(&path, Some([(1, 4), (0, 2), (2, 3)])).unwrap();
            let expected = volume.slice(ndarray::s![.., 1..4, 0..2, 2..3]).to_owned();
            assert_eq!(part, VolumeData::F32(expected));
            assert_eq!(read_header(&path).unwrap(), header);
            std::fs::remove_file(&path).unwrap();
        }
    }

    /// Regions read with positioned reads (full SIMD tiles, edge tiles, several
    /// channels) equal the slices of the written volume, and the decode of the
    /// whole file in memory agrees.
    #[test]
    fn direct_region_reads_match_slices_for_every_tile_shape() {
        fn check<T: NiftiVoxel + std::fmt::Debug>(
            name: &str,
            volume: Array4<T>,
            wrap: fn(Array4<T>) -> VolumeData,
        ) {
            let identity = [
                [1.0, 0.0, 0.0, 0.0],
                [0.0, 1.0, 0.0, 0.0],
                [0.0, 0.0, 1.0, 0.0],
                [0.0, 0.0, 0.0, 1.0],
            ];
            let path = temp_path(name);
            let options = WriteOptions {
                compression: None,
                nifti2: false,
            };
            write(&path, volume.view(), &identity, options).unwrap();
            let (_, ni, nj, nk) = volume.dim();
            for region in [
                [(0, ni), (0, nj), (0, nk)],
                [(1, 33), (2, 19), (3, 35)],
                [(5, 6), (0, nj), (7, 8)],
                [(3, 37), (4, 5), (0, 34)],
            ] {
                let [(i0, i1), (j0, j1), (k0, k1)] = region;
                let expected = volume
                    .slice(ndarray::s![.., i0..i1, j0..j1, k0..k1])
                    .to_owned();
                let (header, data) = read(&path, Some(region)).unwrap();
                assert_eq!(data, wrap(expected), "{name} {region:?}");
                let bytes = std::fs::read(&path).unwrap();
                let in_memory = crate::parallel::install(|| decode(&header, &bytes, Some(region)));
                assert_eq!(in_memory.unwrap(), data, "{name} {region:?}");
            }
            std::fs::remove_file(&path).unwrap();
        }
        let shape = (2, 37, 21, 35);
        let value =
            |(c, i, j, k): (usize, usize, usize, usize)| c * 100_000 + i * 2_000 + j * 50 + k;
        check(
            "tiles_f32.nii",
            Array4::from_shape_fn(shape, |x| value(x) as f32),
            VolumeData::F32,
        );
        check(
            "tiles_i32.nii",
            Array4::from_shape_fn(shape, |x| value(x) as i32 - 7),
            VolumeData::I32,
        );
        check(
            "tiles_i16.nii",
            Array4::from_shape_fn(shape, |x| (value(x) % 30_000) as i16),
            VolumeData::I16,
        );
        check(
            "tiles_f64.nii",
            Array4::from_shape_fn(shape, |x| value(x) as f64 / 3.0),
            VolumeData::F64,
        );
        check(
            "tiles_u8.nii",
            Array4::from_shape_fn(shape, |x| (value(x) % 251) as u8),
            VolumeData::U8,
        );
    }

    const IDENTITY: [[f64; 4]; 4] = [
        [1.0, 0.0, 0.0, 0.0],
        [0.0, 1.0, 0.0, 0.0],
        [0.0, 0.0, 1.0, 0.0],
        [0.0, 0.0, 0.0, 1.0],
    ];

    /// A little-endian NIfTI-1 file of `shape` whose voxel at file index `n`
    /// holds `value(n)`, with `scaling` (slope, intercept) written if given.
    fn file_bytes<T: NiftiVoxel>(
        shape: [usize; 4],
        affine: &[[f64; 4]; 4],
        scaling: Option<(f32, f32)>,
        value: impl Fn(usize) -> T,
    ) -> Vec<u8> {
        let mut bytes = header_bytes::<T>(shape, affine, false).unwrap();
        if let Some((slope, inter)) = scaling {
            bytes[112..116].copy_from_slice(&slope.to_le_bytes());
            bytes[116..120].copy_from_slice(&inter.to_le_bytes());
        }
        let offset = bytes.len();
        let count: usize = shape.iter().product();
        bytes.resize(offset + count * T::SIZE, 0);
        for index in 0..count {
            let at = offset + index * T::SIZE;
            value(index).write_le(&mut bytes[at..at + T::SIZE]);
        }
        bytes
    }

    /// A region's `(start, end)` along i, j and k.
    type Bounds = [(usize, usize); 3];

    /// The in-memory decodes of every region of the file `bytes`, on pools of
    /// one and two threads: `(threads, region, data)`.
    fn decode_regions(bytes: &[u8], regions: &[Bounds]) -> Vec<(usize, Bounds, VolumeData)> {
        let header = parse_header(bytes).unwrap();
        let mut decoded = Vec::new();
        for threads in [1, 2] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            for &region in regions {
                let data = pool
                    .install(|| decode(&header, bytes, Some(region)))
                    .unwrap();
                decoded.push((threads, region, data));
            }
        }
        decoded
    }

    /// Asserts that `actual`, a decoded `region` of a file with `channels`
    /// channels, holds `expected(n)` at every voxel, `n` being the voxel's
    /// index in the file (`file_index(c, i, j, k)`).
    fn assert_region_holds<T: PartialEq + std::fmt::Debug>(
        actual: &Array4<T>,
        region: Bounds,
        channels: usize,
        file_index: impl Fn(usize, usize, usize, usize) -> usize,
        expected: impl Fn(usize) -> T,
        context: &str,
    ) {
        let [(i0, i1), (j0, j1), (k0, k1)] = region;
        assert_eq!(actual.dim(), (channels, i1 - i0, j1 - j0, k1 - k0));
        for ((c, i, j, k), value) in actual.indexed_iter() {
            let n = file_index(c, i0 + i, j0 + j, k0 + k);
            assert_eq!(
                *value,
                expected(n),
                "{context}, region {region:?}, at {:?}",
                (c, i, j, k)
            );
        }
    }

    /// Every voxel of in-memory decodes (the path of `.nii.gz` files) equals
    /// the file's voxel at the same coordinates, found by index arithmetic:
    /// for raw 4-byte voxels, which whole blocks gather with SSE2 transposes,
    /// and for scaled 4-byte and 2-byte ones, converted one at a time. The
    /// shape has whole blocks and edges on both axes (37 = 2 x 16 + 5 along i,
    /// where a block of 4-byte voxels is 16 wide, and 23 = 5 x 4 + 3 along
    /// k); the regions crop every axis, leave no edge at all, or are all edge.
    #[test]
    fn in_memory_decode_matches_file_voxels_for_every_block_shape() {
        let (channels, nx, ny, nz) = (2, 37, 5, 23);
        // Every voxel's value is a function of its index in the Fortran-ordered
        // file, one-to-one, so a misplaced voxel cannot go unseen.
        let file_index = |c: usize, i: usize, j: usize, k: usize| i + nx * (j + ny * (k + nz * c));
        let shape = [channels, nx, ny, nz];
        /// The decoded value of the voxel with a given file index.
        type Decoded = fn(usize) -> f64;
        let files: [(&str, Vec<u8>, Decoded); 4] = [
            (
                "float32",
                file_bytes(shape, &IDENTITY, None, |n| n as f32 / 4.0),
                |n| n as f64 / 4.0,
            ),
            (
                "int32",
                file_bytes(shape, &IDENTITY, None, |n| n as i32 - 9),
                |n| n as f64 - 9.0,
            ),
            (
                "scaled float32",
                file_bytes(shape, &IDENTITY, Some((2.0, -3.0)), |n| n as f32 / 4.0),
                |n| n as f64 / 4.0 * 2.0 - 3.0,
            ),
            (
                "scaled int16",
                file_bytes(shape, &IDENTITY, Some((0.5, 1.0)), |n| n as i16),
                |n| n as f64 * 0.5 + 1.0,
            ),
        ];
        let regions = [
            [(0, nx), (0, ny), (0, nz)],
            [(3, 37), (1, 4), (2, 21)],
            [(5, 37), (0, ny), (1, 21)],
            [(2, 9), (4, 5), (3, 5)],
            [(20, 37), (2, 3), (22, 23)],
        ];
        for (name, bytes, expected) in &files {
            for (threads, region, data) in decode_regions(bytes, &regions) {
                let actual: Array4<f64> = match data {
                    VolumeData::F32(a) => a.mapv(f64::from),
                    VolumeData::I32(a) => a.mapv(f64::from),
                    other => unreachable!("{name} decoded as {:?}", other.shape()),
                };
                let context = format!("{name}, {threads} thread(s)");
                assert_region_holds(&actual, region, channels, file_index, expected, &context);
            }
        }
    }

    /// 1- and 2-byte voxels decode through 16 x 16 and 8 x 8 tiles: 70
    /// voxels along i (64 in whole blocks of tiles, and a rest of 6), 37
    /// along k (tiles and a rest); the regions shift the blocks off the
    /// file's alignment or leave only rests. The int16 file holds each
    /// voxel's file index; for uint8, two files (its low and high byte)
    /// together do.
    #[test]
    fn in_memory_decode_of_narrow_voxels_matches_file_voxels() {
        let (channels, nx, ny, nz) = (2, 70, 3, 37);
        let shape = [channels, nx, ny, nz];
        let file_index = |c: usize, i: usize, j: usize, k: usize| i + nx * (j + ny * (k + nz * c));
        type Expected = fn(usize) -> i64;
        let files: [(Vec<u8>, Expected); 3] = [
            (
                file_bytes(shape, &IDENTITY, None, |n| (n % 256) as u8),
                |n| (n % 256) as i64,
            ),
            (
                file_bytes(shape, &IDENTITY, None, |n| (n / 256) as u8),
                |n| (n / 256) as i64,
            ),
            (
                file_bytes(shape, &IDENTITY, None, |n| n as i16 - 7000),
                |n| n as i64 - 7000,
            ),
        ];
        let regions = [
            [(0, nx), (0, ny), (0, nz)],
            [(3, 70), (1, 3), (2, 37)],
            [(5, 69), (0, ny), (0, 32)],
            [(2, 17), (2, 3), (3, 19)],
        ];
        for (bytes, expected) in &files {
            for (threads, region, data) in decode_regions(bytes, &regions) {
                let actual: Array4<i64> = match data {
                    VolumeData::U8(a) => a.mapv(i64::from),
                    VolumeData::I16(a) => a.mapv(i64::from),
                    other => unreachable!("decoded as {:?}", other.shape()),
                };
                let context = format!("{threads} thread(s)");
                assert_region_holds(&actual, region, channels, file_index, expected, &context);
            }
        }
    }

    #[test]
    fn truncated_and_garbage_files_are_errors() {
        let path = temp_path("bad.nii");
        write(
            &path,
            ramp().view(),
            &[
                [1.0, 0.0, 0.0, 0.0],
                [0.0, 1.0, 0.0, 0.0],
                [0.0, 0.0, 1.0, 0.0],
                [0.0, 0.0, 0.0, 1.0],
            ],
            WriteOptions {
                compression: None,
                nifti2: false,
            },
        )
        .unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 10]).unwrap();
        let err = read(&path, None).unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
        assert!(err.to_string().contains("bad.nii"), "{err}");
        std::fs::write(&path, b"not a nifti file at all").unwrap();
        assert!(read(&path, None).is_err());
        std::fs::write(&path, [0x1f, 0x8b, 1, 2, 3]).unwrap();
        assert!(read(&path, None).is_err());
        std::fs::remove_file(&path).unwrap();
        assert!(read(&path, None).is_err());
    }
}
