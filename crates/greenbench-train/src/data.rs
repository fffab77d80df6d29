//! Datasets: the shipped 8x8 digits, and loaders for MNIST (IDX) and CIFAR-10 (binary) files
//! the user has. Corrupt or truncated files fail with the path and the byte offset.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Images (flattened, f32) and labels.
#[derive(Clone, Debug)]
pub struct Dataset {
    pub name: String,
    /// Per-example shape, e.g. [28, 28, 1].
    pub shape: Vec<usize>,
    pub images: Vec<f32>,
    pub labels: Vec<u8>,
    pub classes: usize,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    /// Values per example.
    pub fn example_len(&self) -> usize {
        self.shape.iter().product()
    }
    /// A subset by indices.
    pub fn subset(&self, idx: &[usize]) -> Dataset {
        let n = self.example_len();
        let mut images = Vec::with_capacity(idx.len() * n);
        for &i in idx {
            images.extend_from_slice(&self.images[i * n..(i + 1) * n]);
        }
        Dataset {
            name: self.name.clone(),
            shape: self.shape.clone(),
            images,
            labels: idx.iter().map(|&i| self.labels[i]).collect(),
            classes: self.classes,
        }
    }
    /// Deterministic split: a seeded shuffle, then `test_fraction` of the examples for test.
    pub fn split(&self, test_fraction: f64, seed: u64) -> (Dataset, Dataset) {
        let mut idx: Vec<usize> = (0..self.len()).collect();
        idx.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
        let n_test = ((self.len() as f64) * test_fraction).round() as usize;
        let (test, train) = idx.split_at(n_test);
        (self.subset(train), self.subset(test))
    }
}

/// A dataset file that could not be read. Always names the file.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: corrupt at byte {offset}: {what}")]
    Corrupt {
        path: PathBuf,
        offset: usize,
        what: String,
    },
}

fn read(path: &Path) -> Result<Vec<u8>, DataError> {
    std::fs::read(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn corrupt(path: &Path, offset: usize, what: impl Into<String>) -> DataError {
    DataError::Corrupt {
        path: path.to_path_buf(),
        offset,
        what: what.into(),
    }
}

/// sha256 of datasets/digits/digits.csv.gz as shipped (see its README).
pub const DIGITS_SHA256: &str = "09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22";

/// The shipped digits file (datasets/digits/digits.csv.gz under `datasets_dir`).
pub fn digits_path(datasets_dir: &Path) -> PathBuf {
    datasets_dir.join("digits").join("digits.csv.gz")
}

/// The shipped digits file, built into the binary (57 KB), so `train` and `eval` work from
/// any directory and from an installed binary.
pub const DIGITS_GZ: &[u8] = include_bytes!("../../../datasets/digits/digits.csv.gz");

/// The 8x8 digits as built into the binary ([`DIGITS_GZ`]).
pub fn shipped_digits() -> Result<Dataset, DataError> {
    parse_digits(
        DIGITS_GZ,
        Path::new("datasets/digits/digits.csv.gz (built into greenbench)"),
    )
}

/// Load the 8x8 digits (values 0..16 -> [0, 1]) from a file, checking its sha256.
pub fn load_digits(path: &Path) -> Result<Dataset, DataError> {
    parse_digits(&read(path)?, path)
}

/// The digits from the bytes of digits.csv.gz; `path` names them in errors.
fn parse_digits(gz: &[u8], path: &Path) -> Result<Dataset, DataError> {
    let sum = format!("{:x}", Sha256::digest(gz));
    if sum != DIGITS_SHA256 {
        return Err(corrupt(
            path,
            0,
            format!("sha256 {sum} is not the shipped file's {DIGITS_SHA256}"),
        ));
    }
    let mut text = String::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_string(&mut text)
        .map_err(|e| corrupt(path, 0, format!("not gzip'd text: {e}")))?;
    let mut images = Vec::new();
    let mut labels = Vec::new();
    let mut offset = 0;
    for line in text.lines() {
        let vals: Vec<&str> = line.trim().split(',').collect();
        if vals.len() != 65 {
            return Err(corrupt(
                path,
                offset,
                format!("(uncompressed) a row has {} fields, not 65", vals.len()),
            ));
        }
        for v in &vals[..64] {
            let p: f32 = v
                .parse()
                .map_err(|_| corrupt(path, offset, format!("(uncompressed) pixel `{v}`")))?;
            images.push(p / 16.0);
        }
        let l: u8 =
            vals[64].parse().ok().filter(|l| *l < 10).ok_or_else(|| {
                corrupt(path, offset, format!("(uncompressed) label `{}`", vals[64]))
            })?;
        labels.push(l);
        offset += line.len() + 1;
    }
    Ok(Dataset {
        name: "digits".into(),
        shape: vec![8, 8, 1],
        images,
        labels,
        classes: 10,
    })
}

fn be_u32(b: &[u8], at: usize, path: &Path) -> Result<u32, DataError> {
    b.get(at..at + 4)
        .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or_else(|| {
            corrupt(
                path,
                b.len(),
                format!("truncated header: needs byte {}", at + 4),
            )
        })
}

/// MNIST in IDX format: an images file (magic 2051) and a labels file (magic 2049).
pub fn load_mnist(images: &Path, labels: &Path) -> Result<Dataset, DataError> {
    parse_mnist(&read(images)?, &read(labels)?, images, labels)
}

/// [`load_mnist`] on bytes already read (`images`/`labels` name them in errors). Sizes the
/// headers claim are checked against the bytes present before anything is allocated.
pub fn parse_mnist(
    im: &[u8],
    lb: &[u8],
    images: &Path,
    labels: &Path,
) -> Result<Dataset, DataError> {
    if be_u32(im, 0, images)? != 2051 {
        return Err(corrupt(images, 0, "magic is not 2051 (IDX ubyte images)"));
    }
    if be_u32(lb, 0, labels)? != 2049 {
        return Err(corrupt(labels, 0, "magic is not 2049 (IDX ubyte labels)"));
    }
    let n = be_u32(im, 4, images)? as usize;
    let (h, w) = (
        be_u32(im, 8, images)? as usize,
        be_u32(im, 12, images)? as usize,
    );
    let nl = be_u32(lb, 4, labels)? as usize;
    if n != nl {
        return Err(corrupt(labels, 4, format!("{nl} labels for {n} images")));
    }
    let need = n
        .checked_mul(h)
        .and_then(|x| x.checked_mul(w))
        .and_then(|x| x.checked_add(16))
        .ok_or_else(|| {
            corrupt(
                images,
                4,
                format!("{n} images of {h}x{w} is more than any file holds"),
            )
        })?;
    if im.len() < need {
        return Err(corrupt(
            images,
            im.len(),
            format!("truncated: {n} images of {h}x{w} need {need} bytes"),
        ));
    }
    if lb.len() - 8 < n {
        return Err(corrupt(
            labels,
            lb.len(),
            format!("truncated: {n} labels need {} bytes", 8 + n),
        ));
    }
    if let Some(i) = lb[8..8 + n].iter().position(|&l| l > 9) {
        return Err(corrupt(
            labels,
            8 + i,
            format!("label {} is not a digit", lb[8 + i]),
        ));
    }
    Ok(Dataset {
        name: "mnist".into(),
        shape: vec![h, w, 1],
        images: im[16..need].iter().map(|&p| p as f32 / 255.0).collect(),
        labels: lb[8..8 + n].to_vec(),
        classes: 10,
    })
}

/// CIFAR-10 binary batches: records of 1 label byte + 3072 bytes (R, G, B planes of 32x32),
/// converted to NHWC [32, 32, 3] in [0, 1].
pub fn load_cifar10(files: &[PathBuf]) -> Result<Dataset, DataError> {
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for f in files {
        parse_cifar10_batch(&read(f)?, f, &mut images, &mut labels)?;
    }
    Ok(Dataset {
        name: "cifar10".into(),
        shape: vec![32, 32, 3],
        images,
        labels,
        classes: 10,
    })
}

/// One CIFAR-10 binary batch `b` (read from `f`), appended to `images` and `labels`.
pub fn parse_cifar10_batch(
    b: &[u8],
    f: &Path,
    images: &mut Vec<f32>,
    labels: &mut Vec<u8>,
) -> Result<(), DataError> {
    const REC: usize = 1 + 3072;
    {
        if b.is_empty() || !b.len().is_multiple_of(REC) {
            return Err(corrupt(
                f,
                b.len() - b.len() % REC,
                format!(
                    "truncated: {} bytes is not a whole number of {REC}-byte records",
                    b.len()
                ),
            ));
        }
        for (r, rec) in b.chunks(REC).enumerate() {
            if rec[0] > 9 {
                return Err(corrupt(
                    f,
                    r * REC,
                    format!("label {} is not a CIFAR-10 class", rec[0]),
                ));
            }
            labels.push(rec[0]);
            for p in 0..1024 {
                for c in 0..3 {
                    images.push(rec[1 + c * 1024 + p] as f32 / 255.0);
                }
            }
        }
    }
    Ok(())
}

/// Bilinear resize of every (single-channel) image to `h x w` (align-corners style sampling).
pub fn resize(d: &Dataset, h: usize, w: usize) -> Dataset {
    let (ih, iw, c) = (d.shape[0], d.shape[1], d.shape[2]);
    let n = d.example_len();
    let mut images = Vec::with_capacity(d.len() * h * w * c);
    for e in 0..d.len() {
        let img = &d.images[e * n..(e + 1) * n];
        for y in 0..h {
            let fy = y as f32 * (ih - 1) as f32 / (h - 1).max(1) as f32;
            let (y0, ty) = (fy.floor() as usize, fy.fract());
            let y1 = (y0 + 1).min(ih - 1);
            for x in 0..w {
                let fx = x as f32 * (iw - 1) as f32 / (w - 1).max(1) as f32;
                let (x0, tx) = (fx.floor() as usize, fx.fract());
                let x1 = (x0 + 1).min(iw - 1);
                for ch in 0..c {
                    let p = |yy: usize, xx: usize| img[(yy * iw + xx) * c + ch];
                    let top = p(y0, x0) * (1.0 - tx) + p(y0, x1) * tx;
                    let bot = p(y1, x0) * (1.0 - tx) + p(y1, x1) * tx;
                    images.push(top * (1.0 - ty) + bot * ty);
                }
            }
        }
    }
    Dataset {
        name: d.name.clone(),
        shape: vec![h, w, c],
        images,
        labels: d.labels.clone(),
        classes: d.classes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An IDX header claiming 2^32 - 1 images of 2^32 - 1 x 2^32 - 1 pixels: the product
    /// overflows, and must be an error naming the claim, not a panic or a huge allocation.
    #[test]
    fn idx_header_sizes_are_checked_before_use() {
        let mut im = vec![0, 0, 8, 3];
        im.extend([0xff; 12]);
        let mut lb = vec![0, 0, 8, 1];
        lb.extend([0xff; 4]);
        let e = parse_mnist(&im, &lb, Path::new("i"), Path::new("l")).unwrap_err();
        assert!(e.to_string().contains("more than any file holds"), "{e}");
        // A label count larger than the labels present.
        let mut im = vec![0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 1, 7, 7];
        let lb = vec![0, 0, 8, 1, 0, 0, 0, 2, 3];
        let e = parse_mnist(&im, &lb, Path::new("i"), Path::new("l")).unwrap_err();
        assert!(e.to_string().contains("truncated: 2 labels"), "{e}");
        im.truncate(17);
        assert!(parse_mnist(&im, &lb, Path::new("i"), Path::new("l")).is_err());
    }

    fn shipped() -> PathBuf {
        digits_path(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets"))
    }

    #[test]
    fn digits_load_split_resize() {
        let d = load_digits(&shipped()).unwrap();
        assert_eq!((d.len(), d.example_len()), (1797, 64));
        assert!(d.images.iter().all(|&v| (0.0..=1.0).contains(&v)));
        let (tr, te) = d.split(0.2, 0);
        assert_eq!((tr.len(), te.len()), (1438, 359));
        let (tr2, _) = d.split(0.2, 0);
        assert_eq!(tr.labels, tr2.labels, "the split is deterministic");
        let r = resize(&te, 28, 28);
        assert_eq!(r.example_len(), 784);
        // Corners map exactly onto corners.
        assert_eq!(r.images[0], te.images[0]);
        assert_eq!(r.images[783], te.images[63]);
    }

    #[test]
    fn corrupt_digits_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("digits.csv.gz");
        std::fs::write(&p, b"not gzip").unwrap();
        let e = load_digits(&p).unwrap_err().to_string();
        assert!(e.contains("digits.csv.gz") && e.contains("sha256"), "{e}");
        let e = load_digits(&dir.path().join("missing.gz"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing.gz"), "{e}");
    }

    fn idx(dir: &Path, n: u32, truncate: usize) -> (PathBuf, PathBuf) {
        let mut im = Vec::new();
        for v in [2051u32, n, 2, 3] {
            im.extend(v.to_be_bytes());
        }
        im.extend((0..n * 6).map(|i| (i * 40 % 256) as u8));
        im.truncate(im.len() - truncate);
        let mut lb = Vec::new();
        for v in [2049u32, n] {
            lb.extend(v.to_be_bytes());
        }
        lb.extend((0..n).map(|i| (i % 10) as u8));
        let (a, b) = (dir.join("images.idx"), dir.join("labels.idx"));
        std::fs::write(&a, im).unwrap();
        std::fs::write(&b, lb).unwrap();
        (a, b)
    }

    #[test]
    fn mnist_idx_and_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = idx(dir.path(), 4, 0);
        let d = load_mnist(&a, &b).unwrap();
        assert_eq!((d.len(), d.shape.clone()), (4, vec![2, 3, 1]));
        assert_eq!(d.labels, vec![0, 1, 2, 3]);
        assert!((d.images[1] - 40.0 / 255.0).abs() < 1e-7);
        let (a, b) = idx(dir.path(), 4, 5);
        let e = load_mnist(&a, &b).unwrap_err().to_string();
        assert!(
            e.contains("images.idx") && e.contains("byte 35") && e.contains("truncated"),
            "{e}"
        );
    }

    #[test]
    fn cifar_binary_and_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let mut rec = vec![7u8];
        rec.extend((0..3072).map(|i| (i / 1024) as u8 * 100));
        let p = dir.path().join("data_batch_1.bin");
        std::fs::write(&p, [rec.clone(), rec.clone()].concat()).unwrap();
        let d = load_cifar10(std::slice::from_ref(&p)).unwrap();
        assert_eq!((d.len(), d.labels[1]), (2, 7));
        // NHWC: pixel 0 = (R, G, B) = (0, 100, 200) / 255.
        assert!((d.images[2] - 200.0 / 255.0).abs() < 1e-7);
        std::fs::write(&p, &rec[..3000]).unwrap();
        let e = load_cifar10(&[p]).unwrap_err().to_string();
        assert!(
            e.contains("data_batch_1.bin") && e.contains("byte 0") && e.contains("truncated"),
            "{e}"
        );
    }
}
