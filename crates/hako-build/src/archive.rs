//! Recognizing and decompressing archives: a build context sent as a (compressed) tar,
//! and `ADD local.tar.gz /dst`, which extracts. gzip, bzip2, xz and zstd are known, as
//! in Docker; anything else is passed through unchanged.

use std::io::{self, BufRead, BufReader, Read};

/// A compression format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Not compressed.
    None,
    /// gzip.
    Gzip,
    /// bzip2.
    Bzip2,
    /// xz.
    Xz,
    /// zstd.
    Zstd,
}

/// The compression of a stream from its first bytes.
pub fn detect(head: &[u8]) -> Compression {
    match head {
        [0x1f, 0x8b, ..] => Compression::Gzip,
        [b'B', b'Z', b'h', ..] => Compression::Bzip2,
        [0xfd, b'7', b'z', b'X', b'Z', 0x00, ..] => Compression::Xz,
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Compression::Zstd,
        _ => Compression::None,
    }
}

/// Whether `block` (the first 512 bytes, decompressed) is a tar header.
pub fn is_tar_header(block: &[u8]) -> bool {
    if block.len() < 512 {
        return false;
    }
    if &block[257..262] == b"ustar" {
        return true;
    }
    // A v7 header: the checksum field matches the header's bytes.
    let field = std::str::from_utf8(&block[148..156]).unwrap_or("");
    let Ok(want) = u32::from_str_radix(field.trim_matches(|c: char| c == '\0' || c == ' '), 8)
    else {
        return false;
    };
    let sum: u32 = block[..512]
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u32::from(*b)
            }
        })
        .sum();
    sum == want && block[0] != 0
}

/// A reader that decompresses `r` (whatever its format).
pub fn decompress(r: Box<dyn Read + Send>) -> io::Result<Box<dyn Read + Send>> {
    let mut br = BufReader::with_capacity(256 * 1024, r);
    let head = br.fill_buf()?.to_vec();
    Ok(match detect(&head) {
        Compression::None => Box::new(br),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(br)),
        Compression::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(br)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(br)?),
        Compression::Xz => {
            // lzma-rs decodes into a writer: run it on a thread feeding a pipe.
            let (rd, mut wr) = io::pipe()?;
            std::thread::spawn(move || {
                let mut br = br;
                // A decoding error reaches the reader as a truncated stream, which the
                // tar reader reports.
                let _ = lzma_rs::xz_decompress(&mut br, &mut wr);
            });
            Box::new(rd)
        }
    })
}

/// Whether the file at `path` is a (possibly compressed) tar archive.
pub fn is_archive(f: std::fs::File) -> bool {
    let Ok(mut r) = decompress(Box::new(f)) else {
        return false;
    };
    let mut block = vec![0u8; 512];
    let mut got = 0;
    while got < 512 {
        match r.read(&mut block[got..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    got == 512 && is_tar_header(&block)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn tar_bytes() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(2);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "f", &b"hi"[..]).unwrap();
        b.into_inner().unwrap()
    }

    #[test]
    fn formats() {
        let t = tar_bytes();
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("a.tar");
        std::fs::write(&plain, &t).unwrap();
        assert!(is_archive(std::fs::File::open(&plain).unwrap()));
        let gz = dir.path().join("a.tgz");
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&t).unwrap();
        std::fs::write(&gz, e.finish().unwrap()).unwrap();
        assert!(is_archive(std::fs::File::open(&gz).unwrap()));
        let zs = dir.path().join("a.tar.zst");
        std::fs::write(&zs, zstd::encode_all(&t[..], 1).unwrap()).unwrap();
        assert!(is_archive(std::fs::File::open(&zs).unwrap()));
        let bz = dir.path().join("a.tar.bz2");
        let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
        e.write_all(&t).unwrap();
        std::fs::write(&bz, e.finish().unwrap()).unwrap();
        assert!(is_archive(std::fs::File::open(&bz).unwrap()));
        let xz = dir.path().join("a.tar.xz");
        let mut out = Vec::new();
        lzma_rs::xz_compress(&mut &t[..], &mut out).unwrap();
        std::fs::write(&xz, out).unwrap();
        assert!(is_archive(std::fs::File::open(&xz).unwrap()));
        let mut back = Vec::new();
        decompress(Box::new(std::fs::File::open(&xz).unwrap()))
            .unwrap()
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, t);
        let txt = dir.path().join("a.txt");
        std::fs::write(&txt, "just text").unwrap();
        assert!(!is_archive(std::fs::File::open(&txt).unwrap()));
        let gz_text = dir.path().join("t.gz");
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&[b'x'; 600]).unwrap();
        std::fs::write(&gz_text, e.finish().unwrap()).unwrap();
        assert!(
            !is_archive(std::fs::File::open(&gz_text).unwrap()),
            "compressed but not a tar"
        );
    }
}
